"""The MNIST planar-flow study: K = 0, 5 and 10 amortized planar flows, same architecture, budget and seed.

Reproduce from the repository root (resumable: re-running continues each model's budget):

    PYTHONPATH=. python benchmarks/flows_study.py --data-dir ../shared/data/binarized_mnist \
        --importance-samples 5000 --out benchmarks/results
    make bench-flows                     # the same

Trains on statically binarized MNIST (Larochelle and Murray's 50k/10k/10k split; Bernoulli
likelihood), or with ``--dataset mnist --data-dir ../shared/data/mnist`` on the IDX MNIST with
dynamic binarization (train 50k / validation 10k taken from the 60k, test 10k). Each model trains
for ``--epochs`` (default 30 = 15,000 steps, Adam's step size decaying to 0 on a cosine), stopped
early if it passes ``--budget-minutes`` of wall-clock (default 60); then its test set (``--test-count``
images drawn at random with the seed, default all) is scored with the model's own importance-weighted
NLL, image by image, so that the table can give each K's paired difference from K = 0.

p(x|z) is the autoregressive PixelCNN decoder (``facevae.model.pixelcnn``: a 5x5 masked convolution over
the pixels above and to the left plus a per-pixel code from z; ``--pixel-window``); ``--decoder conv``
gives the plain Conv2DTranspose decoder. The three models can also run as three processes side by side
(``--flows 0``, ``--flows 5``, ``--flows 10`` with one ``--runs``); a last call with all three
reuses their finished evaluations (``RUN/evaluation-<checkpoint>-S<S>-n<N>.json``) and writes the joint table.

Writes into ``--out``: flows_study.md (the table), flows_study.json, and the figures
flows_study_reconstructions_K0.png / _K5.png (test originals above reconstructions, as the
paper's figures 3 and 4) and flows_study_loss.png / flows_study_loss_no_first.png (training loss
per iteration with and without the first iteration, figures 5 and 6). Runs live in ``--runs``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from data_prep import atomic, mnist
from data_prep.errors import DataError
from data_prep.sources import SOURCES
from facevae import cli
from facevae.analysis import metrics
from facevae.analysis import plots
from facevae.config import FLOW_TYPES, preset
from facevae.data.datasets import TrainingData
from facevae.model.objective import LOSS
from facevae.training.trainer import fit, latest_checkpoint

__all__ = ["load_digit_splits", "training_data", "train_model", "evaluate_run", "main"]


def load_digit_splits(dataset: str, data_dir: str) -> dict[str, np.ndarray]:
    """{"train", "validation", "test"} -> float32 [N, 28, 28, 1] in [0, 1], read by ``data_prep.mnist``.

    binarized_mnist: binarized_mnist_{train,valid,test}.mat/.amat, values in {0, 1} (50k/10k/10k).
    mnist: IDX files (or mnist.npz); grey levels / 255 (binarize them per epoch); the last 10k
    training digits are the validation split.
    """
    if dataset == "binarized_mnist":
        raw, scale = mnist.read_binarized_mnist(data_dir), 1.0
    elif dataset == "mnist":
        digits = mnist.read_mnist(data_dir)
        train, test = digits["train"][0], digits["test"][0]
        raw, scale = {"train": train[:50000], "validation": train[50000:], "test": test}, 1.0 / 255.0
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of ['binarized_mnist', 'mnist']")
    return {s: (a.reshape(-1, 28, 28, 1) * scale).astype(np.float32) for s, a in raw.items()}


def _binarize(seed: int):
    generator = tf.random.Generator.from_seed(seed)
    return lambda x: tf.cast(generator.uniform(tf.shape(x)) < x, tf.float32)


def training_data(splits: dict[str, np.ndarray], batch_size: int, seed: int, dynamic: bool) -> TrainingData:
    """tf.data pipelines for fit(): shuffled training batches (binarized afresh each epoch when ``dynamic``)."""
    train = tf.data.Dataset.from_tensor_slices(splits["train"]).shuffle(len(splits["train"]), seed=seed)
    train = train.batch(batch_size, drop_remainder=True)
    validation = tf.data.Dataset.from_tensor_slices(splits["validation"]).batch(batch_size)
    preview = splits["validation"][:32]
    if dynamic:
        train = train.map(_binarize(seed))
        fixed = np.random.default_rng(seed).random(splits["validation"].shape) < splits["validation"]
        validation = tf.data.Dataset.from_tensor_slices(fixed.astype(np.float32)).batch(batch_size)
        preview = fixed[:32].astype(np.float32)
    mean_image = splits["train"].mean(0)
    return TrainingData(train.prefetch(2), validation.prefetch(2), preview, mean_image)


class _Budget(keras.callbacks.Callback):
    """Stops training once the run's cumulative wall-clock (kept in budget.json across resumes) passes the budget;
    also appends the per-iteration objective to iterations.csv (recovered exactly from Keras' running mean)."""

    def __init__(self, run_dir: str, budget_seconds: float):
        super().__init__()
        self.path = os.path.join(run_dir, "budget.json")
        self.iterations = os.path.join(run_dir, "iterations.csv")
        self.budget = budget_seconds
        self.spent = json.load(open(self.path))["seconds"] if os.path.exists(self.path) else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.began, self.previous, self.rows = time.perf_counter(), 0.0, []

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs[LOSS])  # running mean over the epoch's first batch+1 steps
        self.rows.append(mean * (batch + 1) - self.previous * batch)
        self.previous = mean
        if self.spent + time.perf_counter() - self.began >= self.budget:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.spent += time.perf_counter() - self.began
        atomic.write_json(self.path, {"seconds": self.spent, "epochs": epoch + 1}, indent=None)
        with open(self.iterations, "a", newline="") as f:
            csv.writer(f).writerows([[r] for r in self.rows])


