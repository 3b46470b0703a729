"""data_prep.prepare: sources -> shards -> the same pixels, labels, indices and splits back."""
import os

import numpy as np
import pytest
from PIL import Image

import data_prep.writer as writer
from data_prep.errors import DataError
from data_prep.inspection import read_examples
from data_prep.manifest import read_manifest
from data_prep.prepare import prepare_dataset, report_lines
from data_files import random_images, write_ffhq_csv, write_images, write_mnist_folder


def _by_index(examples):
    order = np.argsort(examples["index"])
    return {key: value[order] for key, value in examples.items()}


def _leftovers(out):
    return [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_mnist_idx_round_trip_is_exact(tmp_path):
    written = write_mnist_folder(tmp_path / "src", n_train=50, n_test=20)
    manifest = prepare_dataset("mnist", str(tmp_path / "src"), str(tmp_path / "out"), shards=3, progress=False)
    assert manifest["splits"] == {"train": 50, "test": 20}
    assert manifest["num_classes"] == 10 and manifest["image_shape"] == [28, 28, 1]
    for split, (images, labels) in written.items():
        read = _by_index(read_examples(str(tmp_path / "out"), split))
        assert set(read["index"].tolist()) == set(range(len(images)))
        np.testing.assert_array_equal(read["image"][..., 0], images)
        np.testing.assert_array_equal(read["label"], labels)
    assert [s["count"] for s in manifest["shards"] if s["split"] == "train"] == [17, 17, 16]


def test_folder_round_trip_is_exact_and_split_by_fraction(tmp_path):
    images = random_images(30, 32)
    write_images(tmp_path / "src" / "a", images[:15])
    write_images(tmp_path / "src" / "b", images[15:], names=[f"{i:05d}" for i in range(15, 30)])
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32,
                               validation_fraction=0.2, shards=2, progress=False)
    assert manifest["splits"] == {"train": 24, "validation": 6}
    train = read_examples(str(tmp_path / "out"), "train")
    validation = read_examples(str(tmp_path / "out"), "validation")
    indices = np.concatenate([train["index"], validation["index"]])
    assert sorted(indices.tolist()) == list(range(30))
    both = _by_index({key: np.concatenate([train[key], validation[key]]) for key in train})
    np.testing.assert_array_equal(both["image"], images)
    assert _leftovers(tmp_path / "out") == [] and not (tmp_path / "out" / writer.STATE_NAME).exists()


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    write_images(tmp_path / "src", random_images(40, 16))
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / name), size=32, seed=seed,
                                     shards=2, progress=False)
    assert [s["sha256"] for s in runs["a"]["shards"]] == [s["sha256"] for s in runs["b"]["shards"]]
    held_out = {name: set(read_examples(str(tmp_path / name), "validation")["index"].tolist()) for name in runs}
    assert held_out["a"] == held_out["b"] and held_out["a"] != held_out["c"] and len(held_out["c"]) == 4


def test_worker_pool_writes_the_same_shards_as_one_process(tmp_path, monkeypatch):
    write_images(tmp_path / "src", random_images(70, 16))  # 3 chunks of files -> the spawn pool is used
    one = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "one"), size=28, workers=1, progress=False)
    contexts = []
    real_get_context = writer.multiprocessing.get_context
    monkeypatch.setattr(writer.multiprocessing, "get_context", lambda method: contexts.append(method) or real_get_context(method))
    two = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "two"), size=28, workers=2, progress=False)
    assert contexts == ["spawn"]
    assert [s["sha256"] for s in one["shards"]] == [s["sha256"] for s in two["shards"]]


def test_ffhq_split_and_attribute_join(tmp_path):
    indices = [1, 2, 59999, 60000, 65432, 69999]
    write_images(tmp_path / "src" / "00000", random_images(6, 40), names=[f"{i:05d}" for i in indices])
    write_ffhq_csv(tmp_path / "features.csv", [*indices, 7])  # row 7 (no face) has no image: fine
    manifest = prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32,
                               attributes=str(tmp_path / "features.csv"), progress=False)
    assert manifest["splits"] == {"train": 3, "validation": 3}
    from data_prep.attributes import read_attributes

    table = read_attributes(str(tmp_path / "features.csv"))
    assert manifest["attribute_names"] == table.names
    for split, expected in (("train", [1, 2, 59999]), ("validation", [60000, 65432, 69999])):
        read = _by_index(read_examples(str(tmp_path / "out"), split))
        assert read["index"].tolist() == expected
        np.testing.assert_array_equal(read["attributes"], np.stack([table.rows[i] for i in expected]))


