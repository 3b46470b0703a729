"""Presets, validation with messages that name the value, and the JSON round trip."""
import pytest

from facevae.config import DATASETS, PRESETS, RunConfig, preset


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_preset_is_valid_and_round_trips(tmp_path, dataset):
    config = preset(dataset).validate()
    path = tmp_path / "config.json"
    config.save(str(path))
    assert RunConfig.load(str(path)) == config


def test_preset_is_a_copy():
    config = preset("synthetic")
    config.train.epochs = 999
    assert PRESETS["synthetic"].train.epochs != 999


def test_face_preset_follows_the_published_recipe():
    ffhq = preset("ffhq")
    assert (ffhq.train.learning_rate, ffhq.train.batch_size, ffhq.train.epochs) == (5e-4, 150, 30)
    assert (ffhq.model.likelihood, ffhq.model.r_loss_factor) == ("mse", 10000.0)


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("data", "dataset", "cifar", "Unknown dataset 'cifar'; expected one of"),
        ("model", "latent_dim", 0, "Received: latent_dim=0"),
        ("model", "flows", -1, "Received: flows=-1"),
        ("model", "flow_mode", "sideways", "Unknown flow mode 'sideways'"),
        ("train", "epochs", 0, "Received: epochs=0"),
        ("train", "batch_size", -3, "Received: batch_size=-3"),
    ],
)
def test_validation_names_the_bad_value(section, field, value, message):
    config = preset("synthetic")
    setattr(getattr(config, section), field, value)
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_model_and_data_must_agree_on_shape():
    config = preset("synthetic")
    config.model.image_size = 32
    with pytest.raises(ValueError, match="disagree on image shape"):
        config.validate()


def test_data_dir_with_the_built_in_faces_is_an_error_not_ignored(capsys):
    from facevae import train

    config = preset("synthetic")
    config.data.data_dir = "shards/ffhq64"
    with pytest.raises(ValueError, match="--data-dir shards/ffhq64 is not read by --dataset synthetic"):
        config.validate()
    assert train.main(["--data-dir", "shards/ffhq64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drop --data-dir" in err and "--dataset ffhq|" in err
