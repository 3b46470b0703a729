"""Typed configuration: the one source of defaults, with one preset per dataset.

A run is described by three dataclasses split by concern (data, model, training).
``--dataset X`` picks ``PRESETS[X]``; command-line flags override single fields; the
resolved ``RunConfig`` is written to ``<run_dir>/config.json`` and can be read back
with ``RunConfig.load`` to resume or re-run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from data_prep.sources import DATASET_NAMES

__all__ = [
    "DATASETS",
    "DECODERS",
    "FLOW_MODES",
    "IMAGE_SIZES",
    "JIT_CHOICES",
    "LR_SCHEDULES",
    "SIGMA_MODES",
    "PRIORS",
    "LEGACY_MODEL_FIELDS",
    "STRATEGIES",
    "LIKELIHOODS",
    "FLOW_TYPES",
    "likelihood_names",
    "flow_type_names",
    "prior_names",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "RunConfig",
    "PRESETS",
    "preset",
    "flag",
    "SEED_MAX",
]

DATASETS = DATASET_NAMES  # the registry of data_prep.sources is the one list of datasets
IMAGE_SIZES = (28, 32, 64, 128, 256)
FLOW_MODES = ("global", "amortized")
DECODERS = ("conv", "pixelcnn")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
JIT_CHOICES = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine")
SEED_MAX = 2**32 - 1  # the seeds of numpy and keras.utils.set_random_seed are 32-bit
SIGMA_MODES = ("learned", "optimal")
# What a saved model config that lacks one of these fields (saved before the field existed) describes: the old
# 3x3 decoder kernels, amortized flows that read the encoder's features unscaled.
LEGACY_MODEL_FIELDS = {"decoder_kernel": 3, "amortized_fan_in_scaled": False}


def flag(help: str, **options: Any) -> dict:
    """Field metadata that makes a config field a flag of ``python -m facevae.train`` (facevae.train builds the
    parser from it). ``help`` is the flag's text; options: ``flag`` (its name when not --FIELD-NAME), ``parse``
    (``positive_int``, ``non_negative_int``, ``positive_float``, ``int``, ``float``, ``str``, ``sigma``: 'learned',
    'optimal' or a positive number, ``filters``: four comma-separated positive widths), ``choices`` (a
    tuple, or a function returning one, called when the parser is built),
    ``none`` (what a None default means), ``also`` (another "section.field" set to the same value),
    ``switch`` (a flag without value that sets True; ``switch=False``: one that sets False, as --no-flip), ``group`` (help section; default: the config's section),
    ``resume`` (True: may change on --resume, the change is recorded in config.json)."""
    return {"help": help, **options}


def likelihood_names() -> tuple[str, ...]:
    """The names in the likelihood registry, facevae.model.losses.LIKELIHOODS (imports TensorFlow)."""
    from facevae.model.losses import LIKELIHOODS as registry

    return tuple(registry)


def flow_type_names() -> tuple[str, ...]:
    """The names in the flow registry, facevae.flows.registry.FLOW_TYPES (imports TensorFlow)."""
    from facevae.flows.registry import FLOW_TYPES as registry

    return tuple(registry)


def prior_names() -> tuple[str, ...]:
    """The latent prior kinds, facevae.model.prior.PRIOR_KINDS (imports TensorFlow)."""
    from facevae.model.prior import PRIOR_KINDS

    return tuple(PRIOR_KINDS)


# Names derived from the registries on first use (PEP 562), so that importing this module stays light.
_DERIVED = {"LIKELIHOODS": likelihood_names, "FLOW_TYPES": flow_type_names, "PRIORS": prior_names}


def __getattr__(name: str) -> Any:
    if name in _DERIVED:
        return _DERIVED[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {list(allowed)}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive. Received: {name}={value!r}")


@dataclass
class DataConfig:
    """Where images come from and how they are fed.

    dataset: one of DATASETS; ``synthetic`` needs no files.
    data_dir: shard directory made by ``python -m data_prep`` (or raw data to prepare).
    attributes: attribute table prepared with a raw ``data_dir`` into its shards (None: none).
    image_size: side in pixels; channels: 1 (grey) or 3 (RGB).
    train_count / validation_count: number of built-in faces (synthetic only).
    binarize: ``"dynamic"`` resamples binary pixels each epoch (MNIST), else None.
    flip: random horizontal flips (faces).
    shift: random translations of training images from shards by up to this many pixels down and across
    (reflect-padded; data_prep.pipeline.load); 0 = none.
    shift_until: the share of the epochs that are shifted: epochs 0 .. ceil(shift_until * epochs) - 1 train on
    translated images, the rest on the images as they are (``shift_off_epoch``); 1 = every epoch.
    """

    dataset: str = "synthetic"
    data_dir: str | None = field(default=None, metadata=flag(
        "shards made by `python -m data_prep` (raw data is prepared on first use)", parse="str", none="none"))
    image_size: int = field(default=64, metadata=flag(
        "image side in pixels", parse="int", choices=IMAGE_SIZES, also="model.image_size"))
    channels: int = field(default=3, metadata=flag(
        "1 (grey) or 3 (RGB); for a --data-dir of shards the default is what their manifest.json says",
        parse="int", choices=(1, 3), also="model.channels"))
    attributes: str | None = field(default=None, metadata=flag(
        "attribute table of a raw --data-dir folder (FFHQ features CSV, CelebA list_attr_celeba.txt or a CSV), "
        "prepared into its shards", parse="str", none="none"))
    train_count: int = field(default=8000, metadata=flag("built-in faces to train on", parse="positive_int"))
    validation_count: int = 1000
    binarize: str | None = None
    flip: bool = field(default=False, metadata=flag(
        "no random horizontal flips of training images (the face presets flip)", flag="--no-flip", switch=False))
    shift: int = field(default=0, metadata=flag(
        "randomly translate each training image from shards by up to N pixels down and across (reflect-padded "
        "edges); 0 = off", parse="non_negative_int"))
    shift_until: float = field(default=1.0, metadata=flag(
        "share of the epochs, from the first, that --shift applies to (0.7: the first 70%%); later epochs train "
        "on the images as they are, which weakens the faint line grid the shift brings but keeps fewer identities "
        "(README); 1 = every epoch",
        parse="positive_float", resume=True))

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        if self.dataset == "synthetic" and self.data_dir is not None:
            raise ValueError(f"--data-dir {self.data_dir} is not read by --dataset synthetic (its faces are rendered, "
                             f"not loaded); drop --data-dir, or name the data's kind with --dataset "
                             f"{'|'.join(d for d in DATASETS if d != 'synthetic')}")
        if self.attributes is not None and self.data_dir is None:
            raise ValueError(f"--attributes {self.attributes} goes with a raw --data-dir folder, whose shards it is "
                             "prepared into; pass --data-dir too (or prepare shards with python -m data_prep "
                             "folder|ffhq --attributes)")
        _choice("image size", self.image_size, IMAGE_SIZES)
        _choice("channels", self.channels, (1, 3))
        if not 0 <= self.shift <= self.image_size // 2:
            raise ValueError(f"--shift {self.shift} is outside 0..{self.image_size // 2} (half of --image-size "
                             f"{self.image_size}); pass a smaller --shift")
        if not 0 < self.shift_until <= 1:
            raise ValueError(f"--shift-until {self.shift_until} is not a share of the epochs; pass a number in (0, 1]")
        if self.shift_until < 1 and not self.shift:
            raise ValueError(f"--shift-until {self.shift_until} stops a shift that is off; pass --shift N too, or "
                             "drop --shift-until")
        if self.dataset == "synthetic" and self.shift:
            raise ValueError(f"--shift {self.shift} translates images read from shards; --dataset synthetic renders "
                             "its faces (centred by construction): drop --shift")
        _positive("train_count", self.train_count)
        _positive("validation_count", self.validation_count)
        if self.binarize is not None:
            _choice("binarize", self.binarize, ("dynamic",))

    def shift_off_epoch(self, epochs: int) -> int | None:
        """The first epoch (counted from 0) trained on the images as they are when ``shift_until`` < 1:
        ceil(shift_until * epochs); None when every epoch is shifted (or none is)."""
        if not self.shift or self.shift_until >= 1:
            return None
        return math.ceil(self.shift_until * epochs)


@dataclass
class ModelConfig:
    """Architecture and objective.

    latent_dim: size d of z. filters: encoder Conv2D widths (decoder mirrors them).
    flows: number K of flows (0 = plain VAE); flow_type: a name in the flow registry
    (facevae.flows.registry.FLOW_TYPES: ``planar``, ...; config.json files without it mean planar);
    flow_mode: ``global`` (one set of parameters per flow, e.g. planar u, w, b) or ``amortized``
    (predicted per image by the encoder).
    likelihood: ``gaussian`` (``sigma``: a fixed float in pixel units of [0, 1]; ``"learned"``: a trained log
    sigma per channel, or one shared with ``sigma_shared``; ``"optimal"``: per training batch sigma^2 = MSE under
    stop-gradient, Rybkin et al. 2021; always with the full Gaussian normaliser), ``bernoulli``
    (binary pixels, decoder gives logits), or ``mse``: the published face-VAE objective
    ``r_loss_factor * mean((x - x_hat)^2)``, a Gaussian with sigma^2 = D / (2 r_loss_factor).
    decoder: ``conv`` (Conv2DTranspose blocks, one logit per pixel from z alone) or ``pixelcnn``
    (``facevae.model.pixelcnn``: autoregressive over pixels, binary single-channel images with the
    Bernoulli likelihood only); pixel_filters / pixel_layers: width and depth of its masked stack;
    pixel_window: odd side of its first (type-A) masked kernel, 7 by default; smaller leaves more to z.
    decoder_kernel: side of the conv decoder's stride-2 Conv2DTranspose kernels. 4 (a multiple of the stride)
    gives every output pixel the same number of taps, which removes the strong seam grid of 3x3 kernels (though the
    trained taps of even and odd pixels still differ: see decoder_resize_blocks); models saved before this field
    existed load with their 3x3 kernels (LEGACY_MODEL_FIELDS).
    amortized_fan_in_scaled: amortized flows read the encoder's features divided by their number F, so one Adam step
    moves a predicted flow parameter about as far as a global one (facevae.flows.layers); models saved before the
    field existed load unscaled. Not a flag: unscaled amortized flows at latent 800 did not train.
    log_var_max: soft upper bound m on the posterior log-variance, log_var = m - softplus(m - raw) <= m (the
    slope sigmoid(m - raw) is near 1 well below m); None (the default, and models saved before the field existed):
    unbounded. The face presets use 2 (sd at most e times the prior's; a dimension the decoder ignores has its
    optimum at the prior, log_var 0), which caps the KL term's gradient exp(log_var) / 2 per dimension, whose
    spikes stopped 128-px training.
    decoder_resize_blocks: how many of the conv decoder's four blocks, from the first (coarsest), double the size
    by a bilinear resize then a 3x3 Conv2D instead of a stride-2 Conv2DTranspose. The all-transposed decoder shows
    lines every 16 px at 64 px (``facevae.analysis.metrics.seam_ratio``; their cause is open); resizing the coarse
    blocks weakens them (2 blocks: 1.15 against 1.23 on real faces), but the resize blocks are smoother, and so far
    keep fewer identities (README, "Real faces, measured"). 0 (the default, and what saved configs without the
    field mean) is the all-transposed decoder.
    decoder_full_res_filters: 0 (the default, and what saved configs without the field mean): the fourth decoder
    block gives the logits, so the step from the last hidden features (half the image size) to the pixels is linear.
    F > 0: the fourth block gives F channels with BatchNorm and LeakyReLU at full resolution, and a 3x3 stride-1
    Conv2D gives the logits. Measured with F = 32 on real faces it kept fewer identities, and fewer of its samples
    were detected, so the presets keep 0 (README, "A non-linear block at full resolution").
    prior: what ``sample`` draws z from (facevae.model.prior): ``standard`` N(0, I); ``gmm`` a mixture of
    ``prior_components`` full-covariance Gaussians (1: the closed-form Gaussian fit); ``flow`` ``prior_flows``
    flows of ``prior_flow_type`` on top of a fitted Gaussian. Fitted to the training set's posterior means at the
    end of training (or by ``python -m facevae.fit_prior``); N(0, I) until fitted.
    refine_steps / refine_rate: inference only (training ignores them). ``reconstruct`` and ``code``, and the
    export's endpoints of those names, start from the encoder's code and take ``refine_steps`` Adam steps of
    size ``refine_rate`` on each face's -log p(x|z) - log N(z; 0, I) (facevae.model.refine); 0 = the encoder's code.
    """

    image_size: int = 64
    channels: int = 3
    latent_dim: int = field(default=32, metadata=flag("latent size d", parse="positive_int"))
    filters: tuple[int, ...] = field(default=(32, 64, 64, 64), metadata=flag(
        "the four encoder Conv2D widths, mirrored by the decoder, e.g. 64,128,128,256", parse="filters"))
    flows: int = field(default=0, metadata=flag("number K of flows on the latent; 0 = plain VAE", parse="non_negative_int"))
    flow_mode: str = field(default="global", metadata=flag(
        "'global': one set of parameters per flow; 'amortized': predicted per image by the encoder", choices=FLOW_MODES))
    flow_type: str = field(default="planar", metadata=flag(
        "kind of each of the K flows (facevae/flows/registry.py): planar y = z + u_hat tanh(w.z + b), radial "
        "y = z + beta (z - z0) / (alpha + |z - z0|)", choices=flow_type_names))
    amortized_fan_in_scaled: bool = True
    likelihood: str = field(default="gaussian", metadata=flag(
        "p(x|z): gaussian (--sigma: fixed, learned or optimal), bernoulli (binary pixels), mse (r_loss_factor * MSE, the published "
        "face recipe)", choices=likelihood_names))
    sigma: float | str = field(default=0.1, metadata=flag(
        "pixel noise std of --likelihood gaussian: a number (pixels in [0, 1]), 'learned' (a trained log sigma per "
        "channel) or 'optimal' (per batch sigma^2 = MSE, Rybkin et al. 2021)", parse="sigma"))
    sigma_shared: bool = field(default=False, metadata=flag(
        "one learned/optimal sigma for all channels instead of one per channel", switch=True))
    r_loss_factor: float = field(default=10000.0, metadata=flag(
        "weight of the MSE for --likelihood mse", parse="positive_float"))
    decoder: str = field(default="conv", metadata=flag(
        "p(x|z): conv (Conv2DTranspose blocks) or pixelcnn (autoregressive over pixels; binary single-channel "
        "images, --likelihood bernoulli)", choices=DECODERS))
    pixel_filters: int = field(default=32, metadata=flag(
        "width of the pixelcnn masked convolutions", parse="positive_int"))
    pixel_layers: int = field(default=0, metadata=flag(
        "pixelcnn 3x3 layers after its first one; more see further up the image", parse="non_negative_int"))
    pixel_window: int = field(default=7, metadata=flag(
        "odd side of the pixelcnn's first masked kernel: 7 sees 24 earlier pixels, 5 sees 12, 3 sees 4; smaller "
        "leaves more of the image to z", parse="positive_int"))
    decoder_kernel: int = field(default=4, metadata=flag(
        "side of the decoder's stride-2 Conv2DTranspose kernels; 4 gives every pixel the same number of taps, 3 is the "
        "old decoder (a strong seam grid)",
        parse="positive_int"))
    log_var_max: float | None = field(default=None, metadata=flag(
        "soft upper bound m on the posterior log-variance, log_var = m - softplus(m - raw); the face presets use 2 "
        "(posterior sd at most e times the prior's), which stops the KL spikes that wrecked 128-px training",
        parse="float", none="no bound"))
    decoder_resize_blocks: int = field(default=0, metadata=flag(
        "how many decoder blocks, from the coarsest, resize (bilinear x2, then 3x3 Conv2D) instead of a stride-2 "
        "Conv2DTranspose, 0-4; 2 weakens the 16-px line grid on real faces but keeps fewer identities (README)",
        parse="non_negative_int"))
    decoder_full_res_filters: int = field(default=0, metadata=flag(
        "0: the fourth decoder block gives the logits; F > 0: it gives F channels (BatchNorm, LeakyReLU) at full "
        "resolution and a 3x3 Conv2D maps them to the logits; 32 kept fewer identities on real faces (README)",
        parse="non_negative_int"))
    prior: str = field(default="standard", metadata=flag(
        "what samples are drawn from: 'standard' N(0, I); 'gmm' a Gaussian mixture (--prior-components) or "
        "'flow' (--prior-flows flows on a Gaussian) fitted to the training codes after training", choices=prior_names))
    prior_components: int = field(default=1, metadata=flag(
        "Gaussians in --prior gmm; 1 = one full-covariance Gaussian in closed form, more are fitted by EM",
        parse="positive_int"))
    prior_flows: int = field(default=4, metadata=flag(
        "flows of --prior flow on top of the fitted Gaussian, fitted by maximum likelihood", parse="positive_int"))
    prior_flow_type: str = field(default="planar", metadata=flag(
        "kind of the --prior flow flows (facevae/flows/registry.py)", choices=flow_type_names))
    refine_steps: int = field(default=0, metadata=flag(
        "after encoding a face, improve its code by this many gradient steps on -log p(x|z) - log p(z) before "
        "reconstructing it (semi-amortised inference; slower, keeps more of the person on unseen faces); 0 = the "
        "encoder's code", parse="non_negative_int", resume=True))
    refine_rate: float = field(default=0.03, metadata=flag(
        "Adam step size of --refine-steps: each step moves a code coordinate by about this much",
        parse="positive_float", resume=True))

    def validate(self) -> None:
        _choice("image size", self.image_size, IMAGE_SIZES)
        _choice("channels", self.channels, (1, 3))
        _positive("latent_dim", self.latent_dim)
        if len(self.filters) != 4 or any(f <= 0 for f in self.filters):
            raise ValueError(f"filters must be 4 positive widths. Received: filters={self.filters!r}")
        if self.flows < 0:
            raise ValueError(f"flows must be >= 0. Received: flows={self.flows!r}")
        _choice("flow mode", self.flow_mode, FLOW_MODES)
        _choice("flow type", self.flow_type, flow_type_names())
        if not isinstance(self.amortized_fan_in_scaled, bool):
            raise ValueError("amortized_fan_in_scaled must be True or False. "
                             f"Received: amortized_fan_in_scaled={self.amortized_fan_in_scaled!r}")
        _choice("likelihood", self.likelihood, likelihood_names())
        if isinstance(self.sigma, str):
            _choice("sigma", self.sigma, SIGMA_MODES)
        else:
            _positive("sigma", self.sigma)
        if not isinstance(self.sigma_shared, bool):
            raise ValueError(f"sigma_shared must be True or False. Received: sigma_shared={self.sigma_shared!r}")
        _positive("r_loss_factor", self.r_loss_factor)
        if not isinstance(self.decoder_kernel, int) or self.decoder_kernel < 2:
            raise ValueError(f"decoder_kernel must be an integer >= 2. Received: decoder_kernel={self.decoder_kernel!r}")
        if self.log_var_max is not None and not (isinstance(self.log_var_max, (int, float))
                                                 and math.isfinite(self.log_var_max)):
            raise ValueError(f"log_var_max must be a finite number or None. Received: log_var_max={self.log_var_max!r}")
        if not isinstance(self.decoder_resize_blocks, int) or not 0 <= self.decoder_resize_blocks <= 4:
            raise ValueError("decoder_resize_blocks must be an integer from 0 to 4 (the decoder has four blocks). "
                             f"Received: decoder_resize_blocks={self.decoder_resize_blocks!r}")
        if not isinstance(self.decoder_full_res_filters, int) or self.decoder_full_res_filters < 0:
            raise ValueError("decoder_full_res_filters must be an integer >= 0. "
                             f"Received: decoder_full_res_filters={self.decoder_full_res_filters!r}")
        _choice("prior", self.prior, prior_names())
        _positive("prior_components", self.prior_components)
        _positive("prior_flows", self.prior_flows)
        _choice("prior flow type", self.prior_flow_type, flow_type_names())
        if not isinstance(self.refine_steps, int) or self.refine_steps < 0:
            raise ValueError(f"refine_steps must be an integer >= 0. Received: refine_steps={self.refine_steps!r}")
        _positive("refine_rate", self.refine_rate)
        _choice("decoder", self.decoder, DECODERS)
        if self.decoder == "pixelcnn" and (self.likelihood != "bernoulli" or self.channels != 1):
            raise ValueError("decoder='pixelcnn' models binary single-channel images: it needs likelihood='bernoulli' "
                             f"and channels=1. Received: likelihood={self.likelihood!r}, channels={self.channels!r}")
        _positive("pixel_filters", self.pixel_filters)
        if self.pixel_layers < 0:
            raise ValueError(f"pixel_layers must be >= 0. Received: pixel_layers={self.pixel_layers!r}")
        if self.pixel_window < 3 or self.pixel_window % 2 == 0:
            raise ValueError(f"pixel_window must be an odd number >= 3. Received: pixel_window={self.pixel_window!r}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    kl_weight: beta in the training loss reconstruction + beta * KL (1 = the negative ELBO; beta > 1 trades
    reconstruction for codes closer to the prior, a beta-VAE). Validation losses, evaluation and the exported model
    always use beta = 1, so what they report stays the negative ELBO.
    kl_warmup_epochs: the KL weight rises linearly from 0 to kl_weight over this many epochs
    (0 = full weight from the start). steps_per_epoch: None = one pass over the data.
    batch_size: images per replica; a step takes batch_size * replicas images (the global batch).
    strategy: tf.distribute strategy, one of STRATEGIES (see facevae.training.distributed.make_strategy).
    mixed_precision: mixed_float16 on GPU, mixed_bfloat16 on CPU; sampling, flows and loss stay float32.
    jit_compile: XLA for the training step: "on", "off", or "auto" (on for GPU, off for CPU).
    keep_checkpoints: the newest N checkpoints are kept, plus the best by validation loss (0: all).
    lr_schedule: "constant" (learning_rate throughout) or "cosine": lr_t = learning_rate (1 + cos(pi min(t/T, 1))) / 2
    at optimizer step t, T = epochs * steps per epoch (facevae.training.schedules).
    precise_bn_batches: before each validation pass and before export, BatchNorm moving statistics are
    re-estimated from this many training batches (facevae.model.batchnorm.precise_batch_norm; 0 = keep the
    moving averages).
    ema_momentum: m > 0 keeps an exponential moving average of the trainable weights, a_t = m a_(t-1) + (1 - m) w_t
    after optimizer step t (a_1 = w_1; Keras' Adam ``use_ema``), and puts it in place of the weights when training
    ends, before the BatchNorm statistics are re-estimated and the prior is fitted, so the export, the final
    checkpoint and metrics.json describe the averaged model (epoch sheets, history.csv and the best checkpoint use
    the raw weights); it averages over about 1 / (1 - m) steps. 0 = off. Resumed mid-run, training continues
    both the weights and their average; resumed after it finished (more --epochs), it starts from the average.
    """

    epochs: int = field(default=10, metadata=flag("epochs in all", parse="positive_int", group="training",
                                                   resume=True))
    batch_size: int = field(default=64, metadata=flag(
        "images per step per replica; the global batch is this times the replica count", parse="positive_int",
        group="training"))
    learning_rate: float = field(default=5e-4, metadata=flag(
        "Adam step size (the peak of --lr-schedule cosine)", parse="positive_float", group="training", resume=True))
    lr_schedule: str = field(default="constant", metadata=flag(
        "step size over training: 'constant', or 'cosine': lr_t = lr (1 + cos(pi t / T)) / 2 over the T = epochs "
        "x steps-per-epoch optimizer steps", choices=LR_SCHEDULES, group="training", resume=True))
    kl_weight: float = field(default=1.0, metadata=flag(
        "beta in the training loss reconstruction + beta * KL; 1 = the negative ELBO, above 1 a beta-VAE "
        "(validation and evaluation always report the ELBO)", parse="positive_float", group="training"))
    kl_warmup_epochs: int = field(default=0, metadata=flag(
        "epochs over which the KL weight rises linearly from 0 to --kl-weight; 0 = off", flag="--kl-warmup",
        parse="non_negative_int", group="training"))
    seed: int = field(default=0, metadata=flag(
        "seed of data order, initial weights and sampling", parse="int", group="training"))
    output_dir: str = field(default="runs", metadata=flag("where run directories go", parse="str", group="output"))
    run_name: str | None = field(default=None, metadata=flag(
        "name of the run directory and export", parse="str", none="DATASET-YYYYMMDD-HHMMSS", group="output"))
    steps_per_epoch: int | None = field(default=None, metadata=flag(
        "cap on steps per epoch", parse="positive_int", none="one pass over the data", group="training",
        resume=True))
    export_dir: str = field(default="saved_models", metadata=flag(
        "where the SavedModel goes, as EXPORT_DIR/RUN_NAME", parse="str", group="output", resume=True))
    strategy: str = field(default="auto", metadata=flag(
        "tf.distribute strategy: 'auto' = multiworker if TF_CONFIG names several workers, else mirrored if there "
        "are several GPUs, else default; 'default' = one device; 'mirrored' = all local GPUs (or logical CPUs); "
        "'multiworker' = MultiWorkerMirroredStrategy from TF_CONFIG", choices=STRATEGIES, group="hardware",
        resume=True))
    mixed_precision: bool = field(default=False, metadata=flag(
        "compute in mixed_float16 on GPU / mixed_bfloat16 on CPU; sampling, flows, KL and loss stay float32",
        switch=True, group="hardware"))
    jit_compile: str = field(default="auto", metadata=flag(
        "XLA-compile the training step: 'auto' = on with a GPU, off on CPU, where it measured slower",
        choices=JIT_CHOICES, group="hardware", resume=True))
    keep_checkpoints: int = field(default=3, metadata=flag(
        "checkpoints kept: the newest N, plus the best by validation loss; 0 keeps all", parse="non_negative_int",
        group="output", resume=True))
    precise_bn_batches: int = field(default=8, metadata=flag(
        "training batches over which BatchNorm statistics are re-estimated before each validation and before "
        "export (precise BN); 0 = keep the moving averages", parse="non_negative_int", group="training",
        resume=True))
    ema_momentum: float = field(default=0.0, metadata=flag(
        "export an exponential moving average of the weights, a = m a + (1 - m) w after every step, kept over about "
        "1 / (1 - m) steps (0.998: 500); the BatchNorm statistics and the prior are fitted for it. In [0, 1); 0 = "
        "off. Fixed for the run (not changeable on --resume)", parse="float", group="training"))

    def validate(self) -> None:
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("jit_compile", self.jit_compile, JIT_CHOICES)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not isinstance(self.keep_checkpoints, int) or self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be an integer >= 0. Received: keep_checkpoints={self.keep_checkpoints!r}")
        if not isinstance(self.mixed_precision, bool):
            raise ValueError(f"mixed_precision must be True or False. Received: mixed_precision={self.mixed_precision!r}")
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("learning_rate", self.learning_rate)
        _positive("kl_weight", self.kl_weight)
        if self.kl_warmup_epochs < 0:
            raise ValueError(
                f"kl_warmup_epochs must be >= 0. Received: kl_warmup_epochs={self.kl_warmup_epochs!r}"
            )
        if self.steps_per_epoch is not None:
            _positive("steps_per_epoch", self.steps_per_epoch)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"--seed must be an integer from 0 to {SEED_MAX} (2**32 - 1). Received: seed={self.seed!r}")
        if not isinstance(self.precise_bn_batches, int) or self.precise_bn_batches < 0:
            raise ValueError("precise_bn_batches must be an integer >= 0. "
                             f"Received: precise_bn_batches={self.precise_bn_batches!r}")
        if isinstance(self.ema_momentum, bool) or not isinstance(self.ema_momentum, (int, float)) \
                or not 0 <= self.ema_momentum < 1:
            raise ValueError(f"--ema-momentum must be a number in [0, 1) (0 = off). Received: {self.ema_momentum!r}")


