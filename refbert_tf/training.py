"""Fine-tuning machinery shared by the teacher and the student: optimizer, schedule, fit with resume, evaluation.

Optimizer: AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, not applied to biases and LayerNorm
parameters, and a learning rate that warms up linearly then decays linearly to zero (Devlin et al. 2019, App.
A.2). Interrupted runs resume from the last checkpoint interval (:mod:`refbert_tf.resume`).
"""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path

import keras
import numpy as np

from refbert_tf.config import (  # noqa: F401  (re-exported: the configs' old home)
    TEACHER_DEFAULTS,
    FinetuneConfig,
    TrainingConfig,
    task_config,
    teacher_config,
)
from refbert_tf.data import GlueTask, make_dataset, take_examples
from refbert_tf.distribute import AdamW, scaled_learning_rate
from refbert_tf.metrics import compute_metrics, predictions_from_outputs
from refbert_tf.resume import IntervalCheckpoint, remove_checkpoints, restore


def linear_warmup_decay(peak_learning_rate: float, total_steps: int, warmup_steps: int):
    """Learning-rate schedule: 0 -> ``peak`` linearly over ``warmup_steps``, then linearly to 0 at ``total_steps``.

    Returns:
        a ``keras.optimizers.schedules.LearningRateSchedule`` (serialisable, registered as
        ``refbert_tf>LinearWarmupDecay``).
    """
    return LinearWarmupDecay(peak_learning_rate, total_steps, warmup_steps)


