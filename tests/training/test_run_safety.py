"""Nothing lost, nothing overwritten (issue 15): decoy exports, shared run names, locked runs, SIGKILLs around
epoch ends and during export, --resume that changes what may change, NaN validation losses."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data_prep import atomic
from facevae import train
from facevae.data.datasets import synthetic_datasets
from facevae.training.rundir import EXPORT_MARKER, RUN_LOCK, RunDir
from facevae.training.trainer import ExportConflict, NonFiniteLoss, fit

pytestmark = pytest.mark.integration

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)


def _small(tiny_config, **overrides):
    values = dict(train_count=64, validation_count=32, epochs=1)
    values.update(overrides)
    return tiny_config(**values)


def test_export_never_replaces_a_folder_it_did_not_write(tiny_config, tmp_path):
    decoy = tmp_path / "data" / "tiny"
    decoy.mkdir(parents=True)
    (decoy / "holiday.jpg").write_text("a user's photo")
    config = _small(tiny_config, export_dir=str(tmp_path / "data"))
    with pytest.raises(ExportConflict, match="not an export of this run"):
        fit(config, verbose=0)
    assert os.listdir(decoy) == ["holiday.jpg"]
    assert not os.path.exists(os.path.join(config.train.output_dir, "tiny"))  # stopped before training: no run

    # the same through config.json's export_dir on --resume
    config = _small(tiny_config, name="resumed")
    run = RunDir(os.path.join(config.train.output_dir, "resumed"))
    os.makedirs(run.path)
    config.train.export_dir = str(tmp_path / "elsewhere")
    config.save(run.config)
    (tmp_path / "elsewhere" / "resumed").mkdir(parents=True)
    (tmp_path / "elsewhere" / "resumed" / "notes.txt").write_text("mine")
    code = train.main(["--resume", run.path, "--quiet"])
    assert code == 2 and run.checkpoints() == []
    assert os.listdir(tmp_path / "elsewhere" / "resumed") == ["notes.txt"]


def test_same_run_name_in_two_output_dirs_does_not_share_an_export(tiny_config, tmp_path, capsys):
    first = _small(tiny_config, output_dir=str(tmp_path / "a"))
    result = fit(first, verbose=0)
    marker = json.load(open(os.path.join(result.export_dir, EXPORT_MARKER)))
    assert marker["run_dir"] == os.path.realpath(result.run_dir)
    code = train.main(["--run-name", "tiny", "--output-dir", str(tmp_path / "b"), "--export-dir",
                       first.train.export_dir, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "holds the export of another run" in err[-1] and str(tmp_path / "a") in err[-1]
    assert not os.path.exists(tmp_path / "b" / "tiny" / "config.json")
    assert os.path.realpath(os.path.join(result.run_dir, "export")) == result.export_dir


def test_a_second_resume_of_a_run_gets_one_line_naming_the_holder(tiny_config, capsys):
    config = _small(tiny_config)
    run = RunDir(os.path.join(config.train.output_dir, "tiny"))
    os.makedirs(run.path)
    config.save(run.config)
    holder = subprocess.Popen(  # another process holding the run's lock, as a training --resume of it would
        [sys.executable, "-c", "import sys, time; from data_prep.locking import DirectoryLock; "
         f"DirectoryLock({run.path!r}, name={RUN_LOCK!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = train.main(["--resume", run.path, "--quiet"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"--resume {run.path}: in use by another writer (pid {holder.pid} on {socket.gethostname()}" in err[0]
    assert not os.path.exists(run.history)


def test_resume_changes_the_learning_rate_and_records_it(tiny_config, capsys):
    config = _small(tiny_config)
    result = fit(config, verbose=0)
    run = result.run_dir
    first = result.metrics["train_seconds"]
    assert first == result.metrics["train_seconds_this_session"] > 0
    code = train.main(["--resume", run, "--epochs", "2", "--learning-rate", "1e-4", "--keep-checkpoints", "1",
                       "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.load(open(os.path.join(run, "metrics.json")))  # both sessions' training time
    assert metrics["train_seconds"] == pytest.approx(first + metrics["train_seconds_this_session"], abs=0.11)
    saved = json.load(open(os.path.join(run, "config.json")))
    assert saved["train"]["learning_rate"] == 1e-4 and saved["train"]["epochs"] == 2
    assert saved["changes"] == [{"epoch": 2, "changed": {"train.epochs": [1, 2], "train.learning_rate": [1e-3, 1e-4],
                                                         "train.keep_checkpoints": [3, 1]}}]
    import keras

    model = keras.models.load_model(os.path.join(run, "checkpoints", "epoch-002.keras"))
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    capsys.readouterr()
    code = train.main(["--resume", run, "--latent-dim", "16", "--dataset", "mnist", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--latent-dim (8 in config.json, 16 asked)" in err[0]
    assert "data.dataset ('synthetic' in config.json, 'mnist' asked)" in err[0]


def test_a_non_finite_validation_loss_stops_training(tiny_config):
    config = _small(tiny_config, epochs=3)
    data = synthetic_datasets(config.data, config.train.batch_size, config.train.seed)
    poisoned = np.full((32, 32, 32, 3), np.nan, np.float32)
    data.validation = tf.data.Dataset.from_tensor_slices(poisoned).batch(32)
    with pytest.raises(NonFiniteLoss, match="non-finite validation loss at epoch 1; .*no good checkpoint"):
        fit(config, data=data, verbose=0)
    run = RunDir(os.path.join(config.train.output_dir, "tiny"))
    assert run.checkpoints() == [] and not os.path.exists(run.checkpoints_dir)


_CHILD = r"""
import os, signal, sys
sys.path.insert(0, {tests!r})
from tiny_config import make_tiny_config
from facevae.training import trainer

