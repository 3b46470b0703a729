"""FID and KID on Keras' InceptionV3 pool features, for users who have the ImageNet weights.

Features: ``keras.applications.InceptionV3(include_top=False, pooling="avg")``, i.e. the 2048-D
global average of the last mixed block ("pool3"). Images (float in [0, 1], (N, H, W, 3); grey
repeated to 3 channels) are resized to 299 x 299 bilinearly (no antialiasing, as the standard FID
code does) and mapped to [-1, 1] (Inception preprocessing x -> 2x - 1).

- FID (Heusel et al. 2017) = ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the Gaussians
  fitted to the two feature sets (:func:`facevae.analysis.frechet.frechet_distance`, shared with the
  Frechet face distance). Biased upwards at small N: compare only at equal N.
- KID (Binkowski et al. 2018) = unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, d = 2048; see :func:`kernel_inception_distance` for the subsets and the
  standard error.

The weights are never downloaded: they come from an explicit ``weights_path`` (the CLI flag
``--inception-weights PATH``) or from Keras' own cache, ``$KERAS_HOME/models/`` (default
``~/.keras/models/``, or ``/tmp/.keras/models/`` where Keras falls back when home is not writable),
file ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``. Otherwise
:class:`InceptionWeightsError` says how to get them.

Keras' ImageNet InceptionV3 is not the 2015 TensorFlow graph that published FIDs use, so these
figures compare models within this project, not with numbers in papers.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from facevae.analysis.frechet import FrechetResult, frechet_distance_of_features

__all__ = [
    "WEIGHTS_FILE",
    "WEIGHTS_MD5",
    "INCEPTION_SIZE",
    "FEATURE_SIZE",
    "InceptionWeightsError",
    "KIDResult",
    "keras_cache_candidates",
    "resolve_inception_weights",
    "load_inception",
    "inception_features",
    "frechet_inception_distance",
    "kernel_inception_distance",
    "polynomial_mmd2_unbiased",
]

WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks for this file
INCEPTION_SIZE = 299
FEATURE_SIZE = 2048
_HOW_TO_GET = (f"pass --inception-weights PATH to Keras' ImageNet file {WEIGHTS_FILE} (on a machine with internet, "
               "keras.applications.InceptionV3(include_top=False, weights='imagenet') saves it under ~/.keras/models/; "
               "copy it here)")


class InceptionWeightsError(FileNotFoundError):
    """The InceptionV3 ImageNet weights are not available (one-line message naming --inception-weights)."""


@dataclass(frozen=True)
class KIDResult:
    """KID = mean over disjoint subsets of the unbiased MMD^2; standard_error = std(ddof=1) / sqrt(subsets)."""

    mean: float
    standard_error: float
    subsets: int
    subset_size: int


def keras_cache_candidates() -> list[str]:
    """Where Keras' own cache keeps the no-top weights: $KERAS_HOME/models (if set) else ~/.keras/models,
    then /tmp/.keras/models (Keras' fallback when home is not writable). Read at call time."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    folders = [home, os.path.join("/tmp", ".keras")]
    return [os.path.join(folder, "models", WEIGHTS_FILE) for folder in dict.fromkeys(folders)]


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_inception_weights(weights_path: str | None = None, check_hash: bool = True) -> str:
    """The weights file to use: ``weights_path`` if given, else the first of :func:`keras_cache_candidates`
    that exists. Raises InceptionWeightsError (one line naming --inception-weights) when there is none,
    when the given path is not a file, or when the file's MD5 is not Keras' (a truncated or other file)."""
    if weights_path is not None:
        if not os.path.isfile(weights_path):
            raise InceptionWeightsError(f"--inception-weights {weights_path}: no such file; {_HOW_TO_GET}")
        path = weights_path
    else:
        found = [p for p in keras_cache_candidates() if os.path.isfile(p)]
        if not found:
            raise InceptionWeightsError(
                f"InceptionV3 ImageNet weights not found (looked in {', '.join(keras_cache_candidates())}); {_HOW_TO_GET}")
        path = found[0]
    if check_hash and _md5(path) != WEIGHTS_MD5:
        raise InceptionWeightsError(f"--inception-weights {path}: MD5 {_md5(path)} is not Keras' {WEIGHTS_MD5} "
                                    f"for {WEIGHTS_FILE} (truncated or another file); {_HOW_TO_GET}")
    return path


def load_inception(weights_path: str | None = None, random_weights: bool = False):
    """InceptionV3 without its classifier, global-average pooled: images (N, 299, 299, 3) in [-1, 1] -> (N, 2048).

    weights_path: see :func:`resolve_inception_weights`. random_weights=True builds a randomly
    initialised network (weights=None), for testing the plumbing only: its FID/KID mean nothing.
    """
    weights = None if random_weights else resolve_inception_weights(weights_path)  # fail before importing Keras
    import keras

    return keras.applications.InceptionV3(include_top=False, weights=weights, pooling="avg",
                                          input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))


