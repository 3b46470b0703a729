"""Training a FaceVAE: run directory, checkpoints and resume, TensorBoard, sample grids, metrics, export.

``fit(config)`` writes into ``<output_dir>/<run_name>/``:

    config.json            the resolved RunConfig (``fit(resume=run_dir)`` reads it back)
    checkpoints/epoch-NNN.keras   the whole model with optimizer state, after every good epoch
    history.csv            per-epoch metrics (training and validation), appended across resumes
    tensorboard/           scalars, and the sample sheets as images
    samples/epoch-NNN.png  held-out originals above their reconstructions, then prior samples
    loss.png, metrics.json, export -> the SavedModel in <export_dir>/<run_name>/

Training runs under a tf.distribute strategy (``config.train.strategy``: one device, all local
GPUs, or several machines; see facevae/distributed.py and docs/scaling.md) through one custom loop
(facevae/loop.py) with the usual Keras callbacks; under several workers only the chief writes.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from facevae import distributed, plots
from facevae import prior as prior_lib
from facevae.batchnorm import precise_batch_norm
from facevae.metrics import default_reconstruction_limit
from facevae.loop import EpochLoop, evaluate
from facevae.config import RunConfig
from facevae.data import TrainingData, training_data
from facevae.model import FaceVAE
from facevae.serving import export_model

__all__ = ["NonFiniteLoss", "TrainResult", "fit", "latest_checkpoint", "evaluate_reconstruction"]

_CHECKPOINT = re.compile(r"epoch-(\d{3,})\.keras$")


class NonFiniteLoss(RuntimeError):
    """Training met a NaN or infinite loss and stopped; the message names the epoch and the last good checkpoint."""


@dataclass
class TrainResult:
    run_dir: str
    export_dir: str
    metrics: dict
    model: FaceVAE


def latest_checkpoint(run_dir: str) -> tuple[str | None, int]:
    """(path of the newest checkpoints/epoch-NNN.keras, NNN) or (None, 0) when there is none."""
    best, best_epoch = None, 0
    for path in glob.glob(os.path.join(run_dir, "checkpoints", "epoch-*.keras")):
        match = _CHECKPOINT.search(path)
        if match and int(match.group(1)) > best_epoch:
            best, best_epoch = path, int(match.group(1))
    return best, best_epoch


class _KLWarmup(keras.callbacks.Callback):
    """beta(epoch) = min(1, (epoch + 1) / warmup_epochs), set before each epoch (epochs count from 0)."""

    def __init__(self, warmup_epochs: int):
        super().__init__()
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, epoch, logs=None):
        beta = 1.0 if self.warmup_epochs == 0 else min(1.0, (epoch + 1) / self.warmup_epochs)
        self.model.kl_weight.assign(beta)


class _StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self):
        super().__init__()
        self.where: tuple[int, int] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class _SigmaLog(keras.callbacks.Callback):
    """Adds the Gaussian likelihood's learned or optimal sigma to the epoch logs (history.csv, TensorBoard):
    ``sigma`` (geometric mean over channels) and ``sigma_<c>`` per channel."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or getattr(self.model, "log_sigma", None) is None:
            return
        sigma = np.atleast_1d(np.exp(self.model.log_sigma.numpy().astype(np.float64)))
        logs["sigma"] = float(np.exp(np.mean(np.log(sigma))))
        if sigma.size > 1:
            logs.update({f"sigma_{c}": float(value) for c, value in enumerate(sigma)})


def recalibrate_batch_norm(model: FaceVAE, train: tf.data.Dataset, batches: int) -> int:
    """Precise BatchNorm (facevae.batchnorm.precise_batch_norm) over ``batches`` batches of ``train``, each
    passed through the model in training mode as in a training step (posterior draw, flows, decoder)."""
    if batches <= 0:
        return 0

    @tf.function
    def forward(images):
        mean, log_var, features = model.posterior(images, training=True)
        z0, _ = model.sampler(mean, log_var)
        zk, _ = model.apply_flows(z0, features)
        model.decode_logits(zk, training=True, images=images)

    def images():
        for batch in train.take(batches):
            yield tf.cast(batch[0] if isinstance(batch, (tuple, list)) else batch, tf.float32)

    return precise_batch_norm(model, images(), forward)


