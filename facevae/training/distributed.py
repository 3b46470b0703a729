"""tf.distribute for facevae: choosing the strategy, precision and XLA, and the distributed step.

One training step serves every strategy (default, MirroredStrategy, MultiWorkerMirroredStrategy):
each replica computes the per-example objective (``FaceVAE.objective``) on its share of the global batch, and

    loss = sum_i [reconstruction_i + beta * kl_i] / N_global

(``tf.nn.compute_average_loss`` with N_global, the all-reduced number of examples in the step), so
the gradients the optimizer all-reduces with SUM are the gradients of the global-batch mean.
The reparameterisation noise is drawn for the whole global batch from a stateless generator keyed
by (seed, optimizer step) and each replica takes its rows, so one device and N replicas see the
same eps for the same example. BatchNormalization layers are switched to synchronized batch
statistics when there is more than one replica, which makes N replicas compute what one device
computes on the global batch (up to float rounding).

Keras' ``model.fit`` is not used: under MultiWorkerMirroredStrategy it fails on this stack
(keras-team/keras#20585); a ``tf.function`` around ``strategy.run`` works under all three.
"""
from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from facevae.config import JIT_CHOICES, STRATEGIES
from facevae.model.objective import LOSS_TERMS

__all__ = [
    "STRATEGIES",
    "JIT_CHOICES",
    "make_strategy",
    "is_chief",
    "resolve_jit_compile",
    "precision_policy",
    "synchronize_batch_norm",
    "make_train_step",
    "make_eval_step",
]

# Per-step sums returned by the steps; means are sums / count.
SUMMED = (*LOSS_TERMS, "count")


def _cluster_size() -> int:
    spec = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    return sum(len(tasks) for name, tasks in spec.items() if name in ("chief", "worker"))


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy ``name`` asks for; call before any other TensorFlow work (MWMS needs that).

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names more than one worker, else
    MirroredStrategy when there are several GPUs, else the default strategy (one device).
    mirrored: all local GPUs, or all logical CPU devices when there is no GPU.
    multiworker: MultiWorkerMirroredStrategy configured from the TF_CONFIG environment variable.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}")
    if name == "auto":
        if _cluster_size() > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable; see docs/scaling.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one task that writes files: the only task, the 'chief', or worker 0 without a chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def resolve_jit_compile(choice: str = "auto") -> bool:
    """on/off, or auto: XLA on GPU (faster there), off on CPU (measured 10-25% slower on this CPU)."""
    if choice not in JIT_CHOICES:
        raise ValueError(f"Unknown jit_compile {choice!r}; expected one of {list(JIT_CHOICES)}")
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return choice == "on"


def precision_policy(mixed: bool) -> str:
    """Keras dtype policy: float32, or mixed_float16 on GPU / mixed_bfloat16 on CPU."""
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def synchronize_batch_norm(model: keras.Model, enabled: bool) -> None:
    """Batch statistics over the global batch (all replicas) instead of each replica's share."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = enabled


def _replica_noise(seed: tf.Tensor, local: tf.Tensor, latent_dim: int) -> tf.Tensor:
    """Rows [r * L, (r + 1) * L) of one stateless N(0, I) draw of shape [(r + 1) * L, d], r = replica id.

    A stateless Philox draw of n rows starts with the draw of fewer rows, so the rows a replica
    takes equal the rows of the same examples in a one-device draw of the global batch.
    """
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    rows = (tf.cast(replica, tf.int32) + 1) * local
    noise = tf.random.stateless_normal(tf.stack([rows, latent_dim]), seed=seed)
    return noise[rows - local:]


def _images(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _sums(terms, count: tf.Tensor) -> dict:
    """Sums over this replica's examples of the LOSS_TERMS of an ``Objective``, and the example count."""
    sums = {name: tf.reduce_sum(tf.cast(value, tf.float32)) for name, value in terms.terms().items()}
    return {**sums, "count": tf.cast(count, tf.float32)}


def make_train_step(model, strategy: tf.distribute.Strategy, seed: int, jit_compile: bool = False):
    """A ``tf.function`` taking one distributed batch; returns the global sums named in SUMMED.

    Mixed float16 (a ``LossScaleOptimizer``) scales the loss before the gradient; ``optimizer.apply``
    all-reduces (SUM) the per-replica gradients and unscales them.
    """
    optimizer = model.optimizer
    latent_dim = model.config.latent_dim
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def gradients(images, noise, global_count):
        with tf.GradientTape() as tape:
            terms = model.objective(images, training=True, noise=noise)
            loss = tf.nn.compute_average_loss(terms.loss, global_batch_size=global_count)
            target = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(target, model.trainable_variables)
        return grads, terms

    compute = tf.function(gradients, jit_compile=True) if jit_compile else gradients

    def replica_step(batch):
        images = tf.cast(_images(batch), tf.float32)
        local = tf.shape(images)[0]
        context = tf.distribute.get_replica_context()
        global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        step_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(optimizer.iterations, tf.int64)])
        noise = _replica_noise(step_seed, local, latent_dim)
        grads, terms = compute(images, noise, global_count)
        optimizer.apply(grads, model.trainable_variables)
        return _sums(terms, local)

    @tf.function
    def step(batch):
        sums = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    return step


def make_eval_step(model, strategy: tf.distribute.Strategy, seed: int):
    """A ``tf.function`` taking (distributed batch, batch index); global sums of the unweighted ELBO terms.

    The noise is keyed by (seed, batch index), so the validation loss is the same every time.
    """
    latent_dim = model.config.latent_dim

    def replica_step(batch, index):
        images = tf.cast(_images(batch), tf.float32)
        local = tf.shape(images)[0]
        noise = _replica_noise(tf.stack([tf.constant(seed, tf.int64), index]), local, latent_dim)
        return _sums(model.objective(images, training=False, noise=noise), local)

    @tf.function
    def step(batch, index):
        sums = strategy.run(replica_step, args=(batch, index))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    return step
