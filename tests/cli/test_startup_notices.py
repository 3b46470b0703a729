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
