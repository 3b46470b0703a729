"""The flow registry: flow type name -> ``FlowSpec``, everything the generic ``Flows`` layer needs to stack K flows.

A spec names the bijector class (a ``tfp.bijectors.Bijector`` taking its parameters as keyword tensors that
may carry batch axes) and its parameters: name, event rank (0: a scalar per flow, 1: a d-vector) and initial
value Normal(mean, stddev^2) (stddev 0: the constant ``mean``). With global parameters the layer owns one
weight per parameter, shape [K, *event]; amortized, one Dense layer predicts all K flows' parameters per
example from the encoder features, its bias starting at the initial values and its kernel at
VarianceScaling(``amortized_kernel_scale``), so per-example flows start near a global one.

Adding a flow type: write its bijector in its own module, add one line to ``FLOW_TYPES``. The CLIs'
``--flow-type`` choices, ``ModelConfig.flow_type`` validation and the tests' bijector laws
(tests/flows/bijector_laws.py) follow from this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from facevae.flows.planar import PlanarFlow
from facevae.flows.radial import RadialFlow

__all__ = ["FlowParameter", "FlowSpec", "FLOW_TYPES", "flow_spec"]


@dataclass(frozen=True)
class FlowParameter:
    """One parameter of a flow: ``name`` (the bijector's keyword), ``event_rank`` 0 (scalar) or 1 (a d-vector),
    initial value ~ Normal(mean, stddev^2) where stddev = ``stddev(d)`` (0: exactly ``mean``)."""

    name: str
    event_rank: int
    stddev: Callable[[int], float] = lambda d: 0.0
    mean: float = 0.0

    def event_shape(self, latent_dim: int) -> tuple[int, ...]:
        return (latent_dim,) * self.event_rank


@dataclass(frozen=True)
class FlowSpec:
    """A registered flow type: ``bijector(**{p.name: tensor}, name=...)`` builds one flow from ``parameters``.

    near_identity(layer, rng): optionally move a built global ``Flows`` layer's weights so every flow starts
    close to the identity map (used by the 2-D density fits); None when the initial values already are.
    """

    bijector: type
    parameters: tuple[FlowParameter, ...]
    description: str
    amortized_kernel_scale: float = 1e-4
    near_identity: Callable | None = field(default=None, compare=False)

    def size(self, latent_dim: int) -> int:
        """Numbers per flow: the sum of the parameter sizes (planar: 2d + 1)."""
        return sum(int(np.prod(p.event_shape(latent_dim))) for p in self.parameters)


def _planar_near_identity(layer, rng: np.random.Generator) -> None:
    """u = softplus^-1(1) w / ||w||^2 + noise(0.01), so w.u_hat = softplus(w.u) - 1 = 0 and u_hat ~ noise.

    Each flow then starts within 0.01 of the identity; the layer's own start (w.u_hat ~ -0.31, a mild
    contraction per flow) compounds over deep stacks and slows K = 32 down.
    """
    w = layer.w.numpy()
    u = np.log(np.expm1(1.0)) * w / np.sum(w * w, axis=1, keepdims=True)
    layer.u.assign((u + 0.01 * rng.standard_normal(u.shape)).astype(np.float32))


# Planar start: u ~ N(0, 0.01^2), w ~ N(0, 1/d) (||w|| about 1), b = 0; since w.u_hat = softplus(w.u) - 1 is
# about -0.31 at w.u = 0, each flow starts as a mild contraction along w with ||u_hat|| about 0.3.
FLOW_TYPES: dict[str, FlowSpec] = {
    "planar": FlowSpec(
        PlanarFlow,
        (FlowParameter("u", 1, lambda d: 0.01), FlowParameter("w", 1, lambda d: 1.0 / np.sqrt(d)), FlowParameter("b", 0)),
        "y = z + u_hat tanh(w.z + b)",
        near_identity=_planar_near_identity,
    ),
    # Radial start: z0 ~ N(0, I) (where the prior's mass is), a = 0 (alpha = log 2), b ~ N(0, 0.01^2) (beta ~ 0).
    "radial": FlowSpec(RadialFlow, (FlowParameter("center", 1, lambda d: 1.0), FlowParameter("a", 0),
                                    FlowParameter("b", 0, lambda d: 0.01)), "y = z + beta (z - z0) / (alpha + |z - z0|)"),
}


def flow_spec(flow_type: str) -> FlowSpec:
    """The registered spec of ``flow_type``; ValueError naming the registered types otherwise."""
    if flow_type not in FLOW_TYPES:
        raise ValueError(f"Unknown flow type {flow_type!r}; expected one of {list(FLOW_TYPES)}")
    return FLOW_TYPES[flow_type]
