"""BatchNormalization whose training-mode pass is TensorFlow's fused kernel (one op each way).

Same layer, weights and results as ``keras.layers.BatchNormalization`` (to float rounding): in
training mode ``y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta`` with the batch mean and
biased batch variance over all axes but the last, and the moving statistics updated as
``moving = momentum * moving + (1 - momentum) * batch_statistic``. Keras 3 computes this with about
ten element-wise ops forward and more backward; ``FusedBatchNormV3`` (oneDNN on CPU, cuDNN on GPU)
does it in one pass each way. Falls back to the Keras computation when the statistics must be
synchronized across replicas, for masks, or for inputs that are not 4-D channels-last.

``precise_batch_norm`` re-estimates every BatchNorm layer's moving statistics of a model from N batches (the
"precise BN" step), which the trainer runs before each validation pass and before export.
"""
from __future__ import annotations

from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

__all__ = ["FusedBatchNormalization", "batch_norm_layers", "precise_batch_norm"]


@keras.saving.register_keras_serializable(package="facevae")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (same arguments) with a fused training-mode kernel."""

    def call(self, inputs, training=None, mask=None):
        fusable = (
            training and self.trainable and mask is None and not self.synchronized and not self.renorm
            and len(inputs.shape) == 4 and self.axis in (-1, 3) and self.scale and self.center
        )
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32),
            epsilon=self.epsilon, data_format="NHWC", is_training=True,
        )
        # The kernel returns the Bessel-corrected variance; the moving average uses the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


def batch_norm_layers(model: keras.Layer) -> list:
    """Every BatchNormalization layer inside ``model`` (nested models included)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def precise_batch_norm(model: keras.Layer, batches: Iterable, forward: Callable) -> int:
    """Replace each BatchNorm layer's moving statistics by the population statistics of N batches; returns N.

    ``forward(batch)`` runs the model in training mode (each layer normalises with its batch statistics, as in a
    training step). For batch b and layer l, the batch mean m_b and biased variance v_b are read back from the
    moving-average update (the moving statistics are zeroed before the pass, so moving = (1 - momentum) *
    statistic); the new statistics pool all N batches (equal batch sizes):

        mean = (1/N) sum_b m_b,    var = (1/N) sum_b v_b + (1/N) sum_b m_b^2 - mean^2

    (Wu and Johnson 2021, "Rethinking 'Batch' in BatchNorm": moving averages lag weights that are still
    changing, which can leave a freshly trained model far worse than its training loss says). A batch whose
    statistics are not finite in some layer is skipped; with N = 0 every layer keeps its old statistics.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    sums = [[0.0, 0.0, 0.0] for _ in layers]
    count = 0
    for batch in batches:
        for layer in layers:
            layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(tf.zeros_like(layer.moving_variance))
        forward(batch)
        statistics = [(layer.moving_mean.numpy().astype(np.float64) / (1.0 - layer.momentum),
                       layer.moving_variance.numpy().astype(np.float64) / (1.0 - layer.momentum)) for layer in layers]
        if not all(np.all(np.isfinite(m)) and np.all(np.isfinite(v)) for m, v in statistics):
            continue  # bad data or diverged weights must not poison the statistics
        for (mean, variance), total in zip(statistics, sums):
            total[0] = total[0] + mean
            total[1] = total[1] + variance
            total[2] = total[2] + mean * mean
        count += 1
    for layer, total, (old_mean, old_variance) in zip(layers, sums, saved):
        if count == 0:
            layer.moving_mean.assign(old_mean)
            layer.moving_variance.assign(old_variance)
            continue
        mean = total[0] / count
        variance = total[1] / count + total[2] / count - mean * mean
        layer.moving_mean.assign(mean.astype(old_mean.dtype))
        layer.moving_variance.assign(np.clip(variance, 0.0, None).astype(old_variance.dtype))
    return count
