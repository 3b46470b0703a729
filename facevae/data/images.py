"""Reading user images for a model: centre crop to a square, resize to the model's size, one-line errors.

    image, note = read_image("me.jpg", size=64, channels=3)   # float32 [64, 64, 3] in [0, 1]
    if note: print(note)                                        # "note: me.jpg is 640x480; ..."

Pixels go through ``data_prep.images.decode_image``, the same decoding, crop and Lanczos
resize that prepared the training shards (EXIF orientation, 16-bit, palette, CMYK and
transparent images included), so a model sees a user's photo as it saw its training data.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_prep.images import ImageFileError, decode_image

__all__ = ["ImageError", "check_paths", "read_image", "read_images", "check_float_images"]


class ImageError(ValueError):
    """A missing or unreadable image (a user error, shown as one line)."""


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header; ImageError when it is missing or not an image."""
    if not os.path.exists(path):
        raise ImageError(f"image {path!r} does not exist")
    if os.path.isdir(path):
        raise ImageError(f"image {path!r} is a directory, not an image file")
    try:
        with Image.open(path) as opened:
            opened.verify()
            return opened.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"cannot read image {path!r}: {reason}") from None


def check_paths(paths: list[str]) -> None:
    """ImageError for the first path that is missing, a directory or not an image (cheap: reads headers only)."""
    for path in paths:
        _image_size(path)


def read_image(path: str, size: int, channels: int) -> tuple[np.ndarray, str | None]:
    """Read ``path`` as float32 [size, size, channels] in [0, 1]; also a note when it had to be cropped or resized."""
    width, height = _image_size(path)
    try:
        pixels, _ = decode_image(path, size, channels=channels)
    except ImageFileError as error:
        raise ImageError(f"cannot read image {path!r}: {error}") from None
    note = None
    if (width, height) != (size, size):
        crop = f"centre-cropped to {min(width, height)}x{min(width, height)} and " if width != height else ""
        note = f"note: {path} is {width}x{height}; {crop}resized to {size}x{size} for the model"
    return pixels.astype(np.float32) / 255.0, note


def read_images(paths: list[str], size: int, channels: int) -> tuple[np.ndarray, list[str]]:
    """Several images -> float32 [N, size, size, channels] and the notes about them."""
    images, notes = [], []
    for path in paths:
        image, note = read_image(path, size, channels)
        images.append(image)
        if note:
            notes.append(note)
    return np.stack(images), notes


def check_float_images(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3) -> float32 (N, H, W, C).

    Raises ValueError naming the dtype, shape or range that is wrong (the measures in facevae.analysis judge
    decoded images, which are floats in [0, 1]).
    """
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floats in [0, 1]; received dtype {x.dtype} (divide uint8 images by 255)")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (N, H, W, 3) or (N, H, W, 1); received shape {np.shape(images)}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"images must be floats in [0, 1]; received range [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]")
    return x.astype(np.float32)
