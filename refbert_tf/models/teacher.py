"""The teacher: a BERT encoder with a task head (keras-hub ``BertTextClassifier``), saved and reloaded as a unit.

A saved teacher is a directory::

    model.keras      the classifier (backbone + head), Keras 3 format
    vocab.txt        the checkpoint's vocabulary (copied: the teacher is self-contained)
    teacher.json     task, labels, lowercase, max_seq_len, vocab sha256, source checkpoint, dev metrics

Every file is written atomically, so an interrupted save never leaves a teacher that loads half-way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import keras
import keras_hub
import tensorflow as tf

import refbert_tf.models.backbone  # noqa: F401  (registers our BertBackbone, which saved teachers name)
from refbert_tf import faults
from refbert_tf.cli import code_version
from refbert_tf.config import teacher_config
from refbert_tf.data import GlueTask, get_task, load_glue
from refbert_tf.distribute import check_global_batch, strategy_info
from refbert_tf.io_utils import file_sha256, load_artifact, read_json, save_model_dir, write_json
from refbert_tf.models.checkpoints import load_backbone
from refbert_tf.resume import remove_checkpoints
from refbert_tf.rundir import check_run_config, run_lock
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.training import evaluate, fit, peak_memory_mb

TEACHER_FILES = ("model.keras", "vocab.txt", "teacher.json")


class TeacherNotFoundError(FileNotFoundError):
    """Raised when a task has no fine-tuned teacher where one is expected (the message names the path)."""


class TeacherMismatchError(ValueError):
    """A teacher directory of another task, or whose ``vocab.txt`` is not the one it was fine-tuned with."""


def build_teacher(backbone, task: GlueTask | str, dropout: float = 0.1):
    """Put a task head on a BERT encoder.

    The head is keras-hub's: dropout then a dense layer on the pooled ``[CLS]`` output (BERT's pooler, tanh),
    as in Devlin et al. 2019, Sec. 4.1.

    Args:
        backbone: ``keras_hub.models.BertBackbone``.
        task: task name or :class:`~refbert_tf.data.GlueTask`; regression (STS-B) gets one output unit.
        dropout: dropout rate before the head.

    Returns:
        ``keras_hub.models.BertTextClassifier`` mapping ``{"token_ids", "segment_ids", "padding_mask"}`` int32
        [B, T] to logits [B, num_classes] (or a score [B, 1] for STS-B). No preprocessor: inputs are token ids.
    """
    task = get_task(task) if isinstance(task, str) else task
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=task.num_classes, preprocessor=None, activation=None, dropout=dropout
    )


def save_teacher(model, tokenizer: BertWordPieceTokenizer, out_dir: str | os.PathLike, metadata: dict) -> Path:
    """Save a fine-tuned teacher (model, vocabulary, metadata) atomically, file by file.

    Args:
        model: the classifier from :func:`build_teacher`.
        tokenizer: its tokenizer (its ``vocab.txt`` is copied).
        out_dir: destination directory (created).
        metadata: JSON-serialisable dict; ``task`` is required. Tokenizer facts are added.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = save_model_dir(out_dir, model, "model.keras", tokenizer.vocab_path)
    faults.reached("save:model")
    meta = dict(metadata)
    meta.update(
        model_sha256=file_sha256(out_dir / "model.keras"),
        vocab_size=tokenizer.vocab_size,
        vocab_sha256=tokenizer.vocab_sha256,
        lowercase=tokenizer.lowercase,
        max_seq_len=tokenizer.max_seq_len,
    )
    write_json(out_dir / "teacher.json", meta)
    return out_dir


