"""Typed configuration: the one source of defaults, with one preset per dataset.

A run is described by three dataclasses split by concern (data, model, training).
``--dataset X`` picks ``PRESETS[X]``; command-line flags override single fields; the
resolved ``RunConfig`` is written to ``<run_dir>/config.json`` and can be read back
with ``RunConfig.load`` to resume or re-run.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DATASETS",
    "DECODERS",
    "FLOW_MODES",
    "IMAGE_SIZES",
    "JIT_CHOICES",
    "STRATEGIES",
    "LIKELIHOODS",
    "SIGMA_MODES",
    "PRIORS",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "RunConfig",
    "PRESETS",
    "preset",
]

DATASETS = ("synthetic", "ffhq", "mnist", "binarized_mnist", "folder")
IMAGE_SIZES = (28, 32, 64, 128, 256)
LIKELIHOODS = ("gaussian", "mse", "bernoulli")
FLOW_MODES = ("global", "amortized")
DECODERS = ("conv", "pixelcnn")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
JIT_CHOICES = ("auto", "on", "off")
SIGMA_MODES = ("learned", "optimal")
PRIORS = ("standard", "gaussian")
# Decoder kernel of models saved before ``decoder_kernel`` existed (their configs lack the field).
LEGACY_DECODER_KERNEL = 3


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
    image_size: side in pixels; channels: 1 (grey) or 3 (RGB).
    train_count / validation_count: number of built-in faces (synthetic only).
    binarize: ``"dynamic"`` resamples binary pixels each epoch (MNIST), else None.
    flip: random horizontal flips (faces).
    """

    dataset: str = "synthetic"
    data_dir: str | None = None
    image_size: int = 64
    channels: int = 3
    train_count: int = 8000
    validation_count: int = 1000
    binarize: str | None = None
    flip: bool = False

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("image size", self.image_size, IMAGE_SIZES)
        _choice("channels", self.channels, (1, 3))
        _positive("train_count", self.train_count)
        _positive("validation_count", self.validation_count)
        if self.binarize is not None:
            _choice("binarize", self.binarize, ("dynamic",))


