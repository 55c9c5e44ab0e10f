"""The side-by-side benchmark behind ``recipes/benchmark.py``: every model, every runtime and variant, one run.

:func:`refbert_tf.benchmark.exports.export_all` exports every model (``MODELS``) in every TFLite variant and, for
the teacher and the students, to ONNX. :func:`measure_all` then times every (model, runtime, variant) "engine" in a fresh process at every sequence
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
import statistics
from pathlib import Path

from refbert_tf.benchmark.desktop import benchmark_tflite
from refbert_tf.benchmark.exports import MODELS, export_all
from refbert_tf.tasks import get_task

REAL = "real"  # the seq_len of real-traffic rows


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


def _row(key, card, seq_len, n_threads, results, real_lengths, peak_table) -> dict:
    """One benchmark row from the rounds' results of one engine in one cell: medians over the rounds."""
    from refbert_tf.benchmark.flops import Architecture, inference_flops  # lazy: keeps the import graph small

    model, runtime, variant = key
    metric_name = get_task(card["task"]).main_metric
    med = {
        k: round(statistics.median([r[k] for r in results]), 3) for k in ("median_ms", "p90_ms", "p99_ms", "init_ms")
    }
    arch = Architecture(**card["arch"])
    if seq_len == REAL:
        flops = sum(inference_flops(arch, n) for n in real_lengths) / len(real_lengths)
        seconds = statistics.median([r["total_ms"] for r in results]) / 1000 / len(real_lengths)
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
            row[k] = round(statistics.median([r[k] for r in results]), 3)
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
