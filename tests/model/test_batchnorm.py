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


def test_precise_batch_norm_sets_the_population_statistics_of_the_batches():
    """For a BatchNorm layer fed the data directly, the re-estimated statistics are the mean and biased variance
    of all pixels of all batches, whatever the moving averages were; non-finite batches are skipped."""
    from facevae.model.batchnorm import precise_batch_norm

    inputs = keras.Input((5, 7, 3))
    layer = FusedBatchNormalization(momentum=0.9)
    model = keras.Model(inputs, layer(inputs))
    layer.moving_mean.assign([9.0, 9.0, 9.0])
    rng = np.random.default_rng(4)
    batches = [rng.normal(loc=b, scale=1.0 + b, size=(4, 5, 7, 3)).astype(np.float32) for b in range(5)]
    forward = lambda x: model(x, training=True)  # noqa: E731
    assert precise_batch_norm(model, batches, forward) == 5
    everything = np.concatenate(batches).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(layer.moving_mean.numpy(), everything.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), everything.var(0), rtol=1e-5)
    assert precise_batch_norm(model, [], forward) == 0
    np.testing.assert_allclose(layer.moving_mean.numpy(), everything.mean(0), rtol=1e-5, atol=1e-5)  # unchanged
    poisoned = batches[0].copy()
    poisoned[0, 0, 0, 0] = np.nan
    assert precise_batch_norm(model, [poisoned] + batches, forward) == 5  # skipped
    np.testing.assert_allclose(layer.moving_mean.numpy(), everything.mean(0), rtol=1e-5, atol=1e-5)
    assert precise_batch_norm(model, [poisoned], forward) == 0  # nothing usable: the old statistics stay
    np.testing.assert_allclose(layer.moving_variance.numpy(), everything.var(0), rtol=1e-5)
