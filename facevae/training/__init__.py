"""The training layer: everything between a RunConfig and a trained, exported model.

- ``trainer``: ``fit`` (strategy, callbacks, checkpoints, TensorBoard, sample sheets, export)
- ``rundir``: ``RunDir`` (what a run writes where) and ``resolve_model`` (``--model PATH`` for every CLI); no TensorFlow
- ``schedules``: the learning-rate schedules of ``TrainConfig.lr_schedule``
- ``loop``: the epoch loop around the distributed step
- ``distributed``: tf.distribute strategies and the per-replica training and evaluation steps
"""
from facevae._lazy import lazy_exports

__all__ = ["fit", "latest_checkpoint", "NonFiniteLoss", "TrainResult", "RunDir", "resolve_model"]
__getattr__ = lazy_exports(__name__, {**{name: "trainer" for name in __all__[:4]},
                                      "RunDir": "rundir", "resolve_model": "rundir"})
