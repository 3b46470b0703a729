"""The run directory: the one place that knows what a training run writes where, and what ``--model PATH`` means.

    <output_dir>/<run_name>/
        config.json                  the resolved RunConfig (and the changes made on --resume)
        checkpoints/epoch-NNN.keras  whole model with optimizer state (the last --keep-checkpoints, plus the best)
        best_checkpoint.json         epoch and validation loss of the best checkpoint (kept through pruning)
        samples/epoch-NNN.png        held-out originals above reconstructions, then prior samples
        tensorboard/                 scalars (train/, validation/) and sample sheets (images/)
        history.csv                  one row per finished epoch
        loss.png, metrics.json       written at the end of the run
        prior.npz, prior.json        the fitted latent prior (config.prior 'gmm' or 'flow') and its held-out fit
        export -> <export_dir>/<run_name>   link to the SavedModel; the export holds .facevae-export.json
        .lock                        held (flock) by the process writing the run: pid, host, command (data_prep.locking)

``resolve_model(path)`` turns a run directory, an export directory or a ``.keras`` file into a ``ModelSource``
(what to load for Keras, what to load as a SavedModel, which config.json). No TensorFlow is imported here, so
the light command lines (sample, morph, attributes) use it too.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass

from data_prep import atomic

__all__ = ["RUN_LOCK", "RunDir", "ModelSource", "resolve_model", "EXPORT_MARKER", "is_saved_model", "read_export_marker"]

EXPORT_MARKER = ".facevae-export.json"
RUN_LOCK = ".lock"  # data_prep.locking.DirectoryLock of the process writing the run
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_CHECKPOINT = re.compile(r"^epoch-(\d{3,})\.keras$")
_SAMPLE_SHEET = re.compile(r"^epoch-(\d{3,})\.png$")
_LEGACY_TEMPORARY = re.compile(r"^epoch-\d{3,}\.keras\.tmp\.keras$")  # left by killed runs before rundir.py


def is_saved_model(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in _SAVED_MODEL_FILES)


def read_export_marker(path: str) -> dict | None:
    """The marker an export wrote into ``path`` ({"run_dir", "run_name", ...}), or None."""
    try:
        with open(os.path.join(path, EXPORT_MARKER)) as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _remove_if_empty(directory: str) -> None:
    try:
        os.rmdir(directory)
    except OSError:
        pass  # absent, or holds something a run does not write


@dataclass(frozen=True)
class RunDir:
    """One run directory (which need not exist yet); every path a run writes is a property here."""

    path: str

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    @property
    def identity(self) -> str:
        """What an export records to say whose it is: the run directory's real, absolute path."""
        return os.path.realpath(self.path)

    config = property(lambda self: os.path.join(self.path, "config.json"))
    checkpoints_dir = property(lambda self: os.path.join(self.path, "checkpoints"))
    samples_dir = property(lambda self: os.path.join(self.path, "samples"))
    tensorboard_dir = property(lambda self: os.path.join(self.path, "tensorboard"))
    history = property(lambda self: os.path.join(self.path, "history.csv"))
    loss_plot = property(lambda self: os.path.join(self.path, "loss.png"))
    metrics = property(lambda self: os.path.join(self.path, "metrics.json"))
    export_link = property(lambda self: os.path.join(self.path, "export"))
    best_checkpoint = property(lambda self: os.path.join(self.path, "best_checkpoint.json"))
    prior = property(lambda self: os.path.join(self.path, "prior.npz"))
    prior_json = property(lambda self: os.path.join(self.path, "prior.json"))

    def exists(self) -> bool:
        """True once the run has written its config.json."""
        return os.path.isfile(self.config)

    def checkpoint(self, epoch: int) -> str:
        return os.path.join(self.checkpoints_dir, f"epoch-{epoch:03d}.keras")

    def sample_sheet(self, epoch: int) -> str:
        return os.path.join(self.samples_dir, f"epoch-{epoch:03d}.png")

    prior_samples = property(lambda self: os.path.join(self.samples_dir, "fitted-prior.png"))

    def checkpoints(self) -> list[tuple[int, str]]:
        """[(epoch, path)] of the finished checkpoints, oldest first (temporaries are not checkpoints)."""
        if not os.path.isdir(self.checkpoints_dir):
            return []
        found = []
        for name in os.listdir(self.checkpoints_dir):
            match = _CHECKPOINT.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.checkpoints_dir, name)))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[str | None, int]:
        """(path of the newest checkpoints/epoch-NNN.keras, NNN), or (None, 0) when there is none."""
        found = self.checkpoints()
        return (found[-1][1], found[-1][0]) if found else (None, 0)

    def export_target(self) -> str | None:
        """Where the ``export`` link points (absolute), or None without a link."""
        if not os.path.islink(self.export_link) and not os.path.isdir(self.export_link):
            return None
        return os.path.realpath(self.export_link)

    def link_export(self, export_dir: str) -> None:
        """Point ``export`` at ``export_dir`` (relative link, replaced atomically)."""
        temporary = atomic.temporary_name(self.export_link)
        os.symlink(os.path.relpath(export_dir, self.path), temporary)
        os.replace(temporary, self.export_link)

    def remove_unstarted(self) -> bool:
        """Delete this run directory when it never committed a checkpoint (a failed start): the files a run writes
        (config.json, history.csv, best_checkpoint.json, loss.png, metrics.json, the export link, samples/,
        tensorboard/, checkpoints/ temporaries), then the folder if nothing else is in it. Returns whether it went."""
        if self.checkpoints():
            return False
        for path in (self.config, self.history, self.best_checkpoint, self.loss_plot, self.metrics, self.export_link,
                     self.prior_samples):
            if os.path.lexists(path):
                os.remove(path)
        self.remove_stale_temporaries()
        if os.path.isdir(self.samples_dir):
            for name in os.listdir(self.samples_dir):
                if _SAMPLE_SHEET.match(name):
                    os.remove(os.path.join(self.samples_dir, name))
        for directory, _, names in os.walk(self.tensorboard_dir, topdown=False):
            for name in names:
                if ".tfevents." in name or atomic.is_temporary(name):
                    os.remove(os.path.join(directory, name))
            _remove_if_empty(directory)
        for directory in (self.checkpoints_dir, self.samples_dir, self.path):
            _remove_if_empty(directory)
        return not os.path.exists(self.path)

    def remove_stale_temporaries(self) -> list[str]:
        """Delete what a killed writer of this run left half-written: temporaries in the run directory and its
        checkpoints/ and samples/ folders (names made by data_prep.atomic, and the older epoch-NNN.keras.tmp.keras)."""
        removed = []
        for directory in (self.path, self.checkpoints_dir, self.samples_dir):
            removed += atomic.remove_stale(directory)
        if os.path.isdir(self.checkpoints_dir):
            for name in os.listdir(self.checkpoints_dir):
                if _LEGACY_TEMPORARY.match(name):
                    os.remove(os.path.join(self.checkpoints_dir, name))
                    removed.append(name)
        return removed


