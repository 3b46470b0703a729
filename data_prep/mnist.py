"""Readers for MNIST as users have it: the four IDX files (gzipped or not), Keras' ``mnist.npz``,
and statically binarized MNIST (Larochelle and Murray) as ``.amat`` text or ``.mat`` files.

IDX layout: a big-endian int32 magic ``0x00 0x00 <type> <ndim>`` (2051 = uint8 with 3 dims for
images, 2049 = uint8 with 1 dim for labels), ``ndim`` big-endian int32 sizes, then the uint8 data
in C order. Every reader validates what it reads and raises DataError with a one-line message
naming the file. No TensorFlow here.
"""
from __future__ import annotations

import glob
import gzip
import os
import struct
import zlib

import numpy as np

from data_prep.errors import DataError

__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "read_idx",
    "read_mnist",
    "read_binarized_mnist",
    "read_amat",
    "read_mat",
]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_MNIST_FILES = {
    "train": ("train-images*idx3-ubyte*", "train-labels*idx1-ubyte*"),
    "test": ("t10k-images*idx3-ubyte*", "t10k-labels*idx1-ubyte*"),
}
_BINARIZED_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
_PIXELS = 28 * 28


def _read_maybe_gzip(path: str) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path}: truncated or corrupt gzip data ({error}); re-download the file") from None


