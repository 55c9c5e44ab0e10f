"""Scale-out on TensorFlow's own distributed engine (``tf.distribute``): strategies, global-batch reductions.

The recipes take ``--strategy {default,mirrored,multi_worker,tpu}``. Models, the distiller's custom ``train_step``
and the optimizers are built under ``strategy.scope()``; ``model.fit`` then splits every *global* batch
(``--batch-size``) across the replicas.

Correct reductions (the usual pitfalls):

* A loss is a mean over the **global** batch: each replica divides its local sum by the global count
  (:func:`global_mean`), the optimizer all-reduces the gradients with SUM, so the applied gradient equals the
  single-device gradient of the same global batch. Built-in Keras losses do the same
  (``keras.losses.Loss`` scales by ``1 / num_replicas``); averaging locally and then again across replicas would
  weight tokens unevenly for the token-averaged TinyBERT losses.
* Gradient clipping must see the global gradient. Keras 3 clips each replica's partial gradient *before* the
  all-reduce; :class:`AdamW` here all-reduces first (see its docstring).
* The learning rate is given for the global batch. ``--lr-scaling linear`` applies Goyal et al. (2017)'s linear
  scaling rule for users who grow the global batch with the replica count: ``lr * global_batch / 32``.
"""

from __future__ import annotations

import json
import math
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
LR_SCALINGS = ("none", "linear", "sqrt")
REFERENCE_BATCH_SIZE = 32  # the batch the default learning rates were tuned for


class StrategyError(ValueError):
    """A strategy option the run cannot use: an unknown name, a missing or malformed ``TF_CONFIG``, a global batch
    that does not split over the replicas, an unknown learning-rate rule (the message names the option)."""


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce`` works for Keras 3's ``fit``.

    Keras 3 (3.15) reduces with the strategy in two ways TensorFlow's multi-worker strategy refuses, so ``fit``
    (and ``evaluate``) stopped at their first step:

    * a nested structure: the first batch, ``(inputs dict, labels)``, to build the model ("Attempt to convert a
      value ({'token_ids': PerReplica:{...}}) with an unsupported type (<class 'dict'>) to a Tensor"). Here each
      tensor is reduced, as ``MirroredStrategy.reduce`` does;
    * the step's scalar logs with ``axis=0`` ("Invalid reduction dimension 0 for input with 0 dimensions"), and
      without ``axis``. Here a scalar is reduced over the replicas only (its mean over axis 0 is itself).
    """

    def reduce(self, reduce_op, value, axis=None):
        reduce_one = super().reduce

        def one(v):
            local = tf.convert_to_tensor(self.experimental_local_results(v)[0])
            return reduce_one(reduce_op, v, None if local.shape.rank == 0 else axis)

        return tf.nest.map_structure(one, value)


def split_cpu(num_devices: int) -> None:
    """Split the host CPU into ``num_devices`` logical devices (testing ``mirrored`` without accelerators).

    Must run before TensorFlow initialises its devices (first op, first model).

    Raises:
        RuntimeError: if TensorFlow's devices are already initialised.
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(int(num_devices))]
    )


