"""The SavedModel export: reloaded in a fresh process without facevae, it matches the in-memory model."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tiny_config import tiny_model_config
from facevae.model.vae import FaceVAE
from facevae.export.serving import ENDPOINTS, export_model

_RELOAD = """
import json, sys
import numpy as np
import tensorflow as tf
assert "facevae" not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
out = {}
for n in (2, 5):
    enc = loaded.encode(tf.constant(inputs["images"][:n]))
    for key in ("mean", "log_var", "z"):
        out[f"encode_{key}_{n}"] = enc[key].numpy()
    out[f"code_{n}"] = loaded.code(tf.constant(inputs["images"][:n]))["z"].numpy()
    out[f"decode_{n}"] = loaded.decode(tf.constant(inputs["z"][:n]))["images"].numpy()
    out[f"reconstruct_{n}"] = loaded.reconstruct(tf.constant(inputs["images"][:n]))["images"].numpy()
    out[f"sample_{n}"] = loaded.sample(tf.constant(inputs["z"][:n]))["images"].numpy()
    out[f"tempered_{n}"] = loaded.sample_tempered(tf.constant(inputs["z"][:n]), tf.constant(0.6))["images"].numpy()
out["serving_default"] = loaded.signatures["serving_default"](images=tf.constant(inputs["images"][:2]))["images"].numpy()
np.savez(sys.argv[3], **out)
print(json.dumps(sorted(loaded.signatures.keys())))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = FaceVAE(tiny_model_config(flows=2, flow_mode="amortized", prior="gmm", prior_components=2,
                                      refine_steps=3, refine_rate=0.05), seed=0)
    rng = np.random.default_rng(1)  # a fitted prior: the sample endpoints map their noise through it
    model.prior.set_mixture([0.3, 0.7], rng.normal(size=(2, 6)),
                            np.tril(rng.normal(size=(2, 6, 6)), -1) + np.stack([np.diag(rng.uniform(0.5, 2, 6))] * 2))
    directory = export_model(model, str(tmp / "run"))
    return model, directory, tmp


@pytest.mark.integration
def test_reload_in_a_fresh_process_matches_at_two_batch_sizes(exported):
    model, directory, tmp = exported
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(5, 32, 32, 3)).astype(np.float32)
    z = rng.normal(size=(5, 6)).astype(np.float32)
    np.savez(tmp / "inputs.npz", images=images, z=z)
    script = tmp / "reload.py"
    script.write_text(_RELOAD)
    done = subprocess.run([sys.executable, str(script), directory, str(tmp / "inputs.npz"), str(tmp / "out.npz")],
                          capture_output=True, text=True, timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    signatures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(ENDPOINTS) | {"serving_default"} <= set(signatures)
    out = np.load(tmp / "out.npz")
    for n in (2, 5):
        mean, log_var, zk = (t.numpy() for t in model.encode(images[:n]))
        np.testing.assert_allclose(out[f"encode_mean_{n}"], mean, atol=1e-5)
        np.testing.assert_allclose(out[f"encode_log_var_{n}"], log_var, atol=1e-5)
        np.testing.assert_allclose(out[f"encode_z_{n}"], zk, atol=1e-5)
        np.testing.assert_allclose(out[f"code_{n}"], model.code(images[:n]).numpy(), atol=1e-4)
        assert np.abs(out[f"code_{n}"] - zk).max() > 0.05  # refined: 3 steps of about 0.05 each
        np.testing.assert_allclose(out[f"decode_{n}"], model.decode(z[:n]).numpy(), atol=1e-5)
        np.testing.assert_allclose(out[f"sample_{n}"], model.sample(noise=z[:n]).numpy(), atol=1e-5)
        np.testing.assert_allclose(out[f"tempered_{n}"], model.sample(noise=z[:n], temperature=0.6).numpy(), atol=1e-5)
        assert not np.allclose(out[f"sample_{n}"], model.decode(z[:n]).numpy(), atol=1e-3)  # the prior is used
        np.testing.assert_allclose(out[f"reconstruct_{n}"], model.reconstruct(images[:n]).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["serving_default"], model.reconstruct(images[:2]).numpy(), atol=1e-5)


@pytest.mark.integration
def test_saved_model_cli_lists_the_endpoints(exported):
    _, directory, _ = exported
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    if cli is None:
        pytest.skip("saved_model_cli is not installed beside this Python")
    done = subprocess.run([cli, "show", "--dir", directory, "--all"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in (*ENDPOINTS, "serving_default"):
        assert f"signature_def['{name}']" in done.stdout


def test_export_replaces_atomically(exported):
    model, directory, tmp = exported
    export_model(model, directory, include_keras=False)
    assert os.path.exists(os.path.join(directory, "saved_model.pb"))
    assert not os.path.exists(os.path.join(directory, "model.keras"))
    assert [n for n in os.listdir(tmp) if n.startswith(".run")] == []
