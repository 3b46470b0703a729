"""Planar flow bijector and PlanarFlows layer, checked as math through the shared helper.

`check_bijector` (tests/flows/bijector_laws.py) is the common test for any vector bijector (TFP
bijector_test_util / normflows' FlowTest), also run over every registered flow type by test_flow_registry.py:
log-det against slogdet of the autodiff Jacobian, inverse round trip with the TFP cache broken, forward +
inverse log-dets summing to zero, finite values. It returns the measured errors.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from facevae.flows import PlanarFlow, PlanarFlows, planar_u_hat

from bijector_laws import LOGDET_ATOL, ROUNDTRIP_ATOL, check_bijector, jacobian_slogdet, make_layer


def random_flow(rng, d, dtype, batch=None):
    """u ~ N(0, 1), w ~ N(0, 1/d), b ~ N(0, 1): w.u ~ N(0, 1), a well-conditioned but non-trivial map."""
    shape = (d,) if batch is None else (batch, d)
    u = rng.normal(size=shape)
    w = rng.normal(size=shape) / np.sqrt(d)
    b = rng.normal(size=shape[:-1])
    return PlanarFlow(*(x.astype(dtype) for x in (u, w, b)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [2, 5, 50])
@pytest.mark.parametrize("params", ["global", "batched"])
def test_planar_bijector_laws(dtype, d, params):
    rng = np.random.default_rng(d)
    batch = 16
    flow = random_flow(rng, d, dtype, batch=None if params == "global" else batch)
    z = rng.uniform(-10.0, 10.0, size=(batch, d))  # |z_i| up to 10
    check_bijector(flow, z, dtype)


def test_batch_shape_and_broadcasting():
    rng = np.random.default_rng(1)
    u, w = rng.normal(size=(2, 4, 3)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    flow = PlanarFlow(u, w, b)
    assert flow.experimental_batch_shape() == tf.TensorShape([4])
    # Batch dims broadcast: the same batched flow applied to z [2, 4, 3] equals per-flow application.
    z = rng.normal(size=(2, 4, 3)).astype(np.float32)
    y = flow.forward(z)
    for i in range(4):
        y_i = PlanarFlow(u[i], w[i], b[i]).forward(z[:, i])
        np.testing.assert_allclose(y[:, i], y_i, rtol=1e-6, atol=1e-6)
    assert flow.forward_log_det_jacobian(z, event_ndims=1).shape == (2, 4)


def test_mismatched_dimensions_rejected():
    with pytest.raises(ValueError, match="w.shape"):
        PlanarFlow(np.zeros(3, np.float32), np.ones(4, np.float32), np.float32(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_w_dot_u_hat_at_least_minus_one(dtype):
    rng = np.random.default_rng(2)
    n, d = 4000, 5
    w = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    u_random = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    # Adversarial: u pointing against w, so that w.u reaches about -1e9.
    u_adversarial = -w * 10.0 ** rng.uniform(-1, 3, size=(n, 1)) + 0.1 * rng.normal(size=(n, d))
    for u in (u_random, u_adversarial):
        u, w = u.astype(dtype).astype(np.float64), w.astype(dtype).astype(np.float64)  # exact inputs
        wu = np.sum(w * u, axis=-1)
        w_u_hat = np.sum(w * planar_u_hat(tf.constant(u, dtype), tf.constant(w, dtype)).numpy(), axis=-1)
        # w.u_hat = -1 + softplus(w.u) exactly; the rounding of the dot products is of order
        # eps * (|w| |u| + |w.u|) (the correction term cancels |w.u|).
        norms = np.linalg.norm(w, axis=-1) * np.linalg.norm(u, axis=-1)
        slack = 64 * np.finfo(dtype).eps * (1.0 + norms + np.abs(wu))
        assert np.all(w_u_hat >= -1.0 - slack), np.min(w_u_hat + 1.0 + slack)
        np.testing.assert_array_less(np.abs(w_u_hat - (np.logaddexp(0.0, wu) - 1.0)), slack)
    assert np.min(np.sum(w * u_adversarial, axis=-1)) < -1e8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_for_huge_inputs_and_degenerate_parameters(dtype):
    rng = np.random.default_rng(3)
    d, batch = 5, 64
    z = rng.uniform(-1e4, 1e4, size=(batch, d)).astype(dtype)
    w = rng.normal(size=d)
    cases = {
        "random": (rng.normal(size=d), w, 0.5),
        "large_w": (rng.normal(size=d), 1e3 * w, 1e3),
        "w_dot_u_minus_1e4": (-1e4 * w / np.dot(w, w), w, 0.0),  # w.u_hat = -1 up to underflow
        "w_zero": (rng.normal(size=d), np.zeros(d), 0.3),
    }
    for name, (u, w_, b) in cases.items():
        flow = PlanarFlow(u.astype(dtype), w_.astype(dtype), dtype(b))
        # Include the worst point: a = w.z + b = 0 where the Jacobian is singular when w.u_hat = -1.
        z_bad = z if not np.any(w_) else np.concatenate([z, [-b * w_ / np.dot(w_, w_)]]).astype(dtype)
        y = tf.constant(z_bad)
        with tf.GradientTape() as tape:
            params = [tf.constant(x, dtype) for x in (u, w_, b)]
            tape.watch(params)
            f = PlanarFlow(*params)
            outputs = [f.forward(y), f.forward_log_det_jacobian(y, 1), f.inverse(y), f.inverse_log_det_jacobian(y, 1)]
            total = sum(tf.reduce_sum(o) for o in outputs)
        grads = tape.gradient(total, params)
        for value in outputs + grads:
            assert np.all(np.isfinite(value)), name
        assert np.all(np.isfinite(flow.inverse(flow.forward(tf.constant(z))))), name
    w_zero = PlanarFlow(np.ones(d, dtype), np.zeros(d, dtype), dtype(0.3))
    np.testing.assert_allclose(w_zero.forward(z), z + np.tanh(0.3), rtol=1e-6)
    np.testing.assert_array_equal(w_zero.forward_log_det_jacobian(z, 1), 0.0)


def test_forward_inverse_backward_error_on_ill_conditioned_flows():
    """Even where the map is nearly flat (w.u_hat ~ -1), forward(inverse(y)) reproduces y."""
    rng = np.random.default_rng(4)
    d, batch = 5, 256
    w = rng.normal(size=(batch, d))
    u = -rng.uniform(5, 30, size=(batch, 1)) * w / np.sum(w * w, -1, keepdims=True)
    b = rng.normal(size=batch)
    flow = PlanarFlow(*(x.astype(np.float32) for x in (u, w, b)))
    y = tf.constant(rng.uniform(-10, 10, size=(batch, d)), tf.float32)
    y_again = flow.forward(tf.identity(flow.inverse(y)))
    assert np.max(np.abs(y_again - y)) <= 1e-4


def test_inverse_jacobian_is_inverse_of_forward_jacobian():
    rng = np.random.default_rng(5)
    d, batch = 5, 8
    flow = random_flow(rng, d, np.float64, batch=batch)
    z = tf.constant(rng.uniform(-3, 3, size=(batch, d)))
    y = tf.identity(flow.forward(z))
    with tf.GradientTape() as tape:
        tape.watch(y)
        z_back = flow.inverse(y)
    jac_inverse = tape.batch_jacobian(z_back, y)
    with tf.GradientTape() as tape:
        tape.watch(z)
        y2 = flow.forward(z)
    jac_forward = tape.batch_jacobian(y2, z)
    eye = np.broadcast_to(np.eye(d), (batch, d, d))
    np.testing.assert_allclose(jac_inverse @ jac_forward, eye, atol=1e-10)


def test_inverse_parameter_gradients_match_finite_differences():
    rng = np.random.default_rng(6)
    d, batch = 4, 6
    params = [rng.normal(size=d), rng.normal(size=d) / 2, np.array(0.3)]
    y = tf.constant(rng.uniform(-5, 5, size=(batch, d)))
    weights = tf.constant(rng.normal(size=(batch, d)))

    def loss(p):
        return tf.reduce_sum(weights * PlanarFlow(*p).inverse(tf.identity(y)))

    tensors = [tf.constant(p) for p in params]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = loss(tensors)
    grads = tape.gradient(value, tensors)
    def loss_with(i, flat):
        return loss([flat.reshape(params[i].shape) if k == i else params[k] for k in range(3)])

    h = 1e-6
    for i, p in enumerate(params):
        flat = p.reshape(-1)
        numeric = np.zeros_like(flat)
        for j in range(flat.size):
            step = np.zeros_like(flat)
            step[j] = h
            numeric[j] = (loss_with(i, flat + step) - loss_with(i, flat - step)) / (2 * h)
        np.testing.assert_allclose(np.reshape(grads[i], -1), numeric, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# PlanarFlows layer


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_flows": -1, "latent_dim": 2}, "Received: num_flows=-1"),
        ({"num_flows": 2.5, "latent_dim": 2}, "Received: num_flows=2.5"),
        ({"num_flows": 2, "latent_dim": 0}, "Received: latent_dim=0"),
        ({"num_flows": 2, "latent_dim": 2, "mode": "radial"}, "Received: mode='radial'"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PlanarFlows(**kwargs)


def test_layer_amortized_requires_features():
    layer = PlanarFlows(2, 3, mode="amortized")
    with pytest.raises(ValueError, match="features"):
        layer(tf.zeros((4, 3)))


@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_layer_with_zero_flows_is_identity(mode):
    z = tf.random.normal((4, 3))
    z_k, log_det = PlanarFlows(0, 3, mode=mode)(z, features=tf.ones((4, 2)))
    np.testing.assert_array_equal(z_k, z)
    np.testing.assert_array_equal(log_det, np.zeros(4))


@pytest.mark.parametrize("mode", ["global", "amortized"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_log_det_matches_jacobian_of_composed_map(mode, dtype):
    layer, z0, features = make_layer(PlanarFlows, mode, dtype)
    z_k, log_det = layer(z0, features=features)
    expected = jacobian_slogdet(lambda z: layer(z, features=features)[0], z0)
    atol = LOGDET_ATOL[np.dtype(dtype).type]
    assert np.max(np.abs(log_det - expected)) <= atol
    z_back = layer.inverse(tf.identity(z_k), features=features)
    assert np.max(np.abs(z_back - z0)) <= ROUNDTRIP_ATOL[np.dtype(dtype).type]
    if mode == "amortized":  # per-example flows really differ: not the same map for every row
        swapped = layer(z0, features=tf.reverse(features, [0]))[0]
        assert np.max(np.abs(swapped - z_k)) > 1e-3


@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_layer_gradients_reach_every_weight(mode):
    layer, z0, features = make_layer(PlanarFlows, mode)
    with tf.GradientTape() as tape:
        z_k, log_det = layer(z0, features=features)
        loss = tf.reduce_sum(tf.square(z_k)) - tf.reduce_sum(log_det)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == (3 if mode == "global" else 2)
    for variable, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, variable.path
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), variable.path


@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_layer_config_round_trip(mode):
    layer = PlanarFlows(3, 4, mode=mode, name="flows")
    config = layer.get_config()
    assert {k: config[k] for k in ("num_flows", "latent_dim", "mode")} == {"num_flows": 3, "latent_dim": 4, "mode": mode}
    clone = PlanarFlows.from_config(config)
    assert clone.get_config() == config
    assert layer.compute_output_shape((None, 4)) == ((None, 4), (None,))


@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_layer_keras_file_round_trip(mode, tmp_path):
    z_in = keras.Input((4,), name="z0")
    if mode == "global":
        inputs, outputs = z_in, PlanarFlows(3, 4, mode=mode)(z_in)
    else:
        h_in = keras.Input((6,), name="h")
        inputs, outputs = [z_in, h_in], PlanarFlows(3, 4, mode=mode)(z_in, features=h_in)
    model = keras.Model(inputs, outputs)
    _, z0, features = make_layer(PlanarFlows, mode)
    for variable in model.weights:  # non-initial values, so a load that re-initializes would fail
        variable.assign(np.random.default_rng(7).normal(size=variable.shape) * 0.5)
    args = z0 if mode == "global" else [z0, features]
    path = tmp_path / "flows.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for before, after in zip(model(args), reloaded(args)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("fan_in_scaled", [True, False])
def test_one_adam_step_moves_an_amortized_parameter_as_far_as_its_scaling_allows(fan_in_scaled):
    """Adam's first step moves every weight by lr g / (|g| + eps) <= lr, so a parameter predicted from features h [F]
    as b + gain * h.k moves by at most lr (1 + gain sum_f |h_f|): lr (1 + mean |h|) with gain 1 / F, about a global
    parameter's step; unscaled (layers saved before the option) up to lr (1 + sum |h|), here about 1,900 lr."""
    rng = np.random.default_rng(0)
    fan_in, d, lr = 4096, 8, 1e-3
    features = tf.constant(np.abs(rng.normal(size=(16, fan_in))).astype(np.float32) * 0.6)
    z0 = tf.constant(rng.normal(size=(16, d)).astype(np.float32))
    layer = PlanarFlows(2, d, mode="amortized", fan_in_scaled=fan_in_scaled)
    layer(z0, features=features)
    gain = 1.0 / fan_in if fan_in_scaled else 1.0
    assert layer.feature_gain == gain
    # the predicted parameters start alike either way: effective kernel variance 1e-4 / F
    effective_kernel = layer.dense.kernel.numpy() * gain
    np.testing.assert_allclose(effective_kernel.std(), np.sqrt(1e-4 / fan_in), rtol=0.02)

    def parameters():
        return layer.dense(features * gain).numpy()

    before = parameters()
    optimizer = keras.optimizers.Adam(lr)
    with tf.GradientTape() as tape:
        z_k, log_det = layer(z0, features=features)
        loss = tf.reduce_sum(tf.square(z_k)) - tf.reduce_sum(log_det)
    optimizer.apply(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights)
    moved = np.max(np.abs(parameters() - before))
    mean_abs, sum_abs = np.abs(features.numpy()).mean(axis=1), np.abs(features.numpy()).sum(axis=1)
    if fan_in_scaled:
        assert moved <= lr * (1 + mean_abs.max()) * 1.001
    else:
        assert lr * (1 + mean_abs.max()) * 100 < moved <= lr * (1 + sum_abs.max()) * 1.001


def test_a_layer_config_saved_before_fan_in_scaling_reads_features_unscaled():
    config = PlanarFlows(3, 4, mode="amortized").get_config()
    assert config["fan_in_scaled"] is True
    del config["fan_in_scaled"]
    assert PlanarFlows.from_config(config).fan_in_scaled is False
