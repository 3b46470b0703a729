"""Score a trained FaceVAE on held-out data: negative ELBO, importance-weighted NLL, bits/dim, MSE, PSNR.

    python -m facevae.evaluate --model runs/synthetic-20261121-101500 --importance-samples 100
    python -m facevae.evaluate --model saved_models/bmnist-K10 --dataset binarized_mnist \
        --data-dir shards/bmnist --split test --importance-samples 5000

``--model`` is a run directory (its newest checkpoint is used), an export directory holding
``model.keras``, or a ``.keras`` file. The dataset defaults to the one in the run's config.json
(built-in faces when there is none). Prints a table and writes metrics.json (``--output``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from facevae import cli

__all__ = ["build_parser", "resolve_model", "held_out_images", "main"]


def resolve_model(path: str) -> tuple[str, str | None]:
    """(path of the .keras file to load, the run directory's config.json or None) for ``--model``
    (facevae.training.rundir.resolve_model: a run's newest checkpoint, an export's model.keras, or the file)."""
    from facevae.training.rundir import resolve_model as resolve

    source = resolve(path)
    if source.keras is None:
        raise ValueError(f"--model {path}: holds neither checkpoints/epoch-NNN.keras nor model.keras")
    return source.keras, source.config


def held_out_images(dataset: str, split: str, data_dir: str | None, image_size: int, channels: int,
                    batch_size: int, count: int | None, train_count: int = 8000, validation_count: int = 1000,
                    seed: int = 0):
    """An iterable of float32 image batches [B, S, S, C] in [0, 1] and the number of images in it.

    synthetic: built-in faces after the training ones (validation: the next ``validation_count``;
    test: the ``validation_count`` after those). Other datasets: shards of ``split`` via data_prep.
    """
    import numpy as np

    if dataset == "synthetic":
        from data_prep.synthetic import generate_faces

        start = train_count if split == "validation" else train_count + validation_count
        if split == "train":
            start = 0
        images, _ = generate_faces(count or validation_count, size=image_size, seed=seed, channels=channels,
                                   start=start)
        images = images.astype(np.float32) / 255.0
        return [images[i : i + batch_size] for i in range(0, len(images), batch_size)], len(images)
    from data_prep import pipeline
    from data_prep.manifest import read_manifest
    from facevae.config import DataConfig
    from facevae.data.datasets import DataUnavailable, resolve_shards

    data_dir = resolve_shards(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, channels=channels))
    available = read_manifest(data_dir)["splits"].get(split)
    if not available:
        raise DataUnavailable(f"shards in {data_dir} have no {split!r} split")
    binarize = "dynamic" if dataset == "mnist" else None
    data = pipeline.load(data_dir, split, batch_size, training=False, binarize=binarize, seed=seed)
    total = min(int(available), count) if count else int(available)
    if count:
        data = data.unbatch().take(count).batch(batch_size)
    return data, total


def build_parser() -> argparse.ArgumentParser:
    from facevae.config import DATASETS

    p = cli.ArgumentParser(
        prog="python -m facevae.evaluate",
        description="Evaluate a trained FaceVAE: -ELBO, importance-weighted NLL, bits/dim, MSE and PSNR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--model", required=True, help="run directory, export directory or .keras file")
    p.add_argument("--dataset", choices=DATASETS, help="data to score (default: the run's, else synthetic)")
    p.add_argument("--data-dir", help="shards (or raw data) for non-synthetic datasets")
    p.add_argument("--split", choices=("test", "validation", "train"), default="test", help="split (default: test)")
    p.add_argument("--count", type=cli.positive_int, help="score only the first N images (default: all)")
    p.add_argument("--importance-samples", type=cli.non_negative_int, default=1000,
                   help="S for the IW-NLL; 0 skips it (default: 1000)")
    p.add_argument("--chunk", type=cli.positive_int, default=100, help="importance samples per pass (default: 100)")
    p.add_argument("--batch-size", type=cli.positive_int, default=50, help="images per pass (default: 50)")
    p.add_argument("--mse-count", type=cli.positive_int,
                   help="score reconstruction MSE/PSNR on the first N images (default: all; 1000 for a pixelcnn "
                        "decoder, which reconstructs pixel by pixel)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--output", help="metrics JSON path (default: MODEL_DIR/eval-SPLIT/metrics.json)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_path, config_path = resolve_model(args.model)
    import keras
    from tqdm import tqdm

    from facevae.analysis import metrics
    from facevae.config import RunConfig
    from facevae.model.losses import LIKELIHOODS
    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the class for load_model)

    keras.utils.set_random_seed(args.seed)
    model = keras.models.load_model(model_path)
    run = RunConfig.load(config_path) if config_path else None
    dataset = args.dataset or (run.data.dataset if run else "synthetic")
    data_dir = args.data_dir or (run.data.data_dir if run else None)
    extra = {"train_count": run.data.train_count, "validation_count": run.data.validation_count} if run else {}
    batches, total = held_out_images(dataset, args.split, data_dir, model.config.image_size, model.config.channels,
                                     args.batch_size, args.count, seed=run.train.seed if run else 0, **extra)
    with tqdm(total=total, unit="img", desc="evaluating", file=sys.stderr) as bar:
        limit = args.mse_count or metrics.default_reconstruction_limit(model)
        result = metrics.evaluate_model(model, batches, args.importance_samples, args.chunk, progress=bar.update,
                                        reconstruction_limit=limit)
    result.update(model=model_path, dataset=dataset, split=args.split, likelihood=model.config.likelihood,
                  flows=model.config.flows)
    base = os.path.dirname(model_path) if config_path is None else os.path.dirname(config_path)
    output = args.output or os.path.join(base, f"eval-{args.split}", "metrics.json")
    from data_prep import atomic

    atomic.write_json(output, result)
    units = "nats" if LIKELIHOODS[model.config.likelihood].in_nats else "objective units"
    rows = [("images", f"{result['examples']}"), (f"-ELBO ({units})", f"{result['negative_elbo']:.3f}"),
            ("-ELBO bits/dim", f"{result['negative_elbo_bits_per_dim']:.4f}")]
    if args.importance_samples:
        rows += [(f"IW-NLL, S={args.importance_samples} ({units})",
                  f"{result['iw_nll']:.3f} +- {result['iw_nll_stderr']:.3f}"),
                 ("IW-NLL bits/dim", f"{result['iw_nll_bits_per_dim']:.4f}")]
    rows += [("reconstruction MSE", f"{result['reconstruction_mse']:.5f}"), ("PSNR (dB)", f"{result['psnr_db']:.2f}")]
    width = max(len(name) for name, _ in rows)
    print(f"{dataset} {args.split}, model {model_path}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"metrics: {output}")
    return 0


if __name__ == "__main__":
    from facevae.data.datasets import DataUnavailable

    cli.run(main, "python -m facevae.evaluate", user_errors=(ValueError, DataUnavailable, FileNotFoundError))
