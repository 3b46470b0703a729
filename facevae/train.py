"""Train a face or digit VAE with planar flows.

    python -m facevae.train                                  # built-in faces, a few minutes on 2 CPU cores
    python -m facevae.train --dataset ffhq --data-dir shards/ffhq128 --flows 5
    python -m facevae.train --dataset binarized_mnist --data-dir shards/bmnist --flows 10 --flow-mode amortized
    python -m facevae.train --dataset binarized_mnist --data-dir shards/bmnist --flows 10 --decoder pixelcnn
    python -m facevae.train --resume runs/RUN_NAME
    python -m facevae.train --dataset ffhq --data-dir gs://bucket/ffhq128 --strategy mirrored --mixed-precision
    python -m facevae.train --dataset ffhq --data-dir gs://bucket/ffhq128 --strategy multiworker
        (on every machine, each with its own TF_CONFIG; see docs/scaling.md)

Flags left out take the value of the dataset's preset (facevae.config.PRESETS); `--dataset X --help` shows
that preset's defaults. Every flag but --dataset, --resume and --quiet is a field of facevae.config, generated
from the field's metadata (facevae.config.flag), so a new field is one line there.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from typing import Sequence

from facevae import cli
from facevae.config import DATASETS, SIGMA_MODES, DataConfig, ModelConfig, RunConfig, TrainConfig, preset

__all__ = ["build_parser", "config_from_args", "config_flags", "summary_line", "memory_message", "main"]

_PROG = "python -m facevae.train"
_SECTIONS = (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
_GROUPS = {"data": "data", "model": "model", "training": "training", "hardware": "hardware (docs/scaling.md)",
           "output": "output"}


def _sigma(text: str) -> float | str:
    """--sigma: 'learned', 'optimal' or a positive number."""
    if text in SIGMA_MODES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"must be 'learned', 'optimal' or a positive number; received {text!r}")
    return value


def _filters(text: str) -> tuple[int, ...]:
    """--filters: four positive widths, comma-separated."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be four positive integers such as 64,128,128,256; received {text!r}")
    return values


_PARSERS = {"positive_int": cli.positive_int, "non_negative_int": cli.non_negative_int,
            "positive_float": cli.positive_float, "int": int, "float": float, "str": str, "sigma": _sigma,
            "filters": _filters}


@dataclasses.dataclass(frozen=True, eq=False)
class ConfigFlag:
    """One command-line flag generated from a config field (metadata made by facevae.config.flag)."""

    section: str
    name: str
    option: str
    metadata: dict

    @property
    def dest(self) -> str:
        return self.option[2:].replace("-", "_")

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def config_flags() -> list[ConfigFlag]:
    """Every config field with a ``help`` in its metadata, as a flag, in field order."""
    return [ConfigFlag(section, f.name, f.metadata.get("flag", "--" + f.name.replace("_", "-")), dict(f.metadata))
            for section, cls in _SECTIONS for f in dataclasses.fields(cls) if "help" in f.metadata]


def _default_text(spec: ConfigFlag, defaults: RunConfig) -> str:
    value = getattr(getattr(defaults, spec.section), spec.name)
    if value is None:
        value = spec.metadata.get("none", "none")
    elif spec.metadata.get("switch") is False:  # a --no-X flag: say whether X is on
        value = f"{spec.name} {'on' if value else 'off'}"
    elif isinstance(value, tuple):
        value = ",".join(map(str, value))
    elif isinstance(value, bool):
        value = "on" if value else "off"
    return f"default: {value}"


