"""Decoding one image file into a square uint8 array of a given size (Pillow and NumPy only).

Every file goes through the same steps, so that a folder mixing formats gives uniform shards:

1. open and fully decode (PNG, JPEG, WebP, or anything else Pillow reads), applying the EXIF
   orientation;
2. bring the pixels to 8-bit RGB (or L): 16-bit samples are scaled by ``round(v * 255 / 65535)``
   (never clipped), palette images are expanded, CMYK/YCbCr/LAB are converted with Pillow, and
   an alpha channel is dropped when fully opaque or composited over white otherwise;
3. centre square crop of side ``min(H, W)``;
4. resize to ``size x size`` with Lanczos (default) or area (box) filtering. Pillow first reduces
   by an integer factor with a box filter when the source is much larger (``reducing_gap``),
   which is both faster and at least as sharp as filtering in one step.

Files that cannot be used raise :class:`ImageFileError` whose message is one line naming the
file and the reason; the writer's worker processes catch it, so one corrupt file is skipped and
reported rather than ending the run. This module must not import TensorFlow (it runs in workers).
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESAMPLING",
    "ImageFileError",
    "decode_image",
    "encode_pixels",
    "decode_files",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}
ENCODINGS = ("raw", "png")
_REDUCING_GAP = 3.0
# Pillow's decompression-bomb guard would reject large but legitimate scans; 1024x1024 FFHQ is far below.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


class ImageFileError(ValueError):
    """A file that cannot be turned into an image; the message names the file and the reason."""


def _open(path: str, size: int, notes: list[str]) -> Image.Image:
    try:
        if os.path.getsize(path) == 0:
            raise ImageFileError(f"{path}: empty file (0 bytes); re-copy it or delete it")
        image = Image.open(path)
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: not an image file Pillow can read (wrong extension?); delete or convert it") from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read, truncated or corrupt ({error.strerror or error})") from None
    if image.mode in ("RGB", "RGBA") and any(";16" in str(tile.args) for tile in image.tile or []):
        notes.append("16-bit")  # Pillow keeps the high byte of 48/64-bit PNGs: v >> 8, within 1 of v / 257
    if image.format == "JPEG":
        image.draft(None, (size, size))  # decode at 1/2, 1/4 or 1/8 scale when that still covers `size`
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error ...
        raise ImageFileError(f"{path}: corrupt or truncated image data ({error}); re-copy or delete it") from None
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of a large image without EXIF
    except Exception:  # a broken EXIF block should not cost the image: keep it unrotated
        pass
    return image


def _to_8bit(image: Image.Image, path: str, notes: list[str]) -> Image.Image:
    """Convert any Pillow mode to 'L', 'RGB', 'LA' or 'RGBA' with 8-bit samples."""
    mode = image.mode
    if mode in ("L", "RGB", "LA", "RGBA"):
        return image
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (Pillow widens 16-bit PNGs to I)
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageFileError(f"{path}: 32-bit integer pixels (mode {mode}) are not supported; save as 8- or 16-bit")
        notes.append("16-bit")
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L")
    if mode == "F":
        raise ImageFileError(f"{path}: floating-point pixels (mode F) are not supported; save as 8- or 16-bit")
    if mode == "1":
        return image.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper())
    if mode == "CMYK":
        notes.append("CMYK")
    try:
        return image.convert("RGB")
    except Exception as error:
        raise ImageFileError(f"{path}: cannot convert mode {mode} to RGB ({error})") from None


def _drop_alpha(image: Image.Image, notes: list[str]) -> Image.Image:
    if image.mode not in ("LA", "RGBA"):
        return image
    alpha = image.getchannel("A")
    base_mode = image.mode[:-1]
    if alpha.getextrema()[0] == 255:
        notes.append("opaque alpha dropped")
        return image.convert(base_mode)
    notes.append("transparency composited over white")
    background = Image.new(image.mode, image.size, (255,) * len(image.mode))
    return Image.alpha_composite(background.convert("RGBA"), image.convert("RGBA")).convert(base_mode)


def decode_image(
    path: str, size: int, *, channels: int = 3, resample: str = "lanczos"
) -> tuple[np.ndarray, list[str]]:
    """Read ``path`` as a ``(size, size, channels)`` uint8 array (steps in the module docstring).

    Returns the array and a list of notes on conversions made (e.g. ``"16-bit"``, ``"CMYK"``,
    ``"upscaled"``, ``"grey to RGB"`` for a grey source stored as 3 equal channels, ``"colour to
    grey"`` for a colour source stored as luma), which the writer tallies in its report. Raises :class:`ImageFileError`.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    if resample not in RESAMPLING:
        raise ValueError(f"Unknown resample {resample!r}; expected one of {sorted(RESAMPLING)}")
    notes: list[str] = []
    image = _drop_alpha(_to_8bit(_open(path, size, notes), path, notes), notes)
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        notes.append("grey to RGB" if target == "RGB" else "colour to grey")
        image = image.convert(target)
    width, height = image.size
    side = min(width, height)
    if side == 0:
        raise ImageFileError(f"{path}: image has zero width or height")
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side < size:
        notes.append("upscaled")
    if side == size:
        image = image.crop(box)
    else:
        image = image.resize((size, size), RESAMPLING[resample], box=box, reducing_gap=_REDUCING_GAP)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(size, size, channels), notes


def encode_pixels(array: np.ndarray, encoding: str) -> bytes:
    """Bytes stored in a shard: ``raw`` is the C-order uint8 buffer (H, W, C); ``png`` a PNG file."""
    if encoding == "raw":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if encoding == "png":
        buffer = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, "PNG", compress_level=6)
        return buffer.getvalue()
    raise ValueError(f"Unknown encoding {encoding!r}; expected one of {list(ENCODINGS)}")


def decode_files(task: tuple) -> list[tuple[int, bytes | None, str | None, list[str]]]:
    """Worker entry point: decode a chunk of files.

    ``task = (items, size, channels, resample, encoding)`` with ``items`` a list of
    ``(position, path)``. Returns ``(position, payload, error, notes)`` per item, where exactly one
    of ``payload`` (encoded pixels) and ``error`` (one-line reason naming the file) is set.
    """
    items, size, channels, resample, encoding = task
    results = []
    for position, path in items:
        try:
            array, notes = decode_image(path, size, channels=channels, resample=resample)
            results.append((position, encode_pixels(array, encoding), None, notes))
        except ImageFileError as error:
            results.append((position, None, str(error), []))
        except Exception as error:  # never let one file kill a worker and the whole run
            results.append((position, None, f"{path}: unexpected error ({type(error).__name__}: {error})", []))
    return results
