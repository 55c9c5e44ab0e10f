"""Probes of a run's parts: pruned students before training, and how much label information the references carry.

- :func:`pruning_probe`: dev metrics of students pruned from a fine-tuned teacher, per choice of copied layers.
- :func:`reference_diagnostics` / :func:`reference_report`: the student's in-graph retrieval against the offline
  choice, and how often a reference shares the input's gold label.
- :func:`reference_ceiling`: the bank's lexical retrieval replayed for several bank shapes, before any teacher.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from refbert_tf.bank import ReferenceBank, label_agreement, reference_label_agreement, select_anchors
from refbert_tf.data import GlueTask, get_task, load_encoded_splits, make_dataset
from refbert_tf.distillation import TeacherFeatures
from refbert_tf.models.pruning import init_student_by_pruning, pruning_sample, pruning_statistics
from refbert_tf.models.student import build_student, load_student
from refbert_tf.models.teacher import load_teacher
from refbert_tf.retrieval import RetrievalIndex, nearest_anchors
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.training import evaluate


def pruning_probe(
    task,
    teacher_dir,
    mappings,
    student: str = "tinybert4",
    glue_dir=None,
    source: str = "tsv",
    max_seq_len: int = 128,
    seed: int = 42,
) -> list[dict]:
    """Dev metrics of students pruned from a fine-tuned teacher (:mod:`refbert_tf.models.pruning`), before any
    training: how much of the teacher each choice of copied layers keeps.

    Args:
        task: GLUE task (name or :class:`GlueTask`).
        teacher_dir: the fine-tuned teacher (``recipes/finetune_teacher.py``).
        mappings: lists of teacher blocks (1-based), one per student block, to try.
        student: student preset.
        glue_dir, source: see :func:`refbert_tf.data.load_glue`.
        max_seq_len: tokens per input.
        seed: picks the :data:`~refbert_tf.models.pruning.PRUNING_SAMPLE` training examples that rank the units.

    Returns:
        One row per mapping: ``{"task", "mapping", "metrics"}`` (dev metrics in percent).

    Raises:
        TeacherNotFoundError: no fine-tuned teacher in ``teacher_dir``; ValueError: a mapping that does not fit.
    """
    task = get_task(task) if isinstance(task, str) else task
    teacher, tokenizer, _ = load_teacher(teacher_dir, task)
    max_len = min(max_seq_len, teacher.backbone.max_sequence_length)
    _, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir)
    stats = pruning_statistics(TeacherFeatures(teacher), pruning_sample(train_f, seed))
    rows = []
    for mapping in mappings:
        pruned = build_student(
            student,
            task.num_classes,
            tokenizer.vocab_size,
            teacher.backbone.hidden_dim,
            max_sequence_length=teacher.backbone.max_sequence_length,
        )
        init_student_by_pruning(pruned, teacher, stats, list(mapping))
        rows.append({"task": task.name, "mapping": list(mapping), "metrics": evaluate(pruned, task, dev_f, dev.labels)})
    return rows


def reference_report(task: GlueTask | str, run_dir, glue_dir=None, source: str = "tsv", command: str = "") -> dict:
    """Reference diagnostics of a RefBERT run: agreement of the student's in-graph retrieval with the offline
    choice on dev, and how often train and dev references share the gold label.

    Args:
        task: GLUE task (classification).
        run_dir: the RefBERT run directory (``bank/``, ``student.json``, ``vocab.txt``).

    Returns:
        ``{"task", "bank": {...}, "dev_retrieval_agreement" (fraction), "reference_label_agreement": {"train": ...,
        "dev": ...}, "command"}`` (see
        :func:`refbert_tf.bank.reference_label_agreement`).

    Raises:
        BankError: no bank in ``run_dir/bank``.
        ValueError: a regression task.
    """
    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: label agreement is undefined")
    run_dir = Path(run_dir)
    bank = ReferenceBank.load(run_dir / "bank")
    meta = json.loads((run_dir / "student.json").read_text(encoding="utf-8"))
    tokenizer = BertWordPieceTokenizer(run_dir / "vocab.txt", lowercase=meta.get("lowercase", True))
    bank.check_compatible(tokenizer.vocab_sha256, task=task.name, where=str(run_dir / "bank"))
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, meta["max_seq_len"], source, glue_dir)
    student, _ = load_student(run_dir)
    return {
        "task": task.name,
        "run_dir": str(run_dir),
        "bank": {"num_anchors": bank.num_anchors, "layer": bank.layer, "num_tokens": bank.num_tokens},
        **reference_diagnostics(task, student, bank, train, dev, train_f, dev_f),
        "command": command,
    }


def reference_ceiling(
    task: GlueTask | str,
    tokenizer,
    num_buckets=(1024,),
    max_anchors=(1024,),
    vote: int = 16,
    max_seq_len: int = 128,
    glue_dir=None,
    source: str = "tsv",
    seed: int = 42,
    train_sample: int = 5000,
) -> list[dict]:
    """How much label information the lexical references can carry, before any teacher or student is involved.

    For each bank shape (K hash buckets x M anchors), the bank's own choices are replayed: idf fitted on the
    training set (:class:`~refbert_tf.retrieval.RetrievalIndex`), anchors by :func:`~refbert_tf.bank.select_anchors`
    (k-means above M, seed ``seed``), references by :func:`~refbert_tf.retrieval.nearest_anchors` (dev: best anchor;
    train: best anchor other than itself). A reference helps the student decide the label only through what the
    teacher's stored representation says about the *reference*, so the rate at which the reference shares the
    input's gold label, against the majority-class rate, bounds what top-1 references can teach; the majority vote
    of the ``vote`` best anchors shows what many references together could. A diagnostic of our own; RefBERT (Wang et al. 2021)
    does not report it.

    Args:
        task: GLUE classification task.
        tokenizer: the teacher's :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
        num_buckets: K values to try.
        max_anchors: M values to try (0 or None: every training example is an anchor).
        vote: anchors in the majority vote (0: skip the vote).
        max_seq_len, glue_dir, source: data (see :func:`refbert_tf.data.load_encoded_splits`).
        seed: k-means seed and the seed of the training sample.
        train_sample: training examples whose references are scored (a seeded random subset; the bank, idf and
            anchors always use the whole training set).

    Returns:
        One row per (K, M): ``{"task", "num_buckets", "max_anchors", "num_anchors", "dev": {agreement,
        majority_class, mean_similarity}, "train": {...}, "dev_vote": {agreement, majority_class}}`` (percent).

    Raises:
        ValueError: a regression task.
    """
    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: label agreement is undefined")
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_seq_len, source, glue_dir)
    ignore = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    sample = np.sort(np.random.default_rng(seed).permutation(len(train))[:train_sample])
    rows = []
    for k in num_buckets:
        index = RetrievalIndex.fit(train_f, ignore, k)
        train_keys, dev_keys = index.keys(train_f), index.keys(dev_f)
        for m in max_anchors:
            anchors = select_anchors(train_keys, m or len(train), seed=seed)
            anchor_labels = train.labels[anchors]
            position = np.full(len(train), -1)
            position[anchors] = np.arange(len(anchors))
            dev_ref, dev_sim = nearest_anchors(dev_keys, train_keys[anchors])
            train_ref, train_sim = nearest_anchors(train_keys[sample], train_keys[anchors], exclude=position[sample])
            row = {
                "task": task.name,
                "num_buckets": int(k),
                "max_anchors": int(m or 0),
                "num_anchors": len(anchors),
                "dev": label_agreement(dev.labels, anchor_labels[dev_ref], dev_sim),
                "train": label_agreement(train.labels[sample], anchor_labels[train_ref], train_sim),
            }
            if vote:
                best, _ = nearest_anchors(dev_keys, train_keys[anchors], top_k=min(vote, len(anchors)))
                voted = [
                    np.bincount(anchor_labels[b], minlength=task.num_classes).argmax()
                    for b in best.reshape(len(best), -1)
                ]  # [N] when the vote is of one anchor
                row["dev_vote"] = {"k": int(min(vote, len(anchors))), **label_agreement(dev.labels, voted)}
            rows.append(row)
    return rows


def reference_diagnostics(task: GlueTask, student, bank, train, dev, train_f: dict, dev_f: dict) -> dict:
    """Agreement of the student's in-graph retrieval with the offline choice on dev and, for classification
    tasks, how often train and dev references share the gold label.

    Returns:
        ``{"dev_retrieval_agreement" (fraction; per reference slot with top-k), "reference_label_agreement":
        {"train", "dev"}}`` (the second key only for classification, for the best reference; see
        :func:`refbert_tf.bank.reference_label_agreement`).
    """
    offline, _ = bank.references_for(dev_f, top_k=student.bank.top_k)
    on_device = np.concatenate(
        [
            np.asarray(student.bank.retrieve(b["token_ids"], b["padding_mask"]))
            for b in make_dataset(dev_f, None, batch_size=256)
        ]
    )
    out = {"dev_retrieval_agreement": float(np.mean(on_device == offline))}
    if not task.is_regression:
        out["reference_label_agreement"] = {
            "train": reference_label_agreement(bank, train_f, train.labels, train.labels, exclude_self=True),
            "dev": reference_label_agreement(bank, dev_f, dev.labels, train.labels),
        }
    return out
