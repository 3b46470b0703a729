"""Subprocess body for tests/training/test_distribute.py (device setup must precede TensorFlow's start-up).

    python tests/training/_distribute_job.py mirrored OUT_DIR        # 2 logical CPUs vs 1 device, same global batch
    python tests/training/_distribute_job.py worker OUT_DIR INDEX    # one MultiWorkerMirroredStrategy worker (TF_CONFIG set)

Prints one JSON line starting with RESULT.
"""
import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

__all__ = ["tiny_config", "main"]


def tiny_config(out_dir: str, name: str, batch_size: int, strategy: str):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tiny_config import make_tiny_config

    # precise_bn_batches=0: precise BatchNorm runs on one device only (several replicas keep the moving averages),
    # so with it the one-device run's BatchNorm statistics would differ from the mirrored run's by design.
    # ema_momentum: the weights compared are the moving averages, swapped in under each strategy.
    return make_tiny_config(out_dir, name, train_count=64, validation_count=16, flows=2, epochs=1,
                            batch_size=batch_size, steps_per_epoch=3, strategy=strategy, precise_bn_batches=0,
                            ema_momentum=0.5)


def _history_losses(run_dir: str) -> list:
    from facevae.analysis.plots import read_history

    return [float(v) for v in read_history(os.path.join(run_dir, "history.csv"))["loss"]]


def main(argv) -> None:
    mode, out_dir = argv[0], argv[1]
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from facevae.training.trainer import fit

        from facevae.model.vae import FaceVAE

        import keras

        keras.utils.set_random_seed(0)  # fit seeds the same way: these are the initial weights of both runs
        initial = FaceVAE(tiny_config(out_dir, "x", 8, "default").model, seed=0).get_weights()
        two = fit(tiny_config(out_dir, "two", 8, "mirrored"), verbose=0)
        one = fit(tiny_config(out_dir, "one", 16, "default"), verbose=0)
        differences = {
            a.path: float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(two.model.weights, one.model.weights)
        }
        movement = {  # how far training moved each weight, for scale
            v.path: float(np.max(np.abs(v.numpy() - w))) for v, w in zip(one.model.weights, initial)
        }
        result = {
            "replicas": [two.metrics["replicas"], one.metrics["replicas"]],
            "steps": [two.metrics["optimizer_steps"], one.metrics["optimizer_steps"]],
            "losses": [_history_losses(two.run_dir), _history_losses(one.run_dir)],
            "weight_differences": differences,
            "weight_movement": movement,
        }
    else:
        from facevae.training.trainer import fit

        trained = fit(tiny_config(out_dir, "multi", 8, "multiworker"), verbose=0)
        digest = hashlib.sha256(b"".join(w.tobytes() for w in trained.model.get_weights())).hexdigest()
        result = {"replicas": trained.metrics["replicas"], "weights_sha256": digest,
                  "steps": trained.metrics["optimizer_steps"]}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