def train_model(flows: int, data: TrainingData, args) -> str:
    """Train (or resume) the K = ``flows`` model within the budget; returns its run directory."""
    # planar keeps the study's original run names, so earlier runs resume
    kind = "" if args.flow_type == "planar" else f"-{args.flow_type}"
    run_dir = os.path.join(args.runs, f"bmnist{kind}-K{flows}")
    budget = _Budget(run_dir, args.budget_minutes * 60.0)
    done = json.load(open(budget.path))["epochs"] if os.path.exists(budget.path) else 0
    if (budget.spent >= budget.budget or done >= args.epochs) and latest_checkpoint(run_dir)[0]:
        print(f"K={flows}: budget already spent ({budget.spent:.0f} s, {done} epochs); evaluating the last checkpoint")
        return run_dir
    config = preset("binarized_mnist")
    config.data.dataset = args.dataset
    config.model.flows, config.model.flow_mode, config.model.flow_type = flows, "amortized", args.flow_type
    config.model.latent_dim = args.latent_dim
    config.model.decoder, config.model.pixel_filters, config.model.pixel_layers, config.model.pixel_window = (
        args.decoder, args.pixel_filters, args.pixel_layers, args.pixel_window)
    config.train.epochs, config.train.batch_size = args.epochs, args.batch_size
    config.train.learning_rate, config.train.kl_warmup_epochs = args.learning_rate, args.kl_warmup
    config.train.lr_schedule = args.lr_schedule  # recorded in the run's config.json (facevae.training.schedules)
    config.train.keep_checkpoints = 0  # --checkpoint-epoch may ask for any epoch
    config.train.seed, config.train.steps_per_epoch = args.seed, args.steps_per_epoch
    config.train.output_dir, config.train.run_name = args.runs, os.path.basename(run_dir)
    config.train.export_dir = os.path.join(args.runs, "saved_models")
    resume = run_dir if latest_checkpoint(run_dir)[0] else None
    if resume is None and os.path.exists(os.path.join(run_dir, "config.json")):
        os.remove(os.path.join(run_dir, "config.json"))  # an attempt that never finished an epoch
    fit(config, resume=resume, data=data, callbacks=[budget], verbose=args.verbose)
    return run_dir


def evaluate_run(run_dir: str, test: np.ndarray, args) -> dict:
    """Test metrics of the run's latest checkpoint: negative ELBO, IW-NLL (S samples), bits/dim, MSE, PSNR."""
    path, epoch = latest_checkpoint(run_dir)
    if args.checkpoint_epoch:  # the same number of optimizer steps for every K, whatever the wall clock gave
        epoch = args.checkpoint_epoch
        path = os.path.join(run_dir, "checkpoints", f"epoch-{epoch:03d}.keras")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: --checkpoint-epoch {epoch} is beyond this run")
    model = keras.models.load_model(path)
    # A finished evaluation of this checkpoint on the same test images and S is reused (resumable study).
    key = {"checkpoint": os.path.basename(path), "importance_samples": args.importance_samples,
           "test_images": len(test), "test_checksum": float(test.sum(dtype=np.float64)), "mse_count": args.mse_count}
    stem = os.path.splitext(os.path.basename(path))[0]
    cache = os.path.join(run_dir, f"evaluation-{stem}-S{args.importance_samples}-n{len(test)}.json")
    if os.path.exists(cache):
        saved = json.load(open(cache))
        if saved.get("key") == key:
            print(f"{run_dir}: reusing {cache}")
            return {**saved["result"], "_model": model}
    batches = [test[i : i + args.eval_batch] for i in range(0, len(test), args.eval_batch)]
    began = time.perf_counter()
    with tqdm(total=len(test), desc=f"{os.path.basename(run_dir)} IW-NLL S={args.importance_samples}",
              unit="img", mininterval=30) as bar:
        result = metrics.evaluate_model(model, batches, args.importance_samples, chunk=args.chunk,
                                        progress=bar.update, reconstruction_limit=args.mse_count, per_image=True)
    budget = json.load(open(os.path.join(run_dir, "budget.json")))
    result.update(checkpoint=os.path.basename(path), epochs=epoch, train_seconds=round(budget["seconds"], 1),
                  eval_seconds=round(time.perf_counter() - began, 1),
                  optimizer_steps=int(model.optimizer.iterations.numpy()))
    _write(cache, json.dumps({"key": key, "result": result}, indent=2))
    return {**result, "_model": model}