def make_strategy(name: str = "default", tpu: str | None = None, cpu_devices: int | None = None):
    """A ``tf.distribute.Strategy`` by name.

    Args:
        name: ``default`` (one device, no-op scope), ``mirrored`` (all local GPUs, or the logical CPUs when there
            is no GPU: synchronous data parallelism, all-reduce), ``multi_worker`` (:class:`MultiWorkerMirroredStrategy`,
            reads the cluster from ``TF_CONFIG``), ``tpu`` (``TPUStrategy`` on the TPU named by ``tpu``, or the
            one in the environment, e.g. a Cloud TPU VM).
        tpu: TPU name or gRPC address for ``tpu``.
        cpu_devices: with ``mirrored`` and no GPU, first split the CPU into this many logical devices
            (see :func:`split_cpu`).

    Returns:
        the strategy; ``strategy.num_replicas_in_sync`` replicas share each global batch.

    Raises:
        StrategyError: unknown ``name``; ``multi_worker`` without ``TF_CONFIG``, or with one that is not a JSON
            object with a ``cluster``.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"unknown --strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_devices and not tf.config.list_physical_devices("GPU"):
            split_cpu(cpu_devices)
            return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise StrategyError(
                "--strategy multi_worker needs the TF_CONFIG environment variable (cluster spec and "
                "this worker's task); see docs/scale-out.md"
            )
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise StrategyError(
                f"--strategy multi_worker: TF_CONFIG is not JSON ({e}); see docs/scale-out.md"
            ) from None
        if not isinstance(cluster, dict) or "cluster" not in cluster:
            raise StrategyError("--strategy multi_worker: TF_CONFIG has no 'cluster'; see docs/scale-out.md")
        return MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_info(strategy) -> dict:
    """``{"name": class name, "replicas": num_replicas_in_sync}``, recorded in result files."""
    return {"name": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync)}


def scaled_learning_rate(learning_rate: float, global_batch_size: int, rule: str = "none") -> float:
    """The peak learning rate for ``global_batch_size`` under a scaling ``rule``.

    ``none``: unchanged; ``linear``: ``lr * B / 32`` (Goyal et al. 2017, "Accurate, large minibatch SGD",
    Sec. 2.1); ``sqrt``: ``lr * sqrt(B / 32)`` (Krizhevsky 2014; often better for Adam). 32 is the batch the
    defaults were tuned for.

    Raises:
        StrategyError: unknown rule or a non-positive batch size.
    """
    if rule not in LR_SCALINGS:
        raise StrategyError(f"unknown --lr-scaling {rule!r}; use one of {', '.join(LR_SCALINGS)}")
    if global_batch_size < 1:
        raise StrategyError(f"--batch-size must be >= 1, got {global_batch_size}")
    ratio = global_batch_size / REFERENCE_BATCH_SIZE
    return learning_rate * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def check_global_batch(global_batch_size: int, strategy) -> int:
    """Per-replica batch size of a global batch.

    Raises:
        StrategyError: if the global batch does not split evenly over the replicas (uneven splits change the
            per-replica shapes and, for token-averaged losses, the weighting).
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise StrategyError(
            f"--batch-size {global_batch_size} (global) must be a multiple of the {replicas} replicas of the strategy"
        )
    return global_batch_size // replicas


def _replica_context():
    """The current replica context with more than one replica, or None (single device, cross-replica code)."""
    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


def global_sum(value):
    """Sum of ``value`` over the replicas (``value`` itself on one device or outside a replica step)."""
    ctx = _replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value) if ctx is not None else value


def global_mean(local_sum, local_count):
    """This replica's share of a mean over the global batch: ``local_sum / sum_replicas(local_count)``.

    Summed over the replicas (as the optimizer's gradient all-reduce does) this is exactly the mean over the
    global batch, so losses are never averaged twice. The count carries no gradient.

    Args:
        local_sum: scalar sum of the per-item losses on this replica.
        local_count: scalar count of items (examples, tokens, token pairs) on this replica.

    Returns:
        scalar tensor.
    """
    count = global_sum(tf.stop_gradient(tf.cast(local_count, local_sum.dtype)))
    return local_sum / tf.maximum(count, tf.ones_like(count))


@keras.saving.register_keras_serializable(package="refbert_tf")
class AdamW(keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` whose gradient clipping sees the global (all-replica) gradient.

    Keras 3 clips (``clipnorm``, ``global_clipnorm``, ``clipvalue``) inside each replica, before its optimizer
    all-reduces the gradients, so under a strategy it would apply a sum of separately clipped parts. Here, with
    more than one replica, the gradients are all-reduced first and clipped; the optimizer's own SUM all-reduce then
    must give back exactly that clipped gradient:

    * dense gradients are divided by the replica count;
    * embedding gradients (``tf.IndexedSlices``, one row per token occurrence, which Keras' Adam squares row by
      row before summing duplicates) are kept by replica 0 and zeroed on the others, so the moments see the same
      rows as on one device.

    With one replica, or without clipping, this is exactly Keras' AdamW.
    """

    def _clip_gradients(self, grads):
        ctx = _replica_context()
        clips = (self.clipnorm or 0) > 0 or (self.global_clipnorm or 0) > 0 or (self.clipvalue or 0) > 0
        if ctx is None or not clips:
            return super()._clip_gradients(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
        clipped = super()._clip_gradients(reduced)
        out = list(grads)
        first = tf.equal(tf.cast(ctx.replica_id_in_sync_group, tf.int32), 0)
        for i, g in zip(present, clipped):
            if isinstance(g, tf.IndexedSlices):
                keep = tf.cast(first, g.values.dtype)
                out[i] = tf.IndexedSlices(g.values * keep, g.indices, g.dense_shape)
            else:
                out[i] = g / ctx.num_replicas_in_sync
        return out
