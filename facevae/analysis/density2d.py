"""Planar flows fitted to unnormalised 2-D densities p(z) = exp(-U(z)) / Z by reverse KL.

Targets (Rezende and Mohamed 2015, table 1), with w1(z) = sin(2 pi z1 / 4),
w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2), w3(z) = 3 sigmoid((z1 - 1) / 0.3):

    u1: U = ((||z|| - 2) / 0.4)^2 / 2 - log(exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2))
    u2: U = ((z2 - w1) / 0.4)^2 / 2
    u3: U = -log(exp(-((z2 - w1) / 0.35)^2 / 2) + exp(-((z2 - w1 + w2) / 0.35)^2 / 2))
    u4: U = -log(exp(-((z2 - w1) / 0.4)^2 / 2) + exp(-((z2 - w1 + w3) / 0.35)^2 / 2))

U2-U4 do not depend on |z1| at large |z1| and are not normalisable on R^2; as in the paper's
figures they live on the box |z1| <= 4, enforced by the wall (relu(|z1| - 4) / 0.05)^2 / 2.
Also ``two-gaussians``: the normalised mixture 1/2 N((-1.5, -1.5), s^2 I) + 1/2 N((1.5, 1.5), s^2 I)
(s = 1 by default), and ``ring``: U = ((||z|| - 2) / 0.2)^2 / 2.

Fit: zK = f_K o ... o f_1(z0), z0 ~ N(0, I), f_k of one registered flow type (planar by default; a global
``Flows`` layer). The loss

    L = E_z0 [ log N(z0; 0, I) - sum_k log|det J_k| + beta_t U(zK) ]  (nats; beta_t -> 1, annealed)

equals KL(q || p) - log Z at beta = 1. Z is computed numerically on a grid (trapezoid-free
Riemann sum over ``GRID_EXTENT``), so KL(q || p) = L + log Z is estimated by Monte Carlo.

References:
  Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from data_prep import atomic
from facevae.model import losses
from facevae.flows import Flows

__all__ = ["TARGETS", "GRID_EXTENT", "energy", "log_normaliser", "fit_flows", "FitResult", "kl_estimate",
           "flow_log_density", "plot_fit"]

TARGETS = ("two-gaussians", "u1", "u2", "u3", "u4", "ring")
GRID_EXTENT = 5.0  # the grid and figures cover [-5, 5]^2


def _w1(z1):
    return tf.sin(2.0 * math.pi * z1 / 4.0)


def _neg_log_sum(a, b):
    """-log(exp(a) + exp(b)), stably."""
    return -tf.reduce_logsumexp(tf.stack([a, b]), axis=0)


def _wall(z1):
    return 0.5 * tf.square(tf.nn.relu(tf.abs(z1) - 4.0) / 0.05)


def energy(target: str, sigma: float = 1.0) -> Callable[[tf.Tensor], tf.Tensor]:
    """U(z) for ``target``: a function z [N, 2] -> [N] (nats); exp(-U) is the unnormalised density."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; expected one of {list(TARGETS)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive. Received: sigma={sigma!r}")

    def u(z):
        z = tf.convert_to_tensor(z, tf.float32)
        z1, z2 = z[:, 0], z[:, 1]
        if target == "two-gaussians":
            means = tf.constant([[-1.5, -1.5], [1.5, 1.5]])
            scaled = (z[None, :, :] - means[:, None, :]) / sigma  # [2, N, 2]
            log_parts = -0.5 * tf.reduce_sum(tf.square(scaled), -1) - losses.LOG_2PI - 2.0 * math.log(sigma)
            return -(tf.reduce_logsumexp(log_parts, axis=0) - math.log(2.0))
        if target == "ring":
            return 0.5 * tf.square((tf.norm(z, axis=1) - 2.0) / 0.2)
        if target == "u1":
            radial = 0.5 * tf.square((tf.norm(z, axis=1) - 2.0) / 0.4)
            return radial + _neg_log_sum(-0.5 * tf.square((z1 - 2.0) / 0.6), -0.5 * tf.square((z1 + 2.0) / 0.6))
        w1 = _w1(z1)
        if target == "u2":
            value = 0.5 * tf.square((z2 - w1) / 0.4)
        elif target == "u3":
            w2 = 3.0 * tf.exp(-0.5 * tf.square((z1 - 1.0) / 0.6))
            value = _neg_log_sum(-0.5 * tf.square((z2 - w1) / 0.35), -0.5 * tf.square((z2 - w1 + w2) / 0.35))
        else:
            w3 = 3.0 * tf.sigmoid((z1 - 1.0) / 0.3)
            value = _neg_log_sum(-0.5 * tf.square((z2 - w1) / 0.4), -0.5 * tf.square((z2 - w1 + w3) / 0.35))
        return value + _wall(z1)

    return u


