#!/usr/bin/env python
"""Size x latency x accuracy of exported models against a baseline (the teacher), one run.

Example (after the students are distilled and exported, e.g. distill_glue.py --student-vocab-size 8192):
    python recipes/benchmark_curve.py --glue-dir ../shared/glue_data \\
        --models artifacts/tflite/sst2_teacher_dynamic_int8.tflite artifacts/tflite/sst2_refbert_dynamic_int8.tflite \\
                 artifacts/tflite_vocab8192/sst2_refbert_dynamic_int8.tflite

The first --models file is the baseline. Every file (with its model card beside it) is timed in a fresh process at
batch 1, --threads threads, at --seq-len tokens and at "real traffic": --real sampled dev examples, the same ones
for every model, each at the length its own vocabulary packs it to (a small vocabulary gives longer inputs), the
models in alternating order over --rounds rounds. Writes <output>.json (rows and the command), <output>.md (table:
size, dev metric from the card, latency, ratios against the baseline, whether a row is 4x smaller, 3x faster and
keeps 98% of the baseline's metric) and <output>.png (metric against size and against latency).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, positive_int, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--models", nargs="+", required=True, help=".tflite files with their cards; the first is the baseline"
    )
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--seq-len", type=positive_int, default=128, help="fixed length in tokens (128)")
    p.add_argument(
        "--real", type=int, default=200, help="sampled dev examples timed at their own lengths (200; 0: none)"
    )
    p.add_argument("--rounds", type=positive_int, default=3, help="passes over every model, medians over them (3)")
    p.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (1)")
    p.add_argument("--num-runs", type=positive_int, default=30, help="timed runs per fixed-length measurement (30)")
    p.add_argument("--output", default="results/curve", help="writes <output>.json, .md and .png")
    args = p.parse_args(argv)
    missing = [m for m in args.models if not os.path.isfile(m)]
    if missing:
        p.error(f"--models: no such file: {', '.join(missing)}")
    if args.real < 0:
        p.error(f"--real must be >= 0, got {args.real}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.benchmark.curve import curve_markdown, curve_plot, curve_table, measure_curve
    from refbert_tf.io_utils import write_json, write_text

    rows = measure_curve(
        args.models, args.glue_dir, args.seq_len, args.real, args.rounds, args.threads, args.num_runs
    )  # fmt: skip
    table = curve_table(rows)
    command = command_line(argv)
    write_json(args.output + ".json", {"rows": table, "command": command})
    write_text(args.output + ".md", curve_markdown(table, command))
    curve_plot(table, args.output + ".png")
    print(curve_markdown(table))
    print(f"written: {args.output}.json, .md, .png")


if __name__ == "__main__":
    run(main)
