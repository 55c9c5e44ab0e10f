"""Benchmark report: one markdown table, the headline ratios, and an accuracy-vs-latency (Pareto) plot.

Works on rows of the schema written by :mod:`refbert_tf.benchmark.suite` (desktop) or
:mod:`refbert_tf.benchmark.mobile` (``benchmark_model`` logs): ``model, variant, seq_len, threads, size_mb,
median_ms, ...`` plus ``dev_metric`` where measured.
"""

from __future__ import annotations

import os

from refbert_tf.io_utils import atomic_path

ORDER = ("bert_base_shape", "teacher", "vanilla", "refbert", "refbert_no_bank")


def _find(rows, model, variant, seq_len, threads, runtime="litert"):
    for r in rows:
        key = (r["model"], r.get("runtime", "litert"), r["variant"], r["seq_len"], r["threads"])
        if key == (model, runtime, variant, seq_len, threads):
            return r
    return None


def _seq_key(seq_len):
    return 10**6 if seq_len == "real" else int(seq_len)


def _cells(rows):
    """Sorted (runtime, variant, seq_len, threads) combinations present in ``rows``."""
    keys = {(r.get("runtime", "litert"), r["variant"], r["seq_len"], r["threads"]) for r in rows}
    return sorted(keys, key=lambda k: (k[0], k[1], _seq_key(k[2]), k[3]))


def ratios(rows: list[dict]) -> dict:
    """The comparisons of one benchmark run, from its measured rows only (median latencies).

    Returns:
        ``{"student_vs_teacher": [...], "litert_vs_onnxruntime": [...], "bank_cost": [...]}``, lists of dicts:

        - student vs teacher, per student, runtime, variant, length, threads: ``smaller`` (teacher size / student
          size), ``faster`` (teacher ms / student ms), ``metric_delta`` (student - teacher dev metric, points);
        - LiteRT vs ONNX Runtime, per model, variant, length, threads: ``onnxruntime_over_litert`` (ORT ms / LiteRT
          ms: above 1, LiteRT is faster);
        - the bank's cost, per runtime, variant, length, threads: ``vs_vanilla`` ((RefBERT ms - vanilla ms) /
          vanilla ms) and, where measured, ``vs_no_bank`` (the same student without its bank).
    """
    out = {"student_vs_teacher": [], "litert_vs_onnxruntime": [], "bank_cost": []}
    for runtime, variant, seq_len, threads in _cells(rows):
        cell = dict(variant=variant, seq_len=seq_len, threads=threads)
        teacher = _find(rows, "teacher", variant, seq_len, threads, runtime)
        for student in ("vanilla", "refbert"):
            s = _find(rows, student, variant, seq_len, threads, runtime)
            if teacher and s:
                delta = None
                if s.get("dev_metric") is not None and teacher.get("dev_metric") is not None:
                    delta = round(s["dev_metric"] - teacher["dev_metric"], 2)
                out["student_vs_teacher"].append(
                    {
                        "student": student,
                        "runtime": runtime,
                        **cell,
                        "smaller": round(teacher["size_mb"] / s["size_mb"], 2),
                        "faster": round(teacher["median_ms"] / s["median_ms"], 2),
                        "metric_delta": delta,
                    }
                )
        ref, van = (_find(rows, m, variant, seq_len, threads, runtime) for m in ("refbert", "vanilla"))
        plain = _find(rows, "refbert_no_bank", variant, seq_len, threads, runtime)
        if ref and (van or plain):
            out["bank_cost"].append(
                {
                    "runtime": runtime,
                    **cell,
                    "vs_vanilla": round((ref["median_ms"] - van["median_ms"]) / van["median_ms"], 4) if van else None,
                    "vs_no_bank": (
                        round((ref["median_ms"] - plain["median_ms"]) / plain["median_ms"], 4) if plain else None
                    ),
                }
            )
        if runtime == "litert":
            for model in ORDER:
                lite = _find(rows, model, variant, seq_len, threads, "litert")
                ort = _find(rows, model, variant, seq_len, threads, "onnxruntime")
                if lite and ort:
                    out["litert_vs_onnxruntime"].append(
                        {
                            "model": model,
                            **cell,
                            "onnxruntime_over_litert": round(ort["median_ms"] / lite["median_ms"], 3),
                        }
                    )
    return out


