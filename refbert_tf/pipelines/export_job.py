"""The export job: a distilled GLUE student to TFLite variants, each measured through the LiteRT interpreter."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from refbert_tf.data import GlueTask, get_task, load_glue
from refbert_tf.export import VARIANTS, export_student, keras_parity
from refbert_tf.inference import LiteRTClassifier
from refbert_tf.metrics import compute_metrics, predictions_from_outputs
from refbert_tf.models.student import load_student
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.training import predict_outputs


def export_glue_student(
    task: GlueTask | str,
    student_dir,
    out_dir,
    variants=None,
    glue_dir=None,
    source: str = "tsv",
    without_bank: bool = False,
    num_representative: int = 300,
    parity_examples: int = 200,
    command: str = "",
    metadata: bool = True,
) -> dict:
    """Export a distilled GLUE student to TFLite variants and measure each through the LiteRT interpreter.

    Args:
        task: GLUE task.
        student_dir: the distillation run directory (``student.keras``, ``student.json``, ``vocab.txt``).
        out_dir: where ``<task>_<model>_<variant>.tflite`` and their cards go.
        variants: subset of :data:`refbert_tf.export.VARIANTS` (None: all four).
        glue_dir, source: GLUE data (training examples calibrate ``full_int8``; dev measures every file).
        without_bank: export the RefBERT student minus its reference path (``refbert_no_bank``).
        num_representative: calibration examples.
        parity_examples: dev examples on which float32 logits are compared with Keras.
        command: command line recorded in the result.
        metadata: TFLite Model Metadata in single-text classifiers (:mod:`refbert_tf.export.metadata`).

    Returns:
        ``{"task", "model", "keras_dev_metric", "variants": [{variant, path, size_mb, dev_metric, dev_drop,
        label_changes (classification: dev examples whose predicted label differs from the Keras student's),
        num_dev, integer_only, ops}], "parity": {...} (float32 only), "command", "seconds"}``; the Keras metric is the
        student's, measured again here, so ``dev_drop`` = Keras - TFLite in points.

    Raises:
        FileNotFoundError: no student in ``student_dir``.
        ExportError: a conversion failed or needs non-builtin ops.
    """
    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    student_dir = Path(student_dir)
    student, meta = load_student(student_dir)
    if meta.get("task") != task.name:
        raise ValueError(
            f"{student_dir / 'student.json'}: the student was distilled on {meta.get('task')!r}, not {task.name!r}"
        )
    tokenizer = BertWordPieceTokenizer(student_dir / "vocab.txt", lowercase=meta.get("lowercase", True))
    max_len = meta["max_seq_len"]
    variants = list(variants or VARIANTS)
    dev = load_glue(task, "dev", source=source, glue_dir=glue_dir)
    dev_f = tokenizer.encode(dev.text_a, dev.text_b, max_len)
    train_f = None
    if "full_int8" in variants:  # only full-integer calibration reads training examples
        train = load_glue(task, "train", source=source, glue_dir=glue_dir)
        train_f = tokenizer.encode(train.text_a, train.text_b, max_len)
    cards = export_student(
        student_dir,
        out_dir,
        variants,
        train_features=train_f,
        dev_features=dev_f,
        dev_labels=dev.labels,
        metadata=metadata,
        without_bank=without_bank,
        num_representative=num_representative,
    )
    ours = predict_outputs(student, dev_f)  # the Keras student, evaluated now with the current code
    keras_metric = (
        None
        if without_bank
        else float(compute_metrics(task, predictions_from_outputs(task, ours), dev.labels)[task.main_metric])
    )
    rows = []
    for card in cards:
        value = float(card["dev_metrics"][task.main_metric])
        changes = None  # dev examples whose label the file predicts differently from the Keras student
        if not task.is_regression and not without_bank:
            lite = LiteRTClassifier(card["path"]).predict_features(dev_f)
            changes = int(np.sum(np.argmax(lite, -1) != np.argmax(ours, -1)))
        rows.append(
            {
                "variant": card["variant"],
                "path": card["path"],
                "size_mb": card["size_mb"],
                "bank_size_mb": card["bank_size_mb"],
                "dev_metric": value,
                "dev_drop": None if keras_metric is None else round(keras_metric - value, 3),
                "label_changes": changes,
                "num_dev": len(dev.labels),
                "integer_only": card["integer_only"],
                "ops": card["ops"],
                "metadata": card.get("metadata"),
            }
        )
    parity = None
    float32 = [c for c in cards if c["variant"] == "float32"]
    if float32 and not without_bank:
        parity = keras_parity(student, float32[0]["path"], dev_f, parity_examples)
        lite = LiteRTClassifier(float32[0]["path"]).predict_features(dev_f)
        parity["prediction_agreement_dev"] = (
            float(np.mean(np.argmax(lite, -1) == np.argmax(ours, -1))) if ours.shape[-1] > 1 else None
        )
    model_name = "refbert_no_bank" if without_bank else meta["model"]
    return {
        "task": task.name,
        "model": model_name,
        "main_metric": task.main_metric,
        "source_student": str(student_dir),
        "keras_dev_metric": keras_metric,
        "variants": rows,
        "parity": parity,
        "student_config": meta.get("config"),
        "command": command,
        "seconds": round(time.perf_counter() - start, 1),
    }