def test_ffhq_subset_without_validation_indices_falls_back_to_the_seeded_fraction(tmp_path):
    write_images(tmp_path / "src", random_images(20, 32), names=[f"{i:05d}" for i in range(100, 120)])
    manifest = prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32, progress=False)
    assert manifest["splits"] == {"train": 18, "validation": 2}
    assert "no FFHQ validation images" in manifest["split_rule"]


def test_folder_of_numbered_files_joins_an_index_keyed_csv(tmp_path):
    write_images(tmp_path / "src" / "images", random_images(6, 32), names=[f"{i:06d}" for i in range(6)])
    (tmp_path / "src" / "attributes.csv").write_text("index,smiling,scale\n" + "".join(
        f"{i},{i % 2},{i / 10}\n" for i in range(6)))
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32, validation_fraction=0,
                               attributes=str(tmp_path / "src" / "attributes.csv"), progress=False)
    read = _by_index(read_examples(str(tmp_path / "out"), "train"))
    assert manifest["attribute_names"] == ["smiling", "scale"] and read["index"].tolist() == list(range(6))
    np.testing.assert_allclose(read["attributes"], [[i % 2, i / 10] for i in range(6)])
    write_images(tmp_path / "named", random_images(2, 32), names=["anna", "bert"])
    with pytest.raises(DataError, match="joins rows by image index but the file names in .*named are not numbers"):
        prepare_dataset("folder", str(tmp_path / "named"), str(tmp_path / "out2"), size=32,
                        attributes=str(tmp_path / "src" / "attributes.csv"), progress=False)


def test_ffhq_rejects_names_that_are_not_indices(tmp_path):
    write_images(tmp_path / "src", random_images(2, 8), names=["00001", "face"])
    with pytest.raises(DataError, match=r"face.png: not an FFHQ file name .* use `python -m data_prep folder`"):
        prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32, progress=False)


def _mixed_folder(folder):
    write_images(folder, random_images(12, 32))
    (folder / "zero.png").write_bytes(b"")
    (folder / "notes.png").write_text("not a picture")
    good = (folder / "00000.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(folder / "deep.png")


def test_bad_files_among_good_ones_are_skipped_and_reported(tmp_path):
    _mixed_folder(tmp_path / "src")
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32,
                               validation_fraction=0.0, progress=False)
    assert manifest["splits"] == {"train": 14, "validation": 0}
    reasons = {os.path.basename(entry["file"]): entry["reason"] for entry in manifest["skipped"]["files"]}
    assert sorted(reasons) == ["cut.png", "notes.png", "zero.png"]
    for name, reason in reasons.items():
        assert reason.startswith(str(tmp_path / "src" / name)) and "\n" not in reason
    assert manifest["notes"] == {"CMYK": 1, "16-bit": 1, "grey to RGB": 1}  # deep.png is 16-bit grey
    report = "\n".join(report_lines(manifest))
    assert "wrote 14 images" in report and "skipped 3 file(s)" in report and "zero.png: empty file" in report
    deep = read_examples(str(tmp_path / "out"), "train")
    assert _leftovers(tmp_path / "out") == [] and len(deep["image"]) == 14


@pytest.mark.parametrize("make", ["cut", "zero", "text"])
def test_a_folder_of_only_bad_files_fails_naming_the_file_and_leaves_nothing(tmp_path, make):
    (tmp_path / "src").mkdir()
    path = tmp_path / "src" / "only.png"
    {"cut": lambda: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30), "zero": lambda: path.write_bytes(b""),
     "text": lambda: path.write_text("hello")}[make]()
    with pytest.raises(DataError, match=f"no usable image among 1 file.*{path}"):
        prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32, progress=False)
    assert os.listdir(tmp_path / "out") == []


