"""The analysis layer: measuring and using trained models.

- ``metrics``: ELBO terms, importance-weighted NLL, bits/dim, reconstruction error and PSNR
- ``latent``: interpolation, morphing and attribute vectors (pure functions on encode/decode)
- ``density2d``: the 2-D planar-flow experiments (energies, fitting, plots)
- ``plots``: image grids, sample sheets and loss curves (matplotlib/PIL, no TensorFlow logic)
"""
