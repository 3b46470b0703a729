"""The model layer: the VAE and what it is made of.

- ``vae``: encoder and decoder builders, ``FaceVAE`` (the keras.Model with the objective, train/test steps)
- ``losses``: likelihoods and KL terms as pure functions, the equation in each docstring
- ``pixelcnn``: the autoregressive decoder for binary digits
- ``batchnorm``: the fused BatchNormalization layer the encoder and decoder use
"""
from facevae._lazy import lazy_exports

__all__ = ["FaceVAE", "build_encoder", "build_decoder"]
__getattr__ = lazy_exports(__name__, {"FaceVAE": "vae", "build_encoder": "vae", "build_decoder": "vae"})
