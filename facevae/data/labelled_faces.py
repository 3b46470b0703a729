"""Faces with known binary attributes, for attribute vectors: the built-in faces or prepared shards.

    names = attribute_names("synthetic")                  # smiling, glasses, long_hair, hair_black, ...
    faces = load_labelled_faces("shards/ffhq64", count=2000, image_size=64, channels=3)
    faces.images   # float32 [N, S, S, C] in [0, 1]
    faces.labels   # {name: bool [N]}; faces.known: {name: bool [N]} (False where the table has no value)

``"synthetic"`` means the built-in procedural faces (``data_prep.synthetic``), whose attributes are
exact and independent. A shard directory (``python -m data_prep ...``) offers the attributes its
``manifest.json`` lists (FFHQ features, CelebA-style tables); float values are read as
``value > 0.5`` (so both 0/1 and -1/+1 tables work) and NaN as unknown.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["SYNTHETIC", "LabelledFaces", "AttributeDataError", "attribute_names", "check_attribute",
           "load_labelled_faces"]

SYNTHETIC = "synthetic"


class AttributeDataError(ValueError):
    """Unusable attribute data: unknown data source, unknown attribute, unreadable manifest (one line)."""


@dataclass
class LabelledFaces:
    """images float32 [N, S, S, C] in [0, 1]; labels and known: {attribute: bool [N]}; note: a resize note."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    note: str | None = None


def _manifest(data: str) -> dict:
    path = os.path.join(data, "manifest.json")
    if not os.path.isfile(path):
        raise AttributeDataError(f"--data {data!r} is neither 'synthetic' nor a shard directory with manifest.json "
                                 "(prepare one with `python -m data_prep ...`)")
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise AttributeDataError(f"cannot read {path}: {error}") from None


def attribute_names(data: str) -> list[str]:
    """The binary attributes ``data`` offers ('synthetic' or a shard directory)."""
    if data == SYNTHETIC:
        from data_prep.synthetic import BINARY_ATTRIBUTE_NAMES

        return list(BINARY_ATTRIBUTE_NAMES)
    return list(_manifest(data).get("attribute_names") or [])


def check_attribute(name: str, available: list[str], data: str) -> None:
    """AttributeDataError naming the available attributes when ``name`` is not one of them."""
    if name not in available:
        offered = ", ".join(available) if available else "none"
        raise AttributeDataError(f"attribute {name!r} is not in {data!r}; it offers: {offered}")


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(images, (size, size), method="area", antialias=True).numpy().clip(0.0, 1.0)


def _fit_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[-1] == channels:
        return images
    if channels == 1:
        return (images @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return np.repeat(images, 3, axis=-1)


def _from_shards(data: str, count: int, split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    manifest = _manifest(data)
    splits = manifest.get("splits", {})
    if split not in splits:
        raise AttributeDataError(f"{data!r} has no split {split!r}; it has {sorted(splits)}")
    try:
        from data_prep.pipeline import load
    except ImportError as error:
        raise AttributeDataError(f"reading shards needs data_prep.pipeline ({error})") from None
    images, columns, seen = [], {}, 0
    for batch, attributes in load(data, split, 256, training=False, with_attributes=True).as_numpy_iterator():
        images.append(batch)
        for name, values in attributes.items():
            columns.setdefault(name, []).append(values)
        seen += len(batch)
        if seen >= count:
            break
    if not images:
        raise AttributeDataError(f"split {split!r} of {data!r} holds no images")
    return (np.concatenate(images)[:count],
            {name: np.concatenate(parts)[:count].astype(np.float64) for name, parts in columns.items()})


def load_labelled_faces(data: str, count: int, image_size: int, channels: int, seed: int = 0,
                        start: int = 0, split: str = "train") -> LabelledFaces:
    """Up to ``count`` faces of ``data`` at the model's size with their binary attributes.

    'synthetic': faces ``start .. start + count - 1`` of sequence ``seed``, rendered at ``image_size``.
    Shards: the first ``count`` faces of ``split`` (``seed``/``start`` unused), resized when the
    shards have another size (with a note).
    """
    if data == SYNTHETIC:
        from data_prep.synthetic import binary_attributes, generate_faces

        faces, table = generate_faces(count, size=image_size, seed=seed, channels=channels, start=start)
        labels = binary_attributes(table)
        return LabelledFaces(faces.astype(np.float32) / 255.0, labels,
                             {name: np.ones(count, bool) for name in labels})
    images, columns = _from_shards(data, count, split)
    note = None
    if images.shape[1] != image_size:
        note = f"note: faces in {data} are {images.shape[1]}x{images.shape[2]}; resized to {image_size}x{image_size}"
        images = _resize(images, image_size)
    images = _fit_channels(images.astype(np.float32), channels)
    known = {name: np.isfinite(values) for name, values in columns.items()}
    labels = {name: np.nan_to_num(values, nan=0.0) > 0.5 for name, values in columns.items()}
    return LabelledFaces(images, labels, known, note)