def _figures(results: dict, test: np.ndarray, out: str) -> list[str]:
    from matplotlib.figure import Figure  # no pyplot: leaves the process's backend alone (notebooks)

    written = []
    originals = test[np.linspace(0, len(test) - 1, 10).astype(int)]  # spread over the (class-sorted) test file
    for k in (0, 5):
        if k in results:
            recon = results[k]["_model"].reconstruct(originals).numpy()
            path = os.path.join(out, f"flows_study_reconstructions_K{k}.png")
            written.append(plots.save_png(path, plots.image_grid(np.concatenate([originals, recon]), 10), scale=2))
    for skip, name in ((0, "flows_study_loss.png"), (1, "flows_study_loss_no_first.png")):
        figure = Figure(figsize=(6, 3.5))
        axis = figure.subplots()
        for k in sorted(results):
            rows = np.loadtxt(os.path.join(results[k]["run_dir"], "iterations.csv"), ndmin=1)
            axis.plot(np.arange(1, len(rows) + 1)[skip:], rows[skip:], lw=0.6, label=f"K = {k}")
        axis.set_xlabel("iteration")
        axis.set_ylabel("training objective (nats)")
        axis.set_title("training loss" + (" without the first iteration" if skip else ""))
        axis.legend()
        figure.tight_layout()
        path = os.path.join(out, name)
        with atomic.atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=90)
        written.append(path)
    return written


def _paired_difference(result: dict, baseline: dict | None) -> dict | None:
    """Mean and standard error over test images of IW-NLL(K) - IW-NLL(K = 0), image by image (same digits,
    so the spread of digit difficulty cancels); None without per-image values or a K = 0 run."""
    if baseline is None or "iw_nll_per_image" not in result or "iw_nll_per_image" not in baseline:
        return None
    differences = np.asarray(result["iw_nll_per_image"]) - np.asarray(baseline["iw_nll_per_image"])
    return {"mean": float(differences.mean()), "stderr": float(differences.std() / math.sqrt(len(differences))),
            "share_better": float(np.mean(differences < 0))}


def _paired(result: dict, baseline: dict | None) -> str:
    difference = _paired_difference(result, baseline)
    return "n/a" if difference is None else f"{difference['mean']:+.3f} +- {difference['stderr']:.3f}"


def _write(path: str, text: str) -> None:
    atomic.write_text(path, text)


