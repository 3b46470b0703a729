"""Training a FaceVAE: run directory, checkpoints and resume, TensorBoard, sample grids, metrics, export.

``fit(config)`` writes the run directory ``<output_dir>/<run_name>/`` laid out as facevae.training.rundir
says (config.json, checkpoints/, samples/, tensorboard/, history.csv, loss.png, metrics.json, the ``export``
link to ``<export_dir>/<run_name>``), under an exclusive lock (data_prep.locking) while it runs.

At the end of each good epoch, in this order: the checkpoint is saved under a temporary name; the epoch's
history row and TensorBoard records are written and flushed; then the checkpoint is renamed into place (the
commit point). ``fit(resume=run_dir)`` continues from the newest committed checkpoint (epoch E) and first drops
the history rows and TensorBoard records of epochs after E and the temporaries a killed run left, so a kill at
any moment neither loses nor repeats an epoch. Only the last ``keep_checkpoints`` checkpoints are kept, plus
the best by validation loss (``best_checkpoint.json``).

Training runs under a tf.distribute strategy (``config.train.strategy``: one device, all local GPUs, or several
machines; see facevae/training/distributed.py and docs/scaling.md) through one custom loop
(facevae/training/loop.py) with the usual Keras callbacks; under several workers only the chief writes.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from data_prep import atomic
from data_prep.errors import OutputLockedError
from data_prep.locking import DirectoryLock, check_output_dir
from facevae.analysis import plots
from facevae.analysis.metrics import default_reconstruction_limit
from facevae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from facevae.data.datasets import TrainingData, training_data
from facevae.export.serving import export_model
from facevae.model import prior as prior_lib
from facevae.model.batchnorm import precise_batch_norm
from facevae.model.objective import LOSS
from facevae.model.vae import FaceVAE
from facevae.training import distributed
from facevae.training.loop import EpochLoop, evaluate
from facevae.training.rundir import RUN_LOCK, RunDir, is_saved_model, read_export_marker
from facevae.training.schedules import LearningRateSchedule

__all__ = ["NonFiniteLoss", "ResumeConflict", "ExportConflict", "OutputLockedError", "TrainResult", "fit",
           "latest_checkpoint", "evaluate_reconstruction", "resume_changes", "recalibrate_batch_norm",
           "fit_and_save_prior"]


class NonFiniteLoss(RuntimeError):
    """Training met a NaN or infinite loss and stopped; the message names the epoch and the last good checkpoint."""


class ResumeConflict(ValueError):
    """``--resume`` was asked to change what a run cannot change (architecture, image size, data)."""


class ExportConflict(FileExistsError):
    """The export directory holds something that is not an earlier export of this run."""


@dataclass
class TrainResult:
    run_dir: str
    export_dir: str
    metrics: dict
    model: FaceVAE


def latest_checkpoint(run_dir: str) -> tuple[str | None, int]:
    """(path of the newest checkpoints/epoch-NNN.keras, NNN) or (None, 0) when there is none."""
    return RunDir(run_dir).latest_checkpoint()


class _KLWarmup(keras.callbacks.Callback):
    """beta(epoch) = kl_weight * min(1, (epoch + 1) / warmup_epochs), set before each epoch (epochs count from 0)."""

    def __init__(self, warmup_epochs: int, kl_weight: float = 1.0):
        super().__init__()
        self.warmup_epochs = warmup_epochs
        self.kl_weight = kl_weight

    def on_epoch_begin(self, epoch, logs=None):
        ramp = 1.0 if self.warmup_epochs == 0 else min(1.0, (epoch + 1) / self.warmup_epochs)
        self.model.kl_weight.assign(self.kl_weight * ramp)


class _StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, or after an epoch whose validation
    loss is, and remembers where: (epoch, batch) or (epoch, "validation")."""

    def __init__(self):
        super().__init__()
        self.where: tuple[int, int | str] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get(LOSS)
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get(f"val_{LOSS}")
        if self.where is None and loss is not None and not math.isfinite(float(loss)):
            self.where = (epoch + 1, "validation")
            self.model.stop_training = True


