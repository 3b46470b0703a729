"""Helpers for data_prep tests: tiny image folders, IDX files, attribute tables written into tmp_path."""
from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np
from PIL import Image

__all__ = ["random_images", "write_images", "write_idx", "write_mnist_folder", "write_ffhq_csv"]


def random_images(count: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 images (blurred noise, so PNG/JPEG behave as on photos), (N, S, S, C)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, 4, 4, channels)).astype(np.float64)
    images = np.repeat(np.repeat(coarse, size // 4 + 1, axis=1), size // 4 + 1, axis=2)[:, :size, :size]
    images += rng.normal(0, 8, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def write_images(folder: pathlib.Path, images: np.ndarray, *, names=None, fmt: str = "png") -> list[pathlib.Path]:
    """Save each image as ``folder/<name>.<fmt>`` (names default to 00000, 00001, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        name = names[i] if names is not None else f"{i:05d}"
        path = folder / f"{name}.{fmt}"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
        paths.append(path)
    return paths


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int, *, compress: bool = True) -> pathlib.Path:
    """An IDX file: big-endian magic, big-endian sizes, uint8 data (gzipped when ``compress``)."""
    data = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_mnist_folder(folder: pathlib.Path, n_train: int = 50, n_test: int = 20, compress: bool = True, seed: int = 0):
    """The four MNIST IDX files with random digits; returns {split: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    suffix = ".gz" if compress else ""
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, 2051, compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, 2049, compress=compress)
        arrays[split] = (images, labels)
    return arrays


FFHQ_HEADER = (
    "image_index,face_detected,n_faces,smile,gender,age,glasses,moustache,beard,sideburns,bald,hair_invisible,"
    "hair_color_top,hair_black,hair_blond,hair_brown,hair_gray,hair_red,hair_other,emotion_argmax,eye_makeup,lip_makeup"
)


def write_ffhq_csv(path: pathlib.Path, indices, seed: int = 0) -> list[dict]:
    """An FFHQ-features-style CSV with random rows for ``indices`` (the last one without a face)."""
    rng = np.random.default_rng(seed)
    rows = []
    lines = [FFHQ_HEADER]
    for position, index in enumerate(indices):
        if position == len(indices) - 1:
            row = {"image_index": index, "face_detected": 0}
            lines.append(f"{index},0,0" + "," * (FFHQ_HEADER.count(",") - 2))
        else:
            row = {
                "image_index": index, "face_detected": 1, "smile": round(float(rng.uniform()), 3),
                "gender": str(rng.choice(["male", "female"])), "age": float(rng.integers(1, 80)),
                "glasses": str(rng.choice(["NoGlasses", "ReadingGlasses", "Sunglasses"])),
                "moustache": float(rng.choice([0.0, 0.6])), "beard": float(rng.choice([0.1, 0.9])),
                "bald": round(float(rng.uniform()), 2), "hair_color_top": str(rng.choice(["brown", "black", "red", ""])),
                "eye_makeup": int(rng.integers(0, 2)), "lip_makeup": int(rng.integers(0, 2)),
            }
            lines.append(
                f"{index},1,1,{row['smile']},{row['gender']},{row['age']},{row['glasses']},{row['moustache']},"
                f"{row['beard']},0.0,{row['bald']},0,{row['hair_color_top']},0.1,0.2,0.3,0.1,0.1,0.1,happiness,"
                f"{row['eye_makeup']},{row['lip_makeup']}"
            )
        rows.append(row)
    path.write_text("\n".join(lines) + "\n")
    return rows
