#!/usr/bin/env python
"""Benchmark, side by side in one run, a BERT-base-shaped model, the teacher and the students as TFLite files.

Example:
    python recipes/benchmark.py --task sst2 --glue-dir ../shared/glue_data

Exports (or reuses, from --tflite-dir) every model in every variant: bert_base_shape (12L/768H, random weights),
the fine-tuned teacher (<teacher-dir>/<task>), the vanilla and RefBERT students (<student-dir>/<task>/<model>) and
the RefBERT student without its bank; measures dev metrics through the LiteRT interpreter; times each file with
the LiteRT Python interpreter in a fresh process at batch 1 for every --seq-lens x --threads; writes
results/benchmark.json (rows), results/benchmark.md (table + headline ratios) and results/pareto.png
(dev metric vs latency). Needs the students first: recipes/distill_glue.py --task <task> [--no-reference].
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="sst2", help="GLUE task (sst2)")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--teacher-dir", default="artifacts/teacher", help="teachers live in <teacher-dir>/<task>")
    p.add_argument("--student-dir", default="artifacts/student", help="students in <student-dir>/<task>/<model>")
    p.add_argument("--tflite-dir", default="artifacts/tflite", help="exported files are written / reused here")
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="subset of: bert_base_shape teacher vanilla refbert refbert_no_bank (all)",
    )
    p.add_argument(
        "--variants", nargs="+", default=None, help="subset of: float32 dynamic_int8 full_int8 float16 (all)"
    )
    p.add_argument("--seq-lens", nargs="+", type=int, default=[64, 128], help="sequence lengths (64 128)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="interpreter threads (1 2)")
    p.add_argument("--num-runs", type=int, default=50, help="timed runs per measurement (50)")
    p.add_argument("--re-export", action="store_true", help="export again even if files exist")
    p.add_argument("--output", default="results/benchmark", help="writes <output>.json and <output>.md")
    p.add_argument("--plot", default="results/pareto.png", help="accuracy-vs-latency plot (PNG)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite <output>.md and the plot from the rows in <output>.json",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import time

    from refbert_tf.benchmark.report import headline, markdown_table, pareto_plot
    from refbert_tf.benchmark.suite import MODELS, run_suite
    from refbert_tf.data import get_task
    from refbert_tf.export import VARIANTS
    from refbert_tf.io_utils import write_json, write_text

    if args.report_only:
        import json

        rows = json.loads(open(args.output + ".json", encoding="utf-8").read())
        write_text(args.output + ".md", markdown_table(rows, rows[0]["command"]))
        pareto_plot(rows, args.plot)
        print(f"rewrote {args.output}.md and {args.plot} from {args.output}.json")
        return
    task = get_task(args.task)
    models = args.models or list(MODELS)
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(args.variants or []) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"error: unknown --models/--variants {unknown}; models: {MODELS}, variants: {VARIANTS}")
    paths = {
        "teacher": os.path.join(args.teacher_dir, task.name),
        "vanilla": os.path.join(args.student_dir, task.name, "vanilla"),
        "refbert": os.path.join(args.student_dir, task.name, "refbert"),
    }
    start = time.perf_counter()
    rows = run_suite(
        task.name,
        paths,
        args.tflite_dir,
        args.variants or list(VARIANTS),
        args.seq_lens,
        args.threads,
        args.glue_dir,
        args.num_runs,
        models,
        reuse=not args.re_export,
    )
    command = command_line(argv)
    seconds = round(time.perf_counter() - start, 1)
    # a list of rows, as the issue asks; each row carries the command that produced it
    write_json(args.output + ".json", [{**r, "command": command, "run_seconds": seconds} for r in rows])
    write_json(args.output + "_headline.json", {**headline(rows), "command": command})
    write_text(args.output + ".md", markdown_table(rows, command))
    pareto_plot(rows, args.plot)
    print(markdown_table(rows, command))


if __name__ == "__main__":
    run(main)
