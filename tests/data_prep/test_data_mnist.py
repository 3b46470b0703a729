"""data_prep.mnist: IDX, npz, .amat and .mat readers validate what they read."""
import gzip

import numpy as np
import pytest
import scipy.io

from data_prep.errors import DataError
from data_prep.mnist import read_amat, read_binarized_mnist, read_idx, read_mat, read_mnist
from data_files import write_idx, write_mnist_folder


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder_round_trip(tmp_path, compress):
    written = write_mnist_folder(tmp_path, compress=compress)
    read = read_mnist(str(tmp_path))
    assert sorted(read) == ["test", "train"]
    for split, (images, labels) in written.items():
        np.testing.assert_array_equal(read[split][0], images)
        np.testing.assert_array_equal(read[split][1], labels)


def test_kaggle_dotted_file_names_are_found(tmp_path):
    written = write_mnist_folder(tmp_path, compress=False)
    for path in tmp_path.iterdir():
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    np.testing.assert_array_equal(read_mnist(str(tmp_path))["train"][0], written["train"][0])


def test_keras_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), "y_train": rng.integers(0, 10, 7, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    for src in (tmp_path, tmp_path / "mnist.npz"):
        read = read_mnist(str(src))
        np.testing.assert_array_equal(read["test"][0], arrays["x_test"])
        np.testing.assert_array_equal(read["train"][1], arrays["y_train"])


def test_wrong_magic_number_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8), 2049 + 0x100)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: IDX magic number is 2305, expected 2051"):
        read_idx(str(path), 2051)


def test_labels_file_given_as_images_is_caught_by_magic(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(5, np.uint8), 2049)
    with pytest.raises(DataError, match="expected 2051"):
        read_idx(str(path), 2051)


def test_truncated_idx_payload_and_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "images", np.zeros((3, 28, 28), np.uint8), 2051, compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"images: IDX header announces shape \(3, 28, 28\) = 2,352 bytes.*2,342"):
        read_idx(str(path), 2051)
    zipped = tmp_path / "images.gz"
    zipped.write_bytes(gzip.compress(b"\x00" * 4000)[:-30])
    with pytest.raises(DataError, match="images.gz: truncated or corrupt gzip"):
        read_idx(str(zipped), 2051)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(str(tmp_path / "tiny"), 2051)


def test_label_and_image_count_mismatch(tmp_path):
    write_mnist_folder(tmp_path, n_train=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), 2049)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: holds 4 labels but .*train-images.* holds 5 images"):
        read_mnist(str(tmp_path))


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no MNIST files"):
        read_mnist(str(tmp_path))
    write_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing the file matching t10k-labels"):
        read_mnist(str(tmp_path))


def _binary(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (n, 784), dtype=np.uint8)


def test_amat_and_mat_read_the_same_values(tmp_path):
    values = _binary(6)
    (tmp_path / "x.amat").write_text("\n".join(" ".join(map(str, row)) for row in values) + "\n")
    scipy.io.savemat(tmp_path / "x.mat", {"X": values})
    np.testing.assert_array_equal(read_amat(str(tmp_path / "x.amat")), values.reshape(-1, 28, 28))
    np.testing.assert_array_equal(read_mat(str(tmp_path / "x.mat")), values.reshape(-1, 28, 28))


def test_amat_with_a_short_line_or_a_non_binary_value(tmp_path):
    values = _binary(3)
    lines = [" ".join(map(str, row)) for row in values]
    (tmp_path / "short.amat").write_text("\n".join([lines[0], lines[1][:-4], lines[2]]) + "\n")
    with pytest.raises(DataError, match="short.amat: expected 784 values on every line; data line 2"):
        read_amat(str(tmp_path / "short.amat"))
    (tmp_path / "grey.amat").write_text(lines[0].replace("0", "0.5", 1))
    with pytest.raises(DataError, match="grey.amat: line 1 holds a value other than 0 or 1"):
        read_amat(str(tmp_path / "grey.amat"))


def test_mat_with_wrong_shape_or_values(tmp_path):
    scipy.io.savemat(tmp_path / "shape.mat", {"X": np.zeros((3, 100), np.uint8)})
    with pytest.raises(DataError, match=r"shape.mat: array has shape \(3, 100\)"):
        read_mat(str(tmp_path / "shape.mat"))
    scipy.io.savemat(tmp_path / "grey.mat", {"X": np.full((3, 784), 7, np.uint8)})
    with pytest.raises(DataError, match="grey.mat: values other than 0 and 1"):
        read_mat(str(tmp_path / "grey.mat"))


def test_binarized_folder_with_amat_files(tmp_path):
    written = {}
    for key, seed in (("train", 0), ("valid", 1), ("test", 2)):
        written[key] = _binary(4 + seed, seed)
        (tmp_path / f"binarized_mnist_{key}.amat").write_text("\n".join(" ".join(map(str, r)) for r in written[key]))
    read = read_binarized_mnist(str(tmp_path))
    assert list(read) == ["train", "validation", "test"]
    np.testing.assert_array_equal(read["validation"].reshape(-1, 784), written["valid"])
    (tmp_path / "binarized_mnist_test.amat").unlink()
    with pytest.raises(DataError, match=r"no file matching \*test\*.mat or \*test\*.amat"):
        read_binarized_mnist(str(tmp_path))
