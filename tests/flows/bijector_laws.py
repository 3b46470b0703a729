"""The shared bijector laws every registered flow type is tested against (TFP bijector_test_util, normflows'
FlowTest), and random parameters for any ``FlowSpec``.

``check_bijector`` asserts: log-det against slogdet of the autodiff Jacobian; inverse round trip with the TFP cache
broken; forward + inverse log-dets summing to zero; every output finite. It returns the measured errors.
``FLOW_TYPES`` is the list the law tests are parametrized over: a new flow type is one entry here (and
test_flow_registry checks that it matches facevae.flows.registry.FLOW_TYPES). ``make_layer`` builds a flow layer
with moved weights and its inputs, for the layer tests of any flow type.
"""
import numpy as np
import tensorflow as tf

from facevae.flows import flow_spec

__all__ = ["FLOW_TYPES", "LOGDET_ATOL", "ROUNDTRIP_ATOL", "jacobian_slogdet", "check_bijector", "random_parameters",
           "random_bijector", "test_points", "make_layer"]

FLOW_TYPES = ["planar", "radial"]

LOGDET_ATOL = {np.float32: 1e-4, np.float64: 1e-6}
ROUNDTRIP_ATOL = {np.float32: 1e-4, np.float64: 1e-9}


def jacobian_slogdet(fn, z):
    """log|det dfn/dz| per example by autodiff, z [B, d] -> [B].

    fn sees tf.identity(z): a bijector that already mapped z would otherwise return its cached
    result, unrecorded by the tape (and the Jacobian would be silently zero).
    """
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = fn(tf.identity(z))
    _, logabsdet = tf.linalg.slogdet(tape.batch_jacobian(y, z))
    return logabsdet


def check_bijector(flow, z, dtype, logdet_atol=None, roundtrip_atol=None):
    """Assert the bijector laws on z [B, d] and return the max errors found.

    Checks: fldj(z) == slogdet(d forward/dz); inverse(forward(z)) == z with tf.identity breaking
    TFP's result cache; fldj(z) + ildj(forward(z)) == 0; every output finite.
    """
    z = tf.constant(z, dtype=dtype)
    y = flow.forward(z)
    fldj = flow.forward_log_det_jacobian(z, event_ndims=1)
    y_fresh = tf.identity(y)  # a new tensor: TFP must really invert, not read its cache
    z_back = flow.inverse(y_fresh)
    ildj = flow.inverse_log_det_jacobian(tf.identity(y), event_ndims=1)
    for name, value in (("forward", y), ("fldj", fldj), ("inverse", z_back), ("ildj", ildj)):
        assert np.all(np.isfinite(value)), f"{name} not finite"
    errors = {
        "logdet_vs_slogdet": float(np.max(np.abs(fldj - jacobian_slogdet(flow.forward, z)))),
        "roundtrip": float(np.max(np.abs(z_back - z))),
        "fldj_plus_ildj": float(np.max(np.abs(fldj + ildj))),
    }
    logdet_atol = LOGDET_ATOL[dtype] if logdet_atol is None else logdet_atol
    roundtrip_atol = ROUNDTRIP_ATOL[dtype] if roundtrip_atol is None else roundtrip_atol
    assert errors["logdet_vs_slogdet"] <= logdet_atol, errors
    assert errors["roundtrip"] <= roundtrip_atol, errors
    assert errors["fldj_plus_ildj"] <= logdet_atol, errors
    return errors


def random_parameters(flow_type, rng, d, dtype, batch=None, scale=1.0):
    """Random unconstrained parameters of one flow of ``flow_type``: scalars ~ N(0, scale^2), d-vectors
    ~ N(0, scale^2 / d) per coordinate (norm about ``scale``); batch axis [batch] in front when given."""
    params = {}
    for parameter in flow_spec(flow_type).parameters:
        shape = ((batch,) if batch else ()) + parameter.event_shape(d)
        std = scale / np.sqrt(d) if parameter.event_rank == 1 else scale
        params[parameter.name] = (rng.normal(size=shape) * std).astype(dtype)
    return params


def random_bijector(flow_type, rng, d, dtype, batch=None, scale=1.0):
    """A bijector of ``flow_type`` with ``random_parameters``."""
    return flow_spec(flow_type).bijector(**random_parameters(flow_type, rng, d, dtype, batch, scale))


def test_points(rng, batch, d, extent=10.0):
    """z [batch, d]: half uniform on [-extent, extent]^d, half N(0, 0.25 I) near the origin (where the
    parameters' centres and hyperplanes lie, and the maps bend most)."""
    far = rng.uniform(-extent, extent, size=(batch - batch // 2, d))
    near = rng.normal(size=(batch // 2, d)) * 0.5
    return np.concatenate([far, near])


test_points.__test__ = False  # a helper, not a pytest test


def make_layer(layer_class, mode, dtype="float32", num_flows=3, latent_dim=4, features_dim=6, seed=0,
               **layer_options):
    """A built ``layer_class(num_flows, latent_dim, mode=mode, dtype=dtype, **layer_options)`` with its weights moved
    away from their initial values, and its inputs (z0 [5, latent_dim], features [5, features_dim])."""
    rng = np.random.default_rng(seed)
    layer = layer_class(num_flows, latent_dim, mode=mode, dtype=dtype, **layer_options)
    z0 = tf.constant(rng.normal(size=(5, latent_dim)) * 2, dtype)
    features = tf.constant(rng.normal(size=(5, features_dim)), dtype)
    layer(z0, features=features)
    for variable in layer.weights:
        variable.assign(rng.normal(size=variable.shape) * (0.5 if mode == "amortized" else 1.0))
    return layer, z0, features
