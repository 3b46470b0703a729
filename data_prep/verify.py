"""Checking shard files against their manifest before they are read.

``verify_shards(directory, manifest, split, checksums=...)`` is called by
``data_prep.pipeline.load`` (and ``python -m data_prep inspect``):

* **size, always**: one ``stat`` per shard; a missing shard, or one whose size differs from the
  manifest's ``bytes`` (truncated, rewritten, swapped with a shard of another size), raises
  :class:`~data_prep.errors.ShardError` naming the file and the fix;
* **SHA-256**: ``checksums=True`` hashes every shard on every call; ``False`` never;
  ``"auto"`` (the default) hashes each shard file once and remembers the result, keyed by the
  shard's path, size, modification time and inode, in ``$DATA_PREP_CACHE/verified.json``
  (default ``~/.cache/data_prep``): a new directory, a rewritten shard (new mtime) or two
  swapped shards (new inodes at those paths) is hashed again; an unchanged one is not. Hashing
  runs at about 0.5-1 GB/s, so the first load of a 3 GB directory takes a few seconds.

Manifest shard names are plain file names in the directory (``data_prep.manifest`` rejects
anything else), so verification never reads outside it.
"""
from __future__ import annotations

import json
import os
import tempfile

from data_prep import storage
from data_prep.errors import ShardError
from data_prep.manifest import manifest_path

__all__ = ["CHECKSUM_MODES", "cache_file", "verify_shards"]

CHECKSUM_MODES = ("auto", True, False)
_MAX_REMEMBERED = 100_000  # shard files remembered; the oldest are forgotten (and hashed again if seen)


def cache_file() -> str:
    """Where ``"auto"`` remembers verified shard files: ``$DATA_PREP_CACHE/verified.json``."""
    root = os.environ.get("DATA_PREP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "data_prep")
    return os.path.join(root, "verified.json")


def _load_cache() -> dict:
    try:
        with open(cache_file(), encoding="utf-8") as handle:
            cache = json.load(handle)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    """Best effort: an unwritable cache only means hashing again next time."""
    path = cache_file()
    for key in list(cache)[: max(0, len(cache) - _MAX_REMEMBERED)]:
        del cache[key]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".verified-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(cache, stream)
        os.replace(temporary, path)
    except OSError:
        pass


def _identity(path: str) -> tuple[int, list]:
    """``(size, [size, mtime_ns, inode])`` of a shard; inode 0 for URIs."""
    if "://" in path:
        import tensorflow as tf

        stat = tf.io.gfile.stat(path)
        return int(stat.length), [int(stat.length), int(stat.mtime_nsec), 0]
    stat = os.stat(path)
    return stat.st_size, [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def verify_shards(directory: str, manifest: dict, split: str | None = None, *, checksums="auto") -> list[str]:
    """Check the shards of ``split`` (every split when None) against ``manifest``; their paths, in order.

    ``checksums``: ``"auto"``, ``True`` or ``False`` (module docstring). Raises ShardError.
    """
    if checksums not in CHECKSUM_MODES:
        raise ValueError(f"Unknown checksums {checksums!r}; expected one of {list(CHECKSUM_MODES)}")
    command = manifest.get("command") or "the preparation command"
    fix = f"re-run `{command} --overwrite` to write the shards again"
    paths = []
    cache = _load_cache() if checksums == "auto" else {}
    changed = False
    for shard in manifest["shards"]:
        if split is not None and shard["split"] != split:
            continue
        path = storage.join(directory, shard["file"])
        try:
            size, identity = _identity(path)
        except Exception as error:  # FileNotFoundError; tf.errors.NotFoundError for URIs; PermissionError ...
            if isinstance(error, FileNotFoundError) or type(error).__name__ == "NotFoundError":
                raise ShardError(f"{path}: listed in {manifest_path(directory)} but missing; {fix}") from None
            raise ShardError(f"{path}: cannot read ({error}); check the file and its permissions") from None
        if size != shard["bytes"]:
            raise ShardError(
                f"{path}: {size:,} bytes but the manifest says {shard['bytes']:,} (truncated, rewritten or swapped "
                f"with another shard); {fix}"
            )
        key = os.path.abspath(path) if "://" not in path else path
        remembered = cache.get(key)
        if checksums is True or (checksums == "auto" and remembered != [*identity, shard["sha256"]]):
            if storage.sha256_of(path) != shard["sha256"]:
                raise ShardError(
                    f"{path}: SHA-256 differs from the manifest (the file was changed, corrupted or swapped with "
                    f"another shard); {fix}"
                )
            if checksums == "auto":
                cache[key] = [*identity, shard["sha256"]]
                changed = True
        paths.append(path)
    if changed:
        _save_cache(cache)
    return paths
