"""Likelihoods and KL terms: small pure functions, one equation each, per example.

Every function returns one value per example, shape [B], in nats (the ``mse``
objective is in the published recipe's own units). Images x are float in [0, 1] with
shape [B, H, W, C]; latents are [B, d]. The decoder's raw output is ``logits``:
the Bernoulli likelihood uses them as logits, the Gaussian ones use
``sigmoid(logits)`` as the mean image.

``LIKELIHOODS`` is the one registry of p(x|z): name -> ``Likelihood`` (its -log p(x|z) from the images, the
decoder's logits, the ``ModelConfig`` and, for the Gaussian, the log sigma tensor the model owns when sigma is
learned or optimal; a one-line description, and whether it is in nats). Config
validation, the ``--likelihood`` choices and ``FaceVAE`` all read it; a new likelihood is a function here
and one entry there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import tensorflow as tf

__all__ = [
    "LOG_2PI",
    "Likelihood",
    "LIKELIHOODS",
    "bernoulli_nll",
    "gaussian_nll",
    "gaussian_nll_log_sigma",
    "optimal_log_sigma",
    "mse_objective",
    "reconstruction_loss",
    "diagonal_gaussian_log_prob",
    "reparameterised_log_prob",
    "standard_normal_log_prob",
    "gaussian_kl",
]

LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def bernoulli_nll(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """-log p(x|z) = -sum_i [x_i log s(l_i) + (1 - x_i) log(1 - s(l_i))], s = sigmoid; shape [B]."""
    return _sum_per_example(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def gaussian_nll(x: tf.Tensor, logits: tf.Tensor, sigma: float) -> tf.Tensor:
    """-log N(x; sigmoid(logits), sigma^2 I) = sum_i [(x_i - m_i)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2]; [B]."""
    mean = tf.sigmoid(logits)
    per_pixel = 0.5 * tf.square((x - mean) / sigma) + math.log(sigma) + 0.5 * LOG_2PI
    return _sum_per_example(per_pixel)


def gaussian_nll_log_sigma(x: tf.Tensor, logits: tf.Tensor, log_sigma: tf.Tensor) -> tf.Tensor:
    """-log N(x; sigmoid(logits), diag(sigma_c^2)) with log sigma per channel (shape [C]) or shared (shape []); [B].

    = sum_i [(x_i - m_i)^2 / (2 sigma_c(i)^2) + log sigma_c(i) + log(2 pi) / 2], the FULL normaliser, so the ELBO
    built on it bounds log p(x) for any sigma, learned or not (Rybkin et al. 2021, "Simple and Effective VAE
    Training with Calibrated Decoders"). sigma is in pixel units of [0, 1]; c(i) is pixel i's channel (last axis).
    """
    mean = tf.sigmoid(logits)
    log_sigma = tf.cast(log_sigma, mean.dtype)
    per_pixel = 0.5 * tf.square(x - mean) * tf.exp(-2.0 * log_sigma) + log_sigma + 0.5 * LOG_2PI
    return _sum_per_example(per_pixel)


def optimal_log_sigma(x: tf.Tensor, logits: tf.Tensor, shared: bool = False, floor: float = 1e-6) -> tf.Tensor:
    """log sigma* of a batch, sigma*^2 = mean (x_i - m_i)^2 over the batch's pixels of each channel ([C]) or all ([]).

    sigma*^2 maximises the batch's Gaussian likelihood for the current means m = sigmoid(logits) ("optimal sigma",
    Rybkin et al. 2021). Returned under ``stop_gradient``, so the gradient reaching the decoder is that of
    sum_i (x_i - m_i)^2 / (2 sigma*^2). ``floor`` bounds sigma*^2 from below.
    """
    squared = tf.square(x - tf.sigmoid(logits))
    axes = None if shared else list(range(len(squared.shape) - 1))
    variance = tf.maximum(tf.reduce_mean(squared, axis=axes), floor)
    return tf.stop_gradient(0.5 * tf.math.log(variance))


def _gaussian(x: tf.Tensor, logits: tf.Tensor, config: Any, log_sigma: tf.Tensor | None = None) -> tf.Tensor:
    """The registry's Gaussian: a fixed ``config.sigma``, or the model's learned/optimal ``log_sigma`` tensor."""
    if log_sigma is not None:
        return gaussian_nll_log_sigma(x, logits, log_sigma)
    if isinstance(config.sigma, str):
        raise ValueError(f"sigma={config.sigma!r} needs the model's log sigma tensor (FaceVAE.likelihood_log_sigma)")
    return gaussian_nll(x, logits, config.sigma)


def mse_objective(x: tf.Tensor, logits: tf.Tensor, r_loss_factor: float) -> tf.Tensor:
    """The published face-VAE reconstruction term r_loss_factor * mean_i (x_i - m_i)^2, m = sigmoid(logits); [B].

    Up to a constant it is a Gaussian negative log-likelihood with sigma^2 = D / (2 r_loss_factor),
    D = H * W * C.
    """
    mean = tf.sigmoid(logits)
    squared = tf.reshape(tf.square(x - mean), [tf.shape(x)[0], -1])
    return r_loss_factor * tf.reduce_mean(squared, axis=1)


@dataclass(frozen=True)
class Likelihood:
    """One entry of the likelihood registry.

    nll(x, logits, config, log_sigma=None) -> -log p(x|z) per example [B]; ``config`` is the ModelConfig (or
    anything with the fields the entry reads, e.g. ``sigma``); ``log_sigma``: the Gaussian's learned or optimal
    log sigma ([C] or []) that the model owns (``FaceVAE.likelihood_log_sigma``), None for a fixed sigma and for
    the other entries, which ignore it. in_nats: False for objectives that are a log-likelihood only up to
    scale and constant (``mse``). description: the one line shown by ``--help``.
    """

    nll: Callable[..., tf.Tensor]
    description: str
    in_nats: bool = True


LIKELIHOODS: dict[str, Likelihood] = {
    "gaussian": Likelihood(_gaussian, "gaussian (--sigma: fixed, learned or optimal)"),
    "mse": Likelihood(lambda x, logits, c, log_sigma=None: mse_objective(x, logits, c.r_loss_factor),
                      "mse (r_loss_factor * MSE, the published face recipe)", in_nats=False),
    "bernoulli": Likelihood(lambda x, logits, c, log_sigma=None: bernoulli_nll(x, logits), "bernoulli (binary pixels)"),
}


@dataclass(frozen=True)
class _Scales:
    sigma: float
    r_loss_factor: float


def reconstruction_loss(
    likelihood: str, x: tf.Tensor, logits: tf.Tensor, sigma: float = 0.1, r_loss_factor: float = 1e4,
    log_sigma: tf.Tensor | None = None,
) -> tf.Tensor:
    """-log p(x|z) for ``likelihood``, a name in LIKELIHOODS; shape [B]. For 'gaussian' a ``log_sigma`` tensor
    ([C] or []: a learned or optimal sigma) replaces the fixed ``sigma``."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {likelihood!r}; expected one of {list(LIKELIHOODS)}")
    return LIKELIHOODS[likelihood].nll(x, logits, _Scales(sigma, r_loss_factor), log_sigma)


