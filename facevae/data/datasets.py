"""Training data for a run: the built-in faces in memory, or shards made by ``data_prep``.

``training_data(config)`` returns ``TrainingData`` with a training and a validation
``tf.data.Dataset`` of float32 images [B, S, S, C] in [0, 1], plus a small numpy batch
of held-out images for sample grids and metrics.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from facevae.config import DataConfig, RunConfig

__all__ = ["DataUnavailable", "TrainingData", "check_batches", "shard_channels", "training_data", "synthetic_datasets", "shard_cache_dir",
           "resolve_shards"]

class DataUnavailable(ValueError):
    """The data a config asks for is missing or unusable; the message says how to prepare it."""


_FEW_STEPS = 10  # an epoch of fewer steps than this is announced (epoch_note)


@dataclass
class TrainingData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    preview: np.ndarray  # float32 [n, S, S, C] held-out images in [0, 1]
    mean_image: np.ndarray  # float32 [S, S, C], mean of the training images (a baseline predictor)
    train_images: int | None = None  # images in the training split, when known
    batch_size: int | None = None  # the global batch the training split is cut into (whole batches only)
    aligned_train: tf.data.Dataset | None = None  # the training split without --shift, for --shift-until < 1

    def epoch_note(self, steps_per_epoch: int | None = None) -> str | None:
        """One line when an epoch is a pass of fewer than a few steps: how many, and the images dropped by
        ``batch(drop_remainder=True)`` (a different few each epoch, the order being reshuffled). None otherwise,
        and with ``steps_per_epoch`` set (the iterator then runs on across passes, dropping nothing per epoch)."""
        if steps_per_epoch is not None or not self.train_images or not self.batch_size:
            return None
        steps, left = divmod(self.train_images, self.batch_size)
        if steps >= _FEW_STEPS:
            return None
        note = (f"{self.train_images} training images make {steps} step{'' if steps == 1 else 's'} of "
                f"{self.batch_size} per epoch")
        if left:
            note += (f"; the last {left} images of each shuffled pass are dropped (batches are whole; a lower "
                     "--batch-size keeps more)")
        return note


def check_batches(train_images: int, batch_size: int, where: str, count_flag: str | None = None) -> None:
    """DataUnavailable (one line, before training) when the training split is smaller than one batch: an epoch
    would have no step. ``where`` names the data, ``count_flag`` the flag that sets its size, if any."""
    if train_images >= batch_size:
        return
    fix = f"pass --batch-size {train_images} or less" + (f", or a larger {count_flag}" if count_flag else "")
    raise DataUnavailable(f"{where}: {train_images} training images, fewer than one batch "
                          f"(--batch-size {batch_size}): an epoch would have no step; {fix}")


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _to_float(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 255.0


def synthetic_datasets(data: DataConfig, batch_size: int, seed: int) -> TrainingData:
    """Built-in procedural faces: ``train_count`` for training, the next ``validation_count`` held out."""
    from data_prep.synthetic import generate_faces

    size, channels = data.image_size, data.channels
    needed, memory = (data.train_count + data.validation_count) * size * size * channels, _physical_memory()
    if memory and needed > memory:
        raise DataUnavailable(f"--train-count {data.train_count}: {needed / 2**30:,.0f} GiB of {size} px faces "
                              f"do not fit in memory ({memory / 2**30:.0f} GiB here); pass a smaller --train-count")
    check_batches(data.train_count, batch_size, f"--train-count {data.train_count}", "--train-count")
    train, _ = generate_faces(data.train_count, size=size, seed=seed, channels=channels)
    held_out, _ = generate_faces(
        data.validation_count, size=size, seed=seed, channels=channels, start=data.train_count
    )
    train_ds = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation_ds = (
        tf.data.Dataset.from_tensor_slices(held_out)
        .batch(batch_size)
        .map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    mean_image = train.astype(np.float64).mean(axis=0) / 255.0
    return TrainingData(train_ds, validation_ds, held_out[:64].astype(np.float32) / 255.0, mean_image.astype(np.float32),
                        len(train), batch_size)


def shard_channels(data_dir: str) -> int | None:
    """The channels of the images in ``data_dir`` when it holds shards (from their manifest), else None."""
    from data_prep.manifest import is_shard_dir, read_manifest

    if not data_dir or not is_shard_dir(data_dir):
        return None
    shape = read_manifest(data_dir)["image_shape"]
    return int(shape[2])


def shard_cache_dir(data: DataConfig) -> str:
    """Where shards of raw ``data.data_dir`` are prepared on first use.

    ``$FACEVAE_CACHE`` (default ``~/.cache/facevae``) ``/shards/<folder>-<hash of its path>-<dataset>-<size>px``,
    then ``-grey`` for one channel and ``-attributes-<hash of the table's path>`` with ``data.attributes``:
    never beside the raw data, which may be read-only or shared.
    """
    root = os.environ.get("FACEVAE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "facevae"))
    source = os.path.abspath(data.data_dir)
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    name = f"{os.path.basename(source.rstrip('/'))}-{digest}-{data.dataset}-{data.image_size}px"
    if data.channels == 1:
        name += "-grey"
    if data.attributes:
        name += "-attributes-" + hashlib.sha1(os.path.abspath(data.attributes).encode()).hexdigest()[:8]
    return os.path.join(root, "shards", name)


def resolve_shards(data: DataConfig) -> str:
    """The shard directory for ``data.data_dir``: the folder itself when it holds shards, else shards
    prepared from the raw data into ``shard_cache_dir(data)`` on first use (and reused afterwards).

    Raises DataUnavailable, with the data_prep command to run, when there is no ``data_dir``.
    """
    from data_prep.sources import missing_data_message, source

    if not data.data_dir or not tf.io.gfile.exists(data.data_dir):
        raise DataUnavailable(missing_data_message(data.dataset, data.data_dir))
    from data_prep.manifest import is_shard_dir
    from data_prep.prepare import prepare_dataset

    if is_shard_dir(data.data_dir):
        if data.attributes:
            raise DataUnavailable(f"--data-dir {data.data_dir} holds prepared shards; --attributes {data.attributes} "
                                  "goes with a raw image folder (shards get their attributes when prepared: "
                                  "python -m data_prep folder|ffhq --attributes)")
        return data.data_dir
    shard_dir = shard_cache_dir(data)
    if is_shard_dir(shard_dir):
        print(f"{data.data_dir} holds raw data; using the shards prepared from it in {shard_dir}")
    else:
        print(f"{data.data_dir} holds raw data; preparing shards into {shard_dir} (first use only)")
        kind = data.dataset
        size = data.image_size if source(kind).resizable else None
        options = {"channels": data.channels, "attributes": data.attributes} if source(kind).resizable else {}
        prepare_dataset(kind, data.data_dir, shard_dir, size=size, **options)
    return shard_dir


def _shard_datasets(data: DataConfig, batch_size: int, seed: int) -> TrainingData:
    from data_prep import pipeline
    from data_prep.manifest import read_manifest

    shard_dir = resolve_shards(data)
    manifest = read_manifest(shard_dir)
    height, width, channels = manifest["image_shape"]
    if height != data.image_size:
        raise DataUnavailable(
            f"shards in {shard_dir} hold {height} px images but --image-size {data.image_size} was asked; "
            f"pass --image-size {height}, or prepare shards with python -m data_prep ... --size {data.image_size}")
    if channels != data.channels:
        raise DataUnavailable(
            f"shards in {shard_dir} hold {channels}-channel ({'grey' if channels == 1 else 'RGB'}) images but "
            f"--channels {data.channels} was asked; pass --channels {channels} (or leave --channels out: the "
            "manifest's is the default)")
    splits = manifest["splits"]
    held_out = next((s for s in ("validation", "test") if splits.get(s)), None)
    if held_out is None:
        raise DataUnavailable(f"shards in {shard_dir} have no validation or test split")
    check_batches(splits.get("train", 0), batch_size, f"shards in {shard_dir}")
    binarize = data.binarize
    train = pipeline.load(
        shard_dir, "train", batch_size, training=True, flip=data.flip, shift=data.shift, binarize=binarize,
        seed=seed
    )
    aligned = None
    if data.shift and data.shift_until < 1:
        aligned = pipeline.load(shard_dir, "train", batch_size, training=True, flip=data.flip, binarize=binarize,
                                seed=seed)
    validation = pipeline.load(shard_dir, held_out, batch_size, training=False, binarize=binarize, seed=seed)
    preview = np.concatenate([b.numpy() for b in validation.take(max(1, 64 // batch_size + 1))])[:64]
    mean_image = _mean_image(pipeline.load(shard_dir, "train", 256, training=False, seed=seed).take(40))
    return TrainingData(train, validation, preview, mean_image, splits.get("train", 0), batch_size, aligned)


def _mean_image(dataset: tf.data.Dataset) -> np.ndarray:
    total, count = None, 0
    for batch in dataset:
        batch = batch.numpy().astype(np.float64)
        total = batch.sum(0) if total is None else total + batch.sum(0)
        count += len(batch)
    return (total / count).astype(np.float32)


def training_data(config: RunConfig) -> TrainingData:
    """The datasets ``config.data`` describes, batched by ``config.train.batch_size``."""
    if config.data.dataset == "synthetic":
        return synthetic_datasets(config.data, config.train.batch_size, config.train.seed)
    return _shard_datasets(config.data, config.train.batch_size, config.train.seed)
