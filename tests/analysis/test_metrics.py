"""facevae.analysis.metrics as math: the IW-NLL bound against a closed-form marginal, its order and limit, and the rest."""
import math

import numpy as np
import pytest
import tensorflow as tf

from facevae.analysis import metrics
from facevae.config import ModelConfig
from facevae.model.vae import FaceVAE


class LinearGaussian:
    """p(z) = N(0, I_d), p(x|z) = N(A z + c, s^2 I_D): the marginal p(x) = N(c, A A^T + s^2 I) is known.

    It offers the two methods metrics calls on a FaceVAE (log_importance_weights, elbo_terms). The
    proposal is the exact posterior N(m, Sigma_post) when ``exact``, else the imperfect
    N(m + shift, scale^2 diag(Sigma_post)).
    """

    def __init__(self, d=2, D=3, s=0.5, shift=0.0, scale=1.0, exact=False, seed=0):
        rng = np.random.default_rng(seed)
        self.A = rng.normal(size=(D, d))
        self.c = rng.normal(size=D)
        self.s, self.shift, self.scale, self.exact = s, shift, scale, exact
        precision = np.eye(d) + self.A.T @ self.A / s**2
        self.post_cov = np.linalg.inv(precision)
        self.rng = np.random.default_rng(seed + 1)

    def exact_nll(self, x):
        cov = self.A @ self.A.T + self.s**2 * np.eye(len(self.c))
        diff = x - self.c
        _, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff)
        return 0.5 * (len(self.c) * math.log(2 * math.pi) + logdet + quad)

    def _proposal(self, x):
        mean = (x - self.c) @ self.A @ self.post_cov.T / self.s**2 + self.shift  # [B, d]
        cov = self.post_cov if self.exact else np.diag(np.diag(self.post_cov))
        return mean, cov * self.scale**2

    def log_importance_weights(self, x, num_samples):
        x = np.asarray(x, np.float64)
        mean, cov = self._proposal(x)
        d = mean.shape[1]
        chol = np.linalg.cholesky(cov)
        z = mean[None] + self.rng.standard_normal((num_samples, len(x), d)) @ chol.T
        diff_z = z - mean[None]
        cov_inv = np.linalg.inv(cov)
        log_q = -0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1]
                        + np.einsum("sbi,ij,sbj->sb", diff_z, cov_inv, diff_z))
        log_prior = -0.5 * (d * math.log(2 * math.pi) + np.sum(z**2, -1))
        residual = x[None] - (z @ self.A.T + self.c)
        D = len(self.c)
        log_lik = -0.5 * (D * math.log(2 * math.pi * self.s**2) + np.sum(residual**2, -1) / self.s**2)
        return tf.constant(log_lik + log_prior - log_q)

    def elbo_terms(self, x, training=False):
        return {"loss": -self.log_importance_weights(x, 1)[0]}


def data(model, n=4, seed=3):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.A.shape[1]))
    return z @ model.A.T + model.c + model.s * rng.standard_normal((n, len(model.c)))