def build_parser(dataset: str = "synthetic") -> argparse.ArgumentParser:
    """The parser, with the defaults of ``dataset``'s preset shown in each flag's help."""
    defaults = preset(dataset if dataset in DATASETS else "synthetic")
    p = cli.ArgumentParser(
        prog=_PROG,
        description="Train a convolutional VAE with K planar flows; writes a run directory and a SavedModel. "
                    f"Defaults shown are those of --dataset {defaults.data.dataset} (--dataset NAME --help shows "
                    "another's).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    groups = {key: p.add_argument_group(title) for key, title in _GROUPS.items()}
    groups["data"].add_argument(
        "--dataset", choices=DATASETS, default=None,
        help="which data and preset: 'synthetic' = built-in faces, no files needed (default: synthetic)")
    for spec in config_flags():
        meta = spec.metadata
        group = groups[meta.get("group", spec.section)]
        text = f"{meta['help']} ({_default_text(spec, defaults)})"
        if meta.get("switch") is not None:
            action = "store_true" if meta["switch"] else "store_false"
            group.add_argument(spec.option, dest=spec.dest, action=action, default=None, help=text)
            continue
        choices = meta.get("choices")
        if callable(choices):  # a registry read when the parser is built (e.g. a function returning its names)
            choices = tuple(choices())
        kwargs = {"choices": choices} if choices is not None else {}
        parse = meta.get("parse")
        if parse is not None:
            kwargs["type"] = _PARSERS[parse]
        elif choices is not None and all(isinstance(c, int) for c in choices):
            kwargs["type"] = int
        group.add_argument(spec.option, dest=spec.dest, default=None, help=text, **kwargs)
    o = groups["output"]
    o.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint with its config.json; flags marked changeable "
                        "(--epochs, --learning-rate, --lr-schedule, --steps-per-epoch, --export-dir, "
                        "--keep-checkpoints, --strategy, --jit-compile) may change, and config.json records the "
                        "change with its first epoch; others are refused")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def given_flags(args: argparse.Namespace) -> dict[ConfigFlag, object]:
    """The config flags given on the command line, with their values."""
    return {spec: getattr(args, spec.dest) for spec in config_flags() if getattr(args, spec.dest, None) is not None}


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """``base`` (default: the dataset's preset) with every given flag applied, validated."""
    config = RunConfig.from_dict(base.to_dict()) if base is not None else preset(args.dataset or "synthetic")
    if base is not None and args.dataset is not None:
        config.data.dataset = args.dataset
    for spec, value in given_flags(args).items():
        setattr(getattr(config, spec.section), spec.name, value)
        also = spec.metadata.get("also")
        if also:
            section, name = also.split(".")
            setattr(getattr(config, section), name, value)
    if base is None and getattr(args, "channels", None) is None and config.data.data_dir:
        from facevae.data.datasets import shard_channels

        channels = shard_channels(config.data.data_dir)  # grey shards train as grey without --channels 1
        if channels is not None:
            config.data.channels = config.model.channels = channels
    return config.validate()


def _resume_base(run_dir: str) -> RunConfig:
    from facevae.training.rundir import RunDir

    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"--resume {run_dir}: no config.json there; is it a run directory?")
    return RunConfig.load(run.config)


def summary_line(metrics: dict) -> str:
    """The closing line: validation loss, reconstruction MSE against the mean image's (lower or higher), PSNR."""
    ratio = metrics["mse_ratio"]
    if ratio >= 1:
        compared = f"{ratio:.1f}x lower"
    else:
        compared = f"{1 / ratio:.1f}x higher" if ratio > 0 else "higher"
    from facevae.model.objective import LOSS

    return (f"validation loss {metrics['validation'][LOSS]:.2f} nats/image; reconstruction MSE "
            f"{metrics['reconstruction_mse']:.5f} vs mean-image MSE {metrics['mean_image_mse']:.5f} ({compared}), "
            f"PSNR {metrics['psnr_db']:.1f} dB")


_SIZE_FLAGS = ("--latent-dim", "--batch-size", "--image-size", "--train-count", "--flows", "--pixel-filters")


def memory_message(args: argparse.Namespace, error: BaseException) -> str:
    """One line for a run that did not fit in memory: what failed to allocate, and the size flags to lower
    (those given first, with their values)."""
    text = " ".join(str(error).split())
    found = re.search(r"OOM when allocating tensor with shape\[[^\]]*\]|Unable to allocate [^)]*\)", text)
    what = found.group(0) if found else (text[:120] or type(error).__name__)
    given = {spec.option: value for spec, value in given_flags(args).items()}
    sizes = [f"{flag} {given[flag]}" for flag in _SIZE_FLAGS if flag in given]
    sizes += [flag for flag in _SIZE_FLAGS if flag not in given]
    return f"out of memory ({what}); lower " + ", ".join(sizes[:4])


def _dataset_in(argv: Sequence[str] | None) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset")
    known, _ = pre.parse_known_args(argv)
    return known.dataset or "synthetic"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_dataset_in(argv)).parse_args(argv)
    import tensorflow as tf

    from facevae.data.datasets import DataUnavailable
    from facevae.training.trainer import ExportConflict, NonFiniteLoss, ResumeConflict, fit

    try:
        config = config_from_args(args, _resume_base(args.resume) if args.resume else None)
        result = fit(config, resume=args.resume, verbose=0 if args.quiet else "auto")
    except (ValueError, DataUnavailable, FileNotFoundError, FileExistsError, ExportConflict, ResumeConflict) as error:
        # ValueError includes data_prep's DataError: OutputLockedError (another process writes the run), ...
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(f"{_PROG}: stopped: {error}", file=sys.stderr)
        return 1
    except (MemoryError, tf.errors.ResourceExhaustedError) as error:
        print(f"{_PROG}: error: {memory_message(args, error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue from the last finished epoch with: "
              "python -m facevae.train --resume RUN_DIR (the run directory printed above)", file=sys.stderr)
        return 130
    print(f"export:        {result.export_dir}")
    print(summary_line(result.metrics))
    print(f"samples:       {os.path.join(result.run_dir, 'samples')}  loss curve: {os.path.join(result.run_dir, 'loss.png')}")
    if "prior" in result.metrics:
        from facevae.training.rundir import RunDir

        print(f"prior samples: {RunDir(result.run_dir).prior_samples} (through the fitted "
              f"{result.metrics['prior']['kind']} prior)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
