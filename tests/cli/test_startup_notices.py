"""Issue 15 item 16: TensorFlow's start-up notices (absl pre-init warning, cudart_stub, cpu_feature_guard, cuInit,
oneDNN) do not reach a user's terminal from any command line, with no TF_CPP_MIN_LOG_LEVEL set by the user; what
the command itself says on stderr still does."""
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from data_prep.synthetic import generate_faces

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTICE = re.compile(r"absl::InitializeLog|cudart_stub|cuda_platform|cuInit|cpu_feature_guard|oneDNN|"
                    r"To enable the following instructions|^[IWE]\d{4} \d\d:\d\d:\d\d")


def _run(tmp_path, *command):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)


def _notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOTICE.search(line)]


def test_train_prints_its_error_and_no_tensorflow_start_up_lines(tmp_path):
    done = _run(tmp_path, "facevae.train", "--train-count", "16", "--batch-size", "32", "--image-size", "32",
                "--output-dir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "saved"))
    assert done.returncode == 2, done.stderr
    assert _notices(done.stderr) == []
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.strip()]
    assert len(done.stderr.splitlines()) == 1 and "fewer than one batch" in done.stderr, done.stderr


def test_data_prep_writes_and_inspects_shards_without_tensorflow_start_up_lines(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i, image in enumerate(generate_faces(12, size=32, seed=1)[0]):
        Image.fromarray(image).save(raw / f"{i:02d}.png")
    done = _run(tmp_path, "data_prep", "folder", "--src", str(raw), "--out", str(tmp_path / "shards"), "--size", "32",
                "--quiet", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert _notices(done.stderr) == []
    done = _run(tmp_path, "data_prep", "inspect", str(tmp_path / "shards"))
    assert done.returncode == 0, done.stderr
    assert _notices(done.stderr) == [] and done.stderr.strip() == "", done.stderr


def test_only_the_start_up_notices_are_filtered(capfd):
    """Lines written to file descriptor 2 inside filtered_stderr come out in order, less the notices."""
    from data_prep.quiet import filtered_stderr, is_startup_notice

    notices = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
               "I0000 00:00:1795987780.377334   14028 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
               "GPU will not be used.",
               "E0000 00:00:1795987787.913542   14028 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
               "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags."]
    kept = ["W0000 00:00:1795987787.913542   14028 op_kernel.cc:1857] OP_REQUIRES failed at a real problem",
            "UserWarning: something the user should see"]
    assert all(is_startup_notice(line) for line in notices) and not any(is_startup_notice(line) for line in kept)
    capfd.readouterr()
    with filtered_stderr():
        for line in (notices[0], kept[0], notices[1], notices[2], kept[1], notices[3]):
            os.write(2, (line + "\n").encode())
    assert capfd.readouterr().err.splitlines() == kept
