"""Run configuration shared by the training jobs (no TensorFlow import, so recipes' ``--help`` stays fast)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TrainingConfig:
    """Optimisation settings shared by every training run: fine-tuning (``training.FinetuneConfig``), task distillation
    (``pipelines.DistillConfig``) and general distillation (``pipelines.GeneralDistillConfig``).

    Attributes:
        batch_size: examples per optimizer step: the global batch, split over the replicas of a strategy.
        learning_rate: peak AdamW learning rate (for ``batch_size``; see ``lr_scaling``).
        lr_scaling: ``none``, ``linear`` or ``sqrt``: scale ``learning_rate`` by ``batch_size / 32``
            (see :func:`refbert_tf.distribute.scaled_learning_rate`).
        warmup_ratio: share of steps spent warming up (linear warm-up, then linear decay).
        weight_decay: AdamW decoupled weight decay.
        max_seq_len: packed sequence length limit (tokens).
        seed: seed for weights init, dropout and shuffling.
        backup_every: optimizer steps between resume checkpoints (each is one Keras "epoch" of the progress
            bar; passes over the data are set by the subclass).
    """

    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_scaling: str = "none"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_len: int = 128
    seed: int = 42
    backup_every: int = 200
