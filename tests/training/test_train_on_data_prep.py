"""Training reads what data_prep makes: shards directly, or raw images prepared into a cache on first use."""
import json
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


def _grey_shards(tmp_path):
    from data_prep.prepare import prepare_dataset

    raw = tmp_path / "grey_faces"
    raw.mkdir()
    for i, image in enumerate(generate_faces(24, size=32, seed=5)[0]):
        Image.fromarray(image).convert("L").save(raw / f"{i:02d}.png")
    shards = tmp_path / "grey_shards"
    prepare_dataset("folder", str(raw), str(shards), size=32, channels=1, progress=False, workers=1)
    return shards


def test_grey_shards_train_from_the_command_line_with_channels_from_the_manifest(tmp_path):
    """Issue 15 item 12: channels come from the shards' manifest; a contradicting --channels names --channels."""
    shards = _grey_shards(tmp_path)
    done = _train(tmp_path, "--dataset", "folder", "--data-dir", str(shards), "--run-name", "grey")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((shards / "manifest.json").read_text())
    train_images = manifest["splits"]["train"]  # 24 less the seeded validation share: 2 steps of 8 (item 11)
    assert f"{train_images} training images make 2 steps of 8 per epoch; the last {train_images - 16} images" \
        in done.stdout, done.stdout
    config = json.loads((tmp_path / "runs" / "grey" / "config.json").read_text())
    assert config["data"]["channels"] == config["model"]["channels"] == 1

    done = _train(tmp_path, "--dataset", "folder", "--data-dir", str(shards), "--channels", "3", "--run-name", "rgb")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "1-channel (grey)" in line and "--channels 1" in line and "--image-size" not in line, line


def test_a_raw_folder_with_an_attribute_table_is_prepared_with_its_attributes(tmp_path):
    """Issue 15 item 13: --attributes TABLE beside a raw --data-dir goes into the prepared shards."""
    raw = tmp_path / "faces"
    raw.mkdir()
    rows = ["filename,Smiling,Eyeglasses"]
    for i, image in enumerate(generate_faces(24, size=32, seed=7)[0]):
        Image.fromarray(image).save(raw / f"{i:02d}.png")
        rows.append(f"{i:02d}.png,{1 if i % 2 else -1},{1 if i % 3 == 0 else -1}")
    table = tmp_path / "attrs.csv"
    table.write_text("\n".join(rows) + "\n")
    done = _train(tmp_path, "--dataset", "folder", "--data-dir", str(raw), "--attributes", str(table),
                  "--run-name", "attrs")
    assert done.returncode == 0, done.stderr[-3000:]
    (cached,) = os.listdir(tmp_path / "cache" / "shards")
    manifest = json.loads((tmp_path / "cache" / "shards" / cached / "manifest.json").read_text())
    assert manifest["attribute_names"] == ["smiling", "eyeglasses"]
    assert manifest["source"]["attributes"] == str(table)
    config = json.loads((tmp_path / "runs" / "attrs" / "config.json").read_text())
    assert config["data"]["attributes"] == str(table)

    # the same folder without the table is another preparation, not the cache with attributes
    done = _train(tmp_path, "--dataset", "folder", "--data-dir", str(raw), "--run-name", "plain")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(os.listdir(tmp_path / "cache" / "shards")) == 2