def read_idx(path: str, magic: int) -> np.ndarray:
    """The uint8 array stored in an IDX file (plain or gzip), checking magic, sizes and length."""
    data = _read_maybe_gzip(path)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX file; re-download it")
    (found,) = struct.unpack(">i", data[:4])
    if found != magic:
        raise DataError(
            f"{path}: IDX magic number is {found}, expected {magic} for MNIST {kind}; "
            "is this the right file (images 2051, labels 2049)?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes); re-download the file")
    shape = struct.unpack(f">{ndim}i", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if any(dim < 0 for dim in shape) or len(data) - header != expected:
        raise DataError(
            f"{path}: IDX header announces shape {tuple(shape)} = {expected:,} bytes of data but the file "
            f"holds {len(data) - header:,}; the file is truncated or corrupt, re-download it"
        )
    if magic == IMAGES_MAGIC and tuple(shape[1:]) != (28, 28):
        raise DataError(f"{path}: MNIST images must be 28x28, found {shape[1]}x{shape[2]}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    if len(images) != len(labels):
        raise DataError(
            f"{labels_name}: holds {len(labels):,} labels but {images_name} holds {len(images):,} images; "
            "the two files must come from the same split"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_name}: label {int(labels.max())} is outside 0-9; is this an MNIST label file?")


def _find_one(src: str, pattern: str) -> str | None:
    matches = sorted(p for p in glob.glob(os.path.join(src, pattern)) if os.path.isfile(p))
    if len(matches) > 1:
        raise DataError(f"{src}: several files match {pattern}: {', '.join(map(os.path.basename, matches))}; keep one")
    return matches[0] if matches else None


def _read_npz(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    splits = {}
    for split in ("train", "test"):
        keys = (f"x_{split}", f"y_{split}")
        missing = [key for key in keys if key not in arrays]
        if missing:
            raise DataError(f"{path}: missing arrays {missing}; expected Keras' mnist.npz with {sorted(arrays)}")
        images, labels = arrays[keys[0]], arrays[keys[1]].reshape(-1)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataError(f"{path}: {keys[0]} has shape {images.shape} {images.dtype}, expected (N, 28, 28) uint8")
        _check_pair(images, labels, f"{path}[{keys[0]}]", f"{path}[{keys[1]}]")
        splits[split] = (images, labels.astype(np.uint8))
    return splits


def read_mnist(src: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (...)}`` with images (N, 28, 28) uint8, labels (N,) uint8.

    ``src`` is a folder holding the four IDX files (``.gz`` or not; ``train-images-idx3-ubyte``
    and ``train-images.idx3-ubyte`` spellings both work), or ``mnist.npz`` / a folder holding it.
    """
    if os.path.isfile(src):
        if src.endswith(".npz"):
            return _read_npz(src)
        raise DataError(f"{src}: expected a folder with the four MNIST IDX files, or mnist.npz")
    if not os.path.isdir(src):
        raise DataError(f"{src}: no such folder; pass the folder that holds the MNIST files with --src")
    found = {split: [_find_one(src, pattern) for pattern in patterns] for split, patterns in _MNIST_FILES.items()}
    if all(path is None for paths in found.values() for path in paths):
        npz = _find_one(src, "*.npz")
        if npz is not None:
            return _read_npz(npz)
        raise DataError(f"{src}: no MNIST files (train-images-idx3-ubyte[.gz], ..., or mnist.npz) in this folder")
    splits = {}
    for split, (images_path, labels_path) in found.items():
        for path, pattern in ((images_path, _MNIST_FILES[split][0]), (labels_path, _MNIST_FILES[split][1])):
            if path is None:
                raise DataError(f"{src}: missing the file matching {pattern} (all four IDX files are needed)")
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        _check_pair(images, labels, images_path, labels_path)
        splits[split] = (images, labels)
    return splits


def _check_binary(path: str, values: np.ndarray) -> np.ndarray:
    if values.ndim != 2 or values.shape[1] != _PIXELS:
        raise DataError(f"{path}: array has shape {values.shape}, expected (N, 784) binarized 28x28 digits")
    if values.size and not np.isin(np.unique(values), (0, 1)).all():
        raise DataError(f"{path}: values other than 0 and 1 found; expected statically binarized MNIST")
    return values.astype(np.uint8).reshape(-1, 28, 28)


def read_amat(path: str) -> np.ndarray:
    """Binarized digits (N, 28, 28) uint8 in {0, 1} from whitespace-separated 0/1 text rows."""
    with open(path, "rb") as handle:
        text = handle.read()
    data = np.frombuffer(text, dtype=np.uint8)
    is_digit = (data == ord("0")) | (data == ord("1"))
    is_space = np.isin(data, np.frombuffer(b" \t\r\n", dtype=np.uint8))
    if not (is_digit | is_space).all():
        position = int(np.argmin(is_digit | is_space))
        line = text.count(b"\n", 0, position) + 1
        raise DataError(f"{path}: line {line} holds a value other than 0 or 1; expected binarized MNIST .amat text")
    line_of_value = np.cumsum(data == ord("\n"))[is_digit]
    per_line = np.bincount(line_of_value)
    per_line = per_line[per_line > 0]
    if per_line.size == 0:
        raise DataError(f"{path}: holds no data; expected lines of {_PIXELS} values 0 or 1")
    if (per_line != _PIXELS).any():
        bad = int(np.argmax(per_line != _PIXELS)) + 1
        raise DataError(f"{path}: expected {_PIXELS} values on every line; data line {bad} differs (file cut short?)")
    return (data[is_digit] - ord("0")).reshape(-1, 28, 28).astype(np.uint8)


def read_mat(path: str) -> np.ndarray:
    """Binarized digits (N, 28, 28) uint8 from a MATLAB file holding one (N, 784) variable (``X``)."""
    import scipy.io

    try:
        variables = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB v7.3 files are not supported; save with -v7 or use the .amat text") from None
    except Exception as error:
        raise DataError(f"{path}: not a readable .mat file ({error})") from None
    names = [name for name in variables if not name.startswith("__")]
    name = "X" if "X" in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise DataError(f"{path}: expected one variable X, found {names}")
    return _check_binary(path, np.asarray(variables[name]))


def read_binarized_mnist(src: str) -> dict[str, np.ndarray]:
    """``{"train", "validation", "test"}`` -> (N, 28, 28) uint8 in {0, 1} (50,000 / 10,000 / 10,000).

    ``src`` holds ``*train*``, ``*valid*`` and ``*test*`` files ending in ``.amat`` or ``.mat``
    (e.g. ``binarized_mnist_train.amat``); ``.mat`` is preferred when both are present.
    """
    if not os.path.isdir(src):
        raise DataError(f"{src}: no such folder; pass the folder that holds binarized_mnist_*.amat or .mat")
    splits = {}
    for split, key in _BINARIZED_SPLITS.items():
        path = _find_one(src, f"*{key}*.mat") or _find_one(src, f"*{key}*.amat")
        if path is None:
            raise DataError(f"{src}: no file matching *{key}*.mat or *{key}*.amat (train, valid and test are needed)")
        splits[split] = read_mat(path) if path.endswith(".mat") else read_amat(path)
    return splits
