"""facevae's side of the data: turning a DataConfig into tf.data pipelines, and reading user images.

- ``datasets``: training and validation pipelines from shards, raw folders (prepared into a cache) or built-in faces
- ``images``: image files named on a command line, checked and decoded
- ``labelled_faces``: faces with attribute labels, for attribute vectors and edit benchmarks
Shards themselves are written and read by the top-level ``data_prep`` package.
"""
from facevae._lazy import lazy_exports

__all__ = ["DataUnavailable", "TrainingData", "training_data"]
__getattr__ = lazy_exports(__name__, {name: "datasets" for name in __all__})
