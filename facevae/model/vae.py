"""The convolutional VAE with normalizing flows (planar, radial, ...) on its latent: encoder, decoder and ``FaceVAE``.

Encoder: 4 x [Conv2D(3x3, stride 2, 'same') -> BatchNorm (fused kernel) -> LeakyReLU], Flatten, then
Dense heads for the posterior mean and log-variance; with ``config.log_var_max = m`` (the face presets: 2) the
log-variance is softly bounded above, log_var = m - softplus(m - raw). Without it, at 128 px a single batch could
reach log_var 20 in one latent dimension: its KL term exp(log_var) / 2 gave a gradient norm of 2.8e9 that wrecked the
whole network through Adam's moments (README, "At 128 px"). Decoder: Dense -> Reshape ->
4 x [Conv2DTranspose(k x k, stride 2) -> BatchNorm -> LeakyReLU], the last block without
BatchNorm or activation, giving logits; k = ``config.decoder_kernel``: 4 for new models (a multiple of the
stride, so every output pixel gets the same number of taps), 3 for models saved before the field existed.
The first ``config.decoder_resize_blocks`` blocks instead resize (bilinear x2) then convolve (Conv2D, stride 1):
a transposed convolution's even and odd output pixels use different taps, a resize block has the same kernel at
every pixel. Resizing the coarse blocks weakens the lines every 16 px that these decoders show at 64 px (their
cause is open: README, "Real faces, measured").
With ``config.decoder_full_res_filters = F`` > 0 the fourth block is a full one too (F channels, BatchNorm,
LeakyReLU, at full resolution) and a 3x3 stride-1 Conv2D maps its [B, S, S, F] features to the logits, so the
last step to pixels is non-linear; with 0 (models saved before the field existed) the fourth block gives the logits.
28 px images are zero-padded to 32 and cropped back.
With ``decoder="pixelcnn"`` the decoder is ``facevae.model.pixelcnn.AutoregressiveDecoder`` instead:
p(x|z) = prod_i p(x_i | x_<i, z), teacher-forced in the loss, pixel by pixel when decoding.

Per example, with z0 = mean + exp(log_var / 2) * eps and zK = f_K o ... o f_1(z0),
the loss (negative ELBO, nats) is

    -log p(x|zK) + beta * [log q0(z0|x) - sum_k log|det J_k(z_{k-1})| - log p(zK)]

where the bracket is the Monte-Carlo KL term and beta is the KL warm-up weight (1 after warm-up).
A Gaussian likelihood with sigma "learned" owns a trained log sigma (per channel [C], or shared []); with
"optimal" it holds the last training batch's sigma* (sigma*^2 = the batch MSE, under stop-gradient), which
evaluation uses. Either way the likelihood keeps its full normaliser, so the loss stays a negative ELBO.

The prior of the objective is N(0, I). ``sample`` maps its standard-normal noise through the model's fitted
latent prior (facevae.model.prior.LatentPrior, config.prior 'gmm' or 'flow'; N(0, I) itself until fitted).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import asdict
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from facevae.model import losses
from facevae.model.objective import LOSS_TERMS, Objective
from facevae.model.batchnorm import FusedBatchNormalization
from facevae.config import LEGACY_MODEL_FIELDS, ModelConfig
from facevae.flows import Flows
from facevae.model.pixelcnn import AutoregressiveDecoder
from facevae.model.prior import LatentPrior, prior_layer
from facevae.model.refine import refine_codes

__all__ = ["build_encoder", "build_decoder", "GaussianSampler", "FaceVAE"]

_PADDED_SIZE = {28: 32}
_CODE_GRAPHS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # FaceVAE -> its compiled refined ``code``


def _conv_block(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_act")(x)


def build_encoder(config: ModelConfig) -> keras.Model:
    """images [B, S, S, C] in [0, 1] -> (mean [B, d], log_var [B, d], features [B, F])."""
    size = config.image_size
    inputs = keras.Input((size, size, config.channels), name="images")
    x = inputs
    padded = _PADDED_SIZE.get(size, size)
    if padded != size:
        x = keras.layers.ZeroPadding2D((padded - size) // 2, name="pad")(x)
    for i, filters in enumerate(config.filters):
        x = _conv_block(x, filters, f"enc{i}")
    features = keras.layers.Flatten(name="features")(x)
    # The posterior heads stay float32 under a mixed-precision policy: sampling, flows and KL use them.
    mean = keras.layers.Dense(config.latent_dim, name="mean", dtype="float32")(features)
    log_var = keras.layers.Dense(config.latent_dim, name="log_var", dtype="float32")(features)
    if config.log_var_max is not None:
        log_var = SoftUpperBound(config.log_var_max, name="log_var_bound", dtype="float32")(log_var)
    return keras.Model(inputs, [mean, log_var, features], name="encoder")


@keras.saving.register_keras_serializable(package="facevae")
class SoftUpperBound(keras.layers.Layer):
    """y = limit - softplus(limit - x): y ~ x well below ``limit``, never above it; dy/dx = sigmoid(limit - x)."""

    def __init__(self, limit: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.limit = float(limit)

    def call(self, x):
        return self.limit - keras.ops.softplus(self.limit - x)

    def get_config(self) -> dict:
        return {**super().get_config(), "limit": self.limit}


def _upsample(x, filters: int, name: str, resize: bool, kernel: int, conv_name: str | None = None,
              dtype: str | None = None):
    """[B, H, W, F_in] -> [B, 2H, 2W, filters]: with ``resize`` a bilinear x2 resize then a 3x3 Conv2D (the same
    kernel at every output pixel), otherwise a stride-2 ``kernel`` x ``kernel`` Conv2DTranspose (whose even and odd
    output pixels use different taps). The convolution is named ``conv_name`` (default f"{name}_conv")."""
    conv_name = conv_name or f"{name}_conv"
    if resize:
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        return keras.layers.Conv2D(filters, 3, padding="same", name=conv_name, dtype=dtype)(x)
    return keras.layers.Conv2DTranspose(filters, kernel, strides=2, padding="same", name=conv_name, dtype=dtype)(x)


def _decoder_block(x, filters: int, name: str, resize: bool, kernel: int):
    """[B, H, W, F_in] -> [B, 2H, 2W, filters]: ``_upsample``, then BatchNorm and LeakyReLU(0.2)."""
    x = _upsample(x, filters, name, resize, kernel)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_act")(x)


def build_decoder(config: ModelConfig) -> keras.Model:
    """z [B, d] -> logits [B, S, S, C] (images are sigmoid(logits))."""
    size = config.image_size
    padded = _PADDED_SIZE.get(size, size)
    start = padded // 16
    inputs = keras.Input((config.latent_dim,), name="z")
    x = keras.layers.Dense(start * start * config.filters[-1], name="project")(inputs)
    x = keras.layers.Reshape((start, start, config.filters[-1]), name="reshape")(x)
    widths = list(reversed(config.filters[:-1]))
    for i, filters in enumerate(widths):
        x = _decoder_block(x, filters, f"dec{i}", i < config.decoder_resize_blocks, config.decoder_kernel)
    last_resize = config.decoder_resize_blocks == 4
    # float32 logits under a mixed-precision policy, so the likelihood is computed in float32.
    if config.decoder_full_res_filters:
        x = _decoder_block(x, config.decoder_full_res_filters, "dec_full", last_resize, config.decoder_kernel)
        x = keras.layers.Conv2D(config.channels, 3, padding="same", name="logits", dtype="float32")(x)
    else:
        x = _upsample(x, config.channels, "logits", last_resize, config.decoder_kernel, conv_name="logits",
                      dtype="float32")
    if padded != size:
        x = keras.layers.Cropping2D((padded - size) // 2, name="crop")(x)
    return keras.Model(inputs, x, name="decoder")


@keras.saving.register_keras_serializable(package="facevae")
class GaussianSampler(keras.layers.Layer):
    """Reparameterised draw z = mean + exp(log_var / 2) * eps, eps ~ N(0, I), from a seeded generator.

    ``call(mean, log_var, num_samples=None, noise=None)``: [B, d] -> (z, eps), each [B, d], or
    [S, B, d] when ``num_samples`` = S is given; ``noise`` supplies eps (same shape as z) instead
    of drawing it (the distributed trainer draws it per global batch, so results do not depend on
    how the batch is split across replicas).
    """

    def __init__(self, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mean, log_var, num_samples: int | None = None, noise=None):
        if noise is not None:
            eps = tf.cast(noise, mean.dtype)
            return mean + tf.exp(0.5 * log_var) * eps, eps
        shape = tf.shape(mean) if num_samples is None else tf.concat([[num_samples], tf.shape(mean)], 0)
        eps = keras.random.normal(shape, dtype=mean.dtype, seed=self.seed_generator)
        return mean + tf.exp(0.5 * log_var) * eps, eps

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def _images(data):
    """The images of a batch that may be images alone or (images, labels...)."""
    return data[0] if isinstance(data, (tuple, list)) else data


@keras.saving.register_keras_serializable(package="facevae")
class FaceVAE(keras.Model):
    """Convolutional VAE with K flows of ``config.flow_type`` on the latent (K = 0: plain VAE).

    Args:
        config: a ``ModelConfig`` or the dict of one (as ``get_config`` stores it).
        seed: seed of the sampling noise (None: random).

    ``call(images)`` returns the deterministic reconstruction decode(f(mean)).
    Metrics reported by fit/evaluate: the ``LOSS_TERMS`` of ``objective`` (means over examples).
    """

    def __init__(self, config: ModelConfig | dict, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(config, dict):  # a saved model; fields it lacks take their old behaviour
            config = ModelConfig(**{**LEGACY_MODEL_FIELDS, **config,
                                    "filters": tuple(config["filters"])})
        config.validate()
        self.config = config
        self.seed = seed
        self.encoder = build_encoder(config)
        if config.decoder == "pixelcnn":
            self.decoder = AutoregressiveDecoder(config.image_size, config.latent_dim, config.pixel_filters,
                                                 config.pixel_layers, window=config.pixel_window, name="decoder")
            self.decoder.build()
        else:
            self.decoder = build_decoder(config)
        # Sampling and flows run in float32 whatever the global dtype policy (mixed precision).
        self.flows = Flows(config.flows, config.latent_dim, mode=config.flow_mode, flow_type=config.flow_type,
                           fan_in_scaled=config.amortized_fan_in_scaled, name="flows", dtype="float32")
        self.sampler = GaussianSampler(seed, name="sampler", dtype="float32")
        self.kl_weight = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="kl_weight"
        )
        # log sigma of a Gaussian likelihood with sigma "learned" (trained) or "optimal" (the last training batch's
        # sigma*, which evaluation uses): one per channel, or one shared; None for a fixed sigma.
        self.log_sigma = None
        if config.likelihood == "gaussian" and isinstance(config.sigma, str):
            self.log_sigma = self.add_weight(
                shape=() if config.sigma_shared else (config.channels,), name="log_sigma",
                trainable=config.sigma == "learned", initializer=keras.initializers.Constant(math.log(0.1)),
                dtype="float32", aggregation="mean")
        # The fitted latent prior ``sample`` maps its noise through; None for the standard prior.
        self.prior: LatentPrior | None = prior_layer(config)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_TERMS}
        # Every weight exists once the constructor returns (the encoder and decoder are functional).
        self.flows.build((None, config.latent_dim), (None, self.encoder.outputs[2].shape[-1]))
        self.built = True

    # ----- the pieces -------------------------------------------------------------------
    def posterior(self, images, training: bool = False):
        """images [B, S, S, C] -> (mean, log_var, features) of q0(z0|x)."""
        return self.encoder(images, training=training)

    def apply_flows(self, z0, features=None):
        """z0 [..., d] -> (zK, sum_k log|det J_k|); ``features`` [B, F] drive amortized flows."""
        return self.flows(z0, features)

    def encode(self, images, training: bool = False):
        """images -> (mean, log_var, z) with z = f_K o ... o f_1(mean), the posterior mode's image."""
        mean, log_var, features = self.posterior(images, training=training)
        z, _ = self.apply_flows(mean, features)
        return mean, log_var, z

    @property
    def autoregressive(self) -> bool:
        """True when p(x|z) is the pixel-by-pixel ``AutoregressiveDecoder`` (its logits need x itself)."""
        return self.config.decoder == "pixelcnn"

    def decode_logits(self, z, training: bool = False, images=None):
        """z [B, d] -> logits [B, S, S, C] of p(x|z); an autoregressive decoder also needs the ``images`` x."""
        if self.autoregressive:
            if images is None:
                raise ValueError("decode_logits of an autoregressive decoder needs the images it scores")
            return self.decoder(z, images, training=training)
        return self.decoder(z, training=training)

    def decode(self, z, training: bool = False):
        """z [B, d] -> images [B, S, S, C] in [0, 1]: the likelihood's mean, or for an autoregressive
        decoder p(x_i = 1 | x_<i, z) along its deterministic greedy decoding."""
        if self.autoregressive:
            return self.decoder.generate(z)[1]
        return tf.sigmoid(self.decode_logits(z, training=training))

    def negative_log_joint(self, images, z):
        """-log p(x|z) - log N(z; 0, I) per example [B], up to the constant d/2 log(2 pi) (images [B, S, S, C],
        z [B, d]; decoder in inference mode): what ``code`` minimises."""
        logits = self.decode_logits(z, images=images)
        return self._reconstruction(images, logits) + 0.5 * tf.reduce_sum(tf.square(z), axis=-1)

    def code(self, images, refine_steps: int | None = None):
        """images [B, S, S, C] -> z [B, d]: the encoder's code f_K o ... o f_1(mean), then ``refine_steps`` (default
        ``config.refine_steps``) Adam steps of size ``config.refine_rate`` on each face's ``negative_log_joint``
        (facevae.model.refine; 0 steps: the encoder's code itself)."""
        images = tf.convert_to_tensor(images, tf.float32)
        steps = self.config.refine_steps if refine_steps is None else refine_steps
        if steps and tf.executing_eagerly():  # the loop as one graph: about twice as fast as eager steps
            if self not in _CODE_GRAPHS:
                _CODE_GRAPHS[self] = tf.function(self._refined_code, reduce_retracing=True)
            return _CODE_GRAPHS[self](images, steps, self.config.refine_rate)
        return self._refined_code(images, steps, self.config.refine_rate)

    def _refined_code(self, images, steps: int, rate: float):
        return refine_codes(lambda z: self.negative_log_joint(images, z), self.encode(images)[2], steps, rate)

    def reconstruct(self, images, refine_steps: int | None = None):
        """images -> decode(code(images, refine_steps)), deterministic; with 0 steps decode(encode(images).z)."""
        return self.decode(self.code(images, refine_steps))

    def prior_transform(self, noise, temperature: float = 1.0):
        """z [n, d] from standard-normal ``noise`` [n, d]: temperature * noise for the standard prior, else the
        fitted prior's map (facevae.model.prior.LatentPrior: for one Gaussian, mean + temperature * L noise)."""
        noise = tf.cast(noise, tf.float32)
        if self.prior is None:
            return noise * temperature
        return self.prior(noise, temperature=temperature)

    def set_prior(self, fitted: LatentPrior) -> None:
        """Install a fitted prior (a ``LatentPrior`` of the same kind and size as ``self.prior``): copy its weights."""
        if self.prior is None:
            raise ValueError("set_prior needs a model built with a fitted prior kind ('gmm' or 'flow'). "
                             f"Received: prior={self.config.prior!r}")
        if fitted.get_config()["components"] != self.prior.components or fitted.num_flows != self.prior.num_flows:
            raise ValueError(f"the fitted prior ({fitted.describe()}) does not match the model's ({self.prior.describe()})")
        self.prior.set_weights(fitted.get_weights())

    def sample(self, num_images: int | None = None, noise=None, temperature: float = 1.0):
        """Prior samples: decode(prior_transform(eps, temperature)), eps ~ N(0, I) [n, d] drawn here or given as
        ``noise``; with the standard prior that is decode(temperature * eps)."""
        if noise is None:
            noise = keras.random.normal(
                (num_images, self.config.latent_dim), seed=self.sampler.seed_generator
            )
        return self.decode(self.prior_transform(noise, temperature))

    def call(self, images, training: bool = False):
        mean, log_var, features = self.posterior(images, training=training)
        z, _ = self.apply_flows(mean, features)
        return self.decode(z, training=training)

    # ----- the objective ----------------------------------------------------------------
    def objective(self, images, training: bool = False, noise=None, kl_weight=None) -> Objective:
        """The one-sample objective per example: every training path and the evaluation call this.

        images [B, S, S, C] in [0, 1]; ``noise`` [B, d]: the standard-normal eps of
        z0 = mean + exp(log_var / 2) * eps (drawn here if None); ``kl_weight``: beta in
        loss = reconstruction + beta * kl, by default the warm-up weight ``self.kl_weight`` when
        ``training`` and 1 otherwise (then loss is the negative ELBO).

        Returns an ``Objective`` of [B] tensors (nats): reconstruction = -log p(x|zK); log_q0 = log q0(z0|x);
        log_det = sum_k log|det J_k|; log_prior = log p(zK); kl = log_q0 - log_det - log_prior; loss; and the
        draws z0, zk [B, d].
        """
        mean, log_var, features = self.posterior(images, training=training)
        z0, eps = self.sampler(mean, log_var, noise=noise)
        zk, log_det = self.apply_flows(z0, features)
        logits = self.decode_logits(zk, training=training, images=images)
        reconstruction = self._reconstruction(images, logits, training=training)
        log_q0 = losses.reparameterised_log_prob(eps, log_var)
        log_prior = losses.standard_normal_log_prob(zk)
        kl = log_q0 - log_det - log_prior
        if kl_weight is None and training:
            kl_weight = self.kl_weight
        weighted_kl = kl if kl_weight is None else tf.cast(kl_weight, kl.dtype) * kl
        return Objective(loss=reconstruction + weighted_kl, reconstruction=reconstruction, kl=kl, log_det=log_det,
                         log_q0=log_q0, log_prior=log_prior, z0=z0, zk=zk)

    def elbo_terms(self, images, training: bool = False, noise=None) -> dict[str, tf.Tensor]:
        """``objective`` with beta = 1 (loss = the negative ELBO) as a dict of its fields, each [B] (z0, zk [B, d])."""
        return self.objective(images, training=training, noise=noise, kl_weight=1.0)._asdict()

    def log_importance_weights(self, images, num_samples: int):
        """log w_s = log p(x|zK_s) + log p(zK_s) - log q0(z0_s|x) + sum_k log|det J_k|; shape [S, B].

        With S samples, -logsumexp_s(log w_s) + log S is the importance-weighted bound on -log p(x)
        (Burda et al. 2015). The encoder runs once, and so does an autoregressive decoder's x-context;
        S draws share them.
        """
        mean, log_var, features = self.posterior(images)
        z0, eps = self.sampler(mean, log_var, num_samples=num_samples)  # [S, B, d]
        batch = tf.shape(mean)[0]
        flat_z0 = tf.reshape(z0, [-1, self.config.latent_dim])
        flat_features = tf.tile(features, [num_samples, 1])
        zk, log_det = self.apply_flows(flat_z0, flat_features)
        repeated = tf.tile(images, [num_samples, 1, 1, 1])
        if self.autoregressive:  # one x-context per image, broadcast over the S draws
            draws = tf.reshape(zk, [num_samples, batch, self.config.latent_dim])
            logits = self.decoder.logits(draws, self.decoder.context(images)[None])
            logits = tf.reshape(logits, tf.shape(repeated))
        else:
            logits = self.decode_logits(zk)
        log_likelihood = -self._reconstruction(repeated, logits)
        log_q0 = losses.reparameterised_log_prob(eps, log_var)  # [S, B]
        flat = log_likelihood + log_det + losses.standard_normal_log_prob(zk)
        return tf.reshape(flat, [num_samples, batch]) - log_q0

    def likelihood_log_sigma(self, images, logits, training: bool = False):
        """The log sigma tensor the Gaussian likelihood uses, or None (fixed sigma, other likelihoods).

        learned: the trained weight ([C] or []). optimal: when ``training``, this batch's sigma* (stop-gradient;
        stored in ``log_sigma`` for evaluation and logging), else the stored value of the last training batch.
        """
        if self.log_sigma is None:
            return None
        if self.config.sigma != "optimal":
            return self.log_sigma
        if training:
            optimum = losses.optimal_log_sigma(images, logits, shared=self.config.sigma_shared)
            self.log_sigma.assign(optimum)
            return optimum
        return tf.stop_gradient(tf.convert_to_tensor(self.log_sigma))

    def _reconstruction(self, images, logits, training: bool = False):
        """-log p(x|z) per example [B] from the likelihood registry entry named by the config."""
        log_sigma = self.likelihood_log_sigma(images, logits, training=training)
        return losses.LIKELIHOODS[self.config.likelihood].nll(images, logits, self.config, log_sigma)

    @property
    def sigma(self) -> "np.ndarray | float | None":
        """The Gaussian likelihood's sigma now ([C], [] or the fixed float), or None for other likelihoods."""
        if self.config.likelihood != "gaussian":
            return None
        if self.log_sigma is None:
            return float(self.config.sigma)
        return np.exp(self.log_sigma.numpy().astype(np.float64))

    # ----- Keras training protocol ------------------------------------------------------
    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update_trackers(self, terms: Objective):
        for name, value in terms.terms().items():
            self.trackers[name].update_state(tf.reduce_mean(value))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            terms = self.objective(_images(data), training=True)
            loss = tf.reduce_mean(terms.loss)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(terms)

    def test_step(self, data):
        return self._update_trackers(self.objective(_images(data), training=False))

    def get_config(self) -> dict:
        values = asdict(self.config)
        values["filters"] = list(values["filters"])
        return {"config": values, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> "FaceVAE":
        return cls(**config)