def headline(rows: list[dict], seq_len: int = 128, threads: int = 1) -> dict:
    """The issue's comparisons at ``seq_len`` / ``threads``, from measured rows only (None where missing).

    Returns:
        ``{"vs_bert_base": {variant: {"smaller": x, "faster": x}}`` (RefBERT vs the float32 BERT-base shape),
        ``"bank_share": {variant: {"size": fraction, "latency": fraction}}`` (RefBERT vs the same student without
        its bank: (with - without) / with)}``.
    """
    out = {"seq_len": seq_len, "threads": threads, "vs_bert_base": {}, "bank_share": {}}
    base = _find(rows, "bert_base_shape", "float32", seq_len, threads)
    for variant in sorted({r["variant"] for r in rows if r.get("runtime", "litert") == "litert"}):
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


def _fmt(value, spec=".2f", none="-"):
    return none if value is None else format(value, spec)


def markdown_table(rows: list[dict], command: str = "") -> str:
    """All rows as one markdown table (sorted by model, runtime, variant, length, threads), plus the headline."""
    order = {m: i for i, m in enumerate(ORDER)}
    rows = sorted(
        rows,
        key=lambda r: (
            order.get(r["model"], 99),
            r.get("runtime", "litert"),
            r["variant"],
            _seq_key(r["seq_len"]),
            r["threads"],
        ),
    )
    lines = [
        "| model | runtime | variant | seq | threads | size MB | init ms | median ms | p90 ms | p99 ms | peak MB "
        "| GFLOP/s | % of peak | dev |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fraction = r.get("peak_fraction")
        lines.append(
            f"| {r['model']} | {r.get('runtime', 'litert')} | {r['variant']} | {r['seq_len']} | {r['threads']} | "
            f"{r['size_mb']:.2f} | {r['init_ms']:.1f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['peak_mem_mb']:.0f} | {_fmt(r.get('gflops'), '.1f')} | "
            f"{_fmt(None if fraction is None else 100 * fraction, '.0f')} | {_fmt(r.get('dev_metric'))} |"
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


def ratios_markdown(rows: list[dict]) -> str:
    """The three ratio tables of :func:`ratios` as markdown."""
    r = ratios(rows)
    lines = ["## Student vs teacher (the model a user would otherwise ship)", ""]
    lines += [
        "| student | runtime | variant | seq | threads | smaller | faster | dev metric delta |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["student_vs_teacher"]:
        lines.append(
            f"| {x['student']} | {x['runtime']} | {x['variant']} | {x['seq_len']} | {x['threads']} | "
            f"{x['smaller']}x | {x['faster']}x | {_fmt(x['metric_delta'], '+.2f')} |"
        )
    lines += ["", "## LiteRT vs ONNX Runtime (ONNX Runtime ms / LiteRT ms; above 1: LiteRT is faster)", ""]
    lines += ["| model | variant | seq | threads | ORT / LiteRT |", "|---|---|---|---|---|"]
    for x in r["litert_vs_onnxruntime"]:
        lines.append(
            f"| {x['model']} | {x['variant']} | {x['seq_len']} | {x['threads']} | {x['onnxruntime_over_litert']:.2f} |"
        )
    lines += ["", "## The bank's cost (RefBERT latency over the vanilla student's, and over itself without bank)", ""]
    lines += ["| runtime | variant | seq | threads | vs vanilla | vs no bank |", "|---|---|---|---|---|---|"]
    for x in r["bank_cost"]:
        vv = None if x["vs_vanilla"] is None else 100 * x["vs_vanilla"]
        vn = None if x["vs_no_bank"] is None else 100 * x["vs_no_bank"]
        lines.append(
            f"| {x['runtime']} | {x['variant']} | {x['seq_len']} | {x['threads']} | {_fmt(vv, '+.1f')}% | "
            f"{_fmt(vn, '+.1f')}% |"
        )
    return "\n".join(lines) + "\n"


def markdown_report(result: dict, command: str = "", machine: str = "") -> str:
    """The whole run as markdown: machine and peaks, every row, the ratios, ONNX parity.

    Args:
        result: ``{"rows", "peaks": {"before", "after"}, "real_lengths", "parity"}`` (:func:`run_suite`).
        command: the command line that produced it.
        machine: a one-line description of the CPU.
    """
    lines = ["# Benchmark: one run, every model, runtime and variant", ""]
    if machine:
        lines += [f"Machine: {machine}", ""]
    real = result.get("real_lengths")
    if real:
        ordered = sorted(real)
        lines += [
            f"Real traffic: {len(real)} dev examples at their own packed lengths (median "
            f"{ordered[len(ordered) // 2]}, longest {ordered[-1]} tokens), each run 5 times (its median), "
            "median and p90 over the examples.",
            "",
        ]
    lines += ["## Matrix-multiply peak of this machine (GFLOP/s, before / after the models)", ""]
    lines += ["| probe | variant | threads | before | after |", "|---|---|---|---|---|"]
    peaks = result.get("peaks") or {}
    after = {(p["probe"], p.get("variant", "float32"), p["threads"]): p for p in peaks.get("after", [])}
    for p in peaks.get("before", []):
        key = (p["probe"], p.get("variant", "float32"), p["threads"])
        a = after.get(key, {}).get("median_gflops")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {p['median_gflops']:.1f} | {_fmt(a, '.1f')} |")
    lines += ["", "## Every measurement", "", markdown_table(result["rows"]), ratios_markdown(result["rows"])]
    if result.get("bank_cost_paired"):
        lines += [
            "## The bank's cost, measured in pairs (both models in one process, alternating on the same inputs)",
            "",
            "| variant | seq | threads | against | RefBERT ms | other ms | cost (median) | p10 .. p90 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in result["bank_cost_paired"]:
            lines.append(
                f"| {x['variant']} | {x['seq_len']} | {x['threads']} | {x['against']} | {x['median_ms_refbert']:.3f} | "
                f"{x['median_ms_other']:.3f} | {100 * (x['ratio_median'] - 1):+.1f}% | "
                f"{100 * (x['ratio_p10'] - 1):+.1f}% .. {100 * (x['ratio_p90'] - 1):+.1f}% |"
            )
        lines.append("")
    if result.get("parity"):
        lines += ["## ONNX parity with the Keras model (checked before any timing)", ""]
        lines += [
            "| model/variant | examples | max abs logit diff | same prediction | size MB |",
            "|---|---|---|---|---|",
        ]
        for name, p in result["parity"].items():
            lines.append(
                f"| {name} | {p['num_examples']} | {p['max_abs_diff']:.2g} | "
                f"{100 * p['prediction_agreement']:.1f}% | {p['size_mb']:.2f} |"
            )
        lines.append("")
    if command:
        lines += [f"Command: `{command}`", ""]
    if result.get("paired_command"):
        lines += [f"Paired bank cost: `{result['paired_command']}`", ""]
    return "\n".join(lines)


def pareto_plot(rows: list[dict], path: str | os.PathLike, seq_len: int = 128, threads: int = 1) -> None:
    """Dev metric against median latency (log scale) for every (model, variant) with a dev metric, as a PNG.

    Raises:
        ValueError: no row at ``seq_len`` / ``threads`` has a dev metric.
    """
    import matplotlib  # lazy: the plotting backend is chosen only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend

    points = [
        r
        for r in rows
        if r["seq_len"] == seq_len
        and r["threads"] == threads
        and r.get("dev_metric") is not None
        and r.get("runtime", "litert") == "litert"
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
