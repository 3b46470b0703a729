"""The FaceVAE: shapes at every supported size, the objective as math, serialisation."""
import json
import math
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from facevae.model import losses
from facevae.config import ModelConfig
from facevae.model.vae import FaceVAE, SoftUpperBound
from tiny_config import tiny_model_config


small_config = tiny_model_config


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 3), (128, 1), (256, 3)])
def test_shapes_at_every_size(size, channels):
    model = FaceVAE(small_config(image_size=size, channels=channels), seed=0)
    images = tf.random.uniform([2, size, size, channels])
    mean, log_var, z = model.encode(images)
    assert mean.shape == log_var.shape == z.shape == (2, 6)
    assert model.decode(z).shape == (2, size, size, channels)
    assert model.reconstruct(images).shape == images.shape
    assert model.sample(3).shape == (3, size, size, channels)
    assert model.log_importance_weights(images, num_samples=4).shape == (4, 2)


def _set_posterior_bias(model, mean_bias, log_var_bias):
    model.encoder.get_layer("mean").bias.assign(np.full(model.config.latent_dim, mean_bias, np.float32))
    model.encoder.get_layer("log_var").bias.assign(np.full(model.config.latent_dim, log_var_bias, np.float32))


def test_monte_carlo_kl_without_flows_matches_closed_form():
    """K = 0: E_q[log q0(z|x) - log p(z)] = KL(q0 || p); the model's one-sample KL, averaged, agrees within 3 SE."""
    model = FaceVAE(small_config(flows=0), seed=1)
    _set_posterior_bias(model, 0.7, -1.2)
    image = tf.random.uniform([1, 32, 32, 3], seed=3)
    repeated = tf.repeat(image, 4000, axis=0)
    kl = model.elbo_terms(repeated)["kl"].numpy()
    mean, log_var, _ = model.posterior(image)
    closed = float(losses.gaussian_kl(mean, log_var)[0])
    error = kl.std() / math.sqrt(len(kl))
    assert abs(kl.mean() - closed) < 3 * error, (kl.mean(), closed, error)
    assert closed > 1.0  # the check is not vacuous


def test_a_very_precise_posterior_gives_a_finite_objective():
    """log_var -100 at mean 10 (float32): the one-sample KL is finite and exact, the importance weights finite."""
    model = FaceVAE(small_config(flows=0), seed=1)
    _set_posterior_bias(model, 10.0, -100.0)
    image = tf.random.uniform([2, 32, 32, 3], seed=3)
    noise = np.random.default_rng(0).normal(size=(2, model.config.latent_dim))
    terms = model.elbo_terms(image, noise=noise)
    assert np.all(np.isfinite(terms["loss"].numpy()))
    mean, log_var, _ = (np.asarray(t, np.float64) for t in model.posterior(image))
    # log q0(z0) - log p(z0) with z0 = mean (the spread exp(-50) is below float32's resolution at 10)
    expected = 0.5 * np.sum(np.square(mean) - log_var - np.square(noise), axis=-1)
    np.testing.assert_allclose(terms["kl"].numpy(), expected, rtol=1e-5)
    assert np.all(np.isfinite(model.log_importance_weights(image, num_samples=3).numpy()))


