"""benchmarks/attribute_edits.py: case-insensitive attribute names, the judge's weights and masked loss."""
import json
import os

import numpy as np
import pytest

from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("attribute_edits")


def test_attribute_names_match_case_insensitively(bench):
    from facevae.data.labelled_faces import AttributeDataError

    available = ["Smiling", "Eyeglasses", "Male"]
    assert bench.resolve_attributes(["smiling", "MALE", "Smiling"], available, "celeba") == ["Smiling", "Male"]
    with pytest.raises(AttributeDataError, match="'glasses' is not in 'celeba'; it offers: Smiling, Eyeglasses, Male"):
        bench.resolve_attributes(["glasses"], available, "celeba")
    # a continuous column keeps its threshold, spelled as the data spells the column
    assert bench.resolve_attributes(["AGE >= 40", "age>=40.0", "smiling"], ["age", "Smiling"], "ffhq") == \
        ["age>=40", "Smiling"]


def test_masked_bce_ignores_unknown_labels(bench):
    import keras

    p = np.array([[0.9, 0.2], [0.3, 0.6]], np.float32)
    labels = np.array([[1, 0], [0, 1]], np.float32)
    known = np.array([[1, 0], [1, 1]], np.float32)
    value = float(keras.ops.convert_to_numpy(bench._masked_bce(np.concatenate([labels, known], 1), p)))
    expected = -(np.log(0.9) + np.log(0.7) + np.log(0.6)) / 3
    assert value == pytest.approx(expected, rel=1e-5)


def test_independence_weights_make_correlated_labels_independent(bench):
    """Glasses drawn with P(male) 0.7 against 0.4 without: under the weights P(male | glasses) = P(male | none),
    the marginals are kept, the weights of fully labelled faces average 1, and faces with an unknown label get 1."""
    rng = np.random.default_rng(0)
    glasses = rng.random(2000) < 0.25
    male = np.where(glasses, rng.random(2000) < 0.7, rng.random(2000) < 0.4)
    labels = np.stack([glasses, male], 1)
    known = np.ones_like(labels)
    known[:40, 1] = False
    w = bench.independence_weights(labels, known)
    full = known.all(1)
    assert np.all(w[~full] == 1.0) and w[full].mean() == pytest.approx(1.0)
    g, m, wf = glasses[full], male[full], w[full]
    assert m[g].mean() > m[~g].mean() + 0.2  # correlated as drawn
    assert np.sum(wf * (g & m)) / np.sum(wf * g) == pytest.approx(np.sum(wf * (~g & m)) / np.sum(wf * ~g))
    assert np.sum(wf * g) / wf.sum() == pytest.approx(g.mean())  # the marginal stays
    # combinations that never occur (the two labels are complements): positive weights, still averaging 1
    w = bench.independence_weights(np.stack([g, ~g], 1), np.ones((len(g), 2), bool))
    assert np.all(w > 0) and w.mean() == pytest.approx(1.0)


