"""The epoch loop of facevae.training.trainer.fit: Keras callbacks around a distributed training step.

``EpochLoop.run`` drives the callbacks (progress bar, CSV, TensorBoard, checkpoints, user callbacks)
the way ``keras.Model.fit`` does, around the ``tf.function`` steps of facevae.training.distributed, which
work under every tf.distribute strategy. Step results are global sums (see facevae.training.distributed);
logs are means per example.
"""
from __future__ import annotations

import tensorflow as tf

from facevae.model.objective import LOSS_TERMS

__all__ = ["EpochLoop", "distribute_dataset", "evaluate"]


def distribute_dataset(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """Split each global batch across replicas; across workers, shard by file (by element for in-memory data)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _means(sums: dict) -> dict:
    count = max(float(sums["count"]), 1.0)
    return {name: float(sums[name]) / count for name in LOSS_TERMS}


def evaluate(step, dataset) -> dict:
    """Example-weighted means of the ELBO terms over a distributed dataset."""
    totals: dict = {}
    for index, batch in enumerate(dataset):
        for name, value in step(batch, tf.constant(index, tf.int64)).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    return _means(totals)


class EpochLoop:
    """The epoch loop: Keras callbacks (progress bar, CSV, TensorBoard, ours) around a distributed step.

    As in ``model.fit``, with steps_per_epoch set one iterator runs on across epochs (and a new pass
    starts when the data ends, so every epoch has steps_per_epoch steps); logs are running means of
    the batch means; validation logs get a ``val_`` prefix. ``before_validation()``, if given, runs before
    each validation pass (the trainer re-estimates BatchNorm statistics there). ``aligned_from`` = (epoch,
    dataset): from that epoch on (counted from 0) train on ``dataset`` instead (``--shift-until``);
    ``train_data`` is the (undistributed) dataset the current epoch trains on.
    """

    def __init__(self, model, strategy, train, validation, train_step, eval_step, steps_per_epoch,
                 before_validation=None, aligned_from=None):
        self.model, self.strategy, self.steps = model, strategy, steps_per_epoch
        self.before_validation = before_validation  # called before each validation pass (precise BatchNorm)
        self.validation = distribute_dataset(strategy, validation)
        self.train_step, self.eval_step = train_step, eval_step
        self.aligned_from = aligned_from
        self._use_train(train)

    def _use_train(self, train) -> None:
        """Train on ``train`` from the next batch on, starting a new pass over it."""
        self.train_data, self.train, self.iterator = train, distribute_dataset(self.strategy, train), None

    def _batches(self):
        """One pass over the data, or exactly ``steps`` batches from an iterator that runs on across
        epochs and starts a new pass over the data when the current one ends."""
        if self.steps is None:
            yield from self.train
            return
        for _ in range(self.steps):
            batch = self._next()
            if batch is None:  # an empty dataset
                return
            yield batch

    def _next(self):
        for _ in range(2):
            if self.iterator is None:
                self.iterator = iter(self.train)
            try:
                return next(self.iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                self.iterator = None
        return None

    def run(self, callbacks, initial_epoch: int, epochs: int, guard) -> None:
        """Epochs initial_epoch .. epochs - 1; no validation once ``guard.where`` marks a non-finite loss."""
        model = self.model
        model.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            if self.aligned_from is not None and epoch >= self.aligned_from[0] \
                    and self.train_data is not self.aligned_from[1]:
                self._use_train(self.aligned_from[1])
            callbacks.on_epoch_begin(epoch)
            totals, logs = {}, {}
            for index, batch in enumerate(self._batches()):
                callbacks.on_train_batch_begin(index)
                batch_means = _means(self.train_step(batch))
                for name, value in batch_means.items():
                    totals[name] = totals.get(name, 0.0) + value
                logs = {name: value / (index + 1) for name, value in totals.items()}
                callbacks.on_train_batch_end(index, logs)
                if model.stop_training:
                    break
            if guard.where is None:
                if self.before_validation is not None:
                    self.before_validation()
                logs.update({f"val_{k}": v for k, v in evaluate(self.eval_step, self.validation).items()})
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callbacks.on_train_end(logs)
