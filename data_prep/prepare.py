"""``prepare_dataset``: one call from FFHQ, an image folder or MNIST files to shards and a manifest.

Plan, then write: the sources are listed and validated, split, shuffled within each split with
``seed`` and cut into shards; ``data_prep.writer`` then writes whatever is not already written.
Splits:

* ``ffhq``: ``validation_indices`` when given (``"1000-1100"``, ``"5,7,60000-60009"``); else FFHQ's
  own split, index >= 60000 -> ``validation``, the rest ``train``; a subset holding no index >=
  60000 falls back to the seeded fraction below (said in ``split_rule``);
* ``folder``: a split file when there is one (``split_file``; by default CelebA's
  ``list_eval_partition.txt`` in ``src`` or in its parent folder: ``NAME 0|1|2`` = train /
  validation / test, see ``data_prep.split_files``); otherwise a seeded ``validation_fraction``
  (default 10%) of the files -> ``validation``, ranked by SHA-256 of ``"<seed>:<relative path>"``,
  so adding files moves few others;
* ``mnist``: ``train`` (60,000) and ``test`` (10,000) as in the files;
* ``binarized_mnist``: ``train``/``validation``/``test`` (50,000 / 10,000 / 10,000) as in the files.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import time

import numpy as np

from data_prep import manifest as manifest_lib
from data_prep import storage
from data_prep.attributes import read_attributes
from data_prep.errors import DataError
from data_prep.image_folder import FFHQ_SIZE, FFHQ_VALIDATION_START, ffhq_indices, find_images
from data_prep.locking import DirectoryLock, check_output_dir
from data_prep.mnist import read_binarized_mnist, read_mnist
from data_prep.sources import PREPARED, source
from data_prep.split_files import find_split_file, split_by_file, split_by_fraction, split_by_indices
from data_prep.writer import STATE_NAME, FileDecoding, Item, ShardPlan, owned_names, write_shards

__all__ = ["KINDS", "prepare_dataset", "report_lines"]

KINDS = PREPARED  # the sources of data_prep.sources that are prepared from files
MIN_SIZE, MAX_SIZE = 28, 1024
_SHARD_BYTES = 64 * 2**20  # target shard size; also at least min(16, n / 2048) shards for interleave
_RAW_UP_TO = 256  # encoding "auto": raw pixels up to this size, PNG above (1024 px raw would be 3 MB/image)
_MAX_LISTED_SKIPS = 1000


def _check_arguments(kind, size, validation_fraction, encoding, missing_attributes, shards) -> tuple[str, int]:
    kind = kind.replace("-", "_")
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {list(KINDS)}")
    entry = source(kind)
    if entry.resizable:
        size = entry.default_size if size is None else size
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise DataError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} for {kind}. Received: size={size}")
    elif size not in (None, entry.default_size):
        raise DataError(f"MNIST digits are 28x28 and are not resized. Received: size={size}")
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1). Received: validation_fraction={validation_fraction}")
    if encoding not in ("auto", "raw", "png"):
        raise ValueError(f"Unknown encoding {encoding!r}; expected one of ['auto', 'raw', 'png']")
    if shards is not None and shards < 1:
        raise DataError(f"--shards must be at least 1. Received: shards={shards}")
    if missing_attributes not in ("error", "skip"):
        raise ValueError(f"Unknown missing_attributes {missing_attributes!r}; expected one of ['error', 'skip']")
    return kind, size


def _folder_indices(paths: list[str]) -> tuple[list[int], bool]:
    """Numbers in the file names when every name is a distinct whole number (True), else positions (False)."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    if all(stem.isdigit() for stem in stems) and len({int(stem) for stem in stems}) == len(stems):
        return [int(stem) for stem in stems], True
    return list(range(len(paths))), False


def _join_attributes(table, paths, indices, missing_policy, skipped) -> tuple[list, list, list]:
    """Attach attribute rows; images without a row raise DataError or are skipped (``missing_policy``)."""
    kept_paths, kept_indices, values = [], [], []
    missing = []
    for path, index in zip(paths, indices):
        row = table.lookup(path, index)
        if row is None:
            missing.append(path)
            continue
        kept_paths.append(path)
        kept_indices.append(index)
        values.append(row)
    if missing and missing_policy == "error":
        first = ", ".join(os.path.basename(path) for path in missing[:3])
        raise DataError(
            f"{table.path}: no row for {len(missing):,} of {len(paths):,} images (e.g. {first}); add the rows, "
            "or pass --missing-attributes skip to leave those images out"
        )
    skipped.extend({"file": path, "reason": f"{path}: no row in {table.path}"} for path in missing)
    return kept_paths, kept_indices, values


