"""Anti-aliased batch rasterisation of simple shapes from signed distances, in numpy.

A shape is described by its signed distance ``d`` (in pixels, negative inside) evaluated on a
pixel grid. Its coverage of a pixel is the linear ramp

    alpha = clip(0.5 - d, 0, 1)

which is 1 deep inside, 0 one half-pixel outside, and 0.5 on the boundary: a one-pixel soft edge.
Painting composites a colour over the canvas with "over" blending,
``canvas <- canvas + alpha * (colour - canvas)``.

Every function works on a whole batch at once. Per-image parameters have shape ``[n, 1, 1]`` and
the grid is passed as ``x`` of shape ``[1, 1, w]`` and ``y`` of shape ``[1, h, 1]`` (pixel centres,
in pixels), so separable terms are computed on the small ``[n, 1, w]`` / ``[n, h, 1]`` arrays and
only the final combination touches all ``n * h * w`` pixels.

Shapes are rendered inside a :class:`Window`, the union over the batch of the shapes' bounding
boxes plus a margin. Outside it every distance is at least the margin, so the coverage there is
exactly 0 and the result for one image never depends on which other images share its batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Window",
    "window",
    "coverage",
    "paint",
    "ellipse_distance",
    "capsule_distance",
    "rounded_box_distance",
]

# Pixels added around every bounding box; coverage is exactly zero beyond 0.5 px outside a shape,
# and the approximate distances below may underestimate by up to a factor of ~3, hence 2 px.
MARGIN = 2.0


@dataclass(frozen=True)
class Window:
    """A rectangle of the canvas (rows ``r0:r1``, columns ``c0:c1``) and its pixel-centre grid."""

    r0: int
    r1: int
    c0: int
    c1: int
    x: np.ndarray  # [1, 1, c1 - c0] float32, pixel-centre x coordinates in pixels
    y: np.ndarray  # [1, r1 - r0, 1] float32, pixel-centre y coordinates in pixels

    def view(self, canvas: np.ndarray) -> np.ndarray:
        """The window's part of a channels-first canvas ``[C, n, size, size]`` (a view, painted in place)."""
        return canvas[:, :, self.r0:self.r1, self.c0:self.c1]


def window(size: int, top: np.ndarray, bottom: np.ndarray, left: np.ndarray,
           right: np.ndarray) -> Window | None:
    """The window covering every image's box ``[top, bottom] x [left, right]`` (pixels) plus MARGIN.

    Returns None when the union lies outside the ``size x size`` canvas.
    """
    r0 = max(int(np.floor(np.min(top) - MARGIN)), 0)
    r1 = min(int(np.ceil(np.max(bottom) + MARGIN)), size)
    c0 = max(int(np.floor(np.min(left) - MARGIN)), 0)
    c1 = min(int(np.ceil(np.max(right) + MARGIN)), size)
    if r0 >= r1 or c0 >= c1:
        return None
    x = (np.arange(c0, c1, dtype=np.float32) + np.float32(0.5)).reshape(1, 1, -1)
    y = (np.arange(r0, r1, dtype=np.float32) + np.float32(0.5)).reshape(1, -1, 1)
    return Window(r0, r1, c0, c1, x, y)


def coverage(distance: np.ndarray) -> np.ndarray:
    """Pixel coverage ``clip(0.5 - d, 0, 1)`` of a signed distance in pixels; overwrites ``distance``."""
    np.subtract(np.float32(0.5), distance, out=distance)
    np.clip(distance, 0.0, 1.0, out=distance)
    return distance


def paint(view: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Composite ``colour`` over ``view`` in place: ``view += alpha * (colour - view)``.

    view: channels-first [C, n, h, w] float32 (channels first keeps the inner loops long);
    alpha: [n, h, w] in [0, 1]; colour: [n, C] or [C], in 0..255.
    """
    colour = np.asarray(colour, dtype=np.float32)
    colour = colour.T[:, :, None, None] if colour.ndim == 2 else colour[:, None, None, None]
    diff = colour - view
    diff *= alpha
    view += diff


def ellipse_distance(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                     rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Approximate signed distance (pixels) to the axis-aligned ellipse with centre (cx, cy), radii (rx, ry).

    d = (sqrt(((x - cx) / rx)^2 + ((y - cy) / ry)^2) - 1) * min(rx, ry): exact on a circle, exact in
    sign everywhere, and an underestimate by at most min/max of the radii elsewhere.
    """
    u = (x - cx) / rx
    v = (y - cy) / ry
    d = u * u + v * v
    np.sqrt(d, out=d)
    d -= np.float32(1.0)
    d *= np.minimum(rx, ry)
    return d


def capsule_distance(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                     half_length: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Exact signed distance (pixels) to a horizontal capsule: the segment from (cx - half_length, cy)
    to (cx + half_length, cy) thickened by ``radius``.

    d = sqrt(max(|x - cx| - half_length, 0)^2 + (y - cy)^2) - radius.
    """
    u = np.maximum(np.abs(x - cx) - half_length, np.float32(0.0))
    v = y - cy
    d = u * u + v * v
    np.sqrt(d, out=d)
    d -= radius
    return d


def rounded_box_distance(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                         half_width: np.ndarray, half_height: np.ndarray,
                         radius: np.ndarray) -> np.ndarray:
    """Exact signed distance (pixels) to an axis-aligned box with rounded corners.

    With q = |p - c| - half_size + radius: d = |max(q, 0)| + min(max(qx, qy), 0) - radius.
    """
    qx = np.abs(x - cx) - half_width + radius
    qy = np.abs(y - cy) - half_height + radius
    ox = np.maximum(qx, np.float32(0.0))
    oy = np.maximum(qy, np.float32(0.0))
    d = ox * ox + oy * oy
    np.sqrt(d, out=d)
    inside = np.maximum(qx, qy)
    np.minimum(inside, np.float32(0.0), out=inside)
    d += inside
    d -= radius
    return d
