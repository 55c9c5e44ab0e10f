"""The side-by-side benchmark behind ``recipes/benchmark.py``: every model, every runtime and variant, one run.

Models (``MODELS``): a BERT-base-shaped classifier (12 layers, hidden 768, 12 heads, FFN 3072, random weights:
latency and size do not depend on the weights), the fine-tuned teacher, the vanilla and the RefBERT students, and
the RefBERT student without its bank (:func:`refbert_tf.export.strip_bank`). Each is exported in every variant of
:data:`refbert_tf.export.VARIANTS` (each model in its own process: ``TFLiteConverter.convert`` leaks memory per
call), its dev metric measured through the LiteRT interpreter where it means something (not for the random
BERT-base shape, nor for the student stripped of its bank). The teacher and the two students (``ONNX_MODELS``) are
also converted from the same SavedModel to ONNX (:mod:`refbert_tf.export.onnx`, float32 and dynamic int8) and
checked against their Keras model on 200 dev examples before any timing; their dev metric is measured through
ONNX Runtime too.

:func:`measure_all` then times every (model, runtime, variant) "engine" in a fresh process at every sequence
length and thread count, and at the dev set's own lengths ("real traffic", :mod:`refbert_tf.benchmark.traffic`).
Within each (length, threads) cell the engines run one after the other, in reverse order in every other cell, so
that drift of the machine's speed hits all alike. Each row carries its FLOPs (:mod:`refbert_tf.benchmark.flops`),
achieved GFLOP/s and the fraction of this machine's matrix-multiply peak, measured in the same run
(:mod:`refbert_tf.benchmark.peak`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from refbert_tf.benchmark.desktop import benchmark_tflite
from refbert_tf.tasks import get_task

MODELS = ("bert_base_shape", "teacher", "vanilla", "refbert", "refbert_no_bank")
ONNX_MODELS = ("teacher", "vanilla", "refbert")
REAL = "real"  # the seq_len of real-traffic rows
BERT_BASE_SHAPE = dict(num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072, max_sequence_length=512)


def _load_model(model: str, task, paths: dict, tokenizer):
    """The Keras model of ``model`` (child process): ``(keras_model, student_dir or None)``."""
    import keras  # lazy: TensorFlow; recipes/benchmark.py --report-only runs without it
    import keras_hub  # lazy: as above

    from refbert_tf.export import strip_bank  # lazy: as above
    from refbert_tf.models.backbone import BertBackbone  # lazy: as above
    from refbert_tf.models.student import load_student  # lazy: as above

    if model in ("vanilla", "refbert", "refbert_no_bank"):
        student_dir = paths["refbert" if model == "refbert_no_bank" else model]
        student, _ = load_student(student_dir)
        return (strip_bank(student) if model == "refbert_no_bank" else student), student_dir
    keras.utils.set_random_seed(0)
    backbone = BertBackbone(vocabulary_size=tokenizer.vocab_size, hidden_activation="gelu", **BERT_BASE_SHAPE)
    shaped = keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=task.num_classes, preprocessor=None, activation=None
    )
    return shaped, None


def _export_one(
    model: str, task_name: str, paths: dict, out_dir: str, variants, onnx_variants, glue_dir, num_representative
):
    """Export one model (runs in a child process): its TFLite ``variants``, its ONNX ``onnx_variants`` (parity
    checked, dev metric measured), ``<task>_<model>_arch.json`` and, for the teacher, the dev set's lengths."""
    from refbert_tf.benchmark.flops import architecture_of  # lazy: with TensorFlow, as below
    from refbert_tf.benchmark.traffic import dev_lengths  # lazy: as below
    from refbert_tf.data import load_encoded_splits  # lazy: TensorFlow; --report-only runs without it
    from refbert_tf.export import export_model, export_student, representative_examples  # lazy: as above
    from refbert_tf.io_utils import write_json  # lazy: as above
    from refbert_tf.models.teacher import load_teacher  # lazy: as above

    task = get_task(task_name)
    out = Path(out_dir)
    teacher, tokenizer, teacher_meta = load_teacher(paths["teacher"], task=task)
    max_len = teacher_meta["max_seq_len"]
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, glue_dir=glue_dir)
    if model == "teacher":
        keras_model, student_dir = teacher, None
        write_json(out / f"{task.name}_dev_lengths.json", {"lengths": dev_lengths(task, tokenizer, max_len, glue_dir)})
    else:
        keras_model, student_dir = _load_model(model, task, paths, tokenizer)
    write_json(out / f"{task.name}_{model}_arch.json", architecture_of(keras_model).as_dict())
    if onnx_variants:
        _export_onnx_checked(keras_model, task, model, out, onnx_variants, dev_f, dev.labels, max_len)
    if not variants:
        return None
    if student_dir is not None:
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
    return export_model(
        keras_model,
        {**meta, "model": "bert_base_shape"},
        out_dir,
        variants,
        representative,
        source="random weights, BERT-base shape (12L/768H/12 heads/FFN 3072)",
    )


