"""Planar flow: y = z + u_hat * tanh(w.z + b).

Log-determinant of the Jacobian (matrix determinant lemma, a rank-one update of I):

    log|det dy/dz| = log|1 + u_hat . psi(z)|,   psi(z) = (1 - tanh^2(w.z + b)) * w

Invertibility constraint: the map is invertible iff w.u_hat >= -1. Any (u, w) is turned into such a
pair by

    u_hat = u + (m(w.u) - w.u) * w / ||w||^2,   m(x) = -1 + softplus(x),

so that w.u_hat = m(w.u) = -1 + softplus(w.u) > -1 (Rezende and Mohamed 2015, appendix A.1).

Numerics (what this module does, and why):

- Log-det. Since u_hat . psi = (w.u_hat) * sech^2(t) with t = w.z + b, and w.u_hat = softplus(w.u) - 1,
  the determinant is rewritten without cancellation as a sum of two non-negative terms:

      1 + u_hat . psi = tanh^2(t) + softplus(w.u) * sech^2(t)

  with sech^2(t) = 4 e / (1 + e)^2, e = exp(-2|t|), accurate also in the tails. The log-det is
  log(that + tiny), tiny = the smallest normal number of the dtype: this only changes the result
  where the determinant itself underflows (log-det below about -87 in float32), so it is always
  finite and otherwise exact to rounding.
- w = 0. The correction term divides by ||w||^2; where w is exactly zero it is dropped (u_hat = u),
  the map is the translation y = z + u tanh(b) and its log-det is 0, instead of NaN.
- Inverse. With a = w.z, the forward map gives the scalar equation
  w.y = a + (w.u_hat) * tanh(a + b), whose right side is non-decreasing in a because w.u_hat >= -1,
  and |a - w.y| <= |w.u_hat|. It is solved by bisection on [w.y - |w.u_hat|, w.y + |w.u_hat|]
  (no gradient, nmant + 24 halvings of the dtype), then one differentiable Newton step, whose value
  is kept inside the final bisection bracket while its gradient is the implicit-function gradient
  da/dtheta = -(dF/dtheta) / (dF/da). Then z = y - u_hat * tanh(a + b).

References:
  Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015,
  appendix A.1. https://arxiv.org/abs/1505.05770
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

# TFP's own bijectors use these helpers to infer one dtype and to keep tf.Variables as references.
from tensorflow_probability.python.internal import dtype_util, tensor_util

__all__ = ["PlanarFlow", "planar_u_hat"]

TensorLike = tf.types.experimental.TensorLike


def _dot(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Inner product over the last (event) axis, broadcasting the batch axes."""
    return tf.reduce_sum(x * y, axis=-1)


def _safe_norm_sq(w: tf.Tensor) -> tf.Tensor:
    """||w||^2 over the last axis, replaced by 1 where w is exactly zero (keeps gradients finite)."""
    norm_sq = _dot(w, w)
    return tf.where(norm_sq > 0, norm_sq, tf.ones_like(norm_sq))


def planar_u_hat(u: TensorLike, w: TensorLike) -> tf.Tensor:
    """Constrained planar-flow vector u_hat = u + (m(w.u) - w.u) * w / ||w||^2, m(x) = -1 + softplus(x).

    Guarantees w.u_hat = m(w.u) >= -1, so the planar map is invertible. Where w = 0 the correction is
    dropped and u_hat = u (then w.u_hat = 0).

    Args:
      u: float tensor [..., d].
      w: float tensor [..., d], same dtype; batch axes broadcast with those of u.

    Returns:
      u_hat, shape broadcast(u, w) = [..., d].
    """
    u = tf.convert_to_tensor(u)
    w = tf.convert_to_tensor(w, dtype=u.dtype)
    wu = _dot(w, u)
    m_wu = tf.nn.softplus(wu) - 1.0
    return u + ((m_wu - wu) / _safe_norm_sq(w))[..., tf.newaxis] * w