class _SigmaLog(keras.callbacks.Callback):
    """Adds the Gaussian likelihood's learned or optimal sigma to the epoch logs, hence history.csv and
    TensorBoard: ``sigma`` (the geometric mean over channels) and ``sigma_<c>`` per channel (pixel units)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or getattr(self.model, "log_sigma", None) is None:
            return
        sigma = np.atleast_1d(self.model.sigma)
        logs["sigma"] = float(np.exp(np.mean(np.log(sigma))))
        if sigma.size > 1:
            logs.update({f"sigma_{c}": float(value) for c, value in enumerate(sigma)})


def recalibrate_batch_norm(model: FaceVAE, train: tf.data.Dataset, batches: int) -> int:
    """Precise BatchNorm (facevae.model.batchnorm.precise_batch_norm) over ``batches`` batches of ``train``, each
    passed through the model in training mode as in a training step (posterior draw, flows, decoder); returns
    the number of batches used."""
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


def fit_and_save_prior(model: FaceVAE, run: RunDir, train: tf.data.Dataset, validation: tf.data.Dataset,
                       seed: int = 0, source: str | None = None, mirrored: bool = False) -> dict:
    """Fit the model's latent prior (facevae.model.prior.fit_latent_prior; ``mirrored``: to the training images and
    their mirror images), install it, and write ``prior.npz`` and ``prior.json`` (held-out log-density under the fit
    and under N(0, I)) into the run directory."""
    result = prior_lib.fit_latent_prior(model, train, validation, seed=seed, mirrored=mirrored)
    prior_lib.save_prior(run.prior, model.prior)
    atomic.write_json(run.prior_json, {**result, **({"model": source} if source else {})})
    return result


class _StageCheckpoint(keras.callbacks.Callback):
    """First writer at each good epoch's end: the whole model into a temporary sibling of its checkpoint."""

    def __init__(self, run: RunDir, guard: _StopOnNonFinite):
        super().__init__()
        self.run, self.guard = run, guard
        self.pending: tuple[str, str] | None = None

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.where is not None:
            return  # weights may already be non-finite: keep the last good checkpoint
        final = self.run.checkpoint(epoch + 1)
        os.makedirs(self.run.checkpoints_dir, exist_ok=True)
        temporary = atomic.temporary_name(final)
        self.model.save(temporary)
        self.pending = (temporary, final)


