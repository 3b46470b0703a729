"""Evaluation of a trained FaceVAE: negative ELBO, importance-weighted NLL, bits/dim, MSE and PSNR.

Everything here calls the model's own encoder, flows and decoder (``FaceVAE.objective``, through
``FaceVAE.elbo_terms`` with beta = 1, and ``FaceVAE.log_importance_weights``); nothing re-implements the
forward pass.

Importance-weighted NLL (Burda et al. 2015). With log-weights
``log w_s = log p(x|zK_s) + log p(zK_s) - log q0(z0_s|x) + sum_k log|det J_k|``, s = 1..S,

    NLL_S(x) = -log (1/S) sum_s w_s = -(logsumexp_s log w_s - log S)    [nats]

is an upper bound on -log p(x) that is never above the one-sample negative ELBO in expectation,
decreases in expectation as S grows and tends to -log p(x) as S -> infinity. The S samples are
drawn in chunks and combined with a running (streaming) logsumexp, so memory stays at one chunk.

Bits per dimension: ``nats / (D ln 2)``, D = H * W * C.
PSNR of images in [0, 1]: ``10 log10(1 / MSE)`` dB.

References:
  Yuri Burda, Roger Grosse, Ruslan Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from facevae.model.objective import LOSS
from facevae.model.vae import FaceVAE

__all__ = [
    "AUTOREGRESSIVE_RECONSTRUCTIONS",
    "REFINED_RECONSTRUCTIONS",
    "default_reconstruction_limit",
    "seam_ratio",
    "local_seam_ratio",
    "streaming_logsumexp",
    "iw_nll_from_log_weights",
    "importance_weighted_nll",
    "negative_elbo",
    "bits_per_dim",
    "psnr",
    "reconstruction_errors",
    "evaluate_model",
]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def streaming_logsumexp(chunks: Iterable[tf.Tensor]) -> tf.Tensor:
    """logsumexp over axis 0 of the concatenation of ``chunks`` (each [s_i, B]) -> [B], one chunk in memory.

    Running form: m = max(m, max_s a_s); acc = acc * exp(m_old - m) + sum_s exp(a_s - m); result m + log acc.
    """
    peak, total = None, None
    for chunk in chunks:
        chunk = tf.cast(tf.convert_to_tensor(chunk), tf.float64)
        chunk_peak = tf.reduce_max(chunk, axis=0)
        if peak is None:
            peak = chunk_peak
            total = tf.reduce_sum(tf.exp(chunk - peak), axis=0)
            continue
        new_peak = tf.maximum(peak, chunk_peak)
        total = total * tf.exp(peak - new_peak) + tf.reduce_sum(tf.exp(chunk - new_peak), axis=0)
        peak = new_peak
    if peak is None:
        raise ValueError("streaming_logsumexp needs at least one chunk. Received: no chunks")
    return peak + tf.math.log(total)


def iw_nll_from_log_weights(
    log_weight_fn: Callable[[int], tf.Tensor], num_samples: int, chunk: int = 100
) -> tf.Tensor:
    """-(logsumexp_s log w_s - log S) per example, [B] float64, drawing the S log-weights in chunks.

    ``log_weight_fn(n)`` returns n fresh log-weights [n, B]; it is called ceil(S / chunk) times
    with n = min(chunk, samples left). This is the core that ``importance_weighted_nll`` runs on a model.
    """
    _check_positive("num_samples", num_samples)
    _check_positive("chunk", chunk)

    def chunks():
        left = num_samples
        while left > 0:
            n = min(chunk, left)
            yield log_weight_fn(n)
            left -= n

    return -(streaming_logsumexp(chunks()) - math.log(num_samples))


def importance_weighted_nll(model, images, num_samples: int, chunk: int = 100) -> tf.Tensor:
    """S-sample importance-weighted estimate of -log p(x) per image, [B] nats (float64).

    images [B, H, W, C] in [0, 1]; uses ``model.log_importance_weights(images, n)`` -> [n, B]
    for chunks of n <= ``chunk`` samples (memory: chunk * B decoder passes at a time).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    compiled = _compiled_log_weights(model)
    return iw_nll_from_log_weights(lambda n: compiled(images, n), num_samples, chunk)


# An autoregressive decoder reconstructs pixel by pixel (S*S passes per batch): MSE on this many images.
AUTOREGRESSIVE_RECONSTRUCTIONS = 1000
# A model with refine_steps > 0 runs its decoder forwards and backwards that many times per reconstruction.
REFINED_RECONSTRUCTIONS = 500


