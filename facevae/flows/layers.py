"""K flows of one registered type as a Keras layer: zK = f_K o ... o f_1(z0), with sum_k log|det J_k(z_{k-1})|.

``Flows(num_flows, latent_dim, mode, flow_type)`` stacks K flows of any type in facevae.flows.registry.FLOW_TYPES
(planar, radial, ...). Each flow's parameters (named and shaped by the type's ``FlowSpec``) are either

- "global": trainable weights, one per parameter, of shape [K, *event] (planar: u [K, d], w [K, d], b [K]),
  shared by all examples, or
- "amortized": predicted per example from the encoder's features h [B, F] by one Dense layer
  h -> K * P numbers (P = the spec's numbers per flow; planar 2d + 1), split into [B, K, *event] per
  parameter (the amortized flows of the flow-VAE literature, e.g. the baseline of van den Berg et al. 2018).

Initialization: each parameter starts at its spec's initial value (planar: u ~ Normal(0, 0.01^2),
w ~ Normal(0, 1/d), b = 0, a mild invertible contraction). In amortized mode the Dense bias starts at
exactly those values and its kernel is small (truncated normal, variance ``amortized_kernel_scale`` / F,
1e-4 / F for planar), so per-example parameters start near a global flow.

Step size of amortized parameters (``fan_in_scaled``, on for new layers): the Dense reads h / F, its kernel stored
F times larger (so the initial parameters are as above). Adam moves every stored weight by about the learning rate
lr per step, so a predicted parameter moves by at most lr (1 + mean_f |h_f|), about a global parameter's step.
Reading h itself, it moves by up to lr (1 + sum_f |h_f|): with the face presets' F = 4,096 encoder features of
mean size 0.46 that is about 1,900 lr, and at latent 800 four planar flows pushed the codes about 37 units within
a few steps of 5e-4, saturating tanh (log-det 0) and keeping the training loss above global flows' for epochs
(README, "Planar flows on the posterior, on real faces"). Layers saved before the option existed load without it.

``PlanarFlows`` is ``Flows`` with flow_type="planar", kept under its registered name ``facevae>PlanarFlows`` so
`.keras` files saved before the registry load unchanged (same weight names and order).

References:
  Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
  Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing
  Flows for Variational Inference. UAI 2018.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facevae.config import FLOW_MODES
from facevae.flows.registry import FLOW_TYPES, flow_spec

__all__ = ["FLOW_MODES", "Flows", "PlanarFlows"]


def _initializer(parameter, latent_dim: int):
    stddev = parameter.stddev(latent_dim)
    if stddev > 0:
        return keras.initializers.RandomNormal(mean=parameter.mean, stddev=stddev)
    return keras.initializers.Zeros() if parameter.mean == 0 else keras.initializers.Constant(parameter.mean)


@keras.saving.register_keras_serializable(package="facevae")
class Flows(keras.layers.Layer):
    """A stack of K flows of one registered type on a d-dimensional latent, with global or amortized parameters.

    Args:
      num_flows: K >= 0. With K = 0 the layer is the identity with log-det 0.
      latent_dim: d >= 1.
      mode: "global" (weights owned by the layer) or "amortized" (predicted from `features`).
      flow_type: a name in facevae.flows.registry.FLOW_TYPES ("planar", ...).
      fan_in_scaled: amortized mode: the Dense reads features / F (see the module docstring); False is the
        unscaled layer of files saved before the option existed.
      **kwargs: standard Layer arguments (name, dtype, ...).

    Call:
      `zK, sum_log_det = layer(z0, features=None)`; z0 [B, d], features [B, F] (required when
      mode="amortized", ignored otherwise); zK [B, d], sum_log_det [B] in nats,
      sum_k log|det dz_k/dz_{k-1}|.
    """

    def __init__(self, num_flows: int, latent_dim: int, mode: str = "global", flow_type: str = "planar",
                 fan_in_scaled: bool = True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_flows, bool) or not isinstance(num_flows, (int, np.integer)) or num_flows < 0:
            raise ValueError(f"num_flows must be an integer >= 0. Received: num_flows={num_flows!r}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1. Received: latent_dim={latent_dim!r}")
        if mode not in FLOW_MODES:
            raise ValueError(f"mode must be one of {list(FLOW_MODES)}. Received: mode={mode!r}")
        if flow_type not in FLOW_TYPES:
            raise ValueError(f"flow_type must be one of {list(FLOW_TYPES)}. Received: flow_type={flow_type!r}")
        self.num_flows = int(num_flows)
        self.latent_dim = int(latent_dim)
        self.mode = mode
        self.flow_type = flow_type
        self.fan_in_scaled = bool(fan_in_scaled)
        self.spec = flow_spec(flow_type)
        self.dense = None
        self.feature_gain = 1.0  # 1 / F once built with fan_in_scaled

    def _initial_params(self, shape, dtype=None):
        """Initial parameters of all K flows flattened as [K * P]: the Dense bias initializer.

        Each parameter's [K, size] block is drawn from the global Keras seed generator, in the spec's order.
        """
        k, d = self.num_flows, self.latent_dim
        blocks = []
        for parameter in self.spec.parameters:
            size = int(np.prod(parameter.event_shape(d)))
            stddev = parameter.stddev(d)
            if stddev > 0:
                blocks.append(keras.random.normal((k, size), mean=parameter.mean, stddev=stddev, dtype=dtype))
            else:
                blocks.append(keras.ops.full((k, size), parameter.mean, dtype=dtype))
        return keras.ops.reshape(keras.ops.concatenate(blocks, axis=-1), shape)

    def build(self, z0_shape, features_shape=None):
        if z0_shape[-1] is not None and z0_shape[-1] != self.latent_dim:
            raise ValueError(
                f"z0 must have last dimension latent_dim={self.latent_dim}. Received: z0 shape {tuple(z0_shape)}"
            )
        k, d = self.num_flows, self.latent_dim
        if k == 0:
            return  # the identity: no weights, so optimizers see no gradient-less variables
        if self.mode == "global":
            for parameter in self.spec.parameters:
                weight = self.add_weight(shape=(k, *parameter.event_shape(d)),
                                         initializer=_initializer(parameter, d), name=parameter.name)
                setattr(self, parameter.name, weight)
        else:
            if features_shape is None or features_shape[-1] is None:
                raise ValueError(
                    "mode='amortized' needs `features` [B, F] with a known F to build. "
                    f"Received: features shape {features_shape}"
                )
            fan_in = int(features_shape[-1])
            self.feature_gain = 1.0 / fan_in if self.fan_in_scaled else 1.0
            self.dense = keras.layers.Dense(
                k * self.spec.size(d),
                kernel_initializer=keras.initializers.VarianceScaling(
                    scale=self.spec.amortized_kernel_scale / self.feature_gain**2, distribution="truncated_normal"),
                bias_initializer=self._initial_params,
                dtype=self.dtype_policy,
                name="flow_params",
            )
            self.dense.build(tuple(features_shape))

    def _flows(self, features) -> list:
        """The K bijectors, built from the current weight values (so the tape sees the reads)."""
        k, d = self.num_flows, self.latent_dim
        if k == 0:
            return []
        names = [p.name for p in self.spec.parameters]
        if self.mode == "global":
            values = {name: tf.convert_to_tensor(getattr(self, name).value) for name in names}
            per_flow = [{name: value[i] for name, value in values.items()} for i in range(k)]
        else:
            if features is None:
                raise ValueError("mode='amortized' requires `features` [B, F]. Received: features=None")
            params = tf.reshape(self.dense(features * self.feature_gain), (-1, k, self.spec.size(d)))
            values, start = {}, 0
            for parameter in self.spec.parameters:
                if parameter.event_rank == 0:
                    values[parameter.name] = params[..., start]
                    start += 1
                else:
                    values[parameter.name] = params[..., start : start + d]
                    start += d
            per_flow = [{name: value[:, i] for name, value in values.items()} for i in range(k)]
        bijector = self.spec.bijector
        return [bijector(**kwargs, name=f"{self.flow_type}_flow_{i}") for i, kwargs in enumerate(per_flow)]

    def call(self, z0: tf.Tensor, features: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """z0 [B, d] (and features [B, F]) -> (zK [B, d], sum_k log|det J_k| [B])."""
        z = z0
        sum_log_det = tf.zeros(tf.shape(z0)[:-1], dtype=z0.dtype)
        for flow in self._flows(features):
            sum_log_det += flow.forward_log_det_jacobian(z, event_ndims=1)
            z = flow.forward(z)
        return z, sum_log_det

    def inverse(self, zK: tf.Tensor, features: tf.Tensor | None = None) -> tf.Tensor:
        """zK [B, d] (and features [B, F]) -> z0 [B, d], inverting the K flows in reverse order."""
        zK = tf.convert_to_tensor(zK, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(zK.shape), None if features is None else tuple(features.shape))
        z = zK
        for flow in reversed(self._flows(features)):
            z = flow.inverse(z)
        return z

    def near_identity(self, seed: int) -> None:
        """Move a built global layer's weights so every flow starts near the identity, where the spec says how."""
        if self.spec.near_identity is not None and self.num_flows > 0:
            self.spec.near_identity(self, np.random.default_rng(seed))

    def compute_output_shape(self, z0_shape, features_shape=None):
        return tuple(z0_shape), tuple(z0_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_flows": self.num_flows, "latent_dim": self.latent_dim, "mode": self.mode,
                       "flow_type": self.flow_type, "fan_in_scaled": self.fan_in_scaled})
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Flows":
        """A saved layer; one saved before ``fan_in_scaled`` existed reads its features unscaled."""
        return cls(**{"fan_in_scaled": False, **config})


@keras.saving.register_keras_serializable(package="facevae")
class PlanarFlows(Flows):
    """``Flows`` with flow_type="planar": K planar flows y = z + u_hat tanh(w.z + b) (see facevae.flows.planar).

    Kept under its registered name ``facevae>PlanarFlows``, with the same config (num_flows, latent_dim, mode)
    and weights, so `.keras` files saved before the generic layer load unchanged.
    """

    def __init__(self, num_flows: int, latent_dim: int, mode: str = "global", **kwargs):
        super().__init__(num_flows, latent_dim, mode=mode, flow_type="planar", **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["flow_type"]
        return config