def _one_plus_w_u_hat(u: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """1 + w.u_hat = softplus(w.u) (or 1 where w = 0), computed without cancellation; shape [...]."""
    norm_sq = _dot(w, w)
    return tf.where(norm_sq > 0, tf.nn.softplus(_dot(w, u)), tf.ones_like(norm_sq))


def _sech_sq(t: tf.Tensor) -> tf.Tensor:
    """sech^2(t) = 4 e / (1 + e)^2 with e = exp(-2|t|): no overflow, full relative accuracy in tails."""
    e = tf.exp(-2.0 * tf.abs(t))
    return 4.0 * e / tf.square(1.0 + e)


def _log_det_from_pre_activation(t: tf.Tensor, one_plus_c: tf.Tensor) -> tf.Tensor:
    """log(1 + c sech^2(t)) = log(tanh^2(t) + (1 + c) sech^2(t) + tiny), c = w.u_hat >= -1."""
    tiny = np.finfo(t.dtype.as_numpy_dtype).tiny
    return tf.math.log(tf.square(tf.tanh(t)) + one_plus_c * _sech_sq(t) + tiny)


def _solve_pre_activation(wy: tf.Tensor, c: tf.Tensor, one_plus_c: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Solve a + c * tanh(a + b) = wy for a (c >= -1, so the left side is monotone in a).

    Bisection without gradient, then one Newton step carrying the implicit-function gradient; the
    step's value is clipped to the final bisection bracket so a near-flat spot (c close to -1)
    cannot throw it out. All inputs broadcast together; returns that broadcast shape.
    """
    dtype = wy.dtype
    shape = tf.broadcast_dynamic_shape(tf.broadcast_dynamic_shape(tf.shape(wy), tf.shape(c)), tf.shape(b))
    wy0, c0, b0 = (tf.broadcast_to(tf.stop_gradient(x), shape) for x in (wy, c, b))
    radius = tf.abs(c0)
    steps = np.finfo(dtype.as_numpy_dtype).nmant + 24

    def bisect(lo, hi):
        mid = lo + 0.5 * (hi - lo)
        below = mid + c0 * tf.tanh(mid + b0) < wy0
        return tf.where(below, mid, lo), tf.where(below, hi, mid)

    lo, hi = tf.while_loop(
        lambda lo, hi: True, bisect, (wy0 - radius, wy0 + radius), maximum_iterations=steps
    )
    lo, hi = tf.stop_gradient(lo), tf.stop_gradient(hi)
    a0 = lo + 0.5 * (hi - lo)
    t = a0 + b
    residual = a0 + c * tf.tanh(t) - wy
    slope = tf.square(tf.tanh(t)) + one_plus_c * _sech_sq(t)
    slope = tf.maximum(slope, np.finfo(dtype.as_numpy_dtype).eps)
    a = a0 - residual / slope
    return a + tf.stop_gradient(tf.clip_by_value(a, lo, hi) - a)


class PlanarFlow(tfp.bijectors.Bijector):
    """Planar flow bijector y = z + u_hat * tanh(w.z + b) on vectors (event shape [d]).

    Parameters may carry batch axes: u, w of shape [..., d] and b of shape [...] (amortized flows use
    one set per example, [B, d] / [B]; a global flow uses [d] / []). They broadcast against the batch
    axes of z [..., d]. See the module docstring for the log-det, the invertibility constraint and
    how the inverse is computed.

    Args:
      u: float tensor [..., d]; unconstrained, made invertible through `planar_u_hat`.
      w: float tensor [..., d].
      b: float tensor [...].
      validate_args: Python bool, passed to the TFP base class.
      name: name scope.
    """

    def __init__(
        self, u: TensorLike, w: TensorLike, b: TensorLike, validate_args: bool = False, name: str = "planar_flow"
    ):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([u, w, b], dtype_hint=tf.float32)
            self._u = tensor_util.convert_nonref_to_tensor(u, dtype=dtype, name="u")
            self._w = tensor_util.convert_nonref_to_tensor(w, dtype=dtype, name="w")
            self._b = tensor_util.convert_nonref_to_tensor(b, dtype=dtype, name="b")
            for arg, value in (("u", self._u), ("w", self._w)):
                if value.shape.rank == 0:
                    raise ValueError(f"{arg} must have rank >= 1 (shape [..., d]). Received: {arg}.shape={value.shape}")
            du, dw = self._u.shape[-1], self._w.shape[-1]
            if du is not None and dw is not None and du != dw:
                raise ValueError(
                    f"u and w must have the same last dimension d. Received: u.shape={self._u.shape}, "
                    f"w.shape={self._w.shape}"
                )
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                parameters=parameters,
                dtype=dtype,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        properties = tfp.util.ParameterProperties
        return {"u": properties(event_ndims=1), "w": properties(event_ndims=1), "b": properties(event_ndims=0)}

    @property
    def u(self):
        """Unconstrained u, [..., d]."""
        return self._u

    @property
    def w(self):
        """w, [..., d]."""
        return self._w

    @property
    def b(self):
        """Bias b, [...]."""
        return self._b

    def u_hat(self) -> tf.Tensor:
        """The constrained u_hat used by the map, [..., d]."""
        return planar_u_hat(tf.convert_to_tensor(self._u), tf.convert_to_tensor(self._w))

    def _params(self):
        u, w, b = (tf.convert_to_tensor(x) for x in (self._u, self._w, self._b))
        return u, w, b

    def _forward(self, x):
        u, w, b = self._params()
        return x + planar_u_hat(u, w) * tf.tanh(_dot(w, x) + b)[..., tf.newaxis]

    def _forward_log_det_jacobian(self, x):
        u, w, b = self._params()
        return _log_det_from_pre_activation(_dot(w, x) + b, _one_plus_w_u_hat(u, w))

    def _inverse(self, y):
        u, w, b = self._params()
        u_hat = planar_u_hat(u, w)
        one_plus_c = _one_plus_w_u_hat(u, w)
        a = _solve_pre_activation(_dot(w, y), one_plus_c - 1.0, one_plus_c, b)
        return y - u_hat * tf.tanh(a + b)[..., tf.newaxis]

    def _inverse_log_det_jacobian(self, y):
        u, w, b = self._params()
        one_plus_c = _one_plus_w_u_hat(u, w)
        a = _solve_pre_activation(_dot(w, y), one_plus_c - 1.0, one_plus_c, b)
        return -_log_det_from_pre_activation(a + b, one_plus_c)
