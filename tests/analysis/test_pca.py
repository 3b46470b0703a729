"""facevae.analysis.pca.PrincipalFaces: the linear face baseline, tested as linear algebra."""
import numpy as np
import pytest

from facevae.analysis.pca import PrincipalFaces


def _faces(count=40, seed=0):
    """Images [count, 4, 4, 3] in (0.3, 0.7), built from 5 random patterns so their rank is known."""
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((5, 48))
    weights = rng.standard_normal((count, 5))
    flat = 0.5 + 0.02 * weights @ patterns
    return flat.reshape(count, 4, 4, 3)


def test_basis_is_orthonormal_and_spreads_are_the_coordinates_standard_deviations():
    train = _faces()
    model = PrincipalFaces.fit(train, 5)
    np.testing.assert_allclose(model.basis @ model.basis.T, np.eye(5), atol=1e-12)
    coordinates = (train.reshape(len(train), -1) - model.mean) @ model.basis.T
    np.testing.assert_allclose(coordinates.std(axis=0, ddof=1), model.spreads, rtol=1e-10)
    assert np.all(np.diff(model.spreads) <= 0)  # largest first


def test_projection_keeps_what_lies_in_the_span_and_is_idempotent():
    train = _faces()
    full = PrincipalFaces.fit(train, 5)  # the faces have rank 5 about their mean: 5 components rebuild them
    np.testing.assert_allclose(full.project(train), train, atol=1e-6)
    two = PrincipalFaces.fit(train, 2)
    once = two.project(train)
    np.testing.assert_allclose(two.project(once), once, atol=1e-6)
    # The residual is orthogonal to the kept components.
    residual = (train - once).reshape(len(train), -1)
    np.testing.assert_allclose(residual @ two.basis.T, 0.0, atol=1e-6)


def test_samples_have_the_training_faces_spread_along_each_component():
    train = _faces()
    model = PrincipalFaces.fit(train, 3)
    noise = np.random.default_rng(1).standard_normal((20000, 3))
    for temperature in (1.0, 0.5):
        samples = model.sample(noise, temperature)
        assert samples.shape == (20000, 4, 4, 3) and samples.dtype == np.float32
        coordinates = (samples.reshape(len(samples), -1) - model.mean) @ model.basis.T
        np.testing.assert_allclose(coordinates.std(axis=0), temperature * model.spreads, rtol=0.03)
        np.testing.assert_allclose(coordinates.mean(axis=0), 0.0, atol=0.03 * model.spreads[0])


def test_outputs_are_clipped_to_the_pixel_range_and_bad_sizes_are_refused():
    train = _faces()
    model = PrincipalFaces.fit(train, 2)
    far = model.sample(np.full((1, 2), 1e6))
    assert far.min() >= 0.0 and far.max() <= 1.0
    with pytest.raises(ValueError, match="components must be in"):
        PrincipalFaces.fit(train, 40)
    with pytest.raises(ValueError, match="noise must have 2 columns"):
        model.sample(np.zeros((1, 3)))