def default_reconstruction_limit(model) -> int | None:
    """How many images to reconstruct for MSE/PSNR by default: AUTOREGRESSIVE_RECONSTRUCTIONS for a
    pixel-by-pixel decoder, REFINED_RECONSTRUCTIONS for a model whose codes are refined (config.refine_steps > 0),
    None (all) otherwise."""
    if model.autoregressive:
        return AUTOREGRESSIVE_RECONSTRUCTIONS
    return REFINED_RECONSTRUCTIONS if model.config.refine_steps > 0 else None


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled_log_weights(model):
    """A FaceVAE's ``log_importance_weights`` as an XLA-compiled tf.function, one per model: XLA fuses the
    per-pixel work of the draws into one pass (several times the eager speed);
    other models (plain numpy ones in the tests) run as they are."""
    if not isinstance(model, FaceVAE):
        return model.log_importance_weights
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(model.log_importance_weights, reduce_retracing=True, jit_compile=True)
    return _COMPILED[model]


def negative_elbo(model, images) -> tf.Tensor:
    """One-sample negative ELBO per image, -log p(x|zK) + log q0(z0|x) - sum log|det J| - log p(zK); [B] nats."""
    return model.elbo_terms(tf.convert_to_tensor(images, tf.float32), training=False)[LOSS]


