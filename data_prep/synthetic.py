"""The built-in procedural face dataset: cartoon faces with known, independent attributes.

Needs no download: ``generate_faces(1000)`` returns 1,000 RGB faces of 64x64 and their attribute
table in well under a second. Face ``i`` depends only on ``(seed, start + i)``, so any index range
can be generated on its own (chunked generation, train/validation splits by index range)::

    images, table = generate_faces(count=1000, size=64, seed=0)      # uint8 [1000, 64, 64, 3]
    binary = binary_attributes(table)                                # {"smiling": bool[1000], ...}

Rendering is split from sampling so that attributes can be set by hand for controlled
experiments: ``render_faces(table)`` draws exactly the faces a table describes, and
``generate_faces(...) == render_faces(sample_attributes(...))``.

Attributes are drawn independently of each other from a counter-based hash of
``(seed, index, attribute)`` (SplitMix64), uniform over their classes or ranges; see
``COLUMN_DESCRIPTIONS``. Shapes are drawn with anti-aliased edges (see ``data_prep.raster``) in a
resolution-independent layout, so the same face at 28 and 256 pixels differs only in detail.
"""
from __future__ import annotations

import numpy as np

from data_prep.face_painter import paint_faces

__all__ = [
    "ATTRIBUTE_NAMES",
    "COLUMN_DESCRIPTIONS",
    "HAIR_COLOURS",
    "SKIN_TONES",
    "BACKGROUND_COLOURS",
    "SHIRT_COLOURS",
    "BINARY_ATTRIBUTE_NAMES",
    "MIN_SIZE",
    "MAX_SIZE",
    "sample_attributes",
    "render_faces",
    "generate_faces",
    "binary_attributes",
]

MIN_SIZE = 28
MAX_SIZE = 256

HAIR_COLOURS = ("black", "brown", "blond", "red", "grey")
SKIN_TONES = ("light", "medium", "tan", "dark")
BACKGROUND_COLOURS = ("blue", "green", "purple", "teal")
SHIRT_COLOURS = ("white", "navy", "red", "yellow")

# Ranges of the continuous attributes (uniform); offsets and scale are fractions of the image size.
# The faces are roughly aligned, like the landmark-aligned crops of FFHQ and CelebA: with shifts of
# +-0.05 (+-3 px at 64 px) the mouth wandered over its own height and the demo VAE encoded the smile
# only non-linearly (position times smile); +-0.02 keeps a linear smile axis (issue 5).
OFFSET_RANGE = 0.02
SCALE_RANGE = (0.92, 1.08)

COLUMN_DESCRIPTIONS = {
    "index": "int64: position of the face in its seeded sequence; face i depends only on (seed, index)",
    "smiling": "bool: wide open smile with teeth, raised corners, rosy cheeks and raised lower eyelids "
               "(True) or closed lips (False); p = 0.5",
    "glasses": "bool: dark frames and tinted lenses over both eyes; p = 0.5",
    "long_hair": "bool: hair falls to the shoulders beside the face (True) or stops at ear level; p = 0.5",
    "hair_colour": f"int64 code into HAIR_COLOURS {HAIR_COLOURS}, uniform; also colours the eyebrows",
    "skin_tone": f"int64 code into SKIN_TONES {SKIN_TONES} (light to dark), uniform",
    "face_width": "float32 in [0, 1): 0 narrowest, 1 widest face (half-width 0.22 to 0.29 of the image)",
    "background": f"int64 code into BACKGROUND_COLOURS {BACKGROUND_COLOURS}, uniform",
    "shirt_colour": f"int64 code into SHIRT_COLOURS {SHIRT_COLOURS}, uniform",
    "offset_x": f"float32 in [-{OFFSET_RANGE}, {OFFSET_RANGE}): horizontal shift of the face, fraction of the size",
    "offset_y": f"float32 in [-{OFFSET_RANGE}, {OFFSET_RANGE}): vertical shift of the face, fraction of the size",
    "scale": f"float32 in [{SCALE_RANGE[0]}, {SCALE_RANGE[1]}): overall size of the face and hair",
}
ATTRIBUTE_NAMES = tuple(name for name in COLUMN_DESCRIPTIONS if name != "index")

BINARY_ATTRIBUTE_NAMES = (
    ("smiling", "glasses", "long_hair")
    + tuple(f"hair_{name}" for name in HAIR_COLOURS)
    + ("dark_skin", "wide_face")
)

