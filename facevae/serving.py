"""Export a trained FaceVAE as a TensorFlow SavedModel with named endpoints, and load it back.

Endpoints (all float32):
    encode(images [B, S, S, C] in [0, 1]) -> {"mean", "log_var", "z"}, each [B, d];
        z = f_K o ... o f_1(mean), the posterior mean carried through the flows.
    decode(z [B, d]) -> {"images": [B, S, S, C]}
    reconstruct(images) -> {"images"}: decode(encode(images).z); the default serving signature.
    sample(noise [B, d]) -> {"images"}: decode(prior(noise)); pass temperature * N(0, I) noise. With a fitted
        Gaussian prior (config.prior "gaussian") prior(noise) = mean + L noise, else the noise itself.

The export holds the encoder, decoder and flows only (the training-time SeedGenerator
state does not serialise through ``tf.saved_model.save``), is written to a temporary
directory and renamed into place, and includes ``model.keras`` beside the SavedModel files.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import keras
import tensorflow as tf

__all__ = ["ENDPOINTS", "export_model", "load_export"]

ENDPOINTS = ("encode", "decode", "reconstruct", "sample")
KERAS_FILE = "model.keras"


def export_model(model, directory: str, include_keras: bool = True) -> str:
    """Write ``model`` (a FaceVAE) as a SavedModel into ``directory`` atomically; returns the directory."""
    config = model.config
    image_spec = tf.TensorSpec([None, config.image_size, config.image_size, config.channels], tf.float32, "images")
    latent_spec = tf.TensorSpec([None, config.latent_dim], tf.float32, "z")

    archive = keras.export.ExportArchive()
    archive.track(model.encoder)
    archive.track(model.decoder)
    archive.track(model.flows)
    if getattr(model, "prior", None) is not None:
        archive.track(model.prior)

    def encode(images):
        mean, log_var, z = model.encode(images)
        return {"mean": mean, "log_var": log_var, "z": z}

    def decode(z):
        return {"images": model.decode(z)}

    def reconstruct(images):
        return {"images": model.reconstruct(images)}

    def sample(noise):
        return {"images": model.sample(noise=noise)}

    # The first endpoint becomes "serving_default" (ExportArchive.write_out), so reconstruct goes first.
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("decode", decode, input_signature=[latent_spec])
    archive.add_endpoint(
        "sample", sample, input_signature=[tf.TensorSpec([None, config.latent_dim], tf.float32, "noise")]
    )

    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        if include_keras:
            model.save(os.path.join(staging, KERAS_FILE))
        if os.path.exists(directory):
            old = f"{staging}.old"
            os.replace(directory, old)
            os.replace(staging, directory)
            shutil.rmtree(old)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_export(directory: str):
    """Load an exported SavedModel with ``tf.saved_model.load`` (no facevae code needed to use it)."""
    return tf.saved_model.load(directory)
