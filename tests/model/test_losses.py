"""Likelihood and KL terms checked against independent formulas and Monte-Carlo estimates."""
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from facevae.model import losses


def _images(rng, shape=(4, 6, 6, 3)):
    return rng.uniform(size=shape).astype(np.float64), rng.normal(size=shape).astype(np.float64)


def test_gaussian_nll_equals_scipy_logpdf():
    x, logits = _images(np.random.default_rng(0))
    mean = 1 / (1 + np.exp(-logits))
    expected = -stats.norm.logpdf(x, loc=mean, scale=0.3).reshape(4, -1).sum(1)
    np.testing.assert_allclose(losses.gaussian_nll(x, logits, 0.3).numpy(), expected, rtol=1e-10)


def test_bernoulli_nll_equals_scipy_logpmf():
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=(3, 5, 5, 1)) > 0.5).astype(np.float64)
    logits = rng.normal(size=x.shape)
    expected = -stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).reshape(3, -1).sum(1)
    np.testing.assert_allclose(losses.bernoulli_nll(x, logits).numpy(), expected, rtol=1e-10)


def test_mse_objective_is_gaussian_with_sigma_from_r_loss_factor():
    """r * mean((x - m)^2) and the Gaussian NLL with sigma^2 = D / (2 r) differ by a constant."""
    rng = np.random.default_rng(2)
    r = 10000.0
    differences = []
    for _ in range(3):
        x, logits = _images(rng)
        dims = x[0].size
        sigma = math.sqrt(dims / (2 * r))
        differences.append(losses.gaussian_nll(x, logits, sigma).numpy() - losses.mse_objective(x, logits, r).numpy())
    differences = np.concatenate(differences)
    np.testing.assert_allclose(differences, differences[0], rtol=1e-9)
    dims = x[0].size
    np.testing.assert_allclose(differences[0], dims * (0.5 * math.log(dims / (2 * r)) + 0.5 * losses.LOG_2PI))


def test_reconstruction_loss_rejects_unknown_likelihood():
    with pytest.raises(ValueError, match="Unknown likelihood 'laplace'"):
        losses.reconstruction_loss("laplace", tf.zeros([1, 2, 2, 1]), tf.zeros([1, 2, 2, 1]))


def test_log_probs_equal_scipy():
    rng = np.random.default_rng(3)
    z, mean, log_var = rng.normal(size=(3, 5, 4))
    expected = stats.multivariate_normal.logpdf
    q = [expected(z[i], mean[i], np.diag(np.exp(log_var[i]))) for i in range(5)]
    p = [expected(z[i], np.zeros(4), np.eye(4)) for i in range(5)]
    np.testing.assert_allclose(losses.diagonal_gaussian_log_prob(z, mean, log_var).numpy(), q, rtol=1e-10)
    np.testing.assert_allclose(losses.standard_normal_log_prob(z).numpy(), p, rtol=1e-10)


def test_reparameterised_log_prob_equals_the_density_of_the_draw_with_the_same_gradients():
    rng = np.random.default_rng(7)
    mean, log_var, eps = (tf.constant(a) for a in rng.normal(size=(3, 5, 4)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([mean, log_var, eps])
        z = mean + tf.exp(log_var / 2) * eps
        direct = losses.diagonal_gaussian_log_prob(z, mean, log_var)
        from_noise = losses.reparameterised_log_prob(eps, log_var)
    np.testing.assert_allclose(from_noise.numpy(), direct.numpy(), rtol=1e-12)
    for variable in (mean, log_var, eps):
        expected = tape.gradient(direct, variable)
        got = tape.gradient(from_noise, variable)
        np.testing.assert_allclose(np.zeros_like(expected) if got is None else got, expected, atol=1e-12)


def test_reparameterised_log_prob_stays_finite_for_a_very_precise_posterior_in_float32():
    """mean 10, log_var -100: z - mean rounds to 0 and exp(-log_var) overflows; the direct formula gives NaN."""
    mean = tf.fill([2, 3], 10.0)
    log_var = tf.fill([2, 3], -100.0)
    eps = tf.constant([[0.5, -1.0, 2.0], [0.0, 1.5, -0.3]])
    z = mean + tf.exp(log_var / 2) * eps
    assert np.all(np.isnan(losses.diagonal_gaussian_log_prob(z, mean, log_var).numpy()))
    exact = -0.5 * np.sum(math.log(2 * math.pi) - 100.0 + np.square(eps.numpy().astype(np.float64)), axis=-1)
    np.testing.assert_allclose(losses.reparameterised_log_prob(eps, log_var).numpy(), exact, rtol=1e-6)


def test_closed_form_kl_agrees_with_monte_carlo():
    rng = np.random.default_rng(4)
    mean, log_var = rng.normal(size=(2, 3, 6))
    n = 200_000
    z = mean + np.exp(log_var / 2) * rng.normal(size=(n, 3, 6))
    samples = (losses.diagonal_gaussian_log_prob(z, mean, log_var) - losses.standard_normal_log_prob(z)).numpy()
    estimate, error = samples.mean(0), samples.std(0) / math.sqrt(n)
    closed = losses.gaussian_kl(mean, log_var).numpy()
    assert np.all(np.abs(estimate - closed) < 3 * error), (estimate, closed, error)


def test_gaussian_nll_with_per_channel_log_sigma_equals_scipy():
    x, logits = _images(np.random.default_rng(5))
    mean = 1 / (1 + np.exp(-logits))
    sigma = np.array([0.05, 0.3, 1.2])
    expected = -stats.norm.logpdf(x, loc=mean, scale=sigma).reshape(4, -1).sum(1)
    np.testing.assert_allclose(losses.gaussian_nll_log_sigma(x, logits, np.log(sigma)).numpy(), expected, rtol=1e-10)
    shared = losses.gaussian_nll_log_sigma(x, logits, np.log(0.3)).numpy()
    np.testing.assert_allclose(shared, losses.gaussian_nll(x, logits, 0.3).numpy(), rtol=1e-10)
    # the registry entry: the model's log sigma tensor when given, the config's fixed sigma otherwise
    entry = losses.LIKELIHOODS["gaussian"]
    config = type("C", (), {"sigma": 0.3})()
    np.testing.assert_allclose(entry.nll(x, logits, config, np.log(sigma)).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(entry.nll(x, logits, config).numpy(), shared, rtol=1e-10)
    config.sigma = "learned"
    with pytest.raises(ValueError, match="needs the model's log sigma tensor"):
        entry.nll(x, logits, config)


def test_optimal_log_sigma_is_the_batch_rms_error_without_gradient():
    x, logits = _images(np.random.default_rng(6))
    mean = 1 / (1 + np.exp(-logits))
    per_channel = np.sqrt(((x - mean) ** 2).mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(np.exp(losses.optimal_log_sigma(x, logits).numpy()), per_channel, rtol=1e-10)
    np.testing.assert_allclose(np.exp(losses.optimal_log_sigma(x, logits, shared=True).numpy()),
                               np.sqrt(((x - mean) ** 2).mean()), rtol=1e-10)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(losses.optimal_log_sigma(x, variable))
    assert tape.gradient(value, variable) is None
    # sigma* maximises the batch likelihood: a shared sigma 10% off either way gives a larger NLL
    best = float(np.exp(losses.optimal_log_sigma(x, logits, shared=True).numpy()))
    nll = [losses.gaussian_nll(x, logits, best * f).numpy().sum() for f in (0.9, 1.0, 1.1)]
    assert nll[1] < nll[0] and nll[1] < nll[2]
