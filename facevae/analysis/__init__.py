"""The analysis layer: measuring and using trained models.

- ``metrics``: ELBO terms, importance-weighted NLL, bits/dim, reconstruction error and PSNR
- ``latent``: interpolation, morphing and attribute vectors (pure functions on encode/decode)
- ``density2d``: the 2-D planar-flow experiments (energies, fitting, plots)
- ``plots``: image grids, sample sheets and loss curves (matplotlib/PIL, no TensorFlow logic)
- ``frechet``: the Frechet distance between Gaussians fitted to two feature sets (one home for FID and faces)
- ``face_metrics``: faces judged as faces with dlib's packaged models (detection, identity kept, Frechet face
  distance); optional extra ``faces``
- ``inception``: FID and KID on InceptionV3 pool features (weights from a local file, never downloaded)
"""
