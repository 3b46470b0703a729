"""``load``: a tf.data pipeline from a shard directory (local path, gs:// or s3:// URI) to batches.

Order of operations, chosen so that the expensive work happens once per batch and in parallel:

    shard files -> (shard by file per input pipeline) -> (shuffle files) -> interleave(TFRecordDataset)
    -> (cache serialized records) -> (shuffle) -> (repeat) -> batch -> parse_example + decode_raw
    -> float32 / 255 -> (random horizontal flip) -> (dynamic binarization) -> prefetch(AUTOTUNE)

Raw-pixel shards are parsed a whole batch at a time (one ``parse_example`` and one ``decode_raw``
per batch); PNG shards are decoded per image in parallel before batching. Randomness (file order,
shuffle, flips, binarization) follows ``seed``: flips and binarization use stateless ops seeded
from ``tf.data.Dataset.random(seed)``. When training, every pass over the dataset (every epoch,
whether by ``repeat`` or by Keras re-iterating it) draws new flips and binarizations; when not
training, every pass gives the same batches.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from data_prep.errors import DataError
from data_prep.manifest import read_manifest
from data_prep.records import feature_spec
from data_prep.verify import verify_shards

__all__ = ["load", "BINARIZE_MODES"]

BINARIZE_MODES = (None, "dynamic")
_SHUFFLE_BYTES = 2**30
AUTOTUNE = tf.data.AUTOTUNE


def _check(manifest: dict, path: str, split: str, batch_size: int, binarize, with_labels, with_attributes) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if binarize not in BINARIZE_MODES:
        raise ValueError(f"Unknown binarize {binarize!r}; expected one of {list(BINARIZE_MODES)}")
    if split not in manifest["splits"]:
        raise DataError(f"{path}: no split {split!r}; expected one of {sorted(manifest['splits'])}")
    if manifest["splits"][split] == 0:
        raise DataError(f"{path}: split {split!r} holds no examples; choose another split or prepare more data")
    if with_labels and not manifest.get("label_names"):
        raise DataError(f"{path}: these shards have no labels (source {manifest['source']['kind']}); drop with_labels")
    if with_attributes and not manifest.get("attribute_names"):
        raise DataError(f"{path}: these shards have no attributes; prepare them with --attributes FILE")


def _buffer_size(manifest: dict, requested: int) -> int:
    """``requested`` records, at most ~1 GiB of them (10,000 raw 256 px images would be 2 GiB)."""
    record_bytes = max(1, int(np.prod(manifest["image_shape"])) // (1 if manifest["encoding"] == "raw" else 2))
    return max(1, min(requested, _SHUFFLE_BYTES // record_bytes))


def _parser(manifest: dict, with_labels: bool, with_attributes: bool, batched: bool):
    """Function from serialized example(s) to a dict: uint8 ``image`` and, when asked, ``label``, ``attributes``."""
    height, width, channels = manifest["image_shape"]
    spec = feature_spec(manifest, with_labels=with_labels, with_attributes=with_attributes)
    raw = manifest["encoding"] == "raw"

    def parse(serialized):
        features = (tf.io.parse_example if batched else tf.io.parse_single_example)(serialized, spec)
        if raw:
            images = tf.io.decode_raw(features["image"], tf.uint8)
        else:
            images = tf.io.decode_png(features["image"], channels=channels)
        images = tf.reshape(images, ([-1] if batched else []) + [height, width, channels])
        images.set_shape(serialized.shape.concatenate([height, width, channels]))  # keep a static batch size
        features["image"] = images
        del features["index"]
        return features

    return parse


def _mirror_some(images: tf.Tensor, mirror: tf.Tensor) -> tf.Tensor:
    """Images [B, H, W, C] with those where ``mirror`` [B] is True reversed left-right.

    Gathers the chosen images, reverses them as a [N*H, W, C] tensor (the fast path of
    tf.reverse) and scatters them back: several times faster on CPU than a broadcast tf.where.
    """
    chosen = tf.cast(tf.where(mirror)[:, 0], tf.int32)
    picked = tf.gather(images, chosen)
    width, channels = images.shape[2], images.shape[3]
    mirrored = tf.reshape(tf.reverse(tf.reshape(picked, [-1, width, channels]), axis=[1]), tf.shape(picked))
    return tf.tensor_scatter_nd_update(images, chosen[:, None], mirrored)


def _outputs(manifest: dict, with_labels: bool, with_attributes: bool):
    names = manifest.get("attribute_names") or []

    def structure(images, features):
        targets = {}
        if with_labels:
            targets["label"] = tf.cast(features["label"], tf.int32)
        if with_attributes:
            targets.update({name: features["attributes"][..., j] for j, name in enumerate(names)})
        if not targets:
            return images
        if with_labels and not with_attributes:
            return images, targets["label"]
        return images, targets

    return structure


def _shift_each(images: tf.Tensor, offsets: tf.Tensor, shift: int) -> tf.Tensor:
    """Images [B, H, W, C] translated by ``offsets`` [B, 2] (int32 (dy, dx), each in [-shift, shift]) pixels.

    output[b, i, j] = padded[b, i + shift - dy_b, j + shift - dx_b], padded = images reflect-padded by ``shift``
    on every side: the content moves down by dy and right by dx, and the uncovered border is the mirror
    image of the edge (no black bars).
    """
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="REFLECT")
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows = tf.range(height)[None, :] + shift - offsets[:, :1]
    columns = tf.range(width)[None, :] + shift - offsets[:, 1:]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), columns, axis=2, batch_dims=1)


def load(
    path_or_uri: str,
    split: str,
    batch_size: int,
    *,
    training: bool = True,
    shuffle_buffer: int = 10_000,
    repeat: bool = False,
    cache: bool = False,
    flip: bool = False,
    shift: int = 0,
    binarize: str | None = None,
    with_labels: bool = False,
    with_attributes: bool = False,
    seed: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    drop_remainder: bool | None = None,
    cycle_length: int | None = None,
    block_length: int = 1,
    verify="auto",
) -> tf.data.Dataset:
    """Batches of float32 images ``[B, H, W, C]`` in [0, 1] from the shards of ``split``.

    Yields ``images``; ``(images, labels)`` with ``with_labels`` (int32 ``[B]``);
    ``(images, {name: float32 [B]})`` with ``with_attributes`` (NaN = unknown); both give
    ``(images, {"label": ..., name: ...})``. ``training`` shuffles files and examples and, unless
    ``drop_remainder`` says otherwise, drops the last partial batch; the shuffle buffer holds
    ``shuffle_buffer`` serialized records but never more than ~1 GiB of them. ``flip`` mirrors each image
    left-right with probability 1/2; ``shift`` > 0 translates each image by a uniform random integer
    number of pixels in [-shift, shift] down and across, independently (reflect-padded, ``_shift_each``;
    at most half the image size); ``binarize="dynamic"`` replaces each pixel value p by a
    Bernoulli(p) sample drawn afresh every time (dynamic binarization of MNIST). Under
    ``tf.distribute`` pass ``input_context``: each input pipeline reads ``files[id::num]`` and
    batches ``input_context.get_per_replica_batch_size(batch_size)`` (``batch_size`` is global).

    Before anything is read, the manifest is validated (``ManifestError``) and the split's shards
    are checked against it (``ShardError``, see ``data_prep.verify``): every shard's size always;
    its SHA-256 with ``verify=True``, never with ``verify=False``, and with ``"auto"`` (default)
    once per new or changed shard file. Both errors are ``DataError`` subclasses whose one-line
    message names the file and the fix.
    """
    manifest = read_manifest(path_or_uri)
    height = manifest["image_shape"][0] if isinstance(manifest.get("image_shape"), list) else None
    if not isinstance(shift, int) or shift < 0 or (height and 2 * shift > height):
        raise ValueError(f"shift must be an integer in [0, image size / 2]. Received: shift={shift!r}")
    _check(manifest, path_or_uri, split, batch_size, binarize, with_labels, with_attributes)
    files = verify_shards(path_or_uri, manifest, split, checksums=verify)
    drop_remainder = training if drop_remainder is None else drop_remainder
    deterministic = not training
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:  # fewer files than pipelines: every pipeline reads everything and keeps its share
            shard_records, deterministic = True, True
    if training and len(files) > 1:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), cycle_length or 16),
        block_length=block_length,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    if shard_records:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if cache:
        dataset = dataset.cache()
    if training and shuffle_buffer > 1:
        dataset = dataset.shuffle(_buffer_size(manifest, shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    batched = manifest["encoding"] == "raw"
    parse = _parser(manifest, with_labels, with_attributes, batched)
    if batched:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # New flips and binarizations every epoch when training, also when Keras re-iterates a finite
    # dataset each epoch; the same ones on every pass when evaluating.
    noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=training)
    dataset = tf.data.Dataset.zip((dataset, noise))
    structure = _outputs(manifest, with_labels, with_attributes)

    def finish(features, random_int):
        images = features["image"]
        flip_seed, binarize_seed = tf.unstack(tf.random.experimental.stateless_split(tf.stack([random_int, seed]), 2))
        if flip:
            images = _mirror_some(images, tf.random.stateless_uniform(tf.shape(images)[:1], flip_seed) < 0.5)
        if shift:  # its own stream, so that flips and binarizations stay those of earlier versions
            shift_seed = tf.random.experimental.stateless_fold_in(flip_seed, 1)
            offsets = tf.random.stateless_uniform([tf.shape(images)[0], 2], shift_seed, -shift, shift + 1, tf.int32)
            images = _shift_each(images, offsets, shift)
        images = tf.cast(images, tf.float32) * (1.0 / 255.0)
        if binarize == "dynamic":
            images = tf.cast(tf.random.stateless_uniform(tf.shape(images), binarize_seed) < images, tf.float32)
        return structure(images, features)

    dataset = dataset.map(finish, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    options = tf.data.Options()
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(AUTOTUNE)
