"""The serving layer: SavedModel export with named endpoints, and loading any exported or saved model.

- ``serving``: ``export_model`` (encode, decode, reconstruct, sample endpoints) and ``load_export``
- ``inference``: one encode/decode interface over a SavedModel, a ``.keras`` file or an in-memory model
"""
from facevae._lazy import lazy_exports

__all__ = ["export_model", "load_export", "load_inference_model"]
__getattr__ = lazy_exports(__name__, {"export_model": "serving", "load_export": "serving",
                                      "load_inference_model": "inference"})