def load_teacher(teacher_dir: str | os.PathLike, task: GlueTask | str | None = None):
    """Reload a teacher written by :func:`save_teacher`.

    Args:
        teacher_dir: the directory.
        task: if given, the teacher must have been fine-tuned on this task.

    Returns:
        ``(model, tokenizer, metadata)``.

    Raises:
        TeacherNotFoundError: if the directory or one of its files is missing (names the path).
        TeacherMismatchError: if the teacher was fine-tuned on another task, or its vocabulary file was changed.
        CorruptArtifactError: ``teacher.json`` or ``model.keras`` cannot be read, or the model is not the file whose
            sha256 ``teacher.json`` records (truncated, replaced): the message names the file and what to do.
    """
    teacher_dir = Path(teacher_dir)
    missing = [f for f in TEACHER_FILES if not (teacher_dir / f).is_file()]
    if missing:
        raise TeacherNotFoundError(
            f"no fine-tuned teacher in {teacher_dir} (missing {', '.join(missing)}); "
            "run recipes/finetune_teacher.py first"
        )
    remedy = f"delete {teacher_dir} and fine-tune the teacher again (recipes/finetune_teacher.py)"
    meta = read_json(teacher_dir / "teacher.json", remedy)
    if task is not None:
        task = get_task(task) if isinstance(task, str) else task
        if meta.get("task") != task.name:
            raise TeacherMismatchError(
                f"{teacher_dir / 'teacher.json'}: teacher was fine-tuned on {meta.get('task')!r}, not {task.name!r}"
            )
    tokenizer = BertWordPieceTokenizer(
        teacher_dir / "vocab.txt", lowercase=meta["lowercase"], max_seq_len=meta["max_seq_len"]
    )
    if tokenizer.vocab_sha256 != meta["vocab_sha256"]:
        raise TeacherMismatchError(
            f"{teacher_dir / 'vocab.txt'} does not match the sha256 recorded in {teacher_dir / 'teacher.json'}: "
            "it is not the vocabulary the teacher was fine-tuned with"
        )
    model = load_artifact(
        teacher_dir / "model.keras",
        lambda path: keras.saving.load_model(path, compile=False),
        remedy,
        sha256=meta.get("model_sha256"),
    )
    return model, tokenizer, meta


def finetune_teacher(
    task: GlueTask | str,
    out_dir: str | os.PathLike,
    checkpoint=None,
    config=None,
    glue_dir=None,
    source: str = "tsv",
    max_train_examples: int | None = None,
    backbone=None,
    tokenizer=None,
    verbose="auto",
    command: str = "",
    strategy=None,
) -> dict:
    """Fine-tune a teacher on a GLUE task end to end: load, tokenize, fit (resumable), evaluate on dev, save.

    Args:
        task: GLUE task name or :class:`~refbert_tf.data.GlueTask`.
        out_dir: the teacher directory (see module docstring); resume checkpoints go to ``out_dir/backup``.
        checkpoint: checkpoint spec for :func:`~refbert_tf.models.checkpoints.load_backbone` (None: default MiniLM).
        config: :class:`~refbert_tf.config.FinetuneConfig` (None: the task's defaults).
        glue_dir: GLUE TSV directory (default ``$GLUE_DIR``).
        source: ``"tsv"`` or ``"tfds"``.
        max_train_examples: use only the first N training examples (smoke runs, tests).
        backbone, tokenizer: use these instead of loading ``checkpoint`` (tiny configs in tests).
        verbose: ``model.fit`` verbosity.
        command: the command line, recorded in the result.
        strategy: a ``tf.distribute.Strategy`` (None: the default one): the backbone, the classifier and its
            optimizer are built under its scope; ``config.batch_size`` is the global batch (a multiple of the
            replica count). Pass ``backbone`` only if it was built under the same scope.

    Returns:
        result dict: ``task``, ``metrics`` {name: percent}, ``command``, ``seconds`` (wall time of the whole run),
        ``train_seconds``, ``train_examples_per_second``, ``peak_memory_mb``, ``config``, ``checkpoint``,
        ``num_train``, ``num_dev``, ``num_truncated``.

    Raises:
        GlueDataError, CheckpointError: from the loaders.
        ValueError: a global batch that does not split over the strategy's replicas.
        RunDirError: ``out_dir`` holds a fine-tuning run of other settings, or another process is using it.
    """
    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    config = config or teacher_config(task.name)
    strategy = strategy or tf.distribute.get_strategy()
    check_global_batch(config.batch_size, strategy)
    keras.utils.set_random_seed(config.seed)
    train = load_glue(task, "train", source=source, glue_dir=glue_dir)
    if max_train_examples:
        train = train.take(max_train_examples)
    dev = load_glue(task, "dev", source=source, glue_dir=glue_dir)
    out_dir = Path(out_dir)
    with run_lock(out_dir):
        record = {"task": task.name, "checkpoint": "(given)" if backbone is not None else str(checkpoint or "default"),
                  "source": source, "max_train_examples": max_train_examples, "config": dataclasses.asdict(config)}  # fmt: skip
        check_run_config(out_dir, record, finished_card=out_dir / "teacher.json")
        checkpoint_name = "custom"
        with strategy.scope():  # backbone, classifier and optimizer
            if backbone is None:
                backbone, tokenizer, info = load_backbone(checkpoint, max_seq_len=config.max_seq_len)
                checkpoint_name = info.spec
            model = build_teacher(backbone, task, dropout=config.dropout)
            train_features = tokenizer.encode(train.text_a, train.text_b, config.max_seq_len)
            dev_features = tokenizer.encode(dev.text_a, dev.text_b, config.max_seq_len)
            history = fit(
                model, task, train_features, train.labels, config, out_dir / "backup", verbose=verbose,
                delete_checkpoint=False,
            )  # fmt: skip
        metrics = evaluate(model, task, dev_features, dev.labels)
        result = {
            "task": task.name,
            "metrics": metrics,
            "main_metric": task.main_metric,
            "command": command,
            "code_version": code_version(),
            "seconds": round(time.perf_counter() - start, 1),
            "train_seconds": round(history.seconds, 1),
            "train_examples_per_second": round(history.examples_per_second, 1),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "checkpoint": checkpoint_name,
            "num_train": len(train),
            "num_dev": len(dev),
            "num_truncated": {"train": train_features["num_truncated"], "dev": dev_features["num_truncated"]},
            "data_source": train.source,
            "config": dataclasses.asdict(config),
            "strategy": strategy_info(strategy),
            "final_train_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
        }
        save_teacher(
            model,
            tokenizer,
            out_dir,
            {k: result[k] for k in ("task", "metrics", "checkpoint", "config")}
            | {"labels": list(task.labels), "num_classes": task.num_classes},
        )
        remove_checkpoints(out_dir / "backup")  # only now: a run killed before the save resumes without training
        return result


