"""python -m facevae.evaluate on a tiny run (run dir, export dir, .keras file) and the MNIST study script on tiny data."""
import importlib.util
import json
import os

import numpy as np
import pytest

from facevae import evaluate
from facevae.training.trainer import fit
from tiny_config import make_tiny_config

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    out = capsys.readouterr().out
    assert "IW-NLL, S=6" in out and "PSNR (dB)" in out and path in out


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
    spec = importlib.util.spec_from_file_location("flows_study", os.path.join(REPO, "benchmarks", "flows_study.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