def fit_latent_prior(model: FaceVAE, train: tf.data.Dataset, validation: tf.data.Dataset) -> dict:
    """Fit the model's Gaussian prior to the posterior means of ``train`` (facevae.prior) and install it.

    Returns the mean log-density (nats per code) of the validation set's posterior means under the fitted
    prior and under N(0, I), so the gain is measured on codes the fit did not see.
    """
    codes = prior_lib.encode_codes(model, train, "mean")
    fitted = prior_lib.GaussianPrior.fit(codes)
    model.set_prior(fitted.mean, fitted.scale_tril)
    held_out = prior_lib.encode_codes(model, validation, "mean")
    standard = -0.5 * np.sum(held_out**2 + math.log(2 * math.pi), axis=1)
    return {"kind": "gaussian", "fitted_on": "posterior means", "train_codes": len(codes),
            "validation_log_prob": float(np.mean(fitted.log_prob(held_out))),
            "validation_log_prob_standard_normal": float(np.mean(standard)), "fitted": fitted}


class _EpochArtifacts(keras.callbacks.Callback):
    """After each good epoch: a checkpoint (atomic), a sample sheet PNG and its TensorBoard image."""

    def __init__(self, run_dir: str, preview: np.ndarray, guard: _StopOnNonFinite, seed: int):
        super().__init__()
        self.run_dir = run_dir
        # whole rows of 8 (the sheet pairs each row of originals with its reconstructions), at most 4
        self.preview = preview[: min(32, len(preview) // 8 * 8) or len(preview)]
        self.guard = guard
        self.seed = seed
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard", "images"))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.where is not None:
            return  # weights may already be non-finite: keep the last good checkpoint
        number = epoch + 1
        checkpoint_dir = os.path.join(self.run_dir, "checkpoints")
        os.makedirs(checkpoint_dir, exist_ok=True)
        path = os.path.join(checkpoint_dir, f"epoch-{number:03d}.keras")
        self.model.save(f"{path}.tmp.keras")
        os.replace(f"{path}.tmp.keras", path)
        sheet = self._sheet()
        plots.save_png(os.path.join(self.run_dir, "samples", f"epoch-{number:03d}.png"), sheet)
        with self.writer.as_default():
            tf.summary.image("samples", sheet[None], step=number)
        self.writer.flush()

    def _sheet(self) -> np.ndarray:
        model = self.model
        noise = np.random.default_rng(self.seed).standard_normal((32, model.config.latent_dim))
        reconstructions = model.reconstruct(self.preview).numpy()
        samples = model.decode(noise.astype(np.float32)).numpy()
        return plots.sample_sheet(self.preview, reconstructions, samples)


def evaluate_reconstruction(model: FaceVAE, data: tf.data.Dataset, mean_image: np.ndarray,
                            limit: int | None = None) -> dict:
    """Held-out reconstruction MSE (per pixel, images in [0, 1]) against predicting the mean training image.

    ``limit``: stop after the batch that reaches this many images (None: the whole split).
    """
    squared, baseline, count, seen = 0.0, 0.0, 0, 0
    for batch in data:
        if limit is not None and seen >= limit:
            break
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = images.numpy()
        squared += float(np.sum((model.reconstruct(images).numpy() - images) ** 2))
        baseline += float(np.sum((mean_image[None] - images) ** 2))
        count, seen = count + images.size, seen + len(images)
    mse, mean_mse = squared / count, baseline / count
    return {
        "reconstruction_mse": mse,
        "mean_image_mse": mean_mse,
        "mse_ratio": mean_mse / mse if mse > 0 else float("inf"),
        "psnr_db": 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf"),
    }


def _run_dir(config: RunConfig) -> str:
    """<output_dir>/<run_name>, naming the run DATASET-YYYYMMDD-HHMMSS when it has no name yet."""
    config.train.run_name = config.train.run_name or f"{config.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return os.path.join(config.train.output_dir, config.train.run_name)


def _new_run_dir(config: RunConfig) -> str:
    run_dir = _run_dir(config)
    if os.path.exists(os.path.join(run_dir, "config.json")):
        raise FileExistsError(
            f"run directory {run_dir} already holds a run; pass --resume {run_dir} or another --run-name"
        )
    os.makedirs(run_dir, exist_ok=True)
    config.save(os.path.join(run_dir, "config.json"))
    return run_dir


def _link_export(run_dir: str, export_dir: str) -> None:
    link = os.path.join(run_dir, "export")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.relpath(export_dir, run_dir), link)


def _write_json(path: str, values: dict) -> None:
    with open(f"{path}.tmp", "w") as f:
        json.dump(values, f, indent=2)
    os.replace(f"{path}.tmp", path)


def _resolve(config: RunConfig | None, resume: str | None) -> RunConfig:
    """The run's config: ``config``, or the resumed run's config.json with epochs/strategy/jit from ``config``."""
    if not resume:
        return (config or RunConfig()).validate()
    config_path = os.path.join(resume, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"--resume {resume}: no config.json there; is it a run directory?")
    saved = RunConfig.load(config_path)
    if config is not None:  # allow more epochs, or other hardware, on resume
        saved.train.epochs = config.train.epochs
        saved.train.strategy, saved.train.jit_compile = config.train.strategy, config.train.jit_compile
    return saved.validate()


def _global_data(config: RunConfig, replicas: int) -> TrainingData:
    scaled = RunConfig.from_dict(config.to_dict())
    scaled.train.batch_size = config.train.batch_size * replicas
    return training_data(scaled)


def _build_model(config: RunConfig, checkpoint: str | None, policy: str) -> FaceVAE:
    if checkpoint:
        return keras.models.load_model(checkpoint)
    model = FaceVAE(config.model, seed=config.train.seed)
    optimizer = keras.optimizers.Adam(config.train.learning_rate)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer)
    return model


