"""Reading user images for a model: centre crop to a square, resize to the model's size, one-line errors.

    image, note = read_image("me.jpg", size=64, channels=3)   # float32 [64, 64, 3] in [0, 1]
    if note: print(note)                                        # "note: me.jpg is 640x480; ..."

Any format Pillow reads works; colour images become grey (ITU-R 601 luma) for 1-channel models
and grey images are repeated into 3 channels for RGB models.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageError", "check_paths", "read_image", "read_images", "centre_crop_resize"]


class ImageError(ValueError):
    """A missing or unreadable image (a user error, shown as one line)."""


def centre_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square of ``image``, resized to ``size`` x ``size`` (bicubic, antialiased)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC, reducing_gap=None)
    return square


def check_paths(paths: list[str]) -> None:
    """ImageError for the first path that is missing, a directory or not an image (cheap: reads headers only)."""
    for path in paths:
        if not os.path.exists(path):
            raise ImageError(f"image {path!r} does not exist")
        if os.path.isdir(path):
            raise ImageError(f"image {path!r} is a directory, not an image file")
        try:
            with Image.open(path) as opened:
                opened.verify()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ImageError(f"cannot read image {path!r}: {reason}") from None


def read_image(path: str, size: int, channels: int) -> tuple[np.ndarray, str | None]:
    """Read ``path`` as float32 [size, size, channels] in [0, 1]; also a note when it had to be cropped or resized."""
    if not os.path.exists(path):
        raise ImageError(f"image {path!r} does not exist")
    if os.path.isdir(path):
        raise ImageError(f"image {path!r} is a directory, not an image file")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.convert("RGBA") if opened.mode in ("P", "LA", "PA") else opened.copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"cannot read image {path!r}: {reason}") from None
    if image.mode == "RGBA":  # composite transparent images on white
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    note = None
    if (width, height) != (size, size):
        crop = f"centre-cropped to {min(width, height)}x{min(width, height)} and " if width != height else ""
        note = f"note: {path} is {width}x{height}; {crop}resized to {size}x{size} for the model"
    array = np.asarray(centre_crop_resize(image, size), dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return array, note


def read_images(paths: list[str], size: int, channels: int) -> tuple[np.ndarray, list[str]]:
    """Several images -> float32 [N, size, size, channels] and the notes about them."""
    images, notes = [], []
    for path in paths:
        image, note = read_image(path, size, channels)
        images.append(image)
        if note:
            notes.append(note)
    return np.stack(images), notes
