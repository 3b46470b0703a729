"""Commands that turn source data into shards, one per prepared source of ``data_prep.sources``.

    python -m data_prep ffhq --src ~/ffhq/thumbnails128x128 --out data/ffhq128 --size 128 \
        [--attributes ffhq_features.csv] [--validation-indices 1000-1100] [--shards N] [--workers N]
    python -m data_prep folder --src ~/celeba/img_align_celeba --out data/celeba64 --size 64 \
        [--attributes list_attr_celeba.txt] [--split-file list_eval_partition.txt]
    python -m data_prep mnist --src ~/mnist --out data/mnist
    python -m data_prep binarized-mnist --src ~/binarized_mnist --out data/binarized_mnist

Each prints the final report (images written per split, conversions, skipped files with reasons).
Re-running the same command after an interruption writes only the missing shards.
"""
from __future__ import annotations

import argparse

from data_prep.prepare import prepare_dataset, report_lines
from data_prep.sources import PREPARED, Source, source

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="folder (or file) holding the source data")
    parser.add_argument("--out", required=True, help="shard directory to create (local path, gs:// or s3://); a "
                        "local one is locked while written, gs:// and s3:// are not: run one writer at a time there")
    parser.add_argument("--shards", type=int, default=None, help="shards for the train split (default: ~64 MiB each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the order within shards")
    parser.add_argument("--overwrite", action="store_true", help="replace shards prepared differently in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _images(parser: argparse.ArgumentParser, entry: Source) -> None:
    parser.add_argument("--size", type=int, default=entry.default_size,
                        help=f"side of the square output images in px (28-1024; default {entry.default_size})")
    parser.add_argument("--attributes", default=None,
                        help="attribute table: FFHQ features CSV, CelebA list_attr_celeba.txt, or a CSV")
    parser.add_argument("--missing-attributes", choices=("error", "skip"), default="error",
                        help="images without a row in --attributes: stop with an error, or leave them out")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    parser.add_argument("--encoding", choices=("auto", "raw", "png"), default="auto",
                        help="stored pixels: raw uint8 (fastest to read) or PNG; auto = raw up to 256 px")
    parser.add_argument("--resample", choices=("lanczos", "area"), default="lanczos", help="downscaling filter")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3, help="3 = RGB, 1 = grayscale")


def _folder(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of files for validation when there is no split file (default 0.1)")
    parser.add_argument("--split-file", default=None, metavar="PATH",
                        help="split file 'NAME 0|1|2' (0 train, 1 validation, 2 test); default: "
                             "list_eval_partition.txt in --src or its parent when present; 'none' = never")


def _ffhq(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validation-indices", default=None, metavar="LIST",
                        help="held-out FFHQ indices, ranges and commas, e.g. 1000-1100 or 5,7,60000-60999 "
                             "(default: FFHQ's own 60000-69999; a seeded 10%% when no image is in that range)")


# Options only some sources take (the rest come from the registry entry).
_EXTRA_OPTIONS = {"ffhq": _ffhq, "folder": _folder}
_OPTION_NAMES = ("size", "attributes", "workers", "encoding", "resample", "missing_attributes",
                 "validation_fraction", "channels", "split_file", "validation_indices")


def _run(kind: str):
    def run(args: argparse.Namespace) -> int:
        options = {name: getattr(args, name) for name in _OPTION_NAMES if hasattr(args, name)}
        manifest = prepare_dataset(
            kind, args.src, args.out, shards=args.shards, seed=args.seed, progress=not args.quiet,
            overwrite=args.overwrite, **options,
        )
        print("\n".join(report_lines(manifest)))
        print(f"manifest: {args.out.rstrip('/')}/manifest.json")
        return 0

    return run


def register(subparsers) -> None:
    """One sub-command per source of ``data_prep.sources`` that is prepared from files, in registry order."""
    for name in PREPARED:
        entry = source(name)
        parser = subparsers.add_parser(entry.command, help=entry.help,
                                       description=f"{entry.description} Split: {entry.split}.")
        _common(parser)
        if entry.resizable:
            _images(parser, entry)
        if name in _EXTRA_OPTIONS:
            _EXTRA_OPTIONS[name](parser)
        parser.set_defaults(func=_run(name))