def bits_per_dim(nats, num_dims: int):
    """nats / (D ln 2): a per-image NLL in nats as bits per pixel-channel, D = H * W * C."""
    _check_positive("num_dims", num_dims)
    return np.asarray(nats, dtype=np.float64) / (num_dims * math.log(2.0))


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(peak^2 / mse) in dB (inf when mse == 0)."""
    if mse < 0:
        raise ValueError(f"mse must be >= 0. Received: mse={mse!r}")
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _line_jumps(images, blocks: int) -> tuple[list[np.ndarray], list[set[int]]]:
    """Mean brightness jump across every column and row line, and where the grid lines are.

    b = the channel mean of each image [N, H, W]. Returns ([J_cols [W], J_rows [H]], [grid columns, grid rows]) with
    J_cols[j] = mean over images and rows of |b[:, :, j] - b[:, :, j-1]| for j = 1 .. W-1 (J_cols[0] = nan; rows
    likewise), grid lines at k * side / blocks for k = 1 .. blocks-1.
    """
    b = np.asarray(images, dtype=np.float64)
    if b.ndim != 4:
        raise ValueError(f"seam_ratio expects images [N, H, W, C]. Received: shape={b.shape}")
    b = b.mean(axis=-1)
    height, width = b.shape[1:]
    if height % blocks or width % blocks or min(height, width) // blocks < 2:
        raise ValueError(f"seam_ratio needs a side divisible by blocks={blocks}. Received: shape={b.shape}")
    jumps, lines = [], []
    for axis, size in ((2, width), (1, height)):
        along = tuple(a for a in (0, 1, 2) if a != axis)
        jumps.append(np.concatenate([[np.nan], np.abs(np.diff(b, axis=axis)).mean(axis=along)]))
        lines.append({k * size // blocks for k in range(1, blocks)})
    return jumps, lines


def seam_ratio(images, blocks: int = 4) -> float:
    """How visible a decoder's block grid is: mean brightness jump across the grid lines over the mean elsewhere.

    b = the channel mean of each image [N, H, W] (pixels in [0, 1]). A column jump is |b[:, :, j] - b[:, :, j-1]|
    for j = 1 .. W-1 (rows likewise). With ``blocks`` = 4 the grid lines are j in {W/4, W/2, 3W/4} (16, 32, 48 at
    64 px: where the 4 x 4 cells of a four-stride-2-block decoder meet, and where this project's decoders show lines).

        seam_ratio = mean(jumps across grid lines) / mean(jumps across every other line)

    1.0 means no seams (real face crops measure about 1.08); a seam grid gives values well above 1. On aligned faces
    the figure also depends on content: the grid lines cross the eyes and mouth, where smooth faces keep their
    edges while losing them elsewhere, so grid-free smooth faces score above 1 too (``benchmarks/face_calibration.py``:
    the training faces' mean image 1.41, the held-out faces projected on 100 principal components 1.13 at 19.9 dB).
    :func:`local_seam_ratio` compares each grid line with its two neighbours instead, which face content barely
    moves.
    """
    jumps, lines = _line_jumps(images, blocks)
    seams = [j[line] for j, grid in zip(jumps, lines) for line in grid]
    other = [j[line] for j, grid in zip(jumps, lines) for line in range(1, len(j)) if line not in grid]
    return float(np.mean(seams) / np.mean(other))


def local_seam_ratio(images, blocks: int = 4) -> float:
    """A block grid measured against its neighbouring lines: mean jump across the grid lines over the mean jump
    across the lines on either side of them.

    With J(j) the mean brightness jump across line j (as in :func:`seam_ratio`, columns and rows alike) and L the
    grid lines of both axes,

        local_seam_ratio = sum_L J(L) / sum_L (J(L - 1) + J(L + 1)) / 2

    A one-pixel line that a decoder draws at L raises J(L) only, while face content that changes slowly across
    the image raises the neighbours too; so grid-free faces measure about 1.0 (held-out faces 0.99, their
    projections on 100 principal components 1.00) even where :func:`seam_ratio` sees their content.
    """
    jumps, lines = _line_jumps(images, blocks)
    seams = sum(j[line] for j, grid in zip(jumps, lines) for line in grid)
    neighbours = sum((j[line - 1] + j[line + 1]) / 2 for j, grid in zip(jumps, lines) for line in grid)
    return float(seams / neighbours)


def reconstruction_errors(model, images) -> np.ndarray:
    """Per-image mean squared error of ``model.reconstruct`` (deterministic, posterior mode), [B]."""
    images = np.asarray(images, np.float32)
    difference = model.reconstruct(images).numpy() - images
    return np.mean(np.square(difference).reshape(len(images), -1), axis=1)


def evaluate_model(
    model,
    batches: Iterable,
    importance_samples: int = 0,
    chunk: int = 100,
    progress: Callable[[int], None] | None = None,
    reconstruction_limit: int | None = None,
    per_image: bool = False,
) -> dict:
    """Mean test metrics over ``batches`` (arrays or tensors [B, H, W, C], or tuples whose first item is that).

    ``reconstruction_limit``: score MSE and PSNR on the first N images only (None: all), for decoders
    whose reconstruction is slow (an autoregressive one decodes pixel by pixel).
    Returns {"examples", "negative_elbo", "reconstruction_mse", "reconstruction_examples", "psnr_db", and when
    importance_samples = S > 0: "iw_nll", "importance_samples"; plus "*_bits_per_dim" for both bounds}.
    ``progress(n)`` is called with the number of images done after each batch. ``per_image`` adds
    "negative_elbo_per_image" (and "iw_nll_per_image") as lists in batch order, for paired comparisons.
    """
    if reconstruction_limit is not None:
        _check_positive("reconstruction_limit", reconstruction_limit)
    elbo, iw, squared = [], [], []
    num_dims = None
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = np.asarray(images, np.float32)
        num_dims = int(np.prod(images.shape[1:]))
        elbo.append(negative_elbo(model, images).numpy())
        wanted = len(images) if reconstruction_limit is None else reconstruction_limit - sum(map(len, squared))
        if wanted > 0:
            squared.append(reconstruction_errors(model, images[:wanted]))
        if importance_samples:
            iw.append(importance_weighted_nll(model, images, importance_samples, chunk).numpy())
        if progress is not None:
            progress(len(images))
    if num_dims is None:
        raise ValueError("evaluate_model needs at least one batch. Received: an empty dataset")
    elbo_all, mse_all = np.concatenate(elbo), np.concatenate(squared)
    mse = float(np.mean(mse_all))
    result = {
        "examples": int(len(elbo_all)),
        "negative_elbo": float(np.mean(elbo_all)),
        "negative_elbo_bits_per_dim": float(bits_per_dim(np.mean(elbo_all), num_dims)),
        "reconstruction_mse": mse,
        "reconstruction_examples": int(len(mse_all)),
        "psnr_db": psnr(mse),
    }
    if per_image:
        result["negative_elbo_per_image"] = elbo_all.tolist()
    if importance_samples:
        iw_all = np.concatenate(iw)
        result.update(
            importance_samples=int(importance_samples),
            iw_nll=float(np.mean(iw_all)),
            iw_nll_stderr=float(np.std(iw_all) / math.sqrt(len(iw_all))),
            iw_nll_bits_per_dim=float(bits_per_dim(np.mean(iw_all), num_dims)),
        )
        if per_image:
            result["iw_nll_per_image"] = iw_all.tolist()
    return result
