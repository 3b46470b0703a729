"""Shards are checked against their manifest before they are read (issue 15 item 6 and its one-line errors).

Every failure is a DataError subclass (ManifestError, ShardError) whose one-line message names the
file and the fix; the command line prints it with exit code 2.
"""
import json
import os
import shutil

import numpy as np
import pytest

import data_prep.storage as storage
from data_prep import cli
from data_prep.errors import DataError, ManifestError, ShardError
from data_prep.pipeline import load
from data_prep.prepare import prepare_dataset
from data_files import random_images, write_images


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_PREP_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def shards(tmp_path_factory):
    """Fresh shards: 24 train images in 3 raw shards of equal size, 6 validation images in 1 shard."""
    root = tmp_path_factory.mktemp("shards")
    write_images(root / "src", random_images(30, 16))
    manifest = prepare_dataset("folder", str(root / "src"), str(root / "out"), size=32, shards=3,
                               validation_fraction=0.2, progress=False)
    return root / "out", manifest


def _read_all(out, split="train", **options):
    return np.concatenate(list(load(str(out), split, 8, training=False, **options).as_numpy_iterator()))


def _flip_a_byte(path):
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        value = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([value[0] ^ 0xFF]))


def test_error_classes_are_data_errors():
    assert issubclass(ManifestError, DataError) and issubclass(ShardError, DataError)
    assert issubclass(DataError, ValueError)


def test_a_rewritten_shard_is_caught_by_its_checksum_even_after_a_verified_load(shards):
    out, manifest = shards
    assert _read_all(out).shape == (24, 32, 32, 3)
    victim = out / manifest["shards"][1]["file"]
    _flip_a_byte(victim)
    with pytest.raises(ShardError, match=f"{victim}: SHA-256 differs from the manifest .* re-run `python -m data_prep "
                                         f"folder .* --overwrite` to write the shards again"):
        load(str(out), "train", 8)
    load(str(out), "train", 8, verify=False)  # asked not to hash: the size still matches


def test_auto_hashes_each_shard_file_once_until_it_changes(shards, monkeypatch):
    out, manifest = shards
    hashed = []
    real = storage.sha256_of
    monkeypatch.setattr(storage, "sha256_of", lambda path: hashed.append(os.path.basename(path)) or real(path))
    train = sorted(shard["file"] for shard in manifest["shards"] if shard["split"] == "train")
    load(str(out), "train", 8)
    assert sorted(hashed) == train
    load(str(out), "train", 8)
    load(str(out), "train", 8, verify="auto")
    assert sorted(hashed) == train  # remembered: not hashed again
    os.utime(out / train[0], ns=(1, 1))  # a changed modification time: hashed again
    load(str(out), "train", 8)
    assert sorted(hashed) == sorted([*train, train[0]])
    load(str(out), "train", 8, verify=True)
    assert len(hashed) == 7


def test_two_swapped_shards_of_equal_size_are_caught(shards):
    out, manifest = shards
    first, second = (shard for shard in manifest["shards"] if shard["split"] == "train" and shard["file"].endswith(
        ("00000-of-00003.tfrecord", "00001-of-00003.tfrecord")))
    assert first["bytes"] == second["bytes"] and first["sha256"] != second["sha256"]
    _read_all(out)  # verified and remembered before the swap
    os.rename(out / first["file"], out / "swap")
    os.rename(out / second["file"], out / first["file"])
    os.rename(out / "swap", out / second["file"])
    with pytest.raises(ShardError, match="SHA-256 differs from the manifest .*swapped with another shard"):
        load(str(out), "train", 8)


def test_truncated_and_missing_shards(shards):
    out, manifest = shards
    victim = out / manifest["shards"][0]["file"]
    size = victim.stat().st_size
    with open(victim, "r+b") as handle:
        handle.truncate(size - 100)
    with pytest.raises(ShardError, match=f"{victim}: {size - 100:,} bytes but the manifest says {size:,} "
                                         r"\(truncated, rewritten or swapped"):
        load(str(out), "train", 8)
    victim.unlink()
    with pytest.raises(ShardError, match=f"{victim}: listed in .*manifest.json but missing; re-run"):
        load(str(out), "train", 8)


def _edit_manifest(out, change):
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", ["../outside.tfrecord", "/etc/passwd", "sub/train.tfrecord", ".."])
def test_shard_names_that_are_not_plain_file_names_are_rejected(shards, name):
    out, manifest = shards
    shutil.copy(out / manifest["shards"][0]["file"], out.parent / "outside.tfrecord")
    _edit_manifest(out, lambda m: m["shards"][0].update(file=name))
    with pytest.raises(ManifestError, match=f"manifest.json: shard name '{name}' is not a plain file name in this "
                                            r"directory \(no '/', '..' or absolute path\)"):
        load(str(out), "train", 8)


@pytest.mark.parametrize("shape, shown", [([32, 32], r"\[32, 32\]"), ([32, 32, "3"], r"\[32, 32, '3'\]"),
                                          ([0, 32, 3], r"\[0, 32, 3\]"), ([32, 32, 2], r"\[32, 32, 2\]"),
                                          ("32x32x3", "'32x32x3'")])
def test_ill_formed_image_shape_is_one_clear_error(shards, shape, shown):
    out, _ = shards
    _edit_manifest(out, lambda m: m.update(image_shape=shape))
    with pytest.raises(ManifestError, match=f"manifest.json: image_shape {shown} is not \\[height, width, channels\\] "
                                            "with positive sizes and 1 or 3 channels; move it away and re-run"):
        load(str(out), "train", 8)


def test_manifest_that_is_not_json_or_disagrees_with_its_shards(shards):
    out, _ = shards
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(ManifestError, match=r"manifest.json: not valid JSON \(.*\); move it away and re-run the "
                                            "command that prepared these shards with --overwrite"):
        load(str(out), "train", 8)
    (out / "manifest.json").write_text(text)
    _edit_manifest(out, lambda m: m["splits"].update(train=25))
    with pytest.raises(ManifestError, match=r"splits \{'train': 25, 'validation': 6\} disagree with the shards' counts"):
        load(str(out), "train", 8)
    (out / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="holds a JSON list, not an object"):
        load(str(out), "train", 8)


@pytest.fixture
def main(monkeypatch):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["data_prep.prepare_cli", "data_prep.inspect_cli"])
    return cli.main


def test_inspect_on_a_corrupt_shard_is_one_line(shards, main, capsys):
    out, manifest = shards
    victim = out / manifest["shards"][0]["file"]
    _flip_a_byte(victim)
    assert main(["inspect", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: {victim}: corrupt shard, cannot be read (")
    assert error.rstrip().endswith("--overwrite` to write the shards again")
    assert main(["inspect", str(out), "--verify"]) == 2
    assert f"{victim}: SHA-256 differs" in capsys.readouterr().err
    _edit_manifest(out, lambda m: m.update(image_shape=[32, 32]))
    assert main(["inspect", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "image_shape [32, 32] is not [height, width, channels]" in error
