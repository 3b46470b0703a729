"""The Frechet distance of two Gaussians against closed forms and an independent eigen-decomposition."""
import numpy as np
import pytest

from facevae.analysis.frechet import frechet_distance, frechet_distance_of_features, gaussian_statistics


def _random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _psd_sqrt(a):
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _independent(mu1, s1, mu2, s2):
    """tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2), all symmetric, by eigh."""
    root1 = _psd_sqrt(s1)
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_one_dimensional_closed_form():
    # N(1, 4) vs N(-2, 9): (1 + 2)^2 + (2 - 3)^2 = 10
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == pytest.approx(10.0)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_commuting_covariances_closed_form():
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: the trace term is sum (sqrt a - sqrt b)^2."""
    rng = np.random.default_rng(1)
    d = 12
    q = _random_orthogonal(rng, d)
    a, b = rng.uniform(0.01, 5.0, d), rng.uniform(0.01, 5.0, d)
    mu = rng.normal(size=d)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = frechet_distance(mu, q @ np.diag(a) @ q.T, mu, q @ np.diag(b) @ q.T)
    assert value == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("d", [2, 5, 64])
def test_full_covariances_against_eigendecomposition(d):
    rng = np.random.default_rng(d)
    m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = m1 @ m1.T / d + 0.05 * np.eye(d), m2 @ m2.T / d + 0.05 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(_independent(mu1, s1, mu2, s2), rel=1e-8)
    assert value == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-8)  # symmetric


def test_point_mass_against_gaussian():
    """sigma2 = 0 (a point mass): d^2 = ||mu1 - mu2||^2 + tr(sigma1)."""
    rng = np.random.default_rng(6)
    m = rng.normal(size=(6, 6))
    s = m @ m.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, s, mu2, np.zeros((6, 6))) == pytest.approx(np.sum((mu1 - mu2) ** 2) + np.trace(s))


def test_identical_gaussians_are_at_zero():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(10, 10))
    s = m @ m.T
    assert abs(frechet_distance(np.ones(10), s, np.ones(10), s)) < 1e-8 * np.trace(s)


def test_fewer_samples_than_dimensions_stays_finite_and_close():
    """Rank-deficient sample covariances (N = 20 < D = 50), the Frechet face distance's usual regime."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 50)), 0.5 + 1.3 * rng.normal(size=(20, 50))
    result = frechet_distance_of_features(x, y)
    assert np.isfinite(result.distance)
    assert (result.count_a, result.count_b) == (20, 20)
    mu1, s1 = gaussian_statistics(x)
    mu2, s2 = gaussian_statistics(y)
    assert result.distance == pytest.approx(_independent(mu1, s1, mu2, s2), rel=1e-4)


def test_sample_estimate_approaches_population_value():
    """Features drawn from N(0, I) and N(mu, 4 I) in 8-D: the population distance is |mu|^2 + 8 (2 - 1)^2."""
    rng = np.random.default_rng(5)
    d, n = 8, 200_000
    mu = np.full(d, 0.5)
    result = frechet_distance_of_features(rng.normal(size=(n, d)), mu + 2 * rng.normal(size=(n, d)))
    assert result.distance == pytest.approx(d * 0.25 + d * 1.0, rel=0.01)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance_of_features(np.zeros((4, 3)) + np.arange(4)[:, None], np.ones((4, 2)) * np.arange(4)[:, None])
