"""Write docs/synthetic_faces.png: an 8x8 contact sheet of the first 64 procedural faces (64 px, seed 0).

Reproduce from the repository root:

    PYTHONPATH=. python docs/make_synthetic_faces.py
"""
from __future__ import annotations

import os
import pathlib

from PIL import Image

from data_prep.synthetic import generate_faces

__all__ = ["main"]

OUT = pathlib.Path(__file__).resolve().parent / "synthetic_faces.png"


def main(rows: int = 8, size: int = 64, seed: int = 0) -> pathlib.Path:
    """Save a ``rows x rows`` grid of faces ``0 .. rows**2 - 1`` of ``seed``; returns the path."""
    images, _ = generate_faces(rows * rows, size=size, seed=seed)
    sheet = images.reshape(rows, rows, size, size, 3).transpose(0, 2, 1, 3, 4)
    sheet = sheet.reshape(rows * size, rows * size, 3)
    temporary = OUT.with_name(f".{OUT.name}.tmp")
    Image.fromarray(sheet).save(temporary, format="PNG", optimize=True)
    os.replace(temporary, OUT)
    return OUT


if __name__ == "__main__":
    path = main()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
