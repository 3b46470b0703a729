"""Finding the images of a folder tree, and FFHQ's image index in their file names.

FFHQ is published as ``images1024x1024/NNNNN/NNNNN.png`` (or ``thumbnails128x128/...``): 70,000
aligned faces in folders of 1,000, whose five-digit file name is the FFHQ index 0-69999. Indices
60000-69999 are FFHQ's own validation split. Other folders (CelebA's ``img_align_celeba``, a
user's photos) are any tree of PNG, JPEG or WebP files. No TensorFlow here.
"""
from __future__ import annotations

import os
import re

from data_prep.errors import DataError
from data_prep.images import IMAGE_EXTENSIONS

__all__ = [
    "FFHQ_SIZE",
    "FFHQ_VALIDATION_START",
    "find_images",
    "ffhq_index",
    "ffhq_indices",
]

FFHQ_SIZE = 70_000
FFHQ_VALIDATION_START = 60_000
_FFHQ_NAME = re.compile(r"^(\d{5})$")


def find_images(src: str) -> list[str]:
    """Paths of every image under ``src`` (recursive, sorted by relative path, hidden entries skipped).

    Raises DataError when ``src`` is missing, is not a folder, or holds no image file.
    """
    if not os.path.exists(src):
        raise DataError(f"{src}: no such folder; pass the folder that holds the images with --src")
    if not os.path.isdir(src):
        raise DataError(f"{src}: is a file, not a folder; pass the folder that holds the images with --src")
    found = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(root, name))
    if not found:
        extensions = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"{src}: no image files ({extensions}) found in this folder or below it")
    return sorted(found, key=lambda path: os.path.relpath(path, src))


def ffhq_index(path: str) -> int | None:
    """The FFHQ index of ``.../NNNNN.png`` (0-69999), or None when the name is not one."""
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _FFHQ_NAME.match(stem)
    if match is None:
        return None
    index = int(match.group(1))
    return index if index < FFHQ_SIZE else None


def ffhq_indices(paths: list[str]) -> list[int]:
    """FFHQ indices of every path; DataError naming the first file that is not ``NNNNN.<ext>``.

    Also rejects two files with the same index (e.g. both the 1024 px and the 128 px copy).
    """
    indices = []
    seen: dict[int, str] = {}
    for path in paths:
        index = ffhq_index(path)
        if index is None:
            raise DataError(
                f"{path}: not an FFHQ file name (expected NNNNN.png with NNNNN in 00000-69999); "
                "use `python -m data_prep folder` for other images"
            )
        if index in seen:
            raise DataError(
                f"{path}: FFHQ index {index} also appears as {seen[index]}; "
                "point --src at one resolution folder (e.g. images1024x1024 or thumbnails128x128)"
            )
        seen[index] = path
        indices.append(index)
    return indices