def inception_features(images: np.ndarray, model=None, batch_size: int = 25,
                       progress: bool | None = None) -> np.ndarray:
    """Pool features (N, 2048) float64 of float images (N, H, W, 3) in [0, 1].

    Each batch is resized to 299 x 299 (bilinear, no antialias), scaled to [-1, 1] and run through
    ``model`` (default: :func:`load_inception` with the cached weights). progress: tqdm bar (default
    for N >= 500).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received batch_size={batch_size}")
    from facevae.data.images import check_float_images

    x = check_float_images(images)
    model = load_inception() if model is None else model
    n = x.shape[0]
    out = np.empty((n, FEATURE_SIZE), np.float64)
    starts = range(0, n, batch_size)
    if progress if progress is not None else n >= 500:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="inception features", unit="batch")
    for start in starts:
        batch = tf.convert_to_tensor(x[start:start + batch_size])
        if batch.shape[-1] == 1:
            batch = tf.repeat(batch, 3, axis=-1)
        batch = tf.image.resize(batch, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear", antialias=False)
        out[start:start + batch_size] = model(batch * 2.0 - 1.0, training=False).numpy()
    return out


def frechet_inception_distance(features_a: np.ndarray, features_b: np.ndarray) -> FrechetResult:
    """FID between two sets of Inception pool features (N, 2048), (M, 2048), with the counts."""
    return frechet_distance_of_features(features_a, features_b)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between samples x (m, d) and y (n, d), k(a, b) = (a.b / d + 1)^3:

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1)) - 2 sum_{i,j} k(x_i, y_j) / (m n).

    Its expectation is exactly the population MMD^2 (0 for equal distributions); single estimates
    can be negative. Needs m, n >= 2.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (m >= 2, d) and (n >= 2, d) samples; received shapes {x.shape} and {y.shape}")
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2.0 * k_xy.mean())


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int = 1000,
                              seed: int = 0) -> KIDResult:
    """KID: unbiased polynomial-kernel MMD^2 between two feature sets, averaged over disjoint subsets.

    Both sets are shuffled (seeded) and cut into k = min(N, M) // s disjoint pairs of subsets of
    s = min(subset_size, min(N, M) // 2) vectors each (so k >= 2; unused remainders are dropped);
    KID = the mean of the k estimates of :func:`polynomial_mmd2_unbiased`, standard error =
    std(ddof=1) / sqrt(k). Because the subsets are disjoint the k estimates are independent and this
    is a real standard error of the mean. (The common implementation averages 100 random,
    overlapping subsets and reports their spread, which understates the uncertainty; the expected
    value, the KID, is the same for any subset size since each estimate is unbiased.)
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must have shapes (N, d) and (M, d); received {a.shape} and {b.shape}")
    smaller = min(a.shape[0], b.shape[0])
    if smaller < 4:
        raise ValueError(f"KID needs at least 4 feature vectors per set (2 subsets of 2); received {a.shape[0]} and {b.shape[0]}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2; received subset_size={subset_size}")
    size = min(subset_size, smaller // 2)
    count = smaller // size
    rng = np.random.default_rng(seed)
    a, b = a[rng.permutation(a.shape[0])], b[rng.permutation(b.shape[0])]
    estimates = np.array([polynomial_mmd2_unbiased(a[i * size:(i + 1) * size], b[i * size:(i + 1) * size])
                          for i in range(count)])
    return KIDResult(mean=float(estimates.mean()), standard_error=float(estimates.std(ddof=1) / np.sqrt(count)),
                     subsets=int(count), subset_size=int(size))
