"""Radial flow: y = z + beta * h(alpha, r) * (z - z0),  h(alpha, r) = 1 / (alpha + r),  r = ||z - z0||.

Log-determinant of the Jacobian (Rezende and Mohamed 2015, eq. 14; the Jacobian is (1 + beta h) I plus a
rank-one term along z - z0):

    log|det dy/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),   h'(r) = -1 / (alpha + r)^2

Invertibility constraint: the map is invertible iff beta >= -alpha. Unconstrained (a, b) are mapped to

    alpha = softplus(a) > 0,   beta = -alpha + softplus(b) >= -alpha.

Numerics (what this module does, and why):

- With c = alpha + beta = softplus(b) >= 0 the two factors are ratios of sums of non-negative terms,

      1 + beta h = (r + c) / (alpha + r),   1 + beta h + beta h' r = (r (r + 2 alpha) + c alpha) / (alpha + r)^2,

  so neither cancels when beta is close to -alpha. Each log is log1p(x) of its small increment x while
  x > -1/2 (accurate near the identity and far from z0), else the log of the ratio.
- alpha is kept >= the dtype's smallest normal number, so h stays finite at r = 0 when softplus(a)
  underflows; r uses a norm whose gradient is 0 (not NaN) at z = z0.
- Inverse, in closed form. Along the ray from z0 the map scales distances: r_y = ||y - z0|| =
  r (r + c) / (alpha + r), i.e. r^2 + (c - r_y) r - alpha r_y = 0, a quadratic with one root r >= 0:
  r = (r_y - c + q) / 2 with q = sqrt((c - r_y)^2 + 4 alpha r_y), evaluated as 2 alpha r_y / (c - r_y + q)
  when c >= r_y so that nothing cancels. Then z = y - beta (y - z0) / (r + c).

References:
  Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015,
  section 4.1 (eq. 14) and appendix A.2. https://arxiv.org/abs/1505.05770
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

# TFP's own bijectors use these helpers to infer one dtype and to keep tf.Variables as references.
from tensorflow_probability.python.internal import dtype_util, tensor_util

__all__ = ["RadialFlow"]

TensorLike = tf.types.experimental.TensorLike


def _norm(x: tf.Tensor) -> tf.Tensor:
    """||x|| over the last axis, with gradient 0 instead of NaN where x = 0."""
    squared = tf.reduce_sum(tf.square(x), axis=-1)
    positive = squared > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))), tf.zeros_like(squared))


def _log_ratio(increment: tf.Tensor, numerator: tf.Tensor, denominator: tf.Tensor, tiny: float) -> tf.Tensor:
    """log(1 + increment) = log(numerator / denominator): log1p where increment > -1/2, else the ratio."""
    near_one = increment > -0.5
    small = tf.math.log1p(tf.where(near_one, increment, tf.zeros_like(increment)))
    ratio = tf.math.log(numerator + tiny) - tf.math.log(denominator)
    return tf.where(near_one, small, ratio)


class RadialFlow(tfp.bijectors.Bijector):
    """Radial flow bijector y = z + beta (z - z0) / (alpha + ||z - z0||) on vectors (event shape [d]).

    Parameters may carry batch axes: ``center`` (z0) of shape [..., d] and ``a``, ``b`` of shape [...]
    (amortized flows use one set per example, [B, d] / [B]; a global flow uses [d] / []). They broadcast
    against the batch axes of z [..., d]. See the module docstring for the log-det, the invertibility
    constraint and the closed-form inverse.

    Args:
      center: float tensor [..., d], the point z0 the flow contracts towards or expands from.
      a: float tensor [...]; alpha = softplus(a).
      b: float tensor [...]; beta = -alpha + softplus(b).
      validate_args: Python bool, passed to the TFP base class.
      name: name scope.
    """

    def __init__(self, center: TensorLike, a: TensorLike, b: TensorLike, validate_args: bool = False,
                 name: str = "radial_flow"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([center, a, b], dtype_hint=tf.float32)
            self._center = tensor_util.convert_nonref_to_tensor(center, dtype=dtype, name="center")
            self._a = tensor_util.convert_nonref_to_tensor(a, dtype=dtype, name="a")
            self._b = tensor_util.convert_nonref_to_tensor(b, dtype=dtype, name="b")
            if self._center.shape.rank == 0:
                raise ValueError(f"center must have rank >= 1 (shape [..., d]). Received: center.shape={self._center.shape}")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             dtype=dtype, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        properties = tfp.util.ParameterProperties
        return {"center": properties(event_ndims=1), "a": properties(event_ndims=0), "b": properties(event_ndims=0)}

    @property
    def center(self):
        """z0, [..., d]."""
        return self._center

    @property
    def a(self):
        """Unconstrained a, [...]; alpha = softplus(a)."""
        return self._a

    @property
    def b(self):
        """Unconstrained b, [...]; beta = -alpha + softplus(b)."""
        return self._b

    def _params(self):
        """(z0 [..., d], alpha [..., 1], beta [..., 1], c = alpha + beta [..., 1], tiny)."""
        center, a, b = (tf.convert_to_tensor(x) for x in (self._center, self._a, self._b))
        tiny = np.finfo(center.dtype.as_numpy_dtype).tiny
        alpha = tf.maximum(tf.nn.softplus(a), tiny)[..., tf.newaxis]
        c = tf.nn.softplus(b)[..., tf.newaxis]
        return center, alpha, c - alpha, c, tiny

    def _log_det(self, r, alpha, beta, c, d, tiny):
        """(d - 1) log(1 + beta h) + log(1 + beta alpha / (alpha + r)^2) at radius r [...]; alpha etc. [..., 1]."""
        alpha, beta, c = alpha[..., 0], beta[..., 0], c[..., 0]
        s = alpha + r
        radial = _log_ratio(beta / s, r + c, s, tiny)
        along = _log_ratio(beta * alpha / tf.square(s), r * (r + 2.0 * alpha) + c * alpha, tf.square(s), tiny)
        return (d - 1.0) * radial + along

    def _forward(self, x):
        center, alpha, beta, _, _ = self._params()
        diff = x - center
        return x + beta / (alpha + _norm(diff)[..., tf.newaxis]) * diff

    def _forward_log_det_jacobian(self, x):
        center, alpha, beta, c, tiny = self._params()
        d = tf.cast(tf.shape(x)[-1], x.dtype)
        return self._log_det(_norm(x - center), alpha, beta, c, d, tiny)

    def _radius_before(self, r_y, alpha, c):
        """The r >= 0 with r (r + c) / (alpha + r) = r_y: the non-negative root of r^2 + (c - r_y) r - alpha r_y."""
        alpha, c = alpha[..., 0], c[..., 0]
        p = c - r_y
        cross = 2.0 * tf.sqrt(alpha * r_y)
        scale = tf.maximum(tf.abs(p), cross)
        safe = tf.where(scale > 0, scale, tf.ones_like(scale))
        q = scale * tf.sqrt(tf.square(p / safe) + tf.square(cross / safe))  # sqrt(p^2 + 4 alpha r_y), no overflow
        denominator = p + q
        stable = 2.0 * alpha * r_y / tf.where(denominator > 0, denominator, tf.ones_like(denominator))
        return tf.where(p >= 0, tf.where(denominator > 0, stable, tf.zeros_like(p)), 0.5 * (q - p))

    def _inverse(self, y):
        center, alpha, beta, c, tiny = self._params()
        diff = y - center
        r = self._radius_before(_norm(diff), alpha, c)
        return y - beta / tf.maximum(r[..., tf.newaxis] + c, tiny) * diff

    def _inverse_log_det_jacobian(self, y):
        center, alpha, beta, c, tiny = self._params()
        d = tf.cast(tf.shape(y)[-1], y.dtype)
        r = self._radius_before(_norm(y - center), alpha, c)
        return -self._log_det(r, alpha, beta, c, d, tiny)
