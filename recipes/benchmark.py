#!/usr/bin/env python
"""Benchmark, side by side in one run, the students against the teacher and a BERT-base shape, in LiteRT and ONNX Runtime.

Example:
    python recipes/benchmark.py --task sst2 --glue-dir ../shared/glue_data

Exports (or reuses, from --tflite-dir) every model in every variant: bert_base_shape (12L/768H, random weights,
float32: the paper's reference point), the fine-tuned teacher (<teacher-dir>/<task>), the vanilla and RefBERT
students (<student-dir>/<task>/<model>) and the RefBERT student without its bank; converts the teacher and the two
students from the same SavedModel to ONNX (float32, dynamic int8) and checks them against the Keras model on 200
dev examples before any timing; measures dev metrics through LiteRT and ONNX Runtime; measures this machine's
matrix-multiply peak (NumPy BLAS and one large LiteRT fully connected layer) before and after the models; times
every file in a fresh process at batch 1 for every --seq-lens x --threads and at the dev set's own lengths (real
traffic), the engines in alternating order. Writes results/benchmark.json (rows, peaks, parity, the command),
results/benchmark.md (tables and ratios: student vs teacher, LiteRT vs ONNX Runtime, the bank's cost, fraction of
the peak) and results/pareto.png. Needs the students first: recipes/distill_glue.py --task <task> [--no-reference].
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
    p.add_argument(
        "--seq-lens", nargs="+", type=int, default=[16, 32, 64, 128], help="fixed sequence lengths (16 32 64 128)"
    )
    p.add_argument(
        "--onnx-variants",
        nargs="*",
        default=["float32", "dynamic_int8"],
        help="ONNX Runtime variants of the teacher and students (float32 dynamic_int8; none: no ONNX)",
    )
    p.add_argument(
        "--real-traffic", type=int, default=200, help="dev examples timed at their own lengths (200; 0: none)"
    )
    p.add_argument("--real-runs", type=int, default=5, help="runs per real-traffic example, median kept (5)")
    p.add_argument("--rounds", type=int, default=3, help="passes over every measurement, medians over them (3)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="interpreter threads (1 2)")
    p.add_argument("--num-runs", type=int, default=30, help="timed runs per measurement (30)")
    p.add_argument("--re-export", action="store_true", help="export again even if files exist")
    p.add_argument("--output", default="results/benchmark", help="writes <output>.json and <output>.md")
    p.add_argument("--plot", default="results/pareto.png", help="accuracy-vs-latency plot (PNG)")
    p.add_argument(
        "--paired-only",
        action="store_true",
        help="measure only the bank's cost in pairs (files from an earlier run) and add it to <output>.json",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite <output>.md and the plot from the rows in <output>.json",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import json
    import time

    from refbert_tf.benchmark.exports import MODELS
    from refbert_tf.benchmark.peak import machine_description
    from refbert_tf.benchmark.report import markdown_report, pareto_plot
    from refbert_tf.benchmark.suite import run_suite
    from refbert_tf.export import VARIANTS
    from refbert_tf.export.onnx import ONNX_VARIANTS
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.tasks import get_task

    if args.report_only:
        result = json.loads(open(args.output + ".json", encoding="utf-8").read())
        if isinstance(result, list):  # the rows-only files of earlier runs
            result = {"rows": result, "command": result[0]["command"]}
        write_text(args.output + ".md", markdown_report(result, result.get("command", ""), result.get("machine", "")))
        pareto_plot(result["rows"], args.plot)
        print(f"rewrote {args.output}.md and {args.plot} from {args.output}.json")
        return
    task = get_task(args.task)
    if args.paired_only:
        from refbert_tf.benchmark.exports import export_all
        from refbert_tf.benchmark.suite import measure_bank_cost

        result = json.loads(open(args.output + ".json", encoding="utf-8").read())
        cards = export_all(
            task.name,
            {},
            args.tflite_dir,
            ["float32", "dynamic_int8"],
            models=["vanilla", "refbert", "refbert_no_bank"],
            onnx_variants=(),
        )
        result["bank_cost_paired"] = measure_bank_cost(cards, result.get("real_lengths"))
        result["paired_command"] = command_line(argv)
        write_json(args.output + ".json", result)
        write_text(args.output + ".md", markdown_report(result, result.get("command", ""), result.get("machine", "")))
        print(f"added the paired bank cost to {args.output}.json and .md")
        return
    models = args.models or list(MODELS)
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(args.variants or []) - set(VARIANTS))
    unknown += sorted(set(args.onnx_variants) - set(ONNX_VARIANTS))
    if unknown:
        raise SystemExit(
            f"error: unknown --models/--variants/--onnx-variants {unknown}; models: {MODELS}, variants: "
            f"{VARIANTS}, ONNX variants: {ONNX_VARIANTS}"
        )
    paths = {
        "teacher": os.path.join(args.teacher_dir, task.name),
        "vanilla": os.path.join(args.student_dir, task.name, "vanilla"),
        "refbert": os.path.join(args.student_dir, task.name, "refbert"),
    }
    start = time.perf_counter()
    result = run_suite(
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
        onnx_variants=args.onnx_variants,
        real_traffic=args.real_traffic,
        real_runs=args.real_runs,
        rounds=args.rounds,
    )
    command = command_line(argv)
    result.update(command=command, machine=machine_description(), run_seconds=round(time.perf_counter() - start, 1))
    write_json(args.output + ".json", result)
    report = markdown_report(result, command, result["machine"])
    write_text(args.output + ".md", report)
    pareto_plot(result["rows"], args.plot)
    print(report)


if __name__ == "__main__":
    run(main)
