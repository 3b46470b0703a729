"""Attribute vectors: compute (or load) one, then draw faces from 'attribute removed' to 'added'.

    python -m facevae.attributes --list --data synthetic
    python -m facevae.attributes --model runs/latent-demo --data synthetic --attribute glasses --out glasses.png
    python -m facevae.attributes --model saved_models/latent-demo --data shards/ffhq64 --attribute smiling \\
        --images me.jpg you.png --alphas -3:3:7 --out smiling.png
    python -m facevae.attributes --model runs/latent-demo --vector glasses.npy --images me.jpg --out g.png
    python -m facevae.attributes --model saved_models/ffhq-64 --data shards/ffhq64 --attribute 'age>=40' --out age.png

A continuous column (FFHQ's age in years, its smile probability) is an attribute only with a threshold:
'age>=40' has faces of 40 and over on the "with" side, so positive alphas age a face and negative ones make
it younger. The vector is mean(z | attribute) - mean(z | not) over --count faces of --data, normalised to unit
length (``facevae.analysis.latent.attribute_vector``). By default (--balance) attributes whose labels
correlate with it (|phi| >= 0.1) are held fixed by least squares, so that adding glasses does not also add
what goes with glasses in the data (on FFHQ: being male); --no-balance gives the plain difference. z is the
code the edit is applied to: the model's refined code (``code``) when it refines, which for the 64-px face
defaults takes about 2 minutes per 1,000 faces on 2 CPU cores. The vector is saved beside the grid (grid.png ->
grid.npy, unit vector, and grid.json, its statistics).
Alphas are multiples of the vector's class-mean gap unless --alpha-units latent: alpha = 1.5 is the
default edit (``facevae.analysis.latent.DEFAULT_STRENGTH``: a typical face without the attribute moves half a
gap beyond the mean of the faces with it), -1.5 the default removal; the default grid runs from one to the
other. Each grid row is one face: the input, then its decodings at each alpha.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from facevae import cli

__all__ = ["build_parser", "parse_alphas", "main"]


def parse_alphas(text: str) -> np.ndarray:
    """'a:b:n' -> n evenly spaced values from a to b; 'x,y,z' -> those values; 'x' -> [x]."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            if int(count) < 1:
                raise ValueError
            return np.linspace(float(start), float(stop), int(count))
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be start:stop:count (e.g. -3:3:7) or a comma list (e.g. -1,0,1); received {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m facevae.attributes",
                           description="Add or remove an attribute by latent arithmetic and draw the result.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", help="run directory or exported SavedModel")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (built-in faces) or a shard directory from data_prep (default: synthetic)")
    p.add_argument("--attribute", help="attribute name (see --list), or a column compared with a threshold, "
                                       "needed for continuous columns: 'age>=40', 'smile<0.2'")
    p.add_argument("--list", action="store_true", help="print the attributes --data offers and exit")
    p.add_argument("--vector", help="load this saved vector (.npy) instead of computing one")
    p.add_argument("--images", nargs="+", help="faces to edit (default: --rows faces of the data, half with it)")
    p.add_argument("--alphas", type=parse_alphas, default="-1.5:1.5:7",
                   help="edit strengths, start:stop:count or a comma list (default: -1.5:1.5:7)")
    p.add_argument("--alpha-units", choices=("gap", "latent"), default="gap",
                   help="'gap': multiples of the class-mean gap (1.5 = default edit); 'latent': raw latent units")
    p.add_argument("--balance", action=argparse.BooleanOptionalAction, default=True,
                   help="hold attributes correlated with this one (|phi| >= 0.1, known for every face used) fixed "
                        "when computing the vector; copies of it (FFHQ's 'smile' of 'smiling') are skipped. "
                        "--no-balance: the plain class-mean difference (default: balanced)")
    p.add_argument("--count", type=cli.positive_int, default=2000, help="faces used for the vector (default: 2000)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the built-in faces (default: 0)")
    p.add_argument("--split", default="train", help="shard split to read (default: train)")
    p.add_argument("--rows", type=cli.positive_int, default=6, help="data faces in the grid without --images (default: 6)")
    p.add_argument("--out", default="attribute.png", help="PNG to write (default: attribute.png)")
    p.add_argument("--scale", type=cli.positive_int, default=1, help="enlarge the grid by pixel repetition (default: 1)")
    return p


