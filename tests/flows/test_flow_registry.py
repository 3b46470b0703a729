"""The flow registry and the generic Flows layer: every registered flow type stacks, inverts and saves; `.keras`
files written before the registry (``facevae>PlanarFlows``) still load and give the same numbers."""
import pathlib

import keras
import numpy as np

import facevae.flows  # noqa: F401  (registers the serializable layers)

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def test_planar_flows_keras_file_from_before_the_registry_loads_unchanged():
    """tests/fixtures/planar_flows_51c631f.keras was saved by commit 51c631f's PlanarFlows (global and amortized)."""
    expected = np.load(FIXTURES / "planar_flows_51c631f.npz")
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
