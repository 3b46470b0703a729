"""facevae.analysis.latent as math: interpolation endpoints and norms, attribute vectors on known clusters, AUC."""
import itertools

import numpy as np
import pytest

from facevae.analysis import latent


def _unit(rng, d):
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


def test_lerp_and_slerp_hit_both_endpoints_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 7))
    for method in latent.INTERPOLATIONS:
        path = latent.interpolate(a, b, 5, method)
        assert path.shape == (5, 4, 7)
        np.testing.assert_allclose(path[0], a, atol=1e-12)
        np.testing.assert_allclose(path[-1], b, atol=1e-12)


def test_slerp_keeps_the_norm_of_equal_norm_vectors_and_lerp_does_not():
    rng = np.random.default_rng(1)
    a, b = 3.0 * _unit(rng, 16), 3.0 * _unit(rng, 16)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(np.linalg.norm(latent.slerp(a, b, t), axis=-1), 3.0, rtol=1e-12)
    assert np.linalg.norm(latent.lerp(a, b, 0.5)) < 3.0 - 0.1


def test_slerp_of_orthogonal_unit_vectors_follows_the_quarter_circle():
    a, b = np.eye(3)[0], np.eye(3)[1]
    for t in (0.25, 0.5, 0.8):
        np.testing.assert_allclose(latent.slerp(a, b, t), [np.cos(t * np.pi / 2), np.sin(t * np.pi / 2), 0], atol=1e-12)


def test_slerp_angles_are_evenly_spaced_for_equal_norms():
    rng = np.random.default_rng(2)
    a, b = 2.0 * _unit(rng, 5), 2.0 * _unit(rng, 5)
    path = latent.interpolate(a, b, 6, "slerp")
    unit = path / np.linalg.norm(path, axis=-1, keepdims=True)
    angles = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=-1), -1, 1))
    np.testing.assert_allclose(angles, angles[0], rtol=1e-9)


def test_slerp_falls_back_to_lerp_for_parallel_and_zero_vectors():
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(latent.slerp(a, 2 * a, 0.5), latent.lerp(a, 2 * a, 0.5))
    np.testing.assert_allclose(latent.slerp(np.zeros(3), a, 0.3), 0.3 * a)
    assert np.all(np.isfinite(latent.slerp(a, -a, [0.0, 0.5, 1.0])))


def test_lerp_midpoint_and_scalar_t_shape():
    a, b = np.zeros((2, 3)), np.ones((2, 3))
    assert latent.lerp(a, b, 0.25).shape == (2, 3)
    np.testing.assert_allclose(latent.lerp(a, b, 0.25), 0.25)


@pytest.mark.parametrize("steps, method", [(1, "slerp"), (0, "lerp"), (2.5, "lerp"), (4, "cubic")])
def test_interpolate_rejects_bad_arguments(steps, method):
    with pytest.raises(ValueError, match="steps|cubic"):
        latent.interpolate(np.zeros(2), np.ones(2), steps, method)


def test_morph_decodes_the_path_between_the_two_codes():
    class Linear:  # code: flatten and project; decode: back; a model whose path we know
        def __init__(self):
            self.w = np.random.default_rng(3).normal(size=(12, 4))

        def encode(self, images):  # the encoder's code: morph must use the refined one
            return self.code(images) + 1.0

        def code(self, images):
            return images.reshape(len(images), -1) @ self.w

        def decode(self, z):
            return (z @ np.linalg.pinv(self.w)).reshape(len(z), 2, 2, 3)

    model = Linear()
    a, b = np.random.default_rng(4).uniform(size=(2, 2, 2, 3))
    frames = latent.morph(model, a, b, steps=4, method="lerp")
    assert frames.shape == (4, 2, 2, 3)
    np.testing.assert_allclose(frames[0], model.decode(model.code(a[None]))[0], atol=1e-5)
    np.testing.assert_allclose(frames[-1], model.decode(model.code(b[None]))[0], atol=1e-5)