def test_soft_upper_bound_keeps_low_values_caps_high_ones_and_has_a_sigmoid_slope():
    """y = m - softplus(m - x): y <= m, y ~ x well below m, dy/dx = sigmoid(m - x) (against autodiff)."""
    x = tf.constant([-30.0, -5.0, -0.1, 2.0, 5.0, 40.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = SoftUpperBound(2.0)(x)
    slope = tape.gradient(y, x).numpy()
    y, x = y.numpy().astype(np.float64), x.numpy().astype(np.float64)
    np.testing.assert_allclose(y, 2.0 - np.log1p(np.exp(2.0 - x)), rtol=1e-6, atol=1e-6)
    assert np.all(y <= 2.0) and abs(y[1] - x[1]) < 1e-3 and abs(y[-1] - 2.0) < 1e-6
    np.testing.assert_allclose(slope, 1.0 / (1.0 + np.exp(x - 2.0)), rtol=1e-5, atol=1e-12)


def test_log_var_max_caps_the_kl_gradient_of_a_runaway_log_variance(tmp_path):
    """A log-variance head at +20 (as one batch reached at 128 px): unbounded, the KL's gradient on the head's bias
    is of order exp(20) / 2 ~ 2e8; with log_var_max 2 it stays below exp(2) / 2 * max eps^2 per dimension. The bound
    is a layer of the saved model: a .keras round trip gives equal posteriors."""
    image = tf.random.uniform([4, 32, 32, 3], seed=3)
    largest = {}
    for limit in (None, 2.0):
        model = FaceVAE(small_config(flows=0, log_var_max=limit), seed=1)
        _set_posterior_bias(model, 0.0, 20.0)
        noise = np.random.default_rng(0).normal(size=(4, model.config.latent_dim)).astype(np.float32)
        with tf.GradientTape() as tape:
            kl = tf.reduce_mean(model.elbo_terms(image, noise=noise)["kl"])
        gradient = tape.gradient(kl, model.encoder.get_layer("log_var").bias).numpy()
        largest[limit] = np.abs(gradient).max()
        log_var = model.posterior(image)[1].numpy()
        assert (log_var.max() > 15) if limit is None else (log_var.max() <= limit)
    assert largest[None] > 1e7
    assert largest[2.0] < math.exp(2.0) / 2 * np.max(noise ** 2) + 1
    path = str(tmp_path / "bounded.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.config.log_var_max == 2.0
    for a, b in zip(loaded.posterior(image), model.posterior(image)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def _planar_numpy(z, u, w, b):
    """Independent float64 reference of one planar flow: (f(z), log|det J|)."""
    wu = w @ u
    u_hat = u + (-1 + np.log1p(np.exp(wu)) - wu) * w / (w @ w)
    a = z @ w + b
    y = z + np.outer(np.tanh(a), u_hat)
    log_det = np.log(np.abs(1 + (1 - np.tanh(a) ** 2) * (w @ u_hat)))
    return y, log_det


@pytest.mark.parametrize("likelihood, sigma", [("gaussian", 0.1), ("bernoulli", 0.1), ("mse", 0.1),
                                               ("gaussian", "learned"), ("gaussian", "learned-shared"),
                                               ("gaussian", "optimal")])
def test_loss_with_flows_equals_the_design_formula(likelihood, sigma):
    """-log p(x|zK) + log q0(z0|x) - sum_k log|det J_k| - log p(zK), recomputed in numpy on hand-set flows.

    A learned sigma is hand-set per channel (or shared); the optimal sigma is sigma_c^2 = the batch's mean squared
    error per channel. The Gaussian keeps its full normaliser, log sigma + log(2 pi) / 2 per pixel.
    """
    shared = sigma == "learned-shared"
    sigma = "learned" if shared else sigma
    model = FaceVAE(small_config(flows=2, likelihood=likelihood, sigma=sigma, sigma_shared=shared), seed=2)
    hand_sigma = np.array(0.23) if shared else np.array([0.05, 0.2, 0.7])
    if sigma == "learned":
        model.log_sigma.assign(np.log(hand_sigma).astype(np.float32))
    _set_posterior_bias(model, 0.3, -0.5)
    rng = np.random.default_rng(0)
    hand_set = [(rng.normal(size=6), rng.normal(size=6), rng.normal()) for _ in range(2)]
    model.flows.u.assign(np.stack([u for u, _, _ in hand_set]).astype(np.float32))
    model.flows.w.assign(np.stack([w for _, w, _ in hand_set]).astype(np.float32))
    model.flows.b.assign(np.array([b for _, _, b in hand_set], np.float32))
    images = tf.random.uniform([5, 32, 32, 3], seed=4)
    if likelihood == "bernoulli":
        images = tf.round(images)
    training = sigma == "optimal"  # optimal: sigma* of this batch, a training-mode pass (BatchNorm batch statistics)
    terms = model.elbo_terms(images, training=training)
    mean, log_var, _ = (t.numpy().astype(np.float64) for t in model.posterior(images, training=training))
    z0 = terms["z0"].numpy().astype(np.float64)
    z, log_det = z0, np.zeros(5)
    for u, w, b in hand_set:
        z, ld = _planar_numpy(z, u, w, b)
        log_det += ld
    np.testing.assert_allclose(terms["zk"].numpy(), z, atol=1e-5)
    log_q0 = np.sum(-0.5 * (np.log(2 * np.pi) + log_var + (z0 - mean) ** 2 / np.exp(log_var)), axis=1)
    log_prior = np.sum(-0.5 * (np.log(2 * np.pi) + z**2), axis=1)
    logits = model.decode_logits(z.astype(np.float32), training=training).numpy().astype(np.float64)
    x = images.numpy().astype(np.float64).reshape(5, -1)
    m = (1 / (1 + np.exp(-logits))).reshape(5, -1)
    if likelihood == "bernoulli":
        reconstruction = -np.sum(x * np.log(m) + (1 - x) * np.log(1 - m), axis=1)
    elif likelihood == "gaussian":
        if sigma == 0.1:
            s = np.full(x.shape[1], 0.1)
        elif sigma == "optimal":  # per channel (the last axis of the image), over the whole batch
            channel_mse = ((x - m) ** 2).reshape(5, 32, 32, 3).mean(axis=(0, 1, 2))
            s = np.tile(np.sqrt(channel_mse), 32 * 32)
            np.testing.assert_allclose(np.exp(model.log_sigma.numpy()), np.sqrt(channel_mse), rtol=1e-5)
        else:  # pixel i of the flattened [32, 32, 3] image has channel i mod 3
            s = np.resize(np.atleast_1d(hand_sigma), x.shape[1])
        reconstruction = np.sum((x - m) ** 2 / (2 * s**2) + np.log(s) + 0.5 * np.log(2 * np.pi), axis=1)
    else:
        reconstruction = 10000.0 * np.mean((x - m) ** 2, axis=1)
    expected = reconstruction + log_q0 - log_det - log_prior
    np.testing.assert_allclose(terms["log_det"].numpy(), log_det, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["loss"].numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("mode", ["global", "amortized"])
def test_keras_file_round_trip_gives_equal_outputs(tmp_path, mode):
    model = FaceVAE(small_config(image_size=28, channels=1, flows=3, flow_mode=mode, likelihood="bernoulli"), seed=5)
    model.compile(optimizer="adam")
    images = tf.random.uniform([3, 28, 28, 1], seed=6)
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(3), epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, FaceVAE) and loaded.config == model.config
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)
    for a, b in zip(loaded.encode(images), model.encode(images)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_training_lowers_the_loss_and_gradients_reach_every_weight():
    model = FaceVAE(small_config(flows=2, flow_mode="amortized"), seed=7)
    images = tf.random.uniform([16, 32, 32, 3], seed=8)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.elbo_terms(images, training=True)["loss"])
    gradients = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
    assert not missing
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(16).repeat(30), epochs=1, verbose=0)
    before = model.evaluate(images, verbose=0, return_dict=True)
    assert set(before) == {"loss", "reconstruction", "kl", "log_det"}
    assert history.history["loss"][0] < float(loss)


def test_learned_sigma_is_trained_and_optimal_sigma_is_not():
    """A learned log sigma gets the gradient d loss / d log sigma_c = sum over its pixels of 1 - (x - m)^2 / sigma_c^2;
    the optimal one is a stop-gradient statistic, not a trainable weight; evaluation uses the last training batch's."""
    images = tf.random.uniform([4, 32, 32, 3], seed=9)
    learned = FaceVAE(small_config(sigma="learned"), seed=3)
    with tf.GradientTape() as tape:
        terms = learned.objective(images, training=True, noise=tf.zeros([4, 6]))
        loss = tf.reduce_sum(terms.reconstruction)
    gradient = tape.gradient(loss, learned.log_sigma).numpy()
    logits = learned.decode_logits(terms.zk, training=True).numpy().astype(np.float64)
    m = 1 / (1 + np.exp(-logits))
    expected = np.sum(1 - (images.numpy() - m) ** 2 / 0.1**2, axis=(0, 1, 2))
    np.testing.assert_allclose(gradient, expected, rtol=1e-3)
    optimal = FaceVAE(small_config(sigma="optimal", sigma_shared=True), seed=3)
    assert optimal.log_sigma.shape == () and not optimal.log_sigma.trainable
    assert all("log_sigma" not in v.path for v in optimal.trainable_variables)
    optimal.objective(images, training=True)
    stored = optimal.log_sigma.numpy()
    optimal.objective(tf.random.uniform([4, 32, 32, 3], seed=10), training=False)
    assert optimal.log_sigma.numpy() == stored  # evaluation reads it, does not set it


def test_amortized_flows_of_new_models_read_scaled_features_and_of_configs_without_the_field_unscaled():
    new = FaceVAE(small_config(flows=2, flow_mode="amortized"), seed=0)
    assert new.flows.fan_in_scaled is True
    saved = new.get_config()
    del saved["config"]["amortized_fan_in_scaled"]
    assert FaceVAE.from_config(saved).flows.fan_in_scaled is False


def test_decoder_kernel_is_4_for_new_models_and_3_for_configs_without_it(tmp_path):
    """New models get 4x4 transposed kernels; a config (or .keras file) saved before the field existed is the
    3x3 decoder, and the .keras file loads with equal outputs."""
    new = FaceVAE(small_config(), seed=0)
    assert new.decoder.get_layer("logits").kernel.shape[:2] == (4, 4)
    assert new.decoder.get_layer("dec0_conv").kernel.shape[:2] == (4, 4)
    saved = new.get_config()
    del saved["config"]["decoder_kernel"]
    old = FaceVAE.from_config(saved)
    assert old.config.decoder_kernel == 3
    assert old.decoder.get_layer("dec0_conv").kernel.shape[:2] == (3, 3)
    path, legacy = str(tmp_path / "old.keras"), str(tmp_path / "legacy.keras")
    old.save(path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(legacy, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                values = json.loads(data)
                del values["config"]["config"]["decoder_kernel"]
                data = json.dumps(values).encode()
            target.writestr(item, data)
    loaded = keras.models.load_model(legacy)
    assert loaded.config.decoder_kernel == 3
    images = tf.random.uniform([2, 32, 32, 3], seed=1)
    np.testing.assert_array_equal(loaded.reconstruct(images).numpy(), old.reconstruct(images).numpy())


def test_seam_free_kernel_covers_every_output_pixel_equally():
    """Stride-2 transposed convolution of a constant input: a 4x4 kernel of ones gives the same value at every
    interior pixel (each gets 2x2 taps), a 3x3 kernel alternates 1, 2, 4 taps (the seam grid)."""
    taps = {}
    for k in (3, 4):
        layer = keras.layers.Conv2DTranspose(1, k, strides=2, padding="same", use_bias=False, kernel_initializer="ones")
        out = layer(tf.ones([1, 8, 8, 1])).numpy()[0, 2:-2, 2:-2, 0]
        taps[k] = sorted(set(out.ravel().tolist()))
    assert taps[4] == [4.0] and taps[3] == [1.0, 2.0, 4.0]


def test_config_errors_echo_the_value():
    with pytest.raises(ValueError, match="Received: latent_dim=0"):
        FaceVAE(small_config(latent_dim=0))


@pytest.mark.parametrize("resize_blocks", [0, 2, 4])
def test_resize_blocks_replace_the_coarsest_transposed_blocks_and_reload_with_equal_outputs(tmp_path, resize_blocks):
    model = FaceVAE(small_config(decoder_resize_blocks=resize_blocks), seed=0)
    convs = [model.decoder.get_layer(name) for name in ("dec0_conv", "dec1_conv", "dec2_conv", "logits")]
    assert [type(conv) for conv in convs] == (
        [keras.layers.Conv2D] * resize_blocks + [keras.layers.Conv2DTranspose] * (4 - resize_blocks))
    assert all(conv.kernel.shape[:2] == ((3, 3) if i < resize_blocks else (4, 4)) for i, conv in enumerate(convs))
    assert convs[-1].dtype == "float32"
    images = tf.random.uniform([2, 32, 32, 3], seed=2)
    assert model.reconstruct(images).shape == images.shape
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.config.decoder_resize_blocks == resize_blocks
    np.testing.assert_array_equal(loaded.reconstruct(images).numpy(), model.reconstruct(images).numpy())


@pytest.mark.parametrize("resize, ripple", [(True, False), (False, True)])
def test_a_resize_block_maps_a_ramp_to_a_ramp_and_a_transposed_block_adds_a_period_2_ripple(resize, ripple):
    """Bilinear x2 of a linear ramp is a linear ramp, and a convolution of an affine image is affine, so away from
    the border every second difference of a resize block's output is 0. A stride-2 Conv2DTranspose gives even and
    odd output pixels different taps, so the same ramp comes out with a period-2 ripple."""
    model = FaceVAE(small_config(decoder_resize_blocks=1 if resize else 0), seed=0)
    layers = [model.decoder.get_layer(name) for name in (["dec0_resize"] if resize else []) + ["dec0_conv"]]
    channels = model.config.filters[-1]
    rows, cols = np.meshgrid(np.arange(10.0), np.arange(10.0), indexing="ij")
    slopes = np.random.default_rng(0).normal(size=[2, channels])
    ramp = (rows[..., None] * slopes[0] + cols[..., None] * slopes[1])[None].astype(np.float32)
    out = ramp
    for layer in layers:
        out = layer(out)
    out = out.numpy()[0, 3:-3, 3:-3]  # [14, 14, F], away from the padded border
    second = np.concatenate([np.diff(out, 2, axis=0).ravel(), np.diff(out, 2, axis=1).ravel()])
    assert (np.abs(second).max() > 1e-3 * np.abs(out).max()) == ripple


@pytest.mark.parametrize("resize_blocks", [0, 4])
def test_a_full_resolution_block_puts_a_non_linear_layer_before_a_3x3_logits_conv_and_reloads(tmp_path, resize_blocks):
    """decoder_full_res_filters F: the fourth block gives [B, S, S, F] features (BatchNorm, LeakyReLU), then a 3x3
    stride-1 Conv2D the float32 logits; it upsamples as the other blocks do (transposed, or resized with all four)."""
    model = FaceVAE(small_config(decoder_full_res_filters=5, decoder_resize_blocks=resize_blocks), seed=0)
    size = model.config.image_size
    full, logits = model.decoder.get_layer("dec_full_conv"), model.decoder.get_layer("logits")
    assert type(full) is (keras.layers.Conv2D if resize_blocks == 4 else keras.layers.Conv2DTranspose)
    assert full.output.shape[1:] == (size, size, 5)
    assert model.decoder.get_layer("dec_full_act").output.shape[1:] == (size, size, 5)
    assert type(logits) is keras.layers.Conv2D and logits.strides == (1, 1) and logits.kernel.shape == (3, 3, 5, 3)
    assert logits.dtype == "float32"
    images = tf.random.uniform([2, size, size, 3], seed=2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.config.decoder_full_res_filters == 5
    np.testing.assert_array_equal(loaded.reconstruct(images).numpy(), model.reconstruct(images).numpy())


def test_a_saved_config_without_decoder_full_res_filters_has_the_fourth_block_give_the_logits():
    saved = FaceVAE(small_config(), seed=0).get_config()
    del saved["config"]["decoder_full_res_filters"]
    old = FaceVAE.from_config(saved)
    assert old.config.decoder_full_res_filters == 0
    assert type(old.decoder.get_layer("logits")) is keras.layers.Conv2DTranspose
    assert "dec_full_conv" not in [layer.name for layer in old.decoder.layers]


def test_a_saved_config_without_decoder_resize_blocks_is_the_transposed_decoder():
    saved = FaceVAE(small_config(), seed=0).get_config()
    del saved["config"]["decoder_resize_blocks"]
    assert FaceVAE.from_config(saved).config.decoder_resize_blocks == 0
