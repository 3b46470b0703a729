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


def test_face_preset_follows_the_published_optimiser_with_a_calibrated_decoder_and_fitted_prior():
    ffhq = preset("ffhq")
    assert (ffhq.train.learning_rate, ffhq.train.batch_size, ffhq.train.epochs) == (5e-4, 150, 30)
    assert (ffhq.model.likelihood, ffhq.model.sigma, ffhq.model.prior) == ("gaussian", "learned", "gaussian")
    assert ffhq.model.decoder_kernel == 4 and ffhq.data.flip and ffhq.train.precise_bn_batches > 0


def test_a_saved_config_without_decoder_kernel_is_the_old_3x3_decoder(tmp_path):
    import json
    values = preset("folder").to_dict()
    del values["model"]["decoder_kernel"], values["model"]["prior"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    loaded = RunConfig.load(str(path)).validate()
    assert loaded.model.decoder_kernel == 3 and loaded.model.prior == "standard"


def test_sigma_is_a_positive_number_or_a_mode():
    config = preset("folder")
    for good in (0.05, "learned", "optimal"):
        config.model.sigma = good
        config.validate()
    config.model.sigma = "huge"
    with pytest.raises(ValueError, match="Unknown sigma 'huge'; expected one of \\['learned', 'optimal'\\]"):
        config.validate()
    config.model.sigma = -1.0
    with pytest.raises(ValueError, match="Received: sigma=-1.0"):
        config.validate()


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
