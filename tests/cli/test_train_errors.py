"""`python -m facevae.train` on the rough edges of issue 15: every mistake is one line naming the flag and the fix,
exit code 2, checked before training, and a failed start leaves nothing that blocks the same command afterwards."""
import json
import os
import zipfile

import pytest

from facevae import train

pytestmark = pytest.mark.integration

_TINY = ["--image-size", "32", "--latent-dim", "4", "--epochs", "1", "--batch-size", "8", "--train-count", "16",
         "--quiet"]


def _train(tmp_path, *args, name="r"):
    return train.main([*_TINY, "--output-dir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "saved"),
                       "--run-name", name, *args])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("python -m facevae.train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder this process cannot write into: a chmod 555 folder, or /sys/kernel when running as root."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        open(folder / "probe", "w").close()
    except OSError:
        yield str(folder)
        folder.chmod(0o755)
        return
    os.remove(folder / "probe")
    folder.chmod(0o755)
    try:
        open("/sys/kernel/facevae-probe", "w").close()
    except OSError:
        yield "/sys/kernel"
        return
    pytest.skip("no read-only folder available")


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_out_of_range_is_one_line_before_anything_is_written(tmp_path, capsys, seed):
    assert _train(tmp_path, "--seed", seed) == 2
    line = _one_error_line(capsys)
    assert "--seed" in line and seed in line and "4294967295" in line, line
    assert not os.path.exists(tmp_path / "runs" / "r")


def test_an_ema_momentum_of_one_is_one_line_before_anything_is_written(tmp_path, capsys):
    assert _train(tmp_path, "--ema-momentum", "1") == 2
    line = _one_error_line(capsys)
    assert "--ema-momentum" in line and "[0, 1)" in line, line
    assert not os.path.exists(tmp_path / "runs" / "r")


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    assert train.main([*_TINY, "--output-dir", str(tmp_path / "afile"), "--export-dir", str(tmp_path / "saved")]) == 2
    line = _one_error_line(capsys)
    assert "--output-dir" in line and "is a file" in line, line
    assert (tmp_path / "afile").read_text() == "mine"


def test_read_only_output_and_export_dirs_are_refused_before_training(tmp_path, capsys, read_only_dir):
    code = train.main([*_TINY, "--output-dir", os.path.join(read_only_dir, "runs"), "--export-dir",
                       str(tmp_path / "saved"), "--run-name", "a"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "--output-dir" in line and "not writable" in line, line

    assert _train(tmp_path, "--export-dir", read_only_dir, name="b") == 2
    line = _one_error_line(capsys)
    assert "--export-dir" in line and "not writable" in line, line
    assert not os.path.exists(tmp_path / "runs" / "b")  # refused before training: no run, no checkpoint


@pytest.mark.parametrize("flag, value", [("--latent-dim", "1000000000"), ("--train-count", "1000000000000")])
def test_sizes_that_cannot_fit_in_memory_are_one_line_and_leave_no_run_behind(tmp_path, capsys, flag, value):
    for _ in range(2):  # the same command again gets the same answer, not "already holds a run"
        assert _train(tmp_path, flag, value) == 2
        line = _one_error_line(capsys)
        assert "memory" in line and flag in line, line
        assert not os.path.exists(tmp_path / "runs" / "r")


@pytest.mark.parametrize("content, expected", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"data": 5}', "'data' must be an object"),
    ('{"train": {"epochs": "ten"}}', "train.epochs"),
    ('{"train": {"epochs": null}}', "train.epochs"),
    ('{"train": {"bogus": 1}}', "train.bogus"),
    ('{"model": {"filters": 3}}', "model.filters"),
    ('{"model": {"latent_dim": 2.5}}', "model.latent_dim"),
])
def test_garbage_or_ill_typed_config_json_on_resume_is_one_line(tmp_path, capsys, content, expected):
    run = tmp_path / "runs" / "g"
    run.mkdir(parents=True)
    (run / "config.json").write_text(content)
    assert train.main(["--resume", str(run), "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert str(run / "config.json") in line and expected in line, line
    assert sorted(os.listdir(run)) == ["config.json"]


def test_a_batch_larger_than_the_training_split_is_one_line_before_training(tmp_path, capsys):
    assert _train(tmp_path, "--batch-size", "32") == 2
    line = _one_error_line(capsys)
    assert "--batch-size 32" in line and "16" in line and "--train-count" in line, line
    assert not os.path.exists(tmp_path / "runs" / "r")


def test_a_tiny_training_split_says_how_many_steps_an_epoch_has(tmp_path, capsys):
    assert _train(tmp_path, "--train-count", "40", "--batch-size", "16") == 0
    out = capsys.readouterr().out
    assert "40 training images make 2 steps of 16 per epoch" in out, out
    assert "the last 8 images of each shuffled pass are dropped" in out, out


def test_a_truncated_keras_file_is_reported_as_corrupt(tmp_path, capsys):
    from facevae import evaluate

    assert _train(tmp_path, "--train-count", "16") == 0
    checkpoint = tmp_path / "runs" / "r" / "checkpoints" / "epoch-001.keras"
    assert zipfile.is_zipfile(checkpoint)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"truncated\.keras: .*corrupt") as error:
        evaluate.main(["--model", str(truncated)])
    assert "not found" not in str(error.value).lower()
    json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
