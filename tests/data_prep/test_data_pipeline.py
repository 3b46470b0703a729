"""data_prep.pipeline.load: batches of the written pixels, labels and attributes, as asked."""
import numpy as np
import pytest
import tensorflow as tf

from data_prep.errors import DataError
from data_prep.pipeline import _buffer_size, load
from data_prep.prepare import prepare_dataset
from data_files import random_images, write_ffhq_csv, write_images, write_mnist_folder


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    arrays = write_mnist_folder(root / "src", n_train=100, n_test=30)
    prepare_dataset("mnist", str(root / "src"), str(root / "out"), shards=4, progress=False)
    return str(root / "out"), arrays


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    images = random_images(20, 32)
    indices = [*range(18), 60000, 60001]  # 18 train images in 3 shards, 2 validation images in 1 shard
    write_images(root / "src", images, names=[f"{i:05d}" for i in indices])
    write_ffhq_csv(root / "features.csv", indices)
    for encoding in ("raw", "png"):
        prepare_dataset("ffhq", str(root / "src"), str(root / encoding), size=32, attributes=str(root / "features.csv"),
                        shards=3, encoding=encoding, progress=False)
    return root, images


def _collect(dataset):
    return [tuple(np.asarray(part) for part in batch) if isinstance(batch, tuple) else np.asarray(batch)
            for batch in dataset]


def test_evaluation_pipeline_reads_every_example_as_float_in_0_1(mnist_dir):
    out, arrays = mnist_dir
    batches = _collect(load(out, "test", 8, training=False, with_labels=True))
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert [len(b[0]) for b in batches] == [8, 8, 8, 6]  # no drop_remainder when not training
    assert images.dtype == np.float32 and images.shape == (30, 28, 28, 1) and 0 <= images.min() <= images.max() <= 1
    pairs = sorted((int(label), image.tobytes()) for image, label in zip(np.round(images * 255).astype(np.uint8), labels))
    expected = sorted((int(label), image.tobytes()) for image, label in zip(arrays["test"][0][..., None], arrays["test"][1]))
    assert pairs == expected
    assert labels.dtype == np.int32


def test_training_pipeline_shuffles_drops_the_remainder_and_repeats(mnist_dir):
    out, arrays = mnist_dir
    dataset = load(out, "train", 16, shuffle_buffer=100, seed=3)
    assert dataset.element_spec.shape.as_list() == [16, 28, 28, 1]
    epoch = np.concatenate(_collect(dataset))
    assert len(epoch) == 96
    originals = {image.tobytes() for image in arrays["train"][0][..., None]}
    seen = [image.tobytes() for image in np.round(epoch * 255).astype(np.uint8)]
    assert len(set(seen)) == 96 and set(seen) <= originals
    in_file_order = np.concatenate(_collect(load(out, "train", 16, training=False, drop_remainder=True)))
    assert not np.array_equal(epoch, in_file_order)
    repeated = load(out, "train", 16, repeat=True).take(20)
    assert sum(1 for _ in repeated) == 20


def test_dynamic_binarization_samples_bernoulli_of_the_grey_value(mnist_dir):
    out, arrays = mnist_dir
    dataset = load(out, "train", 100, training=False, binarize="dynamic", drop_remainder=True, repeat=True)
    draws = np.stack(_collect(dataset.take(40)))  # 40 draws of the same 100 images
    assert set(np.unique(draws)) == {0.0, 1.0}
    grey = np.concatenate(_collect(load(out, "train", 100, training=False)))
    assert np.abs(draws.mean(axis=0) - grey).max() < 0.35  # 40 Bernoulli draws: sd <= 0.08
    assert abs(draws.mean() - grey.mean()) < 0.01
    assert not np.array_equal(draws[0], draws[1])


def test_each_training_pass_draws_new_noise_and_each_evaluation_pass_the_same(tmp_path):
    write_mnist_folder(tmp_path / "src", n_train=100, n_test=10)
    out = str(tmp_path / "one_shard")
    prepare_dataset("mnist", str(tmp_path / "src"), out, shards=1, progress=False)
    # one shard and no shuffle buffer: the order is fixed, so only the noise can differ between passes
    training = load(out, "train", 100, binarize="dynamic", shuffle_buffer=1, seed=5)
    first, second = (np.concatenate(_collect(training)) for _ in range(2))
    assert not np.array_equal(first, second)
    evaluation = load(out, "train", 100, training=False, binarize="dynamic", flip=True, seed=5)
    np.testing.assert_array_equal(*(np.concatenate(_collect(evaluation)) for _ in range(2)))


def test_flip_mirrors_about_half_of_the_images(mnist_dir):
    out, _ = mnist_dir
    plain = np.concatenate(_collect(load(out, "train", 50, training=False)))
    flipped = np.concatenate(_collect(load(out, "train", 50, training=False, flip=True, seed=1)))
    mirrored = np.array([np.array_equal(f, p[:, ::-1]) for f, p in zip(flipped, plain)])
    same = np.array([np.array_equal(f, p) for f, p in zip(flipped, plain)])
    assert (mirrored | same).all() and 30 < mirrored.sum() < 70
    again = np.concatenate(_collect(load(out, "train", 50, training=False, flip=True, seed=1)))
    np.testing.assert_array_equal(again, flipped)


def _translations(shifted, plain, shift):
    """For each pair, the (dy, dx) in [-shift, shift]^2 whose reflect-padded translation of ``plain`` is ``shifted``."""
    found = []
    for s, p in zip(shifted, plain):
        padded = np.pad(p, ((shift, shift), (shift, shift), (0, 0)), mode="reflect")
        size = p.shape[0]
        found.append([(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)
                      if np.array_equal(s, padded[shift - dy:shift - dy + size, shift - dx:shift - dx + size])])
    return found


