"""Atomic writes of local files and directories: a reader sees the old content or the new, never a part.

A file is written under a temporary name in the same directory, flushed and fsync'ed, then moved over the
target with ``os.replace`` (atomic on POSIX file systems), and the directory entry is fsync'ed. A directory is
built in a staging directory beside the target and renamed into place. Temporary names are hidden and
recognisable (``.NAME.tmp-PID-RANDOM[.SUFFIX]``), keep the target's suffix (so savers that pick a format by
extension, such as ``keras.Model.save``, Pillow and matplotlib, work on them), and ``remove_stale`` deletes the
ones a killed writer left behind (and nothing else).

    write_text(path, text); write_bytes(path, data); write_json(path, values)
    with atomic_path("checkpoints/epoch-003.keras") as tmp:   # any saver that takes a path
        model.save(tmp)
    with staged_directory("saved_models/run") as staging:     # build a whole directory, then swap it in
        ...

Pure standard library (no TensorFlow), so both data_prep and facevae use it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from typing import Any, Iterator

__all__ = ["atomic_path", "commit", "write_bytes", "write_text", "write_json", "staged_directory", "temporary_name",
           "is_temporary", "remove_stale", "fsync_directory"]

# .NAME.tmp-PID-HEX(.SUFFIX)?  and  .NAME.old-PID-HEX  (a replaced directory on its way out)
_TEMPORARY = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]{8}(\.[A-Za-z0-9]+)?$")


def temporary_name(path: str, kind: str = "tmp") -> str:
    """A hidden unique sibling of ``path``: ``DIR/.NAME.tmp-PID-HEX.EXT`` (the target's extension kept)."""
    directory, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1] if kind == "tmp" else ""
    return os.path.join(directory, f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def is_temporary(name: str) -> bool:
    """True for a name made by ``temporary_name`` (a file or directory this module may clean up)."""
    return bool(_TEMPORARY.match(os.path.basename(name)))


def fsync_directory(directory: str) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _fsync_path(path: str) -> None:
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for name in files:
                _fsync_file(os.path.join(root, name))
            fsync_directory(root)
    elif os.path.exists(path):
        _fsync_file(path)


def _fsync_file(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success fsync it and move it over ``path``, else remove it."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        commit(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def commit(temporary: str, path: str) -> None:
    """Make a finished temporary (a file or a directory tree) durable and move it over ``path``."""
    _fsync_path(temporary)
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, ``os.replace``)."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, values: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(values, indent=indent) + "\n")


@contextlib.contextmanager
def staged_directory(path: str) -> Iterator[str]:
    """Yield an empty staging directory beside ``path``; on success it replaces ``path`` (an existing directory
    is renamed aside first and removed after the swap), on failure the staging directory is removed.

    The caller decides whether an existing ``path`` may be replaced at all (see facevae.training.rundir).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = temporary_name(path)
    os.mkdir(staging)
    try:
        yield staging
        _fsync_path(staging)
        if os.path.lexists(path):
            old = temporary_name(path, kind="old")
            os.replace(path, old)
            os.replace(staging, path)
            fsync_directory(parent)
            _remove(old)
        else:
            os.replace(staging, path)
            fsync_directory(parent)
    except BaseException:
        _remove(staging)
        raise


def remove_stale(directory: str, stem: str | None = None) -> list[str]:
    """Delete the temporaries ``temporary_name`` made in ``directory`` (only those of ``stem`` when given);
    returns the names removed. Call it only while no other writer can be at work there (under a lock)."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if is_temporary(name) and (stem is None or name.startswith(f".{stem}.")):
            _remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
