"""Draw faces from a trained model's prior: decode(prior(eps, temperature)), eps ~ N(0, I).

With ``--prior fitted`` (the default) the noise goes through the model's latent prior fitted after training
(the export's ``sample_tempered`` endpoint; for a model with the standard prior this is decode(temperature * eps));
``--prior standard`` decodes temperature * eps directly, ignoring any fitted prior.

    python -m facevae.sample --model runs/latent-demo --n 64 --out samples.png
    python -m facevae.sample --model saved_models/latent-demo --n 16 --temperature 0.7 --seed 3 --out t07.png
    python -m facevae.sample --model runs/faces --prior standard --out standard.png

--model is a run directory (its export is used) or an exported SavedModel; only TensorFlow is
needed to run it (no facevae training code is loaded).
"""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from facevae import cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m facevae.sample",
                           description="Decode random draws from the prior into a grid of faces.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", required=True, help="run directory or exported SavedModel")
    p.add_argument("--n", type=cli.positive_int, default=64, help="number of faces (default: 64)")
    p.add_argument("--out", default="samples.png", help="PNG to write (default: samples.png)")
    p.add_argument("--temperature", type=cli.positive_float, default=1.0,
                   help="scale of the prior noise; < 1 gives more typical, less varied faces (default: 1.0)")
    p.add_argument("--prior", choices=("fitted", "standard"), default="fitted",
                   help="'fitted': through the model's fitted latent prior when it has one; 'standard': decode N(0, I) "
                        "noise directly (default: fitted)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the noise (default: 0)")
    p.add_argument("--columns", type=cli.positive_int, default=8, help="faces per row (default: 8)")
    p.add_argument("--scale", type=cli.positive_int, default=1, help="enlarge the grid by pixel repetition (default: 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from facevae.export.inference import load_inference_model
    from facevae.analysis.plots import save_image_grid

    model = load_inference_model(args.model)
    noise = np.random.default_rng(args.seed).standard_normal((args.n, model.latent_dim)).astype(np.float32)
    if args.prior == "fitted":
        images = model.sample(noise, args.temperature)
    else:
        images = model.decode(args.temperature * noise)
    save_image_grid(args.out, images, columns=min(args.columns, args.n), scale=args.scale)
    print(f"wrote {args.out}: {args.n} samples from the {args.prior} prior at temperature {args.temperature} "
          f"(seed {args.seed}) from {model.source}")
    return 0


if __name__ == "__main__":
    cli.run(main, "python -m facevae.sample", user_errors=(ValueError,))