@keras.saving.register_keras_serializable(package="refbert_tf")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up then linear decay to zero (BERT's schedule). ``step`` is the optimizer iteration."""

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int):
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(int(warmup_steps), 0)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        factor = keras.ops.where(step < self.warmup_steps, warm, decay)
        return self.peak_learning_rate * keras.ops.clip(factor, 0.0, 1.0)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def make_adamw(peak_learning_rate: float, total_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01):
    """AdamW with BERT's schedule and no weight decay on biases / LayerNorm (gamma, beta).

    Args:
        peak_learning_rate: learning rate after warm-up.
        total_steps: optimizer steps of the whole run.
        warmup_ratio: share of ``total_steps`` spent warming up.
        weight_decay: decoupled weight-decay coefficient.
    """
    schedule = linear_warmup_decay(peak_learning_rate, total_steps, int(warmup_ratio * total_steps))
    optimizer = AdamW(
        learning_rate=schedule, weight_decay=weight_decay, beta_1=0.9, beta_2=0.999, epsilon=1e-6, clipnorm=1.0
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def optimizer_for(config, total_steps: int):
    """:func:`make_adamw` for a run config (:class:`~refbert_tf.config.FinetuneConfig` or :class:`~refbert_tf.config.DistillConfig`).

    The peak learning rate is ``config.learning_rate`` scaled for the global ``config.batch_size`` by
    ``config.lr_scaling`` (:func:`refbert_tf.distribute.scaled_learning_rate`); warm-up and weight decay come
    from the config.
    """
    learning_rate = scaled_learning_rate(config.learning_rate, config.batch_size, config.lr_scaling)
    return make_adamw(learning_rate, total_steps, config.warmup_ratio, config.weight_decay)


def task_loss(task: GlueTask):
    """Cross-entropy on logits for classification, mean squared error for STS-B regression."""
    if task.is_regression:
        return keras.losses.MeanSquaredError()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def predict_outputs(model, features: dict, batch_size: int = 64) -> np.ndarray:
    """Run ``model`` on encoded features; outputs in the order of the features.

    The examples are run shortest first, so each batch is padded only to its own longest member (a batch of mixed
    lengths pays for its longest), through one compiled forward pass (``tf.function`` with ``reduce_retracing``:
    two traces cover every batch shape); the outputs are put back in the input order.

    Args:
        model: a Keras model taking ``{"token_ids", "segment_ids", "padding_mask"}`` (and any of
            ``data.EXTRA_INPUTS`` the features carry, see :func:`~refbert_tf.data.take_examples`); its outputs must depend on each example alone.
        features: from :meth:`~refbert_tf.tokenization.BertWordPieceTokenizer.encode`.
        batch_size: examples per batch.

    Returns:
        float32 array [N, num_outputs].
    """
    import tensorflow as tf  # lazy, as make_dataset

    lengths = np.asarray(features["token_ids"].row_lengths())
    if lengths.size == 0:
        return np.zeros((0, 1), np.float32)
    order = np.argsort(lengths, kind="stable")
    by_length = take_examples(features, order)
    forward = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    ds = make_dataset(by_length, None, batch_size=batch_size, shuffle=False)
    outputs = np.concatenate([np.asarray(forward(batch)) for batch in ds], axis=0)
    restored = np.empty_like(outputs)
    restored[order] = outputs
    return restored


def evaluate(model, task: GlueTask, features: dict, labels: np.ndarray, batch_size: int = 64) -> dict:
    """Official GLUE metrics (percent) of ``model`` on encoded examples (see ``metrics.compute_metrics``)."""
    outputs = predict_outputs(model, features, batch_size)
    return compute_metrics(task, predictions_from_outputs(task, outputs), labels)


def plan_steps(num_examples: int, batch_size: int, epochs: float, backup_every: int) -> tuple[int, int]:
    """Split a run of ``epochs`` passes into checkpoint intervals.

    Keras resumes an interrupted fit at the start of the epoch it was in, so each Keras "epoch" is one checkpoint
    interval (about ``backup_every`` steps) over a repeated dataset: resuming then loses no step and repeats none.

    Returns:
        ``(intervals, steps_per_interval)``; total optimizer steps = their product (>= 1).
    """
    planned = max(1, int(round(epochs * math.ceil(num_examples / batch_size))))
    intervals = math.ceil(planned / max(1, backup_every))
    return intervals, math.ceil(planned / intervals)


def run_fit(
    model,
    dataset,
    intervals: int,
    steps_per_interval: int,
    backup_dir: str | os.PathLike,
    callbacks=(),
    verbose="auto",
    delete_checkpoint: bool = True,
):
    """``model.fit`` over a repeated ``dataset`` with a resume checkpoint after every interval.

    If ``backup_dir`` holds the checkpoint of an interrupted run, training resumes from it (weights, optimizer
    state, step) at the interval after it, over the same batches an uninterrupted run would see there (the first
    ``done * steps_per_interval`` batches of ``dataset`` are skipped). See :mod:`refbert_tf.resume`.

    Args:
        model: a compiled Keras model.
        dataset: repeated ``(inputs, labels)`` batches.
        intervals, steps_per_interval: from :func:`plan_steps`.
        backup_dir: the checkpoint directory.
        callbacks: extra Keras callbacks.
        verbose: ``fit`` verbosity.
        delete_checkpoint: delete ``backup_dir`` when training finishes (False: the caller deletes it once it has
            saved what it trained, so a run killed in between resumes without training again).

    Returns:
        the ``keras.callbacks.History``, with ``seconds`` (wall time of this call) and ``steps`` (optimizer steps
        taken in this call) attributes.

    Raises:
        CorruptArtifactError: the newest checkpoint in ``backup_dir`` cannot be read (the message names it).
    """
    if not model.optimizer.built:
        # a custom train_step builds its optimizer at the first step, after the checkpoint would be loaded: the
        # optimizer state (moments, step) would silently not be restored
        model.optimizer.build(model.trainable_variables)
    done = min(restore(model, backup_dir, Path(backup_dir).name, intervals), intervals)
    if done:
        dataset = dataset.skip(done * steps_per_interval)
    start = time.perf_counter()
    history = model.fit(
        dataset,
        epochs=intervals,
        initial_epoch=done,
        steps_per_epoch=steps_per_interval,
        callbacks=[IntervalCheckpoint(backup_dir), keras.callbacks.TerminateOnNaN(), *callbacks],
        verbose=verbose,
    )
    history.seconds = time.perf_counter() - start
    history.steps = (intervals - done) * steps_per_interval
    if delete_checkpoint:
        remove_checkpoints(backup_dir)
    return history


def fit(
    model,
    task: GlueTask,
    train_features: dict,
    train_labels: np.ndarray,
    config: FinetuneConfig,
    backup_dir: str | os.PathLike,
    callbacks=(),
    verbose="auto",
    delete_checkpoint: bool = True,
):
    """Compile and train ``model`` with AdamW + linear schedule; resumable (see :func:`run_fit`).

    Args:
        model: a Keras model on ``{"token_ids", "segment_ids", "padding_mask"}``.
        task: the task (chooses the loss).
        train_features: encoded training examples.
        train_labels: [N] labels.
        config: hyper-parameters.
        backup_dir: where ``BackupAndRestore`` keeps its checkpoint.
        callbacks: extra Keras callbacks.
        verbose: ``model.fit`` verbosity (progress bar on a terminal). Keras epochs in the progress bar are
            checkpoint intervals of about ``config.backup_every`` steps.
        delete_checkpoint: see :func:`run_fit`.

    Returns:
        the ``keras.callbacks.History``, with ``seconds`` and ``examples_per_second`` attributes.
    """
    intervals, steps = plan_steps(len(train_labels), config.batch_size, config.epochs, config.backup_every)
    model.compile(
        optimizer=optimizer_for(config, intervals * steps),
        loss=task_loss(task),
        metrics=[] if task.is_regression else ["sparse_categorical_accuracy"],
    )
    ds = make_dataset(
        train_features, train_labels, batch_size=config.batch_size, shuffle=True, seed=config.seed, repeat=True
    )
    history = run_fit(model, ds, intervals, steps, backup_dir, callbacks, verbose, delete_checkpoint)
    history.examples_per_second = history.steps * config.batch_size / max(history.seconds, 1e-9)
    return history
