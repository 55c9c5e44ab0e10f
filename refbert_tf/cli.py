"""Command-line pieces shared by the recipes: data options, options built from the config dataclasses, the
strategy options, and the recorded command line (TensorFlow-free, so ``--help`` stays fast)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import typing

from refbert_tf.config import option_name, task_config
from refbert_tf.tasks import TASKS


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1 (a usage error naming the option otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_data_args(parser: argparse.ArgumentParser, task: bool = True) -> argparse.ArgumentParser:
    """Add the data options: ``--task`` (unless ``task`` is False), ``--glue-dir``, ``--source``,
    ``--max-train-examples``."""
    if task:
        parser.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    parser.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    parser.add_argument(
        "--source",
        choices=["tsv", "tfds"],
        default="tsv",
        help="read GLUE from the TSV directory or from tensorflow-datasets (online)",
    )
    if task:
        parser.add_argument(
            "--max-train-examples",
            type=positive_int,
            default=None,
            help="use only the first N training rows (smoke runs)",
        )
    return parser


class _Alias(argparse.Action):
    """An old option spelling: sets the field it stands for and prints the new spelling on stderr."""

    def __init__(self, option_strings, dest, value=None, new_flag="", **kwargs):
        self.value, self.new_flag = value, new_flag
        super().__init__(option_strings, dest, nargs=0 if value is not None else None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.value if self.value is not None else values
        typed = option_string if self.value is not None else f"{option_string} {values}"
        _set_once(parser, namespace, self.dest, value, typed)
        print(f"note: {option_string} is spelled {self.new_flag} {value} now", file=sys.stderr)


class _Once(argparse.Action):
    """A config option that may be given once (its aliases count: ``--init random --init-by-pruning`` is an
    error)."""

    def __call__(self, parser, namespace, values, option_string=None):
        _set_once(parser, namespace, self.dest, values, f"{option_string} {values}")


def _set_once(parser, namespace, dest, value, typed):
    """Set ``dest`` unless another spelling already set it to something else; ``typed`` is what the user wrote."""
    given = getattr(namespace, f"_{dest}_given", None)
    if given is not None and getattr(namespace, dest) != value:
        parser.error(f"{typed} conflicts with {given}: choose one")
    setattr(namespace, dest, value)
    setattr(namespace, f"_{dest}_given", typed)


def _field_type(cls, field: dataclasses.Field):
    hint = typing.get_type_hints(cls)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0]


def add_config_args(
    parser: argparse.ArgumentParser, config_cls, task_defaults: dict | None = None, skip=()
) -> argparse.ArgumentParser:
    """Add one option per field of the config dataclass ``config_cls`` (:mod:`refbert_tf.config`), from the
    field's :func:`~refbert_tf.config.setting` metadata: help text, choices, metavar, old spellings (aliases).

    Every option defaults to None (not given), so that :func:`config_from_args` can apply the task's defaults
    before the field's own; ``--help`` shows both. Booleans get ``--flag`` / ``--no-flag``; tuples take one or more
    values.

    Args:
        parser: the recipe's parser.
        config_cls: a config dataclass.
        task_defaults: per-task defaults ``{task: {field: value}}`` (shown in ``--help``).
        skip: field names to leave out.
    """
    group = parser.add_argument_group(f"run configuration ({config_cls.__name__})")
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        meta, name = field.metadata, option_name(field)
        per_task = {t: d[field.name] for t, d in (task_defaults or {}).items() if field.name in d}
        shown = f"default {field.default}" + (
            "; per task: " + ", ".join(f"{t} {v}" for t, v in per_task.items()) if per_task else ""
        )
        kwargs = dict(dest=field.name, default=None, help=f"{meta.get('help', '')} ({shown})")
        kind = _field_type(config_cls, field)
        if kind is bool:
            group.add_argument(name, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if kind is tuple:
            kwargs.update(nargs="+", type=str)
        else:
            kwargs.update(type=kind, action=_Once, metavar=meta.get("metavar"))
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
        group.add_argument(name, **kwargs)
        for alias, value in meta.get("aliases", {}).items():
            what = f"same as {name} {value if value is not None else 'DIR'}"
            group.add_argument(
                alias,
                action=_Alias,
                dest=field.name,
                value=value,
                new_flag=name,
                help=what,
                **({} if value is not None else {"metavar": "DIR"}),
            )
    return parser


def config_from_args(config_cls, args: argparse.Namespace, task_defaults: dict | None = None, task: str = ""):
    """The ``config_cls`` of parsed options: the field's default, then the task's, then the options given.

    A value outside its field's range ends the program as a usage error does: one line naming the option on
    stderr, exit code 2.
    """
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    try:
        return task_config(config_cls, task_defaults or {}, task, **given)
    except ValueError as error:
        print(f"{os.path.basename(sys.argv[0])}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def add_strategy_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--strategy``, ``--tpu`` and ``--cpu-devices`` (read back with :func:`strategy_from_args`)."""
    parser.add_argument(
        "--strategy",
        choices=["default", "mirrored", "multi_worker", "tpu"],
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
        "(TF_CONFIG cluster), tpu (see docs/scale-out.md)",
    )
    parser.add_argument("--tpu", default=None, help="TPU name or grpc:// address for --strategy tpu")
    parser.add_argument(
        "--cpu-devices",
        type=positive_int,
        default=None,
        help="with --strategy mirrored and no GPU, split the CPU into N logical devices (testing)",
    )
    return parser


def strategy_from_args(args):
    """The ``tf.distribute`` strategy named by ``--strategy`` / ``--tpu`` / ``--cpu-devices``."""
    from refbert_tf.distribute import make_strategy  # lazy: TensorFlow, only once a strategy is built

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


def run(main) -> None:
    """Run a recipe's ``main()`` as a command-line tool: an error of this project's own types (bad input the user can
    fix: an unknown task, a missing GLUE directory, a malformed TSV, a run directory of other settings...) ends the
    program with its one-line message on stderr and exit code 2, as a usage error does; anything else (a bug, an
    interruption) keeps its traceback."""
    try:
        main()
    except Exception as error:
        if not type(error).__module__.startswith("refbert_tf."):
            raise
        print(f"{os.path.basename(sys.argv[0])}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
