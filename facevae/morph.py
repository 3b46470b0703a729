"""Morph one face into another by decoding points on the latent path between them.

    python -m facevae.morph --model runs/latent-demo --a A.png --b B.png --steps 8 --out morph.png
    python -m facevae.morph --model saved_models/latent-demo --a A.png --b B.png --method lerp --out lerp.png

Any image works: it is centre-cropped to a square and resized to the model's size (with a note).
The grid row is: A, then ``--steps`` decoded faces from A's reconstruction to B's, then B.
``--method slerp`` (default) follows the great circle between the two latents, ``lerp`` the chord.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from facevae import cli

__all__ = ["build_parser", "main"]


def _steps(text: str) -> int:
    value = cli.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2; received {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m facevae.morph",
                           description="Decode faces along the latent path from image A to image B.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", required=True, help="run directory or exported SavedModel")
    p.add_argument("--a", required=True, help="start image (any size or format Pillow reads)")
    p.add_argument("--b", required=True, help="end image")
    p.add_argument("--steps", type=_steps, default=8, help="decoded faces on the path, endpoints included (default: 8)")
    p.add_argument("--method", choices=("slerp", "lerp"), default="slerp", help="interpolation (default: slerp)")
    p.add_argument("--out", default="morph.png", help="PNG to write (default: morph.png)")
    p.add_argument("--scale", type=cli.positive_int, default=1, help="enlarge the grid by pixel repetition (default: 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from facevae.data.images import check_paths, read_images

    check_paths([args.a, args.b])  # before TensorFlow loads: a typo fails at once
    from facevae.export.inference import load_inference_model
    from facevae.analysis.latent import morph
    from facevae.analysis.plots import save_image_grid

    model = load_inference_model(args.model)
    images, notes = read_images([args.a, args.b], model.image_size, model.channels)
    for note in notes:
        print(note, file=sys.stderr)
    path = morph(model, images[0], images[1], steps=args.steps, method=args.method)
    row = np.concatenate([images[:1], path, images[1:]])
    save_image_grid(args.out, row, columns=len(row), scale=args.scale)
    print(f"wrote {args.out}: A, {args.steps} {args.method} steps, B (model {model.source})")
    return 0


if __name__ == "__main__":
    cli.run(main, "python -m facevae.morph", user_errors=(ValueError,))
