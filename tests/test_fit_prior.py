"""The fitted Gaussian prior at the end of training, and python -m facevae.fit_prior for an existing run."""
import json
import os

import numpy as np
import tensorflow as tf

from facevae import prior
from facevae.config import preset
from facevae.trainer import fit


def _tiny(tmp_path, name, prior_kind):
    config = preset("synthetic")
    config.data.image_size = config.model.image_size = 32
    config.data.train_count, config.data.validation_count = 192, 64
    config.model.latent_dim, config.model.filters = 8, (8, 16, 16, 16)
    config.model.sigma, config.model.prior = "learned", prior_kind
    config.train.epochs, config.train.batch_size = 2, 32
    config.train.output_dir, config.train.export_dir = str(tmp_path / "runs"), str(tmp_path / "saved_models")
    config.train.run_name = name
    return config.validate()


def _export_samples_through(run_dir, noise):
    exported = tf.saved_model.load(os.path.join(run_dir, "export"))
    fitted = prior.load_prior(os.path.join(run_dir, "prior.npz"))
    got = exported.sample(tf.constant(noise))["images"].numpy()
    expected = exported.decode(tf.constant(fitted.transform(noise)))["images"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_training_fits_the_prior_and_the_export_samples_through_it(tmp_path):
    result = fit(_tiny(tmp_path, "fitted", "gaussian"), verbose=0)
    info = json.load(open(os.path.join(result.run_dir, "metrics.json")))["prior"]
    assert info["train_codes"] == 192 and info["kind"] == "gaussian"
    assert info["validation_log_prob"] > info["validation_log_prob_standard_normal"]
    noise = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    _export_samples_through(result.run_dir, noise)
    history = open(os.path.join(result.run_dir, "history.csv")).readline()
    assert "sigma" in history.split(",") and "sigma_2" in history  # the learned sigma is logged


def test_fit_prior_cli_gives_a_standard_prior_run_a_fitted_prior(tmp_path, capsys):
    from facevae import fit_prior

    result = fit(_tiny(tmp_path, "plain", "standard"), verbose=0)
    assert not os.path.exists(os.path.join(result.run_dir, "prior.npz"))
    assert fit_prior.main(["--model", result.run_dir]) == 0
    assert "fitted a Gaussian prior to 192 training codes" in capsys.readouterr().out
    assert json.load(open(os.path.join(result.run_dir, "config.json")))["model"]["prior"] == "gaussian"
    noise = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    _export_samples_through(result.run_dir, noise)
