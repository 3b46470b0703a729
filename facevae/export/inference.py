"""A trained face VAE seen as two functions, encode and decode, whatever it was loaded from.

    model = load_inference_model("runs/latent-demo")        # run directory: follows its ``export`` link
    model = load_inference_model("saved_models/latent-demo") # or the exported SavedModel itself
    model = load_inference_model("runs/latent-demo/checkpoints/epoch-010.keras")  # or a .keras file
    z = model.encode(images)        # float32 [B, S, S, C] in [0, 1] -> [B, d], posterior mean through the flows
    z = model.code(images)          # the same, refined by the model's refine_steps (its reconstructions' codes)
    x = model.decode(z)             # [B, d] -> [B, S, S, C] in [0, 1]
    x = model.sample(noise, 0.7)    # N(0, I) noise [B, d] -> images through the model's (fitted) prior at T = 0.7

Paths resolve as for every CLI (facevae.training.rundir.resolve_model). Loading an export uses only
``tf.saved_model.load`` (no facevae model or training code is imported), so an exported model works on a
machine that has TensorFlow and nothing else; a ``.keras`` file (or a run without an export) is loaded
with Keras. TensorFlow itself is
imported only once the path has been checked, so a wrong path fails at once. ``from_keras(model)``
wraps an in-memory ``FaceVAE`` in the same interface. Both work in batches of ``batch_size`` and
return numpy arrays.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

__all__ = ["InferenceModel", "ModelLoadError", "load_inference_model", "from_keras"]



class ModelLoadError(ValueError):
    """The given path is not a run directory with an export nor a SavedModel (a user error)."""


class InferenceModel:
    """encode/decode callables with the image and latent shapes they expect.

    Args:
        encode_fn: float32 images [B, S, S, C] -> z [B, d] (a tensor or array).
        code_fn: images -> the codes ``reconstruct`` decodes (the model's refined codes); None: encode_fn.
        decode_fn: z [B, d] -> images [B, S, S, C] in [0, 1].
        sample_fn: (standard-normal noise [B, d], temperature) -> images through the model's prior (a fitted
            prior maps the noise first); None: decode_fn(temperature * noise), the standard prior.
        image_size, channels, latent_dim: the shapes above.
        source: where the model came from (shown in messages).
        batch_size: images per call of the underlying functions.
    """

    def __init__(self, encode_fn: Callable, decode_fn: Callable, image_size: int, channels: int,
                 latent_dim: int, source: str = "<memory>", batch_size: int = 256,
                 sample_fn: Callable | None = None, code_fn: Callable | None = None):
        self._encode_fn = encode_fn
        self._code_fn = code_fn or encode_fn
        self._decode_fn = decode_fn
        self._sample_fn = sample_fn
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.source = source
        self.batch_size = int(batch_size)

    def _batched(self, fn: Callable, inputs: np.ndarray, out_shape: tuple, progress: str | None = None) -> np.ndarray:
        """fn over ``inputs`` in batches of ``batch_size``; ``progress``: the description of a tqdm bar (None: no
        bar)."""
        import tensorflow as tf

        inputs = np.asarray(inputs, dtype=np.float32)
        if len(inputs) == 0:
            return np.zeros((0,) + out_shape, np.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(inputs), desc=progress, unit="img")
        parts = []
        for i in range(0, len(inputs), self.batch_size):
            parts.append(np.asarray(fn(tf.constant(inputs[i:i + self.batch_size])), dtype=np.float32))
            if bar is not None:
                bar.update(len(parts[-1]))
        if bar is not None:
            bar.close()
        return np.concatenate(parts, axis=0)

    def _checked(self, images: np.ndarray, name: str) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        expected = (self.image_size, self.image_size, self.channels)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"{name} expects images of shape [B, {', '.join(map(str, expected))}]. "
                             f"Received: shape={images.shape}")
        return images

    def encode(self, images: np.ndarray) -> np.ndarray:
        """images [B, S, S, C] in [0, 1] -> z [B, d] = f_K o ... o f_1(mean of q0(z0|x)), one encoder pass."""
        return self._batched(self._encode_fn, self._checked(images, "encode"), (self.latent_dim,))

    def code(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """images [B, S, S, C] in [0, 1] -> z [B, d]: ``encode`` refined by the model's ``refine_steps``
        (facevae.model.refine), the codes ``reconstruct`` decodes; ``encode`` itself for a model without.
        ``progress``: a progress bar over the images (refining costs about 50 decoder passes each way per face)."""
        return self._batched(self._code_fn, self._checked(images, "code"), (self.latent_dim,),
                             progress="codes" if progress else None)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """z [B, d] -> images [B, S, S, C] in [0, 1] (the likelihood's mean)."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode expects latents of shape [B, {self.latent_dim}]. Received: shape={z.shape}")
        return self._batched(self._decode_fn, z, (self.image_size, self.image_size, self.channels))

    def sample(self, noise: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Images [B, S, S, C] from standard-normal ``noise`` [B, d] through the model's prior at ``temperature``."""
        noise = np.asarray(noise, dtype=np.float32)
        if noise.ndim != 2 or noise.shape[1] != self.latent_dim:
            raise ValueError(f"sample expects noise of shape [B, {self.latent_dim}]. Received: shape={noise.shape}")
        if self._sample_fn is None:
            return self.decode(temperature * noise)
        import tensorflow as tf

        t = tf.constant(temperature, tf.float32)
        return self._batched(lambda batch: self._sample_fn(batch, t), noise,
                             (self.image_size, self.image_size, self.channels))

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """decode(code(images))."""
        return self.decode(self.code(images))

    def __repr__(self) -> str:
        return (f"InferenceModel(source={self.source!r}, image_size={self.image_size}, "
                f"channels={self.channels}, latent_dim={self.latent_dim})")


def _resolve(path: str):
    """``--model PATH`` through facevae.training.rundir.resolve_model, errors as ModelLoadError."""
    from facevae.training.rundir import resolve_model

    try:
        return resolve_model(path)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None


def load_inference_model(path: str, batch_size: int = 256) -> InferenceModel:
    """Load a run directory (its ``export``), a SavedModel (``tf.saved_model.load``) or a ``.keras`` file.

    A run directory without an export, or a ``.keras`` file, is loaded with Keras (this imports the facevae
    model code) and wrapped with ``from_keras``. The SavedModel must have the ``encode`` (images -> {"z", ...}) and ``decode`` (z -> {"images"})
    endpoints of ``facevae.export.serving.export_model``; shapes are read from their input signatures.
    """
    source = _resolve(os.fspath(path))
    if source.saved_model is None:
        return _load_keras(source.keras, batch_size)
    directory = source.saved_model
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(directory)
    except Exception as error:  # noqa: BLE001 - any load failure is reported as one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"could not load the SavedModel in {directory!r}: {first}") from None
    missing = [name for name in ("encode", "decode") if not hasattr(loaded, name)]
    if missing:
        raise ModelLoadError(f"SavedModel {directory!r} lacks the endpoints {missing}; "
                             "export it with facevae.export.serving.export_model")
    image_spec = loaded.encode.input_signature[0]
    latent_spec = loaded.decode.input_signature[0]
    _, size, _, channels = image_spec.shape.as_list()
    latent_dim = latent_spec.shape.as_list()[-1]
    if hasattr(loaded, "sample_tempered"):
        sample_fn = lambda noise, t: loaded.sample_tempered(noise, t)["images"]  # noqa: E731
    elif hasattr(loaded, "sample"):  # an export from before sample_tempered: the temperature scales the noise
        sample_fn = lambda noise, t: loaded.sample(t * noise)["images"]  # noqa: E731
    else:
        sample_fn = None
    return InferenceModel(
        encode_fn=lambda images: loaded.encode(images)["z"],
        code_fn=(lambda images: loaded.code(images)["z"]) if hasattr(loaded, "code") else None,  # older exports
        decode_fn=lambda z: loaded.decode(z)["images"],
        image_size=size, channels=channels, latent_dim=latent_dim,
        source=directory, batch_size=batch_size, sample_fn=sample_fn,
    )


def _load_keras(path: str, batch_size: int) -> InferenceModel:
    import keras

    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the class for load_model)

    try:
        model = keras.models.load_model(path)
    except Exception as error:  # noqa: BLE001 - any load failure is reported as one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"could not load the Keras model {path!r}: {first}") from None
    wrapped = from_keras(model, batch_size)
    wrapped.source = path
    return wrapped


def from_keras(model, batch_size: int = 256) -> InferenceModel:
    """Wrap an in-memory ``facevae.model.vae.FaceVAE`` (encode -> z through the flows, code, decode)."""
    config = model.config
    return InferenceModel(
        encode_fn=lambda images: model.encode(images)[2],
        code_fn=model.code,
        decode_fn=lambda z: model.decode(z),
        sample_fn=lambda noise, t: model.sample(noise=noise, temperature=t),
        image_size=config.image_size, channels=config.channels, latent_dim=config.latent_dim,
        source="<memory>", batch_size=batch_size,
    )
