"""tf.distribute: two logical CPUs under MirroredStrategy match one device; two workers train as one.

Each test runs its training in fresh Python processes (logical devices and multi-worker collectives
must be configured before TensorFlow starts) with tiny settings: 32 px, filters (8, 16, 16, 16),
K = 2 flows, 3 steps, --ema-momentum 0.5 (so the swap to the averaged weights runs under each strategy).
"""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from facevae.config import TrainConfig
from facevae.training.distributed import is_chief, make_strategy, resolve_jit_compile

pytestmark = pytest.mark.integration  # trains models (in this process or in subprocesses)

JOB = os.path.join(os.path.dirname(__file__), "_distribute_job.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Timeouts: each job needs about 25 s of CPU; the bounds leave room for a loaded shared machine.
# Biases of convolutions followed by BatchNormalization: BN removes the batch mean, so their gradient
# is identically zero and its float rounding noise, which depends on the summation order, is scaled
# by Adam into steps of up to the learning rate; the BN moving means integrate those biases. Neither
# can be compared across device layouts (they do not change what the model computes in training).
PRE_BATCH_NORM_BIAS = ("_conv/bias", "_bn/moving_mean")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_mirrored_over_two_cpus_matches_one_device_at_the_same_global_batch(tmp_path):
    done = subprocess.run([sys.executable, JOB, "mirrored", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = _result(done.stdout)
    assert result["replicas"] == [2, 1] and result["steps"] == [3, 3]
    two, one = result["losses"]
    assert two == pytest.approx(one, rel=1e-6)  # tolerance: float32 rounding of reductions in another order
    compared = {k: v for k, v in result["weight_differences"].items() if not k.endswith(PRE_BATCH_NORM_BIAS)}
    assert len(compared) >= 30
    for path, difference in compared.items():
        # Tolerance: 1e-5 absolute or 1% of the weight's own movement (about 3e-3: 3 Adam steps of 1e-3), whichever
        # is larger. Summation-order rounding, presumably scaled up by Adam where a gradient is small: on an AVX-512
        # CPU the first convolution's kernel differs by 1.3e-5 (0.4% of its movement), every other weight by < 3e-6. A
        # layout that trained differently (say, unreduced per-replica gradients) moves weights apart by about
        # their movement.
        movement = result["weight_movement"].get(path, 0.0)
        assert difference <= max(1e-5, 0.01 * movement), (path, difference, movement)
    assert max(result["weight_movement"].values()) > 1e-3  # training did move the weights


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_identically_and_only_the_chief_writes(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = [
        subprocess.Popen(
            [sys.executable, JOB, "worker", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 300
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    results = [_result(stdout) for stdout, _ in outputs]
    assert [r["replicas"] for r in results] == [2, 2] and [r["steps"] for r in results] == [3, 3]
    assert results[0]["weights_sha256"] == results[1]["weights_sha256"]
    assert os.listdir(tmp_path / "runs") == ["multi"]
    assert sorted(os.listdir(tmp_path / "runs" / "multi" / "checkpoints")) == ["epoch-001.keras"]
    assert os.listdir(tmp_path / "saved_models") == ["multi"]
    assert os.path.exists(tmp_path / "saved_models" / "multi" / "saved_model.pb")


def test_strategy_choices_and_validation(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = make_strategy("auto")  # no TF_CONFIG, no GPU here: the default strategy
    assert strategy.num_replicas_in_sync == 1 and is_chief(strategy)
    assert resolve_jit_compile("on") and not resolve_jit_compile("off")
    with pytest.raises(ValueError, match=r"Unknown strategy 'tpu'; expected one of \['auto', 'default'"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match=r"Unknown jit_compile 'yes'"):
        TrainConfig(jit_compile="yes").validate()
    with pytest.raises(ValueError, match=r"Received: mixed_precision='no'"):
        TrainConfig(mixed_precision="no").validate()


def test_hardware_flags_reach_the_config():
    from facevae.train import build_parser, config_from_args

    args = build_parser().parse_args(["--strategy", "mirrored", "--mixed-precision", "--jit-compile", "off"])
    train = config_from_args(args).train
    assert (train.strategy, train.mixed_precision, train.jit_compile) == ("mirrored", True, "off")
    defaults = config_from_args(build_parser().parse_args([])).train
    assert (defaults.strategy, defaults.mixed_precision, defaults.jit_compile) == ("auto", False, "auto")


@pytest.mark.slow  # about 25 s: XLA compiles the step
def test_mixed_precision_and_xla_train_with_float32_heads_and_restore_the_policy(tmp_path):
    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(__file__))
    from _distribute_job import tiny_config

    from facevae.training.trainer import fit

    config = tiny_config(str(tmp_path), "mixed", 16, "default")
    config.train.mixed_precision, config.train.jit_compile, config.train.steps_per_epoch = True, "on", 2
    result = fit(config, verbose=0)
    assert keras.mixed_precision.dtype_policy().name == "float32"
    model = result.model
    assert model.encoder.get_layer("enc1_conv").compute_dtype == "bfloat16"
    for name in ("mean", "log_var"):
        assert model.encoder.get_layer(name).compute_dtype == "float32"
    assert model.decoder.get_layer("logits").compute_dtype == "float32"
    assert model.flows.compute_dtype == "float32" and model.sampler.compute_dtype == "float32"
    assert all(np.isfinite(v) for v in result.metrics["validation"].values())
    assert result.metrics["optimizer_steps"] == 2


def test_steps_per_epoch_runs_on_across_epochs_and_starts_new_passes():
    import tensorflow as tf

    from facevae.training.loop import EpochLoop

    data = tf.data.Dataset.range(5).batch(1)
    loop = EpochLoop(None, tf.distribute.get_strategy(), data, data, None, None, steps_per_epoch=3)
    epochs = [[int(b.numpy()[0]) for b in loop._batches()] for _ in range(3)]
    assert epochs == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]
    loop.steps = None
    assert [int(b.numpy()[0]) for b in loop._batches()] == [0, 1, 2, 3, 4]
    empty = EpochLoop(None, tf.distribute.get_strategy(), data.take(0), data, None, None, steps_per_epoch=3)
    assert list(empty._batches()) == []
