"""How far should the fitted Gaussian prior's covariance be shrunk? Held-out code density and samples, per shrinkage.

    PYTHONPATH=. python benchmarks/prior_shrinkage.py --model RUN_DIR --tag NAME
    PYTHONPATH=. python benchmarks/prior_shrinkage.py --model RUN_DIR --shards SHARDS --shrinkage 0,lw,0.2

For a trained run (its export's ``model.keras``): the posterior means of its training and validation splits (as
``facevae.model.prior.fit_latent_prior`` fits them), then for each shrinkage a one Gaussian with the covariance
(1 - a) S + a (tr S / d) I (``facevae.model.prior.shrunk_covariance``; ``lw`` = the Ledoit-Wolf estimate, the
default fit; 0 = the maximum-likelihood Gaussian). Reported per a: the mean log-density of the training and of the
validation codes under it (nats per code; N(0, I) for comparison), and 200 prior samples (fixed noise, the same for
every a) at T = 1 and 0.7: the share detected as faces and their Frechet face distance to the held-out faces (the
validation split of ``--shards``, the real-face benchmark's shards; ``facevae.analysis.face_metrics``).
Writes benchmarks/results/prior_shrinkage_<tag>.{json,md} and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
DEFAULT_SHARDS = os.path.join(os.path.expanduser("~"), ".cache", "facevae", "real_faces", "shards64")


def _shrinkages(text: str) -> list:
    values = []
    for item in text.split(","):
        item = item.strip()
        if item == "lw":
            values.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers in [0, 1] or 'lw', received {item!r}") from None
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"a shrinkage is in [0, 1], received {item!r}")
        values.append(value)
    return values


def render_markdown(result: dict) -> str:
    lines = [f"Model `{result['model']}` (latent {result['latent_dim']}): {result['train_codes']} training codes, "
             f"{result['validation_codes']} validation codes (N(0, I): {result['standard_normal']:.0f} nats per "
             f"code); samples judged against {result['held_out_faces']} held-out faces.", "",
             "| shrinkage | train log-density | validation log-density | T=1: detected, FFD | T=0.7: detected, FFD |",
             "|---|---:|---:|---|---|"]
    for row in result["rows"]:
        name = f"{row['shrinkage']:.3f}" + (" (Ledoit-Wolf)" if row["ledoit_wolf"] else "")
        samples = [f"{s['detected']:.1%}, {s['frechet']:.3f}" if s["frechet"] is not None else f"{s['detected']:.1%}, -"
                   for s in (row["samples"]["1"], row["samples"]["0.7"])]
        lines.append(f"| {name} | {row['train_log_prob']:.0f} | {row['validation_log_prob']:.0f} | "
                     f"{samples[0]} | {samples[1]} |")
    return "\n".join(lines) + f"\n\nCommand: `{result['command']}` ({result['seconds']:.0f} s).\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run directory of python -m facevae.train")
    parser.add_argument("--shards", default=DEFAULT_SHARDS,
                        help="shards whose validation split are the held-out faces: benchmarks/real_faces.py's "
                             f"--work/shards64 (default: {DEFAULT_SHARDS}, where real_faces.py makes them)")
    parser.add_argument("--shrinkage", type=_shrinkages, default="0,0.05,lw,0.2,0.4",
                        help="comma list of shrinkages in [0, 1] and 'lw' (default: 0,0.05,lw,0.2,0.4)")
    parser.add_argument("--samples", type=int, default=200, help="prior samples per temperature (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample noise (default: 0)")
    parser.add_argument("--tag", default="run", help="results name: benchmarks/results/prior_shrinkage_<tag>.*")
    args = parser.parse_args(argv)
    for needed in ("config.json", os.path.join("export", "model.keras")):
        if not os.path.isfile(os.path.join(args.model, needed)):
            parser.error(f"--model {args.model}: no {needed} there; pass a run directory of python -m facevae.train "
                         "with its export")
    if not os.path.isfile(os.path.join(args.shards, "manifest.json")):
        parser.error(f"--shards {args.shards}: no manifest.json there; run benchmarks/real_faces.py once to make the "
                     "held-out shards, or pass them")

    import keras
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import real_faces
    from facevae.analysis import face_metrics as fm
    from facevae.config import RunConfig
    from facevae.data.datasets import training_data
    from facevae.model import losses, prior
    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the classes load_model needs)

    started = time.time()
    config = RunConfig.load(os.path.join(args.model, "config.json"))
    model = keras.models.load_model(os.path.join(args.model, "export", "model.keras"))
    data = training_data(config)
    # the codes the fit takes: with random flips in training, those of the images and their mirror images
    train = prior.encode_codes(model, data.train, mirrored=config.data.flip)
    validation = prior.encode_codes(model, data.validation)
    held = real_faces._held_out(args.shards)
    analysis_held = fm.analyse_faces(held)
    noise = real_faces._noise(args.samples, train.shape[1], args.seed)
    rows = []
    for shrinkage in args.shrinkage:
        fitted = prior.fit_prior(train, "gmm", components=1, shrinkage=shrinkage)
        row = {"shrinkage": prior.ledoit_wolf_shrinkage(train) if shrinkage is None else shrinkage,
               "ledoit_wolf": shrinkage is None,
               "train_log_prob": float(np.mean(fitted.log_prob(train).numpy())),
               "validation_log_prob": float(np.mean(fitted.log_prob(validation).numpy())), "samples": {}}
        for t in real_faces.TEMPERATURES:
            images = model.decode(fitted(tf.constant(noise), temperature=t)).numpy()
            analysis = fm.analyse_faces(images)
            row["samples"][f"{t:g}"] = {"detected": fm.detection_rate(analysis).rate,
                                        "frechet": real_faces._frechet(analysis_held, analysis)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    standard = float(np.mean(losses.standard_normal_log_prob(validation)))
    result = {"model": os.path.realpath(args.model), "latent_dim": int(train.shape[1]), "train_codes": len(train),
              "validation_codes": len(validation), "standard_normal": standard, "held_out_faces": len(held),
              "rows": rows, "seconds": time.time() - started,
              "command": "PYTHONPATH=. python benchmarks/prior_shrinkage.py " + " ".join(
                  argv if argv is not None else sys.argv[1:])}
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"prior_shrinkage_{args.tag}")
    real_faces._write(out + ".json", json.dumps(result, indent=2) + "\n")
    real_faces._write(out + ".md", render_markdown(result))
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
