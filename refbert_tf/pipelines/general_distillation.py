"""General distillation (TinyBERT, Jiao et al. 2020, sec. 3.3): a task-agnostic student that task distillation
(``--init DIR``) starts from."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import tensorflow as tf

from refbert_tf.cli import code_version
from refbert_tf.config import GeneralDistillConfig
from refbert_tf.data import load_text_corpus, make_dataset
from refbert_tf.distillation import Distiller
from refbert_tf.distribute import check_global_batch, strategy_info
from refbert_tf.io_utils import save_model_dir, write_json
from refbert_tf.models.checkpoints import load_backbone
from refbert_tf.models.student import build_student
from refbert_tf.training import optimizer_for, peak_memory_mb, plan_steps, run_fit


def general_distill(
    out_dir,
    checkpoint=None,
    config: GeneralDistillConfig | None = None,
    glue_dir=None,
    source: str = "tsv",
    backbone=None,
    tokenizer=None,
    verbose="auto",
    command: str = "",
    strategy=None,
) -> dict:
    """General distillation (TinyBERT, Jiao et al. 2020, sec. 3.3): a task-agnostic student for task distillation.

    The pre-trained (not fine-tuned) teacher encoder teaches the student its embeddings, attention scores and
    hidden states (Eq. 7-10, the intermediate stage of :class:`~refbert_tf.distillation.Distiller`) on unlabeled
    text: here the training splits of the GLUE tasks (:func:`refbert_tf.data.load_text_corpus`), the in-domain text
    on disk, in place of TinyBERT's Wikipedia. The student has no task head worth keeping; pass the run directory
    to ``distill_glue.py --student-init`` (``--init DIR``, :attr:`~refbert_tf.config.DistillConfig.init`). Resumable, like ``distill_glue``:
    an interrupted run resumes from its last checkpoint, and a finished one is not trained again (its stored result
    is returned) when the same configuration and teacher are asked for.

    Args:
        out_dir: run directory: ``student.keras``, ``student.json``, ``vocab.txt``, the resume checkpoint.
        checkpoint: teacher checkpoint spec for :func:`~refbert_tf.models.checkpoints.load_backbone` (None: the
            default MiniLM); ignored when ``backbone`` and ``tokenizer`` are given.
        config: :class:`~refbert_tf.config.GeneralDistillConfig` (None: defaults).
        glue_dir, source: where the corpus is read (see :func:`refbert_tf.data.load_glue`).
        backbone, tokenizer: a ready teacher encoder and its tokenizer (tests).
        verbose: ``fit`` verbosity.
        command: command line recorded in the result.
        strategy: a ``tf.distribute.Strategy`` (None: the default one).

    Returns:
        result dict: ``model`` (``general``), ``teacher`` (checkpoint spec), ``corpus`` {task: rows},
        ``num_examples``, ``loss`` (first and last interval's mean distillation loss), ``seconds``,
        ``examples_per_second``, ``peak_memory_mb``, ``student_parameters``, ``config``, ``command``,
        ``code_version``.

    Raises:
        CheckpointError: from the checkpoint loader; GlueDataError: from the corpus loader.
        ValueError: ``out_dir`` holds a finished student of another configuration or teacher.
    """
    start = time.perf_counter()
    config = config or GeneralDistillConfig()
    strategy = strategy or tf.distribute.get_strategy()
    check_global_batch(config.batch_size, strategy)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    teacher_spec = "(given)" if backbone is not None else str(checkpoint or "default")
    card_path = out_dir / "student.json"
    if card_path.is_file() and (out_dir / "student.keras").is_file():  # finished earlier
        card = json.loads(card_path.read_text(encoding="utf-8"))
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        if card.get("config") != wanted or card.get("teacher") != teacher_spec:
            raise ValueError(
                f"{out_dir} holds a finished general student of teacher {card.get('teacher')!r} and "
                f"config {card.get('config')}; this run asks for teacher {teacher_spec!r} and config "
                f"{wanted}: pass another --output-dir or delete it"
            )
        return {k: v for k, v in card.items() if k not in ("lowercase", "vocab_sha256", "max_seq_len")}
    with strategy.scope():
        if backbone is None or tokenizer is None:
            backbone, tokenizer, _ = load_backbone(checkpoint, config.max_seq_len)
    max_len = min(config.max_seq_len, backbone.max_sequence_length)
    features, counts = load_text_corpus(
        tokenizer, max_len, config.tasks, source, glue_dir, config.max_examples, config.seed
    )
    num_examples = int(features["token_ids"].nrows())
    with strategy.scope():
        student = build_student(
            config.student,
            1,
            tokenizer.vocab_size,
            backbone.hidden_dim,
            max_sequence_length=backbone.max_sequence_length,
        )
        distiller = Distiller(backbone, student, stage="intermediate")
    ds = make_dataset(features, None, batch_size=config.batch_size, shuffle=True, seed=config.seed, repeat=True)
    intervals, steps = plan_steps(num_examples, config.batch_size, config.epochs, config.backup_every)
    with strategy.scope():
        distiller.compile(optimizer=optimizer_for(config, intervals * steps))
        history = run_fit(distiller, ds, intervals, steps, out_dir / "backup", verbose=verbose)
    losses = history.history.get("distillation_loss", [])
    save_model_dir(out_dir, student, "student.keras", tokenizer.vocab_path)
    result = {
        "model": "general",
        "teacher": teacher_spec,
        "corpus": counts,
        "num_examples": num_examples,
        "num_truncated": features["num_truncated"],
        "loss": {
            "first_interval": round(float(losses[0]), 4) if losses else None,
            "last_interval": round(float(losses[-1]), 4) if losses else None,
            "intervals_run": len(losses),
        },
        "command": command,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - start, 1),
        "examples_per_second": round(intervals * steps * config.batch_size / max(history.seconds, 1e-9), 1),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "student_parameters": int(student.count_params()),
        "config": dataclasses.asdict(config),
        "strategy": strategy_info(strategy),
    }
    write_json(
        out_dir / "student.json",
        {**result, "lowercase": tokenizer.lowercase, "vocab_sha256": tokenizer.vocab_sha256, "max_seq_len": max_len},
    )
    return result
