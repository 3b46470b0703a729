"""Fitted latent priors: a density fitted after training to the encoded training set, to sample from.

A VAE whose decoder is sharp leaves its aggregate posterior q(z) = (1/N) sum_n q(z|x_n) far from N(0, I), so
decoding draws from N(0, I) lands where the decoder never trained. Ex-post density estimation (Ghosh et al. 2020,
"From Variational to Deterministic Autoencoders"; Dai and Wipf 2019, "Diagnosing and Enhancing VAE Models")
fits a density to the training set's codes (by maximum likelihood, the one Gaussian's covariance shrunk) and
samples from it. Kinds (``PRIOR_KINDS``):

- ``standard``: N(0, I), nothing fitted (the model has no prior layer).
- ``gmm``: sum_k w_k N(mu_k, L_k L_k^T). K = 1: the mean of the codes and their covariance shrunk towards a
  multiple of I by the Ledoit-Wolf estimate (``shrunk_covariance``; a few hundred codes in hundreds of dimensions
  overfit the sample covariance), + ``ridge`` I. K > 1: EM (Dempster et al. 1977) from a k-means++ start, each
  covariance + ``ridge`` I. log p(z) is tfp.distributions.MixtureSameFamily's.
- ``flow``: F, a stack of this project's registered flows (facevae.flows, global parameters), on top of the
  fitted Gaussian N(mu, L L^T): with the whitened code v = L^-1 (z - mu) and e = F(v),

      log p(z) = log N(e; 0, I) + sum_k log|det J_k| - sum_j log L_jj,

  the flows fitted by maximum likelihood (Adam) on the codes; a sample is z = mu + L F^-1(eps).

Noise to codes (the export's ``sample`` endpoint keeps its interface: standard-normal noise in, images out):
for one Gaussian z = mu + T L eps (T = temperature). For K > 1 the component is read from the noise itself:
u = Phi(eps_0) picks component k with c_{k-1} <= u < c_k (c the cumulative weights), and
eps_0' = Phi^-1((u - c_{k-1}) / w_k) replaces eps_0; given k, (u - c_{k-1}) / w_k is uniform on [0, 1), so eps'
is again N(0, I) and independent of k, and z = mu_k + T L_k eps' is a draw of the mixture (at T = 1). The
temperature scales the within-component spread and leaves the choice of component alone.

Codes are [N, d] arrays: posterior means carried through the model's flows (``encode_codes``). ``log_prob`` is
in nats per code; the mean held-out log_prob (``fit_latent_prior``) is how priors are compared.
"""
from __future__ import annotations

import json
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from facevae.flows.layers import Flows

__all__ = ["PRIOR_KINDS", "LatentPrior", "prior_layer", "mixture_from_noise", "ledoit_wolf_shrinkage",
           "shrunk_covariance", "fit_gaussian_mixture",
           "fit_flow_prior", "fit_prior", "encode_codes", "fit_latent_prior", "save_prior", "load_prior"]

PRIOR_KINDS = ("standard", "gmm", "flow")
_LOG_2PI = math.log(2.0 * math.pi)


def _check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2 or not np.all(np.isfinite(codes)):
        raise ValueError(f"codes must be a finite [N, d] array with N >= 2. Received shape {codes.shape}")
    return codes


def mixture_from_noise(noise, weights, means, scale_trils, temperature: float = 1.0) -> tf.Tensor:
    """Standard-normal ``noise`` [B, d] -> draws [B, d] of sum_k weights_k N(means_k, L_k L_k^T) (float32).

    weights [K] (summing to 1), means [K, d], scale_trils [K, d, d]. K = 1: means_0 + T L_0 noise. K > 1: the
    component k and the replacement eps_0' come from eps_0 as the module docstring says (computed in float64,
    so Phi and Phi^-1 keep their precision out to |eps_0| of about 8).
    """
    noise = tf.cast(noise, tf.float64)
    weights = tf.cast(weights, tf.float64)
    means = tf.cast(means, tf.float64)
    trils = tf.cast(scale_trils, tf.float64)
    temperature = tf.cast(temperature, tf.float64)
    if weights.shape[0] == 1:
        z = means[0] + temperature * tf.linalg.matvec(trils[0], noise)
        return tf.cast(z, tf.float32)
    count = weights.shape[0]
    standard = tfp.distributions.Normal(tf.constant(0.0, tf.float64), tf.constant(1.0, tf.float64))
    u = standard.cdf(noise[:, 0])
    upper = tf.cumsum(weights)
    lower = upper - weights
    # k = the number of upper bounds c_k at or below u (the last bound is 1, up to rounding: clip to K - 1)
    k = tf.minimum(tf.reduce_sum(tf.cast(u[:, None] >= upper[None, :-1], tf.int32), axis=1), count - 1)
    tiny = 1e-300
    fraction = (u - tf.gather(lower, k)) / tf.gather(weights, k)
    fraction = tf.clip_by_value(fraction, tiny, 1.0 - 1e-16)
    eps = tf.concat([tf.math.ndtri(fraction)[:, None], noise[:, 1:]], axis=1)
    z = tf.gather(means, k) + temperature * tf.linalg.matvec(tf.gather(trils, k), eps)
    return tf.cast(z, tf.float32)


