"""The run directory type, atomic writes, and the run-safety rules that need no training:
export targets (issue 15 items 1-2), default names (4), resume changes (7), checkpoint pruning (10), the
summary line (15)."""
import json
import os
import zipfile

import pytest

from data_prep import atomic
from facevae.config import preset
from facevae.training.rundir import EXPORT_MARKER, RunDir, resolve_model


# --- atomic writes ----------------------------------------------------------------------------------------

def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic.write_json(str(path), {"a": 1})
    atomic.write_json(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(str(path)) as temporary:
            assert temporary.endswith(".json") and os.path.dirname(temporary) == str(tmp_path)
            open(temporary, "w").write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]


def test_staged_directory_swaps_whole_directories(tmp_path):
    target = tmp_path / "export"
    with atomic.staged_directory(str(target)) as staging:
        open(os.path.join(staging, "a"), "w").write("1")
    with atomic.staged_directory(str(target)) as staging:
        open(os.path.join(staging, "b"), "w").write("2")
    assert os.listdir(target) == ["b"] and os.listdir(tmp_path) == ["export"]
    with pytest.raises(ValueError):
        with atomic.staged_directory(str(target)) as staging:
            raise ValueError("failed export")
    assert os.listdir(target) == ["b"] and os.listdir(tmp_path) == ["export"]


def test_remove_stale_removes_only_temporaries_this_module_names(tmp_path):
    (tmp_path / "notes.tmp").write_text("a user's file")
    (tmp_path / "backup.tmp.keras").write_text("a user's file")
    stale = atomic.temporary_name(str(tmp_path / "epoch-001.keras"))
    open(stale, "w").write("partial")
    os.mkdir(atomic.temporary_name(str(tmp_path / "run"), kind="old"))
    removed = atomic.remove_stale(str(tmp_path))
    assert len(removed) == 2
    assert sorted(os.listdir(tmp_path)) == ["backup.tmp.keras", "notes.tmp"]


# --- --model PATH -----------------------------------------------------------------------------------------

