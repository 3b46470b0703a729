"""Fitted latent priors: a density fitted after training to the encoded training set, to sample from.

A VAE whose decoder is sharp leaves its aggregate posterior q(z) = (1/N) sum_n q(z|x_n) far from N(0, I):
decoding draws from N(0, I) lands where the decoder never trained. Ex-post density estimation (Ghosh et
al. 2020, "From Variational to Deterministic Autoencoders"; Dai and Wipf 2019, "Diagnosing and Enhancing
VAE Models") fits a density to the training set's codes by maximum likelihood and samples from it.

- ``GaussianPrior``: one full-covariance Gaussian N(mu, Sigma), Sigma = L L^T. Maximum likelihood:
  mu = mean of the codes, Sigma = their biased covariance + ``ridge`` * I. It maps standard-normal noise
  to codes, z = mu + T * L eps (T = temperature), so an exported ``sample`` endpoint keeps its interface
  (noise in, images out).
- ``MixturePrior``: a K-component full-covariance Gaussian mixture sum_k pi_k N(mu_k, Sigma_k), fitted by EM
  (Dempster et al. 1977) from a k-means++ start, each Sigma_k + ``ridge`` * I; sampled with
  ``tfp.distributions.MixtureSameFamily``.

Codes are [N, d] float arrays (posterior means, or posterior draws z ~ q(z|x): ``encode_codes``).
``log_prob`` is in nats per code; the mean held-out log_prob is how two priors are compared.
Saved as ``.npz`` (``save_prior`` / ``load_prior``), written atomically.
"""
from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["PRIOR_KINDS", "GaussianPriorLayer", "GaussianPrior", "MixturePrior", "fit_prior", "encode_codes", "save_prior", "load_prior"]

PRIOR_KINDS = ("gaussian", "gmm")
_LOG_2PI = math.log(2.0 * math.pi)


def _check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2 or not np.all(np.isfinite(codes)):
        raise ValueError(f"codes must be a finite [N, d] array with N >= 2. Received shape {codes.shape}")
    return codes


def _gaussian_log_prob(z: np.ndarray, mean: np.ndarray, scale_tril: np.ndarray) -> np.ndarray:
    """log N(z; mean, L L^T) = -1/2 [d log 2pi + 2 sum_j log L_jj + |L^-1 (z - mean)|^2]; [N]."""
    from scipy.linalg import solve_triangular
    white = solve_triangular(scale_tril, (z - mean).T, lower=True).T
    d = z.shape[-1]
    return -0.5 * (d * _LOG_2PI + np.sum(white**2, axis=-1)) - np.sum(np.log(np.diag(scale_tril)))


@keras.saving.register_keras_serializable(package="facevae")
class GaussianPriorLayer(keras.layers.Layer):
    """z = mean + L noise: standard-normal noise [B, d] mapped to N(mean, L L^T), as non-trainable weights
    (mean [d] = 0 and L [d, d] = I until fitted, so an unfitted layer is the standard prior). Saved with the
    model's ``.keras`` file and its export."""

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(latent_dim, int) or latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive integer. Received: latent_dim={latent_dim!r}")
        self.latent_dim = latent_dim

    def build(self, input_shape=None):
        d = self.latent_dim
        self.mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False, name="mean")
        self.scale_tril = self.add_weight(shape=(d, d), initializer="identity", trainable=False, name="scale_tril")
        self.built = True

    def call(self, noise):
        return self.mean + tf.linalg.matmul(tf.cast(noise, self.mean.dtype), self.scale_tril, transpose_b=True)

    def get_config(self) -> dict:
        return {**super().get_config(), "latent_dim": self.latent_dim}


