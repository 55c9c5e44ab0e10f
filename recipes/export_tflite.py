#!/usr/bin/env python
"""Export a distilled student to TFLite (LiteRT): float32, dynamic-range int8, full-integer int8, float16.

Example:
    python recipes/export_tflite.py --task sst2 --glue-dir ../shared/glue_data
    python recipes/export_tflite.py --task sst2 --model vanilla --variants float32 dynamic_int8
    python recipes/export_tflite.py --task sst2 --without-bank      # the RefBERT student minus its bank

Reads the student from <student-dir>/<task>/<model> (written by recipes/distill_glue.py), writes
<output-dir>/<task>_<model>_<variant>.tflite with a model card <...>.json beside each (task, labels, vocab
checksum, max sequence length, input/output tensors, bank size, quantization, op list, dev metrics measured
through the LiteRT interpreter), and a results JSON with each variant's size, dev metric and its drop against
the Keras student, and the float32 file's parity with Keras (max |logit difference| on --parity-examples dev
examples, prediction agreement on all of dev). Builtin TFLite ops only: a model that needs Flex ops fails.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402

VARIANTS = ("float32", "dynamic_int8", "full_int8", "float16")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="GLUE task of the student")
    p.add_argument(
        "--model",
        choices=["refbert", "vanilla", "refbert_dense_early", "refbert_dense_late"],
        default="refbert",
        help="which student (refbert); refbert_dense_<entry>: distilled with --retrieval dense",
    )
    p.add_argument("--student-dir", default="artifacts/student", help="students live in <student-dir>/<task>/<model>")
    p.add_argument("--output-dir", default="artifacts/tflite", help="where the .tflite files and cards go")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="variants to write")
    p.add_argument(
        "--without-bank",
        action="store_true",
        help="export the RefBERT student with its reference path removed (for the bank's share only)",
    )
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument(
        "--num-representative",
        type=int,
        default=300,
        help="real training examples that calibrate full-integer int8 (300)",
    )
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="write no TFLite Model Metadata (by default single-text classifiers get it, for MediaPipe Tasks)",
    )
    p.add_argument("--parity-examples", type=int, default=200, help="dev examples for the float32 parity check")
    p.add_argument("--results", default=None, help="results JSON (default results/export/<task>_<model>.json)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.data import get_task
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import export_glue_student

    task = get_task(args.task)
    result = export_glue_student(
        task,
        os.path.join(args.student_dir, task.name, args.model),
        args.output_dir,
        variants=args.variants,
        glue_dir=args.glue_dir,
        without_bank=args.without_bank,
        num_representative=args.num_representative,
        parity_examples=args.parity_examples,
        metadata=not args.no_metadata,
        command=command_line(argv),
    )
    name = result["model"]
    path = args.results or os.path.join("results", "export", f"{task.name}_{name}.json")
    write_json(path, result)
    for row in result["variants"]:
        drop = "" if row["dev_drop"] is None else f" (drop {row['dev_drop']:+.2f} vs Keras)"
        print(f"{row['variant']:>13}: {row['size_mb']:7.2f} MB, dev {task.main_metric} {row['dev_metric']:.2f}{drop}")
    if result.get("parity"):
        p = result["parity"]
        print(
            f"float32 parity: max |logit diff| {p['max_abs_diff']:.2e} on {p['num_examples']} dev examples, "
            f"prediction agreement {100 * p['prediction_agreement_dev']:.2f}% of dev"
        )
    print(f"results written to {path}")


if __name__ == "__main__":
    run(main)
