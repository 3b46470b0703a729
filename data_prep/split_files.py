"""How planned images are split: CelebA-style split files, index lists such as
``--validation-indices 1000-1100``, and the seeded fraction (``split_by_file``,
``split_by_indices``, ``split_by_fraction``; items are ``data_prep.writer.Item``s with a file
path in ``.pixels`` and the image index in ``.index``).

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

import hashlib
import os

from data_prep.errors import DataError

__all__ = [
    "SPLIT_FILE_NAMES",
    "PARTITION_SPLITS",
    "find_split_file",
    "read_split_file",
    "parse_indices",
    "split_by_file",
    "split_by_fraction",
    "split_by_indices",
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


def split_by_fraction(items: list, src: str, seed: int, validation_fraction: float) -> dict[str, list]:
    """The ``validation_fraction`` of ``items`` ranked first by SHA-256 of ``"<seed>:<path relative to src>"``
    -> ``validation``, the rest ``train`` (adding files moves few others). Items have ``.pixels``, a path."""
    rank = sorted(
        range(len(items)),
        key=lambda i: hashlib.sha256(f"{seed}:{os.path.relpath(items[i].pixels, src)}".encode()).digest(),
    )
    chosen = set(rank[: int(round(len(items) * validation_fraction))])
    return {
        "train": [item for i, item in enumerate(items) if i not in chosen],
        "validation": [item for i, item in enumerate(items) if i in chosen],
    }


def split_by_file(items: list, split_file: str) -> dict[str, list]:
    """``train``/``validation``/``test`` as the split file assigns each item's file name (``.pixels``)."""
    assigned = read_split_file(split_file)
    missing = [item.pixels for item in items if os.path.basename(item.pixels) not in assigned]
    if missing:
        first = ", ".join(os.path.basename(path) for path in missing[:3])
        raise DataError(
            f"{split_file}: no line for {len(missing):,} of {len(items):,} images (e.g. {first}); add them, "
            "or pass --split-file none to split by --validation-fraction"
        )
    splits: dict[str, list] = {"train": [], "validation": [], "test": []}
    for item in items:
        splits[assigned[os.path.basename(item.pixels)]].append(item)
    return splits


def split_by_indices(items: list, spec: str, limit: int | None = None) -> tuple[dict[str, list], str]:
    """``(splits, rule)``: items whose ``.index`` is in ``spec`` (``parse_indices``) -> ``validation``."""
    wanted = parse_indices(spec, limit=limit)
    present = {item.index for item in items} & wanted
    if not present:
        raise DataError(f"--validation-indices {spec}: no image has one of these indices; check the range against --src")
    rule = (f"validation = FFHQ indices {spec} (--validation-indices): {len(present):,} of the {len(wanted):,} "
            "indices asked are present")
    splits = {
        "train": [item for item in items if item.index not in present],
        "validation": [item for item in items if item.index in present],
    }
    return splits, rule