def _resolve_split_file(kind: str, src: str, split_file: str | None) -> str | None:
    """The split file to use: ``split_file`` ("none" = no file), else one found beside a folder's images."""
    if split_file == "none" or kind != "folder":
        return None
    return os.path.abspath(split_file) if split_file else find_split_file(src)


def _image_splits(kind, src, attributes, seed, validation_fraction, missing_policy, skipped, split_file=None,
                  validation_indices=None):
    """``(splits, table, rule, method)``: items per split, the attribute table, and how the split was made."""
    paths = find_images(src)
    indices, numbered = (ffhq_indices(paths), True) if kind == "ffhq" else _folder_indices(paths)
    table = read_attributes(attributes) if attributes else None
    rows = [None] * len(paths)
    if table is not None:
        if table.key == "index" and not numbered:
            raise DataError(f"{table.path}: joins rows by image index but the file names in {src} are not numbers")
        paths, indices, rows = _join_attributes(table, paths, indices, missing_policy, skipped)
        if not paths:
            raise DataError(f"{table.path}: no row matches any image in {src}; is this the table for these images?")
    items = [Item(index, path, None, row) for index, path, row in zip(indices, paths, rows)]
    has_ffhq_validation = kind == "ffhq" and any(item.index >= FFHQ_VALIDATION_START for item in items)
    split_file = _resolve_split_file(kind, src, split_file)
    if validation_indices is not None:
        (splits, rule), method = split_by_indices(items, validation_indices, FFHQ_SIZE), "validation_indices"
    elif split_file is not None:
        rule, method = f"split file {split_file}: 0 -> train, 1 -> validation, 2 -> test", "split_file"
        splits = split_by_file(items, split_file)
    elif has_ffhq_validation:
        rule, method = f"FFHQ's own split: index >= {FFHQ_VALIDATION_START} -> validation", "ffhq_index_range"
        splits = {
            "train": [item for item in items if item.index < FFHQ_VALIDATION_START],
            "validation": [item for item in items if item.index >= FFHQ_VALIDATION_START],
        }
    else:
        rule = f"validation = the {validation_fraction:g} of files ranked first by sha256('<seed>:<relative path>')"
        if kind == "ffhq":  # a subset of FFHQ's training images: an empty validation split would help nobody
            rule += f" (the source has no FFHQ validation images, indices {FFHQ_VALIDATION_START}-69999)"
        method = "seeded_fraction"
        splits = split_by_fraction(items, src, seed, validation_fraction)
    return splits, table, rule, method


def _array_items(images: np.ndarray, labels: np.ndarray | None, scale: int) -> list[Item]:
    pixels = images.reshape(len(images), -1)
    if scale != 1:
        pixels = pixels * np.uint8(scale)
    return [
        Item(i, pixels[i].tobytes(), None if labels is None else int(labels[i]), None) for i in range(len(images))
    ]


def _num_shards(n: int, image_bytes: float, requested: int | None, n_train: int) -> int:
    if n == 0:
        return 0
    if requested is not None:
        return max(1, min(n, math.ceil(requested * n / max(n_train, 1))))
    return max(1, math.ceil(n * image_bytes / _SHARD_BYTES), min(16, math.ceil(n / 2048)))


def _plan(splits: dict[str, list[Item]], image_bytes: float, shards: int | None, seed: int) -> list[ShardPlan]:
    plans = []
    n_train = len(splits.get("train", [])) or max(len(items) for items in splits.values())
    for split_number, (split, items) in enumerate(splits.items()):
        order = np.random.default_rng([seed, split_number]).permutation(len(items))
        count = _num_shards(len(items), image_bytes, shards, n_train)
        for shard, positions in enumerate(np.array_split(order, count) if count else []):
            name = manifest_lib.shard_name(split, shard, count)
            plans.append(ShardPlan(name, split, [items[p] for p in positions]))
    return plans


def _fingerprint(settings: dict, plans: list[ShardPlan]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for plan in plans:
        digest.update(plan.name.encode())
        for item in plan.items:
            digest.update(str(item.index).encode())
            digest.update(item.pixels.encode() if isinstance(item.pixels, str) else hashlib.sha1(item.pixels).digest())
            if item.attributes is not None:
                digest.update(item.attributes.tobytes())
    return digest.hexdigest()


def _clear(out: str) -> None:
    """Remove what data_prep wrote into ``out``, never any other file: the manifest and the shards it
    lists, and the shards an unfinished preparation planned (its in-progress marker lists them), with
    their ``.tmp`` files. A ``manifest.json`` that is not data_prep's stops with DataError."""
    if not storage.exists(out):
        return
    names = set(owned_names(out))
    if storage.exists(storage.join(out, manifest_lib.MANIFEST_NAME)):
        try:
            existing = manifest_lib.read_manifest(out)
        except DataError:
            path = storage.join(out, manifest_lib.MANIFEST_NAME)
            raise DataError(f"{path}: not a data_prep manifest this version can read, so --overwrite leaves it and "
                            "the files it may list alone; move it away or choose another --out") from None
        names.update(shard["file"] for shard in existing["shards"])
        names.add(manifest_lib.MANIFEST_NAME)
    for name in sorted(names):
        for path in (storage.join(out, name), storage.join(out, name) + ".tmp"):
            if storage.exists(path):
                storage.remove(path)


def _default_command(kind, src, out, size, attributes, shards, seed, options: dict, defaults: dict) -> str:
    """The shell command that recreates these shards (options equal to their defaults are left out)."""
    words = ["python", "-m", "data_prep", kind.replace("_", "-"), "--src", src, "--out", out]
    words += ["--size", str(size)] if source(kind).resizable else []
    words += ["--attributes", attributes] if attributes else []
    words += ["--shards", str(shards)] if shards else []
    for name, value in options.items():
        if value != defaults[name]:
            words += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words + ["--seed", str(seed)])