class _EpochRecords(keras.callbacks.Callback):
    """After the staged checkpoint, before its commit: the history.csv row and the TensorBoard scalars
    (``train/`` and ``validation/``, tags ``epoch_NAME``, step = epoch counted from 0), flushed to disk."""

    def __init__(self, run: RunDir, guard: _StopOnNonFinite):
        super().__init__()
        self.run, self.guard = run, guard
        self.writers = {name: tf.summary.create_file_writer(os.path.join(run.tensorboard_dir, name))
                        for name in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.where is not None:
            return
        logs = dict(logs or {})
        keys = sorted(logs)
        exists = os.path.exists(self.run.history) and os.path.getsize(self.run.history) > 0
        with open(self.run.history, "a", newline="") as handle:
            writer = csv.writer(handle)
            if not exists:
                writer.writerow(["epoch", *keys])
            writer.writerow([epoch, *(logs[k] for k in keys)])
            handle.flush()
            os.fsync(handle.fileno())
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        with self.writers["train"].as_default():
            for key in keys:
                if not key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key}", logs[key], step=epoch)
            tf.summary.scalar("epoch_learning_rate", rate, step=epoch)
        with self.writers["validation"].as_default():
            for key in keys:
                if key.startswith("val_"):
                    tf.summary.scalar(f"epoch_{key[4:]}", logs[key], step=epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


class _EpochArtifacts(keras.callbacks.Callback):
    """Last writer at each good epoch's end: the sample sheet (PNG and TensorBoard image), then the checkpoint's
    commit (rename into place), then the pruning of old checkpoints."""

    def __init__(self, run: RunDir, preview: np.ndarray, guard: _StopOnNonFinite, seed: int,
                 stage: _StageCheckpoint, keep: int):
        super().__init__()
        self.run = run
        # whole rows of 8 (the sheet pairs each row of originals with its reconstructions), at most 4
        self.preview = preview[: min(32, len(preview) // 8 * 8) or len(preview)]
        self.guard = guard
        self.seed = seed
        self.stage, self.keep = stage, keep
        self.writer = tf.summary.create_file_writer(os.path.join(run.tensorboard_dir, "images"))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.where is not None or self.stage.pending is None:
            return
        number = epoch + 1
        sheet = self._sheet()
        plots.save_png(self.run.sample_sheet(number), sheet)
        with self.writer.as_default():
            tf.summary.image("samples", sheet[None], step=number)
        self.writer.flush()
        temporary, final = self.stage.pending
        self.stage.pending = None
        atomic.commit(temporary, final)  # the commit point of the epoch
        _prune_checkpoints(self.run, self.keep, number, (logs or {}).get(f"val_{LOSS}"))

    def on_train_end(self, logs=None):
        self.writer.close()

    def _sheet(self) -> np.ndarray:
        model = self.model
        noise = np.random.default_rng(self.seed).standard_normal((32, model.config.latent_dim))
        reconstructions = model.reconstruct(self.preview, refine_steps=0).numpy()  # every epoch: the encoder's codes
        samples = model.decode(noise.astype(np.float32)).numpy()
        return plots.sample_sheet(self.preview, reconstructions, samples)


def _prune_checkpoints(run: RunDir, keep: int, epoch: int, val_loss: float | None) -> None:
    """Keep the newest ``keep`` checkpoints (0: all) and the best by validation loss (best_checkpoint.json)."""
    best_path = run.best_checkpoint
    best = _read_json(best_path) or {}
    if val_loss is not None and math.isfinite(val_loss) and val_loss < best.get("val_loss", math.inf):
        best = {"epoch": epoch, "val_loss": float(val_loss), "checkpoint": os.path.basename(run.checkpoint(epoch))}
        atomic.write_json(best_path, best)
    if keep <= 0:
        return
    found = run.checkpoints()
    kept = {e for e, _ in found[-keep:]} | ({best["epoch"]} if "epoch" in best else set())
    for number, path in found:
        if number not in kept:
            os.remove(path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


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


# --- resume: what may change ------------------------------------------------------------------------------

def _fields() -> dict[str, dataclasses.Field]:
    """{"section.name": field} of every config field."""
    return {f"{section}.{f.name}": f for section, cls in (("data", DataConfig), ("model", ModelConfig),
                                                          ("train", TrainConfig))
            for f in dataclasses.fields(cls)}


def _flag_name(key: str, field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-")) if "help" in field.metadata else key


def resume_changes(saved: RunConfig, wanted: RunConfig) -> dict[str, list]:
    """{"section.field": [saved, wanted]} for the fields ``wanted`` changes; ResumeConflict (one line naming the
    flags) when one of them cannot change on resume (only fields marked ``resume`` in facevae.config can)."""
    before, after = saved.to_dict(), wanted.to_dict()
    changes, refused = {}, []
    for key, field in _fields().items():
        section, name = key.split(".")
        old, new = before[section][name], after[section][name]
        if old == new or (section, name) in (("train", "run_name"), ("train", "output_dir")) and new is None:
            continue
        if field.metadata.get("resume"):
            changes[key] = [old, new]
        elif key != "model.image_size":  # mirrors data.image_size, reported there
            refused.append(f"{_flag_name(key, field)} ({old!r} in config.json, {new!r} asked)")
    if refused:
        raise ResumeConflict("these cannot change on --resume: " + "; ".join(refused)
                             + ". Start a new run for them (--resume may change "
                             + ", ".join(_flag_name(k, f) for k, f in _fields().items() if f.metadata.get("resume"))
                             + ")")
    return changes


def _resolve(config: RunConfig | None, resume: str | None) -> tuple[RunConfig, dict]:
    """The run's config and the changes a resume makes: ``config``, or the resumed run's config.json with the
    changes of ``config`` that may be made on resume (others: ResumeConflict)."""
    if not resume:
        return (config or RunConfig()).validate(), {}
    run = RunDir(resume)
    if not run.exists():
        raise FileNotFoundError(f"--resume {resume}: no config.json there; is it a run directory?")
    saved = RunConfig.load(run.config).validate()
    if config is None:
        return saved, {}
    config = RunConfig.from_dict(config.to_dict()).validate()
    changes = resume_changes(saved, config)
    for key, (_, new) in changes.items():
        section, name = key.split(".")
        setattr(getattr(saved, section), name, new)
    return saved.validate(), changes


# --- the run directory and the export: claimed before training ---------------------------------------------

def _default_name(config: RunConfig) -> str:
    return f"{config.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _claim_new_run(config: RunConfig) -> tuple[RunDir, bool]:
    """Create <output_dir>/<run_name> (a default name gets -2, -3, ... until neither the run directory nor its
    export exists; os.mkdir makes the claim atomic). Returns the run and whether this call created it."""
    check_output_dir(config.train.output_dir, "--output-dir")
    os.makedirs(config.train.output_dir, exist_ok=True)
    if config.train.run_name:
        run = RunDir(os.path.join(config.train.output_dir, config.train.run_name))
        if run.exists():
            raise FileExistsError(f"run directory {run.path} already holds a run; pass --resume {run.path} "
                                  "or another --run-name")
        created = not os.path.isdir(run.path)
        os.makedirs(run.path, exist_ok=True)
        return run, created
    stem = _default_name(config)
    for number in range(1, 10000):
        name = stem if number == 1 else f"{stem}-{number}"
        if os.path.lexists(os.path.join(config.train.export_dir, name)):
            continue
        try:
            os.mkdir(os.path.join(config.train.output_dir, name))
        except FileExistsError:
            continue
        config.train.run_name = name
        return RunDir(os.path.join(config.train.output_dir, name)), True
    raise FileExistsError(f"no free run name {stem}-N in {config.train.output_dir}")


def _export_path(config: RunConfig, run: RunDir) -> str:
    return os.path.abspath(os.path.join(config.train.export_dir, run.name))


def _check_export_target(run: RunDir, export_dir: str) -> None:
    """Refuse (ExportConflict, before training) an export path that holds anything but this run's own export."""
    check_output_dir(os.path.dirname(export_dir), "--export-dir")  # a file, or not writable: one line
    if not os.path.lexists(export_dir):
        return
    marker = read_export_marker(export_dir) if os.path.isdir(export_dir) else None
    if marker is not None:
        if marker.get("run_dir") == run.identity:
            return
        raise ExportConflict(f"{export_dir} holds the export of another run ({marker.get('run_dir')}); "
                             "pass another --run-name or --export-dir")
    own_link = run.export_target() == os.path.realpath(export_dir)
    if os.path.isdir(export_dir) and is_saved_model(export_dir) and own_link:
        return  # this run's export from before exports carried a marker
    raise ExportConflict(f"{export_dir} already exists and is not an export of this run; not replacing it: "
                         "pass another --export-dir or --run-name, or move it away")


def _clean_export_leftovers(export_dir: str) -> None:
    atomic.remove_stale(os.path.dirname(export_dir), stem=os.path.basename(export_dir))


# --- resume: drop the records of epochs whose checkpoint never landed --------------------------------------

def _truncate_history(run: RunDir, epochs_done: int) -> None:
    """Keep the header and the rows of epochs 0 .. epochs_done - 1 of history.csv (once each)."""
    if not os.path.exists(run.history):
        return
    with open(run.history, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept, seen = [rows[0]], set()
    for row in rows[1:]:
        try:
            epoch = int(float(row[0]))
        except (ValueError, IndexError):
            continue  # a torn last line
        if epoch < epochs_done and epoch not in seen and len(row) == len(rows[0]):
            kept.append(row)
            seen.add(epoch)
    if kept != rows:
        with atomic.atomic_path(run.history) as temporary:
            with open(temporary, "w", newline="") as handle:
                csv.writer(handle).writerows(kept)


def _truncate_tensorboard(run: RunDir, epochs_done: int) -> None:
    """Drop summaries of epochs not in a checkpoint from every event file (scalars: step >= epochs_done, counted
    from 0; images: step > epochs_done, counted from 1), and a torn last record; rewritten atomically."""
    from tensorflow.core.util import event_pb2

    if not os.path.isdir(run.tensorboard_dir):
        return
    for directory, _, names in os.walk(run.tensorboard_dir):
        atomic.remove_stale(directory)
        limit = epochs_done + 1 if os.path.basename(directory) == "images" else epochs_done
        for name in names:
            if "tfevents" not in name or atomic.is_temporary(name):
                continue
            path = os.path.join(directory, name)
            records, torn = [], False
            try:
                for record in tf.data.TFRecordDataset(path):
                    records.append(record.numpy())
            except tf.errors.DataLossError:
                torn = True
            kept = [r for r in records
                    if not (event_pb2.Event.FromString(r).HasField("summary")
                            and event_pb2.Event.FromString(r).step >= limit)]
            if torn or len(kept) != len(records):
                with atomic.atomic_path(path) as temporary:
                    with tf.io.TFRecordWriter(temporary) as writer:
                        for record in kept:
                            writer.write(record)


def _prepare_resume(run: RunDir, epochs_done: int) -> None:
    removed = run.remove_stale_temporaries()
    if removed:
        print(f"removed {len(removed)} temporary file(s) an interrupted run left in {run.path}")
    _truncate_history(run, epochs_done)
    _truncate_tensorboard(run, epochs_done)


def _global_data(config: RunConfig, replicas: int) -> TrainingData:
    scaled = RunConfig.from_dict(config.to_dict())
    scaled.train.batch_size = config.train.batch_size * replicas
    return training_data(scaled)


def _build_model(config: RunConfig, checkpoint: str | None, policy: str) -> FaceVAE:
    if checkpoint:
        model = keras.models.load_model(checkpoint)
        # inference-only settings follow the run's config: they may change on --resume
        model.config.refine_steps, model.config.refine_rate = config.model.refine_steps, config.model.refine_rate
        return model
    model = FaceVAE(config.model, seed=config.train.seed)
    momentum = config.train.ema_momentum
    optimizer = keras.optimizers.Adam(config.train.learning_rate, use_ema=momentum > 0, ema_momentum=momentum)
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

    On resume, ``config`` (if given) may change what can change mid-run (epochs, learning rate and schedule,
    steps per epoch, export directory, kept checkpoints, strategy, XLA); the change is recorded in config.json
    with the epoch it took effect from; anything else raises ResumeConflict. ``data`` overrides the datasets
    the config names (bring your own tf.data pipelines, batched by the global batch); ``callbacks`` are added
    to the built-in ones. Raises ``NonFiniteLoss`` when the training or validation loss stops being finite
    (the last good checkpoint is kept), ``OutputLockedError`` when another process writes the run, ``ExportConflict``
    (before training) when the export path holds anything but this run's earlier export. Under a
    multi-worker strategy every worker calls ``fit``; only the chief writes the run directory and the export.
    """
    config, changes = _resolve(config, resume)
    strategy = distributed.make_strategy(config.train.strategy)  # before other TF work (multi-worker)
    chief = distributed.is_chief(strategy)
    lock, created = None, False
    if not chief:
        config.train.run_name = config.train.run_name or _default_name(config)
        run = RunDir(resume or os.path.join(config.train.output_dir, config.train.run_name))  # writes nothing
    elif resume:
        run = RunDir(resume)
        lock = DirectoryLock(run.path, flag="--resume", name=RUN_LOCK).acquire()
    else:
        run, created = _claim_new_run(config)
        lock = DirectoryLock(run.path, flag="--output-dir", name=RUN_LOCK).acquire()
    try:
        export_dir = _export_path(config, run)
        if chief:
            _check_export_target(run, export_dir)
        keras.utils.set_random_seed(config.train.seed)
        replicas = strategy.num_replicas_in_sync
        data = data or _global_data(config, replicas)
        if chief:
            print(f"run directory: {run.path}")
            note = data.epoch_note(config.train.steps_per_epoch)
            if note:
                print(note)
        if chief and not resume:
            config.save(run.config)
        policy = distributed.precision_policy(config.train.mixed_precision)
        jit = distributed.resolve_jit_compile(config.train.jit_compile)
        previous_policy = keras.mixed_precision.dtype_policy()
        keras.mixed_precision.set_dtype_policy(policy)
        try:
            return _fit(config, changes, resume, run, export_dir, strategy, chief, data, callbacks, verbose, jit,
                        replicas)
        finally:
            keras.mixed_precision.set_dtype_policy(previous_policy)
    except BaseException as error:
        # A failed start (no checkpoint committed) leaves nothing behind, so the same command works afterwards;
        # after a NaN or Ctrl-C a run that wrote its config.json stays, to be resumed.
        stays = isinstance(error, (NonFiniteLoss, KeyboardInterrupt)) and run.exists()
        if created and chief and not stays and not run.checkpoints():
            if lock is not None:
                lock.release()
                lock = None
            run.remove_unstarted()
        raise
    finally:
        if lock is not None:
            lock.release()


def _earlier_train_seconds(run: RunDir, initial_epoch: int) -> float | None:
    """Training seconds of the sessions before this one: 0 for a new run; for a resumed run, the ``train_seconds``
    its metrics.json recorded when that session ended exactly at the epoch this one resumes from; None (unknown)
    when a session in between was interrupted (it wrote no metrics.json), the file is unreadable, or it predates
    ``train_seconds`` (its session may itself have been a resumed one)."""
    if initial_epoch == 0:
        return 0.0
    try:
        with open(run.metrics) as handle:
            earlier = json.load(handle)
    except (OSError, ValueError):
        return None
    if earlier.get("epochs") != initial_epoch:
        return None
    seconds = earlier.get("train_seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _fit(config, changes, resume, run, export_dir, strategy, chief, data, callbacks, verbose, jit,
         replicas) -> TrainResult:
    aligned_epoch = config.data.shift_off_epoch(config.train.epochs)
    if aligned_epoch is not None and data.aligned_train is None:
        raise ValueError(f"--shift-until {config.data.shift_until} needs the training split without --shift "
                         "(TrainingData.aligned_train); the data given to fit() has none")
    checkpoint, initial_epoch = run.latest_checkpoint() if resume else (None, 0)
    earlier_seconds = _earlier_train_seconds(run, initial_epoch)
    if resume and chief:
        _prepare_resume(run, initial_epoch)
        if changes:
            config.changes.append({"epoch": initial_epoch + 1, "changed": changes})
            print("changed on resume, from epoch " + f"{initial_epoch + 1}: "
                  + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
        config.save(run.config)
    with strategy.scope():
        model = _build_model(config, checkpoint, keras.mixed_precision.dtype_policy().name)
        if checkpoint and chief:
            print(f"resuming {run.path} from {os.path.basename(checkpoint)} (epoch {initial_epoch})")
        model.optimizer.build(model.trainable_variables)
        distributed.synchronize_batch_norm(model, replicas > 1)
        train_step = distributed.make_train_step(model, strategy, config.train.seed, jit_compile=jit)
        eval_step = distributed.make_eval_step(model, strategy, config.train.seed)

    guard = _StopOnNonFinite()
    cardinality = int(data.train.cardinality().numpy())
    schedule = LearningRateSchedule(config.train.lr_schedule, config.train.learning_rate, config.train.epochs,
                                    config.train.steps_per_epoch or (cardinality if cardinality > 0 else None),
                                    initial_epoch)
    writers = []
    if chief:
        stage = _StageCheckpoint(run, guard)
        writers = [stage, _EpochRecords(run, guard),
                   _EpochArtifacts(run, data.preview, guard, config.train.seed, stage, config.train.keep_checkpoints)]
    verbose = (1 if verbose == "auto" else verbose) if chief else 0
    callback_list = keras.callbacks.CallbackList(
        [_KLWarmup(config.train.kl_warmup_epochs, config.train.kl_weight), schedule, guard, _SigmaLog(), *writers,
         *(callbacks or [])],
        add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=config.train.epochs, steps=config.train.steps_per_epoch,
    )
    # Precise BatchNorm on one device; several replicas or workers keep the moving averages (their batch
    # statistics are synchronized, but re-estimating them would need a distributed pass: not done).
    precise = config.train.precise_bn_batches if replicas == 1 else 0
    # --shift-until: the last epochs (and the BatchNorm statistics and prior fitted after them) see aligned images
    last_train = data.train if aligned_epoch is None else data.aligned_train
    recalibrate = (lambda: recalibrate_batch_norm(model, loop.train_data, precise)) if precise else None
    loop = EpochLoop(model, strategy, data.train, data.validation, train_step, eval_step, config.train.steps_per_epoch,
                     before_validation=recalibrate,
                     aligned_from=None if aligned_epoch is None else (aligned_epoch, data.aligned_train))
    started = time.perf_counter()
    steps_before = int(model.optimizer.iterations.numpy())
    if initial_epoch < config.train.epochs:
        loop.run(callback_list, initial_epoch, config.train.epochs, guard)
    seconds = time.perf_counter() - started
    if guard.where is not None:
        if chief and writers and writers[0].pending:
            atomic.remove_stale(run.checkpoints_dir)
        last, epoch = run.latest_checkpoint()
        kept = f"last good checkpoint: {last} (epoch {epoch})" if last else "no good checkpoint was written"
        where = ("validation loss at epoch {}" if guard.where[1] == "validation" else "loss at epoch {}, batch {}")
        raise NonFiniteLoss(
            f"non-finite {where.format(*guard.where)}; training stopped; {kept}. "
            "Lower --learning-rate or use --kl-warmup, then --resume the run."
        )

    if config.train.ema_momentum:
        with strategy.scope():  # from here on the model is the moving average of its weights
            model.optimizer.finalize_variable_values(model.trainable_variables)
    if precise:
        recalibrate_batch_norm(model, last_train, precise)  # the statistics the export carries
    validation = evaluate(eval_step, loop.validation)  # every worker takes part (collective ops)
    steps = int(model.optimizer.iterations.numpy())
    metrics = {
        "epochs": config.train.epochs,
        "optimizer_steps": steps,
        "replicas": replicas,
        "global_batch_size": config.train.batch_size * replicas,
        "train_seconds_this_session": round(seconds, 1),
        "train_seconds": None if earlier_seconds is None else round(earlier_seconds + seconds, 1),
        "images_per_second_this_session": round((steps - steps_before) * config.train.batch_size * replicas
                                                / max(seconds, 1e-9), 1),
        "validation": validation,
    }
    if not chief:
        return TrainResult(run.path, export_dir, metrics, model)
    if model.prior is not None:  # fitted to the training codes; the export's sample endpoint maps noise through it
        metrics["prior"] = fit_and_save_prior(model, run, last_train, data.validation, seed=config.train.seed,
                                              mirrored=config.data.flip)  # it trained on both orientations
        # the epoch sheets sample N(0, I) (the prior is fitted only now): 32 samples through the fit
        noise = np.random.default_rng(config.train.seed).standard_normal((32, config.model.latent_dim))
        plots.save_image_grid(run.prior_samples, model.sample(noise=noise.astype(np.float32)).numpy())
    if model.prior is not None or config.train.ema_momentum:
        _resave_latest_checkpoint(run, model, config.train.epochs)
    history = plots.read_history(run.history)
    plots.plot_loss_curves(history, run.loss_plot, title=run.name)
    metrics.update(evaluate_reconstruction(model, data.validation, data.mean_image,
                                           default_reconstruction_limit(model)))  # pixel-by-pixel decoding is slow
    atomic.write_json(run.metrics, metrics)
    distributed_model = strategy is not tf.distribute.get_strategy()
    _check_export_target(run, export_dir)  # again: something may have appeared there while training
    marker = {"run_dir": run.identity, "run_name": run.name, "epochs": config.train.epochs,
              "optimizer_steps": steps}
    export_model(_plain_copy(model) if distributed_model else model, export_dir, marker=marker)
    _clean_export_leftovers(export_dir)
    run.link_export(export_dir)
    return TrainResult(run.path, export_dir, metrics, model)


def _resave_latest_checkpoint(run: RunDir, model: FaceVAE, epoch: int) -> None:
    """Write the final checkpoint again (atomically) so that it holds what the export holds: the prior fitted after
    its epoch ended, the averaged weights of --ema-momentum and their BatchNorm statistics; tools that load a
    run's newest checkpoint (evaluate) then see the exported model."""
    path, number = run.latest_checkpoint()
    if path is None or number != epoch:
        return
    temporary = atomic.temporary_name(path)
    model.save(temporary)
    atomic.commit(temporary, path)


def _plain_copy(model: FaceVAE) -> FaceVAE:
    """The model rebuilt outside any strategy (plain variables) with the same weights, for export."""
    copy = FaceVAE(model.config, seed=model.seed)
    copy.set_weights(model.get_weights())
    return copy
