#!/usr/bin/env python
"""Tabulate a retrieval pilot: each variant (lexical, dense early, dense late) against the vanilla student of the
same task, seed and training rows, with the .tflite int8 metric and size, the dense retrieval diagnostics, and
the pilot's rule (go on to the multi-seed verdict with the variant whose mean gain over the tasks is at least
--min-gain points, else stop). Writes <out>.json and <out>.md.

Example:
    python recipes/pilot_summary.py results/distill/dense_pilot/*.json results/distill/pr/rte_vanilla.json \\
        --out results/distill/dense_pilot/summary
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="distill_glue result JSON files (vanilla runs included)")
    p.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    p.add_argument(
        "--tasks", nargs="+", default=["sst2", "rte", "mrpc"], help="the pilot's tasks (default sst2 rte mrpc)"
    )
    p.add_argument("--min-gain", type=float, default=0.5, help="the rule's mean gain in points (default 0.5)")
    args = p.parse_args(argv)
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.reports import pilot_summary

    summary, markdown = pilot_summary(args.results, args.min_gain, args.tasks)
    command = command_line(argv)
    write_json(args.out + ".json", {**summary, "command": command})
    write_text(args.out + ".md", markdown + f"\nCommand: `{command}`\n")
    print(markdown)


if __name__ == "__main__":
    run(main)