_BOOLEAN = ("smiling", "glasses", "long_hair")
_CATEGORIES = {
    "hair_colour": HAIR_COLOURS,
    "skin_tone": SKIN_TONES,
    "background": BACKGROUND_COLOURS,
    "shirt_colour": SHIRT_COLOURS,
}
# Each attribute draws from its own stream of the hash, so adding one never changes the others.
_STREAMS = {name: number for number, name in enumerate(ATTRIBUTE_NAMES, start=1)}
# Faces rendered together; about 64k pixels per batch keeps the working set in cache.
_PIXELS_PER_BATCH = 1 << 16

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a bijective avalanche mix."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """Uniform float64 in [0, 1) that depends only on (seed, index, stream); shape of ``index``."""
    key = _splitmix64(np.array([seed], dtype=np.uint64) * _GOLDEN + np.uint64(stream))
    bits = _splitmix64(index.astype(np.uint64) * _GOLDEN + _splitmix64(key))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer. Received: {name}={value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
    return int(value)


def sample_attributes(count: int, seed: int = 0, start: int = 0) -> dict[str, np.ndarray]:
    """Draw the attribute table of faces ``start .. start + count - 1`` of sequence ``seed``.

    Returns a dict of 1-D arrays of length ``count``: ``index`` then ``ATTRIBUTE_NAMES`` (see
    ``COLUMN_DESCRIPTIONS`` for types and ranges). Every attribute is independent of the others.
    """
    count = _check_int("count", count, 0)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    start = _check_int("start", start, 0, 2**62)
    index = np.arange(start, start + count, dtype=np.int64)

    def draw(name: str) -> np.ndarray:
        return _uniform(seed, index, _STREAMS[name])

    table: dict[str, np.ndarray] = {"index": index}
    for name in ATTRIBUTE_NAMES:
        u = draw(name)
        if name in _BOOLEAN:
            table[name] = u < 0.5
        elif name in _CATEGORIES:
            table[name] = np.floor(u * len(_CATEGORIES[name])).astype(np.int64)
        elif name in ("offset_x", "offset_y"):
            table[name] = ((2.0 * u - 1.0) * OFFSET_RANGE).astype(np.float32)
        elif name == "scale":
            table[name] = (SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u).astype(np.float32)
        else:  # face_width
            table[name] = u.astype(np.float32)
    return table


def _validated_table(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [name for name in ATTRIBUTE_NAMES if name not in table]
    if missing:
        raise ValueError(f"The attribute table lacks columns {missing}; expected {list(ATTRIBUTE_NAMES)}")
    columns = {name: np.asarray(table[name]) for name in ATTRIBUTE_NAMES}
    lengths = {name: column.shape for name, column in columns.items()}
    if len(set(lengths.values())) != 1 or columns["smiling"].ndim != 1:
        raise ValueError(f"Attribute columns must be 1-D of equal length. Received shapes: {lengths}")
    for name in _BOOLEAN:
        columns[name] = columns[name].astype(bool)
    for name, classes in _CATEGORIES.items():
        codes = columns[name]
        if codes.size and (codes.min() < 0 or codes.max() >= len(classes)):
            raise ValueError(f"Column {name} holds codes outside [0, {len(classes) - 1}] "
                             f"({classes}). Received: min={codes.min()}, max={codes.max()}")
        columns[name] = codes.astype(np.int64)
    return columns


def render_faces(table: dict[str, np.ndarray], size: int = 64, channels: int = 3) -> np.ndarray:
    """Draw the faces an attribute table describes: uint8 ``[n, size, size, channels]``.

    ``table`` needs the columns ``ATTRIBUTE_NAMES`` (extra columns such as ``index`` are ignored).
    ``channels=1`` gives luminance (0.299 R + 0.587 G + 0.114 B) of the same palette.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}]. Received: size={size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB). Received: channels={channels!r}")
    columns = _validated_table(table)
    count = len(columns["smiling"])
    images = np.empty((count, size, size, channels), dtype=np.uint8)
    batch = max(1, _PIXELS_PER_BATCH // (size * size))
    for first in range(0, count, batch):
        part = {name: column[first:first + batch] for name, column in columns.items()}
        canvas = paint_faces(part, int(size), channels)
        canvas += np.float32(0.5)  # float -> uint8 truncates, so +0.5 rounds to the nearest level
        images[first:first + batch] = canvas.astype(np.uint8).transpose(1, 2, 3, 0)
    return images


def generate_faces(count: int, size: int = 64, seed: int = 0, channels: int = 3,
                   start: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Faces ``start .. start + count - 1`` of sequence ``seed`` and their attribute table.

    Returns ``(images, table)``: uint8 ``[count, size, size, channels]`` and the dict of
    ``sample_attributes(count, seed, start)``. Face i depends only on (seed, start + i).
    """
    table = sample_attributes(count, seed=seed, start=start)
    return render_faces(table, size=size, channels=channels), table


def binary_attributes(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Binary bool columns for attribute vectors, keyed by ``BINARY_ATTRIBUTE_NAMES``.

    ``smiling``, ``glasses``, ``long_hair`` as drawn; ``hair_<colour>`` one-hot of ``hair_colour``;
    ``dark_skin`` = skin tone tan or dark; ``wide_face`` = face_width >= 0.5. Each is ~balanced
    except the hair one-hots (p = 1/5).
    """
    columns = _validated_table(table)
    binary = {name: columns[name].copy() for name in _BOOLEAN}
    for code, name in enumerate(HAIR_COLOURS):
        binary[f"hair_{name}"] = columns["hair_colour"] == code
    binary["dark_skin"] = columns["skin_tone"] >= SKIN_TONES.index("tan")
    binary["wide_face"] = columns["face_width"] >= 0.5
    return binary