@keras.saving.register_keras_serializable(package="facevae")
class LatentPrior(keras.layers.Layer):
    """A fitted latent prior as non-trainable weights: noise [B, d] -> z [B, d], and log p(z).

    Args:
      latent_dim: d >= 1.
      components: K >= 1 Gaussians (``weights`` [K], ``means`` [K, d], ``scale_trils`` [K, d, d]).
      num_flows: flows on top of the Gaussian (K must be 1), 0 for none.
      flow_type: a name in facevae.flows.registry.FLOW_TYPES.

    Unfitted it is N(0, I) (weights 1/K, means 0, scale_trils I, flows at their initial values only if
    num_flows > 0). ``call(noise, temperature=1.0)`` maps standard-normal noise to codes (module docstring);
    ``log_prob(z)`` [B] in nats. Saved with the model's ``.keras`` file and its export.
    """

    def __init__(self, latent_dim: int, components: int = 1, num_flows: int = 0, flow_type: str = "planar",
                 **kwargs: Any):
        super().__init__(**kwargs)
        for name, value, least in (("latent_dim", latent_dim, 1), ("components", components, 1),
                                   ("num_flows", num_flows, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}. Received: {name}={value!r}")
        if num_flows > 0 and components != 1:
            raise ValueError(f"flows go on one Gaussian: components must be 1 with num_flows > 0. "
                             f"Received: components={components!r}, num_flows={num_flows!r}")
        self.latent_dim, self.components, self.num_flows = int(latent_dim), int(components), int(num_flows)
        self.flow_type = flow_type
        self.flows = Flows(self.num_flows, self.latent_dim, mode="global", flow_type=flow_type, name="prior_flows",
                           dtype="float32")
        # The model's optimizer never trains the prior; fit_flow_prior trains the flows explicitly.
        self.flows.trainable = False

    def build(self, input_shape=None):
        k, d = self.components, self.latent_dim
        self.weights_ = self.add_weight(shape=(k,), initializer=keras.initializers.Constant(1.0 / k),
                                        trainable=False, name="mixture_weights")
        self.means = self.add_weight(shape=(k, d), initializer="zeros", trainable=False, name="means")
        self.scale_trils = self.add_weight(
            shape=(k, d, d), trainable=False, name="scale_trils",
            initializer=lambda shape, dtype=None: tf.eye(d, batch_shape=[k], dtype=dtype or "float32"))
        self.flows.build((None, d))
        self.built = True

    @property
    def kind(self) -> str:
        return "flow" if self.num_flows else "gmm"

    def describe(self) -> str:
        return (f"flow prior: {self.num_flows} {self.flow_type} flows on a Gaussian" if self.num_flows
                else f"gmm prior: {self.components} full-covariance Gaussian(s)")

    def call(self, noise, temperature: float = 1.0):
        noise = tf.cast(noise, tf.float32)
        if self.num_flows:
            # z = mu + L F^-1(T eps): the flows act on the whitened code.
            v = self.flows.inverse(tf.cast(temperature, tf.float32) * noise)
            return self.means[0] + tf.linalg.matvec(self.scale_trils[0], v)
        return mixture_from_noise(noise, self.weights_, self.means, self.scale_trils, temperature)

    def log_prob(self, z) -> tf.Tensor:
        """log p(z) [B] in nats for codes z [B, d] (float32)."""
        z = tf.cast(z, tf.float32)
        if self.num_flows:
            tril = tf.convert_to_tensor(self.scale_trils[0])
            v = tf.linalg.triangular_solve(tril, (z - self.means[0])[:, :, None], lower=True)[:, :, 0]
            e, log_det = self.flows(v)
            log_normal = -0.5 * tf.reduce_sum(tf.square(e) + _LOG_2PI, axis=-1)
            return log_normal + log_det - tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(tril))))
        distribution = tfp.distributions.MixtureSameFamily(
            tfp.distributions.Categorical(probs=tf.convert_to_tensor(self.weights_)),
            tfp.distributions.MultivariateNormalTriL(loc=tf.convert_to_tensor(self.means),
                                                     scale_tril=tf.convert_to_tensor(self.scale_trils)))
        return distribution.log_prob(z)

    def set_mixture(self, weights, means, scale_trils) -> None:
        """Assign a fitted mixture (weights [K], means [K, d], scale_trils [K, d, d] lower-triangular)."""
        weights, means, trils = (np.asarray(a, np.float64) for a in (weights, means, scale_trils))
        k, d = self.components, self.latent_dim
        if weights.shape != (k,) or means.shape != (k, d) or trils.shape != (k, d, d):
            raise ValueError(f"expected weights [{k}], means [{k}, {d}], scale_trils [{k}, {d}, {d}]. Received "
                             f"{weights.shape}, {means.shape}, {trils.shape}")
        self.weights_.assign((weights / weights.sum()).astype(np.float32))
        self.means.assign(means.astype(np.float32))
        self.scale_trils.assign(np.tril(trils).astype(np.float32))

    def get_config(self) -> dict:
        return {**super().get_config(), "latent_dim": self.latent_dim, "components": self.components,
                "num_flows": self.num_flows, "flow_type": self.flow_type}


