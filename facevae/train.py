"""Train a face or digit VAE with planar flows.

    python -m facevae.train                                  # built-in faces, a few minutes on 2 CPU cores
    python -m facevae.train --dataset ffhq --data-dir shards/ffhq128 --flows 5
    python -m facevae.train --dataset binarized_mnist --data-dir shards/bmnist --flows 10 --flow-mode amortized
    python -m facevae.train --dataset binarized_mnist --data-dir shards/bmnist --flows 10 --decoder pixelcnn
    python -m facevae.train --resume runs/RUN_NAME
    python -m facevae.train --dataset ffhq --data-dir gs://bucket/ffhq128 --strategy mirrored --mixed-precision
    python -m facevae.train --dataset ffhq --data-dir gs://bucket/ffhq128 --strategy multiworker
        (on every machine, each with its own TF_CONFIG; see docs/scaling.md)

Flags left out take the value of the dataset's preset (facevae.config.PRESETS).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from facevae import cli
from facevae.config import (
    DATASETS, DECODERS, FLOW_MODES, IMAGE_SIZES, JIT_CHOICES, LIKELIHOODS, PRESETS, PRIORS, STRATEGIES, RunConfig,
    preset,
)

__all__ = ["build_parser", "config_from_args", "main"]


def _sigma(text: str):
    """--sigma: 'learned', 'optimal' or a positive number."""
    if text in ("learned", "optimal"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'learned', 'optimal' or a positive number; received {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be 'learned', 'optimal' or a positive number; received {text}")
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

# flag dest -> (section, field) of RunConfig
_OVERRIDES = {
    "data_dir": ("data", "data_dir"),
    "train_count": ("data", "train_count"),
    "latent_dim": ("model", "latent_dim"),
    "flows": ("model", "flows"),
    "flow_mode": ("model", "flow_mode"),
    "likelihood": ("model", "likelihood"),
    "sigma": ("model", "sigma"),
    "sigma_shared": ("model", "sigma_shared"),
    "filters": ("model", "filters"),
    "decoder_kernel": ("model", "decoder_kernel"),
    "prior": ("model", "prior"),
    "r_loss_factor": ("model", "r_loss_factor"),
    "decoder": ("model", "decoder"),
    "pixel_filters": ("model", "pixel_filters"),
    "pixel_layers": ("model", "pixel_layers"),
    "pixel_window": ("model", "pixel_window"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "kl_warmup": ("train", "kl_warmup_epochs"),
    "steps_per_epoch": ("train", "steps_per_epoch"),
    "seed": ("train", "seed"),
    "precise_bn_batches": ("train", "precise_bn_batches"),
    "flip": ("data", "flip"),
    "output_dir": ("train", "output_dir"),
    "run_name": ("train", "run_name"),
    "export_dir": ("train", "export_dir"),
    "strategy": ("train", "strategy"),
    "mixed_precision": ("train", "mixed_precision"),
    "jit_compile": ("train", "jit_compile"),
}


def _preset_values(section: str, name: str) -> str:
    values = {d: getattr(getattr(p, section), name) for d, p in PRESETS.items()}
    if len(set(map(str, values.values()))) == 1:
        return f"default: {next(iter(values.values()))}"
    return "default per dataset: " + ", ".join(f"{d} {v}" for d, v in values.items())


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m facevae.train",
        description="Train a convolutional VAE with K planar flows; writes a run directory and a SavedModel.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="which data and preset: 'synthetic' = built-in faces, no files needed (default: synthetic)")
    d.add_argument("--data-dir", help="shards made by `python -m data_prep` (raw data is prepared on first use)")
    d.add_argument("--image-size", type=int, choices=IMAGE_SIZES,
                   help=f"image side in pixels ({_preset_values('data', 'image_size')})")
    d.add_argument("--train-count", type=cli.positive_int,
                   help=f"built-in faces to train on ({_preset_values('data', 'train_count')})")
    m = p.add_argument_group("model")
    m.add_argument("--latent-dim", type=cli.positive_int, help=f"latent size d ({_preset_values('model', 'latent_dim')})")
    m.add_argument("--flows", type=cli.non_negative_int, help="number K of planar flows; 0 = plain VAE (default: 0)")
    m.add_argument("--flow-mode", choices=FLOW_MODES,
                   help="'global': one u, w, b per flow; 'amortized': predicted per image by the encoder (default: global)")
    m.add_argument("--likelihood", choices=LIKELIHOODS,
                   help=f"p(x|z): gaussian (fixed --sigma), bernoulli (binary pixels), mse (r_loss_factor * MSE, "
                        f"the published face recipe) ({_preset_values('model', 'likelihood')})")
    m.add_argument("--filters", type=_filters,
                   help=f"the four encoder widths, mirrored by the decoder ({_preset_values('model', 'filters')})")
    m.add_argument("--sigma", type=_sigma,
                   help="pixel noise std of --likelihood gaussian: a number (pixels in [0, 1]), 'learned' (a trained "
                        "log sigma per channel) or 'optimal' (per batch sigma^2 = MSE, Rybkin et al. 2021) "
                        f"({_preset_values('model', 'sigma')})")
    m.add_argument("--sigma-shared", action="store_true", default=None,
                   help="one learned/optimal sigma for all channels instead of one per channel")
    m.add_argument("--prior", choices=PRIORS,
                   help="what samples are drawn from: 'standard' N(0, I), or 'gaussian', a full-covariance Gaussian "
                        "fitted to the training set's posterior means after training "
                        f"({_preset_values('model', 'prior')})")
    m.add_argument("--decoder-kernel", type=cli.positive_int,
                   help="side of the decoder's stride-2 Conv2DTranspose kernels; 4 has no seam grid, 3 is the "
                        "old decoder (default: 4)")
    m.add_argument("--r-loss-factor", type=cli.positive_float, help="weight of the MSE for --likelihood mse (default: 10000)")
    m.add_argument("--decoder", choices=DECODERS,
                   help="p(x|z): conv (Conv2DTranspose blocks) or pixelcnn (autoregressive over pixels; binary "
                        "single-channel images, --likelihood bernoulli) (default: conv)")
    m.add_argument("--pixel-filters", type=cli.positive_int, help="width of the pixelcnn masked convolutions (default: 32)")
    m.add_argument("--pixel-layers", type=cli.non_negative_int,
                   help="pixelcnn 3x3 layers after its first one; more see further up the image (default: 0)")
    m.add_argument("--pixel-window", type=cli.positive_int,
                   help="odd side of the pixelcnn's first masked kernel: 7 sees 24 earlier pixels, 5 sees 12, 3 "
                        "sees 4; smaller leaves more of the image to z (default: 7)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=cli.positive_int, help=f"epochs in all ({_preset_values('train', 'epochs')})")
    t.add_argument("--batch-size", type=cli.positive_int,
                   help=f"images per step per replica; the global batch is this times the replica count "
                        f"({_preset_values('train', 'batch_size')})")
    t.add_argument("--learning-rate", type=cli.positive_float, help=f"Adam step size ({_preset_values('train', 'learning_rate')})")
    t.add_argument("--kl-warmup", type=cli.non_negative_int,
                   help="epochs over which the KL weight rises linearly from 0 to 1; 0 = off (default: 0)")
    t.add_argument("--steps-per-epoch", type=cli.positive_int, help="cap on steps per epoch (default: one pass over the data)")
    t.add_argument("--precise-bn-batches", type=cli.non_negative_int,
                   help="training batches over which BatchNorm statistics are re-estimated before each validation "
                        "and before export; 0 = keep the moving averages (default: 8)")
    t.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                   help="no random horizontal flips of training images (face presets flip)")
    t.add_argument("--seed", type=int, help="seed of data order, initial weights and sampling (default: 0)")
    h = p.add_argument_group("hardware (docs/scaling.md)")
    h.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy: 'auto' = multiworker if TF_CONFIG names several workers, else "
                        "mirrored if there are several GPUs, else default; 'default' = one device; 'mirrored' = all "
                        "local GPUs (or logical CPUs); 'multiworker' = MultiWorkerMirroredStrategy from TF_CONFIG "
                        "(default: auto)")
    h.add_argument("--mixed-precision", action="store_true", default=None,
                   help="compute in mixed_float16 on GPU / mixed_bfloat16 on CPU; sampling, flows, KL and loss "
                        "stay float32 (default: off)")
    h.add_argument("--jit-compile", choices=JIT_CHOICES,
                   help="XLA-compile the training step: 'auto' = on with a GPU, off on CPU, where it measured "
                        "slower (default: auto)")
    o = p.add_argument_group("output")
    o.add_argument("--output-dir", help="where run directories go (default: runs)")
    o.add_argument("--run-name", help="name of the run directory and export (default: DATASET-YYYYMMDD-HHMMSS)")
    o.add_argument("--export-dir", help="where the SavedModel goes, as EXPORT_DIR/RUN_NAME (default: saved_models)")
    o.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint with its config.json (only --epochs, --strategy "
                        "and --jit-compile may change)")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The dataset's preset with every given flag applied, validated."""
    config = preset(args.dataset)
    if args.image_size is not None:
        config.data.image_size = config.model.image_size = args.image_size
    for dest, (section, name) in _OVERRIDES.items():
        value = getattr(args, dest)
        if value is not None:
            setattr(getattr(config, section), name, value)
    return config.validate()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from facevae.data import DataUnavailable
    from facevae.trainer import NonFiniteLoss, fit

    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"python -m facevae.train: error: {error}", file=sys.stderr)
        return 2
    try:
        resume_overrides = args.epochs or args.strategy or args.jit_compile
        result = fit(config if not args.resume or resume_overrides else None, resume=args.resume,
                     verbose=0 if args.quiet else "auto")
    except (DataUnavailable, FileNotFoundError, FileExistsError) as error:
        print(f"python -m facevae.train: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(f"python -m facevae.train: stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; continue from the last finished epoch with: "
              "python -m facevae.train --resume RUN_DIR (the run directory printed above)", file=sys.stderr)
        return 130
    m = result.metrics
    print(f"export:        {result.export_dir}")
    print(f"validation loss {m['validation']['loss']:.2f} nats/image; reconstruction MSE {m['reconstruction_mse']:.5f} "
          f"vs mean-image MSE {m['mean_image_mse']:.5f} ({m['mse_ratio']:.1f}x lower), PSNR {m['psnr_db']:.1f} dB")
    print(f"samples:       {os.path.join(result.run_dir, 'samples')}  loss curve: {os.path.join(result.run_dir, 'loss.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