def fit(
    config: RunConfig | None = None,
    resume: str | None = None,
    data: TrainingData | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Train a FaceVAE as ``config`` says, or resume the run in directory ``resume``.

    ``data`` overrides the datasets the config names (bring your own tf.data pipelines, batched by
    the global batch); ``callbacks`` are added to the built-in ones. Raises ``NonFiniteLoss`` when
    the loss stops being finite; the last good checkpoint is kept. Under a multi-worker strategy
    every worker calls ``fit``; only the chief writes the run directory and the export.
    """
    config = _resolve(config, resume)
    strategy = distributed.make_strategy(config.train.strategy)  # before other TF work (multi-worker)
    chief = distributed.is_chief(strategy)
    if resume:
        run_dir = resume
    elif chief:
        run_dir = _new_run_dir(config)
    else:
        run_dir = _run_dir(config)  # a non-chief worker writes nothing there
    replicas = strategy.num_replicas_in_sync
    if chief:
        print(f"run directory: {run_dir}")
    keras.utils.set_random_seed(config.train.seed)
    data = data or _global_data(config, replicas)
    policy = distributed.precision_policy(config.train.mixed_precision)
    jit = distributed.resolve_jit_compile(config.train.jit_compile)
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        return _fit(config, resume, run_dir, strategy, chief, data, callbacks, verbose, jit, replicas)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _fit(config, resume, run_dir, strategy, chief, data, callbacks, verbose, jit, replicas) -> TrainResult:
    checkpoint, initial_epoch = latest_checkpoint(run_dir) if resume else (None, 0)
    with strategy.scope():
        model = _build_model(config, checkpoint, keras.mixed_precision.dtype_policy().name)
        if checkpoint and chief:
            print(f"resuming {run_dir} from {os.path.basename(checkpoint)} (epoch {initial_epoch})")
        model.optimizer.build(model.trainable_variables)
        distributed.synchronize_batch_norm(model, replicas > 1)
        train_step = distributed.make_train_step(model, strategy, config.train.seed, jit_compile=jit)
        eval_step = distributed.make_eval_step(model, strategy, config.train.seed)

    guard = _StopOnNonFinite()
    writers = [
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=initial_epoch > 0),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch", write_graph=False),
        _EpochArtifacts(run_dir, data.preview, guard, config.train.seed),
    ] if chief else []
    verbose = (1 if verbose == "auto" else verbose) if chief else 0
    callback_list = keras.callbacks.CallbackList(
        [_KLWarmup(config.train.kl_warmup_epochs), guard, _SigmaLog(), *writers, *(callbacks or [])],
        add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=config.train.epochs, steps=config.train.steps_per_epoch,
    )
    # Precise BatchNorm on one device (several replicas or workers keep the moving averages).
    precise = config.train.precise_bn_batches if replicas == 1 else 0
    recalibrate = (lambda: recalibrate_batch_norm(model, data.train, precise)) if precise else None
    loop = EpochLoop(model, strategy, data.train, data.validation, train_step, eval_step, config.train.steps_per_epoch,
                     before_validation=recalibrate)
    started = time.perf_counter()
    steps_before = int(model.optimizer.iterations.numpy())
    if initial_epoch < config.train.epochs:
        loop.run(callback_list, initial_epoch, config.train.epochs, guard)
    seconds = time.perf_counter() - started
    if guard.where is not None:
        last, epoch = latest_checkpoint(run_dir)
        kept = f"last good checkpoint: {last} (epoch {epoch})" if last else "no good checkpoint was written"
        raise NonFiniteLoss(
            f"non-finite loss at epoch {guard.where[0]}, batch {guard.where[1]}; training stopped; {kept}. "
            "Lower --learning-rate or use --kl-warmup, then --resume the run."
        )

    if recalibrate is not None:
        recalibrate()  # the statistics the export carries
    validation = evaluate(eval_step, loop.validation)  # every worker takes part (collective ops)
    prior_fit = fit_latent_prior(model, data.train, data.validation) if model.prior is not None else None
    steps = int(model.optimizer.iterations.numpy())
    export_dir = os.path.abspath(os.path.join(config.train.export_dir, os.path.basename(run_dir)))
    metrics = {
        "epochs": config.train.epochs,
        "optimizer_steps": steps,
        "replicas": replicas,
        "global_batch_size": config.train.batch_size * replicas,
        "train_seconds_this_session": round(seconds, 1),
        "images_per_second_this_session": round((steps - steps_before) * config.train.batch_size * replicas
                                                / max(seconds, 1e-9), 1),
        "validation": validation,
    }
    if prior_fit is not None:
        fitted = prior_fit.pop("fitted")
        metrics["prior"] = prior_fit
        if chief:
            prior_lib.save_prior(os.path.join(run_dir, "prior.npz"), fitted)
    if not chief:
        return TrainResult(run_dir, export_dir, metrics, model)
    history = plots.read_history(os.path.join(run_dir, "history.csv"))
    plots.plot_loss_curves(history, os.path.join(run_dir, "loss.png"), title=os.path.basename(run_dir))
    metrics.update(evaluate_reconstruction(model, data.validation, data.mean_image,
                                           default_reconstruction_limit(model)))  # pixel-by-pixel decoding is slow
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    distributed_model = strategy is not tf.distribute.get_strategy()
    export_model(_plain_copy(model) if distributed_model else model, export_dir)
    _link_export(run_dir, export_dir)
    return TrainResult(run_dir, export_dir, metrics, model)


def _plain_copy(model: FaceVAE) -> FaceVAE:
    """The model rebuilt outside any strategy (plain variables) with the same weights, for export."""
    copy = FaceVAE(model.config, seed=model.seed)
    copy.set_weights(model.get_weights())
    return copy