def diagonal_gaussian_log_prob(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; mean, diag(exp(log_var))) = -1/2 sum_j [log 2pi + log_var_j + (z_j - mean_j)^2 / exp(log_var_j)]; [...]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var), axis=-1)


def reparameterised_log_prob(eps: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; mean, diag(exp(log_var))) of the draw z = mean + exp(log_var / 2) * eps, from its noise eps:
    -1/2 sum_j [log 2pi + log_var_j + eps_j^2]; [...] for eps, log_var [..., d].

    Equal to ``diagonal_gaussian_log_prob(z, mean, log_var)`` (and with the same gradients, since
    (z - mean) / exp(log_var / 2) = eps whatever mean and log_var are), but it never forms z - mean: in float32 that
    difference is rounded to mean's spacing, and once log_var < -88.7 its factor exp(-log_var) overflows, so a very
    precise posterior gave 0 * inf = NaN (the face preset at 128 px stopped so at epoch 22).
    """
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(eps), axis=-1)


def standard_normal_log_prob(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I) = -1/2 sum_j [log 2pi + z_j^2]; shape [...] for z [..., d]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)


def gaussian_kl(mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) = 1/2 sum_j [exp(log_var_j) + mean_j^2 - 1 - log_var_j]; [...]."""
    return 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=-1)
