"""Training throughput of facevae's distributed training step: images/s, GFLOP/s against the matmul peak.

Reproduce from the repository root (about 10 minutes on 2 cores):

    PYTHONPATH=. python benchmarks/train_throughput.py

Writes benchmarks/results/train_throughput.json and .md. For every image size (28, 64, 128 px) a
fresh process (so its peak RSS is its own) times the step that ``facevae.training.trainer.fit`` runs
(``facevae.training.distributed.make_train_step`` under the default strategy) for K = 0, 5, 10 planar flows,
fed from memory (uint8 array -> tf.data) and from shards (the images saved as PNG files, prepared
by ``data_prep.prepare.prepare_dataset("folder", ...)`` and read by ``data_prep.pipeline.load``). Variants are interleaved and
repeated; each timed block is preceded by a float32 matmul timing (2048 x 2048, best of 3).
On a machine shared with other jobs the wall clock measures the other jobs too, so, as in
benchmarks/synthetic_speed.py, the headline figures are the least disturbed: img/s = the best
wall-clock rate over the repeats, and % of peak = (best model FLOP rate) / (best matmul FLOP rate,
over all matmul timings of the same process). The figures per CPU-second of this process (all
threads; img/s = images / (CPU seconds / cores), % of peak = model over matmul FLOPs per CPU-second,
medians over the repeats) are reported beside them: they do not see other jobs, but neither do they
see cores left idle by the step.

FLOPs per training image = 3 x forward FLOPs (backward = gradients for inputs and for weights, each
about one forward), forward FLOPs = sum over layers of 2 x multiply-adds:
Conv2D 2 * Ho * Wo * k * k * Cin * Cout; Conv2DTranspose 2 * Hi * Wi * k * k * Cin * Cout;
Dense 2 * in * out; batch norm, activations, flows and the loss are not counted (< 1%).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["model_flops", "matmul_gflops", "main"]

COMMAND = "PYTHONPATH=. python benchmarks/train_throughput.py"
CORES = len(os.sched_getaffinity(0))
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def model_flops(model) -> float:
    """Forward FLOPs per image of a FaceVAE (2 x multiply-adds of its convolutions and dense layers)."""
    import keras

    total = 0.0
    for sub in (model.encoder, model.decoder):
        for layer in sub.layers:
            if isinstance(layer, keras.layers.Conv2DTranspose):
                _, h, w, c_in = layer.input.shape
                total += 2.0 * h * w * layer.kernel_size[0] * layer.kernel_size[1] * c_in * layer.filters
            elif isinstance(layer, keras.layers.Conv2D):
                _, h, w, c_out = layer.output.shape
                c_in = layer.input.shape[-1]
                total += 2.0 * h * w * layer.kernel_size[0] * layer.kernel_size[1] * c_in * c_out
            elif isinstance(layer, keras.layers.Dense):
                total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best float32 matmul rates of an n x n product in a tf.function (2 n^3 FLOPs per call):
    (GFLOP per wall-clock second, GFLOP per CPU-second x cores)."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        product(a, b).numpy()
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, (time.process_time() - began_cpu) / CORES)
    return 2.0 * n**3 / wall / 1e9, 2.0 * n**3 / cpu / 1e9


def _config(size: int, flows: int, batch: int):
    from facevae.config import preset

    config = preset("mnist" if size == 28 else "ffhq")
    config.data.image_size = config.model.image_size = size
    config.model.flows, config.train.batch_size = flows, batch
    config.train.strategy, config.train.jit_compile = "default", "off"
    return config.validate()


def _images(size: int, channels: int, count: int):
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (count, size, size, channels), dtype=np.uint8)


def _write_shards(images, directory: str, shards: int = 4) -> str:
    """The images as PNG files, turned into shards by data_prep exactly as users prepare a folder."""
    from PIL import Image

    from data_prep.prepare import prepare_dataset

    source = os.path.join(directory, "png")
    os.makedirs(source)
    for index, image in enumerate(images):
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(os.path.join(source, f"{index:05d}.png"))
    out = os.path.join(directory, "shards")
    prepare_dataset("folder", source, out, size=images.shape[1], channels=images.shape[-1], shards=shards,
                    workers=1, progress=False, validation_fraction=0.05)
    return out


def _to_float(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0


def memory_dataset(images, batch: int):
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(images).repeat().shuffle(len(images), seed=0)
            .batch(batch, drop_remainder=True).map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def shard_dataset(shard_dir: str, batch: int):
    """data_prep.pipeline.load: interleaved shard reads, batched parsing, shuffle, repeat, prefetch."""
    from data_prep import pipeline

    return pipeline.load(shard_dir, "train", batch, training=True, repeat=True, shuffle_buffer=1024, seed=0)


def _step_for(config):
    import keras
    import tensorflow as tf

    from facevae.training import distributed
    from facevae.model.vae import FaceVAE

    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = FaceVAE(config.model, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
    model.optimizer.build(model.trainable_variables)
    return model, distributed.make_train_step(model, strategy, seed=0, jit_compile=False)


def _time_steps(step, iterator, steps: int) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds / cores) of ``steps`` training steps after one warm-up step."""
    from facevae.model.objective import LOSS

    step(next(iterator))[LOSS].numpy()  # warm-up (tracing happens on the first call only)
    began, began_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        sums = step(next(iterator))
    float(sums[LOSS])
    return time.perf_counter() - began, (time.process_time() - began_cpu) / CORES


