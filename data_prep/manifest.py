"""``manifest.json``: the description of a shard directory, written last, read first.

A shard directory holds ``<split>-NNNNN-of-MMMMM.tfrecord`` files and ``manifest.json`` with:

* ``format``/``version``: ``"data_prep.shards"``, 1;
* ``splits``: ``{split: number of examples}``; ``image_shape``: ``[H, W, C]``; ``encoding``
  (``"raw"`` uint8 bytes or ``"png"``); ``pixel_values`` (``"0-255"``, or ``"binary"`` for 0/255);
* ``label_names``/``num_classes`` where there are labels; ``attribute_names`` (maybe empty) and
  ``attribute_descriptions``;
* ``source`` (kind, path, attribute file), ``command`` (how to recreate it), ``seed``,
  ``split_rule`` (in words) and ``split_method``, the rule that made the split: ``ffhq_index_range``
  (FFHQ's 60000-69999), ``validation_indices`` (``--validation-indices``, also recorded as
  ``validation_indices``), ``split_file`` (e.g. CelebA's ``list_eval_partition.txt``),
  ``seeded_fraction`` (``--validation-fraction`` of the files) or ``source_files`` (MNIST);
* ``shards``: ``[{file, split, count, bytes, sha256}]``; ``skipped``/``notes``: the report.

The manifest is written only once every shard is complete, so its presence means "ready".
"""
from __future__ import annotations

import json

from data_prep import storage
from data_prep.errors import DataError
from data_prep.sources import commands_text

__all__ = [
    "MANIFEST_NAME",
    "FORMAT",
    "VERSION",
    "shard_name",
    "read_manifest",
    "write_manifest",
    "is_shard_dir",
    "shard_paths",
    "manifest_path",
]

MANIFEST_NAME = "manifest.json"
FORMAT = "data_prep.shards"
VERSION = 1
_REQUIRED = ("format", "version", "splits", "image_shape", "encoding", "attribute_names", "source", "command", "shards")


def shard_name(split: str, shard: int, num_shards: int) -> str:
    """``train-00003-of-00016.tfrecord`` for ``shard=3``, ``num_shards=16``."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def manifest_path(path_or_uri: str) -> str:
    """The manifest of a shard directory, or the path itself when it names the manifest."""
    if path_or_uri.rstrip("/").endswith(MANIFEST_NAME):
        return path_or_uri
    return storage.join(path_or_uri, MANIFEST_NAME)


def read_manifest(path_or_uri: str) -> dict:
    """The manifest of a shard directory (local path or gs:// / s3:// URI), validated.

    Raises DataError when it is missing (no shards were prepared there, or preparation did not
    finish) or malformed.
    """
    path = manifest_path(path_or_uri)
    if not storage.exists(path):
        raise DataError(
            f"{path}: not found; prepare shards first (`python -m data_prep <{commands_text()}> "
            "--src ... --out DIR`) or re-run that command to finish an interrupted preparation"
        )
    try:
        manifest = json.loads(storage.read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); re-run the preparation command") from None
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a data_prep manifest (missing {missing or 'format'}); re-run the preparation")
    if manifest["version"] > VERSION:
        raise DataError(f"{path}: manifest version {manifest['version']} is newer than this data_prep ({VERSION})")
    return manifest


def write_manifest(directory: str, manifest: dict) -> str:
    """Write ``manifest.json`` atomically into ``directory``; returns its path."""
    path = storage.join(directory, MANIFEST_NAME)
    storage.write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def is_shard_dir(path: str) -> bool:
    """True when ``path`` is a directory (or URI) holding a data_prep ``manifest.json``."""
    try:
        return storage.exists(storage.join(path, MANIFEST_NAME))
    except Exception:  # e.g. an unreachable bucket: "not a shard dir" is the honest answer here
        return False


def shard_paths(directory: str, manifest: dict, split: str) -> list[str]:
    """Full paths of the shard files of ``split``; DataError naming the splits that exist."""
    if split not in manifest["splits"]:
        raise DataError(f"{manifest_path(directory)}: no split {split!r}; expected one of {sorted(manifest['splits'])}")
    return [storage.join(directory, shard["file"]) for shard in manifest["shards"] if shard["split"] == split]
