"""Command-line pieces shared by the recipes: common arguments and the recorded command line."""

from __future__ import annotations

import argparse
import os
import shlex
import sys


def add_data_and_training_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options every training recipe has: task, data location, batch, learning rate, length, seed."""
    from refbert_tf.data import TASKS

    parser.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    parser.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    parser.add_argument("--source", choices=["tsv", "tfds"], default="tsv",
                        help="read GLUE from the TSV directory or from tensorflow-datasets (online)")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step (default 32)")
    parser.add_argument("--learning-rate", type=float, default=None, help="peak AdamW learning rate")
    parser.add_argument("--max-seq-len", type=int, default=None,
                        help="max packed tokens (default 128); longer inputs are truncated")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    parser.add_argument("--max-train-examples", type=int, default=None,
                        help="use only the first N training rows (smoke runs)")
    return parser


def command_line(argv=None) -> str:
    """The command as typed (``python recipes/x.py --flag ...``), recorded in result files."""
    args = argv if argv is not None else sys.argv[1:]
    return "python " + shlex.join([os.path.relpath(sys.argv[0])] + list(args))
