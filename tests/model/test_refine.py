"""facevae.model.refine and FaceVAE.code: Adam on each face's own negative log joint, checked as arithmetic."""
import numpy as np
import pytest
import tensorflow as tf

from tiny_config import tiny_model_config
from facevae.model.refine import ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, refine_codes
from facevae.model.vae import FaceVAE


def _quadratic(scales, centres):
    """L_b(z) = sum_j scales_bj (z_bj - centres_bj)^2 / 2 per row, and its gradient."""
    scales, centres = np.asarray(scales, np.float64), np.asarray(centres, np.float64)
    loss = lambda z: 0.5 * tf.reduce_sum(tf.constant(scales, tf.float32) * tf.square(z - centres.astype(np.float32)), -1)
    return loss, lambda z: scales * (z - centres)


def _numpy_adam(gradient, z, steps, rate):
    m, v = np.zeros_like(z), np.zeros_like(z)
    for t in range(1, steps + 1):
        g = gradient(z)
        m = ADAM_BETA1 * m + (1 - ADAM_BETA1) * g
        v = ADAM_BETA2 * v + (1 - ADAM_BETA2) * g * g
        z = z - rate * (m / (1 - ADAM_BETA1 ** t)) / (np.sqrt(v / (1 - ADAM_BETA2 ** t)) + ADAM_EPSILON)
    return z


def test_refine_codes_is_adam_on_each_row():
    rng = np.random.default_rng(0)
    scales, centres, start = rng.uniform(0.5, 3000, (3, 5)), rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    loss, gradient = _quadratic(scales, centres)
    refined = refine_codes(loss, start.astype(np.float32), steps=7, rate=0.05).numpy()
    np.testing.assert_allclose(refined, _numpy_adam(gradient, start, 7, 0.05), atol=1e-5)
    # Adam's first step moves every coordinate by the step size, whatever the loss's scale.
    first = refine_codes(loss, start.astype(np.float32), steps=1, rate=0.05).numpy()
    np.testing.assert_allclose(np.abs(first - start), 0.05, rtol=1e-4)


def test_rows_do_not_interact_and_a_graph_gives_the_same():
    rng = np.random.default_rng(1)
    scales, centres, start = rng.uniform(0.5, 5, (4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3)).astype(np.float32)
    loss, _ = _quadratic(scales, centres)
    together = refine_codes(loss, start, steps=5, rate=0.1).numpy()
    for b in range(4):
        alone, _ = _quadratic(scales[b:b + 1], centres[b:b + 1])
        np.testing.assert_allclose(together[b], refine_codes(alone, start[b:b + 1], 5, 0.1).numpy()[0], atol=1e-6)
    graph = tf.function(lambda z: refine_codes(loss, z, 5, 0.1))
    np.testing.assert_allclose(graph(tf.constant(start)).numpy(), together, atol=1e-6)


def test_zero_steps_return_the_start_and_bad_arguments_are_refused():
    start = np.ones((2, 3), np.float32)
    loss, _ = _quadratic(np.ones((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(refine_codes(loss, start, 0, 0.1).numpy(), start)
    with pytest.raises(ValueError, match="steps >= 0 and rate > 0"):
        refine_codes(loss, start, -1, 0.1)
    with pytest.raises(ValueError, match="steps >= 0 and rate > 0"):
        refine_codes(loss, start, 3, 0.0)


def test_face_codes_lower_every_faces_negative_log_joint_and_reconstruct_decodes_them():
    model = FaceVAE(tiny_model_config(sigma="learned", refine_steps=20, refine_rate=0.05), seed=0)
    images = np.random.default_rng(2).uniform(size=(4, 32, 32, 3)).astype(np.float32)
    encoded = model.encode(images)[2]
    refined = model.code(images)
    before = model.negative_log_joint(images, encoded).numpy()
    after = model.negative_log_joint(images, refined).numpy()
    assert np.all(after < before), (before, after)
    np.testing.assert_array_equal(model.code(images, refine_steps=0).numpy(), encoded.numpy())
    np.testing.assert_allclose(model.reconstruct(images).numpy(), model.decode(refined).numpy(), atol=1e-6)
    # the joint: -log N(x; x_hat, sigma^2) summed over pixels plus ||z||^2 / 2 (numpy, from the decoder's output)
    sigma = np.exp(model.log_sigma.numpy())
    x_hat = model.decode(refined).numpy()
    gaussian = 0.5 * ((images - x_hat) / sigma) ** 2 + np.log(sigma) + 0.5 * np.log(2 * np.pi)
    expected = gaussian.sum(axis=(1, 2, 3)) + 0.5 * np.sum(refined.numpy() ** 2, -1)
    np.testing.assert_allclose(after, expected, rtol=1e-4)


def test_refine_settings_are_validated():
    with pytest.raises(ValueError, match="refine_steps must be an integer >= 0"):
        tiny_model_config(refine_steps=-1).validate()
    with pytest.raises(ValueError, match="refine_rate must be positive"):
        tiny_model_config(refine_rate=0.0).validate()
