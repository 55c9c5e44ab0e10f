"""Command-line pieces shared by the recipes: common arguments and the recorded command line."""

from __future__ import annotations

import argparse
import os
import shlex
import sys


def add_data_and_training_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options every training recipe has: task, data, batch, learning rate, length, seed, strategy."""
    from refbert_tf.data import TASKS

    parser.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    parser.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    parser.add_argument(
        "--source",
        choices=["tsv", "tfds"],
        default="tsv",
        help="read GLUE from the TSV directory or from tensorflow-datasets (online)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples per step (default 32): the global batch, split over the replicas",
    )
    parser.add_argument("--learning-rate", type=float, default=None, help="peak AdamW learning rate")
    parser.add_argument(
        "--lr-scaling",
        choices=["none", "linear", "sqrt"],
        default=None,
        help="scale the learning rate by (global batch / 32): linear (Goyal et al. 2017) or sqrt; default none",
    )
    parser.add_argument(
        "--max-seq-len", type=int, default=None, help="max packed tokens (default 128); longer inputs are truncated"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    parser.add_argument(
        "--max-train-examples", type=int, default=None, help="use only the first N training rows (smoke runs)"
    )
    return add_strategy_args(parser)


def add_strategy_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--strategy``, ``--tpu`` and ``--cpu-devices`` (read back with :func:`strategy_from_args`)."""
    parser.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multi_worker", "tpu"],
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(TF_CONFIG cluster), tpu (see README 'Scale-out')",
    )
    parser.add_argument("--tpu", default=None, help="TPU name or grpc:// address for --strategy tpu")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="with --strategy mirrored and no GPU, split the CPU into N logical devices (testing)",
    )
    return parser


def strategy_from_args(args):
    """The ``tf.distribute`` strategy named by ``--strategy`` / ``--tpu`` / ``--cpu-devices``."""
    from refbert_tf.distribute import make_strategy

    return make_strategy(args.strategy, tpu=args.tpu, cpu_devices=args.cpu_devices)


def command_line(argv=None) -> str:
    """The command as typed (``python recipes/x.py --flag ...``), recorded in result files."""
    args = argv if argv is not None else sys.argv[1:]
    return "python " + shlex.join([os.path.relpath(sys.argv[0])] + list(args))


CODE_PATHS = ("refbert_tf", "recipes", "tflite", "setup.py", "requirements.lock")


def code_version() -> str | None:
    """The git commit of the running code, recorded in result files: ``<12-hex sha>``, plus ``-dirty`` when
    :data:`CODE_PATHS` have uncommitted changes (other files, such as ``results/``, do not count).

    Recipes put their repository root first on ``sys.path``, so this is the commit of the code that ran, also from a
    worktree. Returns None outside a git checkout or without git.
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0 or not sha.stdout.strip():
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
