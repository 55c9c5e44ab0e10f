#!/usr/bin/env python
"""Dev metrics of tinybert4 students pruned from the fine-tuned teacher, before any training (--init-by-pruning).

Shows how much of the teacher each choice of copied teacher layers keeps; distill_glue.py --init-by-pruning uses
the first L_S - 1 blocks and the last (1,2,3,6 for tinybert4 on MiniLM). Inference only: about 10 s a mapping.

Example:
    python recipes/pruning_probe.py --glue-dir ../shared/glue_data --tasks sst2 stsb \\
        --mappings 2,3,5,6 1,2,3,6 --out results/distill/pr/pruning_probe.json
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import code_version, command_line, run  # noqa: E402


def _mapping(text):
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--mappings: {text!r} is not comma-separated layer numbers, e.g. 1,2,3,6"
        ) from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["sst2"], help="GLUE tasks (default sst2)")
    p.add_argument("--teacher-dir", default="artifacts/teacher", help="fine-tuned teachers in <teacher-dir>/<task>")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--student", default="tinybert4", help="student preset (default tinybert4)")
    p.add_argument(
        "--mappings",
        nargs="+",
        type=_mapping,
        default=[[2, 3, 5, 6], [1, 2, 3, 6]],
        help="teacher blocks (1-based, comma-separated) copied into the student blocks, one list per "
        "try (default: 2,3,5,6 = TinyBERT's uniform map, 1,2,3,6 = distill_glue's)",
    )
    p.add_argument("--seed", type=int, default=42, help="picks the training examples that rank the units")
    p.add_argument("--out", default=None, help="write the rows and the command to this JSON file")
    args = p.parse_args(argv)
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import pruning_probe

    rows = []
    for task in args.tasks:
        for row in pruning_probe(
            task,
            os.path.join(args.teacher_dir, task),
            args.mappings,
            student=args.student,
            glue_dir=args.glue_dir,
            seed=args.seed,
        ):
            print(
                row["task"],
                ",".join(map(str, row["mapping"])),
                " ".join(f"{k} {v:.2f}" for k, v in row["metrics"].items()),
                flush=True,
            )
            rows.append(row)
    if args.out:
        write_json(args.out, {"rows": rows, "command": command_line(argv), "code_version": code_version()})


if __name__ == "__main__":
    run(main)
