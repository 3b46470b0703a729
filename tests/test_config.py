"""Presets, validation with messages that name the value, and the JSON round trip."""
import pytest

from facevae.config import DATASETS, PRESETS, ModelConfig, RunConfig, preset


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


def test_face_presets_follow_the_published_optimiser_with_a_calibrated_decoder_and_fitted_prior():
    for name in ("ffhq", "folder"):
        faces = preset(name)
        assert (faces.train.learning_rate, faces.train.batch_size, faces.train.epochs) == (5e-4, 150, 30)
        m = faces.model
        assert (m.likelihood, m.sigma, m.prior, m.prior_components, m.decoder_kernel) == (
            "gaussian", "learned", "gmm", 1, 4)
        assert (m.filters, m.latent_dim) == ((32, 64, 128, 256), 800)  # measured on real faces (README)
        assert (m.refine_steps, m.refine_rate) == (50, 0.03)  # chosen on the validation faces (README)
        assert faces.data.flip and faces.data.shift == 0 and faces.train.precise_bn_batches == 8
        assert m.log_var_max == 2.0  # the soft bound that keeps 128-px training stable (README)
    assert ModelConfig().log_var_max is None  # unbounded elsewhere, and for models saved before the field
    # the published recipe stays reachable exactly
    assert preset("ffhq").model.r_loss_factor == 10000.0


def test_the_demo_preset_learns_sigma_and_fits_a_prior():
    m = preset("synthetic").model
    assert (m.likelihood, m.sigma, m.prior, m.prior_components, m.filters) == (
        "gaussian", "learned", "gmm", 1, (32, 64, 64, 64))


def test_a_saved_config_without_decoder_kernel_is_the_old_3x3_decoder(tmp_path):
    import json

    values = preset("folder").to_dict()
    for key in ("decoder_kernel", "prior", "prior_components", "prior_flows", "prior_flow_type", "sigma_shared",
                "refine_steps", "refine_rate", "amortized_fan_in_scaled"):
        del values["model"][key]
    values["model"]["sigma"] = 0.1
    del values["train"]["precise_bn_batches"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    loaded = RunConfig.load(str(path)).validate()
    assert (loaded.model.decoder_kernel, loaded.model.prior, loaded.model.sigma) == (3, "standard", 0.1)
    assert loaded.model.refine_steps == 0  # an older run reconstructs from the encoder's codes, as it did
    assert loaded.model.amortized_fan_in_scaled is False  # and its amortized flows read unscaled features
    assert preset("folder").model.amortized_fan_in_scaled is True
    # the research branch's name of the one-Gaussian prior
    values["model"]["prior"] = "gaussian"
    path.write_text(json.dumps(values))
    loaded = RunConfig.load(str(path)).validate()
    assert (loaded.model.prior, loaded.model.prior_components) == ("gmm", 1)


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


def test_prior_and_decoder_fields_are_checked():
    from facevae.config import PRIORS
    from facevae.model.prior import PRIOR_KINDS

    assert PRIORS == PRIOR_KINDS
    for field, value, message in (("prior", "vamp", "Unknown prior 'vamp'"),
                                  ("prior_components", 0, "Received: prior_components=0"),
                                  ("decoder_kernel", 1, "Received: decoder_kernel=1"),
                                  ("decoder_resize_blocks", -1, "Received: decoder_resize_blocks=-1"),
                                  ("decoder_full_res_filters", -2, "Received: decoder_full_res_filters=-2")):
        config = preset("folder")
        setattr(config.model, field, value)
        with pytest.raises(ValueError, match=message):
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
        ("train", "kl_weight", 0.0, "Received: kl_weight=0.0"),
        ("data", "shift", 33, "--shift 33 is outside 0..32 \\(half of --image-size 64\\)"),
        ("data", "shift", -1, "--shift -1 is outside 0..32"),
        ("train", "ema_momentum", 1.0, "--ema-momentum must be a number in \\[0, 1\\).*Received: 1.0"),
        ("train", "ema_momentum", -0.5, "--ema-momentum must be a number in \\[0, 1\\).*Received: -0.5"),
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


def test_shift_with_the_built_in_faces_is_an_error_not_ignored(capsys):
    from facevae import train

    assert train.main(["--shift", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--shift 2 translates images read from shards" in err and "drop --shift" in err
    config = preset("folder")
    config.data.shift = 2
    config.validate()  # shards: fine


def test_data_dir_with_the_built_in_faces_is_an_error_not_ignored(capsys):
    from facevae import train

    config = preset("synthetic")
    config.data.data_dir = "shards/ffhq64"
    with pytest.raises(ValueError, match="--data-dir shards/ffhq64 is not read by --dataset synthetic"):
        config.validate()
    assert train.main(["--data-dir", "shards/ffhq64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drop --data-dir" in err and "--dataset ffhq|" in err