def _fake_keras(path):
    """A zip archive, as a .keras file is (resolve_model refuses files that are not whole zip archives)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


def _fake_run(root):
    run = RunDir(str(root / "runs" / "r"))
    os.makedirs(run.checkpoints_dir)
    open(run.config, "w").write("{}")
    for epoch in (1, 2, 10):
        _fake_keras(run.checkpoint(epoch))
    open(os.path.join(run.checkpoints_dir, "epoch-011.keras.tmp.keras"), "w").write("partial, old naming")
    open(atomic.temporary_name(run.checkpoint(11)), "w").write("partial")
    export = root / "saved_models" / "r"
    export.mkdir(parents=True)
    (export / "saved_model.pb").write_text("pb")
    _fake_keras(export / "model.keras")
    run.link_export(str(export))
    return run, str(export)


def test_resolve_model_takes_run_directories_exports_and_keras_files(tmp_path):
    run, export = _fake_run(tmp_path)
    source = resolve_model(run.path)
    assert source.keras == run.checkpoint(10) and source.saved_model == os.path.realpath(export)
    assert source.config == run.config and source.run == run
    assert resolve_model(export).saved_model == export and resolve_model(export).keras.endswith("model.keras")
    assert resolve_model(run.checkpoint(2)).keras == run.checkpoint(2)
    with pytest.raises(ValueError, match="no such run directory"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="neither"):
        resolve_model(str(tmp_path))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a .keras model"):
        resolve_model(str(tmp_path / "notes.txt"))
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes(open(run.checkpoint(2), "rb").read()[:-30])
    with pytest.raises(ValueError, match="cut.keras: is corrupt or truncated"):
        resolve_model(str(truncated))


def test_latest_checkpoint_ignores_temporaries_and_resume_cleans_them(tmp_path):
    run, _ = _fake_run(tmp_path)
    assert run.latest_checkpoint() == (run.checkpoint(10), 10)
    assert len(run.remove_stale_temporaries()) == 2
    assert sorted(os.listdir(run.checkpoints_dir)) == ["epoch-001.keras", "epoch-002.keras", "epoch-010.keras"]


# --- rules of fit() that need no training -----------------------------------------------------------------

def test_export_target_is_replaced_only_when_it_is_this_runs_export(tmp_path):
    from facevae.training.trainer import ExportConflict, _check_export_target

    run = RunDir(str(tmp_path / "runs" / "photos"))
    os.makedirs(run.path)
    target = tmp_path / "data" / "photos"
    _check_export_target(run, str(target))  # nothing there: fine
    target.mkdir(parents=True)
    (target / "holiday.jpg").write_text("a user's photo")
    with pytest.raises(ExportConflict, match="already exists and is not an export of this run"):
        _check_export_target(run, str(target))
    (target / "saved_model.pb").write_text("pb")  # a SavedModel, but not this run's (no marker, no link to it)
    with pytest.raises(ExportConflict):
        _check_export_target(run, str(target))
    (target / EXPORT_MARKER).write_text(json.dumps({"run_dir": "/elsewhere/runs/photos"}))
    with pytest.raises(ExportConflict, match="holds the export of another run"):
        _check_export_target(run, str(target))
    (target / EXPORT_MARKER).write_text(json.dumps({"run_dir": run.identity}))
    _check_export_target(run, str(target))
    file_parent = tmp_path / "afile"
    file_parent.write_text("x")
    with pytest.raises(ValueError, match=f"--export-dir {file_parent}: is a file"):
        _check_export_target(run, str(file_parent / "photos"))


def test_default_run_names_do_not_collide_within_a_second(tmp_path, monkeypatch):
    from facevae.training import trainer

    monkeypatch.setattr(trainer.time, "strftime", lambda fmt: "20260101-000000")
    names = []
    for _ in range(3):
        config = preset("synthetic")
        config.train.output_dir, config.train.export_dir = str(tmp_path / "runs"), str(tmp_path / "saved")
        run, created = trainer._claim_new_run(config)
        assert created and config.train.run_name == run.name
        names.append(run.name)
    os.makedirs(tmp_path / "saved" / "synthetic-20260101-000000-4")  # an export of that name exists elsewhere
    config.train.run_name = None
    names.append(trainer._claim_new_run(config)[0].name)
    assert names == ["synthetic-20260101-000000", "synthetic-20260101-000000-2", "synthetic-20260101-000000-3",
                     "synthetic-20260101-000000-5"]


def test_resume_may_change_schedule_and_output_options_but_not_the_model_or_data():
    from facevae.training.trainer import ResumeConflict, resume_changes

    saved = preset("mnist")
    wanted = preset("mnist")
    wanted.train.learning_rate, wanted.train.epochs, wanted.train.keep_checkpoints = 1e-4, 40, 5
    assert resume_changes(saved, wanted) == {"train.epochs": [30, 40], "train.learning_rate": [1e-3, 1e-4],
                                             "train.keep_checkpoints": [3, 5]}
    wanted.model.latent_dim, wanted.data.image_size, wanted.model.image_size = 16, 32, 32
    wanted.data.dataset = "binarized_mnist"
    with pytest.raises(ResumeConflict) as error:
        resume_changes(saved, wanted)
    message = str(error.value)
    assert "--latent-dim (32 in config.json, 16 asked)" in message and "--image-size (28" in message
    assert "data.dataset ('mnist' in config.json, 'binarized_mnist' asked)" in message and "\n" not in message
    # it names what may change instead: every flag marked resume=True, --precise-bn-batches and --shift-until too
    assert "(--resume may change --shift-until, --refine-steps, --refine-rate, --epochs, --learning-rate, --lr-schedule, --steps-per-epoch, " \
           "--export-dir, --strategy, --jit-compile, --keep-checkpoints, --precise-bn-batches)" in message


def test_pruning_keeps_the_newest_and_the_best(tmp_path):
    from facevae.training.trainer import _prune_checkpoints

    run = RunDir(str(tmp_path))
    os.makedirs(run.checkpoints_dir)
    losses = {1: 5.0, 2: 1.0, 3: 4.0, 4: 3.0, 5: 3.5, 6: 2.0}
    for epoch, loss in losses.items():
        open(run.checkpoint(epoch), "w").write("x")
        _prune_checkpoints(run, 3, epoch, loss)
    assert [e for e, _ in run.checkpoints()] == [2, 4, 5, 6]
    assert json.load(open(run.best_checkpoint))["epoch"] == 2
    open(run.checkpoint(7), "w").write("x")
    _prune_checkpoints(run, 0, 7, float("nan"))  # 0 keeps all; a NaN is never the best
    assert [e for e, _ in run.checkpoints()] == [2, 4, 5, 6, 7]


def test_summary_line_says_higher_when_the_model_is_worse_than_the_mean_image():
    from facevae.train import summary_line

    metrics = {"validation": {"loss": 1.0}, "reconstruction_mse": 0.016, "mean_image_mse": 0.01,
               "mse_ratio": 0.01 / 0.016, "psnr_db": 18.0}
    assert "(1.6x higher)" in summary_line(metrics)
    metrics.update(reconstruction_mse=0.002, mse_ratio=5.0)
    assert "(5.0x lower)" in summary_line(metrics)


def test_earlier_training_time_is_known_only_from_a_session_that_ended_where_this_one_resumes(tmp_path):
    from facevae.training.trainer import _earlier_train_seconds

    run = RunDir(str(tmp_path))
    assert _earlier_train_seconds(run, 0) == 0.0  # a new run
    assert _earlier_train_seconds(run, 50) is None  # no metrics.json: the session before was interrupted
    open(run.metrics, "w").write(json.dumps({"epochs": 50, "train_seconds": 1200.5}))
    assert _earlier_train_seconds(run, 50) == 1200.5
    assert _earlier_train_seconds(run, 70) is None  # a later session was interrupted after epoch 50
    open(run.metrics, "w").write(json.dumps({"epochs": 50, "train_seconds_this_session": 1200.5}))
    assert _earlier_train_seconds(run, 50) is None  # an older file: its session may itself have been resumed
