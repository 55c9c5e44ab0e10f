#!/usr/bin/env python
"""Assemble results/glue_summary.json and .md: teacher, vanilla student and RefBERT student on GLUE dev.

Reads results/teacher/<task>.json (recipes/finetune_teacher.py) and results/distill/<task>_<model>.json
(recipes/distill_glue.py, with and without --no-reference). Each row keeps the command that produced it.

Example:
    python recipes/glue_summary.py
    python recipes/glue_summary.py --distill-dir results/distill/gd --out results/glue_summary_gd
    python recipes/glue_summary.py --distill-dir results/mixed_vocab/glue5 --baseline-dir results/distill/pr \
        --out results/mixed_vocab/glue5/glue_summary

With --baseline-dir it also writes <out>_comparison.json and .md: the students of --distill-dir beside those of
the baseline directory, task by task, with the difference of their averages.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default="results", help="where the per-run JSON files are (results)")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks (default: sst2 mrpc rte cola stsb)")
    p.add_argument(
        "--distill-dir",
        default=None,
        help="student result files <task>_<vanilla|refbert>.json (default <results-dir>/distill)",
    )
    p.add_argument(
        "--baseline-dir",
        default=None,
        help="also compare the students with the <task>_<vanilla|refbert>.json of this directory (<out>_comparison)",
    )
    p.add_argument("--out", default=None, help="output path without suffix (default <results-dir>/glue_summary)")
    args = p.parse_args(argv)
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.reports import SUMMARY_TASKS, family_comparison, glue_summary

    tasks = args.tasks or SUMMARY_TASKS
    rows, markdown = glue_summary(args.results_dir, tasks, args.distill_dir)
    out = args.out or os.path.join(args.results_dir, "glue_summary")
    write_json(out + ".json", rows)
    write_text(out + ".md", markdown)
    print(markdown)
    if args.baseline_dir:
        distill_dir = args.distill_dir or os.path.join(args.results_dir, "distill")
        rows, markdown = family_comparison(distill_dir, args.baseline_dir, tasks)
        write_json(out + "_comparison.json", rows)
        write_text(out + "_comparison.md", markdown)
        print(markdown)


if __name__ == "__main__":
    run(main)
