"""A linear Gaussian face model (principal components) as a baseline for the VAE on the same faces.

Fitted by SVD of the centred training matrix X - mean = U S V^T (X: [M, D] images flattened, D = H*W*C), keeping
the first k right singular vectors V_k [k, D] and the spreads s_k = S_k / sqrt(M - 1) (the standard deviations of
the training faces' coordinates along them). Then, for images of the same shape, in [0, 1]:

    project(x) = mean + (x - mean) V_k^T V_k            (the best linear reconstruction through k numbers)
    sample(eps, T) = mean + (T eps * s_k) V_k,  eps ~ N(0, I_k)

``sample`` is the mean of probabilistic PCA's p(x|z) at z drawn from its Gaussian prior (the isotropic noise of the
discarded components is left out, as a VAE's samples are its decoder's mean). Both clip to [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PrincipalFaces"]


@dataclass(frozen=True)
class PrincipalFaces:
    """mean [D], basis [k, D] (orthonormal rows), spreads [k] and the image shape (H, W, C)."""

    mean: np.ndarray
    basis: np.ndarray
    spreads: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def fit(cls, train: np.ndarray, components: int) -> "PrincipalFaces":
        """The first ``components`` principal components of ``train`` [M, H, W, C] (float, [0, 1])."""
        if train.ndim != 4:
            raise ValueError(f"train must be images [M, H, W, C]. Received shape {train.shape}")
        if not 0 < components <= min(len(train) - 1, int(np.prod(train.shape[1:]))):
            raise ValueError(f"components must be in [1, {min(len(train) - 1, int(np.prod(train.shape[1:])))}] "
                             f"for {len(train)} training images. Received: {components}")
        flat = train.reshape(len(train), -1).astype(np.float64)
        mean = flat.mean(axis=0)
        _, singular, rows = np.linalg.svd(flat - mean, full_matrices=False)
        return cls(mean, rows[:components], singular[:components] / np.sqrt(len(train) - 1), tuple(train.shape[1:]))

    @property
    def components(self) -> int:
        return len(self.basis)

    def _images(self, flat: np.ndarray) -> np.ndarray:
        return np.clip(flat + self.mean, 0.0, 1.0).reshape((len(flat),) + self.shape).astype(np.float32)

    def project(self, images: np.ndarray) -> np.ndarray:
        """images [N, H, W, C] -> their projections on the components, [N, H, W, C] float32 in [0, 1]."""
        centred = images.reshape(len(images), -1).astype(np.float64) - self.mean
        return self._images(centred @ self.basis.T @ self.basis)

    def sample(self, noise: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """noise [N, k] standard normal -> images [N, H, W, C] float32 in [0, 1]."""
        if noise.shape[-1] != self.components:
            raise ValueError(f"noise must have {self.components} columns. Received shape {noise.shape}")
        return self._images((temperature * noise * self.spreads) @ self.basis)
