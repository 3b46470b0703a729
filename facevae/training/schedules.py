"""Learning-rate schedules of TrainConfig.lr_schedule, as a Keras callback driven by the optimizer's own step.

    constant: lr_t = lr
    cosine:   lr_t = lr (1 + cos(pi min(t / T, 1))) / 2,  t = optimizer step, T = epochs * steps per epoch

The step t is read from ``optimizer.iterations`` (saved in every checkpoint), so a resumed run continues the
same curve, and the base ``lr`` is the run's config value at every (re)start, so a ``--resume
--learning-rate X`` takes effect (facevae.training.trainer records the change in config.json).
"""
from __future__ import annotations

import math

import keras

__all__ = ["LearningRateSchedule", "cosine_rate"]


def cosine_rate(base: float, step: int, total_steps: int | None) -> float:
    """lr (1 + cos(pi min(step / T, 1))) / 2; ``base`` while T is not known yet (None)."""
    if not total_steps:
        return base
    progress = min(step / total_steps, 1.0)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


class LearningRateSchedule(keras.callbacks.Callback):
    """Sets ``optimizer.learning_rate`` before every batch from ``schedule`` ("constant" or "cosine").

    Args:
        schedule: "constant" or "cosine".
        base: the peak (cosine) or constant step size.
        epochs: epochs in all (T = epochs * steps_per_epoch).
        steps_per_epoch: optimizer steps per epoch; None when not known in advance: then it is taken from
            ``optimizer.iterations / initial_epoch`` on resume, else counted over the first epoch (during which
            the cosine holds ``base``; its value there is within (1 - cos(pi / epochs)) / 2 of it).
    """

    def __init__(self, schedule: str, base: float, epochs: int, steps_per_epoch: int | None = None,
                 initial_epoch: int = 0):
        super().__init__()
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"Unknown lr_schedule {schedule!r}; expected one of ['constant', 'cosine']")
        self.schedule, self.base, self.epochs = schedule, float(base), int(epochs)
        self.steps_per_epoch, self.initial_epoch = steps_per_epoch, initial_epoch
        self._counted = 0

    @property
    def total_steps(self) -> int | None:
        return self.epochs * self.steps_per_epoch if self.steps_per_epoch else None

    def _set(self) -> None:
        optimizer = self.model.optimizer
        if self.schedule == "constant":
            rate = self.base
        else:
            rate = cosine_rate(self.base, int(optimizer.iterations.numpy()), self.total_steps)
        optimizer.learning_rate.assign(rate)

    def on_train_begin(self, logs=None):
        if not self.steps_per_epoch and self.initial_epoch > 0:
            self.steps_per_epoch = int(self.model.optimizer.iterations.numpy()) // self.initial_epoch or None
        self._set()

    def on_train_batch_begin(self, batch, logs=None):
        if self.schedule != "constant":
            self._set()

    def on_train_batch_end(self, batch, logs=None):
        self._counted = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.steps_per_epoch and self._counted:
            self.steps_per_epoch = self._counted
