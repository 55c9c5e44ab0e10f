"""The side-by-side benchmark behind ``recipes/benchmark.py``: every model, every TFLite variant, one run.

Models (``MODELS``): a BERT-base-shaped classifier (12 layers, hidden 768, 12 heads, FFN 3072, random weights:
latency and size do not depend on the weights), the fine-tuned teacher, the vanilla and the RefBERT students, and
the RefBERT student without its bank (:func:`refbert_tf.export.strip_bank`). Each is exported in every variant of
:data:`refbert_tf.export.VARIANTS` (each model in its own process: ``TFLiteConverter.convert`` leaks memory per
call), its dev metric measured through the LiteRT interpreter where it means something (not for the random
BERT-base shape, nor for the student stripped of its bank), then every file is timed by
:func:`refbert_tf.benchmark.desktop.benchmark_tflite` at each sequence length and thread count.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from refbert_tf.benchmark.desktop import benchmark_tflite
from refbert_tf.tasks import get_task

MODELS = ("bert_base_shape", "teacher", "vanilla", "refbert", "refbert_no_bank")
BERT_BASE_SHAPE = dict(num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072, max_sequence_length=512)


def _export_one(model: str, task_name: str, paths: dict, out_dir: str, variants, glue_dir, num_representative):
    """Export one model's variants (runs in a child process). Returns the cards."""
    import keras  # lazy: TensorFlow; recipes/benchmark.py --report-only runs without it

    from refbert_tf.data import load_encoded_splits  # lazy: with TensorFlow, as above
    from refbert_tf.export import export_model, export_student, representative_examples  # lazy: as above
    from refbert_tf.models.teacher import load_teacher  # lazy: as above

    task = get_task(task_name)
    teacher, tokenizer, teacher_meta = load_teacher(paths["teacher"], task=task)
    max_len = teacher_meta["max_seq_len"]
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, glue_dir=glue_dir)
    if model in ("vanilla", "refbert", "refbert_no_bank"):
        student_dir = paths["refbert" if model == "refbert_no_bank" else model]
        no_bank = model == "refbert_no_bank"
        return export_student(
            student_dir,
            out_dir,
            variants,
            train_features=train_f,
            dev_features=None if no_bank else dev_f,
            dev_labels=dev.labels,
            without_bank=no_bank,
            num_representative=num_representative,
            progress=False,
        )
    meta = {
        "task": task.name,
        "labels": list(task.labels),
        "vocab_sha256": tokenizer.vocab_sha256,
        "lowercase": tokenizer.lowercase,
        "max_seq_len": max_len,
        "vocab_size": tokenizer.vocab_size,
        "vocab_path": str(tokenizer.vocab_path),
    }
    representative = representative_examples(train_f, num_representative)
    if model == "teacher":
        return export_model(
            teacher,
            {**meta, "model": "teacher"},
            out_dir,
            variants,
            representative,
            dev_f,
            dev.labels,
            source=str(paths["teacher"]),
            progress=False,
        )
    import keras_hub  # lazy: TensorFlow, as above

    from refbert_tf.models.backbone import BertBackbone  # lazy: as above

    keras.utils.set_random_seed(0)
    backbone = BertBackbone(vocabulary_size=tokenizer.vocab_size, hidden_activation="gelu", **BERT_BASE_SHAPE)
    shaped = keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=task.num_classes, preprocessor=None, activation=None
    )
    return export_model(
        shaped,
        {**meta, "model": "bert_base_shape"},
        out_dir,
        variants,
        representative,
        source="random weights, BERT-base shape (12L/768H/12 heads/FFN 3072)",
    )


def export_all(
    task: str,
    paths: dict,
    out_dir,
    variants,
    glue_dir=None,
    num_representative: int = 300,
    models=MODELS,
    reuse: bool = True,
    log=print,
) -> dict:
    """Export every model of ``models`` in every variant, each model in a fresh process.

    Args:
        task: GLUE task.
        paths: ``{"teacher": dir, "vanilla": dir, "refbert": dir}`` (fine-tuned teacher, student runs).
        out_dir: where the ``.tflite`` files and cards go.
        variants: TFLite variants.
        reuse: keep files whose card already exists (delete them to re-export).

    Returns:
        ``{(model, variant): card}``.

    Raises:
        RuntimeError: an export failed (the child's exception is re-raised with its message).
    """

    task_name = get_task(task).name
    out_dir = Path(out_dir)
    cards = {}
    context = multiprocessing.get_context("spawn")
    for model in models:
        wanted = [v for v in variants if not (reuse and (out_dir / f"{task_name}_{model}_{v}.json").is_file())]
        if wanted:
            log(f"exporting {model}: {', '.join(wanted)}")
            with context.Pool(1) as pool:
                pool.apply(
                    _export_one,
                    (
                        model,
                        task_name,
                        {k: str(v) for k, v in paths.items()},
                        str(out_dir),
                        wanted,
                        glue_dir,
                        num_representative,
                    ),
                )
        for v in variants:
            card_path = out_dir / f"{task_name}_{model}_{v}.json"
            cards[(model, v)] = {
                **json.loads(card_path.read_text(encoding="utf-8")),
                "path": str(card_path.with_suffix(".tflite")),
            }
    return cards


def measure_all(
    cards: dict, seq_lens=(64, 128), threads=(1, 2), num_runs: int = 50, warmup_runs: int = 5, log=print
) -> list[dict]:
    """Time every exported file at every sequence length and thread count (fresh process per measurement).

    Returns:
        rows ``{model, variant, seq_len, threads, size_mb, init_ms, median_ms, p90_ms, p99_ms, peak_mem_mb,
        model_mem_mb, dev_metric, dev_metric_name}``; times in ms, sizes and memory in MB (2**20 bytes).
    """

    rows = []
    for (model, variant), card in cards.items():
        metric_name = get_task(card["task"]).main_metric
        dev = (card.get("dev_metrics") or {}).get(metric_name)
        for seq_len in seq_lens:
            for n in threads:
                r = benchmark_tflite(
                    card["path"],
                    seq_len=seq_len,
                    threads=n,
                    num_runs=num_runs,
                    warmup_runs=warmup_runs,
                    vocab_size=card.get("vocab_size") or 30522,
                )
                rows.append(
                    {
                        "model": model,
                        "variant": variant,
                        "seq_len": seq_len,
                        "threads": n,
                        "size_mb": r["size_mb"],
                        "init_ms": r["init_ms"],
                        "median_ms": r["median_ms"],
                        "p90_ms": r["p90_ms"],
                        "p99_ms": r["p99_ms"],
                        "peak_mem_mb": r["peak_mem_mb"],
                        "model_mem_mb": r["model_mem_mb"],
                        "dev_metric": dev,
                        "dev_metric_name": metric_name,
                    }
                )
                log(
                    f"{model:>16} {variant:>12} seq {seq_len:>3} x{n}: {r['median_ms']:8.2f} ms median, "
                    f"{r['size_mb']:7.2f} MB"
                )
    return rows


def run_suite(
    task: str,
    paths: dict,
    tflite_dir,
    variants,
    seq_lens=(64, 128),
    threads=(1, 2),
    glue_dir=None,
    num_runs: int = 50,
    models=MODELS,
    reuse: bool = True,
    log=print,
) -> list[dict]:
    """:func:`export_all` then :func:`measure_all`: the rows of ``results/benchmark.json``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cards = export_all(task, paths, tflite_dir, variants, glue_dir, models=models, reuse=reuse, log=log)
    return measure_all(cards, seq_lens, threads, num_runs, log=log)