def prepare_dataset(
    kind: str,
    src: str,
    out: str,
    *,
    size: int | None = None,
    attributes: str | None = None,
    shards: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    validation_fraction: float = 0.1,
    encoding: str = "auto",
    channels: int = 3,
    resample: str = "lanczos",
    missing_attributes: str = "error",
    split_file: str | None = None,
    validation_indices: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> dict:
    """Turn ``src`` into ``<out>/<split>-NNNNN-of-MMMMM.tfrecord`` shards and ``manifest.json``.

    ``kind`` is one of ``KINDS``; ``size`` (28-1024 px, square) is required for ``ffhq`` and
    ``folder``. Idempotent: a finished ``out`` with the same plan is returned as is, an
    interrupted one is completed, one prepared differently raises DataError unless
    ``overwrite``. Unreadable images are skipped and listed in the manifest's ``skipped``.
    Only files that the manifest or this job's in-progress marker list are ever replaced or
    deleted (a file of the user's named like a planned shard needs ``overwrite``), and ``out``
    is locked while shards are written (``data_prep.locking``: a second writer gets
    ``OutputLockedError`` naming the holder).

    ``attributes``: FFHQ features CSV, CelebA ``list_attr_celeba.txt`` or a CSV (see
    ``data_prep.attributes``); images without a row stop the run unless
    ``missing_attributes="skip"``. ``shards``: files for the train split (others in proportion;
    default ~64 MiB each). ``workers``: decoding processes (default: CPU count). ``encoding``:
    ``raw`` uint8 or ``png``; ``auto`` = raw up to 256 px. ``channels``: 3 (RGB) or 1 (luma).
    ``resample``: ``lanczos`` or ``area``. ``split_file`` (folder only): a split file to use
    (default: ``list_eval_partition.txt`` found in ``src`` or its parent; ``"none"``: never).
    ``validation_indices`` (ffhq only): the held-out FFHQ indices, e.g. ``"1000-1100"`` or
    ``"5,7,60000-60009"`` (default: FFHQ's own range, or a seeded fraction for a training subset).
    ``command``: recorded in the manifest (default: the
    equivalent ``python -m data_prep`` command). Returns the manifest (see ``data_prep.manifest``).
    """
    kind, size = _check_arguments(kind, size, validation_fraction, encoding, missing_attributes, shards)
    check_output_dir(out, "--out")
    options = {"encoding": encoding, "resample": resample, "missing_attributes": missing_attributes,
               "channels": channels}
    if kind == "folder":
        options.update(validation_fraction=validation_fraction, split_file=split_file)
    if split_file is not None and kind != "folder":
        raise DataError(f"--split-file applies to folder (files named in the split file), not to {kind}")
    if validation_indices is not None and kind != "ffhq":
        raise DataError(f"--validation-indices applies to ffhq (FFHQ indices), not to {kind}")
    if kind == "ffhq":
        options.update(validation_indices=validation_indices)
    options = options if source(kind).resizable else {}
    defaults = {"encoding": "auto", "resample": "lanczos", "missing_attributes": "error", "validation_fraction": 0.1,
                "channels": 3, "split_file": None, "validation_indices": None}
    skipped: list[dict] = []
    table, label_names, pixel_values, decoding = None, None, "0-255", None
    if source(kind).resizable:
        src = os.path.abspath(src)
        splits, table, rule, method = _image_splits(kind, src, attributes, seed, validation_fraction,
                                                    missing_attributes, skipped, split_file, validation_indices)
        encoding = ("raw" if size <= _RAW_UP_TO else "png") if encoding == "auto" else encoding
        shape = [size, size, channels]
        decoding = FileDecoding(size, channels, resample, encoding)
    else:
        if attributes:
            raise DataError(f"{attributes}: attribute tables apply to face images, not to {kind}")
        encoding, shape = "raw", [28, 28, 1]
        if kind == "mnist":
            arrays = read_mnist(src)
            splits = {split: _array_items(x, y, 1) for split, (x, y) in arrays.items()}
            label_names, rule = [str(digit) for digit in range(10)], "the files' own train/test split"
        else:
            splits = {split: _array_items(x, None, 255) for split, x in read_binarized_mnist(src).items()}
            pixel_values, rule = "binary", "the files' own train/validation/test split"
        method = "source_files"
    image_bytes = float(np.prod(shape)) * (1.0 if encoding == "raw" else 0.5)
    plans = _plan(splits, image_bytes, shards, seed)
    settings = {"kind": kind, "shape": shape, "encoding": encoding, "resample": resample, "seed": seed,
                "rule": rule, "attributes": table.names if table else None}
    fingerprint = _fingerprint(settings, plans)
    with DirectoryLock(out, flag="--out"):  # one writer per --out; see data_prep.locking
        if overwrite:
            _clear(out)
        if storage.exists(storage.join(out, manifest_lib.MANIFEST_NAME)):
            existing = manifest_lib.read_manifest(out)
            if existing.get("fingerprint") == fingerprint:
                return existing
            raise DataError(f"{out}: already holds shards prepared from other data or settings; pass --overwrite or "
                            "choose another --out")
        started = time.perf_counter()
        results = write_shards(out, plans, image_shape=shape, fingerprint=fingerprint, decoding=decoding,
                               workers=workers, progress=progress, replace_foreign=overwrite)
        skipped += [entry for result in results for entry in result.skipped]
        written = sum(result.count for result in results)
        if written == 0:
            _clear(out)  # only what this job planned (its in-progress marker lists it): there is no manifest yet
            first = skipped[0]["reason"] if skipped else "no images"
            raise DataError(f"{src}: no usable image among {len(skipped)} file(s); first: {first}")
        notes: dict[str, int] = {}
        for result in results:
            for note, count in result.notes.items():
                notes[note] = notes.get(note, 0) + count
        manifest = {
            "format": manifest_lib.FORMAT,
            "version": manifest_lib.VERSION,
            "splits": {split: sum(r.count for r in results if r.split == split) for split in splits},
            "image_shape": shape,
            "encoding": encoding,
            "pixel_values": pixel_values,
            "attribute_names": table.names if table else [],
            "attribute_descriptions": table.descriptions if table else {},
            "source": {"kind": kind, "path": src, "attributes": table.path if table else None,
                       "attribute_format": table.source if table else None},
            "command": command or _default_command(kind, src, out, size, attributes, shards, seed, options, defaults),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seed": seed,
            "split_rule": rule,
            "split_method": method,
            "resample": resample if decoding else None,
            "shards": [{"file": r.file, "split": r.split, "count": r.count, "bytes": r.bytes, "sha256": r.sha256}
                       for r in results],
            "skipped": {"count": len(skipped), "files": skipped[:_MAX_LISTED_SKIPS]},
            "notes": notes,
            "seconds": round(time.perf_counter() - started, 2),
            "fingerprint": fingerprint,
        }
        if label_names:
            manifest.update(label_names=label_names, num_classes=len(label_names))
        if validation_indices is not None:
            manifest["validation_indices"] = validation_indices
        if table is not None and table.warnings:
            manifest["warnings"] = list(table.warnings)
        manifest_lib.write_manifest(out, manifest)
        state = storage.join(out, STATE_NAME)
        if storage.exists(state):
            storage.remove(state)
        return manifest


def report_lines(manifest: dict) -> list[str]:
    """The final report: images written per split, shards, conversions, and every skip with its reason."""
    splits = ", ".join(f"{split} {count:,}" for split, count in manifest["splits"].items())
    total = sum(manifest["splits"].values())
    shape = "x".join(map(str, manifest["image_shape"]))
    lines = [f"wrote {total:,} images ({splits}) of {shape} in {len(manifest['shards'])} shards"]
    if manifest.get("notes"):
        lines.append("converted: " + ", ".join(f"{note} {count:,}" for note, count in sorted(manifest["notes"].items())))
    grey = manifest.get("notes", {}).get("grey to RGB", 0)
    if grey and manifest["source"]["kind"] == "folder":
        share = "every source image is" if grey == total else f"{grey:,} of {total:,} source images are"
        lines.append(f"  {share} grey, stored as 3 equal channels; pass --channels 1 to keep one channel")
    lines += [f"warning: {warning}" for warning in manifest.get("warnings", [])]
    skipped = manifest["skipped"]
    lines.append(f"skipped {skipped['count']:,} file(s)" + (":" if skipped["count"] else ""))
    lines += [f"  {entry['reason']}" for entry in skipped["files"]]
    if skipped["count"] > len(skipped["files"]):
        lines.append(f"  ... and {skipped['count'] - len(skipped['files']):,} more")
    return lines
