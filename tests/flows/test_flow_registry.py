"""The flow registry and the generic Flows layer: every registered flow type stacks, inverts and saves; `.keras`
files written before the registry (``facevae>PlanarFlows``) still load and give the same numbers."""
import importlib.util
import pathlib

import keras
import numpy as np

import facevae.flows  # noqa: F401  (registers the serializable layers)

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def test_planar_flows_keras_file_from_before_the_registry_loads_unchanged():
    """tests/fixtures/planar_flows_51c631f.keras was saved by commit 51c631f's PlanarFlows (global and amortized)."""
    spec = importlib.util.spec_from_file_location("recorded", FIXTURES / "planar_flows_51c631f_outputs.py")
    recorded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorded)
    expected = {name: np.asarray(value, np.float32) for name, value in recorded.RECORDED.items()}
    model = keras.models.load_model(FIXTURES / "planar_flows_51c631f.keras")
    zk_global, log_det_global, zk_amortized, log_det_amortized = model([expected["z"], expected["features"]])
    np.testing.assert_array_equal(zk_global, expected["zk_global"])
    np.testing.assert_array_equal(log_det_global, expected["log_det_global"])
    np.testing.assert_array_equal(zk_amortized, expected["zk_amortized"])
    np.testing.assert_array_equal(log_det_amortized, expected["log_det_amortized"])
    layers = {layer.name: layer for layer in model.layers}
    np.testing.assert_allclose(layers["global_flows"].inverse(expected["zk_global"]), expected["inverse_global"],
                               atol=1e-6)
    np.testing.assert_allclose(layers["amortized_flows"].inverse(expected["zk_amortized"], expected["features"]),
                               expected["inverse_amortized"], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Every registered flow type, through the shared laws of bijector_laws.py

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from facevae.flows import FLOW_TYPES, Flows, flow_spec  # noqa: E402
from facevae.config import ModelConfig  # noqa: E402

from bijector_laws import (  # noqa: E402
    FLOW_TYPES as TYPES_UNDER_TEST, LOGDET_ATOL, ROUNDTRIP_ATOL, check_bijector, jacobian_slogdet,
    make_layer, random_bijector, random_parameters, test_points,
)


def test_every_registered_flow_type_is_under_test():
    assert sorted(TYPES_UNDER_TEST) == sorted(FLOW_TYPES)


def test_unknown_flow_type_is_rejected_with_the_registered_names():
    with pytest.raises(ValueError, match=r"Received: flow_type='nope'"):
        Flows(2, 3, flow_type="nope")
    with pytest.raises(ValueError, match=r"Unknown flow type 'nope'; expected one of \['planar'"):
        ModelConfig(flow_type="nope").validate()


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [2, 5, 50])
@pytest.mark.parametrize("params", ["global", "amortized"])
def test_bijector_laws(flow_type, dtype, d, params):
    """log-det vs autodiff slogdet within 1e-4 (float32) / 1e-6 (float64), round trip within 1e-4 / 1e-9 for
    |z_i| <= 10; amortized = one parameter set per example (batched parameters)."""
    rng = np.random.default_rng(d)
    batch = 16
    flow = random_bijector(flow_type, rng, d, dtype, batch=None if params == "global" else batch)
    check_bijector(flow, test_points(rng, batch, d), dtype)


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_for_large_inputs_and_parameters(flow_type, dtype):
    """Outputs, log-dets and parameter gradients stay finite for |z| up to 1e4 and parameters up to 1e3."""
    rng = np.random.default_rng(3)
    d, batch = 5, 64
    z = tf.constant(rng.uniform(-1e4, 1e4, size=(batch, d)).astype(dtype))
    for scale in (1e-3, 1.0, 1e3):
        params = {k: tf.constant(v) for k, v in random_parameters(flow_type, rng, d, dtype, scale=scale).items()}
        with tf.GradientTape() as tape:
            tape.watch(list(params.values()))
            flow = flow_spec(flow_type).bijector(**params)
            outputs = [flow.forward(z), flow.forward_log_det_jacobian(z, 1), flow.inverse(tf.identity(z)),
                       flow.inverse_log_det_jacobian(tf.identity(z), 1)]
            total = sum(tf.reduce_sum(o) for o in outputs)
        grads = tape.gradient(total, list(params.values()))
        for value in outputs + grads:
            assert np.all(np.isfinite(value)), (flow_type, scale)


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
def test_invertibility_constraint_holds_for_any_parameters(flow_type):
    """The map preserves orientation (det J > 0) for unconstrained parameters over six orders of magnitude:
    the parameterization enforces the type's invertibility constraint (planar w.u_hat >= -1, ...)."""
    rng = np.random.default_rng(11)
    d, batch = 3, 256
    for scale in (1e-2, 1.0, 1e2):
        flow = random_bijector(flow_type, rng, d, np.float64, batch=batch, scale=scale)
        z = tf.constant(test_points(rng, batch, d, extent=3.0 * scale))
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = flow.forward(tf.identity(z))
        sign, _ = tf.linalg.slogdet(tape.batch_jacobian(y, z))
        assert np.all(sign.numpy() >= 0), (flow_type, scale, np.min(sign))


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
@pytest.mark.parametrize("mode", ["global", "amortized"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_log_det_and_inverse_of_the_composed_map(flow_type, mode, dtype):
    layer, z0, features = make_layer(Flows, mode, dtype, flow_type=flow_type)
    z_k, log_det = layer(z0, features=features)
    expected = jacobian_slogdet(lambda z: layer(z, features=features)[0], z0)
    assert np.max(np.abs(log_det - expected)) <= LOGDET_ATOL[np.dtype(dtype).type]
    z_back = layer.inverse(tf.identity(z_k), features=features)
    assert np.max(np.abs(z_back - z0)) <= ROUNDTRIP_ATOL[np.dtype(dtype).type]
    if mode == "amortized":  # per-example flows really differ
        assert np.max(np.abs(layer(z0, features=tf.reverse(features, [0]))[0] - z_k)) > 1e-3


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_layer_gradients_reach_every_weight_and_it_saves(flow_type, mode, tmp_path):
    layer, z0, features = make_layer(Flows, mode, flow_type=flow_type)
    with tf.GradientTape() as tape:
        z_k, log_det = layer(z0, features=features)
        loss = tf.reduce_sum(tf.square(z_k)) - tf.reduce_sum(log_det)
    grads = tape.gradient(loss, layer.trainable_weights)
    expected = len(flow_spec(flow_type).parameters) if mode == "global" else 2
    assert len(grads) == expected
    for variable, grad in zip(layer.trainable_weights, grads):
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad != 0), variable.path
    config = layer.get_config()
    assert config["flow_type"] == flow_type and Flows.from_config(config).get_config() == config
    z_in, h_in = keras.Input((4,)), keras.Input((6,))
    model = keras.Model([z_in, h_in], Flows(3, 4, mode=mode, flow_type=flow_type)(z_in, features=h_in))
    for variable in model.weights:
        variable.assign(np.random.default_rng(7).normal(size=variable.shape) * 0.5)
    model.save(tmp_path / "flows.keras")
    reloaded = keras.models.load_model(tmp_path / "flows.keras")
    for before, after in zip(model([z0, features]), reloaded([z0, features])):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("flow_type", TYPES_UNDER_TEST)
def test_layer_starts_as_a_tame_invertible_map(flow_type):
    """Initial values (global weights, and the amortized Dense bias) give finite, moderate log-dets and maps."""
    z0 = tf.constant(np.random.default_rng(0).normal(size=(64, 8)), tf.float32)
    for mode in ("global", "amortized"):
        layer = Flows(4, 8, mode=mode, flow_type=flow_type)
        z_k, log_det = layer(z0, features=tf.ones((64, 5)))
        assert np.all(np.isfinite(z_k)) and np.all(np.abs(log_det) < 4.0 * 4), (mode, np.max(np.abs(log_det)))
        assert np.max(np.abs(z_k - z0)) < 10.0


def test_flow_type_flag_reaches_config_json_and_old_config_json_means_planar(tmp_path):
    import json

    from facevae import flows2d, train
    from facevae.config import RunConfig

    for parser in (train.build_parser(), flows2d.build_parser()):
        choices = next(a.choices for a in parser._actions if a.dest == "flow_type")
        assert list(choices) == list(FLOW_TYPES)
    last = list(FLOW_TYPES)[-1]
    config = train.config_from_args(train.build_parser().parse_args(["--flows", "2", "--flow-type", last]))
    path = tmp_path / "config.json"
    config.save(str(path))
    saved = json.loads(path.read_text())
    assert saved["model"]["flow_type"] == last and RunConfig.load(str(path)).model.flow_type == last
    del saved["model"]["flow_type"]  # a config.json written before flow types existed
    path.write_text(json.dumps(saved))
    assert RunConfig.load(str(path)).model.flow_type == "planar"
