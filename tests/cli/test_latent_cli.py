"""morph, attributes and sample CLIs from an exported SavedModel in fresh processes, without training code.

Every CLI process is started at once (they run concurrently) and checked afterwards.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tiny_config import tiny_model_config

pytestmark = pytest.mark.integration

_WRAPPER = """
import sys
from facevae import cli
name, argv = sys.argv[1], sys.argv[2:]
module = __import__(f"facevae.{name}", fromlist=["main"])
try:
    code = module.main(argv)
except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    code = 2
training = sorted(m for m in ("facevae.training.trainer", "facevae.model.vae", "facevae.flows", "facevae.data.datasets") if m in sys.modules)
print("TRAINING_MODULES=" + ",".join(training))
sys.exit(code)
"""

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env():
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from facevae.model.vae import FaceVAE
    from facevae.export.serving import export_model

    tmp = tmp_path_factory.mktemp("latent_cli")
    model = FaceVAE(tiny_model_config(flows=2, flow_mode="amortized"), seed=0)
    export = export_model(model, str(tmp / "saved" / "tiny"), include_keras=False)
    run = tmp / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    os.symlink(os.path.relpath(export, run), run / "export")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp / "a.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp / "b.png")  # grey, model's size
    (tmp / "bad.png").write_text("not an image")
    (tmp / "wrapper.py").write_text(_WRAPPER)
    return model, export, str(run), tmp


@pytest.fixture(scope="module")
def runs(setup):
    """Start every CLI process concurrently; returns {key: CompletedProcess-like (returncode, stdout, stderr)}."""
    _, export, run, tmp = setup
    wrapped = {
        "sample": ["sample", "--model", export, "--n", "4", "--seed", "1", "--out", str(tmp / "s.png")],
        "morph": ["morph", "--model", run, "--a", str(tmp / "a.png"), "--b", str(tmp / "b.png"),
                  "--steps", "5", "--out", str(tmp / "m.png")],
        "attributes": ["attributes", "--model", export, "--attribute", "glasses", "--count", "60", "--rows", "2",
                       "--alphas", "-1:1:3", "--out", str(tmp / "g.png")],
    }
    module = {
        "missing_image": ["morph", "--model", export, "--a", str(tmp / "nope.png"), "--b", str(tmp / "b.png")],
        "unreadable_image": ["morph", "--model", export, "--a", str(tmp / "bad.png"), "--b", str(tmp / "b.png")],
        "unknown_attribute": ["attributes", "--model", export, "--attribute", "beard"],
        "empty_class": ["attributes", "--model", export, "--attribute", "glasses", "--count", "1", "--rows", "1",
                        "--out", str(tmp / "e.png")],
        "bad_model": ["sample", "--model", str(tmp)],
    }
    procs = {k: subprocess.Popen([sys.executable, str(tmp / "wrapper.py"), *a], cwd=tmp, env=_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k, a in wrapped.items()}
    procs.update({k: subprocess.Popen([sys.executable, "-m", f"facevae.{a[0]}", *a[1:]], cwd=tmp, env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k, a in module.items()})
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def _png(path):
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("key", ["sample", "morph", "attributes"])
def test_each_cli_runs_from_the_export_without_training_code(runs, key):
    done = runs[key]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TRAINING_MODULES=\n" in done.stdout or done.stdout.rstrip().endswith("TRAINING_MODULES="), done.stdout


def test_outputs_have_the_expected_layout(runs, setup):
    tmp = setup[3]
    cell = 32 + 2
    assert _png(tmp / "s.png").shape == (cell + 2, 4 * cell + 2, 3)
    assert _png(tmp / "m.png").shape == (cell + 2, (5 + 2) * cell + 2, 3)  # A, 5 steps, B
    assert _png(tmp / "g.png").shape == (2 * cell + 2, (3 + 1) * cell + 2, 3)  # 2 faces x (input + 3 alphas)
    vector = np.load(tmp / "g.npy")
    assert vector.shape == (6,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    meta = json.loads((tmp / "g.json").read_text())
    assert meta["name"] == "glasses" and sum(meta["counts"]) == 60 and meta["gap"] > 0


def test_an_image_of_another_size_is_resized_with_a_note(runs):
    assert "note: " in runs["morph"].stderr and "48x40; centre-cropped to 40x40 and resized to 32x32" in runs["morph"].stderr


@pytest.mark.parametrize("key, prog, message", [
    ("missing_image", "morph", "image '{tmp}/nope.png' does not exist"),
    ("unreadable_image", "morph", "cannot read image '{tmp}/bad.png'"),
    ("unknown_attribute", "attributes", "attribute 'beard' is not in 'synthetic'; it offers: smiling, glasses,"),
    ("empty_class", "attributes", "examples among 1 faces; an attribute vector needs both classes"),
    ("bad_model", "sample", "is neither a run directory nor a SavedModel"),
])
def test_bad_input_is_one_line_and_exit_code_2(runs, setup, key, prog, message):
    done = runs[key]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"python -m facevae.{prog}: error:")]
    assert len(errors) == 1, done.stderr
    assert message.format(tmp=setup[3]) in errors[0]


def test_the_loaded_export_encodes_through_the_flows_like_the_model(setup):
    from facevae.export.inference import from_keras, load_inference_model

    model, export, run, _ = setup
    images = np.random.default_rng(1).uniform(size=(3, 32, 32, 3)).astype(np.float32)
    loaded = load_inference_model(run, batch_size=2)  # a run directory follows its export link
    assert (loaded.image_size, loaded.channels, loaded.latent_dim) == (32, 3, 6)
    expected = model.encode(images)[2].numpy()
    assert not np.allclose(expected, model.encode(images)[0].numpy(), atol=1e-4)  # the flows do move the mean
    np.testing.assert_allclose(loaded.encode(images), expected, atol=1e-5)
    np.testing.assert_allclose(from_keras(model).encode(images), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.decode(expected), model.decode(expected).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"shape=\(3, 16, 16, 3\)"):
        loaded.encode(images[:, :16, :16])


def test_list_shows_the_attributes_of_the_data(capsys):
    from facevae.attributes import main

    assert main(["--list"]) == 0
    assert "glasses" in capsys.readouterr().out


def test_shard_attributes_come_from_the_manifest(tmp_path, capsys):
    from facevae.attributes import main
    from facevae.data.labelled_faces import AttributeDataError

    (tmp_path / "manifest.json").write_text(json.dumps({"attribute_names": ["Smiling", "Male", "age_20_29"],
                                                         "splits": {"train": 10}}))
    assert main(["--list", "--data", str(tmp_path)]) == 0
    assert "Smiling, Male, age_20_29" in capsys.readouterr().out
    with pytest.raises(AttributeDataError, match="'glasses' is not in .*; it offers: Smiling, Male, age_20_29"):
        main(["--model", str(tmp_path), "--data", str(tmp_path), "--attribute", "glasses"])
    with pytest.raises(AttributeDataError, match="neither 'synthetic' nor a shard directory"):
        main(["--list", "--data", str(tmp_path / "nowhere")])


def _shards_with_attributes(tmp_path, columns: str, row, seed: int, count: int = 48) -> str:
    """Shards (32 px, data_prep folder) of ``count`` random 16-px images with an attribute table: header
    ``file,<columns>``, and for image i the line ``<file><row(i)>``."""
    from data_prep.prepare import prepare_dataset

    rng = np.random.default_rng(seed)
    (tmp_path / "src").mkdir()
    lines = [f"file,{columns}"]
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "src" / f"{i:03d}.png")
        lines.append(f"{i:03d}.png{row(i)}")
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "shards"), size=32, progress=False,
                    attributes=str(tmp_path / "table.csv"))
    return str(tmp_path / "shards")


def test_balance_on_shards_with_unknown_labels_and_a_copied_attribute(setup, tmp_path):
    """Balanced vectors (the default) on FFHQ-like shards: some faces lack labels (no face found), and 'smile'
    copies 'smiling'. The controls are chosen among the attributes known for every face the vector is fitted on,
    without the copy; --no-balance holds nothing fixed."""
    from facevae.attributes import main

    _, export, _, _ = setup

    def row(i):
        smiling = i % 2 == 0
        makeup = smiling != (i % 5 == 0)  # agrees with smiling on 4 faces in 5
        return f",,,{int(makeup)}" if i % 7 == 3 else f",{int(smiling)},{int(smiling)},{int(makeup)}"

    shards = _shards_with_attributes(tmp_path, "smiling,smile,lip_makeup", row, seed=3)
    for flags, stem, controls in (([], "smiling", ["lip_makeup"]), (["--no-balance"], "plain", [])):
        assert main(["--model", export, "--data", shards, "--attribute", "smiling", *flags, "--count", "30",
                     "--rows", "2", "--alphas", "-1:1:3", "--out", str(tmp_path / f"{stem}.png")]) == 0
        assert json.loads((tmp_path / f"{stem}.json").read_text())["controlled_for"] == controls


def test_a_continuous_attribute_needs_a_threshold_and_works_with_one(setup, tmp_path):
    """FFHQ's age is in years: named alone it is a one-line error suggesting a threshold (the median); 'age>=40'
    puts the faces of 40 and over on the 'with' side of the vector."""
    from data_prep.pipeline import load
    from facevae.attributes import main
    from facevae.data.labelled_faces import AttributeDataError

    _, export, _, _ = setup
    shards = _shards_with_attributes(tmp_path, "glasses,age", lambda i: f",{i % 3 == 0:d},{18 + (i * 7) % 53}", seed=4)
    with pytest.raises(AttributeDataError, match=r"'age' is not 0/1 .*name a threshold, for example --attribute "
                                                 r"'age>="):
        main(["--model", export, "--data", shards, "--attribute", "age", "--count", "30"])
    assert main(["--model", export, "--data", shards, "--attribute", "age>=40", "--count", "30", "--rows", "2",
                 "--alphas", "-1:1:3", "--out", str(tmp_path / "age.png")]) == 0
    ages = np.concatenate([a["age"] for _, a in load(shards, "train", 64, training=False, with_attributes=True)
                           .as_numpy_iterator()])[:30]
    saved = json.loads((tmp_path / "age.json").read_text())
    assert saved["name"] == "age>=40" and saved["counts"] == [int((ages >= 40).sum()), int((ages < 40).sum())]
    assert (tmp_path / "age.png").is_file()


def test_the_vector_is_fitted_on_the_codes_the_edits_are_applied_to():
    """With a refining model the edits move refined codes (``code``), so the vector is the class-mean difference of
    the same codes, not of the encoder's."""
    from facevae import attributes
    from facevae.analysis import latent

    class Refining:
        image_size, channels, latent_dim = 32, 3, 12

        def encode(self, images):
            raise AssertionError("the vector must come from code(), the codes the edits use")

        def code(self, images, progress=False):
            return np.asarray(images, np.float64).reshape(len(images), -1)[:, ::256][:, :12]

    model = Refining()
    args = attributes.build_parser().parse_args(["--model", "m", "--attribute", "glasses", "--count", "40",
                                                 "--rows", "2", "--no-balance"])
    vector, _, images, labels, _ = attributes._vector(args, model)
    z, y = model.code(images)[:40], labels[:40]
    difference = z[y].mean(0) - z[~y].mean(0)
    np.testing.assert_allclose(vector.direction, difference / np.linalg.norm(difference), rtol=1e-5, atol=1e-7)
    assert vector.counts == (int(y.sum()), int((~y).sum()))
    assert isinstance(vector, latent.AttributeVector)
