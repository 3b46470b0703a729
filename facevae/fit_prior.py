"""Fit (or refit) the Gaussian latent prior of a finished run, and re-export it.

    python -m facevae.fit_prior --model runs/RUN_NAME
    python -m facevae.fit_prior --model runs/RUN_NAME --data-dir shards/faces64

Reads the run's config.json and its export's model.keras (or its newest checkpoint), encodes the training
split (posterior means, through the flows), fits N(mu, Sigma) by maximum likelihood (facevae.prior), writes
``prior.npz`` and ``prior.json`` (held-out log-density under the fit and under N(0, I)) into the run
directory and re-exports the model, so the export's ``sample`` endpoint maps its noise through the fit.
A run trained with ``--prior standard`` gets a prior this way; its config.json then says prior 'gaussian'.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from facevae import cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m facevae.fit_prior",
                           description="Fit a full-covariance Gaussian prior to a run's training codes and re-export.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory written by python -m facevae.train")
    p.add_argument("--data-dir", help="shards to encode instead of the run's own --data-dir")
    return p


def _with_gaussian_prior(model):
    """The same weights in a FaceVAE whose config has prior='gaussian' (returned as is when it has one)."""
    from dataclasses import replace

    from facevae.model import FaceVAE

    if model.prior is not None:
        return model
    copy = FaceVAE(replace(model.config, prior="gaussian"), seed=model.seed)
    copy.encoder.set_weights(model.encoder.get_weights())
    copy.decoder.set_weights(model.decoder.get_weights())
    copy.flows.set_weights(model.flows.get_weights())
    if model.log_sigma is not None:
        copy.log_sigma.assign(model.log_sigma)
    return copy


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_path = os.path.join(args.model, "config.json")
    if not os.path.exists(config_path):
        raise ValueError(f"--model {args.model}: no config.json there; pass a run directory of python -m facevae.train")
    import keras

    import facevae.model  # noqa: F401 - registers the classes keras.models.load_model needs
    from facevae.config import RunConfig
    from facevae.data import training_data
    from facevae.prior import save_prior
    from facevae.serving import KERAS_FILE, export_model
    from facevae.trainer import fit_latent_prior, latest_checkpoint

    config = RunConfig.load(config_path)
    if args.data_dir:
        config.data.data_dir = args.data_dir
    export_link = os.path.join(args.model, "export")
    source = os.path.join(export_link, KERAS_FILE)
    if not os.path.exists(source):
        source = latest_checkpoint(args.model)[0]
    if source is None:
        raise ValueError(f"--model {args.model}: neither export/{KERAS_FILE} nor a checkpoint; train it first")
    model = _with_gaussian_prior(keras.models.load_model(source))
    data = training_data(config)
    result = fit_latent_prior(model, data.train, data.validation)
    save_prior(os.path.join(args.model, "prior.npz"), result.pop("fitted"))
    with open(os.path.join(args.model, "prior.json.tmp"), "w") as f:
        json.dump({**result, "model": source}, f, indent=2)
    os.replace(os.path.join(args.model, "prior.json.tmp"), os.path.join(args.model, "prior.json"))
    config.model.prior = "gaussian"
    config.save(config_path)
    target = os.path.realpath(export_link) if os.path.exists(export_link) else os.path.abspath(
        os.path.join(config.train.export_dir, os.path.basename(os.path.normpath(args.model))))
    export_model(model, target)
    print(f"fitted a Gaussian prior to {result['train_codes']} training codes: held-out log-density "
          f"{result['validation_log_prob']:.1f} nats (N(0, I): {result['validation_log_prob_standard_normal']:.1f}); "
          f"re-exported {target}")
    return 0


if __name__ == "__main__":
    from facevae.data import DataUnavailable

    cli.run(main, "python -m facevae.fit_prior", user_errors=(ValueError, DataUnavailable, FileNotFoundError))
