"""BatchNormalization whose training-mode pass is TensorFlow's fused kernel (one op each way).

Same layer, weights and results as ``keras.layers.BatchNormalization`` (to float rounding): in
training mode ``y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta`` with the batch mean and
biased batch variance over all axes but the last, and the moving statistics updated as
``moving = momentum * moving + (1 - momentum) * batch_statistic``. Keras 3 computes this with about
ten element-wise ops forward and more backward; ``FusedBatchNormV3`` (oneDNN on CPU, cuDNN on GPU)
does it in one pass each way. Falls back to the Keras computation when the statistics must be
synchronized across replicas, for masks, or for inputs that are not 4-D channels-last.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["FusedBatchNormalization"]


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
