"""Fitted latent priors as math: log-densities against scipy closed forms, EM, the noise-to-component trick
(distribution checked by moments and Kolmogorov-Smirnov), the flow prior's log-det against autodiff, the Keras
layer inside the model and in its .keras file, and saving."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from facevae.model import prior
from facevae.model.vae import FaceVAE
from tiny_config import tiny_model_config


def _correlated(rng, n=4000, d=4):
    a = rng.normal(size=(d, d))
    covariance = a @ a.T + 0.5 * np.eye(d)
    return rng.multivariate_normal(np.arange(d, dtype=float), covariance, size=n), covariance


def _random_mixture(rng, k=3, d=3):
    weights = rng.dirichlet(np.ones(k) * 2)
    means = rng.normal(scale=3.0, size=(k, d))
    trils = np.tril(rng.normal(scale=0.3, size=(k, d, d)), -1) + np.stack([np.diag(rng.uniform(0.3, 1.5, d))
                                                                           for _ in range(k)])
    return weights, means, trils


def test_one_gaussian_is_the_sample_mean_and_covariance_and_its_log_prob_is_scipy():
    codes, _ = _correlated(np.random.default_rng(0))
    weights, means, trils = prior.fit_gaussian_mixture(codes, 1, ridge=0.0, shrinkage=0.0)
    covariance = np.cov(codes, rowvar=False, bias=True)
    np.testing.assert_allclose(means[0], codes.mean(0), rtol=1e-12)
    np.testing.assert_allclose(trils[0] @ trils[0].T, covariance, rtol=1e-10)
    layer = prior.fit_prior(codes, "gmm", components=1, ridge=0.0, shrinkage=0.0)
    expected = stats.multivariate_normal(codes.mean(0), covariance).logpdf(codes[:50])
    np.testing.assert_allclose(layer.log_prob(codes[:50]).numpy(), expected, rtol=2e-5)
    # the maximum-likelihood fit beats N(0, I) and a shifted fit on its own data
    fitted = stats.multivariate_normal(codes.mean(0), covariance).logpdf(codes).mean()
    assert fitted > stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(codes).mean()
    assert fitted > stats.multivariate_normal(codes.mean(0) + 0.1, covariance).logpdf(codes).mean()


def test_ledoit_wolf_shrinkage_is_the_papers_sum_over_codes():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(30, 5)) @ rng.normal(size=(5, 5))
    n, d = codes.shape
    x = codes - codes.mean(0)
    s = x.T @ x / n
    m = np.trace(s) / d
    delta = np.sum((s - m * np.eye(d)) ** 2) / d
    spread = sum(np.sum((np.outer(row, row) - s) ** 2) for row in x) / d / n**2  # one code at a time
    assert prior.ledoit_wolf_shrinkage(codes) == pytest.approx(min(spread, delta) / delta, rel=1e-10)
    covariance, a = prior.shrunk_covariance(codes)
    np.testing.assert_allclose(covariance, (1 - a) * s + a * m * np.eye(d), rtol=1e-12)
    np.testing.assert_allclose(prior.shrunk_covariance(codes, 0.0)[0], s, rtol=1e-12)
    with pytest.raises(ValueError, match="shrinkage must be in"):
        prior.shrunk_covariance(codes, 1.5)


def test_ledoit_wolf_shrinks_few_codes_in_many_dimensions_and_wins_on_held_out_codes():
    rng = np.random.default_rng(3)
    # isotropic codes: the sample covariance's spread is all noise, so nearly all weight goes to the target
    assert prior.ledoit_wolf_shrinkage(rng.normal(size=(50, 40))) > 0.9
    # many codes, strongly anisotropic: the sample covariance is already good
    assert prior.ledoit_wolf_shrinkage(rng.normal(size=(20000, 4)) * [10.0, 3.0, 1.0, 0.3]) < 0.01
    # fewer codes than dimensions: the maximum-likelihood covariance is near-singular and scores new codes badly
    d = 60
    scales = np.geomspace(3.0, 0.1, d)
    train, held = rng.normal(size=(50, d)) * scales, rng.normal(size=(2000, d)) * scales
    shrunk = prior.fit_prior(train, "gmm", components=1).log_prob(held).numpy().mean()
    unshrunk = prior.fit_prior(train, "gmm", components=1, ridge=1e-3, shrinkage=0.0).log_prob(held).numpy().mean()
    truth = stats.multivariate_normal(np.zeros(d), np.diag(scales**2)).logpdf(held).mean()
    assert unshrunk < shrunk < truth
    assert shrunk - unshrunk > 50.0


def test_mixture_log_prob_equals_the_scipy_sum_of_components():
    rng = np.random.default_rng(1)
    weights, means, trils = _random_mixture(rng)
    layer = prior.LatentPrior(3, components=3)
    layer.build()
    layer.set_mixture(weights, means, trils)
    z = rng.normal(scale=3.0, size=(20, 3))
    expected = np.log(sum(w * stats.multivariate_normal(m, l @ l.T).pdf(z) for w, m, l in zip(weights, means, trils)))
    np.testing.assert_allclose(layer.log_prob(z).numpy(), expected, rtol=1e-4)


def test_em_recovers_two_separated_clusters_and_beats_one_gaussian():
    rng = np.random.default_rng(4)
    codes = np.concatenate([rng.normal(-4, 0.5, size=(600, 2)), rng.normal(3, 1.0, size=(400, 2))])
    weights, means, trils = prior.fit_gaussian_mixture(codes, 2)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order], [0.6, 0.4], atol=0.01)
    np.testing.assert_allclose(means[order], [[-4, -4], [3, 3]], atol=0.15)
    np.testing.assert_allclose(np.abs(np.linalg.det(trils[order])) ** 0.5, [0.5, 1.0], rtol=0.15)
    two = prior.fit_prior(codes, "gmm", components=2)
    one = prior.fit_prior(codes, "gmm", components=1)
    assert two.log_prob(codes).numpy().mean() > one.log_prob(codes).numpy().mean() + 0.5


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_component_read_from_the_noise_gives_the_mixture(temperature):
    """The noise-to-code map of a 3-component mixture: the chosen components have the mixture weights, and given
    its component the whitened draw L_k^-1 (z - mu_k) / T is N(0, I) (KS test per coordinate, moments, and
    independence of the component: the same N(0, I) in every component)."""
    rng = np.random.default_rng(2)
    weights, means, trils = _random_mixture(rng)
    noise = rng.standard_normal((60_000, 3))
    z = prior.mixture_from_noise(noise, weights, means, trils, temperature).numpy().astype(np.float64)
    u = stats.norm.cdf(noise[:, 0])
    which = np.searchsorted(np.cumsum(weights), u, side="right").clip(max=2)
    counts = np.bincount(which, minlength=3) / len(which)
    np.testing.assert_allclose(counts, weights, atol=0.01)
    for k in range(3):
        white = np.linalg.solve(trils[k], (z[which == k] - means[k]).T).T / temperature
        for j in range(3):
            assert stats.kstest(white[:, j], "norm").pvalue > 1e-3, (k, j)
        np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(3), atol=0.05)
        np.testing.assert_allclose(white.mean(0), 0, atol=0.05)
    if temperature == 1.0:  # then the draws are the mixture: its log-density matches a direct sampler's on average
        direct = np.concatenate([rng.multivariate_normal(m, l @ l.T, size=int(w * 60_000))
                                 for w, m, l in zip(weights, means, trils)])
        layer = prior.LatentPrior(3, components=3)
        layer.build()
        layer.set_mixture(weights, means, trils)
        a, b = layer.log_prob(z).numpy(), layer.log_prob(direct).numpy()
        assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_flow_prior_log_density_is_the_change_of_variables_with_the_autodiff_jacobian():
    """log p(z) = log N(F(L^-1 (z - mu)); 0, I) + log|det dF/dv| - log|det L|, with the Jacobian of the whole map
    z -> e taken by autodiff; and noise -> z -> log p inverts (sample then evaluate round trip)."""
    rng = np.random.default_rng(3)
    first = rng.standard_normal(800)  # a banana, far from Gaussian: something for the flows to fit
    codes = np.stack([first, first**2 + 0.3 * rng.standard_normal(800), rng.standard_normal(800)], axis=1)
    layer = prior.fit_prior(codes, "flow", num_flows=4, steps=300, seed=1)
    assert layer.kind == "flow" and not layer.flows.trainable_weights  # the model's optimizer never sees them
    z = tf.constant(codes[:6], tf.float32)
    tril, mean = layer.scale_trils[0], layer.means[0]

    def to_noise(points):
        v = tf.linalg.triangular_solve(tril, (points - mean)[:, :, None], lower=True)[:, :, 0]
        return layer.flows(v)[0]

    with tf.GradientTape() as tape:
        tape.watch(z)
        e = to_noise(z)
    jacobian = tape.batch_jacobian(e, z).numpy().astype(np.float64)
    expected = stats.norm.logpdf(e.numpy()).sum(1) + np.linalg.slogdet(jacobian)[1]
    np.testing.assert_allclose(layer.log_prob(z).numpy(), expected, rtol=1e-4, atol=1e-4)
    noise = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(to_noise(layer(noise)).numpy(), noise, atol=1e-4)
    # maximum likelihood moved it away from the Gaussian it started at, upwards
    gaussian = prior.fit_prior(codes, "gmm", components=1)
    assert layer.log_prob(codes).numpy().mean() > gaussian.log_prob(codes).numpy().mean() + 0.1


def test_mirrored_fit_takes_the_codes_of_the_images_and_of_their_mirror_images():
    model = FaceVAE(tiny_model_config(latent_dim=4, prior="gmm"), seed=0)
    images = np.random.default_rng(3).uniform(size=(24, 32, 32, 3)).astype(np.float32)
    train = tf.data.Dataset.from_tensor_slices(images).batch(8)
    validation = tf.data.Dataset.from_tensor_slices(images[:8]).batch(8)
    own, mirror = model.encode(images)[2].numpy(), model.encode(images[:, :, ::-1].copy())[2].numpy()
    assert np.abs(own - mirror).max() > 1e-3  # the mirror images are other codes
    np.testing.assert_allclose(prior.encode_codes(model, train, mirrored=True), np.concatenate([own, mirror]),
                               atol=1e-5)
    info = prior.fit_latent_prior(model, train, validation, mirrored=True)
    assert (info["train_codes"], info["validation_codes"]) == (48, 8) and "mirror images" in info["fitted_on"]
    expected = prior.fit_prior(np.concatenate([own, mirror]), "gmm", components=1)
    np.testing.assert_allclose(model.prior.log_prob(own).numpy(), expected.log_prob(own).numpy(), rtol=1e-4)
    assert info["validation_log_prob"] == pytest.approx(float(np.mean(expected.log_prob(own[:8]).numpy())), rel=1e-4)


@pytest.mark.parametrize("kind", ["gmm", "flow"])
def test_model_samples_through_its_fitted_prior_and_keeps_it_in_the_keras_file(tmp_path, kind):
    extra = dict(prior_components=2) if kind == "gmm" else dict(prior_flows=2)
    model = FaceVAE(tiny_model_config(latent_dim=4, prior=kind, **extra), seed=0)
    noise = np.random.default_rng(7).normal(size=(3, 4)).astype(np.float32)
    if kind == "gmm":  # an unfitted one-Gaussian prior is N(0, I) itself
        single = FaceVAE(tiny_model_config(latent_dim=4, prior="gmm"), seed=0)
        np.testing.assert_allclose(single.sample(noise=noise).numpy(), single.decode(noise).numpy(), atol=1e-6)
    codes, _ = _correlated(np.random.default_rng(8), n=500, d=4)
    fitted = prior.fit_prior(codes, kind, components=2, num_flows=2, steps=20)
    model.set_prior(fitted)
    expected = model.decode(fitted(noise, temperature=0.7)).numpy()
    np.testing.assert_allclose(model.sample(noise=noise, temperature=0.7).numpy(), expected, atol=1e-5)
    from facevae.export.inference import from_keras

    np.testing.assert_allclose(from_keras(model).sample(noise, 0.7), expected, atol=1e-5)  # what sample.py draws
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.sample(noise=noise, temperature=0.7).numpy(), expected, atol=1e-5)
    saved = prior.load_prior(prior.save_prior(str(tmp_path / "prior.npz"), model.prior))
    np.testing.assert_allclose(saved.log_prob(codes[:5]).numpy(), fitted.log_prob(codes[:5]).numpy(), rtol=1e-6)
    assert not [v for v in model.trainable_variables if "prior" in v.path]


def test_prior_errors_name_the_value():
    codes, _ = _correlated(np.random.default_rng(6), n=300, d=3)
    with pytest.raises(ValueError, match="Unknown fitted prior kind 'vamp'"):
        prior.fit_prior(codes, "vamp")
    with pytest.raises(ValueError, match="codes must be a finite"):
        prior.fit_prior(codes[:1])
    with pytest.raises(ValueError, match="Received: latent_dim=0"):
        prior.LatentPrior(0)
    with pytest.raises(ValueError, match="components must be 1 with num_flows > 0"):
        prior.LatentPrior(3, components=2, num_flows=1)
    with pytest.raises(ValueError, match="prior='standard'"):
        FaceVAE(tiny_model_config(), seed=0).set_prior(prior.fit_prior(np.random.default_rng(0).normal(size=(50, 6))))
