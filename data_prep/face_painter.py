"""The cartoon face layout of ``data_prep.synthetic``: palettes and the painter of one batch.

Layout in units of the image size (``s`` is the face's scale, ``(cx, cy)`` the head centre
``(0.5 + offset_x, 0.47 + offset_y)``, ``rx`` the face half-width ``s * (0.22 + 0.07 * face_width)``,
face half-height ``0.285 s``), painted back to front:

    background   colour class, lighter at the top (vertical gradient)
    back hair    ellipse around the head; cut at ear level (short) or a box to the shoulders (long)
    neck, shirt  neck box (shaded skin), shoulders ellipse in the shirt colour
    ears, face   ellipses in the skin tone, the face with a darker outline
    fringe       head ellipse above a hairline that curves down at the temples
    brows, eyes  hair-coloured capsules; white ellipses with dark pupils at cx +- 0.105 s,
                 (cy - 0.03 s); smiling raises the lower lids (eyes cut below cy - 0.022 s)
    cheeks       smiling only: rosy ellipses (45%) of 0.055 s x 0.04 s at cx +- 0.15 s, cy + 0.07 s
    nose         shaded ellipse at cy + 0.065 s
    mouth        smiling: a wide open grin bounded by two parabolas, half-width 0.13 s, top edge
                 at cy + 0.14 s with corners raised 0.04 s, 0.095 s deep in the middle (dark red,
                 a 0.01 s lip rim, upper teeth 0.03 s high); else closed lips, an ellipse of
                 0.08 s x 0.026 s at cy + 0.165 s with a dark seam
    glasses      rounded-box lenses (tinted 35%) with dark frames, bridge and arms to the face edge

Mirror-symmetric pairs (ears, brows, eyes, cheeks, lenses) are drawn in one pass on ``|x - cx|``.
A smile is a face-sized change (mouth, cheeks, eyes), as in real faces: a few-pixel mouth line
gave the 64 px VAE no linear smile axis (issue 5, benchmarks/latent_edits.py).
"""
from __future__ import annotations

import numpy as np

from data_prep import raster
from data_prep.raster import capsule_distance, coverage, ellipse_distance, paint, rounded_box_distance

__all__ = ["HAIR_RGB", "SKIN_RGB", "BACKGROUND_RGB", "SHIRT_RGB", "paint_faces"]

HAIR_RGB = {"black": (35, 30, 32), "brown": (96, 54, 26), "blond": (236, 198, 92),
            "red": (196, 72, 28), "grey": (170, 170, 176)}
SKIN_RGB = {"light": (250, 222, 198), "medium": (226, 178, 138), "tan": (192, 138, 98),
            "dark": (138, 92, 62)}
BACKGROUND_RGB = {"blue": (112, 152, 218), "green": (118, 190, 124), "purple": (166, 128, 204),
                  "teal": (72, 168, 168)}
SHIRT_RGB = {"white": (236, 236, 236), "navy": (40, 52, 110), "red": (200, 40, 52),
             "yellow": (236, 196, 48)}

_EYE_WHITE = (248, 248, 248)
_PUPIL = (38, 30, 28)
_MOUTH_OPEN = (112, 24, 36)
_LIPS = (196, 96, 100)
_TEETH = (252, 252, 252)
_BLUSH = (232, 112, 112)
_FRAME = (18, 18, 24)
_LENS_TINT = (30, 38, 60)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _palette(rgb: dict[str, tuple[int, int, int]], channels: int) -> np.ndarray:
    table = np.array(list(rgb.values()), dtype=np.float32)
    return table if channels == 3 else (table @ _LUMA)[:, None]


def _colour(rgb: tuple[int, int, int], channels: int) -> np.ndarray:
    return _palette({"c": rgb}, channels)[0]


def _column(values: np.ndarray, size: int) -> np.ndarray:
    """Per-face float32 values in pixels (``values * size``), shaped [n, 1, 1] for broadcasting."""
    return (np.asarray(values, dtype=np.float32) * np.float32(size)).reshape(-1, 1, 1)


def _box(size, cx, cy, half_width, half_height):
    return raster.window(size, cy - half_height, cy + half_height, cx - half_width, cx + half_width)


