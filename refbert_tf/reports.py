"""Reports of finished runs, read from their result files: markdown tables and plots (TensorFlow-free).

- :func:`summary_markdown`: one distillation run.
- :func:`glue_summary`: teacher / vanilla / RefBERT over the GLUE tasks.
- :func:`family_comparison`: two families of students (say, small- and full-vocabulary) task by task.
- :func:`ablation_summary`, :func:`ablation_plot`: runs that differ in a few knobs, each against its vanilla
  partner.
- :func:`reference_ceiling_markdown`: the rows of :func:`refbert_tf.pipelines.reference_ceiling`.
- :func:`pilot_summary`: retrieval variants against the vanilla student over several tasks, with the pilot's
  go / stop rule.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from refbert_tf.config import ABLATION_KNOBS, distill_config, init_from_record
from refbert_tf.io_utils import atomic_path, read_json
from refbert_tf.tasks import get_task

SUMMARY_TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")


def summary_markdown(result: dict) -> str:
    """A short markdown report of one distillation run."""
    m = result["main_metric"]
    lines = [
        f"# {result['task']}: {result['model']} student",
        "",
        "| model | " + " | ".join(result["metrics"]) + " |",
        "|---|" + "---|" * len(result["metrics"]),
        f"| {result['model']} | " + " | ".join(f"{v:.2f}" for v in result["metrics"].values()) + " |",
    ]
    if result.get("teacher_metrics"):
        lines.append(
            "| teacher | "
            + " | ".join(f"{result['teacher_metrics'].get(k, float('nan')):.2f}" for k in result["metrics"])
            + " |"
        )
    lines += [
        "",
        f"Main metric: {m}. Wall time {result['seconds']:.0f} s, peak memory "
        f"{result['peak_memory_mb']:.0f} MB, student parameters {result['student_parameters']:,}.",
    ]
    if result.get("bank"):
        b = result["bank"]
        lines.append(
            f"Reference bank: {b['num_anchors']} anchors x {b['num_tokens']} tokens of teacher layer "
            f"{b['layer']} ({b['size_mb']} MB); on-device retrieval agrees with the offline choice on "
            f"{100 * b['dev_retrieval_agreement']:.1f}% of dev."
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def glue_summary(results_dir="results", tasks=SUMMARY_TASKS, distill_dir=None) -> tuple[list[dict], str]:
    """Collect teacher / vanilla / RefBERT dev results into one table.

    Reads ``<results_dir>/teacher/<task>.json`` and ``<distill_dir>/<task>_{vanilla,refbert}.json``
    (``distill_dir`` defaults to ``<results_dir>/distill``; another one holds another family of student runs, such
    as ``results/distill/gd``, students started from general distillation).
    A student row gets a ``note`` (and its cell a footnote) when its result's ``teacher_metrics`` differ from the
    teacher row (distilled from another teacher), or when it is a RefBERT run from before the reference fix
    (recognised by a ``config`` without ``top_k``, a field added right after the fix): those
    runs trained on in-graph references, where a bank anchor is its own reference.

    Returns:
        ``(rows, markdown)``: rows ``{task, model, metric, value (percent), command[, tflite_value (percent: the
        main job's dynamic-range int8 export through LiteRT), note]}`` for every result found, and a markdown table with each model's average over the tasks it has all of, and RefBERT's average
        as a percentage of the teacher's.
    """
    results_dir = Path(results_dir)
    distill_dir = Path(distill_dir) if distill_dir else results_dir / "distill"
    rows = []
    for task_name in tasks:
        task = get_task(task_name)
        paths = {
            "teacher": results_dir / "teacher" / f"{task.name}.json",
            "vanilla": distill_dir / f"{task.name}_vanilla.json",
            "refbert": distill_dir / f"{task.name}_refbert.json",
        }
        teacher_value = None
        for model, path in paths.items():
            if path.is_file():
                r = read_json(path, "re-run the command that wrote it (a finished run rewrites it without training)")
                row = {
                    "task": task.name,
                    "model": model,
                    "metric": task.main_metric,
                    "value": round(float(r["metrics"][task.main_metric]), 2),
                    "command": r["command"],
                }
                tflite = [v for v in (r.get("export") or {}).get("variants", []) if v["variant"] == "dynamic_int8"]
                if tflite:  # the main job's export: the same student through the LiteRT interpreter
                    row["tflite_value"] = round(float(tflite[0]["dev_metric"]), 2)
                notes = []
                if model == "teacher":
                    teacher_value = row["value"]
                elif (
                    teacher_value is not None
                    and "teacher_metrics" in r
                    and round(float(r["teacher_metrics"][task.main_metric]), 2) != teacher_value
                ):
                    notes.append(f"distilled from a teacher scoring {r['teacher_metrics'][task.main_metric]:.2f}")
                if model == "refbert" and "config" in r and "top_k" not in r["config"]:
                    notes.append("distilled before the reference fix: trained on in-graph references")
                if notes:
                    row["note"] = "; ".join(notes)
                rows.append(row)
    table = {(r["task"], r["model"]): r["value"] for r in rows}
    table.update({(r["task"], f"{r['model']} .tflite"): r["tflite_value"] for r in rows if "tflite_value" in r})
    footnotes = [(r["task"], r["model"], r["note"]) for r in rows if "note" in r]
    marks = {(t, m): f" [{i + 1}]" for i, (t, m, _) in enumerate(footnotes)}
    models = ("teacher", "vanilla", "refbert")
    columns = ("teacher", "vanilla", "vanilla .tflite", "refbert", "refbert .tflite")
    headers = [c.replace(".tflite", ".tflite int8") for c in columns]
    lines = ["| task | metric | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(columns)]
    for task_name in tasks:
        cells = [
            f"{table[(task_name, m)]:.2f}{marks.get((task_name, m), '')}" if (task_name, m) in table else "-"
            for m in columns
        ]
        lines.append(f"| {task_name} | {get_task(task_name).main_metric} | " + " | ".join(cells) + " |")
    complete = [t for t in tasks if all((t, m) in table for m in models)]
    if complete:
        avg = {
            m: sum(table[(t, m)] for t in complete) / len(complete)
            for m in columns
            if all((t, m) in table for t in complete)
        }
        cells = [f"{avg[m]:.2f}" if m in avg else "-" for m in columns]
        lines.append(f"| average ({len(complete)} tasks) | | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"RefBERT keeps {100 * avg['refbert'] / avg['teacher']:.1f}% of the teacher's average and is "
            f"{avg['refbert'] - avg['vanilla']:+.2f} points from the vanilla student. The `.tflite int8` columns are "
            "the same students exported by the main job (dynamic-range int8) and measured through the LiteRT "
            "interpreter; `-` where a result has no export.",
        ]
    if footnotes:
        lines += [""] + [f"{marks[(t, m)].strip()} {t} {m}: {note}." for t, m, note in footnotes]
    return rows, "\n".join(lines) + "\n"


def _student_result(path: Path) -> dict | None:
    """The main metric, the dynamic-range int8 export's LiteRT metric and size (MB) and the command of one
    ``distill_glue`` result file, or None when the file does not exist."""
    if not path.is_file():
        return None
    r = read_json(path, "re-run the command that wrote it (a finished run rewrites it without training)")
    tflite = [v for v in (r.get("export") or {}).get("variants", []) if v["variant"] == "dynamic_int8"]
    return {
        "value": round(float(r["metrics"][r["main_metric"]]), 2),
        "tflite_value": round(float(tflite[0]["dev_metric"]), 2) if tflite else None,
        "size_mb": tflite[0].get("size_mb") if tflite else None,
        "command": r["command"],
    }


def family_comparison(distill_dir, baseline_dir, tasks=SUMMARY_TASKS) -> tuple[list[dict], str]:
    """Two families of students, task by task: the runs of ``distill_dir`` against those of ``baseline_dir``
    (for example small-vocabulary students against the 30,522-piece ones they replace).

    Both directories hold ``distill_glue`` result files named ``<task>_<vanilla|refbert>.json``. A (task, model)
    pair is compared when both families have it; the averages are over the tasks where both families have both
    models, so they compare like with like.

    Returns:
        ``(rows, markdown)``: rows ``{task, model, metric, value, baseline, difference (points), size_mb,
        baseline_size_mb, tflite_value, baseline_tflite_value, command, baseline_command}`` (values in percent;
        sizes of the dynamic-range int8 ``.tflite`` files in MB, None without an export), and a markdown table
        with the averages and how many of ``tasks`` they cover.

    Raises:
        ValueError: no (task, model) pair that both families have.
    """
    distill_dir, baseline_dir = Path(distill_dir), Path(baseline_dir)
    rows = []
    for task_name in tasks:
        task = get_task(task_name)
        for model in ("vanilla", "refbert"):
            ours = _student_result(distill_dir / f"{task.name}_{model}.json")
            theirs = _student_result(baseline_dir / f"{task.name}_{model}.json")
            if ours is None or theirs is None:
                continue
            rows.append(
                {
                    "task": task.name,
                    "model": model,
                    "metric": task.main_metric,
                    "value": ours["value"],
                    "baseline": theirs["value"],
                    "difference": round(ours["value"] - theirs["value"], 2),
                    "size_mb": ours["size_mb"],
                    "baseline_size_mb": theirs["size_mb"],
                    "tflite_value": ours["tflite_value"],
                    "baseline_tflite_value": theirs["tflite_value"],
                    "command": ours["command"],
                    "baseline_command": theirs["command"],
                }
            )
    if not rows:
        raise ValueError(
            f"family_comparison: no <task>_<vanilla|refbert>.json of {list(tasks)} is in both {distill_dir} "
            f"and {baseline_dir}"
        )

    def cell(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    lines = [
        f"Students of `{distill_dir}` against those of `{baseline_dir}` (the baseline), dev main metric.",
        "",
        "| task | metric | model | baseline | this | difference | baseline .tflite int8 | this .tflite int8 "
        "| baseline MB | this MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['metric']} | {r['model']} | {r['baseline']:.2f} | {r['value']:.2f} | "
            f"{r['difference']:+.2f} | {cell(r['baseline_tflite_value'])} | {cell(r['tflite_value'])} | "
            f"{cell(r['baseline_size_mb'])} | {cell(r['size_mb'])} |"
        )
    by_pair = {(r["task"], r["model"]): r for r in rows}
    complete = [t for t in tasks if all((t, m) in by_pair for m in ("vanilla", "refbert"))]
    if complete:
        lines.append("")
        for model in ("vanilla", "refbert"):
            ours = sum(by_pair[(t, model)]["value"] for t in complete) / len(complete)
            theirs = sum(by_pair[(t, model)]["baseline"] for t in complete) / len(complete)
            lines.append(
                f"- {model}: average over {len(complete)} of {len(tasks)} tasks ({', '.join(complete)}) "
                f"{ours:.2f} against the baseline's {theirs:.2f}, {ours - theirs:+.2f} points."
            )
    return rows, "\n".join(lines) + "\n"


def _change_label(model: str, changes) -> str:
    """``knob=value, ...`` for an ablation row, or ``baseline`` / ``no reference`` when it changes nothing."""
    return ", ".join(f"{k}={v}" for k, v in changes) or ("baseline" if model == "refbert" else "no reference")


def distill_results(result_paths, caller: str) -> list[tuple[str, dict]]:
    """``(file stem, record)`` of each ``distill_glue`` result JSON among ``result_paths`` (other JSON files, such
    as an earlier summary caught by a glob, are skipped), with ``config["init"]`` filled in for older records.

    Raises:
        ValueError: none of the paths is such a result (the message names ``caller``).
    """
    results = [(Path(p).stem, read_json(p, "re-run the command that wrote it")) for p in result_paths]
    results = [(name, r) for name, r in results if isinstance(r, dict) and "config" in r]
    for _, r in results:  # older result files spelled the student initialisation in four fields
        r["config"] = {**r["config"], "init": init_from_record(r["config"])}
    if not results:
        raise ValueError(f"{caller}: no distill_glue result files given")
    return results


def _budget(r: dict) -> tuple:
    """What a run and its vanilla partner share: task, seed, training rows, augmentation and starting point."""
    cfg = r["config"]
    return r["task"], cfg["seed"], r["num_train"], cfg.get("augment", 0), cfg["init"]


def _minus_vanilla(r: dict, value: float, partner: dict | None) -> float | None:
    """``value`` (``r``'s main metric) minus its vanilla partner's, in points, or None without a partner (or for
    the partner itself)."""
    if partner is None or partner is r:
        return None
    return round(value - float(partner["metrics"][r["main_metric"]]), 2)


def ablation_summary(result_paths) -> tuple[list[dict], str]:
    """Tabulate distillation runs that differ in a few knobs, each against the vanilla run of the same budget.

    Every path is a ``recipes/distill_glue.py`` result JSON of one task; other JSON files (no ``config``, such as
    an earlier summary caught by a glob) are skipped. The baseline the knobs are described against is the RefBERT
    run closest to the task's defaults (fewest :data:`ABLATION_KNOBS` changed; the first such in the given order);
    a run's vanilla partner is the ``--no-reference`` run with the same seed, number of training examples,
    augmentation and student init (so a change is read against the same budget).

    Args:
        result_paths: result JSON paths, all of one task.

    Returns:
        ``(rows, markdown)``: rows ``{run, model, changes (knob -> value, vs the baseline RefBERT run), seed,
        num_train, metric, value (percent), minus_vanilla (points, or None without a partner), minutes,
        command}``, and a markdown table of them with the mean and spread of the seeds where a setting has several.

    Raises:
        ValueError: no paths, paths of several tasks, or no RefBERT run among them.
    """
    results = distill_results(result_paths, "ablation_summary")
    tasks = {r["task"] for _, r in results}
    if len(tasks) != 1:
        raise ValueError(f"ablation_summary: results of several tasks {sorted(tasks)}; give one task's runs")
    defaults = dataclasses.asdict(distill_config(tasks.pop()))
    defaults["init"] = "pruned"  # what the default "auto" resolves to for the default student and teacher
    refbert_configs = [r["config"] for _, r in results if r["config"].get("use_reference")]
    if not refbert_configs:
        raise ValueError("ablation_summary: no RefBERT run (config.use_reference true) to describe changes against")
    baseline = min(refbert_configs, key=lambda c: sum(c.get(k, defaults[k]) != defaults[k] for k in ABLATION_KNOBS))

    vanilla = {_budget(r): r for _, r in results if not r["config"].get("use_reference")}
    rows = []
    for name, r in results:
        cfg = r["config"]
        metric = r["main_metric"]
        value = round(float(r["metrics"][metric]), 2)
        partner = vanilla.get(_budget(r))
        changes = {
            k: cfg.get(k, defaults[k])
            for k in ABLATION_KNOBS
            if k != "use_reference" and cfg.get(k, defaults[k]) != baseline.get(k, defaults[k])
        }
        rows.append(
            {
                "run": name,
                "model": r["model"],
                "changes": changes,
                "seed": cfg["seed"],
                "num_train": r["num_train"],
                "metric": metric,
                "value": value,
                "minus_vanilla": _minus_vanilla(r, value, partner),
                "minutes": round(float(r["seconds"]) / 60, 1),
                "command": r["command"],
            }
        )
    lines = [
        "| run | model | change vs the baseline RefBERT run | seed | train examples | "
        f"dev {rows[0]['metric']} | minus vanilla (same seed, budget) | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = _change_label(r["model"], r["changes"].items())
        delta = "" if r["minus_vanilla"] is None else f"{r['minus_vanilla']:+.2f}"
        lines.append(
            f"| {r['run']} | {r['model']} | {change} | {r['seed']} | {r['num_train']} | {r['value']:.2f} | "
            f"{delta} | {r['minutes']:.1f} |"
        )
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(
            (r["model"], tuple(sorted(r["changes"].items(), key=lambda kv: kv[0])), r["num_train"]), []
        ).append(r["value"])
    repeated = {k: v for k, v in groups.items() if len(v) > 1}
    if repeated:
        lines.append("")
        for (model, changes, num_train), values in repeated.items():
            lines.append(
                f"{model} ({_change_label(model, changes)}, {num_train} train examples) over {len(values)} seeds: "
                f"mean {np.mean(values):.2f}, range {min(values):.2f}-{max(values):.2f}."
            )
    return rows, "\n".join(lines) + "\n"


def ablation_plot(rows: list[dict], path) -> None:
    """Bar chart of an :func:`ablation_summary`'s runs (dev metric, %), vanilla runs in grey, as a PNG.

    Raises:
        ValueError: no rows.
    """
    import matplotlib  # lazy: the plotting backend is chosen only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend

    if not rows:
        raise ValueError("ablation_plot: no rows to plot")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows)), 4.0))
    colors = ["tab:gray" if r["model"] == "vanilla" else "tab:green" for r in rows]
    values = [r["value"] for r in rows]
    ax.bar(range(len(rows)), values, color=colors)
    ax.set_xticks(range(len(rows)), [r["run"] for r in rows], rotation=30, ha="right", fontsize=8)
    bottom = max(0.0, min(values) - 3.0)
    ax.set_ylim(bottom, max(values) + 1.0)
    for i, v in enumerate(values):
        ax.text(i, v + 0.1, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_ylabel(f"dev {rows[0]['metric']} (%)" + (f", axis from {bottom:.0f}" if bottom > 0 else ""))
    ax.set_title("Distillation runs: RefBERT knobs (green) against vanilla (grey)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def reference_ceiling_markdown(rows: list[dict]) -> str:
    """Markdown table of :func:`reference_ceiling` rows."""
    lines = [
        "| task | K buckets | M anchors | dev: reference has the input's label | dev: vote of the k best | "
        "train (not itself) | majority class (dev) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vote = f"{r['dev_vote']['agreement']:.2f} (k={r['dev_vote']['k']})" if "dev_vote" in r else "-"
        lines.append(
            f"| {r['task']} | {r['num_buckets']} | {r['num_anchors']}{'' if r['max_anchors'] else ' (all)'} "
            f"| {r['dev']['agreement']:.2f} | {vote} | {r['train']['agreement']:.2f} | "
            f"{r['dev']['majority_class']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _variant(result: dict) -> str:
    """A run's retrieval variant: ``vanilla``, ``lexical`` or ``dense_<entry>``."""
    cfg = result.get("config", {})
    if not cfg.get("use_reference", result.get("model") != "vanilla"):
        return "vanilla"
    return f"dense_{cfg.get('dense_entry', 'early')}" if cfg.get("retrieval") == "dense" else "lexical"


def pilot_summary(result_paths, min_gain: float = 0.5, tasks=None) -> tuple[dict, str]:
    """Retrieval variants against the vanilla student, task by task, and the pilot's rule: go on to the multi-seed
    verdict with the variant whose mean gain over the tasks is at least ``min_gain`` points, else stop.

    A run's partner is the vanilla run (``--no-reference``) of the same task, seed, training rows, augmentation
    and student init; a variant's mean gain is taken over the tasks where it has one, and only a variant measured on
    every task of the pilot can pass the rule. The rule says stop only when every variant is measured on every
    task and none passes; while a variant is still missing a task, it says which and decides nothing for it.

    Args:
        result_paths: ``recipes/distill_glue.py`` result JSON files (any tasks, any mix of variants).
        min_gain: the rule's threshold (points of the task's main metric, mean over the tasks).
        tasks: the pilot's tasks (default: those of the results); until a variant is measured on all of them the
            rule decides nothing.

    Returns:
        ``(summary, markdown)``: ``summary = {"rows": [{run, task, variant, seed, num_train, metric, value,
        tflite_value, size_mb, minus_vanilla, retrieval_agreement, label_agreement_top1, minutes, command}],
        "variants": {variant: {tasks, mean_gain}}, "tasks", "best", "go", "pending"}`` (``pending``: the
        variants not yet measured on every task) and a markdown table of it.

    Raises:
        ValueError: no result files among the paths, or no vanilla run.
    """
    results = distill_results(result_paths, "pilot_summary")
    vanilla = {_budget(r): r for _, r in results if _variant(r) == "vanilla"}
    if not vanilla:
        raise ValueError("pilot_summary: no vanilla (--no-reference) run to compare against")
    rows = []
    for name, r in results:
        metric = r["main_metric"]
        value = float(r["metrics"][metric])
        lite = next((v for v in r.get("export", {}).get("variants", []) if v.get("variant") == "dynamic_int8"), {})
        bank = r.get("bank") or {}
        top1 = (bank.get("label_agreement") or {}).get("student_query", {}).get("top1", {}).get("agreement")
        rows.append(
            {
                "run": name,
                "task": r["task"],
                "variant": _variant(r),
                "seed": r["config"]["seed"],
                "num_train": r["num_train"],
                "metric": metric,
                "value": round(value, 2),
                "tflite_value": None if "dev_metric" not in lite else round(float(lite["dev_metric"]), 2),
                "size_mb": lite.get("size_mb"),
                "minus_vanilla": _minus_vanilla(r, value, vanilla.get(_budget(r))),
                "retrieval_agreement": bank.get("dev_retrieval_agreement"),
                "label_agreement_top1": top1,
                "minutes": round(float(r["seconds"]) / 60, 1),
                "command": r["command"],
            }
        )
    tasks = sorted(tasks or {r["task"] for r in rows})
    variants = {}
    for v in sorted({r["variant"] for r in rows} - {"vanilla"}):
        gains = {r["task"]: r["minus_vanilla"] for r in rows if r["variant"] == v and r["minus_vanilla"] is not None}
        variants[v] = {
            "tasks": sorted(gains),
            "mean_gain": round(float(np.mean(list(gains.values()))), 2) if gains else None,
        }
    complete = {v: s for v, s in variants.items() if s["tasks"] == tasks and s["mean_gain"] is not None}
    best = max(complete, key=lambda v: complete[v]["mean_gain"]) if complete else None
    go = best is not None and complete[best]["mean_gain"] >= min_gain
    pending = [v for v in variants if v not in complete]  # the rule stops only when every variant has been judged
    lines = [
        "| run | task | variant | seed | train examples | dev metric | .tflite int8 | MB | minus vanilla | "
        "device finds the teacher's anchor | its anchor has the label | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(x, spec):
        return "" if x is None else format(x, spec)

    for r in rows:
        agree = None if r["retrieval_agreement"] is None else 100.0 * r["retrieval_agreement"]
        lines.append(
            f"| {r['run']} | {r['task']} | {r['variant']} | {r['seed']} | {r['num_train']} | {r['metric']} "
            f"{r['value']:.2f} | {fmt(r['tflite_value'], '.2f')} | {fmt(r['size_mb'], '.2f')} | "
            f"{fmt(r['minus_vanilla'], '+.2f')} | {fmt(agree, '.2f')} | {fmt(r['label_agreement_top1'], '.2f')} | "
            f"{r['minutes']:.1f} |"
        )
    lines.append("")
    for v, s in variants.items():
        missing = sorted(set(tasks) - set(s["tasks"]))
        gain = "no vanilla partner" if s["mean_gain"] is None else f"mean gain {s['mean_gain']:+.2f}"
        lines.append(
            f"- {v}: {gain} over {', '.join(s['tasks']) or 'no task'}"
            + (f" (not measured on {', '.join(missing)})" if missing else "")
        )
    if go:
        verdict = f"{best} gains {complete[best]['mean_gain']:+.2f} >= {min_gain:+.2f}: go on to the verdict with it."
    elif pending and best is not None:
        short = ", ".join(f"{v} {s['mean_gain']:+.2f}" for v, s in complete.items())
        verdict = (
            f"{short} below {min_gain:+.2f}; {', '.join(pending)} not measured on every task: no decision for "
            f"{'it' if len(pending) == 1 else 'them'} yet, the pilot goes on."
        )
    elif best is not None:
        verdict = (
            f"no variant gains {min_gain:+.2f} on average (best {best}, {complete[best]['mean_gain']:+.2f}): stop."
        )
    else:
        so_far = "; ".join(f"{v} {s['mean_gain']:+.2f}" for v, s in variants.items() if s["mean_gain"] is not None)
        verdict = f"no variant is measured on every task yet: no decision (so far: {so_far or 'nothing'})."
    lines += ["", f"Pilot rule (mean gain over {', '.join(tasks)} at least {min_gain:+.2f}): {verdict}"]
    summary = {
        "rows": rows,
        "variants": variants,
        "tasks": tasks,
        "best": best,
        "go": go,
        "pending": pending,
        "min_gain": min_gain,
    }
    return summary, "\n".join(lines) + "\n"
