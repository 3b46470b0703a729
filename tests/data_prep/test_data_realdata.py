"""data_prep on the real files in ../shared/data (skipped when that folder is absent)."""
import gzip

import numpy as np
import pytest

from data_prep.attributes import read_attributes
from data_prep.inspection import read_examples
from data_prep.pipeline import load
from data_prep.prepare import prepare_dataset

pytestmark = pytest.mark.realdata


def _labels_from_idx(path):
    data = gzip.decompress(path.read_bytes())
    return np.frombuffer(data, np.uint8, offset=8)


def test_mnist_files_give_60000_and_10000_with_the_label_histograms(shared_data, tmp_path):
    manifest = prepare_dataset("mnist", str(shared_data / "mnist"), str(tmp_path / "mnist"), progress=False)
    assert manifest["splits"] == {"train": 60_000, "test": 10_000}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        expected = np.bincount(_labels_from_idx(shared_data / "mnist" / f"{prefix}-labels-idx1-ubyte.gz"), minlength=10)
        labels = np.concatenate([y.numpy() for _, y in load(str(tmp_path / "mnist"), split, 10_000, training=False,
                                                             with_labels=True)])
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), expected)
    assert len(expected) == 10 and expected.sum() == 10_000


def test_binarized_mnist_gives_50000_10000_10000(shared_data, tmp_path):
    manifest = prepare_dataset("binarized_mnist", str(shared_data / "binarized_mnist"), str(tmp_path / "b"),
                               progress=False)
    assert manifest["splits"] == {"train": 50_000, "validation": 10_000, "test": 10_000}
    images = next(iter(load(str(tmp_path / "b"), "test", 10_000, training=False))).numpy()
    assert set(np.unique(images)) == {0.0, 1.0} and images.shape == (10_000, 28, 28, 1)


@pytest.mark.parametrize("size", [64, 128])
def test_twelve_ffhq_faces_convert_and_join_their_attributes(shared_data, tmp_path, size):
    features = shared_data / "ffhq_features" / "ffhq_features.csv"
    manifest = prepare_dataset("ffhq", str(shared_data / "ffhq_sample"), str(tmp_path / "ffhq"), size=size,
                               attributes=str(features), progress=False)
    # all twelve are FFHQ training images, so the split falls back to a seeded 10%
    assert manifest["splits"] == {"train": 11, "validation": 1} and manifest["skipped"]["count"] == 0
    assert "no FFHQ validation images" in manifest["split_rule"]
    assert manifest["notes"] == {"opaque alpha dropped": 2}  # 00014 and 00015 are RGBA
    parts = [read_examples(str(tmp_path / "ffhq"), split) for split in ("train", "validation")]
    read = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    assert sorted(read["index"].tolist()) == [*range(10), 14, 15]
    assert read["image"].shape == (12, size, size, 3) and read["image"].std() > 20
    table = read_attributes(str(features))
    np.testing.assert_array_equal(read["attributes"], np.stack([table.rows[i] for i in read["index"]]))


def test_ffhq_1k_with_named_held_out_faces_and_joined_attributes(shared_data, tmp_path):
    """`python -m data_prep ffhq --validation-indices 1000-1100` on the 1,100 real faces (01099 is absent)."""
    features = shared_data / "ffhq_features" / "ffhq_features.csv"
    out = str(tmp_path / "ffhq_1k")
    manifest = prepare_dataset("ffhq", str(shared_data / "ffhq_1k"), out, size=64, attributes=str(features),
                               validation_indices="1000-1100", progress=False)
    assert manifest["skipped"]["count"] == 0
    assert manifest["splits"] == {"train": 1000, "validation": 100}
    assert manifest["split_method"] == "validation_indices"
    parts = {split: read_examples(out, split) for split in ("train", "validation")}
    assert sorted(parts["train"]["index"].tolist()) == list(range(1000))
    assert sorted(parts["validation"]["index"].tolist()) == [i for i in range(1000, 1101) if i != 1099]
    table = read_attributes(str(features))
    names = manifest["attribute_names"]
    attributes = np.concatenate([parts[split]["attributes"] for split in parts])
    indices = np.concatenate([parts[split]["index"] for split in parts])
    np.testing.assert_array_equal(attributes, np.stack([table.rows[i] for i in indices]))
    # The README's figures (1,091 detected, 694 smile > 0.5, 215 glasses, 495 male) count the table's rows
    # 0-1100, including 1099, whose image is absent: a detected, smiling woman with reading glasses.
    keys = ("face_detected", "smiling", "glasses", "male")
    counts = {name: int(np.nansum(attributes[:, names.index(name)])) for name in keys}
    assert counts == {"face_detected": 1090, "smiling": 693, "glasses": 214, "male": 495}
    with_1099 = np.stack([table.rows[i] for i in range(1101)])
    assert {name: int(np.nansum(with_1099[:, names.index(name)])) for name in keys} == {
        "face_detected": 1091, "smiling": 694, "glasses": 215, "male": 495}