def test_empty_folder_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no image files"):
        prepare_dataset("folder", str(tmp_path / "empty"), str(tmp_path / "out"), size=32, progress=False)
    with pytest.raises(DataError, match="absent: no such folder"):
        prepare_dataset("folder", str(tmp_path / "absent"), str(tmp_path / "out"), size=32, progress=False)


def test_attribute_table_missing_rows_stops_or_skips(tmp_path):
    write_images(tmp_path / "src", random_images(5, 16))
    write_ffhq_csv(tmp_path / "features.csv", [0, 1, 2])
    with pytest.raises(DataError, match=r"features.csv: no row for 2 of 5 images \(e.g. 00003.png, 00004.png\)"):
        prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32,
                        attributes=str(tmp_path / "features.csv"), progress=False)
    assert not (tmp_path / "out").exists()
    manifest = prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32,
                               attributes=str(tmp_path / "features.csv"), missing_attributes="skip", progress=False)
    assert manifest["splits"]["train"] == 3 and manifest["skipped"]["count"] == 2


def test_interrupted_run_resumes_with_only_the_missing_shards(tmp_path, monkeypatch):
    write_images(tmp_path / "src", random_images(40, 16))
    args = ("folder", str(tmp_path / "src"), str(tmp_path / "out"))
    options = dict(size=32, shards=4, validation_fraction=0.0, progress=False)
    real_write_one, written = writer._write_one, []

    def interrupted(out, plan, *rest):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(plan.name)
        return real_write_one(out, plan, *rest)

    monkeypatch.setattr(writer, "_write_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(*args, **options)
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == sorted([*written, writer.STATE_NAME])  # two whole shards, no .tmp, no manifest
    kept = {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in written}

    def counting(out, plan, *rest):
        written.append(plan.name)
        return real_write_one(out, plan, *rest)

    monkeypatch.setattr(writer, "_write_one", counting)
    manifest = prepare_dataset(*args, **options)
    assert len(written) == 4 and set(written[2:]).isdisjoint(written[:2])
    assert {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in kept} == kept
    fresh = prepare_dataset(args[0], args[1], str(tmp_path / "fresh"), **options)
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in fresh["shards"]]
    again = prepare_dataset(*args, **options)  # finished: returned as is, nothing written
    assert len(written) == 8 and again["fingerprint"] == manifest["fingerprint"]


def test_other_settings_into_a_finished_directory_need_overwrite(tmp_path):
    write_images(tmp_path / "src", random_images(6, 16))
    out = str(tmp_path / "out")
    prepare_dataset("folder", str(tmp_path / "src"), out, size=32, progress=False)
    with pytest.raises(DataError, match="already holds shards prepared from other data or settings"):
        prepare_dataset("folder", str(tmp_path / "src"), out, size=28, progress=False)
    manifest = prepare_dataset("folder", str(tmp_path / "src"), out, size=28, overwrite=True, progress=False)
    assert read_manifest(out)["image_shape"] == [28, 28, 3] == manifest["image_shape"]
    assert sorted(os.listdir(out)) == sorted(["manifest.json", *[s["file"] for s in manifest["shards"]]])


def test_binarized_mnist_amat_gives_three_splits_of_0_and_255(tmp_path):
    rng = np.random.default_rng(0)
    values = {}
    for key, n in (("train", 5), ("valid", 3), ("test", 2)):
        values[key] = rng.integers(0, 2, (n, 784), dtype=np.uint8)
        text = "\n".join(" ".join(map(str, row)) for row in values[key])
        (tmp_path / f"binarized_mnist_{key}.amat").write_text(text)
    manifest = prepare_dataset("binarized-mnist", str(tmp_path), str(tmp_path / "out"), progress=False)
    assert manifest["splits"] == {"train": 5, "validation": 3, "test": 2} and manifest["pixel_values"] == "binary"
    read = _by_index(read_examples(str(tmp_path / "out"), "validation"))
    np.testing.assert_array_equal(read["image"].reshape(3, 784), values["valid"] * 255)


def test_grayscale_folder_keeps_luma(tmp_path):
    images = random_images(4, 32)
    write_images(tmp_path / "src", images)
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32, channels=1,
                               validation_fraction=0.0, progress=False)
    assert manifest["image_shape"] == [32, 32, 1] and manifest["notes"] == {"colour to grey": 4}
    read = _by_index(read_examples(str(tmp_path / "out"), "train"))
    luma = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in images])
    np.testing.assert_array_equal(read["image"][..., 0], luma)


