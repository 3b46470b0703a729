"""Frechet distance between two Gaussians, and between the Gaussians fitted to two feature sets.

The one home of this computation: the Inception FID (``facevae.analysis.inception``) and the Frechet
face distance (``facevae.analysis.face_metrics``) both call :func:`frechet_distance`.

    d^2 = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

This is the squared 2-Wasserstein distance between N(mu_1, S_1) and N(mu_2, S_2) (Dowson and
Landau 1982), in squared feature units. The matrix square root follows the standard FID
implementation (Heusel et al. 2017; pytorch-fid): ``scipy.linalg.sqrtm`` of the (non-symmetric)
product, with ``eps * I`` added to both covariances when the product is too singular for a finite
root, and the real part taken when round-off leaves a small imaginary part.

References: Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium", NeurIPS 2017.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["FrechetResult", "gaussian_statistics", "frechet_distance", "frechet_distance_of_features"]


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with the number of feature vectors on each side it was computed from."""

    distance: float
    count_a: int
    count_b: int


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64; needs N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, D); received shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors; received {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm(product: np.ndarray, check_residual: bool = True) -> np.ndarray | None:
    """scipy's sqrtm of product, or None when the root is not finite or (check_residual) X @ X misses the
    product by more than 1e-6 relative (Frobenius). scipy's LinAlgWarning for singular input is
    silenced: finiteness and the residual decide."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(product)
    if not np.all(np.isfinite(root)):
        return None
    scale = np.linalg.norm(product)
    if check_residual and scale > 0 and np.linalg.norm(root @ root - product) > 1e-6 * scale:
        return None
    return root


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

    Shapes: mu (D,), sigma (D, D) symmetric positive semi-definite. When sqrtm of the product is not
    finite or not accurate (X X differs from the product by more than 1e-6 relative; near-singular
    covariances, e.g. fewer samples than dimensions), ``eps * I`` is added to both covariances and the
    root recomputed; an imaginary part left by round-off is dropped when its
    diagonal is below 1e-3 of the largest covariance diagonal entry, otherwise a ValueError is raised.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must both have shape (D,); received {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must have shape ({d}, {d}); received {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if covmean is None:
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset), check_residual=False)
        if covmean is None:
            raise ValueError(f"sqrtm(sigma1 sigma2) is not finite even with eps={eps} added to the covariances")
    if np.iscomplexobj(covmean):
        scale = max(np.max(np.abs(np.diag(sigma1))), np.max(np.abs(np.diag(sigma2))), 1e-12)
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > 1e-3 * scale:
            raise ValueError(f"sqrtm(sigma1 sigma2) has an imaginary component of {imag:.3g}; "
                             "the covariances are not positive semi-definite")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_of_features(features_a: np.ndarray, features_b: np.ndarray,
                                 eps: float = 1e-6) -> FrechetResult:
    """Frechet distance between the Gaussians fitted to features_a (N, D) and features_b (M, D)."""
    mu_a, sigma_a = gaussian_statistics(features_a)
    mu_b, sigma_b = gaussian_statistics(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature sizes differ: {mu_a.shape[0]} and {mu_b.shape[0]}")
    return FrechetResult(frechet_distance(mu_a, sigma_a, mu_b, sigma_b, eps=eps),
                         int(np.shape(features_a)[0]), int(np.shape(features_b)[0]))