def _clusters(rng, n=4000, d=8, delta=None):
    delta = np.linspace(1.0, -1.0, d) if delta is None else delta
    y = rng.uniform(size=n) < 0.3
    z = rng.normal(size=(n, d)) + 0.7 + np.outer(y, delta)
    return z, y, delta


def test_attribute_vector_recovers_the_shift_between_gaussian_clusters():
    rng = np.random.default_rng(5)
    z, y, delta = _clusters(rng)
    v = latent.attribute_vector(z, y, "smiling")
    assert np.isclose(np.linalg.norm(v.direction), 1.0, atol=1e-6)
    assert v.direction @ delta / np.linalg.norm(delta) > 0.99
    assert abs(v.gap - np.linalg.norm(delta)) < 0.1
    # the gap is by definition the distance between the class means along the direction
    assert np.isclose(v.mean_positive - v.mean_negative, v.gap)
    assert v.counts == (int(y.sum()), int((~y).sum()))
    np.testing.assert_allclose(v.vector, z[y].mean(0) - z[~y].mean(0), rtol=1e-5)


def test_control_equals_the_plain_difference_in_a_balanced_design():
    rng = np.random.default_rng(6)
    y, c = np.array(list(itertools.product([0, 1], [0, 1])) * 50, bool).T  # every cell 50 times
    z = rng.normal(size=(200, 5))
    plain = latent.attribute_vector(z, y)
    controlled = latent.attribute_vector(z, y, control={"c": c})
    np.testing.assert_allclose(controlled.direction, plain.direction, atol=1e-6)
    assert np.isclose(controlled.gap, plain.gap)
    assert controlled.controlled_for == ("c",)


def test_control_removes_a_correlated_attribute():
    rng = np.random.default_rng(7)
    n, d = 6000, 6
    male = rng.uniform(size=n) < 0.5
    beard = np.where(male, rng.uniform(size=n) < 0.7, rng.uniform(size=n) < 0.05)
    beard_dir, male_dir = np.eye(d)[0], np.eye(d)[1]
    z = rng.normal(size=(n, d)) * 0.5 + np.outer(beard, beard_dir) * 2 + np.outer(male, male_dir) * 2
    plain = latent.attribute_vector(z, beard, "beard")
    balanced = latent.attribute_vector(z, beard, "beard", control={"male": male})
    assert abs(plain.direction @ male_dir) > 0.3        # the plain vector also turns faces male
    assert abs(balanced.direction @ male_dir) < 0.05    # the balanced one does not
    assert balanced.direction @ beard_dir > 0.99
    assert latent.correlated_attributes({"beard": beard, "male": male, "noise": rng.uniform(size=n) < 0.5},
                                        "beard") == ["male"]


@pytest.mark.parametrize("labels, word", [(np.zeros(10, bool), "positive"), (np.ones(10, bool), "negative")])
def test_an_empty_class_is_a_clear_error(labels, word):
    with pytest.raises(ValueError, match=f"'glasses' has no {word}"):
        latent.attribute_vector(np.zeros((10, 3)), labels, "glasses")


def test_a_control_equal_to_the_attribute_is_an_error():
    y = np.arange(10) % 2 == 0
    with pytest.raises(ValueError, match="collinear"):
        latent.attribute_vector(np.random.default_rng(0).normal(size=(10, 3)), y, control={"same": ~y})


def test_roc_auc_equals_a_brute_force_pair_count_with_ties():
    rng = np.random.default_rng(8)
    scores = rng.integers(0, 6, size=300).astype(float)  # many ties
    labels = rng.uniform(size=300) < 0.4 + 0.1 * (scores > 2)
    pos, neg = scores[labels], scores[~labels]
    brute = (np.sum(pos[:, None] > neg[None]) + 0.5 * np.sum(pos[:, None] == neg[None])) / (len(pos) * len(neg))
    assert np.isclose(latent.roc_auc(scores, labels), brute, rtol=0, atol=1e-12)
    assert latent.roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert latent.roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        latent.roc_auc([1, 2], [1, 1])


