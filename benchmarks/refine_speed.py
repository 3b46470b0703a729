"""What do refined codes cost? Time per face of a model's reconstruction at several --refine-steps, interleaved.

    PYTHONPATH=. python benchmarks/refine_speed.py --model runs/RUN --steps 0,25,50,100

Loads the run's Keras model (``facevae.training.rundir.resolve_model``), builds one compiled
``reconstruct(images, refine_steps=N)`` per N (facevae.model.refine; N = 0 is the encoder's code), and times each on
random images in batches of 1 and of ``--batch``, the variants interleaved within every repeat so that a shared,
noisy machine slows them alike. Prints the median milliseconds per face over ``--repeats`` and the ratio to 0 steps,
with the command; nothing is written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run directory, export directory or .keras file")
    parser.add_argument("--steps", default="0,25,50,100", help="comma list of refine steps to time (default: 0,25,50,100)")
    parser.add_argument("--batch", type=int, default=100, help="the larger batch size (default: 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant and batch (default: 5)")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps {args.steps!r}: expected a comma list of integers, e.g. 0,50")

    import keras
    import tensorflow as tf

    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the class for load_model)
    from facevae.training.rundir import resolve_model

    try:
        keras_file = resolve_model(args.model).keras
    except ValueError as error:
        parser.error(str(error))
    if keras_file is None:
        parser.error(f"--model {args.model}: no model.keras there (this benchmark needs the Keras model)")
    model = keras.models.load_model(keras_file)
    size, channels = model.config.image_size, model.config.channels
    compiled = {n: tf.function(lambda images, n=n: model.reconstruct(images, refine_steps=n)) for n in steps}
    rows = []
    for batch in (1, args.batch):
        images = tf.constant(np.random.default_rng(0).uniform(size=(batch, size, size, channels)).astype(np.float32))
        for fn in compiled.values():
            fn(images)  # trace and warm up
        times = {n: [] for n in steps}
        for _ in range(args.repeats):
            for n, fn in compiled.items():
                started = time.perf_counter()
                fn(images).numpy()
                times[n].append((time.perf_counter() - started) / batch)
        base = statistics.median(times[steps[0]])
        rows += [(batch, n, statistics.median(times[n]), statistics.median(times[n]) / base) for n in steps]
    print(f"| batch | refine steps | ms per face | ratio to {steps[0]} steps |\n|---:|---:|---:|---:|")
    for batch, n, seconds, ratio in rows:
        print(f"| {batch} | {n} | {1000 * seconds:.1f} | {ratio:.1f}x |")
    print(f"\n{model.config.image_size} px, latent {model.config.latent_dim}; medians of {args.repeats} interleaved "
          f"calls on {os.cpu_count()} CPU cores. Command: `PYTHONPATH=. python benchmarks/refine_speed.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
