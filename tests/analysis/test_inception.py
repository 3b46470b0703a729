"""FID/KID: estimators as math (Frechet: see test_frechet.py), weights never downloaded, plumbing on a random InceptionV3."""
import hashlib

import numpy as np
import pytest

from facevae.analysis import inception


def _brute_force_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_unbiased_mmd2_matches_its_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)) + 0.3
    assert inception.polynomial_mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-12)


def test_kid_is_unbiased_on_equal_distributions():
    """Mean KID over 400 repetitions of two 40-sample sets from one distribution is within 3 s.e. of 0,
    while the biased (V-statistic, diagonal kept) estimate on the same data is far above 0."""
    rng = np.random.default_rng(1)
    d, reps = 16, 400
    kid, biased = [], []
    for _ in range(reps):
        x, y = rng.normal(size=(40, d)), rng.normal(size=(40, d))
        kid.append(inception.kernel_inception_distance(x, y, subset_size=20, seed=int(rng.integers(1 << 30))).mean)
        kxx, kyy, kxy = (inception._polynomial_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    kid, biased = np.array(kid), np.array(biased)
    se = kid.std(ddof=1) / np.sqrt(reps)
    assert abs(kid.mean()) < 3 * se, (kid.mean(), se)
    assert biased.mean() > 10 * biased.std(ddof=1) / np.sqrt(reps)  # the check has the power to see a bias


def test_kid_is_positive_on_different_distributions():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(200, 32)), rng.normal(size=(200, 32)) * 1.3 + 0.4
    result = inception.kernel_inception_distance(x, y, subset_size=50)
    assert (result.subsets, result.subset_size) == (4, 50)
    assert result.mean > 5 * result.standard_error > 0


def test_kid_standard_error_is_calibrated():
    """The reported s.e. (from 10 disjoint subsets) matches the spread of KID across independent data sets."""
    rng = np.random.default_rng(3)
    means, errors = [], []
    for _ in range(300):
        x, y = rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 0.2
        result = inception.kernel_inception_distance(x, y, subset_size=10, seed=0)
        means.append(result.mean)
        errors.append(result.standard_error)
    assert np.mean(errors) == pytest.approx(np.std(means, ddof=1), rel=0.2)


def test_kid_subsets_shrink_to_fit_small_sets_and_reject_tiny_ones():
    rng = np.random.default_rng(4)
    result = inception.kernel_inception_distance(rng.normal(size=(30, 4)), rng.normal(size=(50, 4)))
    assert (result.subsets, result.subset_size) == (2, 15)
    with pytest.raises(ValueError, match="at least 4"):
        inception.kernel_inception_distance(np.zeros((3, 4)), np.zeros((10, 4)))


def test_missing_weights_error_names_the_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(inception, "keras_cache_candidates", lambda: [str(tmp_path / "keras-home" / "models" / inception.WEIGHTS_FILE)])
    with pytest.raises(inception.InceptionWeightsError) as error:
        inception.resolve_inception_weights()
    message = str(error.value)
    assert "--inception-weights" in message and inception.WEIGHTS_FILE in message and "\n" not in message
    with pytest.raises(inception.InceptionWeightsError, match="--inception-weights /no/such.h5: no such file"):
        inception.load_inception("/no/such.h5")


def test_cache_follows_keras_home_and_checks_the_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert inception.keras_cache_candidates()[0] == str(tmp_path / "models" / inception.WEIGHTS_FILE)
    fake = tmp_path / "models" / inception.WEIGHTS_FILE
    fake.parent.mkdir()
    fake.write_bytes(b"not the weights")
    with pytest.raises(inception.InceptionWeightsError, match="MD5 .* is not Keras'"):
        inception.resolve_inception_weights()
    assert inception.resolve_inception_weights(check_hash=False) == str(fake)
    assert hashlib.md5(b"not the weights").hexdigest() != inception.WEIGHTS_MD5


@pytest.fixture(scope="module")
def random_inception():
    return inception.load_inception(random_weights=True)


def test_random_inception_features_shape_and_finiteness(random_inception):
    rng = np.random.default_rng(5)
    images = rng.random((3, 32, 32, 3)).astype(np.float32)
    features = inception.inception_features(images, random_inception, batch_size=2)
    assert features.shape == (3, inception.FEATURE_SIZE) and features.dtype == np.float64
    assert np.all(np.isfinite(features)) and np.all(features >= 0)  # ReLU then average pooling
    grey = inception.inception_features(images[:1].mean(-1, keepdims=True), random_inception)
    rgb = inception.inception_features(np.repeat(images[:1].mean(-1, keepdims=True), 3, -1), random_inception)
    np.testing.assert_allclose(grey, rgb, rtol=1e-5, atol=1e-6)


def test_images_outside_unit_range_are_rejected(random_inception):
    with pytest.raises(ValueError, match="floats in"):
        inception.inception_features(np.zeros((1, 8, 8, 3), np.uint8), random_inception)
