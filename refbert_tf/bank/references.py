"""A distillation run's bank: reuse the one on disk when it matches the run, build it otherwise, and pick every
training example's offline reference (never itself; an augmented copy never its source)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refbert_tf.bank.build import build_bank, resolve_layer
from refbert_tf.bank.store import BankError, ReferenceBank


def load_or_build_bank(
    bank_dir,
    teacher_backbone,
    train_features: dict,
    tokenizer,
    config,
    task: str,
    teacher_id: str,
    progress: bool = True,
    strategy=None,
) -> ReferenceBank:
    """The run's reference bank from ``bank_dir``, built there first when missing.

    Args:
        bank_dir: the bank directory (``bank.json`` and its shards).
        teacher_backbone: the fine-tuned teacher's keras-hub ``BertBackbone``.
        train_features: encoded training examples (the anchors are chosen among them).
        tokenizer: the teacher's tokenizer (ignored ids, vocabulary hash).
        config: a ``DistillConfig`` (``bank_layer``, ``bank_tokens``, ``max_anchors``, ``num_buckets``, ``seed``).
        task: the task name, recorded in and checked against the bank.
        teacher_id: the teacher's identity (a hash prefix of its ``model.keras``), recorded and checked.
        progress: show the teacher-inference progress bar.
        strategy: the ``tf.distribute.Strategy`` for the teacher's inference.

    Raises:
        BankError: a bank on disk of another vocabulary, teacher or task, or of another shape (layer, tokens,
            buckets, anchor cap, training rows) than the run asks for (the message names both).
    """
    bank_dir = Path(bank_dir)
    num_train = int(train_features["token_ids"].nrows())
    wanted = {
        "layer": resolve_layer(teacher_backbone, config.bank_layer),
        "num_tokens": config.bank_tokens,
        "num_buckets": config.num_buckets,
        "max_anchors": config.max_anchors,
        "num_train": num_train,
    }
    if (bank_dir / "bank.json").is_file():
        bank = ReferenceBank.load(bank_dir)
        print(f"reference bank: {bank.num_anchors} anchors loaded from {bank_dir}")
        bank.check_compatible(tokenizer.vocab_sha256, teacher_id, task, where=str(bank_dir))
        have = {
            "layer": bank.layer,
            "num_tokens": bank.num_tokens,
            "num_buckets": bank.index.num_buckets,
            "max_anchors": bank.metadata.get("max_anchors"),
            "num_train": bank.metadata.get("num_train"),
        }
        if have != wanted:
            raise BankError(
                f"{bank_dir} was built with {have}, this run asks for {wanted}: pass another --bank-dir or delete it"
            )
        return bank
    if bank_dir.is_dir() and any(bank_dir.glob("representations-*.npy")):
        print(f"the reference bank in {bank_dir} is incomplete (no bank.json: an interrupted run): building it again")
    else:
        print(f"building the reference bank in {bank_dir}")
    return build_bank(
        teacher_backbone, train_features, layer=config.bank_layer, num_tokens=config.bank_tokens,
        max_anchors=config.max_anchors, num_buckets=config.num_buckets, seed=config.seed,
        ignore_ids=(tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id),
        metadata={"task": task, "teacher": teacher_id, "vocab_sha256": tokenizer.vocab_sha256,
                  "max_anchors": config.max_anchors},
        progress=progress, strategy=strategy, bank_dir=bank_dir,
    )  # fmt: skip


def training_references(
    bank: ReferenceBank, train_features: dict, top_k: int = 1, augmented: dict | None = None, source=None
) -> dict:
    """Every training row's offline reference: the best anchor other than the row itself and, for augmented
    copies (``augmented``, with ``source`` their source rows), other than the copy's source.

    Returns:
        ``{"train": [N] (or [N, k]), "augmented": [N_aug] (or None), "all": int32 [N + N_aug] (or [.., k])}``, anchor
        indices in the order of the training rows, originals first.
    """
    train = bank.references_for(train_features, exclude_self=True, top_k=top_k)[0]
    copies = None
    if augmented is not None:
        copies = bank.references_for(augmented, top_k=top_k, exclude_rows=source)[0]
    rows = train if copies is None else np.concatenate([train, copies])
    return {"train": train, "augmented": copies, "all": rows.astype(np.int32)}