@dataclass
class ModelConfig:
    """Architecture and objective.

    latent_dim: size d of z. filters: encoder Conv2D widths (decoder mirrors them).
    flows: number K of planar flows (0 = plain VAE); flow_mode: ``global`` (one
    u, w, b per flow) or ``amortized`` (predicted per image by the encoder).
    likelihood: ``gaussian`` (``sigma``: a fixed float in pixel units of [0, 1]; ``"learned"``: a trained
    log sigma per channel, or one shared with ``sigma_shared``; ``"optimal"``: per batch sigma^2 = MSE under
    stop-gradient, Rybkin et al. 2021), ``bernoulli``
    (binary pixels, decoder gives logits), or ``mse``: the published face-VAE objective
    ``r_loss_factor * mean((x - x_hat)^2)``, a Gaussian with sigma^2 = D / (2 r_loss_factor).
    decoder: ``conv`` (Conv2DTranspose blocks, one logit per pixel from z alone) or ``pixelcnn``
    (``facevae.pixelcnn``: autoregressive over pixels, binary single-channel images with the
    Bernoulli likelihood only); pixel_filters / pixel_layers: width and depth of its masked stack;
    pixel_window: odd side of its first (type-A) masked kernel, 7 by default; smaller leaves more to z.
    decoder_kernel: side of the conv decoder's Conv2DTranspose kernels (stride 2). 4 (a multiple of the
    stride) covers every output pixel with the same number of taps, so no seam grid; models saved
    before this field existed load with their 3x3 kernels.
    prior: what ``sample`` draws z from: ``standard`` N(0, I), or ``gaussian``, a full-covariance Gaussian
    fitted by maximum likelihood to the training set's posterior means at the end of training
    (facevae.prior; it starts as N(0, I) until fitted).
    """

    image_size: int = 64
    channels: int = 3
    latent_dim: int = 32
    filters: tuple[int, ...] = (32, 64, 64, 64)
    flows: int = 0
    flow_mode: str = "global"
    likelihood: str = "gaussian"
    sigma: float | str = 0.1
    sigma_shared: bool = False
    r_loss_factor: float = 10000.0
    decoder: str = "conv"
    pixel_filters: int = 32
    pixel_layers: int = 0
    pixel_window: int = 7
    decoder_kernel: int = 4
    prior: str = "standard"

    def validate(self) -> None:
        _choice("image size", self.image_size, IMAGE_SIZES)
        _choice("channels", self.channels, (1, 3))
        _positive("latent_dim", self.latent_dim)
        if len(self.filters) != 4 or any(f <= 0 for f in self.filters):
            raise ValueError(f"filters must be 4 positive widths. Received: filters={self.filters!r}")
        if self.flows < 0:
            raise ValueError(f"flows must be >= 0. Received: flows={self.flows!r}")
        _choice("flow mode", self.flow_mode, FLOW_MODES)
        _choice("likelihood", self.likelihood, LIKELIHOODS)
        if isinstance(self.sigma, str):
            _choice("sigma", self.sigma, SIGMA_MODES)
        else:
            _positive("sigma", self.sigma)
        _choice("prior", self.prior, PRIORS)
        if self.decoder_kernel < 2:
            raise ValueError(f"decoder_kernel must be >= 2. Received: decoder_kernel={self.decoder_kernel!r}")
        _positive("r_loss_factor", self.r_loss_factor)
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

    kl_warmup_epochs: the KL weight rises linearly from 0 to 1 over this many epochs
    (0 = full weight from the start). steps_per_epoch: None = one pass over the data.
    batch_size: images per replica; a step takes batch_size * replicas images (the global batch).
    strategy: tf.distribute strategy, one of STRATEGIES (see facevae.distributed.make_strategy).
    mixed_precision: mixed_float16 on GPU, mixed_bfloat16 on CPU; sampling, flows and loss stay float32.
    jit_compile: XLA for the training step: "on", "off", or "auto" (on for GPU, off for CPU).
    precise_bn_batches: before each validation pass and before export, BatchNorm moving statistics are
    re-estimated from this many training batches (population mean and variance of each layer's input in
    training mode; 0 = keep the moving averages).
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 5e-4
    kl_warmup_epochs: int = 0
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None
    steps_per_epoch: int | None = None
    export_dir: str = "saved_models"
    strategy: str = "auto"
    mixed_precision: bool = False
    jit_compile: str = "auto"
    precise_bn_batches: int = 8

    def validate(self) -> None:
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("jit_compile", self.jit_compile, JIT_CHOICES)
        if not isinstance(self.mixed_precision, bool):
            raise ValueError(f"mixed_precision must be True or False. Received: mixed_precision={self.mixed_precision!r}")
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("learning_rate", self.learning_rate)
        if self.kl_warmup_epochs < 0:
            raise ValueError(
                f"kl_warmup_epochs must be >= 0. Received: kl_warmup_epochs={self.kl_warmup_epochs!r}"
            )
        if self.steps_per_epoch is not None:
            _positive("steps_per_epoch", self.steps_per_epoch)
        if self.precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0. Received: precise_bn_batches={self.precise_bn_batches!r}")


@dataclass
class RunConfig:
    """Everything one training run needs; saved as ``config.json`` in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

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
        model = dict(values.get("model", {}))
        if model:  # a saved config without the field describes a model with the old 3x3 decoder
            model.setdefault("decoder_kernel", LEGACY_DECODER_KERNEL)
        if "filters" in model:
            model["filters"] = tuple(model["filters"])
        return cls(
            data=DataConfig(**values.get("data", {})),
            model=ModelConfig(**model),
            train=TrainConfig(**values.get("train", {})),
        )

    def save(self, path: str) -> None:
        """Write as JSON atomically (temporary name, then rename)."""
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "RunConfig":
        with open(path) as f:
            return cls.from_dict(json.load(f))


def _faces(dataset: str, size: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset=dataset, image_size=size, channels=3, flip=True),
        # A calibrated decoder (learned per-channel sigma, full Gaussian normaliser) and a Gaussian prior fitted to
        # the training codes after training: on 900 real faces at 64 px the published objective
        # (--likelihood mse --r-loss-factor 10000, sigma = 0.78 at 64 px) returns a blurred average face,
        # and a sharp decoder's N(0, I) samples are not faces (0% detected; 72% with the fitted prior).
        model=ModelConfig(image_size=size, channels=3, latent_dim=200, likelihood="gaussian", sigma="learned",
                          prior="gaussian"),
        # The published face-VAE optimiser: Adam 5e-4, batch 150, 30 epochs.
        train=TrainConfig(epochs=30, batch_size=150, learning_rate=5e-4),
    )


PRESETS: dict[str, RunConfig] = {
    # Built-in faces: finishes in a few minutes on 2 CPU cores.
    "synthetic": RunConfig(
        data=DataConfig(dataset="synthetic", image_size=64, channels=3),
        model=ModelConfig(image_size=64, channels=3, latent_dim=32, likelihood="gaussian", sigma=0.1),
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
