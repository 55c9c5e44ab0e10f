#!/usr/bin/env python
"""The main job: distill a fine-tuned BERT teacher into a small RefBERT student on a GLUE task.

Example:
    python recipes/distill_glue.py --task sst2 --glue-dir ../shared/glue_data
    python recipes/distill_glue.py --task sst2 --glue-dir ../shared/glue_data --no-reference   # vanilla TinyBERT

Steps: load the teacher from <teacher-dir>/<task> (fine-tuning it first if missing), build the reference bank
(teacher hidden states of --bank-layer for the first --bank-tokens tokens of up to --max-anchors anchors), pick
every training example's reference (the most similar other example, with the same hashed-wordpiece similarity
the exported model computes), initialise the student (--init; by default a width-pruned slice of the teacher when
the student fits it), distill in two stages (TinyBERT: embeddings + attention scores + hidden states, then logits
with --temperature), evaluate on dev with in-graph retrieval, and write <output-dir>/<task>/<model>/ (model:
refbert, vanilla or, with --retrieval dense, refbert_dense_<entry>; student.keras, student.json, summary.md) and
--results. Then export the deployable file,
<tflite-dir>/<task>_<model>_dynamic_int8.tflite with its model card and vocabulary (--export-variants for others,
--no-export to skip), measured on dev through the LiteRT interpreter next to the Keras student. Re-running an
interrupted command resumes it.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import (  # noqa: E402
    add_config_args,
    add_data_args,
    add_strategy_args,
    command_line,
    config_from_args,
    positive_int,
    run,
    strategy_from_args,
)
from refbert_tf.config import DISTILL_DEFAULTS, DistillConfig, model_name  # noqa: E402

VARIANTS = ("float32", "dynamic_int8", "full_int8", "float16")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument(
        "--teacher-dir",
        default="artifacts/teacher",
        help="fine-tuned teachers live in <teacher-dir>/<task> (see recipes/finetune_teacher.py)",
    )
    p.add_argument(
        "--teacher-checkpoint",
        default="default",
        help="checkpoint to fine-tune a missing teacher from (see finetune_teacher.py --help)",
    )
    p.add_argument(
        "--no-finetune-teacher",
        action="store_true",
        help="fail instead of fine-tuning when the task has no fine-tuned teacher",
    )
    p.add_argument("--output-dir", default="artifacts/student", help="runs go to <output-dir>/<task>/<model>")
    p.add_argument("--results", default=None, help="metrics JSON (default results/distill/<task>_<model>.json)")
    p.add_argument("--bank-dir", default=None, help="reuse or write the reference bank here")
    p.add_argument("--tflite-dir", default="artifacts/tflite", help="where the exported .tflite files and cards go")
    p.add_argument(
        "--export-variants",
        nargs="+",
        default=["dynamic_int8"],
        choices=VARIANTS,
        help="TFLite variants exported after distillation (default dynamic_int8; see export_tflite.py)",
    )
    p.add_argument("--no-export", action="store_true", help="stop after distillation: no .tflite file")
    p.add_argument(
        "--student-vocab-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="mixed-vocabulary distillation (Zhao et al. 2021): learn an N-piece student vocabulary from the task's "
        "training text, train the teacher further to read it (stage I, recipes/mixed_vocab_teacher.py with its "
        "defaults, into <teacher-dir>_vocabN/<task> unless it is there), then distill from that teacher with both "
        "models reading the student vocabulary; outputs go to <output-dir>_vocabN, <tflite-dir>_vocabN and "
        "results/distill/<task>_vocabN_<model>.json (default: the teacher's vocabulary)",
    )
    p.add_argument(
        "--no-metadata", action="store_true", help="export without TFLite Model Metadata (see export_tflite.py)"
    )
    add_config_args(p, DistillConfig, DISTILL_DEFAULTS)
    add_strategy_args(p)
    return p.parse_args(argv)


def main(argv=None):
    start = time.perf_counter()
    args = parse_args(argv)
    from refbert_tf.tasks import get_task

    task = get_task(args.task)
    config = config_from_args(DistillConfig, args, DISTILL_DEFAULTS, task.name)
    from refbert_tf.io_utils import write_json  # lazy: TensorFlow below, after the options are checked
    from refbert_tf.pipelines import distill_glue, export_glue_student
    from refbert_tf.training import peak_memory_mb

    model = model_name(config)
    teacher_dir, name = os.path.join(args.teacher_dir, task.name), task.name
    if args.student_vocab_size:
        teacher_dir, name = (
            student_vocabulary_teacher(args, task, config),
            f"{task.name}_vocab{args.student_vocab_size}",
        )
        suffix = f"_vocab{args.student_vocab_size}"
        args.output_dir, args.tflite_dir = args.output_dir + suffix, args.tflite_dir + suffix
    run_dir = os.path.join(args.output_dir, task.name, model)
    result = distill_glue(
        task, run_dir, teacher_dir, config=config, glue_dir=args.glue_dir,
        source=args.source, teacher_checkpoint=args.teacher_checkpoint,
        finetune_missing_teacher=not args.no_finetune_teacher, max_train_examples=args.max_train_examples,
        bank_dir=args.bank_dir, command=command_line(argv), strategy=strategy_from_args(args),
    )  # fmt: skip
    path = args.results or os.path.join("results", "distill", f"{name}_{model}.json")
    write_json(path, result)
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
    print(f"{task.name} {model} student dev: {metrics} (init: {result['config']['init']})")
    if result["bank"] and "dev_retrieval_agreement" in result["bank"]:
        print(
            f"bank: {result['bank']['num_anchors']} anchors, {result['bank']['size_mb']} MB; on-device retrieval "
            f"agrees with the offline choice on {100 * result['bank']['dev_retrieval_agreement']:.1f}% of dev"
        )
    if not args.no_export:
        result["export"] = export_glue_student(
            task, run_dir, args.tflite_dir, variants=args.export_variants, glue_dir=args.glue_dir,
            source=args.source, command=command_line(argv), metadata=not args.no_metadata,
        )  # fmt: skip
        for row in result["export"]["variants"]:
            print(
                f"{row['path']}: {row['size_mb']:.2f} MB; dev {task.main_metric}: Keras "
                f"{result['export']['keras_dev_metric']:.2f}, LiteRT {row['dev_metric']:.2f} "
                f"(drop {row['dev_drop']:+.2f}"
                + (
                    f"; {row['label_changes']} of {row['num_dev']} dev labels changed)"
                    if row.get("label_changes") is not None
                    else ")"
                )
            )
    result["job_seconds"] = round(time.perf_counter() - start, 1)
    result["job_peak_memory_mb"] = round(peak_memory_mb(), 1)
    write_json(path, result)
    print(
        f"wall time {result['job_seconds'] / 60:.1f} min, peak memory {result['job_peak_memory_mb']:.0f} MB; "
        f"metrics written to {path}"
    )


def student_vocabulary_teacher(args, task, config) -> str:
    """Stage I for ``--student-vocab-size``: the teacher directory that reads the student vocabulary, trained
    from ``<teacher-dir>/<task>`` (fine-tuned first if missing and allowed) unless it exists."""
    from refbert_tf.config import mixed_vocab_config
    from refbert_tf.models.teacher import load_or_finetune_teacher
    from refbert_tf.pipelines.mixed_vocabulary import load_or_train_mixed_vocabulary_teacher

    source_dir = os.path.join(args.teacher_dir, task.name)
    out_dir = os.path.join(f"{args.teacher_dir}_vocab{args.student_vocab_size}", task.name)
    if not os.path.isfile(os.path.join(out_dir, "teacher.json")):
        if not os.path.isfile(os.path.join(source_dir, "teacher.json")):
            load_or_finetune_teacher(
                task, source_dir, not args.no_finetune_teacher, args.teacher_checkpoint, args.glue_dir, args.source
            )
        stage1 = mixed_vocab_config(
            task.name, student_vocab_size=args.student_vocab_size, seed=config.seed, max_seq_len=config.max_seq_len
        )
        load_or_train_mixed_vocabulary_teacher(
            task, source_dir, out_dir, stage1, args.glue_dir, args.source, max_train_examples=args.max_train_examples
        )
    return out_dir


if __name__ == "__main__":
    run(main)