def _grid(points: int) -> tuple[np.ndarray, float]:
    axis = np.linspace(-GRID_EXTENT, GRID_EXTENT, points, dtype=np.float64)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32), float((axis[1] - axis[0]) ** 2)


def log_normaliser(u: Callable, points: int = 400) -> float:
    """log Z = log sum_grid exp(-U) dA over [-GRID_EXTENT, GRID_EXTENT]^2 with points^2 cells."""
    grid, area = _grid(points)
    values = -u(grid).numpy().astype(np.float64)
    peak = values.max()
    return float(peak + np.log(np.sum(np.exp(values - peak)) * area))


@dataclass
class FitResult:
    target: str
    flows: int
    steps: int
    final_loss: float  # mean loss over the last 100 steps (beta = 1), nats
    kl: float  # KL(q || p) estimate, nats
    kl_stderr: float
    log_z: float
    losses: list[float] = field(default_factory=list, repr=False)
    layer: Flows | None = field(default=None, repr=False)
    flow_type: str = "planar"

    def summary(self) -> dict:
        return {"target": self.target, "flows": self.flows, "steps": self.steps, "final_loss": self.final_loss,
                "kl": self.kl, "kl_stderr": self.kl_stderr, "log_z": self.log_z}


def _sample_terms(layer: Flows, u: Callable, z0: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(zK, log q(zK) [N], U(zK) [N]) for base draws z0 [N, 2]; log q = log N(z0) - sum log-det."""
    zk, log_det = layer(z0)
    return zk, losses.standard_normal_log_prob(z0) - log_det, u(zk)


def kl_estimate(layer: Flows, u: Callable, log_z: float, samples: int = 100_000, seed: int = 1):
    """(KL(q || p), its standard error): mean over draws of log q(zK) + U(zK) + log Z, nats."""
    z0 = tf.random.stateless_normal((samples, 2), seed=(seed, 0))
    _, log_q, energy_values = _sample_terms(layer, u, z0)
    per_draw = (log_q + energy_values).numpy().astype(np.float64) + log_z
    return float(per_draw.mean()), float(per_draw.std() / math.sqrt(samples))


def _start_near_identity(layer: Flows, seed: int) -> None:
    """Every flow of a built global layer starts near the identity, as its type's spec says
    (``Flows.near_identity``; planar: w.u_hat = 0 plus noise 0.01)."""
    layer.near_identity(seed)


def fit_flows(
    target: str,
    flows: int,
    steps: int = 3000,
    batch: int = 500,
    learning_rate: float = 5e-3,
    anneal_fraction: float = 0.5,
    seed: int = 0,
    sigma: float = 1.0,
    identity_init: bool = True,
    kl_samples: int = 100_000,
    grid_points: int = 400,
    progress: Callable[[int, float], None] | None = None,
    flow_type: str = "planar",
) -> FitResult:
    """Fit K = ``flows`` flows of ``flow_type`` to ``target`` by reverse KL with Adam; returns a FitResult.

    beta_t = min(1, 0.01 + t / (anneal_fraction * steps)) multiplies U during the first steps (the
    paper's annealing); ``progress(step, loss)`` is called every 100 steps. ``identity_init`` starts
    every flow near the identity map where its type's spec says how (``Flows.near_identity``; planar:
w.u_hat = 0 plus noise 0.01, instead of the layer's mild contraction that compounds over deep stacks).
    """
    for name, value in (("flows", flows), ("steps", steps), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if not 0 <= anneal_fraction < 1:
        raise ValueError(f"anneal_fraction must be in [0, 1). Received: anneal_fraction={anneal_fraction!r}")
    keras.utils.set_random_seed(seed)
    u = energy(target, sigma)
    layer = Flows(flows, 2, mode="global", flow_type=flow_type)
    layer.build((None, 2))
    if identity_init:
        _start_near_identity(layer, seed)
    optimizer = keras.optimizers.Adam(learning_rate)
    anneal = max(1.0, anneal_fraction * steps)

    @tf.function
    def step(t):
        beta = tf.minimum(1.0, 0.01 + tf.cast(t, tf.float32) / anneal)
        z0 = tf.random.stateless_normal((batch, 2), seed=tf.stack([tf.constant(seed, tf.int64), t]))
        with tf.GradientTape() as tape:
            _, log_q, energy_values = _sample_terms(layer, u, z0)
            objective = tf.reduce_mean(log_q + beta * energy_values)
        optimizer.apply(tape.gradient(objective, layer.trainable_variables), layer.trainable_variables)
        return tf.reduce_mean(log_q + energy_values)

    history = []
    for t in range(steps):
        history.append(float(step(tf.constant(t, tf.int64))))
        if progress is not None and (t + 1) % 100 == 0:
            progress(t + 1, history[-1])
    log_z = log_normaliser(u, grid_points)
    kl, stderr = kl_estimate(layer, u, log_z, kl_samples, seed + 1)
    final = float(np.mean(history[-100:]))
    return FitResult(target, flows, steps, final, kl, stderr, log_z, history, layer, flow_type)


def flow_log_density(layer: Flows, points: np.ndarray) -> np.ndarray:
    """log q(x) at points x [N, 2] = log N(z0) - sum_k log|det J_k(z_{k-1})|, z0 = f^{-1}(x) (numerical inverse)."""
    z0 = layer.inverse(tf.convert_to_tensor(points, tf.float32))
    _, log_det = layer(z0)
    return (losses.standard_normal_log_prob(z0) - log_det).numpy()


def plot_fit(result: FitResult, path: str, sigma: float = 1.0, points: int = 200, samples: int = 5000) -> str:
    """Three panels: target exp(-U)/Z, the flow density q on the grid, and samples of q; PNG, atomic."""
    from matplotlib.figure import Figure  # no pyplot: leaves the process's backend alone (notebooks)

    grid, _ = _grid(points)
    target = np.exp(-energy(result.target, sigma)(grid).numpy() - result.log_z).reshape(points, points)
    flow = np.exp(flow_log_density(result.layer, grid)).reshape(points, points)
    zk, _ = result.layer(tf.random.stateless_normal((samples, 2), seed=(7, 0)))
    zk = zk.numpy()
    extent = (-GRID_EXTENT, GRID_EXTENT, -GRID_EXTENT, GRID_EXTENT)
    figure = Figure(figsize=(9.6, 3.4))
    axes = figure.subplots(1, 3)
    for axis, image, title in ((axes[0], target, f"target {result.target}"),
                               (axes[1], flow, f"{result.flow_type} flow density, K = {result.flows}")):
        axis.imshow(image, origin="lower", extent=extent, cmap="viridis")
        axis.set_title(title, fontsize=9)
    axes[2].scatter(zk[:, 0], zk[:, 1], s=0.5, alpha=0.4)
    axes[2].set_xlim(extent[:2])
    axes[2].set_ylim(extent[2:])
    axes[2].set_aspect("equal")
    axes[2].set_title(f"samples; KL = {result.kl:.3f} nats", fontsize=9)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=70)
    return path
