"""Throughput of the procedural face generator (faces per second), at 64 and 128 pixels.

Reproduce from the repository root:

    PYTHONPATH=. python benchmarks/synthetic_speed.py

Prints the best of three timed runs per size (the best run is the least disturbed by other
processes on a shared machine); generation only, no PNG encoding or disk writes.
"""
from __future__ import annotations

import time

from data_prep.synthetic import generate_faces

__all__ = ["faces_per_second", "main"]

COMMAND = "PYTHONPATH=. python benchmarks/synthetic_speed.py"


def faces_per_second(size: int, count: int, repeats: int = 3, channels: int = 3) -> float:
    """Best rate over ``repeats`` calls of ``generate_faces(count, size)``, in faces per second."""
    generate_faces(min(count, 64), size=size, channels=channels)  # warm up caches and imports
    best = 0.0
    for repeat in range(repeats):
        began = time.perf_counter()
        generate_faces(count, size=size, seed=repeat, channels=channels)
        best = max(best, count / (time.perf_counter() - began))
    return best


def main() -> None:
    print(f"command: {COMMAND}")
    for size, count in ((64, 3000), (128, 1000)):
        print(f"size {size:3d} RGB: {faces_per_second(size, count):8.0f} faces/s "
              f"(best of 3 runs of {count} faces)")


if __name__ == "__main__":
    main()
