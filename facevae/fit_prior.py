"""Fit (or refit) the latent prior of a finished run, and re-export it.

    python -m facevae.fit_prior --model runs/RUN_NAME
    python -m facevae.fit_prior --model runs/RUN_NAME --prior gmm --prior-components 10
    python -m facevae.fit_prior --model runs/RUN_NAME --prior flow --prior-flows 8 --data-dir shards/faces64

Reads the run's config.json and its export's model.keras (or else its newest checkpoint), encodes the training
split (posterior means through the flows), fits the prior (facevae.model.prior: one Gaussian with its covariance
shrunk by the Ledoit-Wolf estimate, a mixture by EM, flows by maximum likelihood), writes ``prior.npz`` and
``prior.json`` (the shrinkage, held-out log-density under the fit and under N(0, I), nats per code) into the run
directory, records the prior in config.json and re-exports the model, so the export's ``sample`` endpoint
maps its noise through the fit. A run trained with ``--prior standard`` gets the preset's kind of prior, 'gmm'
with one Gaussian, unless --prior says otherwise.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from facevae import cli
from facevae.config import prior_names

__all__ = ["build_parser", "main"]

_PROG = "python -m facevae.fit_prior"


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=_PROG,
                           description="Fit a latent prior to a run's training codes and re-export the run.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory written by python -m facevae.train")
    p.add_argument("--prior", choices=[k for k in prior_names() if k != "standard"],
                   help="kind of prior: 'gmm' or 'flow' (default: the run's own, or gmm for a standard-prior run)")
    p.add_argument("--prior-components", type=cli.positive_int,
                   help="Gaussians of --prior gmm (default: the run's own, or 1)")
    p.add_argument("--prior-flows", type=cli.positive_int, help="flows of --prior flow (default: the run's own, or 4)")
    p.add_argument("--data-dir", help="shards to encode instead of the run's own --data-dir")
    return p


def _with_prior(model, config):
    """``model``'s weights in a FaceVAE built from ``config`` (a model config differing only in its prior)."""
    from facevae.model.vae import FaceVAE

    copy = FaceVAE(config, seed=model.seed)
    copy.encoder.set_weights(model.encoder.get_weights())
    copy.decoder.set_weights(model.decoder.get_weights())
    copy.flows.set_weights(model.flows.get_weights())
    if model.log_sigma is not None:
        copy.log_sigma.assign(model.log_sigma)
    copy.kl_weight.assign(model.kl_weight)
    return copy


def _update_latest_checkpoint(run, model) -> str:
    """Copy the fitted prior into the run's newest checkpoint (atomically, optimizer state kept) when that
    checkpoint has a prior of the same kind and size; returns a note saying what happened."""
    import keras

    from data_prep import atomic

    path, _ = run.latest_checkpoint()
    if path is None:
        return "no checkpoint to update"
    checkpoint = keras.models.load_model(path)
    if checkpoint.prior is None or checkpoint.prior.get_config()["components"] != model.prior.components or (
            checkpoint.prior.num_flows != model.prior.num_flows):
        return (f"{os.path.basename(path)} keeps its {checkpoint.config.prior!r} prior (another kind or size); "
                "the export has the new one")
    checkpoint.prior.set_weights(model.prior.get_weights())
    temporary = atomic.temporary_name(path)
    checkpoint.save(temporary)
    atomic.commit(temporary, path)
    return f"updated {os.path.basename(path)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from facevae.training.rundir import RunDir, read_export_marker

    run = RunDir(args.model)
    if not run.exists():
        raise ValueError(f"--model {args.model}: no config.json there; pass a run directory of python -m facevae.train")
    from dataclasses import replace

    import keras

    from facevae.config import RunConfig
    from facevae.data.datasets import training_data
    from facevae.export.serving import KERAS_FILE, export_model
    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the classes keras.models.load_model needs)
    from facevae.training.trainer import fit_and_save_prior

    config = RunConfig.load(run.config)
    if args.data_dir:
        config.data.data_dir = args.data_dir
    export = run.export_target()
    source = os.path.join(export, KERAS_FILE) if export else None
    if source is None or not os.path.isfile(source):
        source = run.latest_checkpoint()[0]
    if source is None:
        raise ValueError(f"--model {args.model}: neither export/{KERAS_FILE} nor a checkpoint; train it first")
    model = keras.models.load_model(source)
    wanted = config.model
    kind = args.prior or (wanted.prior if wanted.prior != "standard" else "gmm")
    wanted = replace(wanted, prior=kind)
    if args.prior_components:
        wanted.prior_components = args.prior_components
    if args.prior_flows:
        wanted.prior_flows = args.prior_flows
    wanted.validate()
    if (wanted.prior, wanted.prior_components, wanted.prior_flows, wanted.prior_flow_type) != (
            model.config.prior, model.config.prior_components, model.config.prior_flows, model.config.prior_flow_type):
        model = _with_prior(model, wanted)
    data = training_data(config)
    result = fit_and_save_prior(model, run, data.train, data.validation, seed=config.train.seed, source=source,
                                mirrored=config.data.flip)
    config.model = model.config
    config.save(run.config)
    checkpoint_note = _update_latest_checkpoint(run, model)
    if export:
        target, marker = export, read_export_marker(export)
    else:
        target = os.path.abspath(os.path.join(config.train.export_dir, run.name))
        marker = {"run_dir": run.identity, "run_name": run.name}
    export_model(model, target, marker=marker)
    if not export:
        run.link_export(target)
    shrinkage = result["covariance_shrinkage"]
    shrunk = f" (covariance shrunk by {shrinkage:.3f}, Ledoit-Wolf)" if shrinkage is not None else ""
    print(f"fitted a {result['description']}{shrunk} to {result['train_codes']} training codes "
          f"({result['fitted_on']}): held-out log-density {result['validation_log_prob']:.1f} nats per code (N(0, I): "
          f"{result['validation_log_prob_standard_normal']:.1f}); wrote {run.prior}; re-exported {target}; "
          f"{checkpoint_note}")
    return 0


if __name__ == "__main__":
    from facevae.data.datasets import DataUnavailable

    cli.run(main, _PROG, user_errors=(ValueError, DataUnavailable, FileNotFoundError, FileExistsError))
