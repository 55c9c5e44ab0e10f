#!/usr/bin/env python
"""Reference diagnostics of a RefBERT run: how often an example's reference carries the example's own label.

Example:
    python recipes/reference_report.py --task sst2 --glue-dir ../shared/glue_data

Loads <student-dir>/<task>/refbert/bank, picks every train (excluding itself) and dev example's reference with
the bank's similarity and writes results/distill/<task>_references.json: label agreement (percent), the majority
class share for comparison, and the mean similarity. Classification tasks only.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="GLUE classification task")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--student-dir", default="artifacts/student", help="runs live in <student-dir>/<task>/refbert")
    p.add_argument("--results", default=None, help="output JSON (default results/distill/<task>_references.json)")
    args = p.parse_args(argv)
    from refbert_tf.data import get_task
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import reference_report

    task = get_task(args.task)
    report = reference_report(
        task, os.path.join(args.student_dir, task.name, "refbert"), glue_dir=args.glue_dir, command=command_line(argv)
    )
    path = args.results or os.path.join("results", "distill", f"{task.name}_references.json")
    write_json(path, report)
    print(
        f"dev: the student's in-graph retrieval picks the offline reference for "
        f"{100 * report['dev_retrieval_agreement']:.2f}% of examples"
    )
    for split, r in report["reference_label_agreement"].items():
        print(
            f"{split}: the reference shares the gold label for {r['agreement']:.2f}% of examples (majority class "
            f"{r['majority_class']:.2f}%), mean similarity {r['mean_similarity']:.3f}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    run(main)
