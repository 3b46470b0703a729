"""fit(): the run directory, resume without repeated or skipped epochs, and stopping on a non-finite loss."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from facevae.analysis import plots
from facevae.config import preset
from facevae.data.datasets import synthetic_datasets
from facevae.training.trainer import NonFiniteLoss, fit, latest_checkpoint

pytestmark = pytest.mark.integration  # trains models (in this process or in subprocesses)


def test_fit_writes_the_whole_run_directory(tiny_config, tmp_path):
    result = fit(tiny_config(), verbose=0)
    run = result.run_dir
    for name in ("config.json", "history.csv", "loss.png", "metrics.json", "samples/epoch-003.png",
                 "checkpoints/epoch-003.keras", "export/saved_model.pb", "export/model.keras"):
        assert os.path.exists(os.path.join(run, name)), name
    assert os.listdir(os.path.join(run, "tensorboard"))
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["optimizer_steps"] == 3 * 6
    assert metrics["reconstruction_mse"] > 0 and metrics["mean_image_mse"] > 0
    assert metrics["mse_ratio"] == pytest.approx(metrics["mean_image_mse"] / metrics["reconstruction_mse"])
    assert set(metrics["validation"]) == {"loss", "reconstruction", "kl", "log_det"}
    assert not [n for n in os.listdir(os.path.join(run, "checkpoints")) if ".tmp" in n]


class _InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def test_resume_continues_at_the_next_epoch_with_optimizer_state_and_new_inference_settings(tiny_config, tmp_path):
    config = tiny_config(epochs=4, kl_warmup_epochs=4)
    with pytest.raises(KeyboardInterrupt):
        fit(config, callbacks=[_InterruptAfter(2)], verbose=0)
    run = os.path.join(config.train.output_dir, "tiny")
    assert latest_checkpoint(run)[1] == 2
    stopped = keras.models.load_model(latest_checkpoint(run)[0])
    assert int(stopped.optimizer.iterations.numpy()) == 2 * 6

    config.model.refine_steps = 2  # an inference setting may change on resume, and reaches the model and export
    result = fit(config, resume=run, verbose=0)
    assert result.model.config.refine_steps == 2
    assert keras.models.load_model(os.path.join(run, "export", "model.keras")).config.refine_steps == 2
    assert json.load(open(os.path.join(run, "config.json")))["model"]["refine_steps"] == 2
    history = plots.read_history(os.path.join(run, "history.csv"))
    assert history["epoch"] == [0, 1, 2, 3]
    assert result.metrics["optimizer_steps"] == 4 * 6
    assert result.metrics["train_seconds"] is None  # the interrupted session wrote no metrics.json: unknown
    assert float(result.model.kl_weight.numpy()) == 1.0
    best = json.load(open(os.path.join(run, "best_checkpoint.json")))["epoch"]  # kept: newest 3 and the best
    kept = sorted(os.listdir(os.path.join(run, "checkpoints")))
    assert kept == sorted({f"epoch-00{i}.keras" for i in (2, 3, 4, best)})


class _KLWeightAndLogs(keras.callbacks.Callback):
    """The model's KL weight at the start of every epoch, and the epoch's logs."""

    def __init__(self):
        super().__init__()
        self.weights, self.logs = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.weights.append(float(self.model.kl_weight.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def test_kl_weight_scales_the_training_kl_after_warmup_and_validation_stays_the_elbo(tiny_config):
    seen = _KLWeightAndLogs()
    fit(tiny_config(kl_weight=2.0, kl_warmup_epochs=2), callbacks=[seen], verbose=0)
    assert seen.weights == [1.0, 2.0, 2.0]  # beta * min(1, (epoch + 1) / 2)
    for beta, logs in zip(seen.weights, seen.logs):
        assert logs["loss"] == pytest.approx(logs["reconstruction"] + beta * logs["kl"], rel=1e-4)
        assert logs["val_loss"] == pytest.approx(logs["val_reconstruction"] + logs["val_kl"], rel=1e-4)


class _WeightsAfterEachStep(keras.callbacks.Callback):
    """The trainable weights after every optimizer step, in model.trainable_variables order."""

    def __init__(self, steps: list):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([v.numpy().copy() for v in self.model.trainable_variables])


def _moving_average(steps: list, momentum: float) -> list:
    """a_1 = w_1, a_t = m a_(t-1) + (1 - m) w_t, per variable, in float64."""
    average = [w.astype(np.float64) for w in steps[0]]
    for weights in steps[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    return average


def _assert_weights(model, expected):
    for variable, value in zip(model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-4, atol=1e-6, err_msg=variable.path)


def test_ema_momentum_exports_the_moving_average_of_the_weights_and_survives_resume(tiny_config, tmp_path):
    config = tiny_config(epochs=3, ema_momentum=0.7)
    steps = []
    with pytest.raises(KeyboardInterrupt):
        fit(config, callbacks=[_WeightsAfterEachStep(steps), _InterruptAfter(1)], verbose=0)
    run = os.path.join(config.train.output_dir, "tiny")
    result = fit(config, resume=run, callbacks=[_WeightsAfterEachStep(steps)], verbose=0)
    assert len(steps) == 3 * 6 and result.metrics["optimizer_steps"] == 3 * 6
    expected = _moving_average(steps, 0.7)
    assert max(np.abs(a - w).max() for a, w in zip(expected, steps[-1])) > 1e-3  # the average is not the last step
    _assert_weights(result.model, expected)
    _assert_weights(keras.models.load_model(os.path.join(run, "export", "model.keras")), expected)
    _assert_weights(keras.models.load_model(latest_checkpoint(run)[0]), expected)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    config = tiny_config(epochs=4)
    data = synthetic_datasets(config.data, config.train.batch_size, config.train.seed)
    good = np.random.default_rng(0).uniform(size=(64, 32, 32, 3)).astype(np.float32)
    poisoned = good.copy()
    poisoned[40] = np.nan
    epochs = [tf.data.Dataset.from_tensor_slices(good).batch(32)] * 2 + [tf.data.Dataset.from_tensor_slices(poisoned).batch(32)]
    data.train = epochs[0].concatenate(epochs[1]).concatenate(epochs[2])
    config.train.steps_per_epoch = 2
    with pytest.raises(NonFiniteLoss, match=r"epoch 3, batch 2.*epoch-002\.keras \(epoch 2\)"):
        fit(config, data=data, verbose=0)
    run = os.path.join(config.train.output_dir, "tiny")
    assert latest_checkpoint(run)[1] == 2
    restored = keras.models.load_model(latest_checkpoint(run)[0])
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())


def test_loss_plot_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    matplotlib.use("svg")
    try:
        plots.plot_loss_curves({"epoch": [0, 1], "loss": [3.0, 2.0], "val_loss": [3.5, 2.5]}, str(tmp_path / "l.png"))
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "l.png").stat().st_size > 1000
    finally:
        matplotlib.use("agg")


def test_evaluate_reconstruction_stops_at_the_limit():
    from facevae.config import ModelConfig
    from facevae.model.vae import FaceVAE
    from facevae.training.trainer import evaluate_reconstruction

    model = FaceVAE(ModelConfig(image_size=32, channels=1, latent_dim=4, filters=(4, 4, 4, 4)), seed=0)
    images = np.random.default_rng(0).random((12, 32, 32, 1)).astype(np.float32)
    mean_image = images.mean(0)
    data = tf.data.Dataset.from_tensor_slices(images).batch(4)
    limited = evaluate_reconstruction(model, data, mean_image, limit=5)  # whole batches: the first 8 images
    expected = np.mean((model.reconstruct(images[:8]).numpy() - images[:8]) ** 2)
    assert limited["reconstruction_mse"] == pytest.approx(expected, rel=1e-5)
    assert evaluate_reconstruction(model, data, mean_image)["mean_image_mse"] == pytest.approx(
        np.mean((images - mean_image) ** 2), rel=1e-5)