# parity required of an ONNX file before it is timed: float32 matches the Keras logits; int8 keeps the predictions
ONNX_PARITY = {
    "float32": {"max_abs_diff": 1e-3, "min_agreement": 1.0},
    "dynamic_int8": {"max_abs_diff": None, "min_agreement": 0.9},
}


def _export_onnx_checked(keras_model, task, model, out: Path, variants, dev_f, dev_labels, max_len):
    """ONNX files of one model with their cards ``<file>.json``: parity on 200 dev examples (refused beyond
    :data:`ONNX_PARITY`) and the dev metric through ONNX Runtime."""
    import numpy as np  # lazy: in the child, with the rest

    from refbert_tf.export.onnx import OnnxClassifier, check_parity, export_onnx, onnx_parity  # lazy: TensorFlow
    from refbert_tf.io_utils import write_json  # lazy: as above
    from refbert_tf.metrics import compute_metrics, predictions_from_outputs  # lazy: as above

    files = export_onnx(keras_model, out, f"{task.name}_{model}", max_len, variants)
    for variant, path in files.items():
        parity = check_parity(onnx_parity(keras_model, path, dev_f), path, **ONNX_PARITY[variant])
        runner = OnnxClassifier(path)
        ids, segs = dev_f["token_ids"], dev_f["segment_ids"]
        outputs = np.stack([runner.predict(ids[i].numpy(), segs[i].numpy()) for i in range(int(ids.nrows()))])
        metrics = compute_metrics(task, predictions_from_outputs(task, outputs), dev_labels)
        card = {
            "task": task.name,
            "model": model,
            "variant": variant,
            "runtime": "onnxruntime",
            "parity": parity,
            "dev_metrics": metrics,
            "size_mb": round(path.stat().st_size / 2**20, 3),
        }
        write_json(Path(str(path) + ".json"), card)


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
    onnx_variants=("float32", "dynamic_int8"),
) -> dict:
    """Export every model of ``models`` in every variant (and ONNX for :data:`ONNX_MODELS`), one process each.

    Args:
        task: GLUE task.
        paths: ``{"teacher": dir, "vanilla": dir, "refbert": dir}`` (fine-tuned teacher, student runs).
        out_dir: where the ``.tflite`` / ``.onnx`` files and cards go.
        variants: TFLite variants (``bert_base_shape``: float32 only, the reference point).
        reuse: keep files whose card already exists (delete them to re-export).
        onnx_variants: ONNX variants for :data:`ONNX_MODELS` (empty: no ONNX).

    Returns:
        ``{(model, runtime, variant): card}`` with ``card["path"]`` the file; ``card["arch"]`` the architecture.

    Raises:
        RuntimeError: an export failed (the child's exception is re-raised with its message).
        refbert_tf.export.onnx.OnnxExportError: an ONNX file failed its parity check (the message gives figures).
    """

    task_name = get_task(task).name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cards = {}
    context = multiprocessing.get_context("spawn")
    for model in models:
        model_variants = ["float32"] if model == "bert_base_shape" else list(variants)
        model_onnx = list(onnx_variants) if model in ONNX_MODELS else []
        wanted = [v for v in model_variants if not (reuse and (out_dir / f"{task_name}_{model}_{v}.json").is_file())]
        wanted_onnx = [
            v for v in model_onnx if not (reuse and (out_dir / f"{task_name}_{model}_{v}.onnx.json").is_file())
        ]
        side = [out_dir / f"{task_name}_{model}_arch.json"]
        if model == "teacher":
            side.append(out_dir / f"{task_name}_dev_lengths.json")
        if wanted or wanted_onnx or not all(f.is_file() for f in side):
            log(f"exporting {model}: {', '.join(wanted + [v + ' (onnx)' for v in wanted_onnx]) or 'architecture'}")
            with context.Pool(1) as pool:
                pool.apply(
                    _export_one,
                    (
                        model,
                        task_name,
                        {k: str(v) for k, v in paths.items()},
                        str(out_dir),
                        wanted,
                        wanted_onnx,
                        glue_dir,
                        num_representative,
                    ),
                )
        arch = json.loads((out_dir / f"{task_name}_{model}_arch.json").read_text(encoding="utf-8"))
        for v in model_variants:
            card_path = out_dir / f"{task_name}_{model}_{v}.json"
            card = json.loads(card_path.read_text(encoding="utf-8"))
            cards[(model, "litert", v)] = {**card, "path": str(card_path.with_suffix(".tflite")), "arch": arch}
        for v in model_onnx:
            card_path = out_dir / f"{task_name}_{model}_{v}.onnx.json"
            card = json.loads(card_path.read_text(encoding="utf-8"))
            cards[(model, "onnxruntime", v)] = {**card, "path": str(card_path)[: -len(".json")], "arch": arch}
    return cards