def run_size(size: int, flows_list: list[int], batch: int, steps: int, repeats: int) -> dict:
    """Interleaved timings for one image size; runs in its own process."""
    import tensorflow as tf

    config = _config(size, flows_list[0], batch)
    channels = config.data.channels
    images = _images(size, channels, max(8 * batch, 1024))
    workdir = tempfile.mkdtemp(prefix="facevae-throughput-")
    shard_dir = _write_shards(images, workdir)
    variants = {}
    for flows in flows_list:
        model, step = _step_for(_config(size, flows, batch))
        flops = 3.0 * model_flops(model)
        for feed in ("memory", "shards"):
            dataset = memory_dataset(images, batch) if feed == "memory" else shard_dataset(shard_dir, batch)
            variants[(flows, feed)] = (step, iter(dataset), flops)
    names = ("wall_images_per_second", "images_per_second", "fraction_of_peak", "wall_fraction_of_peak",
             "peak_gflops", "wall_peak_gflops")
    rows = {key: {name: [] for name in names} for key in variants}
    for _ in range(repeats):
        for key, (step, iterator, flops) in variants.items():
            wall_peak, peak = matmul_gflops(repeats=5)
            wall, cpu = _time_steps(step, iterator, steps)
            values = (steps * batch / wall, steps * batch / cpu, steps * batch / cpu * flops / 1e9 / peak,
                      steps * batch / wall * flops / 1e9 / wall_peak, peak, wall_peak)
            for name, value in zip(names, values):
                rows[key][name].append(value)
    tf.io.gfile.rmtree(workdir)
    best_peak = max(p for values in rows.values() for p in values["wall_peak_gflops"])
    out = []
    for (flows, feed), values in rows.items():
        flops = variants[(flows, feed)][2]
        best = max(values["wall_images_per_second"])
        out.append({
            "image_size": size, "flows": flows, "feed": feed, "batch_size": batch,
            "train_gflop_per_image": flops / 1e9,
            "images_per_second": best, "gflops": best * flops / 1e9,
            "fraction_of_peak": best * flops / 1e9 / best_peak,
            "matmul_peak_gflops": best_peak,
            "cpu_images_per_second": statistics.median(values["images_per_second"]),
            "cpu_fraction_of_peak": statistics.median(values["fraction_of_peak"]),
            "cpu_matmul_peak_gflops": statistics.median(values["peak_gflops"]),
            "raw": values,
        })
    return {"rows": out, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _markdown(results: dict) -> str:
    lines = [
        f"| px | K | batch | feed | img/s | GFLOP/s | % of matmul peak | shards / memory "
        "| img/s, best wall clock | % of peak, best wall clock | peak RSS (MB) |",
        "|---:|--:|------:|------|------:|--------:|-----------------:|----------------:|------:|------:|--------------:|",
    ]
    for size_result in results["sizes"]:
        rows = size_result["rows"]
        memory = {r["flows"]: r["cpu_images_per_second"] for r in rows if r["feed"] == "memory"}
        for r in rows:
            ratio = r["cpu_images_per_second"] / memory[r["flows"]]
            gflops = r["cpu_images_per_second"] * r["train_gflop_per_image"]
            lines.append(
                f"| {r['image_size']} | {r['flows']} | {r['batch_size']} | {r['feed']} | {r['cpu_images_per_second']:.0f} | "
                f"{gflops:.0f} | {100 * r['cpu_fraction_of_peak']:.0f}% | {ratio:.2f} | "
                f"{r['images_per_second']:.0f} | {100 * r['fraction_of_peak']:.0f}% | {size_result['max_rss_mb']:.0f} |"
            )
    cpu_peaks = [r["cpu_matmul_peak_gflops"] for s in results["sizes"] for r in s["rows"]]
    peaks = ", ".join(f"{s['rows'][0]['image_size']} px {s['rows'][0]['matmul_peak_gflops']:.0f}" for s in results["sizes"])
    lines += [
        "",
        f"img/s, GFLOP/s and % of peak per CPU time of the benchmark process ({CORES} cores: img/s = images / "
        f"(CPU seconds / {CORES})), medians of {len(results['sizes'][0]['rows'][0]['raw']['images_per_second'])} "
        f"interleaved repeats; float32 matmul peak measured in the same processes: {statistics.median(cpu_peaks):.0f} "
        f"GFLOP/s per CPU time; best wall-clock matmul: {peaks} GFLOP/s. Training GFLOP per image = 3 x forward "
        "(conv, transposed conv and dense multiply-adds x 2). Peak RSS: the whole process for that image size. "
        f"Settings: {results['settings']}. Command: `{COMMAND}`.",
    ]
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128])
    p.add_argument("--flows", type=int, nargs="+", default=[0, 5, 10])
    p.add_argument("--batch-size", type=int, default=None, help="per step (default: 100 at 28 px, 150 otherwise)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--table-only", action="store_true", help="rewrite the .md from the .json in --out")
    args = p.parse_args(argv)
    if args.table_only:
        with open(os.path.join(args.out, "train_throughput.json")) as f:
            table = _markdown(json.load(f))
        _write(os.path.join(args.out, "train_throughput.md"), table)
        print(table)
        return
    if args.one_size:
        batch = args.batch_size or (100 if args.one_size == 28 else 150)
        print("RESULT " + json.dumps(run_size(args.one_size, args.flows, batch, args.steps, args.repeats)))
        return
    settings = {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                                "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS") if os.environ.get(k)}
    settings["cores"] = CORES
    load = os.getloadavg()[0]
    results = {"command": COMMAND, "settings": settings, "sizes": [], "load_average_at_start": load}
    for size in args.sizes:
        cmd = [sys.executable, os.path.abspath(__file__), "--one-size", str(size), "--steps", str(args.steps),
               "--repeats", str(args.repeats), "--flows", *map(str, args.flows)]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")][-1]
        results["sizes"].append(json.loads(line[len("RESULT "):]))
        print(f"{size} px done", flush=True)
    os.makedirs(args.out, exist_ok=True)
    _write(os.path.join(args.out, "train_throughput.json"), json.dumps(results, indent=2))
    table = _markdown(results)
    _write(os.path.join(args.out, "train_throughput.md"), table)
    print(table)


if __name__ == "__main__":
    main()
