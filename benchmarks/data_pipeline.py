"""Benchmark of data_prep: input pipeline from shards against the alternatives and the training step.

    PYTHONPATH=. python benchmarks/data_pipeline.py [--quick] [--seconds 3] [--repeats 3] [--workdir DIR]

Measures, at 64 and 128 px, images per second of
  * ``data_prep.pipeline.load`` from raw shards (batch 150, shuffle, flip), for several interleave
    settings and with ``cache``;
  * reading the same images as PNG files through tf.data (read_file + decode_png);
  * ``keras.utils.image_dataset_from_directory`` on the same PNG folder;
  * one training step of ``facevae.model.vae.FaceVAE`` with the face preset (imported lazily: the column
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
import resource
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
    if folder.is_dir() and len(list(folder.glob("*/*.png"))) == count:
        return folder  # made by an earlier run with the same --workdir
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
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


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children, in seconds."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _summary(walls: list[float], cpus: list[float], counts: list[int]) -> dict:
    """Median images/s (wall clock) and median CPU microseconds per image over the runs."""
    return {"img_s": statistics.median(n / w for n, w in zip(counts, walls)),
            "cpu_us": statistics.median(1e6 * c / n for n, c in zip(counts, cpus))}


def rate(make_dataset, seconds: float, repeats: int, warmup: int = 5) -> dict:
    """Iterate ``make_dataset()`` for ``seconds`` after ``warmup`` batches, ``repeats`` times."""
    walls, cpus, counts = [], [], []
    for _ in range(repeats):
        iterator = iter(make_dataset())
        for _ in range(warmup):
            next(iterator)
        count, start, cpu = 0, time.perf_counter(), _cpu_seconds()
        while time.perf_counter() - start < seconds:
            batch = next(iterator)
            count += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu_seconds() - cpu)
        counts.append(count)
    return _summary(walls, cpus, counts)


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


def training_rates(size: int, shard_dir: str, seconds: float, repeats: int) -> tuple[dict | None, dict | None, str]:
    """(train step fed from memory, fit fed from the shards, note); None when facevae is unavailable."""
    try:
        import keras
        import tensorflow as tf

        from facevae.config import preset
        from facevae.model.vae import FaceVAE
    except Exception as error:  # the model is written by another branch; say why the column is empty
        return None, None, f"facevae.model.vae not importable ({type(error).__name__}: {error})"
    from data_prep.pipeline import load

    config = preset("ffhq").model
    config.image_size = size
    model = FaceVAE(config, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(5e-4))
    batch = next(iter(load(shard_dir, "train", BATCH)))
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()

    def fit_rate(dataset) -> dict:
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        walls, cpus, counts = [], [], []
        for _ in range(repeats):
            steps, start, cpu = 0, time.perf_counter(), _cpu_seconds()
            while time.perf_counter() - start < seconds:
                model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)
                steps += 5
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu_seconds() - cpu)
            counts.append(steps * BATCH)
        return _summary(walls, cpus, counts)

    from_shards = load(shard_dir, "train", BATCH, flip=True, repeat=True)
    return fit_rate(in_memory), fit_rate(from_shards), "FaceVAE, ffhq preset (latent 200, mse), batch 150, Adam"


def conversion_rate(src: pathlib.Path, work: pathlib.Path, size: int, workers: int, count: int) -> dict:
    """prepare_dataset from ``src``; CPU includes the worker processes (reaped when the pool ends)."""
    out = work / f"convert-{src.name}-{size}-{workers}"
    start, cpu = time.perf_counter(), _cpu_seconds()
    prepare_dataset("folder", str(src), str(out), size=size, workers=workers, progress=False, validation_fraction=0.0)
    summary = _summary([time.perf_counter() - start], [_cpu_seconds() - cpu], [count])
    shutil.rmtree(out)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat (a smoke test)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--parts", nargs="+", choices=("pipeline", "conversion"), default=["pipeline", "conversion"],
                        help="what to measure; a part not measured keeps its figures from the last results JSON")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS, help="folder for the .md and .json")
    args = parser.parse_args()
    repeats, seconds = (1, 1.0) if args.quick else (args.repeats, args.seconds)
    counts = {64: 4096, 128: 2048} if not args.quick else {64: 600, 128: 300}
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="data-pipeline-bench-"))
    previous = args.results / "data_pipeline.json"
    results = json.loads(previous.read_text()) if previous.exists() else {"sizes": {}, "conversion_img_s": {}}
    results.update({"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "batch_size": BATCH,
                    "sources": _bases()[1], "seconds": seconds, "repeats": repeats})
    for part in args.parts:
        results[f"load_average_{part}"] = {"start": os.getloadavg()}
    if "pipeline" in args.parts:
        results["sizes"] = measure_pipelines(work, counts, seconds, repeats)
        results["load_average_pipeline"]["end"] = os.getloadavg()
        write_results(results, args.results)  # keep these figures even if the next part fails
    if "conversion" in args.parts:
        results["conversion_img_s"] = measure_conversions(work, args.quick)
        results["load_average_conversion"]["end"] = os.getloadavg()
        write_results(results, args.results)
    if args.workdir is None:
        shutil.rmtree(work)


def measure_pipelines(work: pathlib.Path, counts: dict[int, int], seconds: float, repeats: int) -> dict:
    from data_prep.pipeline import load

    sizes = {}
    for size, count in counts.items():
        src = make_sources(work / f"png{size}", size, count, unique=count)
        shards = str(work / f"shards{size}")
        shutil.rmtree(shards, ignore_errors=True)  # time a fresh preparation, not a finished one
        start, cpu = time.perf_counter(), _cpu_seconds()
        prepare_dataset("folder", str(src), shards, size=size, shards=16, validation_fraction=0.0, progress=False)
        prepared = _summary([time.perf_counter() - start], [_cpu_seconds() - cpu], [count])
        row = {"images": count, "prepare_same_size": prepared, "pipeline": {}}
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
            print(f"{size}px pipeline {name}: {row['pipeline'][name]}", flush=True)
        row["png_tf_data"] = rate(lambda: png_dataset(src, size), seconds, repeats)
        row["keras_image_dataset_from_directory"] = rate(lambda: keras_dataset(src, size), seconds, repeats)
        row["train_step"], row["fit_from_shards"], row["model"] = training_rates(size, shards, seconds, repeats)
        print(f"{size}px: {json.dumps({k: v for k, v in row.items() if k != 'pipeline'})}", flush=True)
        sizes[str(size)] = row
    return sizes


def measure_conversions(work: pathlib.Path, quick: bool) -> dict[str, dict]:
    conversions = {}
    for source_size, n, unique, outputs in ((1024, 192, 24, (128,)), (256, 1024, 128, (64, 128))):
        n, unique = (n // 4, unique // 4) if quick else (n, unique)
        src = make_sources(work / f"src{source_size}", source_size, n, unique=unique, seed=1)
        for size in outputs:
            for workers in (1, 2):
                key = f"{source_size}px -> {size}px, {workers} worker(s)"
                conversions[key] = conversion_rate(src, work, size, workers, n)
                print(f"conversion {key}: {conversions[key]}", flush=True)
    return conversions


def _cells(measure: dict | None) -> str:
    if measure is None:
        return "n/a | n/a"
    return f"{measure['img_s']:,.0f} | {measure['cpu_us']:,.0f}"


def pipeline_table(sizes: dict) -> list[str]:
    rows = list(sizes.values())
    header = " | ".join(f"{size} px img/s | {size} px CPU us/img" for size in sizes)
    lines = [f"| input pipeline | {header} |", "|---|" + "---:|---:|" * len(rows)]
    names = list(rows[0]["pipeline"])
    for name in names:
        lines.append(f"| data_prep.pipeline.load, {name} | " + " | ".join(_cells(r["pipeline"][name]) for r in rows) + " |")
    for key, label in (("png_tf_data", "PNG files via tf.data (read_file + decode_png)"),
                       ("keras_image_dataset_from_directory", "keras.utils.image_dataset_from_directory"),
                       ("train_step", "**training step consumption** (FaceVAE fed from memory)"),
                       ("fit_from_shards", "model.fit fed by data_prep.pipeline.load")):
        lines.append(f"| {label} | " + " | ".join(_cells(r[key]) for r in rows) + " |")
    cells = []
    for r in rows:
        pipeline, step = r["pipeline"][names[0]], r["train_step"]
        cells.append("n/a | n/a" if step is None else
                     f"**{pipeline['img_s'] / step['img_s']:.0f}x** | **{step['cpu_us'] / pipeline['cpu_us']:.0f}x**")
    lines.append("| **pipeline (default) / training step** | " + " | ".join(cells) + " |")
    return lines + ["", f"Training step: {rows[0]['model']}.", ""]


def write_results(results: dict, folder: pathlib.Path) -> None:
    def load(part):
        values = results.get(f"load_average_{part}", {})
        return " -> ".join(f"{v[0]:.1f}" for v in (values.get("start"), values.get("end")) if v) or "n/a"

    lines = [
        "# data_prep input pipeline benchmark", "",
        f"{results['machine']}, shared with other jobs: 1-minute load average {load('pipeline')} during the "
        f"pipeline part, {load('conversion')} during the conversion part. Batch {results['batch_size']}; sources: "
        f"{results['sources']}; median of {results['repeats']} runs of {results['seconds']:g} s. img/s is wall "
        "clock (depressed by the other jobs); CPU us/img is CPU time of the process and its workers per image, "
        "which the other jobs affect far less. Command: `PYTHONPATH=. python benchmarks/data_pipeline.py`.", "",
    ]
    if results["sizes"]:
        lines += pipeline_table(results["sizes"])
    lines += ["| conversion (prepare_dataset from PNG files) | img/s | CPU us/img |", "|---|---:|---:|"]
    lines += [f"| {key} | {_cells(value)} |" for key, value in results["conversion_img_s"].items()]
    lines += [f"| {size} px -> {size} px, 2 workers | {_cells(r['prepare_same_size'])} |"
              for size, r in results["sizes"].items()]
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("data_pipeline.md", "\n".join(lines) + "\n"), ("data_pipeline.json", json.dumps(results, indent=2))):
        temporary = folder / (name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, folder / name)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