class GaussianPrior:
    """N(mean, scale_tril scale_tril^T) over z [d]; ``transform`` maps N(0, I) noise to it."""

    kind = "gaussian"

    def __init__(self, mean, scale_tril):
        self.mean = np.asarray(mean, np.float64)
        self.scale_tril = np.asarray(scale_tril, np.float64)
        d = self.mean.shape[-1]
        if self.mean.shape != (d,) or self.scale_tril.shape != (d, d):
            raise ValueError(f"mean must be [d] and scale_tril [d, d]. Received {self.mean.shape}, {self.scale_tril.shape}")

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def fit(cls, codes, ridge: float = 1e-6) -> "GaussianPrior":
        """Maximum likelihood: mean and biased covariance of ``codes`` [N, d], plus ``ridge`` * I."""
        codes = _check_codes(codes)
        mean = codes.mean(0)
        covariance = np.cov(codes, rowvar=False, bias=True) + ridge * np.eye(codes.shape[1])
        return cls(mean, np.linalg.cholesky(covariance))

    def log_prob(self, z) -> np.ndarray:
        """log N(z; mean, L L^T) per row of z [N, d], nats."""
        return _gaussian_log_prob(np.asarray(z, np.float64), self.mean, self.scale_tril)

    def transform(self, noise, temperature: float = 1.0):
        """z = mean + temperature * L eps for eps = ``noise`` [N, d] (a tensor in gives a float32 tensor out)."""
        if isinstance(noise, (tf.Tensor, tf.Variable)):
            mean = tf.constant(self.mean, tf.float32)
            tril = tf.constant(self.scale_tril, tf.float32)
            return mean + temperature * tf.linalg.matmul(tf.cast(noise, tf.float32), tril, transpose_b=True)
        return (self.mean + temperature * np.asarray(noise, np.float64) @ self.scale_tril.T).astype(np.float32)

    def sample(self, count: int, temperature: float = 1.0, seed: int | None = None) -> np.ndarray:
        """``count`` draws [count, d] float32 at ``temperature``."""
        noise = np.random.default_rng(seed).standard_normal((count, self.latent_dim))
        return self.transform(noise, temperature)

    def arrays(self) -> dict:
        return {"mean": self.mean, "scale_tril": self.scale_tril}


