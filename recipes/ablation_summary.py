#!/usr/bin/env python
"""Tabulate and plot distillation runs that differ in a few knobs (bank layer, R, top-k, projection, seed).

Reads result JSON files written by recipes/distill_glue.py (all of one task; other JSON files are skipped),
describes each run by the knobs it changes against the RefBERT run closest to the task's defaults, and compares
it with the vanilla (--no-reference) run of the same seed and training budget. Writes <out>.json, <out>.md and
<out>.png.

Example:
    python recipes/ablation_summary.py results/distill/ablation/sst2_20k_*.json --out results/distill/ablation/summary
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "results",
        nargs="+",
        help="distill_glue result JSON files, one task; the baseline is the RefBERT run closest to the task's defaults",
    )
    p.add_argument("--out", required=True, help="output path without extension (.json, .md, .png are written)")
    args = p.parse_args(argv)
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.reports import ablation_plot, ablation_summary

    rows, markdown = ablation_summary(args.results)
    command = command_line(argv)
    write_json(args.out + ".json", {"rows": rows, "command": command})
    write_text(args.out + ".md", markdown + f"\nCommand: `{command}`\n")
    ablation_plot(rows, args.out + ".png")
    print(markdown)


if __name__ == "__main__":
    run(main)
