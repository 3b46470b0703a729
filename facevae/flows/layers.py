"""K planar flows as a Keras layer: zK = f_K o ... o f_1(z0), with sum_k log|det J_k(z_{k-1})|.

Each f_k is a `PlanarFlow` (y = z + u_hat * tanh(w.z + b)). Its parameters are either

- "global": trainable weights u [K, d], w [K, d], b [K] shared by all examples, or
- "amortized": predicted per example from the encoder's features h [B, F] by one Dense layer
  h -> K * (2d + 1) numbers, split into u [B, K, d], w [B, K, d], b [B, K] (the amortized planar
  flow of the flow-VAE literature, e.g. the baseline of van den Berg et al. 2018).

Initialization (chosen so training starts from a tame, invertible map):
  u ~ Normal(0, 0.01^2), w ~ Normal(0, 1/d) (so ||w|| is about 1), b = 0. Since w.u_hat =
  softplus(w.u) - 1 is about -0.31 at w.u = 0, each flow starts as a mild contraction along w with
  ||u_hat|| about 0.3, instead of the huge ||u_hat|| ~ 0.31 / ||w|| that a tiny w would give.
  In amortized mode the Dense bias starts at exactly those values and its kernel is small
  (truncated normal, variance 1e-4 / F), so per-example parameters start near a global flow.

References:
  Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
  Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing
  Flows for Variational Inference. UAI 2018.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facevae.flows.planar import PlanarFlow

__all__ = ["PlanarFlows"]

_MODES = ("global", "amortized")


@keras.saving.register_keras_serializable(package="facevae")
class PlanarFlows(keras.layers.Layer):
    """A stack of K planar flows on a d-dimensional latent, with global or amortized parameters.

    Args:
      num_flows: K >= 0. With K = 0 the layer is the identity with log-det 0.
      latent_dim: d >= 1.
      mode: "global" (weights owned by the layer) or "amortized" (predicted from `features`).
      **kwargs: standard Layer arguments (name, dtype, ...).

    Call:
      `zK, sum_log_det = layer(z0, features=None)`; z0 [B, d], features [B, F] (required when
      mode="amortized", ignored otherwise); zK [B, d], sum_log_det [B] in nats,
      sum_k log|det dz_k/dz_{k-1}|.
    """

    def __init__(self, num_flows: int, latent_dim: int, mode: str = "global", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_flows, bool) or not isinstance(num_flows, (int, np.integer)) or num_flows < 0:
            raise ValueError(f"num_flows must be an integer >= 0. Received: num_flows={num_flows!r}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1. Received: latent_dim={latent_dim!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}. Received: mode={mode!r}")
        self.num_flows = int(num_flows)
        self.latent_dim = int(latent_dim)
        self.mode = mode
        self.dense = None

    def _initial_params(self, shape, dtype=None):
        """Initial (u, w, b) of all K flows flattened as [K * (2d + 1)]: the Dense bias initializer."""
        k, d = self.num_flows, self.latent_dim
        u = keras.random.normal((k, d), stddev=0.01, dtype=dtype)
        w = keras.random.normal((k, d), stddev=1.0 / np.sqrt(d), dtype=dtype)
        b = keras.ops.zeros((k, 1), dtype=dtype)
        return keras.ops.reshape(keras.ops.concatenate([u, w, b], axis=-1), shape)

    def build(self, z0_shape, features_shape=None):
        if z0_shape[-1] is not None and z0_shape[-1] != self.latent_dim:
            raise ValueError(
                f"z0 must have last dimension latent_dim={self.latent_dim}. Received: z0 shape {tuple(z0_shape)}"
            )
        k, d = self.num_flows, self.latent_dim
        if k == 0:
            return  # the identity: no weights, so optimizers see no gradient-less variables
        if self.mode == "global":
            self.u = self.add_weight(shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=0.01), name="u")
            self.w = self.add_weight(
                shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=1.0 / np.sqrt(d)), name="w"
            )
            self.b = self.add_weight(shape=(k,), initializer="zeros", name="b")
        else:
            if features_shape is None or features_shape[-1] is None:
                raise ValueError(
                    "mode='amortized' needs `features` [B, F] with a known F to build. "
                    f"Received: features shape {features_shape}"
                )
            self.dense = keras.layers.Dense(
                k * (2 * d + 1),
                kernel_initializer=keras.initializers.VarianceScaling(scale=1e-4, distribution="truncated_normal"),
                bias_initializer=self._initial_params,
                dtype=self.dtype_policy,
                name="flow_params",
            )
            self.dense.build(tuple(features_shape))

    def _flows(self, features) -> list[PlanarFlow]:
        """The K bijectors, built from the current weight values (so the tape sees the reads)."""
        k, d = self.num_flows, self.latent_dim
        if k == 0:
            return []
        if self.mode == "global":
            u, w, b = (tf.convert_to_tensor(v.value) for v in (self.u, self.w, self.b))
            return [PlanarFlow(u[i], w[i], b[i], name=f"planar_flow_{i}") for i in range(k)]
        if features is None:
            raise ValueError("mode='amortized' requires `features` [B, F]. Received: features=None")
        params = tf.reshape(self.dense(features), (-1, k, 2 * d + 1))
        u, w, b = params[..., :d], params[..., d : 2 * d], params[..., 2 * d]
        return [PlanarFlow(u[:, i], w[:, i], b[:, i], name=f"planar_flow_{i}") for i in range(k)]

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

    def compute_output_shape(self, z0_shape, features_shape=None):
        return tuple(z0_shape), tuple(z0_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_flows": self.num_flows, "latent_dim": self.latent_dim, "mode": self.mode})
        return config