DIGIT_DATASETS = tuple(s.name for s in SOURCES if s.content == "digits")  # from data_prep's registry


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="benchmarks/flows_study.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DIGIT_DATASETS, default="binarized_mnist",
                   help="static binarized MNIST, or IDX MNIST binarized dynamically (default: binarized_mnist)")
    p.add_argument("--data-dir", required=True, help="folder with binarized_mnist_*.mat (or the IDX .gz files)")
    p.add_argument("--flows", type=cli.non_negative_int, nargs="+", default=[0, 5, 10], help="K values (default: 0 5 10)")
    p.add_argument("--flow-type", choices=FLOW_TYPES, default="planar",
                   help="kind of each flow, a type registered in facevae.flows.registry (default: planar)")
    p.add_argument("--budget-minutes", type=cli.positive_float, default=60.0,
                   help="training wall-clock cap per model (default: 60)")
    p.add_argument("--epochs", type=cli.positive_int, default=30, help="epochs per model (default: 30)")
    p.add_argument("--steps-per-epoch", type=cli.positive_int, help="batches per epoch (default: one pass)")
    p.add_argument("--latent-dim", type=cli.positive_int, default=32, help="latent size d (default: 32)")
    p.add_argument("--decoder", choices=("conv", "pixelcnn"), default="pixelcnn",
                   help="p(x|z): autoregressive PixelCNN head or the plain conv decoder (default: pixelcnn)")
    p.add_argument("--pixel-filters", type=cli.positive_int, default=32, help="PixelCNN width (default: 32)")
    p.add_argument("--pixel-layers", type=cli.non_negative_int, default=0,
                   help="PixelCNN 3x3 layers after its first one; 0 keeps it local, so z carries the shape (default: 0)")
    p.add_argument("--pixel-window", type=cli.positive_int, default=5,
                   help="odd side of the PixelCNN's first masked kernel (7 sees 24 earlier pixels, 5 sees 12, 3 sees 4); "
                        "smaller leaves more of each digit to z, and so to the flows (default: 5)")
    p.add_argument("--batch-size", type=cli.positive_int, default=100, help="images per step (default: 100)")
    p.add_argument("--learning-rate", type=cli.positive_float, default=1e-3, help="Adam step size (default: 0.001)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine",
                   help="cosine decay of the step size to 0 over --epochs, or constant (default: cosine)")
    p.add_argument("--kl-warmup", type=cli.non_negative_int, default=2, help="KL warm-up epochs (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed shared by all models (default: 0)")
    p.add_argument("--checkpoint-epoch", type=cli.positive_int,
                   help="evaluate every model at this epoch's checkpoint (equal steps) instead of its last one")
    p.add_argument("--importance-samples", type=cli.positive_int, default=5000, help="S for IW-NLL (default: 5000)")
    p.add_argument("--test-count", type=cli.positive_int, help="score the first N test images (default: all)")
    p.add_argument("--test-pick", choices=("random", "first"), default="random",
                   help="with --test-count: a seeded random subset or the first N images (default: random)")
    p.add_argument("--mse-count", type=cli.positive_int, default=1000,
                   help="test images whose reconstruction MSE is scored; a PixelCNN decodes pixel by pixel (default: 1000)")
    p.add_argument("--eval-batch", type=cli.positive_int, default=20, help="test images per IW batch (default: 20)")
    p.add_argument("--chunk", type=cli.positive_int, default=250, help="importance samples per pass (default: 250)")
    p.add_argument("--runs", default="runs/flows_study", help="run directories (default: runs/flows_study)")
    p.add_argument("--out", default="benchmarks/results", help="table, JSON and figures (default: benchmarks/results)")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity (default: 2)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        splits = load_digit_splits(args.dataset, args.data_dir)
    except DataError as error:
        print(f"benchmarks/flows_study.py: error: {error}", file=sys.stderr)
        return 2
    data = training_data(splits, args.batch_size, args.seed, dynamic=args.dataset == "mnist")
    test = splits["test"]
    if args.test_count and args.test_pick == "random":  # a seeded uniform subset, in test-set order
        test = test[np.sort(np.random.default_rng(args.seed).choice(len(test), args.test_count, replace=False))]
    test = test[: args.test_count]
    if args.dataset == "mnist":
        test = (np.random.default_rng(args.seed + 1).random(test.shape) < test).astype(np.float32)
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for k in args.flows:
        run_dir = train_model(k, data, args)
        results[k] = {"run_dir": run_dir, **evaluate_run(run_dir, test, args)}
        print(f"K={k}: " + ", ".join(f"{n}={v:.3f}" for n, v in results[k].items() if isinstance(v, float)))
    figures = _figures(results, test, args.out)
    command = "PYTHONPATH=. python benchmarks/flows_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    picked = f"{args.test_pick} {len(test)} of {len(splits['test'])}" if args.test_count else "all"
    table = [f"Command: `{command}`", "",
             f"Test images: {picked}; importance samples S = {args.importance_samples}; "
             f"budget {args.budget_minutes:g} min or {args.epochs} epochs per model; latent {args.latent_dim}; "
             f"batch {args.batch_size}; Adam {args.learning_rate:g} ({args.lr_schedule}); "
             f"PixelCNN window {args.pixel_window}; KL warm-up {args.kl_warmup} epochs; seed {args.seed}.", "",
             "| K | epochs | steps | train s | -ELBO (nats) | IW-NLL (nats) | +- s.e. | IW-NLL - K0, paired | "
             "bits/dim | MSE | PSNR (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in sorted(results.items()):
        table.append(f"| {k} | {r['epochs']} | {r['optimizer_steps']} | {r['train_seconds']:.0f} | "
                     f"{r['negative_elbo']:.2f} | {r['iw_nll']:.2f} | {r['iw_nll_stderr']:.2f} | "
                     f"{_paired(r, results.get(0))} | "
                     f"{r['iw_nll_bits_per_dim']:.4f} | {r['reconstruction_mse']:.4f} | {r['psnr_db']:.2f} |")
    _write(os.path.join(args.out, "flows_study.md"), "\n".join(table) + "\n")
    clean = {str(k): {n: v for n, v in r.items() if n != "_model" and not n.endswith("_per_image")}
             for k, r in results.items()}
    for k, r in results.items():
        clean[str(k)]["iw_nll_minus_k0"] = _paired_difference(r, results.get(0))
    _write(os.path.join(args.out, "flows_study.json"),
           json.dumps({"command": command, "test_images": len(test), "args": vars(args), "results": clean,
                       "figures": figures}, indent=2))
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