@dataclass(frozen=True)
class ModelSource:
    """What ``--model PATH`` resolved to.

    keras: a .keras file to load with keras (the run's newest checkpoint, an export's model.keras, or the file);
    saved_model: a SavedModel directory (a run's export, or the export directory itself);
    config: the run's config.json when the path was a run directory; run: that run directory.
    """

    path: str
    keras: str | None = None
    saved_model: str | None = None
    config: str | None = None
    run: RunDir | None = None


def _check_keras_file(keras_file: str, given: str) -> str:
    """``keras_file``, or ValueError when it is not a whole .keras archive (a zip: truncated or corrupt)."""
    if not zipfile.is_zipfile(keras_file):
        where = keras_file if os.path.abspath(keras_file) == os.path.abspath(given) else f"{given} ({keras_file})"
        raise ValueError(f"--model {where}: is corrupt or truncated (not a complete .keras zip archive); "
                         "use another checkpoint or export, or train again")
    return keras_file


def resolve_model(path: str) -> ModelSource:
    """Resolve ``--model PATH`` (run directory, export directory or .keras file); ValueError naming PATH otherwise."""
    path = os.fspath(path)
    if os.path.isfile(path):
        if path.endswith(".keras"):
            return ModelSource(path, keras=_check_keras_file(path, path))
        raise ValueError(f"--model {path}: is a file but not a .keras model; pass a run directory, an export "
                         "directory or a .keras file")
    if not os.path.isdir(path):
        raise ValueError(f"--model {path}: no such run directory, export directory or .keras file")
    if is_saved_model(path):
        keras_file = os.path.join(path, "model.keras")
        return ModelSource(path, keras=keras_file if os.path.isfile(keras_file) else None, saved_model=path)
    run = RunDir(path)
    checkpoint, _ = run.latest_checkpoint()
    export = run.export_target()
    saved_model = export if export and is_saved_model(export) else None
    keras_file = checkpoint
    if keras_file is None and os.path.isfile(os.path.join(path, "model.keras")):
        keras_file = os.path.join(path, "model.keras")
    if keras_file is None and saved_model and os.path.isfile(os.path.join(saved_model, "model.keras")):
        keras_file = os.path.join(saved_model, "model.keras")
    config = run.config if run.exists() else None
    if keras_file is not None:
        _check_keras_file(keras_file, path)
    if keras_file is None and saved_model is None:
        if config:
            raise ValueError(f"--model {path}: run directory has neither checkpoints/epoch-NNN.keras nor an "
                             "'export' link to a SavedModel; training writes them as it goes")
        raise ValueError(f"--model {path}: is neither a run directory nor a SavedModel (no saved_model.pb, "
                         "checkpoints/epoch-NNN.keras nor model.keras)")
    return ModelSource(path, keras=keras_file, saved_model=saved_model, config=config, run=run if config else None)
