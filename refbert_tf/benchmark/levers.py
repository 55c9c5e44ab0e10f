"""Levers on LiteRT latency, each measured against a baseline of the same student in the same run.

Every lever is one change to how the same Keras student is exported or run; :func:`export_levers` writes one file
per (lever, variant) and :func:`measure_levers` times them all in fresh processes, alternating their order from one
(length, threads) cell to the next, at the given lengths. A lever is kept in the product only where it wins; the
ones that lose are written down too (``docs/benchmarks.md``).

``LEVERS`` (name: what changes):

* ``old_graph``: the graph as Keras traces it, without :mod:`refbert_tf.export.graph_changes` (the ``SELECT_V2``
  pair around each attention softmax and keras-hub's position ``BROADCAST_TO``, run by LiteRT's reference
  kernels).
* ``default``: the export path of the product (graph changes on, dynamic shape, per-channel int8 weights).
* ``fixed_shape``: the same graph with a fixed [1, T] input shape (one file per length; no resize at run time).
* ``latest_features``: the default file, run with ``experimental_default_delegate_latest_features`` (XNNPACK's
  flag-protected features).
* ``per_tensor_weights``: int8 weights with one scale per tensor instead of per output channel (int8 variants).
"""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path

import numpy as np

LEVERS = ("old_graph", "default", "fixed_shape", "latest_features", "per_tensor_weights")


def _export_lever_files(student_dir: str, out_dir: str, variants, seq_lens) -> dict:
    """Child process: write every lever's files; returns ``{(lever, variant, seq_len or None): path}``."""
    from refbert_tf.export import convert, export_saved_model  # lazy: TensorFlow
    from refbert_tf.models.student import load_student  # lazy: as above

    student, meta = load_student(student_dir)
    max_len = meta.get("max_seq_len")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}

    def write(name, saved, variant, **options):
        path = out / f"{name}_{variant}.tflite"
        path.write_bytes(convert(saved, variant, None, **options)[0])
        return str(path)

    with tempfile.TemporaryDirectory() as tmp:
        default = export_saved_model(student, Path(tmp) / "default", max_len)
        old = export_saved_model(student, Path(tmp) / "old", max_len, graph_changes=False)
        for variant in variants:
            files[("default", variant, None)] = write("default", default, variant)
            files[("latest_features", variant, None)] = files[("default", variant, None)]
            files[("old_graph", variant, None)] = write("old_graph", old, variant)
            if "int8" in variant:
                files[("per_tensor_weights", variant, None)] = write(
                    "per_tensor_weights", default, variant, per_channel=False
                )
        for n in seq_lens:
            fixed = export_saved_model(student, Path(tmp) / f"fixed_{n}", max_len, input_length=n)
            for variant in variants:
                files[("fixed_shape", variant, n)] = write(f"fixed_shape_{n}", fixed, variant)
    return files


def export_levers(student_dir, out_dir, variants=("float32", "dynamic_int8"), seq_lens=(16, 128)) -> dict:
    """Write every lever's files for one student (in a child process, as every export).

    Args:
        variants: TFLite variants without calibration: ``float32``, ``dynamic_int8``, ``float16``.

    Returns:
        ``{(lever, variant, seq_len or None): path}``; ``seq_len`` is set only for ``fixed_shape`` files.

    Raises:
        ValueError: ``full_int8`` (it needs a representative dataset; not a lever study here).
    """
    if "full_int8" in variants:
        raise ValueError("levers are measured on variants without calibration: float32, dynamic_int8, float16")
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_export_lever_files, (str(student_dir), str(out_dir), list(variants), list(seq_lens)))


def measure_levers(
    files: dict, seq_lens=(16, 128), threads=(1,), num_runs: int = 50, rounds: int = 3, log=print
) -> list[dict]:
    """Time every lever file at every length and thread count, alternating the order from cell to cell, in
    ``rounds`` passes (each round starts the alternation one cell later); figures are medians over the rounds.

    Returns:
        rows ``{"lever", "variant", "seq_len", "threads", "median_ms", "p90_ms", "size_mb", "vs_default"}`` with
        ``vs_default`` = lever ms / default ms of the same cell (below 1: the lever wins).
    """
    from refbert_tf.benchmark.desktop import benchmark_tflite  # lazy: keeps the import graph small
    from refbert_tf.benchmark.suite import engine_order  # lazy: as above

    cells = [(n, t) for n in seq_lens for t in threads]
    measured = {}
    for round_index in range(max(rounds, 1)):
        for i, (n, t) in enumerate(cells):
            engines = [
                (lever, variant)
                for lever in LEVERS
                for variant in sorted({k[1] for k in files})
                if (lever, variant, n if lever == "fixed_shape" else None) in files
            ]
            for lever, variant in engine_order(engines, i + round_index):
                path = files[(lever, variant, n if lever == "fixed_shape" else None)]
                r = benchmark_tflite(
                    path, seq_len=n, threads=t, num_runs=num_runs, latest_features=lever == "latest_features"
                )
                measured.setdefault((n, t, lever, variant), []).append(r)
                log(f"round {round_index + 1} {lever:>20} {variant:>12} seq {n:>3} x{t}: {r['median_ms']:8.2f} ms")
    rows = []
    for (n, t, lever, variant), results in measured.items():
        row = {"lever": lever, "variant": variant, "seq_len": n, "threads": t, "size_mb": results[0]["size_mb"]}
        for k in ("median_ms", "p90_ms"):
            row[k] = round(float(np.median([r[k] for r in results])), 3)
        row["rounds_median_ms"] = [r["median_ms"] for r in results]
        rows.append(row)
    base = {(r["variant"], r["seq_len"], r["threads"]): r["median_ms"] for r in rows if r["lever"] == "default"}
    for r in rows:
        b = base.get((r["variant"], r["seq_len"], r["threads"]))
        r["vs_default"] = round(r["median_ms"] / b, 3) if b else None
    return rows


def levers_markdown(rows: list[dict], command: str = "") -> str:
    """The lever rows as one markdown table (lever ms over the default's, same cell)."""
    lines = [
        "| lever | variant | seq | threads | median ms | p90 ms | size MB | vs default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["variant"], r["seq_len"], r["threads"], LEVERS.index(r["lever"]))):
        vs = "-" if r["vs_default"] is None else f"{r['vs_default']:.3f}"
        lines.append(
            f"| {r['lever']} | {r['variant']} | {r['seq_len']} | {r['threads']} | {r['median_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['size_mb']:.2f} | {vs} |"
        )
    if command:
        lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"