def _vector(args, model):
    """Compute the vector from --data (80% of the faces) and its AUC on the other 20%; also grid faces."""
    from facevae.analysis import latent
    from facevae.data.labelled_faces import load_labelled_faces

    held_out = max(args.rows, args.count // 4)
    faces = load_labelled_faces(args.data, args.count + held_out, model.image_size, model.channels,
                                seed=args.seed, split=args.split)
    if faces.note:
        print(faces.note, file=sys.stderr)
    name = args.attribute
    labels, known = faces.binary(name)  # before encoding: a continuous column without a threshold fails at once
    z = model.code(faces.images, progress=True)  # the codes the edits are applied to (refined when the model refines)
    train = np.zeros(len(z), bool)
    train[:min(args.count, len(z) - 1)] = True
    fit = train & known
    control = (latent.balance_controls({**faces.labels, name: labels}, {**faces.known, name: known}, name, fit)
               if args.balance else {})
    vector = latent.attribute_vector(z[fit], labels[fit], name, control=control)
    test = ~train & known
    auc = None
    y = labels[test]
    if y.any() and not y.all():
        auc = latent.separation_auc(vector, z[test], y)
    return vector, auc, faces.images, labels, test


def _attach_values(argv: list[str]) -> list[str]:
    """'--alphas -3:3:7' -> '--alphas=-3:3:7': argparse would take a value starting with '-' for a flag."""
    out = []
    for i, item in enumerate(argv):
        if i and argv[i - 1] == "--alphas" and out and out[-1] == "--alphas":
            out[-1] = f"--alphas={item}"
        else:
            out.append(item)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_values(list(sys.argv[1:] if argv is None else argv)))
    from facevae.data.labelled_faces import SYNTHETIC, attribute_names, check_attribute

    if args.list:
        names = attribute_names(args.data)
        print(f"{args.data}: {', '.join(names) if names else 'no attributes'}")
        if names and args.data != SYNTHETIC:
            print("columns that are not 0/1 (FFHQ's age, smile) need a threshold: --attribute 'age>=40'")
        return 0
    if not args.model:
        parser.error("--model is required (unless --list)")
    if not args.vector and not args.attribute:
        parser.error("give --attribute (to compute a vector) or --vector (to load one)")
    if not args.vector:
        check_attribute(args.attribute, attribute_names(args.data), args.data)

    from facevae.data.images import check_paths, read_images

    check_paths(args.images or [])  # before TensorFlow loads: a typo fails at once
    if args.vector and not args.images:
        parser.error("--images is required with --vector")
    from facevae.analysis import latent
    from facevae.export.inference import load_inference_model
    from facevae.analysis.plots import save_image_grid

    model = load_inference_model(args.model)
    if args.vector:
        vector = latent.load_vector(args.vector, name=args.attribute)
        if vector.direction.shape != (model.latent_dim,):
            raise ValueError(f"vector {args.vector!r} has size {vector.direction.size}; the model's latent size is {model.latent_dim}")
        print(f"loaded {vector.name!r} vector from {args.vector} (gap {vector.gap:.3f})")
    else:
        vector, auc, data_images, labels, test = _vector(args, model)
        stem = os.path.splitext(args.out)[0]
        saved = latent.save_vector(f"{stem}.npy", vector,
                                   extra={"model": model.source, "data": args.data, "held_out_auc": auc})
        balance = f", controlled for {list(vector.controlled_for)}" if vector.controlled_for else ""
        auc_text = f"{auc:.3f}" if auc is not None else "n/a (held-out faces lack a class)"
        print(f"{vector.name!r} vector from {vector.counts[0]} faces with and {vector.counts[1]} without{balance}: "
              f"gap {vector.gap:.3f}, held-out separation AUC {auc_text}; saved {saved}")

    if args.images:
        images, notes = read_images(args.images, model.image_size, model.channels)
        for note in notes:
            print(note, file=sys.stderr)
    else:  # faces the vector was not computed from: without the attribute first, then with it
        index = np.flatnonzero(test)
        y = labels[index]
        half = args.rows // 2
        chosen = list(index[~y][:args.rows - half]) + list(index[y][:half])
        images = data_images[chosen]

    alphas = args.alphas * (vector.gap if args.alpha_units == "gap" else 1.0)
    edited = latent.apply(model.code(images), vector, alphas)  # [N, A, d]
    decoded = model.decode(edited.reshape(-1, model.latent_dim)).reshape((len(images), len(alphas)) + images.shape[1:])
    grid = np.concatenate([images[:, None], decoded], axis=1).reshape((-1,) + images.shape[1:])
    save_image_grid(args.out, grid, columns=len(alphas) + 1, scale=args.scale)
    shown = ", ".join(f"{a:g}" for a in args.alphas)
    print(f"wrote {args.out}: {len(images)} faces x alphas [{shown}] ({args.alpha_units} units; "
          f"1 gap = {vector.gap:.3f} latent units)")
    return 0


if __name__ == "__main__":
    cli.run(main, "python -m facevae.attributes", user_errors=(ValueError,))
