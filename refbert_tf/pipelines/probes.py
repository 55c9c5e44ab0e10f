"""Probes of a run's parts: pruned students before training, and how much label information the references carry.

- :func:`pruning_probe`: dev metrics of students pruned from a fine-tuned teacher, per choice of copied layers.
- :func:`reference_diagnostics` / :func:`reference_report`: the student's in-graph retrieval against the offline
  choice, and how often a reference shares the input's gold label.
- :func:`reference_ceiling`: the bank's lexical retrieval replayed for several bank shapes, before any teacher.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from refbert_tf.bank import ReferenceBank, label_agreement, reference_label_agreement, select_anchors
from refbert_tf.data import GlueTask, get_task, load_encoded_splits, make_dataset
from refbert_tf.distillation import TeacherFeatures
from refbert_tf.export import export_saved_model, representative_examples
from refbert_tf.inference import LiteRTClassifier
from refbert_tf.metrics import compute_metrics, predictions_from_outputs
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


def calibration_probe(
    task,
    student_dir,
    lengths,
    glue_dir=None,
    source: str = "tsv",
    num_examples: int = 300,
    debug_examples: int = 60,
    debug_length: int = 40,
    top: int = 8,
) -> list[dict]:
    """Full-integer int8 of a distilled student calibrated at several input lengths: dev accuracy of each file and
    the tensors the quantization hurts most, by TensorFlow's ``QuantizationDebugger``.

    For each calibration length the converter calibrates on ``num_examples`` training examples of that length
    (:func:`~refbert_tf.export.representative_examples`); the debugger then runs the float and the quantized model
    on ``debug_examples`` dev examples of ``debug_length`` tokens and reports, per quantized tensor, the mean squared
    error against float; ``rmse/scale`` (root of that error over the tensor's quantization step) ranks them: above
    about 1, values fall outside the calibrated range.

    Args:
        task: GLUE task; student_dir: the distillation run directory.
        lengths: calibration lengths (tokens) to try.
        glue_dir, source: GLUE data.

    Returns:
        One row per length: ``{"length", "num_examples", "dev_metric", "worst_tensors": [{op, tensor, rmse_over_scale}]}``.
    """
    task = get_task(task) if isinstance(task, str) else task
    student, meta = load_student(student_dir)
    tokenizer = BertWordPieceTokenizer(Path(student_dir) / "vocab.txt", lowercase=meta.get("lowercase", True))
    _, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, meta["max_seq_len"], source, glue_dir)
    debug = representative_examples(dev_f, num_examples=debug_examples, length=debug_length, seed=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(student, Path(tmp) / "saved_model", meta["max_seq_len"])
        names = [d["name"] for d in tf.lite.Interpreter(
            model_content=tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"]).convert()
        ).get_input_details()]  # fmt: skip
        order = [next(k for k in ("token_ids", "segment_ids", "padding_mask") if k in n) for n in names]
        for length in lengths:
            rep = representative_examples(train_f, num_examples=num_examples, length=int(length))
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda rep=rep: iter(rep)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: ([d[k] for k in order] for d in debug)
            )
            debugger.run()
            stats = io.StringIO()
            debugger.layer_statistics_dump(stats)
            worst = []
            for r in csv.DictReader(io.StringIO(stats.getvalue())):
                scale, mse = float(r["scale"] or 0), float(r["mean_squared_error"] or "nan")
                if scale > 0 and np.isfinite(mse):
                    worst.append(
                        {"op": r["op_name"], "tensor": r["tensor_name"], "rmse_over_scale": round(mse**0.5 / scale, 3)}
                    )
            worst.sort(key=lambda w: -w["rmse_over_scale"])
            path = Path(tmp) / f"full_int8_{length}.tflite"
            path.write_bytes(debugger.get_nondebug_quantized_model())
            outputs = LiteRTClassifier(path).predict_features(dev_f)
            value = compute_metrics(task, predictions_from_outputs(task, outputs), dev.labels)[task.main_metric]
            rows.append({"length": int(length), "num_examples": len(rep), "dev_metric": round(float(value), 2),
                         "worst_tensors": worst[:top]})  # fmt: skip
    return rows