def test_shift_translates_each_image_by_its_own_offset_with_mirrored_edges(faces_dir):
    out = str(faces_dir[0] / "raw")
    plain = np.concatenate(_collect(load(out, "train", 6, training=False)))
    shifted = np.concatenate(_collect(load(out, "train", 6, training=False, shift=3, seed=2)))
    offsets = _translations(shifted, plain, 3)
    assert all(len(hits) >= 1 for hits in offsets)  # every image is one translation of its original
    assert len({hits[0] for hits in offsets}) > 5  # offsets drawn per image, not per batch
    # content moves down by dy: with a known offset the pixel (i, j) comes from (i - dy, j - dx)
    dy, dx = offsets[0][0]
    inner = shifted[0][max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)]
    np.testing.assert_array_equal(inner, plain[0][max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)])
    again = np.concatenate(_collect(load(out, "train", 6, training=False, shift=3, seed=2)))
    np.testing.assert_array_equal(again, shifted)
    np.testing.assert_array_equal(np.concatenate(_collect(load(out, "train", 6, training=False, shift=0))), plain)
    with pytest.raises(ValueError, match="shift"):
        load(out, "train", 6, shift=17)


def test_flips_are_unchanged_by_a_shift_stream(mnist_dir):
    """The shift draws its own random stream: flips with a shift are the flips without one."""
    out, _ = mnist_dir
    flipped = np.concatenate(_collect(load(out, "train", 50, training=False, flip=True, seed=1)))
    both = np.concatenate(_collect(load(out, "train", 50, training=False, flip=True, shift=1, seed=1)))
    # an image mirrored and then shifted by (dy, dx) is the mirrored image shifted: same offsets found either way
    assert both.shape == flipped.shape and all(_translations(both, flipped, 1))


def test_input_context_gives_each_pipeline_a_disjoint_share(mnist_dir, faces_dir):
    for out, split, total in ((mnist_dir[0], "train", 100), (str(faces_dir[0] / "raw") , "validation", 2)):
        shares = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
            dataset = load(out, split, 4, training=False, input_context=context)  # 2 per replica
            batches = _collect(dataset)
            assert all(len(batch) <= 2 for batch in batches)
            shares.append({image.tobytes() for batch in batches for image in batch})
        assert shares[0].isdisjoint(shares[1]) and len(shares[0] | shares[1]) == total


def test_png_and_raw_shards_give_the_same_faces_and_attributes(faces_dir):
    root, images = faces_dir
    results = {}
    for encoding in ("raw", "png"):
        batches = list(load(str(root / encoding), "train", 64, training=False, with_attributes=True))
        assert len(batches) == 1
        results[encoding] = batches[0]
    np.testing.assert_array_equal(results["raw"][0].numpy(), results["png"][0].numpy())
    read = np.round(results["raw"][0].numpy() * 255).astype(np.uint8)
    assert {image.tobytes() for image in read} <= {image.tobytes() for image in images}
    attributes = results["png"][1]
    assert "smiling" in attributes and attributes["smiling"].shape == (18,) and attributes["age"].dtype == tf.float32


def test_labels_and_attributes_together(faces_dir, mnist_dir):
    root, _ = faces_dir
    with pytest.raises(DataError, match="have no labels"):
        load(str(root / "raw"), "train", 4, with_labels=True)
    with pytest.raises(DataError, match="have no attributes; prepare them with --attributes"):
        load(mnist_dir[0], "train", 4, with_attributes=True)


def test_errors_name_the_problem(mnist_dir, tmp_path):
    out, _ = mnist_dir
    with pytest.raises(DataError, match=r"no split 'validation'; expected one of \['test', 'train'\]"):
        load(out, "validation", 4)
    with pytest.raises(DataError, match="manifest.json: not found; prepare shards first"):
        load(str(tmp_path), "train", 4)
    with pytest.raises(ValueError, match=r"Unknown binarize 'static'"):
        load(out, "train", 4, binarize="static")
    with pytest.raises(ValueError, match=r"Received: batch_size=0"):
        load(out, "train", 0)


def test_shuffle_buffer_is_capped_near_one_gibibyte():
    raw_256 = {"image_shape": [256, 256, 3], "encoding": "raw"}
    assert _buffer_size(raw_256, 10_000) == 2**30 // (256 * 256 * 3) == 5461
    assert _buffer_size({"image_shape": [28, 28, 1], "encoding": "raw"}, 10_000) == 10_000


def test_uri_paths_go_through_gfile(tmp_path):
    """TensorFlow's in-memory ram:// file system stands in for gs:// and s3:// (same tf.io.gfile code path)."""
    from data_prep.inspection import count_records
    from data_prep.manifest import is_shard_dir

    arrays = write_mnist_folder(tmp_path / "src", n_train=30, n_test=10)
    uri = f"ram://{tmp_path.name}/mnist"
    manifest = prepare_dataset("mnist", str(tmp_path / "src"), uri, shards=2, progress=False)
    assert is_shard_dir(uri) and count_records(uri, verify=True) == manifest["splits"] == {"train": 30, "test": 10}
    images, labels = next(iter(load(uri, "test", 10, training=False, with_labels=True)))
    assert sorted(labels.numpy().tolist()) == sorted(arrays["test"][1].tolist())
    assert sorted(tf.io.gfile.listdir(uri)) == ["manifest.json", "test-00000-of-00001.tfrecord",
                                        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
