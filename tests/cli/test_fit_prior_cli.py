"""python -m facevae.fit_prior gives a finished run a fitted prior (or refits it) and re-exports; python -m
facevae.sample --prior fitted|standard draws through it or around it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from facevae import fit_prior, sample
from facevae.model import prior
from facevae.training.trainer import fit

pytestmark = pytest.mark.integration  # trains a model in this process


def test_fit_prior_gives_a_standard_prior_run_a_mixture_and_sample_uses_it(tiny_config, tmp_path, capsys):
    result = fit(tiny_config("plain", epochs=1), verbose=0)
    run = result.run_dir
    assert not os.path.exists(os.path.join(run, "prior.npz"))
    assert fit_prior.main(["--model", run, "--prior", "gmm", "--prior-components", "2"]) == 0
    out = capsys.readouterr().out
    assert "fitted a gmm prior: 2 full-covariance Gaussian(s) to 192 training codes" in out
    assert "epoch-001.keras keeps its 'standard' prior (another kind or size); the export has the new one" in out
    saved = json.load(open(os.path.join(run, "config.json")))["model"]
    assert (saved["prior"], saved["prior_components"]) == ("gmm", 2)
    info = json.load(open(os.path.join(run, "prior.json")))
    assert info["validation_log_prob"] > info["validation_log_prob_standard_normal"]
    assert info["model"].endswith("model.keras")
    exported = tf.saved_model.load(os.path.join(run, "export"))
    fitted = prior.load_prior(os.path.join(run, "prior.npz"))
    noise = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(exported.sample(tf.constant(noise))["images"].numpy(),
                               exported.decode(fitted(noise))["images"].numpy(), atol=1e-5)
    # the export is still this run's (its marker), so training the run further may replace it
    assert json.load(open(os.path.join(run, "export", ".facevae-export.json")))["run_dir"] == os.path.realpath(run)

    pictures = {}
    for kind in ("fitted", "standard"):
        path = str(tmp_path / f"{kind}.png")
        assert sample.main(["--model", run, "--n", "4", "--prior", kind, "--temperature", "0.8", "--out", path]) == 0
        pictures[kind] = np.asarray(Image.open(path), np.float32)
    assert np.abs(pictures["fitted"] - pictures["standard"]).mean() > 0.5  # different latents were decoded

    # refit: the same kind again, from the re-exported model.keras
    assert fit_prior.main(["--model", run]) == 0
    out = capsys.readouterr().out
    assert "2 full-covariance Gaussian(s)" in out and "epoch-001.keras keeps its 'standard' prior" in out


def test_fit_prior_bad_run_is_one_line_and_exit_code_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "facevae.fit_prior", "--model", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"python -m facevae.fit_prior: error: --model {tmp_path / 'nope'}: "
                                                    "no config.json there; pass a run directory of python -m "
                                                    "facevae.train")