def test_streaming_logsumexp_equals_one_pass_also_for_huge_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(37, 5)) * 300.0 - 2000.0  # exp underflows in float64 without the running max
    chunks = [values[:3], values[3:20], values[20:21], values[21:]]
    expected = tf.reduce_logsumexp(tf.constant(values), axis=0).numpy()
    np.testing.assert_allclose(metrics.streaming_logsumexp(chunks).numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least one chunk"):
        metrics.streaming_logsumexp([])


def test_iw_nll_does_not_depend_on_the_chunk_size():
    table = np.random.default_rng(1).normal(size=(50, 3))

    def source():
        position = [0]

        def draw(n):
            out = table[position[0] : position[0] + n]
            position[0] += n
            return tf.constant(out)

        return draw

    reference = -(tf.reduce_logsumexp(table, axis=0).numpy() - math.log(50))
    for chunk in (1, 7, 50, 64):
        np.testing.assert_allclose(metrics.iw_nll_from_log_weights(source(), 50, chunk).numpy(), reference, rtol=1e-12)
    with pytest.raises(ValueError, match="num_samples=0"):
        metrics.iw_nll_from_log_weights(source(), 0)


def test_exact_posterior_gives_the_exact_marginal():
    model = LinearGaussian(exact=True)
    x = data(model)
    nll = metrics.importance_weighted_nll(model, x, num_samples=3, chunk=2).numpy()
    np.testing.assert_allclose(nll, model.exact_nll(x), atol=1e-4)  # float32 input rounding only


def test_imperfect_proposal_converges_to_the_exact_marginal_within_005_nats():
    model = LinearGaussian(shift=0.3, scale=1.3)
    x = data(model)
    nll = metrics.importance_weighted_nll(model, x, num_samples=5000, chunk=1000).numpy()
    exact = model.exact_nll(x)
    assert np.all(np.abs(nll - exact) <= 0.05), (nll, exact)
    # ... and the one-sample negative ELBO is strictly worse (above) by the posterior KL.
    elbo = np.mean([metrics.negative_elbo(model, x).numpy() for _ in range(2000)], axis=0)
    assert np.all(nll <= elbo) and np.all(elbo - exact > 0.05)


def test_iw_nll_decreases_towards_the_limit_as_s_grows():
    model = LinearGaussian(shift=0.2, scale=1.3, seed=4)
    x = data(model, n=3)
    exact = model.exact_nll(x)
    means, errors = [], []
    for s, repeats in ((1, 4000), (4, 1000), (32, 300), (256, 100)):
        # independent repeats as one batch of copies of x: [repeats * B] -> [repeats, B]
        tiled = np.tile(x, (repeats, 1))
        estimates = metrics.importance_weighted_nll(model, tiled, s, chunk=64).numpy().reshape(repeats, len(x))
        means.append(estimates.mean(0))
        errors.append(estimates.std(0) / math.sqrt(repeats))
    means, errors = np.array(means), np.array(errors)  # [4 values of S, B]
    assert np.all(np.diff(means, axis=0) < 0), means
    # every expected bound lies above the limit; the gap shrinks towards it
    assert np.all(means >= exact - 3 * errors), (means, exact)
    assert np.all(means[-1] - exact < 0.1 * (means[0] - exact))


def test_bits_per_dim_and_psnr():
    assert metrics.bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
    assert metrics.psnr(0.01) == pytest.approx(20.0)
    assert metrics.psnr(0.0) == float("inf")
    with pytest.raises(ValueError, match="mse=-1"):
        metrics.psnr(-1)
    with pytest.raises(ValueError, match="num_dims=0"):
        metrics.bits_per_dim(1.0, 0)


@pytest.fixture(scope="module")
def tiny_vae():
    config = ModelConfig(image_size=28, channels=1, latent_dim=4, filters=(4, 8, 8, 8), flows=2,
                         flow_mode="amortized", likelihood="bernoulli")
    return FaceVAE(config, seed=0)


def test_on_a_facevae_the_iw_bound_sits_below_the_elbo():
    config = ModelConfig(image_size=28, channels=1, latent_dim=4, filters=(4, 8, 8, 8), flows=2,
                         flow_mode="amortized", likelihood="bernoulli")
    model = FaceVAE(config, seed=1)
    # a posterior far from the prior (mean 1, variance e^-1): a clear gap between the ELBO and log p(x)
    model.encoder.get_layer("mean").bias.assign(np.ones(4, np.float32))
    model.encoder.get_layer("log_var").bias.assign(-np.ones(4, np.float32))
    images = (np.random.default_rng(0).random((3, 28, 28, 1)) < 0.3).astype(np.float32)
    copies = np.tile(images, (100, 1, 1, 1))  # 100 independent draws per image in one batch
    draws = metrics.negative_elbo(model, copies).numpy().reshape(100, 3)
    elbo, elbo_se = draws.mean(0), draws.std(0) / 10
    iw = metrics.importance_weighted_nll(model, images, num_samples=200, chunk=100).numpy()
    assert iw.shape == (3,) and np.all(np.isfinite(iw))
    assert np.all(iw < elbo - 4 * elbo_se), (iw, elbo, elbo_se)
    ones = metrics.importance_weighted_nll(model, copies, 1).numpy().reshape(100, 3)
    assert np.all(np.abs(ones.mean(0) - elbo) < 4 * np.hypot(elbo_se, ones.std(0) / 10))  # S = 1 is the ELBO


def test_evaluate_model_reports_every_metric(tiny_vae):
    images = (np.random.default_rng(1).random((5, 28, 28, 1)) < 0.3).astype(np.float32)
    done = []
    result = metrics.evaluate_model(tiny_vae, [images[:3], (images[3:],)], importance_samples=10, chunk=4,
                                    progress=done.append)
    assert done == [3, 2] and result["examples"] == 5
    assert result["iw_nll_bits_per_dim"] == pytest.approx(result["iw_nll"] / (784 * math.log(2)))
    assert result["psnr_db"] == pytest.approx(10 * math.log10(1 / result["reconstruction_mse"]))
    assert "iw_nll" not in metrics.evaluate_model(tiny_vae, [images], importance_samples=0)
    limited = metrics.evaluate_model(tiny_vae, [images[:3], images[3:]], reconstruction_limit=4)
    assert limited["reconstruction_examples"] == 4 and result["reconstruction_examples"] == 5
    expected = metrics.reconstruction_errors(tiny_vae, images[:4]).mean()
    assert limited["reconstruction_mse"] == pytest.approx(expected, rel=1e-6)
    paired = metrics.evaluate_model(tiny_vae, [images[:3], images[3:]], importance_samples=10, per_image=True)
    assert len(paired["iw_nll_per_image"]) == len(paired["negative_elbo_per_image"]) == 5
    assert np.mean(paired["iw_nll_per_image"]) == pytest.approx(paired["iw_nll"])
    assert np.mean(paired["negative_elbo_per_image"]) == pytest.approx(paired["negative_elbo"])
    with pytest.raises(ValueError, match="empty"):
        metrics.evaluate_model(tiny_vae, [])


def test_seam_ratio_is_one_without_a_grid_and_counts_the_grid_lines_exactly():
    rng = np.random.default_rng(0)
    noise = rng.uniform(size=(64, 32, 32, 3))
    assert metrics.seam_ratio(noise) == pytest.approx(1.0, abs=0.03)
    # A ramp whose jumps are 1/64 everywhere except 5/64 across columns 8, 16, 24. Grid lines: 3 columns
    # jumping 5/64 and 3 rows jumping 0; other lines: 28 columns jumping 1/64 and 28 rows jumping 0.
    steps = np.ones(32)
    steps[[8, 16, 24]] = 5.0
    steps[0] = 0.0
    ramp = np.cumsum(steps) / 64.0
    images = np.broadcast_to(ramp[None, None, :, None], (2, 32, 32, 1))
    expected = ((3 * 5 / 64 + 3 * 0) / 6) / ((28 * 1 / 64 + 28 * 0) / 56)  # = 5
    assert metrics.seam_ratio(images) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="divisible"):
        metrics.seam_ratio(np.zeros((1, 30, 30, 1)))


