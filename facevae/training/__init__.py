"""The training layer: everything between a RunConfig and a trained, exported model.

- ``trainer``: ``fit`` (strategy, callbacks, checkpoints, TensorBoard, sample sheets, export)
- ``loop``: the epoch loop around the distributed step
- ``distributed``: tf.distribute strategies and the per-replica training and evaluation steps
"""
from facevae._lazy import lazy_exports

__all__ = ["fit", "latest_checkpoint", "NonFiniteLoss", "TrainResult"]
__getattr__ = lazy_exports(__name__, {name: "trainer" for name in __all__})
