"""An autoregressive (PixelCNN-style) decoder for binary images: p(x|z) = prod_i Bernoulli(x_i | sigmoid(l_i)).

The logit of pixel i (raster order) depends on z and on the pixels before it, x_<i:

    h_x = MaskedConvStack(x)                       [B, S, S, F]   sees x_<i only (type-A mask first,
                                                                  window x window, default 7x7)
    h_z = reshape(Dense(relu(Dense(z))))           [B, S, S, C_z] one small code per pixel from z
    l   = w . relu(A h_x + C h_z + b) + c          [B, S, S, 1]   per pixel, U hidden units

Everything after the masked stack is per pixel (1x1), so l_i never sees x_i or later pixels. The
x-context Conv1x1(h_x) does not depend on z: ``log_importance_weights`` computes it once per image
and broadcasts it over all S posterior draws, so only the cheap z-part (~0.5M multiply-adds) runs per draw.

A decoder with a small receptive field models local stroke continuity and leaves the global shape
to z (Gulrajani et al. 2017, "PixelVAE"; Chen et al. 2017, "Variational Lossy Autoencoder"); that
is what lets a one-latent-layer VAE reach a low NLL on binarized MNIST.

Decoding (no x given) is sequential: S*S passes, one pixel per pass. ``generate(z, noise)`` fills
pixel i with 1[noise_i < p_i]; noise 0.5 everywhere is the deterministic greedy decoding.

References: van den Oord, Kalchbrenner and Kavukcuoglu (2016), "Pixel Recurrent Neural Networks".
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["MaskedConv2D", "AutoregressiveDecoder"]


@keras.saving.register_keras_serializable(package="facevae")
class MaskedConv2D(keras.layers.Conv2D):
    """Conv2D ('same' padding) whose kernel sees only rows above and pixels to the left in the centre row.

    mask_type ``"A"`` also hides the centre pixel (first layer: output i must not see input i);
    ``"B"`` keeps it (later layers, whose centre already summarises x_<i). Input [B, H, W, C_in].
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str = "B", **kwargs: Any):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B'. Received: mask_type={mask_type!r}")
        if kwargs.setdefault("padding", "same") != "same":
            raise ValueError(f"MaskedConv2D needs padding='same'. Received: padding={kwargs['padding']!r}")
        super().__init__(filters, kernel_size, **kwargs)
        self.mask_type = mask_type

    def build(self, input_shape):
        super().build(input_shape)
        rows, cols = self.kernel_size
        mask = np.zeros(self.kernel.shape, np.float32)
        mask[: rows // 2] = 1.0
        mask[rows // 2, : cols // 2 + (self.mask_type == "B")] = 1.0
        self.mask = tf.constant(mask)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * tf.cast(self.mask, kernel.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_type": self.mask_type}


@keras.saving.register_keras_serializable(package="facevae")
class AutoregressiveDecoder(keras.layers.Layer):
    """p(x|z) for single-channel binary images [B, S, S, 1]; see the module docstring for the equations.

    Args:
        image_size: S. latent_dim: d. filters: F, width of the masked stack. layers: residual type-B
        3x3 layers after the type-A one (receptive field window // 2 + layers rows up). latent_channels: C_z.
        hidden: width of the z MLP. units: U, hidden units of the per-pixel combination. window: odd
        side of the type-A kernel; 7 sees 24 earlier pixels, 5 sees 12, 3 sees 4. A smaller window
        leaves more of each digit for z to carry.
    """

    def __init__(self, image_size: int, latent_dim: int, filters: int = 32, layers: int = 0,
                 latent_channels: int = 4, hidden: int = 256, units: int = 32, window: int = 7, **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("image_size", image_size), ("latent_dim", latent_dim), ("filters", filters),
                            ("latent_channels", latent_channels), ("hidden", hidden), ("units", units)):
            if value <= 0:
                raise ValueError(f"{name} must be positive. Received: {name}={value!r}")
        if layers < 0:
            raise ValueError(f"layers must be >= 0. Received: layers={layers!r}")
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window must be an odd number >= 3. Received: window={window!r}")
        self.image_size, self.latent_dim, self.filters, self.layers = image_size, latent_dim, filters, layers
        self.latent_channels, self.hidden, self.units, self.window = latent_channels, hidden, units, window
        self.first = MaskedConv2D(filters, window, "A", name="masked_a")
        self.stack = [MaskedConv2D(filters, 3, "B", name=f"masked_b{i}") for i in range(layers)]
        # Per-pixel (1x1) maps are Dense layers on the channel axis, so z-draws [n, B, ...] broadcast
        # against one x-context [B, ...] without copying it n times.
        self.context_proj = keras.layers.Dense(units, name="context_proj")
        self.latent_hidden = keras.layers.Dense(hidden, activation="relu", name="latent_hidden")
        self.latent_map = keras.layers.Dense(image_size * image_size * latent_channels, name="latent_map")
        self.latent_proj = keras.layers.Dense(units, use_bias=False, name="latent_proj")
        self.out = keras.layers.Dense(1, name="logits", dtype="float32")

    def build(self, z_shape=None):
        s = self.image_size
        self.first.build((None, s, s, 1))
        for layer in self.stack:
            layer.build((None, s, s, self.filters))
        self.context_proj.build((None, s, s, self.filters))
        self.latent_hidden.build((None, self.latent_dim))
        self.latent_map.build((None, self.hidden))
        self.latent_proj.build((None, s, s, self.latent_channels))
        self.out.build((None, s, s, self.units))
        self.built = True

    def context(self, images):
        """images [B, S, S, 1] -> the x-part of the per-pixel layer [B, S, S, U]; pixel i sees x_<i only."""
        h = self.first(images)
        for layer in self.stack:
            h = h + layer(tf.nn.relu(h))
        return self.context_proj(tf.nn.relu(h))

    def logits(self, z, context):
        """z [..., d] and a context broadcastable to [..., S, S, U] -> logits [..., S, S, 1] of p(x_i = 1 | x_<i, z)."""
        s = self.image_size
        code = self.latent_map(self.latent_hidden(z))
        code = tf.reshape(code, tf.concat([tf.shape(code)[:-1], [s, s, self.latent_channels]], 0))
        # The per-pixel layers written as broadcasts and one reduction (not as matmuls), so that XLA fuses
        # them into a single pass: no [draws, B, S, S, U] intermediate is ever stored.
        pre = context
        for c in range(self.latent_channels):
            pre = pre + code[..., c : c + 1] * self.latent_proj.kernel[c]
        weights = tf.cast(self.out.kernel[:, 0], pre.dtype)
        return tf.reduce_sum(tf.nn.relu(pre) * weights, -1, keepdims=True) + tf.cast(self.out.bias, pre.dtype)

    def call(self, z, images):
        """Teacher-forced logits [B, S, S, 1] of ``images`` given z [B, d]."""
        return self.logits(z, self.context(images))

    @tf.function(reduce_retracing=True)
    def generate(self, z, noise=None):
        """z [B, d] -> (images, probabilities), each [B, S, S, 1], pixel by pixel in raster order.

        Pixel i is 1[noise_i < p_i] with p_i = p(x_i = 1 | x_<i, z); ``noise`` [B, S, S, 1] uniform
        in [0, 1) gives samples, None gives 0.5 everywhere: the deterministic greedy decoding.
        """
        s = self.image_size
        batch = tf.shape(z)[0]
        noise = tf.fill([batch, s, s, 1], 0.5) if noise is None else tf.cast(noise, tf.float32)
        flat_noise = tf.reshape(noise, [batch, s * s])
        positions = tf.range(s * s)

        def step(i, pixels, probabilities):
            images = tf.reshape(pixels, [batch, s, s, 1])
            p = tf.sigmoid(tf.reshape(self.logits(z, self.context(images)), [batch, s * s]))[:, i]
            here = tf.cast(tf.equal(positions, i), tf.float32)[None, :]
            value = tf.cast(flat_noise[:, i] < p, tf.float32)
            return i + 1, pixels + here * value[:, None], probabilities + here * p[:, None]

        zeros = tf.zeros([batch, s * s])
        _, pixels, probabilities = tf.while_loop(lambda i, *_: i < s * s, step, (0, zeros, zeros))
        return tf.reshape(pixels, [batch, s, s, 1]), tf.reshape(probabilities, [batch, s, s, 1])

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": self.image_size, "latent_dim": self.latent_dim,
                "filters": self.filters, "layers": self.layers, "latent_channels": self.latent_channels,
                "hidden": self.hidden, "units": self.units, "window": self.window}