def paint_faces(table: dict[str, np.ndarray], size: int, channels: int) -> np.ndarray:
    """Paint the faces of a validated attribute table: float32 ``[channels, n, size, size]`` in 0..255."""
    n = len(table["smiling"])
    f32 = np.float32
    s = _column(table["scale"], 1)  # unitless scale, [n, 1, 1]
    unit = s * f32(size)  # pixels per unit of face layout
    cx = _column(0.5 + table["offset_x"], size)
    cy = _column(0.47 + table["offset_y"], size)
    rx = unit * (f32(0.22) + f32(0.07) * table["face_width"].astype(f32).reshape(-1, 1, 1))
    ry = unit * f32(0.285)
    skin = _palette(SKIN_RGB, channels)[table["skin_tone"]]
    hair = _palette(HAIR_RGB, channels)[table["hair_colour"]]
    smiling = table["smiling"].reshape(-1, 1, 1)
    glasses = table["glasses"].astype(f32).reshape(-1, 1, 1)
    long_hair = table["long_hair"].reshape(-1, 1, 1)

    # Background: class colour times a vertical gradient from 1.08 (top) to 0.92 (bottom).
    background = _palette(BACKGROUND_RGB, channels)[table["background"]]
    gradient = f32(1.08) - f32(0.16) * (np.arange(size, dtype=f32) + f32(0.5)) / f32(size)
    canvas = np.empty((channels, n, size, size), dtype=f32)
    np.multiply(background.T[:, :, None, None], gradient[None, None, :, None], out=canvas)
    np.minimum(canvas, f32(255.0), out=canvas)

    # Back hair: head ellipse cut at ear level; long hair adds a box from there to the shoulders
    # (painted on the long-haired faces only), which covers the cut.
    hcy, hrx, hry = cy - f32(0.02) * unit, rx + f32(0.04) * unit, ry + f32(0.035) * unit
    cut = cy + f32(0.03) * unit
    win = raster.window(size, hcy - hry, cut, cx - hrx, cx + hrx)
    if win is not None:
        head = np.maximum(ellipse_distance(win.x, win.y, cx, hcy, hrx, hry), win.y - cut)
        paint(win.view(canvas), coverage(head), hair)
    wide, drape_cy, drape_half = rx + f32(0.05) * unit, cy + f32(0.17) * unit, f32(0.2) * unit
    on = np.flatnonzero(long_hair)
    win = _box(size, cx[on], drape_cy[on], wide[on], drape_half[on]) if on.size else None
    if win is not None:
        view = win.view(canvas)[:, on]  # a copy: painted, then written back
        drape = rounded_box_distance(win.x, win.y, cx[on], drape_cy[on], wide[on], drape_half[on],
                                     f32(0.06) * unit[on])
        paint(view, coverage(drape), hair[on])
        win.view(canvas)[:, on] = view

    # Neck (shaded skin), then shoulders in the shirt colour over its lower end.
    win = _box(size, cx, cy + f32(0.3) * unit, f32(0.085) * unit, f32(0.12) * unit)
    if win is not None:
        neck = rounded_box_distance(win.x, win.y, cx, cy + f32(0.3) * unit, f32(0.085) * unit,
                                    f32(0.12) * unit, f32(0.03) * unit)
        paint(win.view(canvas), coverage(neck), skin * f32(0.82))
    shirt_cy, shirt_rx, shirt_ry = cy + f32(0.6) * unit, f32(0.42) * unit, f32(0.23) * unit
    win = _box(size, cx, shirt_cy, shirt_rx, shirt_ry)
    if win is not None:
        shirt = _palette(SHIRT_RGB, channels)[table["shirt_colour"]]
        paint(win.view(canvas), coverage(ellipse_distance(win.x, win.y, cx, shirt_cy, shirt_rx, shirt_ry)),
              shirt)

    # Ears (both in one pass on |x - cx|), then the face with a darker outline.
    ear_cy, ear_rx, ear_ry = cy + f32(0.02) * unit, f32(0.04) * unit, f32(0.06) * unit
    win = _box(size, cx, ear_cy, rx + ear_rx, ear_ry)
    if win is not None:
        d = ellipse_distance(np.abs(win.x - cx), win.y, rx * f32(0.97), ear_cy, ear_rx, ear_ry)
        paint(win.view(canvas), coverage(d), skin * f32(0.9))
    win = _box(size, cx, cy, rx + f32(0.006) * unit, ry + f32(0.006) * unit)
    if win is not None:
        view = win.view(canvas)
        face = ellipse_distance(win.x, win.y, cx, cy, rx, ry)
        outline = np.abs(face) - f32(0.006) * unit
        paint(view, coverage(face), skin)
        paint(view, coverage(outline), skin * f32(0.62))

    # Fringe: head ellipse above the hairline y = cy - 0.15 s + 0.12 s (x - cx)^2 / rx^2.
    top = ry + f32(0.025) * unit
    win = _box(size, cx, cy - top / 2, rx + f32(0.02) * unit, top / 2)
    if win is not None:
        head = ellipse_distance(win.x, win.y, cx, cy - f32(0.005) * unit, rx + f32(0.015) * unit,
                                ry + f32(0.02) * unit)
        k = f32(0.12) * unit / (rx * rx)
        dx = win.x - cx
        hairline = (win.y - (cy - f32(0.15) * unit + k * dx * dx)) / np.sqrt(1 + (2 * k * dx) ** 2)
        paint(win.view(canvas), coverage(np.maximum(head, hairline)), hair)

    # Eyebrows, eyes (white, pupil): both sides at once on |x - cx|. A smile raises the lower lids
    # (the eye is cut below eye_y + 0.008 s, the pupil with it) and lifts the cheeks, drawn as a
    # rosy ellipse under each eye.
    eye_x, eye_y = f32(0.105) * unit, cy - f32(0.03) * unit
    win = _box(size, cx, eye_y - f32(0.02) * unit, eye_x + f32(0.06) * unit, f32(0.085) * unit)
    if win is not None:
        view = win.view(canvas)
        ax = np.abs(win.x - cx)
        brow = capsule_distance(ax, win.y, eye_x, eye_y - f32(0.07) * unit, f32(0.038) * unit,
                                f32(0.012) * unit)
        paint(view, coverage(brow), hair * f32(0.75))
        white = ellipse_distance(ax, win.y, eye_x, eye_y, f32(0.05) * unit, f32(0.034) * unit)
        lid = np.where(smiling, win.y - (eye_y + f32(0.008) * unit), np.float32(-1e3))
        white = np.maximum(white, lid)
        pupil = np.maximum(ellipse_distance(ax, win.y, eye_x, eye_y, f32(0.023) * unit, f32(0.023) * unit),
                           white)
        paint(view, coverage(white), _colour(_EYE_WHITE, channels))
        paint(view, coverage(pupil), _colour(_PUPIL, channels))
    cheek_x, cheek_y = f32(0.15) * unit, cy + f32(0.07) * unit
    win = _box(size, cx, cheek_y, cheek_x + f32(0.06) * unit, f32(0.045) * unit)
    if win is not None and smiling.any():
        cheek = ellipse_distance(np.abs(win.x - cx), win.y, cheek_x, cheek_y, f32(0.055) * unit,
                                 f32(0.04) * unit)
        paint(win.view(canvas), coverage(cheek) * (f32(0.45) * smiling), _colour(_BLUSH, channels))

    # Nose: a shaded ellipse.
    nose_y = cy + f32(0.065) * unit
    win = _box(size, cx, nose_y, f32(0.025) * unit, f32(0.032) * unit)
    if win is not None:
        nose = ellipse_distance(win.x, win.y, cx, nose_y, f32(0.022) * unit, f32(0.03) * unit)
        paint(win.view(canvas), coverage(nose), skin * f32(0.8))

    # Mouth: a wide open grin between two parabolas meeting at raised corners, with a lip-coloured
    # rim and a row of upper teeth; or closed lips with a dark seam.
    mouth_y, half, lift, depth = cy + f32(0.14) * unit, f32(0.13) * unit, f32(0.04) * unit, f32(0.095) * unit
    rim = f32(0.01) * unit
    win = _box(size, cx, mouth_y + f32(0.025) * unit, half + rim, f32(0.08) * unit)
    if win is not None:
        view = win.view(canvas)
        u = (win.x - cx) / half
        top = mouth_y - lift * u * u  # upper edge, corners raised by `lift`
        bottom = top + depth * (1 - u * u)  # lower edge, `depth` below the middle of the top edge
        top_d = (top - win.y) / np.sqrt(1 + (2 * lift * u / half) ** 2)
        bottom_d = (win.y - bottom) / np.sqrt(1 + (2 * (depth + lift) * u / half) ** 2)
        open_mouth = np.maximum(np.maximum(top_d, bottom_d), np.abs(win.x - cx) - half)
        teeth = np.maximum(open_mouth, win.y - (top + f32(0.03) * unit))
        lips_y = mouth_y + f32(0.025) * unit
        lips = ellipse_distance(win.x, win.y, cx, lips_y, f32(0.08) * unit, f32(0.026) * unit)
        seam = capsule_distance(win.x, win.y, cx, lips_y, f32(0.065) * unit, f32(0.006) * unit)
        paint(view, coverage(np.where(smiling, open_mouth - rim, lips)), _colour(_LIPS, channels))
        paint(view, coverage(np.where(smiling, open_mouth, seam)), _colour(_MOUTH_OPEN, channels))
        paint(view, coverage(np.where(smiling, teeth, np.float32(1e3))), _colour(_TEETH, channels))

    # Glasses: tinted rounded-box lenses, dark frames, bridge and arms to the face edge.
    lens_w, lens_h, frame = f32(0.07) * unit, f32(0.055) * unit, f32(0.012) * unit
    win = _box(size, cx, eye_y, rx + frame, lens_h + frame)
    if win is not None and glasses.any():
        view = win.view(canvas)
        ax = np.abs(win.x - cx)
        lens = rounded_box_distance(ax, win.y, eye_x, eye_y, lens_w, lens_h, f32(0.025) * unit)
        paint(view, coverage(lens.copy()) * (f32(0.35) * glasses), _colour(_LENS_TINT, channels))
        inner, outer = eye_x - lens_w, eye_x + lens_w
        bridge = capsule_distance(ax, win.y, f32(0.0), eye_y - f32(0.01) * unit, inner, frame)
        arms = capsule_distance(ax, win.y, (outer + rx) / 2, eye_y - f32(0.02) * unit,
                                (rx - outer) / 2, frame * f32(0.8))
        frames = np.minimum(np.minimum(np.abs(lens) - frame, bridge), arms)
        paint(view, coverage(frames) * glasses, _colour(_FRAME, channels))
    return canvas
