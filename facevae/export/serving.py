"""Export a trained FaceVAE as a TensorFlow SavedModel with named endpoints, and load it back.

Endpoints (all float32):
    encode(images [B, S, S, C] in [0, 1]) -> {"mean", "log_var", "z"}, each [B, d];
        z = f_K o ... o f_1(mean), the posterior mean carried through the flows.
    code(images) -> {"z": [B, d]}: encode's z refined by the model's ``refine_steps`` gradient steps on each face's
        -log p(x|z) - log N(z; 0, I) (facevae.model.refine; encode's z itself when refine_steps is 0).
    decode(z [B, d]) -> {"images": [B, S, S, C]}
    reconstruct(images) -> {"images"}: decode(code(images).z); the default serving signature.
    sample(noise [B, d]) -> {"images"}: decode(prior(noise)) for standard-normal noise; prior is the model's fitted
        latent prior (facevae.model.prior.LatentPrior: one Gaussian mean + L noise, a mixture with the component
        read from the noise, or flows on a Gaussian) or, for the standard prior, the identity.
    sample_tempered(noise [B, d], temperature []) -> {"images"}: decode(prior(noise, temperature)): the
        temperature scales the spread of the prior (for one Gaussian and the standard prior this equals
        sample(temperature * noise); for a mixture the component is still chosen from the unscaled noise).

The export holds the encoder, decoder, flows and fitted prior only (the training-time SeedGenerator
state does not serialise through ``tf.saved_model.save``), is built in a staging directory and
renamed into place (data_prep.atomic.staged_directory), and includes ``model.keras`` beside the SavedModel files.
"""
from __future__ import annotations

import os

import keras
import tensorflow as tf

from data_prep import atomic
from facevae.training.rundir import EXPORT_MARKER, is_saved_model

__all__ = ["ENDPOINTS", "export_model", "load_export"]

ENDPOINTS = ("encode", "code", "decode", "reconstruct", "sample", "sample_tempered")
KERAS_FILE = "model.keras"


def export_model(model, directory: str, include_keras: bool = True, marker: dict | None = None) -> str:
    """Write ``model`` (a FaceVAE) as a SavedModel into ``directory`` atomically; returns the directory.

    An existing ``directory`` is replaced only if it is a SavedModel (anything else: FileExistsError);
    ``marker`` (the run's identity) is written as ``.facevae-export.json`` so that a later export of the same
    run recognises the directory as its own (facevae.training.rundir).
    """
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

    def code(images):
        return {"z": model.code(images)}

    def decode(z):
        return {"images": model.decode(z)}

    def reconstruct(images):
        return {"images": model.reconstruct(images)}

    def sample(noise):
        return {"images": model.sample(noise=noise)}

    def sample_tempered(noise, temperature):
        return {"images": model.sample(noise=noise, temperature=temperature)}

    # The first endpoint becomes "serving_default" (ExportArchive.write_out), so reconstruct goes first.
    archive.add_endpoint("reconstruct", reconstruct, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("code", code, input_signature=[image_spec])
    archive.add_endpoint("decode", decode, input_signature=[latent_spec])
    noise_spec = tf.TensorSpec([None, config.latent_dim], tf.float32, "noise")
    archive.add_endpoint("sample", sample, input_signature=[noise_spec])
    archive.add_endpoint("sample_tempered", sample_tempered,
                         input_signature=[noise_spec, tf.TensorSpec([], tf.float32, "temperature")])

    directory = os.path.abspath(directory)
    if os.path.lexists(directory) and not (os.path.isdir(directory) and is_saved_model(directory)):
        raise FileExistsError(f"export directory {directory} exists and is not a SavedModel; not replacing it "
                              "(export elsewhere, or move it away)")
    with atomic.staged_directory(directory) as staging:
        archive.write_out(staging, verbose=False)
        if include_keras:
            model.save(os.path.join(staging, KERAS_FILE))
        if marker is not None:
            atomic.write_json(os.path.join(staging, EXPORT_MARKER), marker)
    return directory


def load_export(directory: str):
    """Load an exported SavedModel with ``tf.saved_model.load`` (no facevae code needed to use it)."""
    return tf.saved_model.load(directory)