where = os.environ.get("KILL_AT", "")
if where:
    stage, epoch = where.split(":")
    def kill():
        os.kill(os.getpid(), signal.SIGKILL)
    if stage == "export":  # killed with the SavedModel written into its staging directory, before the swap
        import contextlib, types
        from data_prep import atomic
        from facevae.export import serving
        @contextlib.contextmanager
        def staged_directory(path):
            with atomic.staged_directory(path) as staging:
                yield staging
                kill()
        serving.atomic = types.SimpleNamespace(**{{**{{n: getattr(atomic, n) for n in atomic.__all__}},
                                                  "staged_directory": staged_directory}})
    else:
        cls = {{"staged": trainer._StageCheckpoint, "records": trainer._EpochRecords,
               "committed": trainer._EpochArtifacts}}[stage]
        original = cls.on_epoch_end
        def on_epoch_end(self, e, logs=None):
            original(self, e, logs)
            if e + 1 == int(epoch):
                kill()
        cls.on_epoch_end = on_epoch_end
root = sys.argv[1]
config = make_tiny_config(root, train_count=64, validation_count=32, epochs=4)
run = os.path.join(root, "runs", "tiny")
resume = run if os.path.exists(os.path.join(run, "config.json")) else None
trainer.fit(None if resume else config, resume=resume, verbose=0)
"""


def _event_steps(directory):
    from tensorflow.core.util import event_pb2

    steps = []
    for name in sorted(os.listdir(directory)):
        for record in tf.data.TFRecordDataset(os.path.join(directory, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                steps.append((value.tag, event.step))
    return steps


def test_repeated_sigkills_around_epoch_ends_and_during_export_lose_and_repeat_nothing(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=TESTS))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + TESTS, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = RunDir(str(tmp_path / "runs" / "tiny"))
    codes = []
    for where in ("records:1", "committed:2", "staged:3", "records:3", "external", "export:0", ""):
        child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env={**env, "KILL_AT": ""
                                 if where in ("external", "") else where}, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        if where == "external":  # a kill from outside, at whatever moment after the next checkpoint lands
            before = run.latest_checkpoint()[1]
            deadline = time.time() + 300
            while run.latest_checkpoint()[1] == before and child.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=600)
        codes.append(child.returncode)
        if where == "":
            assert child.returncode == 0, err[-3000:]
    assert codes[:4] == [-signal.SIGKILL] * 4 and codes[5] == -signal.SIGKILL

    history = np.genfromtxt(run.history, delimiter=",", names=True)
    assert list(history["epoch"]) == [0, 1, 2, 3]
    train = _event_steps(os.path.join(run.tensorboard_dir, "train"))
    assert sorted(s for t, s in train if t == "epoch_loss") == [0, 1, 2, 3]
    assert len(train) == len(set(train))
    validation = _event_steps(os.path.join(run.tensorboard_dir, "validation"))
    assert sorted(s for t, s in validation if t == "epoch_loss") == [0, 1, 2, 3]
    images = _event_steps(os.path.join(run.tensorboard_dir, "images"))
    assert sorted(s for _, s in images) == [1, 2, 3, 4]
    metrics = json.load(open(run.metrics))
    assert metrics["optimizer_steps"] == 4 * 2
    for directory in (run.path, run.checkpoints_dir, run.samples_dir, os.path.dirname(run.export_target())):
        assert not [n for n in os.listdir(directory) if atomic.is_temporary(n) or ".tmp" in n], directory
    assert os.path.exists(os.path.join(run.export_target(), EXPORT_MARKER))
    assert not os.path.exists(os.path.join(run.path, ".lock"))
