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
from data_prep.errors import ManifestError
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
    "plain_file_name",
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


def plain_file_name(name) -> bool:
    """True for a file name with no directory part: not absolute, no ``/`` or ``\\``, not ``.``/``..``."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problem(manifest) -> str | None:
    """What is wrong with a parsed manifest, in words; None when it is well-formed."""
    if not isinstance(manifest, dict):
        return f"holds a JSON {type(manifest).__name__}, not an object"
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing or manifest.get("format") != FORMAT:
        return f"not a data_prep manifest (missing {missing or 'format'})"
    if not _count(manifest["version"]) or manifest["version"] > VERSION:
        return f"manifest version {manifest['version']!r} is not one this data_prep ({VERSION}) reads; update data_prep"
    shape = manifest["image_shape"]
    if (not isinstance(shape, list) or len(shape) != 3 or not all(_positive_int(v) for v in shape)
            or shape[2] not in (1, 3)):
        return f"image_shape {shape!r} is not [height, width, channels] with positive sizes and 1 or 3 channels"
    if manifest["encoding"] not in ("raw", "png"):
        return f"encoding {manifest['encoding']!r} is not 'raw' or 'png'"
    splits = manifest["splits"]
    if not isinstance(splits, dict) or not all(isinstance(k, str) and _count(v) for k, v in splits.items()):
        return f"splits {splits!r} is not {{split name: number of examples}}"
    names = manifest["attribute_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return f"attribute_names {names!r} is not a list of names"
    shards = manifest["shards"]
    if not isinstance(shards, list):
        return "shards is not a list"
    counted = dict.fromkeys(splits, 0)
    for number, shard in enumerate(shards):
        keys = ("file", "split", "count", "bytes", "sha256")
        if not isinstance(shard, dict) or any(key not in shard for key in keys):
            return f"shard entry {number} is not {{{', '.join(keys)}}}"
        if not plain_file_name(shard["file"]):
            return f"shard name {shard['file']!r} is not a plain file name in this directory (no '/', '..' or absolute path)"
        if shard["split"] not in splits or not _count(shard["count"]) or not _count(shard["bytes"]):
            return f"shard {shard['file']} has split {shard['split']!r}, count {shard['count']!r}, bytes {shard['bytes']!r}"
        sha = shard["sha256"]
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            return f"shard {shard['file']} has sha256 {sha!r}, not 64 hex digits"
        counted[shard["split"]] += shard["count"]
    if counted != splits:
        return f"splits {splits} disagree with the shards' counts {counted}"
    return None


def read_manifest(path_or_uri: str) -> dict:
    """The manifest of a shard directory (local path or gs:// / s3:// URI), validated.

    Raises ManifestError (a DataError) when it is missing (no shards were prepared there, or
    preparation did not finish) or ill-formed: not JSON, a bad ``image_shape`` or ``splits``,
    a shard name that is not a plain file name in that directory, counts that disagree.
    """
    path = manifest_path(path_or_uri)
    if not storage.exists(path):
        raise ManifestError(
            f"{path}: not found; prepare shards first (`python -m data_prep <{commands_text()}> "
            "--src ... --out DIR`) or re-run that command to finish an interrupted preparation"
        )
    fix = "move it away and re-run the command that prepared these shards with --overwrite"
    try:
        manifest = json.loads(storage.read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not valid JSON ({error}); {fix}") from None
    problem = _problem(manifest)
    if problem is not None:
        raise ManifestError(f"{path}: {problem}; {fix}")
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
        raise ManifestError(f"{manifest_path(directory)}: no split {split!r}; expected one of {sorted(manifest['splits'])}")
    return [storage.join(directory, shard["file"]) for shard in manifest["shards"] if shard["split"] == split]