def prior_layer(config) -> LatentPrior | None:
    """The unfitted ``LatentPrior`` a ModelConfig asks for (None for 'standard'), built."""
    if config.prior == "standard":
        return None
    if config.prior == "gmm":
        layer = LatentPrior(config.latent_dim, components=config.prior_components, name="prior", dtype="float32")
    elif config.prior == "flow":
        layer = LatentPrior(config.latent_dim, num_flows=config.prior_flows, flow_type=config.prior_flow_type,
                            name="prior", dtype="float32")
    else:
        raise ValueError(f"Unknown prior {config.prior!r}; expected one of {list(PRIOR_KINDS)}")
    layer.build()
    return layer


# ----- fitting ---------------------------------------------------------------------------------------------

def _gaussian_log_prob(z: np.ndarray, mean: np.ndarray, scale_tril: np.ndarray) -> np.ndarray:
    """log N(z; mean, L L^T) = -1/2 [d log 2pi + |L^-1 (z - mean)|^2] - sum_j log L_jj; [N] (float64)."""
    from scipy.linalg import solve_triangular

    white = solve_triangular(scale_tril, (z - mean).T, lower=True).T
    return -0.5 * (z.shape[-1] * _LOG_2PI + np.sum(white**2, axis=-1)) - np.sum(np.log(np.diag(scale_tril)))


def ledoit_wolf_shrinkage(codes) -> float:
    """The Ledoit-Wolf (2004, "A well-conditioned estimator for large-dimensional covariance matrices") weight
    a in [0, 1] of the target m I, m = tr(S) / d, for the biased sample covariance S of ``codes`` [N, d].

    With x_n the centred codes and |A|^2 the squared Frobenius norm divided by d,

        delta^2 = |S - m I|^2,   b^2 = min(delta^2, (1 / N^2) sum_n |x_n x_n^T - S|^2),   a = b^2 / delta^2,

    where sum_n |x_n x_n^T - S|^2 = (sum_n |x_n|^4 - N |S|_F^2) / d, since sum_n x_n^T S x_n = N |S|_F^2. The
    estimate of the a that minimises the expected squared error of (1 - a) S + a m I; 0 when S is already m I.
    """
    codes = _check_codes(codes)
    n, d = codes.shape
    centred = codes - codes.mean(0)
    covariance = centred.T @ centred / n
    target = np.trace(covariance) / d
    delta = (np.sum(covariance**2) - d * target**2) / d  # |S - m I|_F^2 / d, as tr(S) = d m
    if delta <= 0.0:
        return 0.0
    spread = (np.sum(np.sum(centred**2, axis=1) ** 2) - n * np.sum(covariance**2)) / (d * n**2)
    return float(min(spread, delta) / delta)


def shrunk_covariance(codes, shrinkage: float | None = None) -> tuple[np.ndarray, float]:
    """((1 - a) S + a m I [d, d], a): the biased covariance S of ``codes`` [N, d] shrunk towards m I, m = tr(S) / d,
    by ``shrinkage`` a in [0, 1] (None: ``ledoit_wolf_shrinkage``; 0: S itself, the maximum-likelihood fit)."""
    codes = _check_codes(codes)
    d = codes.shape[1]
    a = ledoit_wolf_shrinkage(codes) if shrinkage is None else float(shrinkage)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1] (or None for Ledoit-Wolf). Received: shrinkage={shrinkage!r}")
    covariance = np.cov(codes, rowvar=False, bias=True).reshape(d, d)
    return (1.0 - a) * covariance + a * (np.trace(covariance) / d) * np.eye(d), a