def test_separation_auc_is_high_for_separated_clusters_and_half_for_a_random_direction():
    rng = np.random.default_rng(9)
    z, y, delta = _clusters(rng, delta=np.full(8, 1.5))
    v = latent.attribute_vector(z[:2000], y[:2000])
    assert latent.separation_auc(v, z[2000:], y[2000:]) > 0.99
    orthogonal = np.roll(np.eye(8)[0] - np.eye(8)[1], 0)
    assert abs(latent.separation_auc(orthogonal, z[2000:], y[2000:]) - 0.5) < 0.05


def test_apply_moves_the_projection_by_alpha_and_nothing_else():
    rng = np.random.default_rng(10)
    z, y, _ = _clusters(rng, n=500)
    v = latent.attribute_vector(z, y)
    alphas = np.array([-2.0, 0.0, 1.5])
    out = latent.apply(z[:7], v, alphas)
    assert out.shape == (7, 3, 8)
    moved = latent.projections(out.reshape(-1, 8), v).reshape(7, 3) - latent.projections(z[:7], v)[:, None]
    np.testing.assert_allclose(moved, np.broadcast_to(alphas, (7, 3)), atol=1e-5)
    residual = out - np.einsum("bad,d->ba", out, v.direction)[..., None] * v.direction
    np.testing.assert_allclose(residual, np.broadcast_to(residual[:, :1], residual.shape), atol=1e-5)  # orthogonal part is the same for every alpha
    assert latent.apply(z[:7], v, latent.default_alpha(v)).shape == (7, 8)
    assert latent.default_alpha(v) == pytest.approx(1.5 * v.gap)  # the documented default: 1.5 class-mean gaps
    assert latent.apply(z[0], v, alphas).shape == (3, 8)
    with pytest.raises(ValueError, match="does not fit"):
        latent.apply(np.zeros((2, 5)), v, 1.0)


def test_a_saved_vector_loads_back_and_a_bare_npy_keeps_its_norm_as_gap(tmp_path):
    rng = np.random.default_rng(11)
    z, y, _ = _clusters(rng, n=300)
    v = latent.attribute_vector(z, y, "glasses")
    path = latent.save_vector(str(tmp_path / "g.npy"), v, extra={"data": "synthetic"})
    back = latent.load_vector(path)
    np.testing.assert_allclose(back.direction, v.direction, atol=1e-7)
    assert (back.name, back.gap, back.counts) == ("glasses", v.gap, v.counts)
    np.save(tmp_path / "raw.npy", 2.5 * v.direction)
    raw = latent.load_vector(str(tmp_path / "raw.npy"))
    assert np.isclose(raw.gap, 2.5, rtol=1e-6) and raw.name == "raw"
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(ValueError, match="cannot read attribute vector"):
        latent.load_vector(str(tmp_path / "junk.npy"))


def test_control_attributes_skip_copies_of_the_attribute_and_of_each_other():
    """FFHQ offers 'smile' (the continuous score read as > 0.5), a copy of 'smiling': holding it fixed would make the
    least-squares design singular, so it is skipped, as is the second of two copies of one control."""
    rng = np.random.default_rng(8)
    n = 400
    smiling = rng.uniform(size=n) < 0.5
    makeup = np.where(smiling, rng.uniform(size=n) < 0.8, rng.uniform(size=n) < 0.2)  # |phi| about 0.6
    male = np.where(smiling, rng.uniform(size=n) < 0.4, rng.uniform(size=n) < 0.6)    # |phi| about 0.2
    labels = {"smiling": smiling, "smile": smiling.copy(), "not_smiling": ~smiling, "lip_makeup": makeup,
              "makeup_copy": makeup.copy(), "male": male, "noise": rng.uniform(size=n) < 0.5}
    assert set(latent.correlated_attributes(labels, "smiling")) >= {"smile", "not_smiling", "lip_makeup", "male"}
    kept = latent.control_attributes(labels, "smiling")
    assert kept[0] == "lip_makeup" and kept[-1] == "male" and len(kept) == 2
    z = rng.normal(size=(n, 4))
    assert latent.attribute_vector(z, smiling, "smiling", control={k: labels[k] for k in kept}).controlled_for == (
        "lip_makeup", "male")
