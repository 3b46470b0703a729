"""File access for shard directories through ``tf.io.gfile``, so gs:// and s3:// URIs work like local paths.

TensorFlow is imported only when one of these functions runs: the decoding worker processes of
the writer import data_prep modules but must never pay for (or fork) TensorFlow.
"""
from __future__ import annotations

import hashlib
import posixpath

__all__ = [
    "join",
    "exists",
    "isdir",
    "makedirs",
    "listdir",
    "remove",
    "rename",
    "file_size",
    "read_bytes",
    "read_text",
    "write_bytes_atomic",
    "write_text_atomic",
    "sha256_of",
]

_CHUNK = 1 << 22


def _gfile():
    import tensorflow as tf  # deferred: see module docstring

    return tf.io.gfile


def join(directory: str, name: str) -> str:
    """``directory/name`` for local paths and URIs alike (URIs always use '/')."""
    if "://" in directory:
        return posixpath.join(directory, name)
    import os

    return os.path.join(directory, name)


def exists(path: str) -> bool:
    return bool(_gfile().exists(path))


def isdir(path: str) -> bool:
    return bool(_gfile().isdir(path))


def makedirs(path: str) -> None:
    _gfile().makedirs(path)


def listdir(path: str) -> list[str]:
    return sorted(name.rstrip("/") for name in _gfile().listdir(path))


def remove(path: str) -> None:
    _gfile().remove(path)


def rename(source: str, target: str) -> None:
    """Move ``source`` onto ``target``, replacing it (atomic on local file systems)."""
    _gfile().rename(source, target, overwrite=True)


def file_size(path: str) -> int:
    return int(_gfile().stat(path).length)


def read_bytes(path: str) -> bytes:
    with _gfile().GFile(path, "rb") as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path + '.tmp'`` and rename it over ``path`` once complete."""
    temporary = path + ".tmp"
    with _gfile().GFile(temporary, "wb") as handle:
        handle.write(data)
    rename(temporary, path)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def sha256_of(path: str) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with _gfile().GFile(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()
