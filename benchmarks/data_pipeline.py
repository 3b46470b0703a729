"""Benchmark of data_prep: input pipeline from shards against the alternatives and the training step.

    PYTHONPATH=. python benchmarks/data_pipeline.py [--quick] [--seconds 3] [--repeats 3] [--workdir DIR]

Measures, at 64 and 128 px, images per second of
  * ``data_prep.pipeline.load`` from raw shards (batch 150, shuffle, flip), for several interleave
    settings and with ``cache``;
  * reading the same images as PNG files through tf.data (read_file + decode_png);
  * ``keras.utils.image_dataset_from_directory`` on the same PNG folder;
  * one training step of ``facevae.model.FaceVAE`` with the face preset (imported lazily: the column
    says n/a when facevae is not importable), fed from memory, and ``fit`` fed from the shards;
and the conversion throughput of ``prepare_dataset`` from 1024 px and 256 px PNG sources.
Source faces are made from the twelve FFHQ sample faces when ../shared/data is present (random crops,
flips, brightness and sensor noise), else from smooth noise; nothing is downloaded. Each figure is the
median of ``--repeats`` timed runs of ``--seconds`` after a warm-up. Results go to
benchmarks/results/data_pipeline.md and .json. TensorFlow is imported inside functions only, so
the spawned decoding workers of the writer do not import it when they re-import this module.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

from data_prep.prepare import prepare_dataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
FFHQ_SAMPLE = ROOT.parent / "shared" / "data" / "ffhq_sample" / "images256x256"
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 150  # the published face-VAE batch size


def _bases() -> tuple[list[np.ndarray], str]:
    files = sorted(FFHQ_SAMPLE.glob("*/*.png")) if FFHQ_SAMPLE.is_dir() else []
    if files:
        return [np.asarray(Image.open(f).convert("RGB")) for f in files], f"{len(files)} FFHQ sample faces, jittered"
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (12, 8, 8, 3)).astype(np.uint8)
    return [np.asarray(Image.fromarray(c).resize((256, 256), Image.Resampling.BICUBIC)) for c in coarse], "smooth noise"


def make_sources(folder: pathlib.Path, size: int, count: int, unique: int, seed: int = 0) -> pathlib.Path:
    """``count`` PNGs of ``size`` px under ``folder/NNNNN/``; ``unique`` distinct ones, the rest hard links."""
    bases, _ = _bases()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        path = folder / f"{i // 1000:05d}" / f"{i:05d}.png"
        path.parent.mkdir(exist_ok=True)
        if i >= unique:
            os.link(made[i % unique], path)
            continue
        base = bases[i % len(bases)]
        side = int(rng.integers(200, 257))
        top, left = rng.integers(0, 257 - side, size=2)
        image = Image.fromarray(base[top : top + side, left : left + side]).resize((size, size), Image.Resampling.LANCZOS)
        pixels = np.asarray(image, np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 3, (size, size, 3))
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)[:, :: 1 if rng.uniform() < 0.5 else -1]
        Image.fromarray(pixels).save(path)
        made.append(path)
    return folder


def rate(make_dataset, seconds: float, repeats: int, warmup: int = 5) -> float:
    """Median images/s of iterating ``make_dataset()`` for ``seconds`` after ``warmup`` batches."""
    results = []
    for _ in range(repeats):
        iterator = iter(make_dataset())
        for _ in range(warmup):
            next(iterator)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            batch = next(iterator)
            count += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
        results.append(count / (time.perf_counter() - start))
    return statistics.median(results)


def png_dataset(folder: pathlib.Path, size: int):
    import tensorflow as tf

    files = sorted(str(p) for p in folder.glob("*/*.png"))

    def decode(path):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return tf.cast(tf.reshape(image, [size, size, 3]), tf.float32) / 255.0

    return (tf.data.Dataset.from_tensor_slices(files).shuffle(len(files)).repeat()
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def keras_dataset(folder: pathlib.Path, size: int):
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        str(folder), labels=None, image_size=(size, size), batch_size=BATCH, shuffle=True, seed=0, verbose=False)
    return dataset.map(lambda x: x / 255.0).repeat().prefetch(-1)


def training_rates(size: int, shard_dir: str, seconds: float) -> tuple[float | None, float | None, str]:
    """(train-step img/s from memory, fit img/s from shards, note); None when facevae is unavailable."""
    try:
        import keras
        import tensorflow as tf

        from facevae.config import preset
        from facevae.model import FaceVAE
    except Exception as error:  # the model is written by another branch; say why the column is empty
        return None, None, f"facevae.model not importable ({type(error).__name__}: {error})"
    from data_prep.pipeline import load

    config = preset("ffhq").model
    config.image_size = size
    model = FaceVAE(config, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(5e-4))
    batch = next(iter(load(shard_dir, "train", BATCH)))
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()

    def fit_rate(dataset) -> float:
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)
            steps += 5
        return steps * BATCH / (time.perf_counter() - start)

    from_shards = load(shard_dir, "train", BATCH, flip=True, repeat=True)
    return fit_rate(in_memory), fit_rate(from_shards), "FaceVAE, ffhq preset (latent 200, mse), batch 150, Adam"


def conversion_rate(src: pathlib.Path, work: pathlib.Path, size: int, workers: int, count: int) -> float:
    out = work / f"convert-{src.name}-{size}-{workers}"
    start = time.perf_counter()
    prepare_dataset("folder", str(src), str(out), size=size, workers=workers, progress=False, validation_fraction=0.0)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat (a smoke test)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()
    repeats, seconds = (1, 1.0) if args.quick else (args.repeats, args.seconds)
    counts = {64: 4096, 128: 2048} if not args.quick else {64: 600, 128: 300}
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="data-pipeline-bench-"))
    from data_prep.pipeline import load

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "load_average": os.getloadavg(),
               "batch_size": BATCH, "sources": _bases()[1], "seconds": seconds, "repeats": repeats, "sizes": {}}
    for size, count in counts.items():
        src = make_sources(work / f"png{size}", size, count, unique=count)
        shards = str(work / f"shards{size}")
        start = time.perf_counter()
        prepare_dataset("folder", str(src), shards, size=size, shards=16, validation_fraction=0.0, progress=False)
        row = {"images": count, "prepare_same_size_img_s": count / (time.perf_counter() - start), "pipeline": {}}
        variants = {
            "cycle 16, block 1 (default)": dict(),
            "cycle 1 (no interleave)": dict(cycle_length=1),
            "cycle 4, block 16": dict(cycle_length=4, block_length=16),
            "default + cache": dict(cache=True),
            "default, no flip": dict(flip=False),
        }
        for name, options in variants.items():
            options = {"flip": True, **options}
            row["pipeline"][name] = rate(lambda: load(shards, "train", BATCH, repeat=True, **options), seconds, repeats)
            print(f"{size}px pipeline {name}: {row['pipeline'][name]:,.0f} img/s", flush=True)
        row["png_tf_data"] = rate(lambda: png_dataset(src, size), seconds, repeats)
        row["keras_image_dataset_from_directory"] = rate(lambda: keras_dataset(src, size), seconds, repeats)
        row["train_step"], row["fit_from_shards"], results["model"] = training_rates(size, shards, seconds)
        print(f"{size}px: {json.dumps({k: v for k, v in row.items() if k != 'pipeline'})}", flush=True)
        results["sizes"][size] = row
    conversions = {}
    for source_size, n, unique, outputs in ((1024, 96, 24, (128,)), (256, 1024, 128, (64, 128))):
        n, unique = (n // 4, unique // 4) if args.quick else (n, unique)
        src = make_sources(work / f"src{source_size}", source_size, n, unique=unique, seed=1)
        for size in outputs:
            for workers in (1, 2):
                key = f"{source_size}px -> {size}px, {workers} worker(s)"
                conversions[key] = conversion_rate(src, work, size, workers, n)
                print(f"conversion {key}: {conversions[key]:,.1f} img/s", flush=True)
    results["conversion_img_s"] = conversions
    write_results(results)
    if args.workdir is None:
        shutil.rmtree(work)


def write_results(results: dict) -> None:
    def fmt(value):
        return "n/a" if value is None else f"{value:,.0f}"

    lines = [
        "# data_prep input pipeline benchmark", "",
        f"{results['machine']}, load average at start {', '.join(f'{v:.1f}' for v in results['load_average'])}; "
        f"batch {results['batch_size']}; sources: {results['sources']}; median of {results['repeats']} runs "
        f"of {results['seconds']:g} s. Command: `PYTHONPATH=. python benchmarks/data_pipeline.py`.", "",
        "| images/s | " + " | ".join(f"{size} px" for size in results["sizes"]) + " |",
        "|---|" + "---:|" * len(results["sizes"]),
    ]
    rows = results["sizes"].values()
    names = list(next(iter(rows))["pipeline"])
    for name in names:
        lines.append(f"| data_prep.pipeline.load, {name} | " + " | ".join(fmt(r["pipeline"][name]) for r in rows) + " |")
    for key, label in (("png_tf_data", "PNG files via tf.data (read_file + decode_png)"),
                       ("keras_image_dataset_from_directory", "keras.utils.image_dataset_from_directory"),
                       ("train_step", "training step consumption (model fed from memory)"),
                       ("fit_from_shards", "model.fit fed by data_prep.pipeline.load")):
        lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows) + " |")
    ratios = [r["pipeline"][names[0]] / r["train_step"] if r["train_step"] else None for r in rows]
    lines.append("| **pipeline / training step** | " + " | ".join("n/a" if q is None else f"**{q:.0f}x**" for q in ratios) + " |")
    lines += ["", f"Training step: {results['model']}.", "", "| conversion (prepare_dataset, PNG sources) | images/s |",
              "|---|---:|"]
    lines += [f"| {key} | {value:,.1f} |" for key, value in results["conversion_img_s"].items()]
    lines += [f"| {size} px -> {size} px (same size, 2 workers) | {r['prepare_same_size_img_s']:,.0f} |"
              for size, r in results["sizes"].items()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, text in (("data_pipeline.md", "\n".join(lines) + "\n"), ("data_pipeline.json", json.dumps(results, indent=2))):
        temporary = RESULTS / (name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, RESULTS / name)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
