"""Faces with known binary attributes, for attribute vectors: the built-in faces or prepared shards.

    names = attribute_names("synthetic")                  # smiling, glasses, long_hair, hair_black, ...
    faces = load_labelled_faces("shards/ffhq64", count=2000, image_size=64, channels=3)
    faces.images   # float32 [N, S, S, C] in [0, 1]
    faces.labels   # {name: bool [N]} of the binary columns; faces.known: {name: bool [N]} (False where unknown)
    faces.values   # {name: float64 [N]} of every column, NaN where unknown (FFHQ's age in years, ...)
    labels, known = faces.binary("age>=40")   # a binary attribute, or a threshold on any column

``"synthetic"`` means the built-in procedural faces (``data_prep.synthetic``), whose attributes are
exact and independent. A shard directory (``python -m data_prep ...``) offers the attributes its
``manifest.json`` lists (FFHQ features, CelebA-style tables). A column whose known values are all 0/1
(or all -1/+1) is binary and read as ``value > 0.5``; any other column (FFHQ's ``age`` in years, its
``smile`` probability) is continuous and is an attribute only with a threshold: ``age>=40``, ``smile<0.2``
(comparisons >=, >, <=, <). NaN is unknown.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["SYNTHETIC", "LabelledFaces", "AttributeDataError", "AttributeSpec", "parse_attribute", "attribute_names",
           "check_attribute", "load_labelled_faces"]

SYNTHETIC = "synthetic"
_COMPARISONS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
_SPEC = re.compile(r"^([^<>=\s]+)\s*(>=|<=|>|<)\s*(\S+)$")


class AttributeDataError(ValueError):
    """Unusable attribute data: unknown data source, unknown attribute, unreadable manifest (one line)."""


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute as the user names it: a column alone (``smiling``) or a column, a comparison and a threshold
    (``age>=40``: faces whose age is at least 40 have the attribute)."""

    column: str
    comparison: str | None = None
    threshold: float | None = None

    def __str__(self) -> str:
        return self.column if self.comparison is None else f"{self.column}{self.comparison}{self.threshold:g}"


def parse_attribute(text: str) -> AttributeSpec:
    """'smiling' -> AttributeSpec('smiling'); 'age>=40' -> AttributeSpec('age', '>=', 40.0); AttributeDataError
    naming the expected form when a comparison is malformed."""
    text = text.strip()
    if not any(sign in text for sign in "<>="):
        return AttributeSpec(text)
    match = _SPEC.match(text)
    try:
        spec = AttributeSpec(match.group(1), match.group(2), float(match.group(3)))
    except (AttributeError, ValueError):  # no match, or no number after the comparison
        spec = None
    if spec is None or not np.isfinite(spec.threshold):
        raise AttributeDataError(f"attribute {text!r}: expected a name, or a name, one of >=, >, <=, < and a number "
                                 "(for example 'age>=40')")
    return spec


def _is_binary(values: np.ndarray) -> bool:
    """True when the known (finite) values are all in {0, 1} or all in {-1, 1}."""
    known = np.unique(values[np.isfinite(values)])
    return set(known) <= {0.0, 1.0} or set(known) <= {-1.0, 1.0}


@dataclass
class LabelledFaces:
    """images float32 [N, S, S, C] in [0, 1]; values: {column: float64 [N]}, NaN where unknown; labels and
    known: {binary column: bool [N]} (value > 0.5, and value known); note: a resize note."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    note: str | None = None

    def binary(self, attribute: str | AttributeSpec) -> tuple[np.ndarray, np.ndarray]:
        """(labels bool [N], known bool [N]) of ``attribute``: a binary column by name, or any column compared
        with a threshold ('age>=40': value >= 40; unknown where the value is NaN). A continuous column named
        alone is an AttributeDataError that suggests a threshold (its median, which splits the faces in two)."""
        spec = attribute if isinstance(attribute, AttributeSpec) else parse_attribute(attribute)
        if spec.column not in self.values:
            raise AttributeDataError(f"attribute {spec.column!r} is not among {sorted(self.values)}")
        values = self.values[spec.column]
        known = np.isfinite(values)
        if spec.comparison is None:
            if spec.column not in self.labels:
                median = float(np.median(values[known])) if known.any() else 0.0
                raise AttributeDataError(
                    f"attribute {spec.column!r} is not 0/1 (its values run from {np.nanmin(values):g} to "
                    f"{np.nanmax(values):g}); name a threshold, for example --attribute '{spec.column}>={median:.3g}'")
            return self.labels[spec.column].copy(), known
        return _COMPARISONS[spec.comparison](np.nan_to_num(values, nan=-np.inf), spec.threshold) & known, known


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


def check_attribute(name: str, available: list[str], data: str) -> AttributeSpec:
    """``name`` parsed (``parse_attribute``); AttributeDataError naming the available attributes when its column
    is not one of them."""
    spec = parse_attribute(name)
    if spec.column not in available:
        offered = ", ".join(available) if available else "none"
        raise AttributeDataError(f"attribute {spec.column!r} is not in {data!r}; it offers: {offered}")
    return spec


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
        return LabelledFaces(faces.astype(np.float32) / 255.0, labels, {name: np.ones(count, bool) for name in labels},
                             {name: v.astype(np.float64) for name, v in labels.items()})
    images, columns = _from_shards(data, count, split)
    note = None
    if images.shape[1] != image_size:
        note = f"note: faces in {data} are {images.shape[1]}x{images.shape[2]}; resized to {image_size}x{image_size}"
        images = _resize(images, image_size)
    images = _fit_channels(images.astype(np.float32), channels)
    binary = [name for name, values in columns.items() if _is_binary(values)]
    known = {name: np.isfinite(columns[name]) for name in binary}
    labels = {name: np.nan_to_num(columns[name], nan=0.0) > 0.5 for name in binary}
    return LabelledFaces(images, labels, known, columns, note)