def test_argument_errors(tmp_path):
    with pytest.raises(DataError, match=r"Received: shards=0"):
        prepare_dataset("mnist", str(tmp_path), str(tmp_path / "out"), shards=0)
    with pytest.raises(DataError, match=r"--size must be between 28 and 1024.*size=2000"):
        prepare_dataset("folder", str(tmp_path), str(tmp_path / "out"), size=2000)
    with pytest.raises(DataError, match=r"not resized. Received: size=64"):
        prepare_dataset("mnist", str(tmp_path), str(tmp_path / "out"), size=64)
    with pytest.raises(ValueError, match=r"Unknown kind 'cifar'; expected one of \['ffhq'"):
        prepare_dataset("cifar", str(tmp_path), str(tmp_path / "out"))


def test_ffhq_validation_indices_name_the_held_out_faces(tmp_path):
    indices = [*range(0, 12), 60001]
    write_images(tmp_path / "src", random_images(len(indices), 32), names=[f"{i:05d}" for i in indices])
    out = str(tmp_path / "out")
    manifest = prepare_dataset("ffhq", str(tmp_path / "src"), out, size=32, validation_indices="3-5,9,60001,20-30",
                               progress=False)
    assert manifest["splits"] == {"train": 8, "validation": 5}
    assert manifest["split_method"] == "validation_indices" and manifest["validation_indices"] == "3-5,9,60001,20-30"
    assert "5 of the 16 indices asked are present" in manifest["split_rule"]
    assert "--validation-indices 3-5,9,60001,20-30" in manifest["command"]
    assert sorted(read_examples(out, "validation")["index"].tolist()) == [3, 4, 5, 9, 60001]
    default = prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "default"), size=32, progress=False)
    assert default["split_method"] == "ffhq_index_range" and default["splits"] == {"train": 12, "validation": 1}


@pytest.mark.parametrize("spec, message", [
    ("10-5", r"--validation-indices '10-5': range '10-5' ends before it starts; write it as 5-10"),
    ("1000-x", r"--validation-indices '1000-x': '1000-x' is not an index or a range A-B"),
    ("69990-70000", r"index 70000 is beyond the last one, 69999"),
    ("500-600", r"--validation-indices 500-600: no image has one of these indices"),
])
def test_ffhq_validation_indices_errors(tmp_path, spec, message):
    write_images(tmp_path / "src", random_images(3, 32))
    with pytest.raises(DataError, match=message):
        prepare_dataset("ffhq", str(tmp_path / "src"), str(tmp_path / "out"), size=32, validation_indices=spec,
                        progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="--validation-indices applies to ffhq"):
        prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32, validation_indices="1")


def test_grey_sources_say_what_was_done_and_can_keep_one_channel(tmp_path, capsys):
    from data_prep import cli

    grey = random_images(5, 32, channels=1)
    write_images(tmp_path / "src", grey)
    args = ["folder", "--src", str(tmp_path / "src"), "--size", "32", "--validation-fraction", "0", "--quiet"]
    assert cli.main([*args, "--out", str(tmp_path / "rgb")]) == 0
    output = capsys.readouterr().out
    assert "converted: grey to RGB 5" in output
    assert "every source image is grey, stored as 3 equal channels; pass --channels 1 to keep one channel" in output
    assert read_manifest(str(tmp_path / "rgb"))["notes"] == {"grey to RGB": 5}
    rgb = _by_index(read_examples(str(tmp_path / "rgb"), "train"))["image"]
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, axis=-1))
    assert cli.main([*args, "--out", str(tmp_path / "grey"), "--channels", "1"]) == 0
    output = capsys.readouterr().out
    assert "wrote 5 images (train 5, validation 0) of 32x32x1" in output and "converted" not in output
    manifest = read_manifest(str(tmp_path / "grey"))
    assert manifest["image_shape"] == [32, 32, 1] and manifest["notes"] == {} and "--channels 1" in manifest["command"]
    np.testing.assert_array_equal(_by_index(read_examples(str(tmp_path / "grey"), "train"))["image"], grey)
