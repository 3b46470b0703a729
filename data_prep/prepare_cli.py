"""Commands that turn source data into shards: ``ffhq``, ``folder``, ``mnist``, ``binarized-mnist``.

    python -m data_prep ffhq --src ~/ffhq/thumbnails128x128 --out data/ffhq128 --size 128 \
        [--attributes ffhq_features.csv] [--shards N] [--workers N]
    python -m data_prep folder --src ~/celeba/img_align_celeba --out data/celeba64 --size 64 \
        [--attributes list_attr_celeba.txt]
    python -m data_prep mnist --src ~/mnist --out data/mnist
    python -m data_prep binarized-mnist --src ~/binarized_mnist --out data/binarized_mnist

Each prints the final report (images written per split, conversions, skipped files with reasons).
Re-running the same command after an interruption writes only the missing shards.
"""
from __future__ import annotations

import argparse

from data_prep.prepare import prepare_dataset, report_lines

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="folder (or file) holding the source data")
    parser.add_argument("--out", required=True, help="shard directory to create (local path, gs:// or s3://)")
    parser.add_argument("--shards", type=int, default=None, help="shards for the train split (default: ~64 MiB each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the order within shards")
    parser.add_argument("--overwrite", action="store_true", help="replace shards prepared differently in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _images(parser: argparse.ArgumentParser, size_default: int | None) -> None:
    parser.add_argument("--size", type=int, default=size_default, required=size_default is None,
                        help=f"side of the square output images in px (28-1024; default {size_default})")
    parser.add_argument("--attributes", default=None,
                        help="attribute table: FFHQ features CSV, CelebA list_attr_celeba.txt, or a CSV")
    parser.add_argument("--missing-attributes", choices=("error", "skip"), default="error",
                        help="images without a row in --attributes: stop with an error, or leave them out")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    parser.add_argument("--encoding", choices=("auto", "raw", "png"), default="auto",
                        help="stored pixels: raw uint8 (fastest to read) or PNG; auto = raw up to 256 px")
    parser.add_argument("--resample", choices=("lanczos", "area"), default="lanczos", help="downscaling filter")


def _run(kind: str):
    def run(args: argparse.Namespace) -> int:
        options = {name: getattr(args, name) for name in ("size", "attributes", "workers", "encoding", "resample")
                   if hasattr(args, name)}
        if hasattr(args, "missing_attributes"):
            options["missing_attributes"] = args.missing_attributes
        if hasattr(args, "validation_fraction"):
            options["validation_fraction"] = args.validation_fraction
        if hasattr(args, "channels"):
            options["channels"] = args.channels
        manifest = prepare_dataset(
            kind, args.src, args.out, shards=args.shards, seed=args.seed, progress=not args.quiet,
            overwrite=args.overwrite, **options,
        )
        print("\n".join(report_lines(manifest)))
        print(f"manifest: {args.out.rstrip('/')}/manifest.json")
        return 0

    return run


def register(subparsers) -> None:
    ffhq = subparsers.add_parser("ffhq", help="FFHQ as published (NNNNN/NNNNN.png) -> shards, FFHQ's own split",
                                 description="Shards from FFHQ's images1024x1024 or thumbnails128x128 folder.")
    _common(ffhq)
    _images(ffhq, 128)
    ffhq.set_defaults(func=_run("ffhq"))

    folder = subparsers.add_parser("folder", help="any folder of aligned face images -> shards",
                                   description="Shards from any folder tree of PNG, JPEG or WebP images.")
    _common(folder)
    _images(folder, None)
    folder.add_argument("--validation-fraction", type=float, default=0.1, help="share of files for validation")
    folder.add_argument("--channels", type=int, choices=(1, 3), default=3, help="3 = RGB, 1 = grayscale")
    folder.set_defaults(func=_run("folder"))

    mnist = subparsers.add_parser("mnist", help="the four MNIST IDX files (or mnist.npz) -> shards",
                                  description="Shards from MNIST's IDX files, gzipped or not, or Keras' mnist.npz.")
    _common(mnist)
    mnist.set_defaults(func=_run("mnist"))

    binarized = subparsers.add_parser("binarized-mnist", help="statically binarized MNIST (.amat/.mat) -> shards",
                                      description="Shards from binarized_mnist_{train,valid,test}.amat or .mat.")
    _common(binarized)
    binarized.set_defaults(func=_run("binarized_mnist"))
