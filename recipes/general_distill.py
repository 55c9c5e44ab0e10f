#!/usr/bin/env python
"""General distillation: a task-agnostic student that task distillation (distill_glue.py) starts from.

Example:
    python recipes/general_distill.py --glue-dir ../shared/glue_data
    python recipes/distill_glue.py --task stsb --glue-dir ../shared/glue_data \
        --init artifacts/general/tinybert4

TinyBERT (Jiao et al. 2020, sec. 3.3) first distils the pre-trained teacher into the student on unlabeled text
with the intermediate-stage losses (embeddings, attention scores, hidden states), then runs task distillation from
that student. Here the unlabeled text is the training splits of the GLUE tasks in --glue-dir (never dev or test),
read as each task's inputs, and the teacher is the pre-trained checkpoint (not a fine-tuned one). Writes
<output-dir>/student.keras, student.json, vocab.txt and the --results JSON. Re-running an interrupted command
resumes it; re-running a finished one returns its stored result (another configuration in the same --output-dir
is an error).
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
from refbert_tf.config import GeneralDistillConfig  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--teacher-checkpoint",
        default="default",
        help="pre-trained teacher: 'default' (the embedded MiniLM), a Hugging Face or keras-hub "
        "directory, or a keras-hub preset name (online)",
    )
    add_data_args(p, task=False)
    p.add_argument("--output-dir", default=None, help="run directory (default artifacts/general/<student>)")
    p.add_argument("--results", default=None, help="metrics JSON (default results/general/<student>.json)")
    add_config_args(p, GeneralDistillConfig)
    add_strategy_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config = config_from_args(GeneralDistillConfig, args)
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import general_distill  # lazy: TensorFlow, after the options are checked

    args.student = config.student
    out_dir = args.output_dir or os.path.join("artifacts", "general", args.student)
    result = general_distill(
        out_dir,
        args.teacher_checkpoint,
        config,
        glue_dir=args.glue_dir,
        source=args.source,
        command=command_line(argv),
        strategy=strategy_from_args(args),
    )
    path = args.results or os.path.join("results", "general", f"{args.student}.json")
    write_json(path, result)
    corpus = ", ".join(f"{k} {v}" for k, v in result["corpus"].items())
    print(
        f"general {args.student} student: {result['num_examples']} rows ({corpus}); distillation loss "
        f"{result['loss']['first_interval']} -> {result['loss']['last_interval']}; written to {out_dir}"
    )
    print(
        f"wall time {result['seconds'] / 60:.1f} min, {result['examples_per_second']} examples/s, peak memory "
        f"{result['peak_memory_mb']:.0f} MB; metrics written to {path}"
    )


if __name__ == "__main__":
    run(main)
