"""Size x latency x accuracy of exported models against a baseline, each at its own tokenization's lengths.

The curve behind ``recipes/benchmark_curve.py``: students of other vocabularies and widths (mixed-vocabulary
distillation, Zhao et al. 2021) next to the model a user would otherwise ship (the teacher). A smaller vocabulary
splits words into more pieces, so its inputs are longer: "real traffic" is timed for every model at the packed
lengths its *own* vocabulary gives the same sampled dev examples (:func:`refbert_tf.benchmark.traffic.sample_lengths`
with one seed picks the same examples for every model), beside a fixed length. Every file is timed in a fresh
process (:func:`refbert_tf.benchmark.desktop.benchmark_tflite`), the models in alternating order round after
round, medians over the rounds. Size is the file's (MB, bank and metadata included); the dev metric is the card's,
measured through the LiteRT interpreter at export.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from refbert_tf.benchmark.desktop import benchmark_tflite
from refbert_tf.benchmark.suite import engine_order

# the targets of a small student against the teacher (smaller, faster at real traffic, share of its dev metric)
TARGETS = {"smaller": 4.0, "faster": 3.0, "metric_share": 0.98}


def model_label(card: dict) -> str:
    """A row's name from its card: model, vocabulary size, student preset and, for factorised embeddings, their
    width E (read from the ``student.json`` of the card's ``source_student`` when it is there), e.g.
    ``refbert v8192 tinybert4 e128``."""
    import json

    shape = width = None
    student_card = Path(card.get("source_student") or "/nonexistent") / "student.json"
    if student_card.is_file():
        config = json.loads(student_card.read_text(encoding="utf-8")).get("config", {})
        shape, width = config.get("student"), config.get("embedding_dim")
    return " ".join(str(x) for x in (card["model"], f"v{card['vocab_size']}", shape, width and f"e{width}") if x)


def own_lengths(model_path, glue_dir, num: int, seed: int = 0) -> list[int]:
    """Packed dev lengths of ``num`` sampled dev examples under the model's own vocabulary (its card's)."""
    from refbert_tf.benchmark.traffic import dev_lengths, sample_lengths  # lazy: TensorFlow (tokenizer)
    from refbert_tf.predict import load_predictor

    _, tokenizer, card = load_predictor(model_path)
    return sample_lengths(dev_lengths(card["task"], tokenizer, card["max_seq_len"], glue_dir), num, seed)


def measure_curve(model_paths, glue_dir=None, seq_len: int = 128, real: int = 200, rounds: int = 3,
                  threads: int = 1, num_runs: int = 30, log=print) -> list[dict]:  # fmt: skip
    """Time every model at ``seq_len`` and at its own real-traffic lengths.

    Args:
        model_paths: ``.tflite`` files with their cards (the first is the baseline of :func:`curve_table`).
        glue_dir: GLUE data (the dev texts of the cards' task).
        seq_len: the fixed length (tokens).
        real: sampled dev examples for real traffic (0: none).
        rounds: passes over all models (odd rounds in reverse order); medians over them.
        threads: interpreter threads.
        num_runs: timed runs per fixed-length measurement.

    Returns:
        one row per model: ``path``, ``label``, ``task``, ``size_mb``, ``vocab_size``, ``metric`` (name) and
        ``dev_metric``, ``ms_fixed`` and ``ms_real`` (medians over rounds of each round's median, ms),
        ``real_p90_ms``, ``median_len`` (tokens), ``peak_mem_mb``.

    Raises:
        FileNotFoundError / CardNotFoundError: a model or card is missing. RuntimeError: a benchmark child failed.
    """
    from refbert_tf.export import read_card  # lazy: TensorFlow-free, but keeps this module light
    from refbert_tf.tasks import get_task

    rows = []
    for path in model_paths:
        card = read_card(path)
        task = get_task(card["task"])
        rows.append({
            "path": str(path), "label": model_label(card), "task": task.name, "size_mb": card["size_mb"],
            "vocab_size": card["vocab_size"], "metric": task.main_metric,
            "dev_metric": card["dev_metrics"][task.main_metric], "variant": card["variant"],
            "lengths": own_lengths(path, glue_dir, real) if real else None, "fixed": [], "real": [], "real_p90": [],
            "median_len": None, "peak_mem_mb": [],
        })  # fmt: skip
    for r in range(rounds):
        for row in engine_order(rows, r):
            fixed = benchmark_tflite(row["path"], seq_len, threads, num_runs, vocab_size=row["vocab_size"])
            row["fixed"].append(fixed["median_ms"])
            row["peak_mem_mb"].append(fixed["peak_mem_mb"])
            if row["lengths"]:
                traffic = benchmark_tflite(row["path"], threads=threads, vocab_size=row["vocab_size"],
                                           lengths=row["lengths"])  # fmt: skip
                row["real"].append(traffic["median_ms"])
                row["real_p90"].append(traffic["p90_ms"])
                row["median_len"] = traffic["median_len"]
            log(f"round {r + 1}/{rounds} {row['label']}: {row['fixed'][-1]:.2f} ms at {seq_len}"
                + (f", {row['real'][-1]:.2f} ms real" if row["lengths"] else ""))  # fmt: skip
    out = []
    for row in rows:
        real_ms = statistics.median(row["real"]) if row["real"] else None
        out.append({
            **{k: row[k] for k in ("path", "label", "task", "size_mb", "vocab_size", "metric", "dev_metric", "variant",
                                   "median_len")},
            "seq_len": seq_len, "threads": threads, "ms_fixed": statistics.median(row["fixed"]), "ms_real": real_ms,
            "real_p90_ms": statistics.median(row["real_p90"]) if row["real_p90"] else None,
            "peak_mem_mb": max(row["peak_mem_mb"]),
        })  # fmt: skip
    return out


def curve_table(rows: list[dict]) -> list[dict]:
    """Each row with its ratios against the first (the baseline): ``smaller`` (size), ``faster_fixed``,
    ``faster_real``, ``metric_share`` (dev metric / the baseline's) and ``meets_targets`` (:data:`TARGETS`, real
    traffic; the fixed length when there is none).

    Raises:
        ValueError: no rows, or rows of different tasks.
    """
    if not rows:
        raise ValueError("curve_table: no rows")
    if len({r["task"] for r in rows}) != 1:
        raise ValueError(f"curve_table: rows of several tasks {sorted({r['task'] for r in rows})}")
    base = rows[0]
    table = []
    for r in rows:
        faster_real = base["ms_real"] / r["ms_real"] if r.get("ms_real") and base.get("ms_real") else None
        faster = faster_real if faster_real is not None else base["ms_fixed"] / r["ms_fixed"]
        row = {**r, "smaller": base["size_mb"] / r["size_mb"], "faster_fixed": base["ms_fixed"] / r["ms_fixed"],
               "faster_real": faster_real, "metric_share": r["dev_metric"] / base["dev_metric"]}  # fmt: skip
        row["meets_targets"] = bool(
            row["smaller"] >= TARGETS["smaller"]
            and faster >= TARGETS["faster"]
            and row["metric_share"] >= TARGETS["metric_share"]
        )
        table.append(row)
    return table


def curve_markdown(table: list[dict], command: str = "") -> str:
    """The curve as a Markdown table (the first row is the baseline)."""
    base = table[0]
    lines = [
        f"Task {base['task']}, LiteRT, {base['threads']} thread(s), batch 1; baseline: {base['label']}. Targets "
        f"against it: {TARGETS['smaller']:g}x smaller, {TARGETS['faster']:g}x faster at real traffic, "
        f"{100 * TARGETS['metric_share']:g}% of its dev {base['metric']}.",
        "",
        f"| model | variant | size MB | dev {base['metric']} | ms at {base['seq_len']} | ms real (median len) | "
        "smaller | faster (real) | faster (fixed) | share of metric | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        real = f"{r['ms_real']:.2f} ({r['median_len']})" if r.get("ms_real") else "-"
        faster_real = f"{r['faster_real']:.2f}x" if r.get("faster_real") else "-"
        lines.append(
            f"| {r['label']} | {r['variant']} | {r['size_mb']:.2f} | {r['dev_metric']:.2f} | {r['ms_fixed']:.2f} | "
            f"{real} | {r['smaller']:.2f}x | {faster_real} | {r['faster_fixed']:.2f}x | "
            f"{100 * r['metric_share']:.1f}% | {'met' if r['meets_targets'] else '-'} |"
        )
    if command:
        lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def curve_plot(table: list[dict], path) -> Path:
    """Two panels, dev metric against size (MB) and against real-traffic latency (ms; fixed length without it),
    one labelled point per model, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refbert_tf.io_utils import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, name in ((axes[0], "size_mb", "file size (MB)"), (axes[1], "latency", "latency (ms)")):
        for r in table:
            x = r[key] if key == "size_mb" else (r.get("ms_real") or r["ms_fixed"])
            ax.scatter([x], [r["dev_metric"]], color="tab:red" if r is table[0] else "tab:blue")
            ax.annotate(r["label"], (x, r["dev_metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(name)
        ax.set_ylabel(f"dev {table[0]['metric']}")
        ax.grid(alpha=0.3)
    axes[1].set_title("real traffic" if table[0].get("ms_real") else f"{table[0]['seq_len']} tokens", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
