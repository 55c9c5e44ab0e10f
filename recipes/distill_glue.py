#!/usr/bin/env python
"""The main job: distill a fine-tuned BERT teacher into a small RefBERT student on a GLUE task.

Example:
    python recipes/distill_glue.py --task sst2 --glue-dir ../shared/glue_data
    python recipes/distill_glue.py --task sst2 --glue-dir ../shared/glue_data --no-reference   # vanilla TinyBERT

Steps: load the teacher from <teacher-dir>/<task> (fine-tuning it first if missing), initialise the student from a
width-pruned slice of it (when the student fits; --random-init to skip), build the reference bank
(teacher hidden states of --bank-layer for the first --bank-tokens tokens of up to --max-anchors anchors),
pick every training example's reference (the most similar other example, with the same hashed-wordpiece
similarity the exported model computes), distill in two stages (TinyBERT: embeddings + attention scores +
hidden states, then logits with --temperature), evaluate on dev with in-graph retrieval, and write
<output-dir>/<task>/<refbert|vanilla>/ (student.keras, student.json, summary.md) and --results. Re-running an
interrupted command resumes it.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import add_data_and_training_args, command_line, strategy_from_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_and_training_args(p)
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
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="train the same student without references: the vanilla TinyBERT baseline",
    )
    p.add_argument("--student", default=None, help="student preset: tinybert4 (default) or tinybert6")
    p.add_argument(
        "--init-from-teacher",
        action="store_true",
        default=None,
        help="initialise the student from the teacher's embeddings and mapped layers (equal widths only)",
    )
    p.add_argument(
        "--init-embeddings-from-teacher",
        action="store_true",
        default=None,
        help="initialise only the student's token, position and segment embeddings from the teacher's, "
        "projected to the student width by PCA (any widths)",
    )
    pruning = p.add_mutually_exclusive_group()
    pruning.add_argument(
        "--init-by-pruning",
        dest="init_by_pruning",
        action="store_const",
        const=True,
        default=None,
        help="initialise the student from a width-pruned slice of the fine-tuned teacher (its most "
        "active hidden coordinates, head dimensions and FFN units in the mapped layers), and "
        "fail if the student does not fit it. This is the default whenever the student fits "
        "(no wider than the teacher, same heads and vocabulary) and no other init is chosen",
    )
    pruning.add_argument(
        "--random-init",
        dest="init_by_pruning",
        action="store_const",
        const=False,
        help="start the student from random weights instead of the pruned teacher (the setting of "
        "the random-init results in the README)",
    )
    p.add_argument(
        "--student-init",
        default=None,
        metavar="DIR",
        help="start from the encoder of a general-distilled student (recipes/general_distill.py), as "
        "TinyBERT does; same --student preset and vocabulary",
    )
    p.add_argument(
        "--augment",
        type=int,
        default=None,
        metavar="N",
        help="add N word-replaced copies of each training example, relabelled by the teacher (TinyBERT "
        "data augmentation with teacher-embedding neighbours; 0 = off, the default). Epochs then "
        "count passes over the (1 + N)x larger set",
    )
    p.add_argument(
        "--augment-prob",
        type=float,
        default=None,
        help="probability of replacing each one-piece word (0.4, TinyBERT's p_t)",
    )
    p.add_argument(
        "--augment-candidates", type=int, default=None, help="nearest neighbours a word may become (15, TinyBERT's K)"
    )
    p.add_argument("--bank-dir", default=None, help="reuse or write the reference bank here")
    p.add_argument(
        "--bank-layer",
        type=int,
        default=None,
        help="teacher layer stored in the bank (-1 = last, the default; 0 = embeddings)",
    )
    p.add_argument("--bank-tokens", type=int, default=None, help="tokens stored per anchor, R (4)")
    p.add_argument("--max-anchors", type=int, default=None, help="bank size cap M (1024); k-means picks anchors")
    p.add_argument("--num-buckets", type=int, default=None, help="hash buckets of the retrieval key, K (1024)")
    p.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="references read per input (1, RefBERT); k > 1 puts the k best anchors' tokens side by side",
    )
    p.add_argument(
        "--reference-projection",
        choices=("linear", "linear_norm"),
        default=None,
        help="P: teacher width -> student width: linear (default) or linear_norm (then a LayerNorm)",
    )
    p.add_argument("--intermediate-epochs", type=float, default=None, help="passes in the intermediate stage")
    p.add_argument("--prediction-epochs", type=float, default=None, help="passes in the prediction stage")
    p.add_argument("--temperature", type=float, default=None, help="prediction-loss temperature (1.0)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.data import get_task
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import distill_config, distill_glue

    task = get_task(args.task)
    config = distill_config(
        task.name,
        student=args.student,
        use_reference=not args.no_reference,
        bank_layer=args.bank_layer,
        bank_tokens=args.bank_tokens,
        max_anchors=args.max_anchors,
        num_buckets=args.num_buckets,
        top_k=args.top_k,
        reference_projection=args.reference_projection,
        intermediate_epochs=args.intermediate_epochs,
        prediction_epochs=args.prediction_epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_scaling=args.lr_scaling,
        temperature=args.temperature,
        max_seq_len=args.max_seq_len,
        seed=args.seed,
        init_from_teacher=args.init_from_teacher,
        init_embeddings_from_teacher=args.init_embeddings_from_teacher,
        init_by_pruning=args.init_by_pruning,
        student_init=args.student_init,
        augment=args.augment,
        augment_prob=args.augment_prob,
        augment_candidates=args.augment_candidates,
    )
    model = "refbert" if config.use_reference else "vanilla"
    command = command_line(argv)
    result = distill_glue(
        task,
        os.path.join(args.output_dir, task.name, model),
        os.path.join(args.teacher_dir, task.name),
        config=config,
        glue_dir=args.glue_dir,
        source=args.source,
        teacher_checkpoint=args.teacher_checkpoint,
        finetune_missing_teacher=not args.no_finetune_teacher,
        max_train_examples=args.max_train_examples,
        bank_dir=args.bank_dir,
        command=command,
        strategy=strategy_from_args(args),
    )
    path = args.results or os.path.join("results", "distill", f"{task.name}_{model}.json")
    write_json(path, result)
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
    print(f"{task.name} {model} student dev: {metrics}")
    if result["bank"]:
        print(
            f"bank: {result['bank']['num_anchors']} anchors, {result['bank']['size_mb']} MB; on-device retrieval "
            f"agrees with the offline choice on {100 * result['bank']['dev_retrieval_agreement']:.1f}% of dev"
        )
    print(
        f"wall time {result['seconds'] / 60:.1f} min, peak memory {result['peak_memory_mb']:.0f} MB; "
        f"metrics written to {path}"
    )


if __name__ == "__main__":
    main()
