"""Named splits: CelebA-style split files, and index lists such as ``--validation-indices 1000-1100``.

A split file assigns every image to a split by file name, one image per line:

    000001.jpg 0
    000002.jpg 1
    000003.jpg 2

with 0 = ``train``, 1 = ``validation``, 2 = ``test`` (CelebA's ``list_eval_partition.txt``;
Kaggle's ``list_eval_partition.csv``, ``image_id,partition`` with a header line, is read too).
Blank lines are ignored. Lines name images by base name, so the file may list more images
than the folder holds (a subset of CelebA), but every image of the folder needs a line.
No TensorFlow here.
"""
from __future__ import annotations

import os

from data_prep.errors import DataError

__all__ = [
    "SPLIT_FILE_NAMES",
    "PARTITION_SPLITS",
    "find_split_file",
    "read_split_file",
    "parse_indices",
]

SPLIT_FILE_NAMES = ("list_eval_partition.txt", "list_eval_partition.csv")
PARTITION_SPLITS = {0: "train", 1: "validation", 2: "test"}


def find_split_file(src: str) -> str | None:
    """The split file beside the images: in ``src`` itself or in its parent folder (CelebA keeps
    ``list_eval_partition.txt`` next to ``img_align_celeba/``); None when there is none."""
    for folder in (src, os.path.dirname(os.path.abspath(src).rstrip(os.sep))):
        for name in SPLIT_FILE_NAMES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def read_split_file(path: str) -> dict[str, str]:
    """``{file name: split}`` from a split file (format in the module docstring); DataError naming the line."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such split file; check --split-file (or pass --split-file none)")
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    splits: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if number == 1 and len(fields) == 2 and not fields[1].lstrip("-").isdigit():
            continue  # a header line such as "image_id,partition"
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) not in PARTITION_SPLITS:
            raise DataError(
                f"{path}: line {number} is {line.strip()!r}; expected 'FILE_NAME 0|1|2' (0 train, 1 validation, 2 test)"
            )
        name = os.path.basename(fields[0])
        if name in splits:
            raise DataError(f"{path}: line {number} names {name} a second time; keep one line per image")
        splits[name] = PARTITION_SPLITS[int(fields[1])]
    if not splits:
        raise DataError(f"{path}: split file holds no lines 'FILE_NAME 0|1|2'")
    return splits


def parse_indices(text: str, flag: str = "--validation-indices", limit: int | None = None) -> set[int]:
    """Indices from ``"1000-1100"``, ``"5,7,9"`` or ``"0-99,60000-60009"`` (ranges include both ends).

    DataError naming ``flag`` and the bad part for anything else (reversed range, negative
    index, an index >= ``limit``).
    """
    indices: set[int] = set()
    parts = [part.strip() for part in str(text).split(",")]
    for part in parts:
        first, dash, last = part.partition("-")
        if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
            raise DataError(f"{flag} {text!r}: {part!r} is not an index or a range A-B; e.g. {flag} 1000-1100,5,7")
        start, stop = int(first), int(last) if dash else int(first)
        if stop < start:
            raise DataError(f"{flag} {text!r}: range {part!r} ends before it starts; write it as {stop}-{start}")
        if limit is not None and stop >= limit:
            raise DataError(f"{flag} {text!r}: index {stop} is beyond the last one, {limit - 1}")
        indices.update(range(start, stop + 1))
    return indices
