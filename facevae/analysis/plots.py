"""Pictures: image grids, sample sheets and loss curves (numpy, PIL and matplotlib; no TensorFlow).

Images are float arrays in [0, 1] shaped [N, H, W, C] (C = 1 or 3) or uint8. Every file is
written atomically: to a temporary name in the same folder, then renamed.
"""
from __future__ import annotations

import csv
from typing import Sequence

import numpy as np
from PIL import Image

from data_prep import atomic
from facevae.model.objective import KL, LOSS, RECONSTRUCTION

__all__ = ["to_uint8", "image_grid", "save_png", "save_image_grid", "sample_sheet", "plot_loss_curves", "read_history"]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[..., H, W, C] floats in [0, 1] (or uint8) -> uint8 RGB, grey expanded to 3 channels."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def image_grid(images: np.ndarray, columns: int, padding: int = 2, background: int = 255) -> np.ndarray:
    """Tile N images [N, H, W, C] into one uint8 picture with ``columns`` per row and padding between."""
    images = to_uint8(images)
    count, height, width, _ = images.shape
    rows = max(1, -(-count // columns))
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, 3), background, np.uint8
    )
    for i, image in enumerate(images):
        top = padding + (i // columns) * (height + padding)
        left = padding + (i % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(path: str, picture: np.ndarray, scale: int = 1) -> str:
    """Write a uint8 [H, W, 3] picture as PNG atomically; ``scale`` enlarges it by pixel repetition."""
    image = Image.fromarray(to_uint8(picture))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic.atomic_path(path) as tmp:
        image.save(tmp)
    return path


def save_image_grid(path: str, images: np.ndarray, columns: int = 8, scale: int = 1) -> str:
    return save_png(path, image_grid(images, columns), scale=scale)


def sample_sheet(originals: np.ndarray, reconstructions: np.ndarray, samples: np.ndarray, columns: int = 8) -> np.ndarray:
    """One picture: rows of originals, each followed by its reconstructions, then rows of prior samples.

    originals and reconstructions are [N, H, W, C] with N a multiple of ``columns``; samples [M, H, W, C].
    """
    rows = []
    for start in range(0, len(originals), columns):
        rows.append(originals[start : start + columns])
        rows.append(reconstructions[start : start + columns])
    paired = image_grid(np.concatenate(rows), columns)
    sampled = image_grid(samples, columns)
    gap = np.full((6, paired.shape[1], 3), 255, np.uint8)
    return np.concatenate([paired, gap, sampled], axis=0)


def read_history(path: str) -> dict[str, list[float]]:
    """Columns of a Keras CSVLogger file as lists of floats, keyed by header name."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in (rows[0].keys() if rows else [])}


def plot_loss_curves(history: dict[str, Sequence[float]], path: str, title: str = "training") -> str:
    """Plot loss, reconstruction and KL per epoch (training and validation) into a PNG."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend (e.g. a notebook's) is left alone

    names = [n for n in (LOSS, RECONSTRUCTION, KL) if n in history]
    epochs = np.asarray(history.get("epoch", range(len(history[names[0]])))) + 1
    figure = Figure(figsize=(4 * len(names), 3.2))
    axes = figure.subplots(1, len(names))
    for axis, name in zip(np.atleast_1d(axes), names):
        axis.plot(epochs, history[name], "o-", label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], "s--", label="validation")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.set_ylabel("nats per example")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    return path
