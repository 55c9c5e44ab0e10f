#!/usr/bin/env python
"""Measure levers on a student's LiteRT latency against the product's export path, in one run.

Example:
    python recipes/benchmark_levers.py --student-dir artifacts/student/sst2/refbert

Exports the student once per lever (refbert_tf/benchmark/levers.py: the graph without the export-time graph changes,
the default, a fixed input shape per length, XNNPACK's latest features, per-tensor int8 weights) and times every file
in a fresh process at batch 1, alternating the order from cell to cell. Writes <output>.json (rows and the command)
and <output>.md (each lever's median over the default's in the same cell).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--student-dir", default="artifacts/student/sst2/refbert", help="a distilled student's run directory"
    )
    p.add_argument("--variants", nargs="+", default=["float32", "dynamic_int8"], help="float32 dynamic_int8 (float16)")
    p.add_argument("--seq-lens", nargs="+", type=int, default=[16, 128], help="lengths (16 128)")
    p.add_argument("--threads", nargs="+", type=int, default=[1], help="threads (1)")
    p.add_argument("--num-runs", type=int, default=50, help="timed runs per measurement (50)")
    p.add_argument("--rounds", type=int, default=3, help="passes over every measurement, medians over them (3)")
    p.add_argument("--work-dir", default="artifacts/levers", help="the lever files are written here")
    p.add_argument("--output", default="results/benchmark_levers", help="writes <output>.json and <output>.md")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.benchmark.levers import export_levers, levers_markdown, measure_levers
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.models.student import STUDENT_FILES, StudentNotFoundError

    missing = [f for f in STUDENT_FILES if not os.path.isfile(os.path.join(args.student_dir, f))]
    if missing:
        raise StudentNotFoundError(f"no distilled student in {args.student_dir} (missing {', '.join(missing)})")
    files = export_levers(args.student_dir, args.work_dir, args.variants, args.seq_lens)
    rows = measure_levers(files, args.seq_lens, args.threads, args.num_runs, args.rounds)
    command = command_line(argv)
    write_json(args.output + ".json", {"rows": rows, "command": command})
    report = levers_markdown(rows, command)
    write_text(args.output + ".md", report)
    print(report)


if __name__ == "__main__":
    run(main)