def load_or_finetune_teacher(
    task: GlueTask | str,
    teacher_dir,
    finetune_missing: bool = True,
    checkpoint=None,
    glue_dir=None,
    source: str = "tsv",
    verbose="auto",
    strategy=None,
):
    """The fine-tuned teacher of ``teacher_dir``, fine-tuned there first (with the task's defaults) if missing.

    Args:
        task: GLUE task.
        teacher_dir: the teacher directory (see :func:`save_teacher`).
        finetune_missing: fine-tune a missing teacher instead of raising.
        checkpoint: checkpoint to fine-tune from (None: the default MiniLM).
        glue_dir, source: GLUE data for the fine-tuning.
        verbose: ``fit`` verbosity.
        strategy: the ``tf.distribute.Strategy`` to build the teacher under (None: the default one).

    Returns:
        ``(model, tokenizer, metadata)`` as :func:`load_teacher`.

    Raises:
        TeacherNotFoundError: no teacher and ``finetune_missing`` is False.
    """
    task = get_task(task) if isinstance(task, str) else task
    teacher_dir = Path(teacher_dir)
    strategy = strategy or tf.distribute.get_strategy()
    if not (teacher_dir / "teacher.json").is_file():
        if not finetune_missing:
            raise TeacherNotFoundError(
                f"no fine-tuned {task.name} teacher in {teacher_dir}: run recipes/finetune_teacher.py --task "
                f"{task.name}, or drop --no-finetune-teacher"
            )
        result = finetune_teacher(
            task,
            teacher_dir,
            checkpoint=checkpoint,
            glue_dir=glue_dir,
            source=source,
            verbose=verbose,
            command="(fine-tuned by distill_glue)",
            strategy=strategy,
        )
        write_json(teacher_dir / "finetune_result.json", result)
    with strategy.scope():
        return load_teacher(teacher_dir, task=task)
