"""`python -m data_prep synthetic`: write the built-in procedural faces as PNG files plus a CSV.

    python -m data_prep synthetic --out data/synthetic --count 10000 --size 64 --seed 0

writes ``data/synthetic/images/000000.png`` ... (file name = face index) and
``data/synthetic/attributes.csv`` (header ``index`` then ``ATTRIBUTE_NAMES``; booleans as 0/1,
categories as integer codes, see ``data_prep.synthetic.COLUMN_DESCRIPTIONS``). Faces are generated
in chunks of 1,000, so memory stays bounded for any count; every file is written under a temporary
name and then renamed, so an interrupted run never leaves a truncated file.
"""
from __future__ import annotations

import argparse
import io
import os
import pathlib

import numpy as np
from PIL import Image
from tqdm import tqdm

from data_prep import synthetic
from data_prep.errors import DataError

__all__ = ["register", "run", "write_faces"]

CHUNK = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synthetic`` sub-command to the data_prep command line."""
    parser = subparsers.add_parser(
        "synthetic",
        help="write the built-in procedural faces (PNG files and attributes.csv)",
        description=("Generate cartoon faces with known attributes (smiling, glasses, long hair, hair "
                     "colour, skin tone, face width, background, shirt colour, position and scale) "
                     "and write them as DIR/images/NNNNNN.png plus DIR/attributes.csv. Face i depends "
                     "only on (seed, i), so runs with different --start values can be combined."),
    )
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                        help="output folder; created if missing, existing files of the same names are replaced")
    parser.add_argument("--count", required=True, type=int, metavar="N",
                        help="number of faces to write, a positive integer")
    parser.add_argument("--size", type=int, default=64, metavar="S",
                        help=f"image width and height in pixels, {synthetic.MIN_SIZE} to "
                             f"{synthetic.MAX_SIZE} (default: 64)")
    parser.add_argument("--seed", type=int, default=0,
                        help="non-negative integer selecting the sequence of faces (default: 0)")
    parser.add_argument("--channels", type=int, default=3, metavar="C",
                        help="3 for RGB or 1 for grayscale (default: 3)")
    parser.add_argument("--start", type=int, default=0,
                        help="index of the first face, e.g. 50000 for a validation range (default: 0)")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.count <= 0:
        raise DataError(f"--count must be a positive integer. Received: --count={args.count}")
    if not synthetic.MIN_SIZE <= args.size <= synthetic.MAX_SIZE:
        raise DataError(f"--size must be in [{synthetic.MIN_SIZE}, {synthetic.MAX_SIZE}]. "
                        f"Received: --size={args.size}")
    if args.channels not in (1, 3):
        raise DataError(f"--channels must be 1 (grayscale) or 3 (RGB). Received: --channels={args.channels}")
    if not 0 <= args.seed < 2**63:
        raise DataError(f"--seed must be in [0, 2**63 - 1]. Received: --seed={args.seed}")
    if not 0 <= args.start <= 2**62:
        raise DataError(f"--start must be a non-negative integer. Received: --start={args.start}")
    if args.out.exists() and not args.out.is_dir():
        raise DataError(f"--out must be a folder, but {args.out} is a file")


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _format(column: np.ndarray) -> list[str]:
    if column.dtype == bool:
        return [str(int(value)) for value in column]
    if np.issubdtype(column.dtype, np.floating):
        return [f"{value:.9g}" for value in column.tolist()]  # 9 digits round-trip float32
    return [str(value) for value in column.tolist()]


def write_faces(out: pathlib.Path, count: int, size: int = 64, seed: int = 0, channels: int = 3,
                start: int = 0, progress: bool = True) -> tuple[pathlib.Path, pathlib.Path]:
    """Write faces ``start .. start + count - 1`` as PNGs and their attribute CSV under ``out``.

    Returns ``(images_folder, csv_path)``. PNG names are the face index, zero-padded to 6 digits.
    """
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    digits = max(6, len(str(start + count - 1)))
    lines = [",".join(("index",) + synthetic.ATTRIBUTE_NAMES)]
    with tqdm(total=count, unit="face", desc="synthetic faces", disable=not progress) as bar:
        for first in range(start, start + count, CHUNK):
            number = min(CHUNK, start + count - first)
            images, table = synthetic.generate_faces(number, size=size, seed=seed, channels=channels,
                                                     start=first)
            for image, index in zip(images, table["index"].tolist()):
                buffer = io.BytesIO()
                Image.fromarray(image[..., 0] if channels == 1 else image).save(buffer, "PNG")
                _write_atomically(images_dir / f"{index:0{digits}d}.png", buffer.getvalue())
            text = [_format(table[name]) for name in ("index",) + synthetic.ATTRIBUTE_NAMES]
            lines.extend(",".join(row) for row in zip(*text))
            bar.update(number)
    csv_path = out / "attributes.csv"
    _write_atomically(csv_path, ("\n".join(lines) + "\n").encode("ascii"))
    return images_dir, csv_path


def run(args: argparse.Namespace) -> int:
    """Validate the flags, write the faces, print what was written; returns the exit code 0."""
    _check(args)
    images_dir, csv_path = write_faces(args.out, args.count, size=args.size, seed=args.seed,
                                       channels=args.channels, start=args.start)
    last = args.start + args.count - 1
    print(f"wrote {args.count} faces ({args.size}x{args.size}x{args.channels}, seed {args.seed}, "
          f"indices {args.start}..{last}) to {images_dir}/ and {csv_path}")
    return 0
