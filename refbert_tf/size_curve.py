"""Size x accuracy of distilled students over vocabulary size and embedding width, read from result files.

The students of mixed-vocabulary distillation (Zhao et al., "Extremely Small BERT Models from Mixed-Vocabulary
Training", EACL 2021) trade accuracy for file size through the vocabulary (V), the token-embedding width (E,
factorised embeddings as in ALBERT, Lan et al. 2020) and the preset's hidden width. :func:`size_curve` puts the
``distill_glue`` runs that differ in those on one table (file size, Keras and ``.tflite`` dev metric, parameters)
and :func:`size_curve_plot` on one plot. TensorFlow-free.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from refbert_tf.io_utils import atomic_path
from refbert_tf.reports import distill_results

TEACHER_VOCAB_SIZE = 30522  # the default MiniLM teacher's (uncased BERT) vocabulary


def student_vocab_size(result: dict, teacher_vocab_size: int = TEACHER_VOCAB_SIZE) -> int:
    """The vocabulary size of a run's student: the result's ``vocab_size`` (recorded since factorised embeddings
    exist), else the ``--student-vocab-size`` of its recorded command, else ``teacher_vocab_size`` (the run used the
    teacher's vocabulary)."""
    if result.get("vocab_size"):
        return int(result["vocab_size"])
    words = shlex.split(result.get("command", ""))
    for i, word in enumerate(words):
        if word == "--student-vocab-size" and i + 1 < len(words):
            return int(words[i + 1])
        if word.startswith("--student-vocab-size="):
            return int(word.split("=", 1)[1])
    return teacher_vocab_size


def size_curve(result_paths, variant: str = "dynamic_int8", teacher_vocab_size: int = TEACHER_VOCAB_SIZE):
    """One row per ``distill_glue`` result: its student's vocabulary, widths, size and dev metrics.

    Args:
        result_paths: result JSON files of ``recipes/distill_glue.py`` (with an ``export`` entry for the size).
        variant: the exported ``.tflite`` variant whose size (MB, bank and metadata included) and dev metric are
            read.
        teacher_vocab_size: the vocabulary of runs that record none (see :func:`student_vocab_size`).

    Returns:
        ``(rows, markdown)``: rows sorted by size, each with ``run`` (file stem), ``task``, ``model``, ``student``
        (preset), ``vocab_size``, ``embedding_dim`` (E; the hidden width when not factorised), ``num_train``,
        ``metric``, ``teacher`` (the dev metric of the run's teacher, the stage-I teacher for a small vocabulary),
        ``keras``, ``tflite``, ``size_mb``, ``parameters``; and a markdown table.

    Raises:
        ValueError: no path is a ``distill_glue`` result, or a result has no export of ``variant`` (the message
            names the file).
    """
    from refbert_tf.models.presets import STUDENT_PRESETS

    paths = {Path(p).stem: p for p in result_paths}  # to name the file in an error
    rows = []
    for run, r in distill_results(result_paths, "size_curve"):
        exported = {v["variant"]: v for v in (r.get("export") or {}).get("variants", [])}
        if variant not in exported:
            raise ValueError(f"{paths[run]}: no {variant} export (variants: {', '.join(exported) or 'none'})")
        cfg, m = r["config"], r["main_metric"]
        preset = cfg.get("student", "tinybert4")
        rows.append({
            "run": run, "task": r["task"], "model": r["model"], "student": preset,
            "vocab_size": student_vocab_size(r, teacher_vocab_size),
            "embedding_dim": cfg.get("embedding_dim") or STUDENT_PRESETS[preset]["hidden_dim"],
            "num_train": r["num_train"], "metric": m, "teacher": (r.get("teacher_metrics") or {}).get(m),
            "keras": r["metrics"][m], "tflite": exported[variant]["dev_metric"], "size_mb": exported[variant]["size_mb"],
            "parameters": r.get("student_parameters"),
        })  # fmt: skip
    rows.sort(key=lambda row: row["size_mb"])
    lines = [
        f"| run | model | student | V | E | train rows | teacher | Keras | .tflite {variant} | MB | parameters |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        teacher = f"{row['teacher']:.2f}" if row["teacher"] is not None else "-"
        params = f"{row['parameters'] / 1e6:.2f} M" if row["parameters"] else "-"
        lines.append(
            f"| {row['run']} | {row['model']} | {row['student']} | {row['vocab_size']} | {row['embedding_dim']} | "
            f"{row['num_train']} | {teacher} | {row['keras']:.2f} | {row['tflite']:.2f} | {row['size_mb']:.2f} | "
            f"{params} |"
        )
    return rows, "\n".join(lines) + "\n"


def vocabulary_series(rows: list[dict]) -> dict[tuple, list[dict]]:
    """:func:`size_curve`'s rows grouped into vocabulary curves: runs that differ only in the vocabulary size V.

    Returns:
        ``{(model, student, embedding_dim, num_train): rows}``, each list sorted by ``vocab_size``, only the groups
        with at least two vocabulary sizes (a curve, not a point).
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["student"], row["embedding_dim"], row["num_train"]), []).append(row)
    return {
        key: sorted(group, key=lambda row: row["vocab_size"])
        for key, group in groups.items()
        if len({row["vocab_size"] for row in group}) > 1
    }


def size_curve_plot(rows: list[dict], path, target_mb: float | None = None) -> Path:
    """Dev metric (``.tflite``) against file size (MB) of :func:`size_curve`'s rows as a PNG, one series per model
    (vanilla, refbert, ...), each point labelled ``V/E`` (and its training rows when the runs differ in them);
    the runs of one :func:`vocabulary_series` are joined by a line (the vocabulary curve); ``target_mb`` draws a
    vertical line (a size target).

    Raises:
        ValueError: no rows.
    """
    import matplotlib  # lazy: the plotting backend is chosen only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend

    if not rows:
        raise ValueError("size_curve_plot: no rows to plot")
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        marker = "o" if model == "vanilla" else "s"
        ax.scatter([r["size_mb"] for r in mine], [r["tflite"] for r in mine], marker=marker, label=model)
    for series in vocabulary_series(rows).values():
        ax.plot([r["size_mb"] for r in series], [r["tflite"] for r in series], color="0.6", linewidth=1, zorder=0)
    budgets = len({r["num_train"] for r in rows}) > 1  # runs of several training-set sizes: say which is which
    for r in rows:
        label = f"{r['vocab_size']}/{r['embedding_dim']}" + (f", {r['num_train']} rows" if budgets else "")
        ax.annotate(label, (r["size_mb"], r["tflite"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.12, y=0.15)
    if target_mb is not None:
        ax.axvline(target_mb, color="tab:red", linestyle="--", linewidth=1, label=f"{target_mb:g} MB")
    ax.set_xlabel("file size (MB)")
    ax.set_ylabel(f"dev {rows[0]['metric']} of the .tflite (%)")
    ax.set_title("Students over vocabulary V / embedding width E")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
