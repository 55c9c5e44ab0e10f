#!/usr/bin/env python
"""Tabulate and plot distilled students' file size against dev accuracy over vocabulary size and embedding width
(mixed-vocabulary distillation, Zhao et al. 2021; factorised embeddings, ALBERT), from their result files.
Writes <out>.json (rows and the command), <out>.md (the table) and <out>.png (the plot).

Example:
    python recipes/size_curve.py results/mixed_vocab/*stage2*.json results/distill/dense_pilot/sst2_20k_vanilla.json \\
        --out results/mixed_vocab/sst2_size_curve --target-mb 8
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="distill_glue result JSON files")
    p.add_argument("--out", required=True, help="output path without extension (.json, .md and .png are written)")
    p.add_argument("--variant", default="dynamic_int8", help="the .tflite variant read (default dynamic_int8)")
    p.add_argument("--target-mb", type=float, default=None, help="draw a size target (MB) on the plot")
    p.add_argument(
        "--teacher-vocab-size", type=int, default=30522,
        help="vocabulary of runs that record none and had no --student-vocab-size (default 30522, MiniLM's)",
    )  # fmt: skip
    args = p.parse_args(argv)
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.size_curve import size_curve, size_curve_plot

    rows, markdown = size_curve(args.results, args.variant, args.teacher_vocab_size)
    command = command_line(argv)
    write_json(args.out + ".json", {"rows": rows, "command": command})
    write_text(args.out + ".md", markdown + f"\nCommand: `{command}`\n")
    size_curve_plot(rows, args.out + ".png", args.target_mb)
    print(markdown)


if __name__ == "__main__":
    run(main)
