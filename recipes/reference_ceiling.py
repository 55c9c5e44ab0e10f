#!/usr/bin/env python
"""How often a lexical reference shares the input's gold label, for several bank shapes, before any training.

Example:
    python recipes/reference_ceiling.py --tasks sst2 cola rte mrpc --glue-dir ../shared/glue_data
    python recipes/reference_ceiling.py --tasks sst2 --num-buckets 1024 8192 --max-anchors 1024 4096 0

Replays the bank's retrieval (idf-weighted hashed wordpiece bags, k-means anchors, exact nearest anchor) for every
K (--num-buckets) x M (--max-anchors; 0 = every training example) and writes the share of dev and training
examples whose reference carries their own label, the majority-class share beside it, and the majority vote of
the --vote best anchors, to --out (.json and .md). No teacher is needed: only its vocabulary.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["sst2", "cola", "rte", "mrpc"], help="GLUE classification tasks")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument(
        "--vocab", default=None, help="the teacher's vocab.txt (default: the default MiniLM teacher's, lower-cased)"
    )
    p.add_argument("--num-buckets", type=int, nargs="+", default=[1024], help="K values (default 1024)")
    p.add_argument(
        "--max-anchors", type=int, nargs="+", default=[1024], help="M values (default 1024); 0 = every training example"
    )
    p.add_argument("--vote", type=int, default=16, help="anchors in the majority vote (16; 0 = none)")
    p.add_argument("--train-sample", type=int, default=5000, help="training examples scored (5000, seeded)")
    p.add_argument("--seed", type=int, default=42, help="k-means and sample seed")
    p.add_argument("--out", default="results/distill/reference_ceiling", help="output path without suffix")
    args = p.parse_args(argv)
    if min(args.num_buckets) < 1:
        p.error(f"--num-buckets: every K must be >= 1, got {args.num_buckets}")
    if min(args.max_anchors) < 0:
        p.error(f"--max-anchors: every M must be >= 0 (0 = all), got {args.max_anchors}")
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.models.checkpoints import default_teacher_dir
    from refbert_tf.pipelines import reference_ceiling, reference_ceiling_markdown
    from refbert_tf.tokenization import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(args.vocab or default_teacher_dir() / "vocab.txt")
    rows = []
    for task in args.tasks:
        task_rows = reference_ceiling(
            task,
            tokenizer,
            args.num_buckets,
            args.max_anchors,
            vote=args.vote,
            glue_dir=args.glue_dir,
            seed=args.seed,
            train_sample=args.train_sample,
        )
        print(reference_ceiling_markdown(task_rows), flush=True)
        rows += task_rows
    markdown = reference_ceiling_markdown(rows)
    command = command_line(argv)
    write_json(args.out + ".json", {"command": command, "rows": rows})
    write_text(args.out + ".md", markdown + f"\nCommand: `{command}`\n")
    print(f"written to {args.out}.json and .md")


if __name__ == "__main__":
    run(main)
