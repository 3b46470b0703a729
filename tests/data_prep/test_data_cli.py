"""`python -m data_prep` commands of the preparation helpers: folder, mnist, inspect, one-line errors."""
import json

import numpy as np
import pytest
from PIL import Image

from data_prep import cli
from data_files import random_images, write_images, write_mnist_folder


@pytest.fixture
def main(monkeypatch):
    """cli.main restricted to this branch's command modules (the synthetic command is tested on its own)."""
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["data_prep.prepare_cli", "data_prep.inspect_cli"])
    return cli.main


def test_folder_then_inspect_writes_a_contact_sheet(tmp_path, main, capsys):
    write_images(tmp_path / "src", random_images(10, 40))
    (tmp_path / "src" / "broken.png").write_text("no")
    code = main(["folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", "32", "--quiet"])
    output = capsys.readouterr().out
    assert code == 0 and "wrote 10 images (train 9, validation 1)" in output and "broken.png: not an image" in output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m data_prep folder --src")
    assert main(["inspect", str(tmp_path / "out"), "--verify"]) == 0
    output = capsys.readouterr().out
    assert "train      9 examples in 1 shards, 9 read back (OK)" in output and "checksums  all shards match" in output
    sheet = Image.open(tmp_path / "out" / "contact_sheet.png")
    assert sheet.size == (8 * 64, 2 * (64 + 14))


def test_mnist_contact_sheet_shows_the_digits(tmp_path, main, capsys):
    arrays = write_mnist_folder(tmp_path / "src", n_train=10, n_test=5)
    assert main(["mnist", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["inspect", str(tmp_path / "out"), "--split", "test", "--sheet", str(tmp_path / "s.png")]) == 0
    assert "labels     10 classes" in capsys.readouterr().out
    sheet = np.asarray(Image.open(tmp_path / "s.png").convert("L"))
    assert sheet.shape == (84 + 14, 8 * 84)  # 28 px digits enlarged 3x to reach at least 64 px
    tiles = [sheet[:84, 84 * i : 84 * (i + 1)][::3, ::3] for i in range(5)]
    assert {tile.tobytes() for tile in tiles} == {image.tobytes() for image in arrays["test"][0]}


def test_user_errors_are_one_line_with_exit_code_2(tmp_path, main, capsys):
    (tmp_path / "src").mkdir()
    assert main(["folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", "64"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "no image files" in error
    assert main(["inspect", str(tmp_path / "nothing")]) == 2
    assert "manifest.json: not found" in capsys.readouterr().err


def test_truncated_idx_file_fails_before_any_shard_is_written(tmp_path, main, capsys):
    write_mnist_folder(tmp_path / "src", compress=False)
    images = tmp_path / "src" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    assert main(["mnist", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{images}: IDX header announces shape (20, 28, 28)" in error
    assert not (tmp_path / "out").exists()


def test_ffhq_takes_channels_like_folder(tmp_path, main, capsys):
    """Issue 15: `data_prep ffhq --channels 1` makes grey shards (before: an unrecognized argument)."""
    write_images(tmp_path / "src", random_images(6, 40))
    code = main(["ffhq", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", "32",
                 "--channels", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["image_shape"] == [32, 32, 1] and "--channels 1" in manifest["command"]
