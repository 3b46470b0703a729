"""Latent arithmetic on a trained VAE: interpolation, morphing, attribute vectors and their effect.

All functions are pure numpy over latents ``z`` (float [..., d]) or over a ``model`` with
``encode(images) -> z`` and ``decode(z) -> images`` (``facevae.export.inference.InferenceModel``, from a
SavedModel or an in-memory FaceVAE). ``z`` is the posterior mean carried through the flows, the
space the prior N(0, I) and the decoder live in.

Attribute vector (White 2016; Foster, Generative Deep Learning, ch. 3):

    diff = mean(z | attribute) - mean(z | not attribute),   direction = diff / ||diff||,
    gap  = ||diff|| = the distance between the class means along ``direction``.

``apply(z, vector, alpha)`` returns ``z + alpha * direction``. The default edit strength is the
documented rule ``default_alpha(vector) = DEFAULT_STRENGTH * vector.gap`` with DEFAULT_STRENGTH = 1.5:
adding moves a face's projection on the direction by 1.5 class-mean gaps (a typical face without the
attribute lands half a gap beyond the mean projection of faces with it); removing uses the negative.
One gap is not enough because the class means are averages over faces whose decodings show the attribute
only partly: the 64-px face defaults' reconstructions lose the glasses of a third of the wearers in FFHQ,
and a judge read glasses added at one gap on 55% of held-out faces, at 1.5 gaps on 74-79% with the balanced
vector; the edit benchmark's three judges read it on 80-85% of seven 64-px models (README, "Edits at 1.5
gaps", "Three judges"). With ``control`` attributes the difference is the least-squares coefficient of the
attribute in z ~ 1 + attribute + controls, i.e. the class difference with correlated attributes held fixed (equal
to the plain difference when there are none).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from data_prep import atomic

__all__ = [
    "INTERPOLATIONS",
    "AttributeVector",
    "lerp",
    "slerp",
    "interpolate",
    "morph",
    "attribute_vector",
    "correlated_attributes",
    "control_attributes",
    "balance_controls",
    "DEFAULT_STRENGTH",
    "default_alpha",
    "apply",
    "projections",
    "roc_auc",
    "separation_auc",
    "save_vector",
    "load_vector",
]

INTERPOLATIONS = ("slerp", "lerp")
DEFAULT_STRENGTH = 1.5  # the default edit, in class-mean gaps (see the module docstring)
_PARALLEL_EPS = 1e-6


def _as_t(t) -> tuple[np.ndarray, bool]:
    array = np.asarray(t, dtype=np.float64)
    if array.ndim > 1:
        raise ValueError(f"t must be a number or a 1-D array. Received: shape={array.shape}")
    return array, array.ndim == 1


def lerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """Linear interpolation (1 - t) a + t b of a, b [..., d]; t scalar -> [..., d], t [T] -> [T, ..., d]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t, many = _as_t(t)
    weights = t.reshape(t.shape + (1,) * a.ndim) if many else t
    return (1.0 - weights) * a + weights * b


def slerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation of a, b [..., d] along the great circle between them (Shoemake 1985).

        slerp(a, b; t) = sin((1 - t) W) / sin W * a + sin(t W) / sin W * b,  cos W = a.b / (|a| |b|).

    Endpoints are exactly a (t = 0) and b (t = 1); when |a| = |b| every point keeps that norm, so a
    path between two typical latents stays in the shell where the prior puts its mass, unlike lerp.
    Falls back to lerp for (anti)parallel or zero vectors, where the circle is undefined.
    Shapes as ``lerp``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t, many = _as_t(t)
    norms = np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, axis=-1, keepdims=True) / np.maximum(norms, 1e-300), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    degenerate = (sin < _PARALLEL_EPS) | (norms == 0)
    safe_sin = np.where(degenerate, 1.0, sin)
    weights = t.reshape(t.shape + (1,) * a.ndim) if many else t
    wa = np.where(degenerate, 1.0 - weights, np.sin((1.0 - weights) * omega) / safe_sin)
    wb = np.where(degenerate, weights, np.sin(weights * omega) / safe_sin)
    return wa * a + wb * b


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """``steps`` >= 2 evenly spaced points from a to b inclusive: [steps, ..., d]."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation {method!r}; expected one of {list(INTERPOLATIONS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2. Received: steps={steps!r}")
    t = np.linspace(0.0, 1.0, int(steps))
    return (slerp if method == "slerp" else lerp)(a, b, t)


def morph(model, image_a: np.ndarray, image_b: np.ndarray, steps: int = 8, method: str = "slerp") -> np.ndarray:
    """Decoded faces along the latent path from image A to image B: [steps, S, S, C].

    Row 0 is decode(code(A)) (A's reconstruction), row ``steps - 1`` is B's reconstruction; ``code`` is the
    model's refined code (``InferenceModel.code``: the encoder's, refined by the model's refine_steps).
    """
    z = model.code(np.stack([image_a, image_b]))
    return model.decode(interpolate(z[0], z[1], steps, method).astype(np.float32))


@dataclass(frozen=True)
class AttributeVector:
    """A unit direction in latent space with the statistics of the faces it was computed from.

    direction: [d], unit norm. gap: distance of the class means along it (latent units, > 0).
    mean_positive / mean_negative: mean projection z.direction of each class.
    counts: (with, without) attribute. controlled_for: attributes held fixed (least squares).
    """

    name: str
    direction: np.ndarray
    gap: float
    mean_positive: float
    mean_negative: float
    counts: tuple[int, int]
    controlled_for: tuple[str, ...] = field(default=())

    @property
    def vector(self) -> np.ndarray:
        """gap * direction: the class-mean difference (without controls)."""
        return self.gap * self.direction


def _labels(labels, count: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"labels of {name!r} must have shape ({count},) like the latents. Received: shape={labels.shape}")
    return labels.astype(bool)


def attribute_vector(latents: np.ndarray, labels, name: str = "attribute",
                     control: Mapping[str, np.ndarray] | None = None) -> AttributeVector:
    """The normalised class-mean difference of ``latents`` [N, d] split by boolean ``labels`` [N].

    With ``control`` ({name: bool [N]}), the difference is the coefficient of the attribute in the
    least-squares fit z ~ 1 + attribute + controls, which removes the part explained by correlated
    attributes. Raises ValueError when a class is empty or a control duplicates the attribute.
    """
    z = np.asarray(latents, np.float64)
    if z.ndim != 2:
        raise ValueError(f"latents must be [N, d]. Received: shape={z.shape}")
    y = _labels(labels, len(z), name)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        which = "positive (with" if positives == 0 else "negative (without"
        raise ValueError(f"attribute {name!r} has no {which} {name}) examples among {len(y)} faces; "
                         "an attribute vector needs both classes")
    control = dict(control or {})
    if control:
        columns = [np.ones(len(z)), y.astype(np.float64)]
        columns += [_labels(v, len(z), k).astype(np.float64) for k, v in control.items()]
        design = np.stack(columns, axis=1)
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise ValueError(f"cannot control {name!r} for {sorted(control)}: the columns are collinear "
                             "(a control equals the attribute, its complement or a mix of the others)")
        coefficients, *_ = np.linalg.lstsq(design, z, rcond=None)
        diff = coefficients[1]
    else:
        diff = z[y].mean(axis=0) - z[~y].mean(axis=0)
    gap = float(np.linalg.norm(diff))
    if gap == 0.0:
        raise ValueError(f"attribute {name!r}: the two classes have the same mean latent; no direction")
    direction = diff / gap
    projection = z @ direction
    return AttributeVector(
        name=name, direction=direction.astype(np.float32), gap=gap,
        mean_positive=float(projection[y].mean()), mean_negative=float(projection[~y].mean()),
        counts=(positives, negatives), controlled_for=tuple(control),
    )


def correlated_attributes(labels: Mapping[str, np.ndarray], name: str, threshold: float = 0.1) -> list[str]:
    """Other attributes whose |phi| (Pearson correlation of the 0/1 labels) with ``name`` is >= threshold."""
    target = np.asarray(labels[name], np.float64)
    found = []
    for other, values in labels.items():
        values = np.asarray(values, np.float64)
        if other == name or values.std() == 0 or target.std() == 0:
            continue
        if abs(np.corrcoef(target, values)[0, 1]) >= threshold:
            found.append(other)
    return found


def control_attributes(labels: Mapping[str, np.ndarray], name: str, threshold: float = 0.1) -> list[str]:
    """The correlated attributes (|phi| >= ``threshold``) to hold fixed when computing ``name``'s vector.

    Strongest |phi| first; an attribute is skipped when its labels are a linear combination of the constant, the
    attribute and those already kept (the design of ``attribute_vector(control=...)`` would be singular): a copy
    of the attribute or of its complement (FFHQ's continuous 'smile' read as 'smile > 0.5' is 'smiling'), or two
    copies of one control. ``labels``: {name: bool [N]}, all known for the same N faces.
    """
    target = np.asarray(labels[name], np.float64)
    phi = {}
    for other in correlated_attributes(labels, name, threshold):
        phi[other] = abs(np.corrcoef(target, np.asarray(labels[other], np.float64))[0, 1])
    columns, kept = [np.ones(len(target)), target], []
    for other in sorted(phi, key=lambda k: -phi[k]):
        trial = np.stack(columns + [np.asarray(labels[other], np.float64)], axis=1)
        if np.linalg.matrix_rank(trial) == trial.shape[1]:
            columns.append(trial[:, -1])
            kept.append(other)
    return kept


def balance_controls(labels: Mapping[str, np.ndarray], known: Mapping[str, np.ndarray], name: str,
                     rows: np.ndarray) -> dict[str, np.ndarray]:
    """The ``control`` of ``attribute_vector`` for ``--balance``: {attribute: bool labels of ``rows``} for the
    ``control_attributes`` of ``name`` among the attributes known (``known``: {attribute: bool [N]}) on every one
    of ``rows`` (bool [N], the faces the vector is fitted on)."""
    usable = {k: np.asarray(v)[rows] for k, v in labels.items() if np.asarray(known[k])[rows].all()}
    return {k: usable[k] for k in control_attributes(usable, name)}


def default_alpha(vector: AttributeVector) -> float:
    """The default edit strength in latent units: DEFAULT_STRENGTH * gap (add with +alpha, remove with -alpha)."""
    return DEFAULT_STRENGTH * float(vector.gap)


def apply(z: np.ndarray, vector, alphas) -> np.ndarray:
    """z + alpha * direction for z [B, d] (or [d]); alpha scalar -> z's shape, alphas [A] -> [B, A, d] ([A, d]).

    ``vector`` is an AttributeVector (its unit direction is used) or a [d] array used as given.
    """
    direction = vector.direction if isinstance(vector, AttributeVector) else np.asarray(vector)
    z = np.asarray(z, np.float32)
    if direction.shape != (z.shape[-1],):
        raise ValueError(f"vector of shape {direction.shape} does not fit latents of size {z.shape[-1]}")
    alphas = np.asarray(alphas, np.float32)
    if alphas.ndim == 0:
        return z + alphas * direction
    if alphas.ndim != 1:
        raise ValueError(f"alphas must be a number or 1-D. Received: shape={alphas.shape}")
    return z[..., None, :] + alphas[:, None] * direction.astype(np.float32)


def projections(latents: np.ndarray, vector) -> np.ndarray:
    """z . direction for latents [N, d] -> [N]."""
    direction = vector.direction if isinstance(vector, AttributeVector) else np.asarray(vector)
    return np.asarray(latents, np.float64) @ np.asarray(direction, np.float64)


def roc_auc(scores: np.ndarray, labels) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative) + 0.5 P(tie).

    Computed with average ranks (Mann-Whitney U / (n_pos n_neg)); ValueError if a class is empty.
    """
    scores = np.asarray(scores, np.float64)
    y = _labels(labels, len(scores), "labels")
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"ROC AUC needs both classes. Received: {positives} positive, {negatives} negative")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average_rank = first + (counts + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(average_rank, counts)
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def separation_auc(vector, latents: np.ndarray, labels) -> float:
    """How well the vector separates held-out faces: ROC AUC of their projections (1 = perfect, 0.5 = chance)."""
    return roc_auc(projections(latents, vector), labels)


def _atomic_write(path: str, write) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)


def save_vector(path: str, vector: AttributeVector, extra: Mapping | None = None) -> str:
    """Write the unit direction as ``path`` (.npy, float32 [d]) and its statistics as ``path`` with .json."""
    _atomic_write(path, lambda handle: np.save(handle, vector.direction.astype(np.float32)))
    meta = {k: v for k, v in asdict(vector).items() if k != "direction"}
    meta["counts"] = list(vector.counts)
    meta["controlled_for"] = list(vector.controlled_for)
    meta.update(extra or {})
    text = json.dumps(meta, indent=2, sort_keys=True).encode()
    _atomic_write(os.path.splitext(path)[0] + ".json", lambda handle: handle.write(text))
    return path


def load_vector(path: str, name: str | None = None) -> AttributeVector:
    """Read a vector written by ``save_vector``; without its .json, the gap is the stored array's norm."""
    try:
        direction = np.load(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read attribute vector {path!r}: {error}") from None
    direction = np.asarray(direction, np.float32).reshape(-1)
    norm = float(np.linalg.norm(direction))
    if direction.size == 0 or not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"attribute vector {path!r} is empty, zero or not finite")
    meta_path = os.path.splitext(path)[0] + ".json"
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as handle:
            meta = json.load(handle)
    return AttributeVector(
        name=meta.get("name", name or os.path.splitext(os.path.basename(path))[0]),
        direction=direction / norm, gap=float(meta.get("gap", norm)),
        mean_positive=float(meta.get("mean_positive", np.nan)), mean_negative=float(meta.get("mean_negative", np.nan)),
        counts=tuple(meta.get("counts", (0, 0))), controlled_for=tuple(meta.get("controlled_for", ())),
    )
