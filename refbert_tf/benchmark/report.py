"""Benchmark report: one markdown table, the headline ratios, and an accuracy-vs-latency (Pareto) plot.

Works on rows of the schema written by :mod:`refbert_tf.benchmark.suite` (desktop) or
:mod:`refbert_tf.benchmark.mobile` (``benchmark_model`` logs): ``model, variant, seq_len, threads, size_mb,
median_ms, ...`` plus ``dev_metric`` where measured.
"""

from __future__ import annotations

import os

from refbert_tf.io_utils import atomic_path


def _find(rows, model, variant, seq_len, threads):
    for r in rows:
        if (r["model"], r["variant"], r["seq_len"], r["threads"]) == (model, variant, seq_len, threads):
            return r
    return None


def headline(rows: list[dict], seq_len: int = 128, threads: int = 1) -> dict:
    """The issue's comparisons at ``seq_len`` / ``threads``, from measured rows only (None where missing).

    Returns:
        ``{"vs_bert_base": {variant: {"smaller": x, "faster": x}}`` (RefBERT vs the float32 BERT-base shape),
        ``"bank_share": {variant: {"size": fraction, "latency": fraction}}`` (RefBERT vs the same student without
        its bank: (with - without) / with)}``.
    """
    out = {"seq_len": seq_len, "threads": threads, "vs_bert_base": {}, "bank_share": {}}
    base = _find(rows, "bert_base_shape", "float32", seq_len, threads)
    for variant in sorted({r["variant"] for r in rows}):
        ref = _find(rows, "refbert", variant, seq_len, threads)
        if ref and base:
            out["vs_bert_base"][variant] = {
                "smaller": round(base["size_mb"] / ref["size_mb"], 2),
                "faster": round(base["median_ms"] / ref["median_ms"], 2),
            }
        plain = _find(rows, "refbert_no_bank", variant, seq_len, threads)
        if ref and plain:
            out["bank_share"][variant] = {
                "size": round((ref["size_mb"] - plain["size_mb"]) / ref["size_mb"], 4),
                "latency": round((ref["median_ms"] - plain["median_ms"]) / ref["median_ms"], 4),
            }
    return out


def markdown_table(rows: list[dict], command: str = "") -> str:
    """All rows as one markdown table, sorted by model, variant, sequence length, threads, plus the headline."""
    order = {m: i for i, m in enumerate(("bert_base_shape", "teacher", "vanilla", "refbert", "refbert_no_bank"))}
    rows = sorted(rows, key=lambda r: (order.get(r["model"], 99), r["variant"], r["seq_len"], r["threads"]))
    lines = [
        "| model | variant | seq | threads | size MB | init ms | median ms | p90 ms | p99 ms | peak MB | dev |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dev = "-" if r.get("dev_metric") is None else f"{r['dev_metric']:.2f}"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['seq_len']} | {r['threads']} | {r['size_mb']:.2f} | "
            f"{r['init_ms']:.1f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['peak_mem_mb']:.0f} | {dev} |"
        )
    h = headline(rows)
    lines += ["", f"At sequence {h['seq_len']}, {h['threads']} thread (medians of this run):", ""]
    for variant, v in h["vs_bert_base"].items():
        lines.append(f"- RefBERT {variant} vs BERT-base-shape float32: {v['smaller']}x smaller, {v['faster']}x faster")
    for variant, v in h["bank_share"].items():
        lines.append(
            f"- bank share of the RefBERT {variant} file: {100 * v['size']:.1f}% of size, "
            f"{100 * v['latency']:.1f}% of latency"
        )
    if command:
        lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict], path: str | os.PathLike, seq_len: int = 128, threads: int = 1) -> None:
    """Dev metric against median latency (log scale) for every (model, variant) with a dev metric, as a PNG.

    Raises:
        ValueError: no row at ``seq_len`` / ``threads`` has a dev metric.
    """
    import matplotlib  # lazy: the plotting backend is chosen only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend

    points = [
        r for r in rows if r["seq_len"] == seq_len and r["threads"] == threads and r.get("dev_metric") is not None
    ]
    if not points:
        raise ValueError(f"no measured dev metric at seq_len {seq_len}, threads {threads}: nothing to plot")
    markers = {"float32": "o", "dynamic_int8": "s", "full_int8": "^", "float16": "D"}
    colors = {"teacher": "tab:blue", "vanilla": "tab:orange", "refbert": "tab:green"}
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for r in points:
        ax.scatter(
            r["median_ms"],
            r["dev_metric"],
            marker=markers.get(r["variant"], "x"),
            color=colors.get(r["model"], "tab:gray"),
            s=30 + 4 * r["size_mb"] ** 0.5 * 4,
            alpha=0.8,
            label=f"{r['model']} {r['variant']}",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"median latency, ms (batch 1, sequence {seq_len}, {threads} thread, LiteRT on this CPU)")
    ax.set_ylabel(f"dev {points[0].get('dev_metric_name', 'metric')} (%)")
    ax.set_title("Accuracy vs latency (marker area ~ file size)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
