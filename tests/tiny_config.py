"""The one tiny configuration tests train with: the synthetic preset shrunk to seconds of CPU.

``make_tiny_config(root)`` is 32 px built-in faces (192 train / 64 validation), latent size 8, filters (8, 16, 16, 16),
3 epochs of batch 32, a fixed sigma 0.1 and the standard prior (tests of the learned sigma and the fitted prior ask
for them), writing runs under ``root/runs`` and exports under ``root/saved_models``. Keyword overrides
name any field of DataConfig, ModelConfig or TrainConfig (``flows=2``, ``epochs=1``). ``tiny_model_config`` is the
matching bare ModelConfig for tests that build a FaceVAE without training it.
"""
from __future__ import annotations

import dataclasses
import os

from facevae.config import ModelConfig, RunConfig, preset

__all__ = ["make_tiny_config", "tiny_model_config"]


def make_tiny_config(root, name: str = "tiny", **overrides) -> RunConfig:
    config = preset("synthetic")
    config.data.image_size = config.model.image_size = 32
    config.data.train_count, config.data.validation_count = 192, 64
    config.model.latent_dim, config.model.filters = 8, (8, 16, 16, 16)
    config.model.sigma, config.model.prior = 0.1, "standard"
    config.train.epochs, config.train.batch_size = 3, 32
    config.train.output_dir = os.path.join(str(root), "runs")
    config.train.export_dir = os.path.join(str(root), "saved_models")
    config.train.run_name = name
    sections = (config.data, config.model, config.train)
    for key, value in overrides.items():
        owners = [s for s in sections if key in {f.name for f in dataclasses.fields(s)}]
        if not owners:
            raise TypeError(f"make_tiny_config: no config field named {key!r}")
        for section in owners:  # image_size lives in both data and model
            setattr(section, key, value)
    return config.validate()


def tiny_model_config(**overrides) -> ModelConfig:
    values = dict(image_size=32, channels=3, latent_dim=6, filters=(8, 8, 8, 8))
    values.update(overrides)
    return ModelConfig(**values)