def test_local_seam_ratio_ignores_smooth_content_and_counts_one_pixel_lines_exactly():
    # Jumps J(j) = min(j, 20) / 1024 across column j, linear around every grid line (8, 16, 24) and its neighbours:
    # each grid line's jump is the mean of its neighbours', so the local ratio is exactly 1, while seam_ratio sees
    # content: grid columns jump (8 + 16 + 20) / 3 against 386 / 28 elsewhere, 1.06 times as much.
    steps = np.minimum(np.arange(32, dtype=np.float64), 20)
    ramp = np.cumsum(steps) / 1024.0
    smooth = np.broadcast_to(ramp[None, None, :, None], (2, 32, 32, 1))
    assert metrics.local_seam_ratio(smooth) == pytest.approx(1.0, rel=1e-9)
    assert metrics.seam_ratio(smooth) == pytest.approx((44 / 3) / (386 / 28), rel=1e-9)
    # Flat jumps of 1/64 with 5/64 across columns 8, 16, 24 and no row jumps: grid columns 3 x 5/64 over
    # neighbours 3 x 1/64.
    steps = np.ones(32)
    steps[[8, 16, 24]] = 5.0
    steps[0] = 0.0
    lined = np.broadcast_to((np.cumsum(steps) / 64.0)[None, None, :, None], (2, 32, 32, 3))
    assert metrics.local_seam_ratio(lined) == pytest.approx(5.0, rel=1e-9)
    noise = np.random.default_rng(0).uniform(size=(64, 32, 32, 3))
    assert metrics.local_seam_ratio(noise) == pytest.approx(1.0, abs=0.03)
    with pytest.raises(ValueError, match="divisible"):
        metrics.local_seam_ratio(np.zeros((1, 30, 30, 1)))