class MixturePrior:
    """sum_k weights_k N(means_k, scale_trils_k scale_trils_k^T) over z [d]."""

    kind = "gmm"

    def __init__(self, weights, means, scale_trils):
        self.weights = np.asarray(weights, np.float64)
        self.means = np.asarray(means, np.float64)
        self.scale_trils = np.asarray(scale_trils, np.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.scale_trils.shape != (k, d, d):
            raise ValueError("weights [K], means [K, d], scale_trils [K, d, d] expected. Received "
                             f"{self.weights.shape}, {self.means.shape}, {self.scale_trils.shape}")

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(cls, codes, components: int = 10, ridge: float = 1e-3, iterations: int = 200, tolerance: float = 1e-6,
            seed: int = 0) -> "MixturePrior":
        """EM for a full-covariance mixture of ``components`` Gaussians, each covariance + ``ridge`` * I.

        Starts from k-means++ centres with the pooled covariance; stops when the mean log-likelihood per
        code changes by less than ``tolerance`` nats.
        """
        codes = _check_codes(codes)
        n, d = codes.shape
        if not 1 <= components <= n:
            raise ValueError(f"components must be in [1, N={n}]. Received: components={components!r}")
        rng = np.random.default_rng(seed)
        centres = [codes[rng.integers(n)]]
        for _ in range(components - 1):  # k-means++ seeding
            distance = np.min([np.sum((codes - c) ** 2, 1) for c in centres], axis=0)
            centres.append(codes[rng.choice(n, p=distance / distance.sum())])
        pooled = np.cov(codes, rowvar=False, bias=True) + ridge * np.eye(d)
        weights = np.full(components, 1.0 / components)
        means = np.stack(centres)
        trils = np.stack([np.linalg.cholesky(pooled)] * components)
        previous = -np.inf
        for _ in range(iterations):
            log_joint = np.stack([np.log(weights[k]) + _gaussian_log_prob(codes, means[k], trils[k])
                                  for k in range(components)], axis=1)  # [N, K]
            top = log_joint.max(1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(log_joint - top).sum(1))
            current = float(log_norm.mean())
            responsibility = np.exp(log_joint - log_norm[:, None])
            counts = responsibility.sum(0) + 1e-10
            weights = counts / n
            means = (responsibility.T @ codes) / counts[:, None]
            for k in range(components):
                centred = codes - means[k]
                covariance = (responsibility[:, k, None] * centred).T @ centred / counts[k] + ridge * np.eye(d)
                trils[k] = np.linalg.cholesky(covariance)
            if abs(current - previous) < tolerance:
                break
            previous = current
        return cls(weights, means, trils)

    def _distribution(self):
        tfd = tfp.distributions
        return tfd.MixtureSameFamily(
            tfd.Categorical(probs=self.weights),
            tfd.MultivariateNormalTriL(loc=self.means, scale_tril=self.scale_trils),
        )

    def log_prob(self, z) -> np.ndarray:
        """log sum_k weights_k N(z; means_k, Sigma_k) per row of z [N, d], nats."""
        z = np.asarray(z, np.float64)
        log_joint = np.stack([np.log(self.weights[k]) + _gaussian_log_prob(z, self.means[k], self.scale_trils[k])
                              for k in range(len(self.weights))], axis=1)
        top = log_joint.max(1, keepdims=True)
        return top[:, 0] + np.log(np.exp(log_joint - top).sum(1))

    def sample(self, count: int, temperature: float = 1.0, seed: int | None = None) -> np.ndarray:
        """``count`` draws [count, d] float32: a component k ~ weights, then means_k + temperature * L_k eps."""
        rng = np.random.default_rng(seed)
        which = rng.choice(len(self.weights), size=count, p=self.weights / self.weights.sum())
        noise = rng.standard_normal((count, self.latent_dim))
        z = self.means[which] + temperature * np.einsum("nij,nj->ni", self.scale_trils[which], noise)
        return z.astype(np.float32)

    def arrays(self) -> dict:
        return {"weights": self.weights, "means": self.means, "scale_trils": self.scale_trils}


def fit_prior(codes, kind: str = "gaussian", components: int = 10, **kwargs):
    """A ``GaussianPrior`` (kind 'gaussian') or ``MixturePrior`` (kind 'gmm', ``components``) fitted to ``codes``."""
    if kind == "gaussian":
        return GaussianPrior.fit(codes, **kwargs)
    if kind == "gmm":
        return MixturePrior.fit(codes, components=components, **kwargs)
    raise ValueError(f"Unknown prior kind {kind!r}; expected one of {list(PRIOR_KINDS)}")


def encode_codes(model, dataset: tf.data.Dataset, use: str = "mean", draws: int = 1, seed: int = 0) -> np.ndarray:
    """Codes of every image in ``dataset`` (batches of images, or (images, ...)): [N * draws, d] float64.

    use='mean': z = f_K o ... o f_1(mean) (the posterior mean through the flows, as ``model.encode``);
    use='sample': ``draws`` posterior draws z = f(mean + exp(log_var / 2) eps) per image.
    """
    if use not in ("mean", "sample"):
        raise ValueError(f"Unknown use {use!r}; expected one of ['mean', 'sample']")
    rng = np.random.default_rng(seed)
    codes = []
    for batch in dataset:
        images = tf.cast(batch[0] if isinstance(batch, (tuple, list)) else batch, tf.float32)
        mean, log_var, features = model.posterior(images)
        if use == "mean":
            codes.append(model.apply_flows(mean, features)[0].numpy())
            continue
        for _ in range(draws):
            eps = rng.standard_normal(mean.shape).astype(np.float32)
            z0 = mean + tf.exp(0.5 * log_var) * eps
            codes.append(model.apply_flows(z0, features)[0].numpy())
    return np.concatenate(codes).astype(np.float64)


def save_prior(path: str, prior) -> str:
    """Write ``prior`` to ``path`` (.npz) atomically; returns the path."""
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, kind=np.array(prior.kind), **prior.arrays())
    os.replace(tmp, path)
    return path


def load_prior(path: str):
    """The prior saved by ``save_prior``."""
    with np.load(path) as values:
        kind = str(values["kind"])
        if kind == "gaussian":
            return GaussianPrior(values["mean"], values["scale_tril"])
        if kind == "gmm":
            return MixturePrior(values["weights"], values["means"], values["scale_trils"])
    raise ValueError(f"{path}: unknown prior kind {kind!r}; expected one of {list(PRIOR_KINDS)}")
