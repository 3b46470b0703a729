"""Fitted latent priors: maximum-likelihood fits against closed forms, EM, the Keras layer, saving."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from facevae import prior
from facevae.config import ModelConfig
from facevae.model import FaceVAE


def _correlated(rng, n=4000, d=4):
    a = rng.normal(size=(d, d))
    covariance = a @ a.T + 0.5 * np.eye(d)
    return rng.multivariate_normal(np.arange(d, dtype=float), covariance, size=n), covariance


def test_gaussian_fit_is_the_sample_mean_and_covariance_and_log_prob_is_scipy():
    codes, _ = _correlated(np.random.default_rng(0))
    fitted = prior.GaussianPrior.fit(codes, ridge=0.0)
    np.testing.assert_allclose(fitted.mean, codes.mean(0), rtol=1e-12)
    np.testing.assert_allclose(fitted.scale_tril @ fitted.scale_tril.T, np.cov(codes, rowvar=False, bias=True),
                               rtol=1e-10)
    z = codes[:7]
    expected = stats.multivariate_normal(codes.mean(0), np.cov(codes, rowvar=False, bias=True)).logpdf(z)
    np.testing.assert_allclose(fitted.log_prob(z), expected, rtol=1e-10)
    # the maximum-likelihood fit beats N(0, I) and a perturbed fit on its own data
    assert fitted.log_prob(codes).mean() > stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(codes).mean()
    moved = prior.GaussianPrior(fitted.mean + 0.1, fitted.scale_tril)
    assert fitted.log_prob(codes).mean() > moved.log_prob(codes).mean()


def test_gaussian_transform_has_the_fitted_moments_and_temperature_scales_the_spread():
    codes, covariance = _correlated(np.random.default_rng(1))
    fitted = prior.GaussianPrior.fit(codes)
    draws = fitted.sample(200_000, seed=2).astype(np.float64)
    np.testing.assert_allclose(draws.mean(0), fitted.mean, atol=0.05)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), fitted.scale_tril @ fitted.scale_tril.T, rtol=0.03, atol=0.03)
    cold = fitted.sample(200_000, temperature=0.5, seed=2).astype(np.float64)
    np.testing.assert_allclose(cold - fitted.mean, 0.5 * (draws - fitted.mean), atol=1e-4)
    noise = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(fitted.transform(tf.constant(noise)).numpy(), fitted.transform(noise), atol=1e-5)


def test_mixture_em_recovers_two_separated_clusters_and_beats_one_gaussian():
    rng = np.random.default_rng(4)
    codes = np.concatenate([rng.normal(-4, 0.5, size=(600, 2)), rng.normal(3, 1.0, size=(400, 2))])
    mixture = prior.MixturePrior.fit(codes, components=2, ridge=1e-6)
    order = np.argsort(mixture.means[:, 0])
    np.testing.assert_allclose(mixture.weights[order], [0.6, 0.4], atol=0.01)
    np.testing.assert_allclose(mixture.means[order], [[-4, -4], [3, 3]], atol=0.15)
    np.testing.assert_allclose(np.linalg.det(mixture.scale_trils[order]) ** (1 / 2), [0.5, 1.0], rtol=0.15)
    # log_prob equals the TFP MixtureSameFamily density
    np.testing.assert_allclose(mixture.log_prob(codes[:9]), mixture._distribution().log_prob(codes[:9]).numpy(),
                               rtol=1e-8)
    single = prior.GaussianPrior.fit(codes)
    assert mixture.log_prob(codes).mean() > single.log_prob(codes).mean() + 0.5
    draws = mixture.sample(20_000, seed=5)
    assert abs(np.mean(draws[:, 0] < 0) - 0.6) < 0.02


def test_save_and_load_round_trip(tmp_path):
    codes, _ = _correlated(np.random.default_rng(6), n=300, d=3)
    for fitted in (prior.fit_prior(codes, "gaussian"), prior.fit_prior(codes, "gmm", components=3)):
        path = prior.save_prior(str(tmp_path / f"{fitted.kind}.npz"), fitted)
        loaded = prior.load_prior(path)
        assert type(loaded) is type(fitted)
        np.testing.assert_allclose(loaded.log_prob(codes[:5]), fitted.log_prob(codes[:5]), rtol=1e-12)
    with pytest.raises(ValueError, match="Unknown prior kind 'flow'"):
        prior.fit_prior(codes, "flow")
    with pytest.raises(ValueError, match="codes must be a finite"):
        prior.fit_prior(codes[:1])


def test_model_samples_through_its_fitted_prior_and_keeps_it_in_the_keras_file(tmp_path):
    import keras
    model = FaceVAE(ModelConfig(image_size=32, latent_dim=4, filters=(8, 8, 8, 8), prior="gaussian"), seed=0)
    noise = np.random.default_rng(7).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(model.sample(noise=noise).numpy(), model.decode(noise).numpy(), atol=1e-6)  # unfitted
    codes, _ = _correlated(np.random.default_rng(8), n=500, d=4)
    fitted = prior.GaussianPrior.fit(codes)
    model.set_prior(fitted.mean, fitted.scale_tril)
    expected = model.decode(fitted.transform(0.7 * noise)).numpy()
    np.testing.assert_allclose(model.sample(noise=noise, temperature=0.7).numpy(), expected, atol=1e-5)
    from facevae.inference import from_keras
    np.testing.assert_allclose(from_keras(model).sample(0.7 * noise), expected, atol=1e-5)  # what sample.py draws
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.sample(noise=noise, temperature=0.7).numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="prior='gaussian'"):
        FaceVAE(ModelConfig(image_size=32, latent_dim=4, filters=(8, 8, 8, 8)), seed=0).set_prior(fitted.mean,
                                                                                                   fitted.scale_tril)
    with pytest.raises(ValueError, match="Received: latent_dim=0"):
        prior.GaussianPriorLayer(0)