def test_judge_learns_a_visible_attribute(bench):
    """A bright bar at the top vs at the bottom (unchanged by horizontal flips): the judge reads it on held-out
    images, also blurred; the second attribute's labels are unknown for half the faces."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    n = 320
    top = rng.random(n) < 0.5
    x = rng.random((n, 16, 16, 1)).astype(np.float32) * 0.2
    x[top, 1:6, 3:13] += 0.7
    x[~top, 10:15, 3:13] += 0.7
    labels = np.stack([top, ~top], 1)
    known = np.stack([np.ones(n, bool), rng.random(n) < 0.5], 1)
    judge = bench.train_judge(x[:256], labels[:256], known[:256], epochs=10, seed=0)
    scores = bench.judge_scores(judge, x[256:])
    assert scores.shape == (64, 2)
    assert np.mean((scores[:, 0] > 0.5) == top[256:]) > 0.9
    assert np.mean((scores[:, 1] > 0.5) == ~top[256:]) > 0.9
    blurred = gaussian_filter(x[256:], sigma=(0, 1.5, 1.5, 0))
    assert np.mean((bench.judge_scores(judge, blurred)[:, 0] > 0.5) == top[256:]) > 0.9


def test_judge_is_cached_by_key_and_loaded_with_the_same_predictions(bench, tmp_path):
    """First call trains and stores; the same key loads (no training, identical scores); another key trains;
    no temporary files are left; the key holds the shard checksums, the attributes and the settings."""
    rng = np.random.default_rng(1)
    x = rng.random((64, 16, 16, 1)).astype(np.float32)
    labels = np.stack([x[:, :8].mean((1, 2, 3)) > x[:, 8:].mean((1, 2, 3))], 1)
    known = np.ones_like(labels)
    calls = []

    def train():
        calls.append(1)
        return bench.train_judge(x, labels, known, epochs=1, seed=0)

    manifest = {"shards": [{"file": "train-00000-of-00001.tfrecord", "split": "train", "sha256": "ab" * 32},
                           {"file": "validation-00000-of-00001.tfrecord", "split": "validation", "sha256": "cd" * 32}]}
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text(json.dumps(manifest))
    data = bench._data_identity(str(tmp_path / "shards"), 8000)
    assert data == {"kind": "shards", "train_shards_sha256": ["ab" * 32]}
    key = bench.judge_key(data, ["top"], 16, 1, epochs=1, seed=0)
    cache = str(tmp_path / "cache")

    first, info = bench.cached_judge(cache, key, train)
    assert info["status"] == "trained" and len(calls) == 1 and os.path.isfile(info["path"])
    second, info2 = bench.cached_judge(cache, key, train)
    assert info2["status"] == "loaded" and len(calls) == 1 and info2["path"] == info["path"]
    assert info2["train_seconds"] == info["train_seconds"]
    np.testing.assert_array_equal(bench.judge_scores(first, x), bench.judge_scores(second, x))

    other = bench.judge_key(data, ["top", "bottom"], 16, 1, epochs=1, seed=0)
    _, info3 = bench.cached_judge(cache, other, train)
    assert info3["status"] == "trained" and len(calls) == 2 and info3["path"] != info["path"]
    _, info4 = bench.cached_judge(cache, key, train, retrain=True)
    assert info4["status"] == "trained" and len(calls) == 3
    assert sorted(os.listdir(cache)) == sorted(
        os.path.basename(p) + suffix for p in {info["path"][:-6], info3["path"][:-6]} for suffix in (".json", ".keras"))

    _, info5 = bench.cached_judge(None, key, train)
    assert info5 == {**info5, "status": "trained", "path": None}


def test_judge_key_refuses_shards_without_checksums(bench, tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [{"file": "train-0.tfrecord", "split": "train"}]}))
    with pytest.raises(ValueError, match="lists no sha256 for its train shards"):
        bench._data_identity(str(tmp_path), 8000)
    synthetic = bench._data_identity("synthetic", 500)
    assert synthetic["kind"] == "synthetic" and synthetic["count"] == 500 and len(synthetic["renderer_sha256"]) == 64


def test_an_ensemble_of_judges_reads_the_mean_of_their_probabilities(bench):
    """judge_scores over a list is the mean of the members' probabilities; a one-member list is that member;
    the members differ (each seed gives its own judge), and the result line names each seed."""
    rng = np.random.default_rng(2)
    x = rng.random((48, 16, 16, 1)).astype(np.float32)
    labels = np.stack([x[:, :8].mean((1, 2, 3)) > x[:, 8:].mean((1, 2, 3)), x.mean((1, 2, 3)) > 0.5], 1)
    known = np.ones_like(labels)
    members = [bench.train_judge(x, labels, known, epochs=1, seed=seed) for seed in (0, 1)]
    each = [bench.judge_scores(m, x) for m in members]
    assert each[0].shape == (48, 2) and not np.allclose(each[0], each[1])
    np.testing.assert_allclose(bench.judge_scores(members, x), (each[0] + each[1]) / 2, rtol=1e-12)
    np.testing.assert_array_equal(bench.judge_scores(members[:1], x), each[0])
    line = bench._judge_line([{"status": "trained", "path": None, "train_seconds": 1.0, "seed": 0},
                              {"status": "loaded", "path": "c/judge-1.keras", "train_seconds": 2.0, "seed": 1}])
    assert line.startswith("seed 0 trained in 1.0 s; not cached; seed 1 loaded from c/judge-1.keras")
