#!/usr/bin/env python
"""Stage I of mixed-vocabulary distillation: a fine-tuned teacher that reads a small student vocabulary.

Example:
    python recipes/mixed_vocab_teacher.py --task sst2 --glue-dir ../shared/glue_data --student-vocab-size 8192
    python recipes/distill_glue.py --task sst2 --glue-dir ../shared/glue_data --student-vocab-size 8192  # stage II

Learns a WordPiece vocabulary of --student-vocab-size pieces from the task's training text (the teacher's
normalisation: uncased, accents stripped), then trains the fine-tuned teacher of <teacher-dir>/<task> further on
inputs in which each word is tokenized with the student vocabulary with probability --mix-prob (Zhao et al.,
"Extremely Small BERT Models from Mixed-Vocabulary Training", EACL 2021): student pieces are looked up in a new
--embedding-dim-wide table projected up to the teacher's width, and a distillation term (--kd-weight) towards the
original teacher's logits keeps its function. Writes the stage-II teacher to <output-dir>/<task>/ (default
<teacher-dir>_vocab<N>): an ordinary teacher directory whose vocab.txt is the student vocabulary, evaluated on dev
tokenized with the student vocabulary alone, and the metrics JSON to --results. Re-running after an interruption
resumes from the last checkpoint.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import add_config_args, add_data_args, command_line, config_from_args, run  # noqa: E402
from refbert_tf.config import MIXED_VOCAB_DEFAULTS, MixedVocabConfig  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--teacher-dir", default="artifacts/teacher", help="the fine-tuned teacher is <teacher-dir>/<task>")
    p.add_argument("--output-dir", default=None, help="written to <output-dir>/<task> (default <teacher-dir>_vocab<N>)")
    p.add_argument("--results", default=None, help="metrics JSON (default results/mixed_vocab/<task>_vocab<N>.json)")
    add_config_args(p, MixedVocabConfig, MIXED_VOCAB_DEFAULTS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from refbert_tf.tasks import get_task

    task = get_task(args.task)
    config = config_from_args(MixedVocabConfig, args, MIXED_VOCAB_DEFAULTS, task.name)
    from refbert_tf.io_utils import write_json  # lazy: TensorFlow, after the options are checked
    from refbert_tf.pipelines.mixed_vocabulary import mixed_vocabulary_teacher

    n = config.student_vocab_size
    out_dir = os.path.join(args.output_dir or f"{args.teacher_dir}_vocab{n}", task.name)
    result = mixed_vocabulary_teacher(
        task, os.path.join(args.teacher_dir, task.name), out_dir, config, glue_dir=args.glue_dir, source=args.source,
        max_train_examples=args.max_train_examples, command=command_line(argv),
    )  # fmt: skip
    path = args.results or os.path.join("results", "mixed_vocab", f"{task.name}_vocab{n}.json")
    write_json(path, result)
    m = task.main_metric
    print(
        f"{task.name} dev {m}: original teacher {result['teacher_metrics'][m]:.2f}; stage-I teacher on the student "
        f"vocabulary alone {result['metrics'][m]:.2f}, on mixed inputs (p={config.mix_prob}) "
        f"{result['mixed_metrics']['mixed_p'][m]:.2f}, on its own vocabulary "
        f"{result['mixed_metrics']['teacher_tokenization'][m]:.2f}"
    )
    v = result["vocabulary"]
    print(
        f"student vocabulary: {v['size']} pieces ({100 * v['shared_with_teacher']:.1f}% also teacher pieces), "
        f"{v['dev_pieces_per_word']['student']:.2f} pieces a word on dev (teacher "
        f"{v['dev_pieces_per_word']['teacher']:.2f}), [UNK] {100 * v['dev_unknown_rate']:.2f}% | "
        f"{result['seconds']:.0f} s, peak memory {result['peak_memory_mb']:.0f} MB"
    )
    print(f"stage-II teacher saved to {out_dir}; metrics written to {path}")


if __name__ == "__main__":
    run(main)
