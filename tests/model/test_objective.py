"""One objective: FaceVAE.objective is what model.fit, the distributed steps and evaluation compute; LOSS_TERMS
names the logged terms everywhere; LIKELIHOODS is the one likelihood registry."""
import numpy as np
import pytest
import tensorflow as tf
import keras

from facevae import config as config_module
from facevae.analysis import metrics
from facevae.model import losses
from facevae.model.objective import LOSS_TERMS, Objective
from facevae.model.vae import FaceVAE
from facevae.training import distributed, loop
from tiny_config import tiny_model_config


def _counting(monkeypatch):
    calls = []
    original = FaceVAE.objective

    def objective(self, *args, **kwargs):
        calls.append(kwargs.get("training", args[1] if len(args) > 1 else False))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FaceVAE, "objective", objective)
    return calls


def test_objective_terms_and_the_kl_weight():
    model = FaceVAE(tiny_model_config(flows=2), seed=0)
    images = tf.random.uniform([4, 32, 32, 3], seed=1)
    noise = tf.random.normal([4, 6], seed=2)
    terms = model.objective(images, noise=noise)
    assert isinstance(terms, Objective) and Objective._fields[:4] == LOSS_TERMS
    np.testing.assert_array_equal(terms.loss, terms.reconstruction + terms.kl)  # beta = 1 outside training
    np.testing.assert_array_equal(terms.kl, terms.log_q0 - terms.log_det - terms.log_prior)
    model.kl_weight.assign(0.25)
    warm = model.objective(images, training=True, noise=noise)
    np.testing.assert_allclose(warm.loss, warm.reconstruction + 0.25 * warm.kl, rtol=1e-6)
    elbo = model.elbo_terms(images, training=True, noise=noise)  # elbo_terms: always beta = 1
    np.testing.assert_allclose(elbo["loss"], elbo["reconstruction"] + elbo["kl"], rtol=1e-6)


def test_fit_distributed_steps_and_evaluation_all_call_the_objective(monkeypatch):
    calls = _counting(monkeypatch)
    model = FaceVAE(tiny_model_config(), seed=0)
    images = tf.random.uniform([8, 32, 32, 3], seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(8), epochs=1, verbose=0).history
    # (counted when traced: a tf.function may trace more than once)
    assert set(logs) == set(LOSS_TERMS) and set(calls) == {True}
    assert set(model.evaluate(images, verbose=0, return_dict=True)) == set(LOSS_TERMS) and calls[-1] is False
    strategy = tf.distribute.get_strategy()
    train_step = distributed.make_train_step(model, strategy, seed=0)
    eval_step = distributed.make_eval_step(model, strategy, seed=0)
    before = len(calls)
    sums = train_step(images)
    assert set(sums) == set(distributed.SUMMED) == {*LOSS_TERMS, "count"} and set(calls[before:]) == {True}
    assert set(loop.evaluate(eval_step, [images])) == set(LOSS_TERMS) and calls[-1] is False
    before = len(calls)
    metrics.negative_elbo(model, images.numpy())
    assert set(calls[before:]) == {False}


def test_likelihood_registry_drives_config_cli_and_model():
    assert config_module.LIKELIHOODS == tuple(losses.LIKELIHOODS) == ("gaussian", "mse", "bernoulli")
    from facevae.train import build_parser

    choices = next(a.choices for a in build_parser()._actions if a.dest == "likelihood")
    assert tuple(choices) == tuple(losses.LIKELIHOODS)
    with pytest.raises(ValueError, match=r"Unknown likelihood 'laplace'; expected one of \['gaussian', 'mse'"):
        tiny_model_config(likelihood="laplace").validate()
    images = tf.random.uniform([3, 32, 32, 3], seed=4)
    noise = tf.random.normal([3, 6], seed=5)
    for name, entry in losses.LIKELIHOODS.items():
        model = FaceVAE(tiny_model_config(likelihood=name, sigma=0.2, r_loss_factor=50.0), seed=0)
        terms = model.objective(images, noise=noise)
        logits = model.decode_logits(terms.zk)
        np.testing.assert_allclose(terms.reconstruction, entry.nll(images, logits, model.config), rtol=1e-6)
        np.testing.assert_allclose(terms.reconstruction,
                                   losses.reconstruction_loss(name, images, logits, 0.2, 50.0), rtol=1e-6)
