"""Training reads what data_prep makes: shards directly, or raw images prepared into a cache on first use."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_prep.synthetic import generate_faces

pytestmark = pytest.mark.integration


def _train(tmp_path, *args):
    env = {**os.environ, "FACEVAE_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "facevae.train", "--image-size", "32", "--latent-dim", "4", "--epochs", "1",
               "--batch-size", "8", "--output-dir", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "saved"),
               "--quiet", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)


def test_raw_folder_is_prepared_once_into_the_cache_then_reused(tmp_path):
    images, _ = generate_faces(40, size=48, seed=3)
    raw = tmp_path / "my_faces"
    raw.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(raw / f"face{i:03d}.png")

    first = _train(tmp_path, "--dataset", "folder", "--data-dir", str(raw), "--run-name", "a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "preparing shards into" in first.stdout
    cached = os.listdir(tmp_path / "cache" / "shards")
    assert len(cached) == 1 and cached[0].startswith("my_faces-") and cached[0].endswith("-folder-32px")
    assert not os.path.exists(str(raw) + "-shards") and sorted(os.listdir(raw))[0] == "face000.png"

    second = _train(tmp_path, "--dataset", "folder", "--data-dir", str(raw), "--run-name", "b")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "using the shards prepared from it" in second.stdout
    assert os.path.exists(tmp_path / "runs" / "b" / "export" / "saved_model.pb")


def test_a_split_smaller_than_one_batch_is_a_one_line_error(tmp_path):
    raw = tmp_path / "few"
    raw.mkdir()
    for i, image in enumerate(generate_faces(6, size=32)[0]):
        Image.fromarray(image).save(raw / f"{i}.png")
    done = _train(tmp_path, "--dataset", "folder", "--data-dir", str(raw), "--run-name", "c")
    assert done.returncode == 2
    assert "fewer than one batch (--batch-size 8): an epoch would have no step; pass --batch-size" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