def fit_gaussian_mixture(codes, components: int = 1, ridge: float = 1e-6, iterations: int = 200,
                         tolerance: float = 1e-6, seed: int = 0,
                         shrinkage: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mixture of ``components`` full-covariance Gaussians fitted to ``codes`` [N, d]: (weights [K], means [K, d],
    scale_trils [K, d, d]), float64.

    K = 1: the mean of the codes and ``shrunk_covariance(codes, shrinkage)`` (None: Ledoit-Wolf; 0: the
    maximum-likelihood Gaussian), + ``ridge`` I. K > 1: EM from k-means++ centres
    and the pooled covariance, each covariance + ``ridge`` I (at least 1e-3: a component with fewer codes than
    dimensions is otherwise singular); stops when the mean log-likelihood per code changes by less than
    ``tolerance`` nats or after ``iterations`` steps.
    """
    codes = _check_codes(codes)
    n, d = codes.shape
    if not 1 <= components <= n:
        raise ValueError(f"components must be in [1, N={n}]. Received: components={components!r}")
    if components == 1:
        covariance = shrunk_covariance(codes, shrinkage)[0] + ridge * np.eye(d)
        return np.ones(1), codes.mean(0)[None], np.linalg.cholesky(covariance)[None]
    ridge = max(ridge, 1e-3)
    rng = np.random.default_rng(seed)
    centres = [codes[rng.integers(n)]]
    for _ in range(components - 1):  # k-means++ seeding
        distance = np.min([np.sum((codes - c) ** 2, 1) for c in centres], axis=0)
        centres.append(codes[rng.choice(n, p=distance / distance.sum())])
    pooled = np.cov(codes, rowvar=False, bias=True).reshape(d, d) + ridge * np.eye(d)
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
        if abs(current - previous) < tolerance:
            break
        previous = current
        responsibility = np.exp(log_joint - log_norm[:, None])
        counts = responsibility.sum(0) + 1e-10
        weights = counts / counts.sum()
        means = (responsibility.T @ codes) / counts[:, None]
        for k in range(components):
            centred = codes - means[k]
            covariance = (responsibility[:, k, None] * centred).T @ centred / counts[k] + ridge * np.eye(d)
            trils[k] = np.linalg.cholesky(covariance)
    return weights, means, trils


def fit_flow_prior(codes, num_flows: int, flow_type: str = "planar", steps: int = 400, learning_rate: float = 1e-2,
                   batch_size: int = 512, seed: int = 0) -> LatentPrior:
    """A ``LatentPrior`` of ``num_flows`` flows on the Gaussian of ``codes`` [N, d] (``fit_gaussian_mixture`` with
    one component: Ledoit-Wolf shrunk), then the flows by Adam on the mean negative log-density of the codes
    (minibatches of ``batch_size``, ``steps`` steps), starting near the identity (so the fit starts at the
    Gaussian's log-density and can only be pulled away from it by the likelihood)."""
    codes = _check_codes(codes)
    weights, means, trils = fit_gaussian_mixture(codes, 1)
    layer = LatentPrior(codes.shape[1], num_flows=num_flows, flow_type=flow_type, name="prior", dtype="float32")
    layer.build()
    layer.set_mixture(weights, means, trils)
    keras.utils.set_random_seed(seed)
    layer.flows.near_identity(seed)
    layer.flows.trainable = True  # for this fit only
    variables = layer.flows.trainable_weights
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)
    data = tf.constant(codes, tf.float32)
    rng = np.random.default_rng(seed)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(layer.log_prob(batch))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    for _ in range(steps):
        rows = rng.choice(len(codes), size=min(batch_size, len(codes)), replace=False)
        step(tf.gather(data, rows))
    layer.flows.trainable = False
    return layer


def fit_prior(codes, kind: str = "gmm", components: int = 1, num_flows: int = 4, flow_type: str = "planar",
              seed: int = 0, ridge: float = 1e-6, steps: int = 400, shrinkage: float | None = None) -> LatentPrior:
    """A fitted ``LatentPrior`` of ``kind`` 'gmm' (``components``, covariances + ``ridge`` I, one Gaussian's shrunk
    by ``shrinkage``: ``fit_gaussian_mixture``) or 'flow' (``num_flows`` of ``flow_type``, ``steps`` Adam steps)."""
    codes = _check_codes(codes)
    if kind == "gmm":
        layer = LatentPrior(codes.shape[1], components=components, name="prior", dtype="float32")
        layer.build()
        layer.set_mixture(*fit_gaussian_mixture(codes, components, ridge=ridge, seed=seed, shrinkage=shrinkage))
        return layer
    if kind == "flow":
        return fit_flow_prior(codes, num_flows, flow_type, steps=steps, seed=seed)
    raise ValueError(f"Unknown fitted prior kind {kind!r}; expected one of {list(PRIOR_KINDS[1:])}")


def encode_codes(model, dataset: tf.data.Dataset, mirrored: bool = False) -> np.ndarray:
    """Codes of every image in ``dataset`` (batches of images, or (images, ...)): z = f_K o ... o f_1(mean), the
    posterior mean through the model's flows, as ``model.encode`` gives (inference mode); [N, d] float64.
    ``mirrored``: then also the codes of every image flipped left to right, after the others: [2N, d]."""
    codes, mirror_codes = [], []
    for batch in dataset:
        images = tf.cast(batch[0] if isinstance(batch, (tuple, list)) else batch, tf.float32)
        codes.append(model.encode(images)[2].numpy())
        if mirrored:
            mirror_codes.append(model.encode(tf.reverse(images, axis=[2]))[2].numpy())
    return np.concatenate(codes + mirror_codes).astype(np.float64)


def _standard_normal_log_prob(z: np.ndarray) -> np.ndarray:
    return -0.5 * np.sum(z**2 + _LOG_2PI, axis=1)


def fit_latent_prior(model, train: tf.data.Dataset, validation: tf.data.Dataset, seed: int = 0,
                     mirrored: bool = False) -> dict:
    """Fit the prior ``model.config`` asks for to the posterior means of ``train`` and install it in ``model``.

    ``mirrored`` (for a model trained with random horizontal flips): fit to the codes of the training images and of
    their mirror images, both of which the decoder trained on; the held-out codes stay those of the images as they are.

    Returns what prior.json and metrics.json record: the kind, the codes fitted on, the Ledoit-Wolf shrinkage
    of the one Gaussian (None for a mixture), and the mean log-density (nats per code) of the held-out
    ``validation`` codes under the fit and under N(0, I).
    """
    if model.prior is None:
        raise ValueError(f"model has the standard prior; nothing to fit (prior={model.config.prior!r})")
    config = model.config
    codes = encode_codes(model, train, mirrored=mirrored)
    fitted = fit_prior(codes, config.prior, components=config.prior_components, num_flows=config.prior_flows,
                       flow_type=config.prior_flow_type, seed=seed)
    model.set_prior(fitted)
    held_out = encode_codes(model, validation)
    one_gaussian = config.prior == "flow" or config.prior_components == 1
    fitted_on = "posterior means" + (" of the images and their mirror images" if mirrored else "")
    return {"kind": config.prior, "description": fitted.describe(), "fitted_on": fitted_on,
            "covariance_shrinkage": ledoit_wolf_shrinkage(codes) if one_gaussian else None,
            "train_codes": int(len(codes)), "validation_codes": int(len(held_out)),
            "validation_log_prob": float(np.mean(model.prior.log_prob(held_out).numpy())),
            "validation_log_prob_standard_normal": float(np.mean(_standard_normal_log_prob(held_out))),
            "train_log_prob": float(np.mean(model.prior.log_prob(codes).numpy()))}


def save_prior(path: str, prior: LatentPrior) -> str:
    """Write ``prior`` (its config and weights) to ``path`` (.npz) atomically; returns the path."""
    from data_prep import atomic

    arrays = {f"weight_{i}": w for i, w in enumerate(prior.get_weights())}
    config = {key: prior.get_config()[key] for key in ("latent_dim", "components", "num_flows", "flow_type")}
    with atomic.atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, config=np.array(json.dumps(config)), **arrays)
    return path


def load_prior(path: str) -> LatentPrior:
    """The prior written by ``save_prior``."""
    with np.load(path) as values:
        config = json.loads(str(values["config"]))
        weights = [values[f"weight_{i}"] for i in range(len([k for k in values.files if k.startswith("weight_")]))]
    layer = LatentPrior(**config, name="prior", dtype="float32")
    layer.build()
    layer.set_weights(weights)
    return layer
