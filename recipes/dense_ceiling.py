#!/usr/bin/env python
"""How often a *dense* reference (nearest anchor in a teacher's representation space) shares the input's label.

Example:
    python recipes/dense_ceiling.py --tasks sst2 rte mrpc cola --glue-dir ../shared/glue_data
    python recipes/dense_ceiling.py --tasks sst2 --spaces teacher:cls teacher:pooled pretrained:mean

For every task, with its fine-tuned teacher (<teacher-dir>/<task>): keys of --max-anchors sampled training
examples (all of them for the smaller tasks) and of every dev example in each --spaces space (teacher:cls, the
fine-tuned teacher's last [CLS] state; teacher:pooled, its pooler output; teacher:mean, its mean-pooled last
states; pretrained:mean, the pre-trained MiniLM's mean-pooled sentence embedding), exact cosine nearest neighbours
(scikit-learn), and the share of dev examples whose nearest anchor, and whose vote of the --vote nearest, has
their gold label, beside the majority class and the teacher's dev accuracy. Writes --out (.json and .md). The
lexical counterpart is recipes/reference_ceiling.py.

With --student-dir (a template such as 'artifacts/student/{task}/vanilla'), also the late-fusion probe: the
student's [CLS] state mapped into the teacher's key space by ridge regression, its k nearest anchors' teacher
probabilities mixed with the student's own, the weight and temperature chosen on held-out anchors, dev metric
with and without them (refbert_tf.pipelines.dense_ceiling.late_fusion_probe).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402

SPACES = ("teacher:cls", "teacher:pooled", "teacher:mean", "pretrained:mean")  # refbert_tf.pipelines.dense_ceiling


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["sst2", "rte", "mrpc", "cola"], help="GLUE classification tasks")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--teacher-dir", default="artifacts/teacher", help="fine-tuned teachers are <teacher-dir>/<task>")
    p.add_argument("--spaces", nargs="+", default=["teacher:cls", "pretrained:mean"], choices=SPACES, help="key spaces")
    p.add_argument("--max-anchors", type=int, default=20000, help="sampled training anchors (20000; 0 = all)")
    p.add_argument("--vote", type=int, default=16, help="neighbours in the majority vote (16; 0 = none)")
    p.add_argument("--train-sample", type=int, default=2000, help="anchors whose nearest other anchor is scored")
    p.add_argument("--seed", type=int, default=42, help="anchor and sample seed")
    p.add_argument(
        "--student-dir", default=None, help="template of the student run for the late-fusion probe, with {task}"
    )
    p.add_argument("--out", default="results/distill/dense_ceiling", help="output path without suffix")
    args = p.parse_args(argv)
    for name in ("max_anchors", "vote", "train_sample"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.pipelines.dense_ceiling import dense_ceiling, dense_ceiling_markdown, late_fusion_probe

    rows, fusion = [], []
    for task in args.tasks:
        task_rows = dense_ceiling(
            task, os.path.join(args.teacher_dir, task), args.spaces, args.max_anchors or None, args.vote,
            args.train_sample, args.glue_dir, seed=args.seed,
        )  # fmt: skip
        print(dense_ceiling_markdown(task_rows), flush=True)
        rows += task_rows
        if args.student_dir:
            f = late_fusion_probe(
                task, os.path.join(args.teacher_dir, task), args.student_dir.format(task=task),
                args.max_anchors or None, k=args.vote or 16, glue_dir=args.glue_dir, seed=args.seed,
            )  # fmt: skip
            print(fusion_markdown([f]), flush=True)
            fusion.append(f)
    command = command_line(argv)
    write_json(args.out + ".json", {"command": command, "rows": rows, "late_fusion": fusion})
    text = dense_ceiling_markdown(rows) + (("\n" + fusion_markdown(fusion)) if fusion else "")
    write_text(args.out + ".md", text + f"\nCommand: `{command}`\n")
    print(f"written to {args.out}.json and .md")


def fusion_markdown(rows) -> str:
    """Markdown table of late-fusion probe results."""
    lines = [
        "| task | metric | student alone | + kNN soft labels, student query | + kNN, teacher's own dev key (bound) | "
        "lambda / temperature | best of the dev sweep (optimistic): student / teacher query | "
        "student query: top-1 / vote label agreement | query cosine to teacher key |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["query_ceiling"]
        best = max(x["fused"] for x in r["dev_sweep"]), max(x["fused_teacher_query"] for x in r["dev_sweep"])
        lines.append(
            f"| {r['task']} | {r['metric']} | {r['student']:.2f} | {r['fused']:.2f} | {r['fused_teacher_query']:.2f} "
            f"| {r['lambda']:.1f} / {r['temperature']:g} | {best[0]:.2f} / {best[1]:.2f} | {c['dev_top1']['agreement']:.2f} / "
            f"{c['dev_vote']['agreement']:.2f} | {r['query_cosine']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run(main)
