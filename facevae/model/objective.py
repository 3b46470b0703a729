"""The names of the training objective's terms, and the per-example result of ``FaceVAE.objective``.

Pure Python (no TensorFlow), so the trainer, the epoch loop, history.csv, TensorBoard, the plots and the
metrics all take the names from ``LOSS_TERMS`` here (the Keras metric names, hence the history.csv columns and
TensorBoard scalars, with ``val_`` in front for validation):

``loss`` = reconstruction + beta * kl (beta: the KL warm-up weight while training, 1 otherwise, where
``loss`` is the negative ELBO); ``reconstruction`` = -log p(x|zK); ``kl`` = log q0(z0|x) - sum_k log|det J_k| -
log p(zK), the one-sample Monte-Carlo KL; ``log_det`` = sum_k log|det J_k(z_{k-1})|. All in nats per example
(the ``mse`` likelihood: in the published recipe's own units).
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["LOSS_TERMS", "LOSS", "RECONSTRUCTION", "KL", "LOG_DET", "Objective"]

LOSS_TERMS = ("loss", "reconstruction", "kl", "log_det")
LOSS, RECONSTRUCTION, KL, LOG_DET = LOSS_TERMS


class Objective(NamedTuple):
    """Per-example terms of the objective for a batch x [B, ...]: each [B] float32 except the draws z0, zk [B, d].

    The first four fields are ``LOSS_TERMS`` in that order; the rest are what they are made of:
    log_q0 = log q0(z0|x), log_prior = log p(zK), z0 = mean + exp(log_var / 2) * eps, zk = f_K o ... o f_1(z0).
    """

    loss: Any
    reconstruction: Any
    kl: Any
    log_det: Any
    log_q0: Any
    log_prior: Any
    z0: Any
    zk: Any

    def terms(self) -> dict:
        """{name: per-example tensor} for the names in LOSS_TERMS."""
        return {name: getattr(self, name) for name in LOSS_TERMS}