@dataclass
class RunConfig:
    """Everything one training run needs; saved as ``config.json`` in the run directory.

    changes: what ``--resume`` changed, in order: [{"epoch": first epoch trained with it (1-based),
    "changed": {"train.learning_rate": [old, new], ...}}].
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    changes: list = field(default_factory=list)

    def validate(self) -> "RunConfig":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if (self.model.image_size, self.model.channels) != (self.data.image_size, self.data.channels):
            raise ValueError(
                "model and data disagree on image shape: "
                f"model {self.model.image_size}px x {self.model.channels}, "
                f"data {self.data.image_size}px x {self.data.channels}"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """The config ``values`` (as ``to_dict`` makes) describe; ValueError naming the first field that is unknown
        or of the wrong type (``"train.epochs = 'ten' is not an integer"``). Missing fields take their defaults."""
        if not isinstance(values, dict):
            raise ValueError(f"is not a JSON object of sections (data, model, train) but {type(values).__name__}")
        for section, section_cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            _check_section(section, section_cls, values.get(section, {}))
        if not isinstance(values.get("changes", []), list):
            raise ValueError(f"'changes' must be a list. Received: {values['changes']!r}")
        model = dict(values.get("model", {}))
        if model:  # a config saved before a field existed describes the model that field's old behaviour gave
            model = {**LEGACY_MODEL_FIELDS, **model}
        if model.get("prior") == "gaussian":  # the name of the one-Gaussian prior on the research branch
            model["prior"], model["prior_components"] = "gmm", 1
        if "filters" in model:
            model["filters"] = tuple(model["filters"])
        return cls(
            data=DataConfig(**values.get("data", {})),
            model=ModelConfig(**model),
            train=TrainConfig(**values.get("train", {})),
            changes=list(values.get("changes", [])),
        )

    def save(self, path: str) -> None:
        """Write as JSON atomically (data_prep.atomic: temporary name, fsync, rename)."""
        from data_prep import atomic

        atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> "RunConfig":
        """Read a config.json; ValueError (one line naming ``path``, what is wrong and the fix) when it is not valid
        JSON or not a config (unknown fields, wrong types). Values are checked by ``validate``, not here."""
        try:
            with open(path) as f:
                values = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error}); restore the run's config.json or start a new run") \
                from None
        try:
            return cls.from_dict(values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}; restore the run's config.json or start a new run") from None


def _type_name(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
             list: "a list"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):
        args = typing.get_args(hint)
        plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
        return f"a list of {plural.get(args[0], str(args[0])) if args else 'values'}"
    return names.get(hint, str(hint))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field's type (int: not bool; float: int or float; tuple[int, ...]: list)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin in (tuple, list):  # tuple[int, ...] / list[float]: a JSON list of such elements
        element = typing.get_args(hint)[0] if typing.get_args(hint) else Any
        return isinstance(value, (list, tuple)) and (element is Any or all(_fits(v, element) for v in value))
    if origin is dict or hint is Any:
        return hint is Any or isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def _check_section(section: str, cls: type, values: Any) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"'{section}' must be an object of fields. Received: {values!r}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise ValueError(f"unknown field {section}.{key}; {cls.__name__} has {sorted(hints)}")
        if not _fits(value, hints[key]):
            raise ValueError(f"{section}.{key} = {value!r} is not {_type_name(hints[key])}")


def _faces(dataset: str, size: int) -> RunConfig:
    return RunConfig(
        # No random shifts (--shift 0). With a code of 200 and the encoder's codes, 1-px shifts kept more held-out
        # identities (30% and 31% against 27% and 23%), but they bring faint one-pixel lines every 16 px. With a code
        # of 800 and refined codes the gain is gone: 64 px, 100 epochs, seeds 0 / 1 / 2, without shifts against with
        # them: identity kept 71 / 70 / 68% against 71 / 70 / 71%, seam ratio of reconstructions 1.16 / 1.16 / 1.14
        # (local 1.01-1.03) against 1.20 / 1.22 / 1.19 (local 1.06-1.10), prior samples detected at T = 1 84 / 82 /
        # 88% against 82 / 83 / 82% (README, "Real faces, measured").
        data=DataConfig(dataset=dataset, image_size=size, channels=3, flip=True, shift=0),
        # A calibrated decoder (learned per-channel sigma, full Gaussian normaliser), a 4x4-kernel decoder and a
        # full-covariance Gaussian prior fitted to the training codes after training (issue 14): with the published
        # objective (--likelihood mse --r-loss-factor 10000, sigma = 0.78 at 64 px) every face comes back as a
        # blurred average, and a sharp decoder's N(0, I) samples are not faces. Filters (32, 64, 128, 256), measured
        # on 900 real faces, 100 epochs at 64 px against the paper's (32, 64, 64, 64): identity kept 27% vs 18% on
        # held-out faces, prior samples 80% vs 72% detected, at 1.6x the time per step (README, "Real faces").
        # A wider first block (--filters 64,64,128,256; 2026-12-01, three seeds) lowers the samples' seam ratio
        # (1.12-1.16 against 1.15-1.20) but fewer samples are detected (80-84% against 85-93%) and fewer identities
        # are kept (README, "A wider last decoder block").
        # Reconstructions (and edits, morphs) refine each face's code by 50 Adam steps of 0.03 on its own
        # -log p(x, z) (semi-amortised inference), chosen on the 100 validation faces of three 64-px runs (seeds
        # 0/1/2): identity kept 30/40/37% with the encoder's codes, 50/53/51% refined (25 steps: 45/48/46%; 100
        # steps: 52/56/51%; rate 0.01, 50 steps: 47/44/46%), at about 50 decoder passes each way per face.
        # A code of 800 numbers: with the calibrated decoder every latent dimension is used, and more of them carry
        # more of the person. 64 px, 100 epochs, held-out identity kept (refined codes) / prior samples detected at
        # T = 1: latent 200 39-42% / 74-76% (three seeds), 400 65%, 60%, 60% / 80%, 78%, 80% (three seeds), 800 71%
        # and 70% / 82% and 83% (two seeds); latent 64 kept 7% (README, "Real faces, measured"). The prior's
        # Ledoit-Wolf shrinkage is what makes 800 usable: the sample covariance of 896 codes in 800 dimensions
        # scores held-out codes 2,500 nats below N(0, I), the shrunk one 730 above. With random flips the prior is
        # fitted to the codes of the training faces and of their mirror images: held-out codes gain about 115 nats
        # each (seeds 0 and 2), the samples are unchanged (README, "The fitted prior").
        model=ModelConfig(image_size=size, channels=3, latent_dim=800, filters=(32, 64, 128, 256),
                          likelihood="gaussian", sigma="learned", decoder_kernel=4, prior="gmm", prior_components=1,
                          refine_steps=50, refine_rate=0.03, log_var_max=2.0),
        # The published face-VAE optimiser: Adam 5e-4, batch 150, 30 epochs.
        train=TrainConfig(epochs=30, batch_size=150, learning_rate=5e-4),
    )


PRESETS: dict[str, RunConfig] = {
    # Built-in faces: finishes in a few minutes on 2 CPU cores.
    "synthetic": RunConfig(
        data=DataConfig(dataset="synthetic", image_size=64, channels=3),
        # Learned sigma and a fitted prior here too: with a fixed sigma 0.1 the prior samples were colour noise.
        model=ModelConfig(image_size=64, channels=3, latent_dim=32, likelihood="gaussian", sigma="learned",
                          prior="gmm", prior_components=1),
        train=TrainConfig(epochs=10, batch_size=64, learning_rate=1e-3),
    ),
    "ffhq": _faces("ffhq", 128),
    "folder": _faces("folder", 64),
    "mnist": RunConfig(
        data=DataConfig(dataset="mnist", image_size=28, channels=1, binarize="dynamic"),
        model=ModelConfig(image_size=28, channels=1, latent_dim=32, likelihood="bernoulli"),
        train=TrainConfig(epochs=30, batch_size=100, learning_rate=1e-3),
    ),
    "binarized_mnist": RunConfig(
        data=DataConfig(dataset="binarized_mnist", image_size=28, channels=1),
        model=ModelConfig(image_size=28, channels=1, latent_dim=32, likelihood="bernoulli"),
        train=TrainConfig(epochs=30, batch_size=100, learning_rate=1e-3),
    ),
}

def preset(dataset: str) -> RunConfig:
    """A fresh copy of the preset for ``dataset``."""
    _choice("dataset", dataset, DATASETS)
    return RunConfig.from_dict(PRESETS[dataset].to_dict())