def engine_order(engines: list, cell_index: int) -> list:
    """The engines of one (length, threads) cell: as given in even cells, reversed in odd ones (alternation)."""
    return list(engines) if cell_index % 2 == 0 else list(reversed(engines))


def _peak_for(row: dict, peaks: dict) -> float | None:
    """The matrix-multiply peak (GFLOP/s) a row is compared with: LiteRT's own fully connected kernel of the same
    arithmetic (int8 for int8 variants, float32 otherwise) at the same threads; ONNX Runtime rows the same."""
    kind = "dynamic_int8" if "int8" in row["variant"] else "float32"
    return peaks.get(("litert_fully_connected", kind, row["threads"]))


def measure_peaks(threads=(1, 2), probe_dir=None, log=print) -> list[dict]:
    """The machine's matrix-multiply peaks (:mod:`refbert_tf.benchmark.peak`) at each thread count."""
    import tempfile  # lazy: only when measuring

    from refbert_tf.benchmark.peak import (  # lazy: keeps --report-only light
        fully_connected_probe,
        numpy_matmul_gflops,
        write_fully_connected_probe,
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:  # TensorFlow writes the probe files, in a child like every export
            files = pool.apply(write_fully_connected_probe, (probe_dir or tmp,))
        for n in threads:
            rows.append(numpy_matmul_gflops(n))
            rows += fully_connected_probe(files, n)
    for r in rows:
        log(
            f"peak {r['probe']:>22} {r.get('variant', 'float32'):>12} x{r['threads']}: {r['median_gflops']:8.1f} GFLOP/s"
        )
    return rows


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _row(key, card, seq_len, n_threads, results, real_lengths, peak_table) -> dict:
    """One benchmark row from the rounds' results of one engine in one cell: medians over the rounds."""
    from refbert_tf.benchmark.flops import Architecture, inference_flops  # lazy: keeps the import graph small

    model, runtime, variant = key
    metric_name = get_task(card["task"]).main_metric
    med = {k: round(_median([r[k] for r in results]), 3) for k in ("median_ms", "p90_ms", "p99_ms", "init_ms")}
    arch = Architecture(**card["arch"])
    if seq_len == REAL:
        flops = sum(inference_flops(arch, n) for n in real_lengths) / len(real_lengths)
        seconds = _median([r["total_ms"] for r in results]) / 1000 / len(real_lengths)
    else:
        flops, seconds = inference_flops(arch, seq_len), med["median_ms"] / 1000
    row = {
        "model": model,
        "runtime": runtime,
        "variant": variant,
        "seq_len": seq_len,
        "threads": n_threads,
        "size_mb": results[0]["size_mb"],
        **med,
        "peak_mem_mb": max(r["peak_mem_mb"] for r in results),
        "model_mem_mb": max(r["model_mem_mb"] for r in results),
        "rounds_median_ms": [r["median_ms"] for r in results],
        "dev_metric": (card.get("dev_metrics") or {}).get(metric_name),
        "dev_metric_name": metric_name,
        "flops": int(flops),
        "gflops": round(flops / seconds / 1e9, 2),
    }
    if seq_len == REAL:
        for k in ("first_median_ms", "resize_median_ms", "median_len"):
            row[k] = round(_median([r[k] for r in results]), 3)
    peak = _peak_for(row, peak_table)
    row["peak_gflops"] = peak
    row["peak_fraction"] = None if not peak else round(row["gflops"] / peak, 3)
    return row


def measure_all(
    cards: dict,
    seq_lens=(16, 32, 64, 128),
    threads=(1, 2),
    num_runs: int = 50,
    warmup_runs: int = 5,
    real_lengths=None,
    real_runs: int = 5,
    peaks=None,
    rounds: int = 3,
    log=print,
) -> list[dict]:
    """Time every engine of ``cards`` at every length and thread count (fresh process per measurement).

    Args:
        cards: from :func:`export_all`, ``{(model, runtime, variant): card}``.
        seq_lens: fixed lengths (tokens).
        threads: thread counts.
        num_runs, warmup_runs: timed and untimed calls per fixed-length measurement.
        real_lengths: real-traffic lengths (:func:`refbert_tf.benchmark.traffic.sample_lengths`); None: none.
        real_runs: runs per real-traffic input (its time is their median).
        peaks: rows of :func:`measure_peaks` (None: no peak fractions).
        rounds: passes over every cell; an engine's figures are the medians over its rounds (one process's median
            moves from process to process: docs/benchmarks.md), and each round starts the alternation one cell later.

    Returns:
        rows ``{model, runtime, variant, seq_len (int or "real"), threads, size_mb, init_ms, median_ms, p90_ms,
        p99_ms, peak_mem_mb, model_mem_mb, dev_metric, dev_metric_name, flops, gflops, peak_gflops,
        peak_fraction, rounds_median_ms}`` (+ ``first_median_ms, resize_median_ms, median_len`` for real traffic);
        times in ms,
        sizes and memory in MB (2**20 bytes), FLOPs per inference (mean over inputs for real traffic).
    """

    peak_table = {(p["probe"], p.get("variant", "float32"), p["threads"]): p["median_gflops"] for p in peaks or []}
    cells = [(n, t) for n in list(seq_lens) + ([REAL] if real_lengths else []) for t in threads]
    engines = list(cards)
    measured = {}  # (cell index, engine) -> one result per round
    for round_index in range(max(rounds, 1)):
        for i, (seq_len, n_threads) in enumerate(cells):
            for key in engine_order(engines, i + round_index):
                model, runtime, variant = key
                lengths = list(real_lengths) if seq_len == REAL else None
                r = benchmark_tflite(
                    cards[key]["path"],
                    seq_len=128 if seq_len == REAL else seq_len,
                    threads=n_threads,
                    num_runs=real_runs if lengths else num_runs,
                    warmup_runs=warmup_runs,
                    vocab_size=cards[key].get("vocab_size") or 30522,
                    runtime=runtime,
                    lengths=lengths,
                )
                measured.setdefault((i, key), []).append(r)
                log(
                    f"round {round_index + 1} {model:>16} {runtime:>11} {variant:>12} seq {seq_len!s:>4} "
                    f"x{n_threads}: {r['median_ms']:8.2f} ms median"
                )
    rows = []
    for (i, key), results in measured.items():
        seq_len, n_threads = cells[i]
        rows.append(_row(key, cards[key], seq_len, n_threads, results, real_lengths, peak_table))
    return rows


def measure_bank_cost(
    cards: dict, real_lengths=None, seq_lens=(16, 128), variants=("float32", "dynamic_int8"), threads=(1,), log=print
) -> list[dict]:
    """The bank's cost measured in pairs (:mod:`refbert_tf.benchmark.paired`): the RefBERT student against itself
    without its bank and against the vanilla student, both in one process, on real-traffic lengths and on 20
    inputs at each fixed length.

    Returns:
        rows ``{"variant", "seq_len", "threads", "against", "ratio_median", "ratio_p10", "ratio_p90",
        "median_ms_refbert", "median_ms_other", "count"}``; ``ratio_median`` - 1 is the bank's cost.
    """
    from refbert_tf.benchmark.paired import paired_benchmark  # lazy: keeps the import graph small

    rows = []
    inputs = [(n, [n] * 20) for n in seq_lens] + ([(REAL, list(real_lengths))] if real_lengths else [])
    for variant in variants:
        ref = cards.get(("refbert", "litert", variant))
        for against in ("refbert_no_bank", "vanilla"):
            other = cards.get((against, "litert", variant))
            if ref is None or other is None:
                continue
            for seq_len, lengths in inputs:
                for n_threads in threads:
                    r = paired_benchmark(ref["path"], other["path"], lengths, threads=n_threads)
                    row = {"variant": variant, "seq_len": seq_len, "threads": n_threads, "against": against}
                    row.update({k: r[k] for k in ("ratio_median", "ratio_p10", "ratio_p90", "count")})
                    row.update(median_ms_refbert=r["median_ms_a"], median_ms_other=r["median_ms_b"])
                    rows.append(row)
                    log(
                        f"bank cost {variant:>12} seq {seq_len!s:>4} x{n_threads} vs {against}: "
                        f"{100 * (r['ratio_median'] - 1):+.1f}%"
                    )
    return rows


def run_suite(
    task: str,
    paths: dict,
    tflite_dir,
    variants,
    seq_lens=(16, 32, 64, 128),
    threads=(1, 2),
    glue_dir=None,
    num_runs: int = 50,
    models=MODELS,
    reuse: bool = True,
    log=print,
    onnx_variants=("float32", "dynamic_int8"),
    real_traffic: int = 200,
    real_runs: int = 5,
    seed: int = 0,
    rounds: int = 3,
) -> dict:
    """:func:`export_all`, the peaks, :func:`measure_all`, the peaks again: the content of ``results/benchmark.json``.

    Args:
        real_traffic: dev examples sampled for the real-traffic rows (0: none).
        seed: the sample's seed.
        (others: see :func:`export_all` and :func:`measure_all`.)

    Returns:
        ``{"rows": [...], "peaks": {"before": [...], "after": [...]}, "real_lengths": [...], "parity": {...},
        "bank_cost_paired": [...]}`` (:func:`measure_bank_cost`).
    """
    from refbert_tf.benchmark.traffic import sample_lengths  # lazy: keeps the import graph small

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cards = export_all(
        task, paths, tflite_dir, variants, glue_dir, models=models, reuse=reuse, log=log, onnx_variants=onnx_variants
    )
    task_name = get_task(task).name
    real = None
    if real_traffic:
        path = Path(tflite_dir) / f"{task_name}_dev_lengths.json"
        if path.is_file():
            real = sample_lengths(json.loads(path.read_text(encoding="utf-8"))["lengths"], real_traffic, seed)
        else:
            log(f"no {path} (the teacher's export writes it): no real-traffic rows")
    before = measure_peaks(threads, log=log)
    rows = measure_all(
        cards, seq_lens, threads, num_runs, real_lengths=real, real_runs=real_runs, peaks=before, log=log
    )
    paired = measure_bank_cost(cards, real, log=log)
    after = measure_peaks(threads, log=log)
    parity = {
        f"{m}/{v}": {**card["parity"], "size_mb": card["size_mb"]}
        for (m, runtime, v), card in cards.items()
        if runtime == "onnxruntime"
    }
    return {
        "rows": rows,
        "peaks": {"before": before, "after": after},
        "real_lengths": real,
        "parity": parity,
        "bank_cost_paired": paired,
    }
