"""The autoregressive decoder as math: causality by autodiff, a normalised p(x|z), decoding consistent with scoring."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from facevae.config import ModelConfig
from facevae.analysis.metrics import AUTOREGRESSIVE_RECONSTRUCTIONS, default_reconstruction_limit
from facevae.model.vae import FaceVAE
from facevae.model.pixelcnn import AutoregressiveDecoder, MaskedConv2D


def decoder(size: int, seed: int = 0, **kwargs) -> AutoregressiveDecoder:
    keras.utils.set_random_seed(seed)
    layer = AutoregressiveDecoder(size, latent_dim=3, filters=6, latent_channels=2, hidden=8, **kwargs)
    layer.build()
    return layer


def test_logit_i_depends_on_earlier_pixels_only():
    """d logit_i / d x_j, by autodiff: zero for j >= i (raster order), nonzero for some j < i."""
    size = 6
    layer = decoder(size, layers=2)
    images = tf.constant(np.random.default_rng(0).random((1, size, size, 1)), tf.float32)
    z = tf.constant(np.random.default_rng(1).normal(size=(1, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = tf.reshape(layer(z, images), [-1])
    jacobian = tape.jacobian(logits, images).numpy().reshape(size * size, size * size)
    assert np.abs(np.triu(jacobian)).max() == 0.0
    assert (np.abs(np.tril(jacobian, -1)) > 0).sum() > size * size  # the stack does see the past


@pytest.mark.parametrize("window", [3, 5])
def test_window_sets_exactly_which_earlier_pixels_are_seen(window):
    """Without extra layers, logit (r, c) depends on x (r', c') iff (r', c') is in the window's rows above
    (|c' - c| <= window // 2) or to the left in row r: 4 pixels for a 3x3 window, 12 for 5x5 (inside the image)."""
    size, half = 7, window // 2
    layer = decoder(size, window=window)
    seen = np.zeros((size * size, size * size))
    for seed in range(3):  # summed over draws, so a unit that happens to be off for one draw cannot hide a link
        images = tf.constant(np.random.default_rng(seed).random((1, size, size, 1)), tf.float32)
        z = tf.constant(np.random.default_rng(seed + 10).normal(size=(1, 3)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = tf.reshape(layer(z, images), [-1])
        seen += np.abs(tape.jacobian(logits, images).numpy().reshape(size * size, size * size))
    r, c = np.divmod(np.arange(size * size), size)
    above = (r[None, :] < r[:, None]) & (r[None, :] >= r[:, None] - half) & (np.abs(c[None, :] - c[:, None]) <= half)
    left = (r[None, :] == r[:, None]) & (c[None, :] < c[:, None]) & (c[None, :] >= c[:, None] - half)
    np.testing.assert_array_equal(seen > 0, above | left)
    assert (above | left)[3 * size + 3].sum() == {3: 4, 5: 12}[window]


def test_probabilities_of_all_binary_images_sum_to_one():
    """sum_x p(x|z) = 1 over all 2^9 binary 3x3 images: the factors p(x_i | x_<i, z) chain into a distribution."""
    size = 3
    layer = decoder(size, seed=2)
    images = np.array(list(itertools.product((0.0, 1.0), repeat=size * size)), np.float32).reshape(-1, size, size, 1)
    z = np.tile(np.random.default_rng(3).normal(size=(1, 3)).astype(np.float32), (len(images), 1))
    logits = layer(z, images).numpy().astype(np.float64)
    log_p = (images * logits - np.logaddexp(0.0, logits)).reshape(len(images), -1).sum(1)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)


def test_generation_matches_teacher_forced_scoring():
    """Pixels drawn one by one equal 1[noise < p], and p equals sigmoid(logits) of the finished image."""
    size = 5
    layer = decoder(size, seed=4)
    z = tf.constant(np.random.default_rng(5).normal(size=(4, 3)), tf.float32)
    noise = np.random.default_rng(6).random((4, size, size, 1)).astype(np.float32)
    pixels, probabilities = layer.generate(z, noise)
    np.testing.assert_array_equal(pixels.numpy(), (noise < probabilities.numpy()).astype(np.float32))
    np.testing.assert_allclose(tf.sigmoid(layer(z, pixels)).numpy(), probabilities.numpy(), atol=1e-6)
    greedy = layer.generate(z)[0].numpy()
    np.testing.assert_array_equal(greedy, layer.generate(z)[0].numpy())  # deterministic without noise


def test_masked_conv_checks_and_round_trips_its_arguments():
    with pytest.raises(ValueError, match="Received: mask_type='C'"):
        MaskedConv2D(4, 3, "C")
    with pytest.raises(ValueError, match="Received: padding='valid'"):
        MaskedConv2D(4, 3, "A", padding="valid")
    with pytest.raises(ValueError, match="Received: filters=0"):
        AutoregressiveDecoder(8, 3, filters=0)
    with pytest.raises(ValueError, match="Received: window=4"):
        AutoregressiveDecoder(8, 3, window=4)
    layer = MaskedConv2D(4, 3, "A", name="m")
    assert MaskedConv2D.from_config(layer.get_config()).mask_type == "A"


def pixel_config(**overrides) -> ModelConfig:
    values = dict(image_size=28, channels=1, latent_dim=4, filters=(4, 8, 8, 8), likelihood="bernoulli",
                  decoder="pixelcnn", pixel_filters=8, pixel_layers=1, pixel_window=5, flows=2,
                  flow_mode="amortized")
    return ModelConfig(**{**values, **overrides})


def test_config_rejects_pixelcnn_for_colour_or_gaussian_images():
    for overrides in ({"channels": 3}, {"likelihood": "gaussian"}):
        with pytest.raises(ValueError, match="decoder='pixelcnn'"):
            pixel_config(**overrides).validate()
    with pytest.raises(ValueError, match="Unknown decoder 'pixel'"):
        pixel_config(decoder="pixel").validate()
    with pytest.raises(ValueError, match="Received: pixel_window=4"):
        pixel_config(pixel_window=4).validate()


def test_importance_weights_score_the_same_likelihood_as_the_elbo():
    """With one draw of the same noise, log w = -(reconstruction + kl) of elbo_terms, exactly as the formula says."""
    model = FaceVAE(pixel_config(), seed=0)
    images = (np.random.default_rng(1).random((3, 28, 28, 1)) < 0.3).astype(np.float32)
    state = model.sampler.seed_generator.state.numpy()
    log_w = model.log_importance_weights(images, 1).numpy()[0]
    model.sampler.seed_generator.state.assign(state)  # the same eps again
    terms = model.elbo_terms(images)
    np.testing.assert_allclose(log_w, -terms["loss"].numpy(), rtol=1e-5)


def test_keras_file_round_trip_and_decoding(tmp_path):
    model = FaceVAE(pixel_config(), seed=3)
    images = (np.random.default_rng(4).random((2, 28, 28, 1)) < 0.3).astype(np.float32)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.config == model.config and loaded.autoregressive and loaded.decoder.window == 5
    assert default_reconstruction_limit(loaded) == AUTOREGRESSIVE_RECONSTRUCTIONS
    assert default_reconstruction_limit(FaceVAE(pixel_config(decoder="conv"), seed=3)) is None
    np.testing.assert_allclose(loaded.elbo_terms(images, noise=np.zeros((2, 4), np.float32))["reconstruction"],
                               model.elbo_terms(images, noise=np.zeros((2, 4), np.float32))["reconstruction"], rtol=1e-6)
    decoded = loaded.reconstruct(images).numpy()
    assert decoded.shape == images.shape and 0.0 <= decoded.min() and decoded.max() <= 1.0
    with pytest.raises(ValueError, match="needs the images"):
        model.decode_logits(np.zeros((1, 4), np.float32))


def test_export_serves_the_autoregressive_decoder(tmp_path):
    """The SavedModel's decode endpoint runs the pixel-by-pixel decoding and matches the in-memory model."""
    from facevae.export.serving import export_model

    model = FaceVAE(pixel_config(flows=0), seed=5)
    directory = export_model(model, str(tmp_path / "export"), include_keras=False)
    loaded = tf.saved_model.load(directory)
    z = np.random.default_rng(6).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.decode(z)["images"].numpy(), model.decode(z).numpy(), atol=1e-5)
