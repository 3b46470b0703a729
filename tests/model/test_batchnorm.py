"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes, in one kernel."""
import keras
import numpy as np
import tensorflow as tf

from facevae.model.batchnorm import FusedBatchNormalization


def _pair(channels=6):
    keras.utils.set_random_seed(1)
    plain, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    for layer in (plain, fused):
        layer.build((None, 5, 7, channels))
    gamma = np.random.default_rng(0).uniform(0.5, 2.0, channels).astype(np.float32)
    beta = np.random.default_rng(1).normal(size=channels).astype(np.float32)
    for layer in (plain, fused):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return plain, fused


def test_training_outputs_gradients_and_moving_statistics_match_keras():
    plain, fused = _pair()
    x = tf.constant(np.random.default_rng(2).normal(3.0, 2.0, (4, 5, 7, 6)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(3).normal(size=(4, 5, 7, 6)).astype(np.float32))
    results = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=2e-5)
    # the moving variance moved towards the biased batch variance (not Bessel-corrected)
    batch_var = np.var(x.numpy(), axis=(0, 1, 2))
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 + 0.1 * batch_var, rtol=1e-5)


def test_inference_and_synchronized_use_the_keras_path():
    plain, fused = _pair()
    x = tf.random.normal((3, 5, 7, 6))
    np.testing.assert_array_equal(fused(x, training=False).numpy(), plain(x, training=False).numpy())
    fused.synchronized = plain.synchronized = True
    np.testing.assert_allclose(fused(x, training=True).numpy(), plain(x, training=True).numpy(), rtol=1e-6, atol=1e-6)
