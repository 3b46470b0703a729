"""The ``tf.train.Example`` layout of one image in a shard, for writing and for parsing.

Features of every example:

* ``image``: bytes; the uint8 pixels in C order (H, W, C) when the manifest's ``encoding`` is
  ``"raw"``, or a PNG file when it is ``"png"``;
* ``shape``: int64 [3], (H, W, C);
* ``index``: int64, the source index (FFHQ index, position in the MNIST file, position of the
  file in the sorted folder listing);
* ``label``: int64, only when the manifest has ``label_names``;
* ``attributes``: float32 [A] in the order of the manifest's ``attribute_names`` (NaN = unknown),
  only when A > 0.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["serialize_example", "feature_spec"]


def serialize_example(
    image: bytes,
    shape: Sequence[int],
    index: int,
    label: int | None = None,
    attributes: Sequence[float] | None = None,
) -> bytes:
    """One serialized ``tf.train.Example`` with the features listed in the module docstring."""
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(shape))),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    if label is not None:
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
    if attributes is not None and len(attributes):
        feature["attributes"] = tf.train.Feature(float_list=tf.train.FloatList(value=list(attributes)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec(manifest: dict, *, with_labels: bool = True, with_attributes: bool = True) -> dict:
    """``tf.io.parse_example`` spec for the shards a manifest describes."""
    import tensorflow as tf

    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "index": tf.io.FixedLenFeature([], tf.int64),
    }
    if with_labels and manifest.get("label_names"):
        spec["label"] = tf.io.FixedLenFeature([], tf.int64)
    names = manifest.get("attribute_names") or []
    if with_attributes and names:
        spec["attributes"] = tf.io.FixedLenFeature([len(names)], tf.float32)
    return spec
