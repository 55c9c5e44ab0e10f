"""Stage I of mixed-vocabulary distillation, end to end: a teacher that reads a small student vocabulary.

:func:`mixed_vocabulary_teacher` learns a student vocabulary from the task's training text
(:func:`refbert_tf.vocabulary.train_student_vocabulary`), trains the fine-tuned teacher further on mixed inputs
(:class:`refbert_tf.models.mixed_vocabulary.MixedVocabularyTeacher`; Zhao et al. 2021, Sec. 3.1) and saves the
stage-II teacher, an ordinary teacher directory (:mod:`refbert_tf.models.teacher`) whose ``vocab.txt`` is the
student vocabulary. Stage II is the main job unchanged, run with that directory as its teacher
(``recipes/distill_glue.py --student-vocab-size N``): the bank, the pruned initialisation, the losses and the
export all read the student vocabulary from it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np

from refbert_tf.cli import code_version
from refbert_tf.config import MixedVocabConfig, mixed_vocab_config
from refbert_tf.data import GlueTask, get_task, load_glue, make_dataset
from refbert_tf.io_utils import atomic_path, file_sha256, load_artifact, write_json
from refbert_tf.models.mixed_vocabulary import MixedVocabularyTeacher, svd_embedding_init
from refbert_tf.models.teacher import load_teacher, save_teacher
from refbert_tf.resume import remove_checkpoints
from refbert_tf.rundir import check_run_config, run_lock
from refbert_tf.tokenization import BertWordPieceTokenizer, concat_encoded
from refbert_tf.training import evaluate, optimizer_for, peak_memory_mb, plan_steps, predict_outputs, run_fit
from refbert_tf.vocabulary import mixed_tokenize, train_student_vocabulary, unknown_rate

LEARNED_VOCAB = "student_vocab.txt"  # the learned vocabulary while stage I runs (vocab.txt once saved)


def mixed_encode(teacher_tok, student_tok, text_a, text_b, p: float, seed: int, max_seq_len: int) -> dict:
    """Mixed-vocabulary model inputs: every word of every text tokenized with the student vocabulary with
    probability ``p`` (ids offset by the teacher's vocabulary size), packed with the teacher's special tokens.

    Returns:
        ``encode``-style features (ragged ``token_ids``, ``segment_ids``; ``num_truncated``).
    """
    segments = [mixed_tokenize(teacher_tok, student_tok, text_a, p, seed)[0]]
    if text_b is not None:
        segments.append(mixed_tokenize(teacher_tok, student_tok, text_b, p, seed + 7919)[0])
    return teacher_tok.pack(segments, max_seq_len)


def learn_vocabulary(train, path: Path, config: MixedVocabConfig, lowercase: bool) -> Path:
    """The task's student vocabulary at ``path``: learned from both texts of every training example, unless a
    previous (interrupted) run left it there: that file is the vocabulary (a second training may differ in a
    few tie-broken pieces, see :func:`~refbert_tf.vocabulary.train_student_vocabulary`)."""
    if path.is_file():
        return path
    texts = list(train.text_a) + (list(train.text_b) if train.text_b is not None else [])
    return train_student_vocabulary(
        texts, config.student_vocab_size, path, lowercase=lowercase, min_frequency=config.vocab_min_frequency
    )


def cached_teacher_logits(teacher, features: dict, path: Path) -> np.ndarray:
    """The original teacher's logits [N, C] on ``features``, computed once and kept at ``path`` (``.npy``)."""
    if path.is_file():
        return load_artifact(path, np.load, f"delete {path}; the next run computes it again")
    logits = predict_outputs(teacher, features)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, logits)
    return logits


def mixed_vocabulary_teacher(
    task: GlueTask | str,
    teacher_dir,
    out_dir,
    config: MixedVocabConfig | None = None,
    glue_dir=None,
    source: str = "tsv",
    max_train_examples: int | None = None,
    verbose="auto",
    command: str = "",
) -> dict:
    """Stage I: learn a student vocabulary and train a teacher that reads it; save the stage-II teacher.

    Args:
        task: GLUE task.
        teacher_dir: the fine-tuned teacher (:func:`~refbert_tf.models.teacher.load_teacher`).
        out_dir: the stage-II teacher directory written here (``model.keras`` with vocabulary V_s, ``vocab.txt``
            the student vocabulary, ``teacher.json`` with a ``mixed_vocabulary`` entry); resume checkpoints in
            ``out_dir/backup``.
        config: :class:`~refbert_tf.config.MixedVocabConfig` (None: the task's defaults).
        glue_dir, source: GLUE data.
        max_train_examples: use only the first N training examples (smoke runs, tests).
        verbose: ``fit`` verbosity.
        command: the command line, recorded in the result.

    Returns:
        result dict: ``task``, ``metrics`` (the stage-II teacher on dev tokenized with the student vocabulary
        alone), ``teacher_metrics`` (the original teacher), ``mixed_metrics`` (the trained model at ``p``, and on
        the teacher's tokenization), ``vocabulary`` (size, sha256, [UNK] rate on dev, pieces per word, share of
        pieces the teacher has), ``seconds``, ``train_seconds``, ``peak_memory_mb``, ``config``, ``command``.

    Raises:
        TeacherNotFoundError, TeacherMismatchError, CorruptArtifactError: from :func:`load_teacher`.
        GlueDataError: from the loaders.
        RunDirError: ``out_dir`` holds a stage-I run of other settings, or another process is using it.
    """
    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    config = config or mixed_vocab_config(task.name)
    out_dir, teacher_dir = Path(out_dir), Path(teacher_dir)
    with run_lock(out_dir):
        teacher_file = teacher_dir / "model.keras"  # a re-trained teacher in the same place is another run
        record = {"task": task.name, "teacher_dir": str(teacher_dir), "source": source,
                  "teacher_sha256": file_sha256(teacher_file) if teacher_file.is_file() else None,
                  "max_train_examples": max_train_examples, "config": dataclasses.asdict(config)}  # fmt: skip
        check_run_config(out_dir, record, finished_card=out_dir / "teacher.json")
        keras.utils.set_random_seed(config.seed)
        teacher, teacher_tok, teacher_meta = load_teacher(teacher_dir, task)
        max_len = min(config.max_seq_len, teacher.backbone.max_sequence_length)
        train = load_glue(task, "train", source=source, glue_dir=glue_dir)
        if max_train_examples:
            train = train.take(max_train_examples)
        dev = load_glue(task, "dev", source=source, glue_dir=glue_dir)
        vocab_path = learn_vocabulary(train, out_dir / LEARNED_VOCAB, config, teacher_tok.lowercase)
        student_tok = BertWordPieceTokenizer(vocab_path, lowercase=teacher_tok.lowercase, max_seq_len=max_len)
        targets = cached_teacher_logits(
            teacher, teacher_tok.encode(train.text_a, train.text_b, max_len), out_dir / "teacher_logits.npy"
        )
        model = MixedVocabularyTeacher(
            teacher, student_tok.vocab_size, config.embedding_dim, config.kd_weight, config.temperature,
            task.is_regression, config.train_teacher,
        )  # fmt: skip
        table, projection, shared = svd_embedding_init(
            teacher_tok, student_tok, keras.ops.convert_to_numpy(teacher.backbone.token_embedding.embeddings),
            config.embedding_dim,
        )  # fmt: skip
        model.set_student_table(table, projection)
        draws = max(1, math.ceil(config.epochs))  # one mixed tokenization per pass
        features = concat_encoded(
            mixed_encode(teacher_tok, student_tok, train.text_a, train.text_b, config.mix_prob, config.seed + d, max_len)
            for d in range(draws)
        )  # fmt: skip
        labels = {"label": np.tile(train.labels, draws), "teacher_logits": np.tile(targets, (draws, 1))}
        intervals, steps = plan_steps(len(train.labels), config.batch_size, config.epochs, config.backup_every)
        model.compile(optimizer=optimizer_for(config, intervals * steps))
        model(next(iter(make_dataset(features, None, batch_size=2))))  # build before a checkpoint is restored
        dataset = make_dataset(
            features, labels, batch_size=config.batch_size, shuffle=True, seed=config.seed, repeat=True
        )
        history = run_fit(
            model, dataset, intervals, steps, out_dir / "backup", verbose=verbose, delete_checkpoint=False
        )
        stage2 = model.student_vocabulary_teacher(packing_rows(student_tok, teacher_tok))
        dev_student = student_tok.encode(dev.text_a, dev.text_b, max_len)
        dev_mixed = mixed_encode(teacher_tok, student_tok, dev.text_a, dev.text_b, config.mix_prob, 0, max_len)
        dev_teacher = teacher_tok.encode(dev.text_a, dev.text_b, max_len)
        dev_words = teacher_tok.tokenize_words(list(dev.text_a)).values
        result = {
            "task": task.name,
            "main_metric": task.main_metric,
            "metrics": evaluate(stage2, task, dev_student, dev.labels),
            "teacher_metrics": teacher_meta.get("metrics"),
            "mixed_metrics": {
                "mixed_p": evaluate(model, task, dev_mixed, dev.labels),
                "teacher_tokenization": evaluate(model, task, dev_teacher, dev.labels),
            },
            "vocabulary": {
                "size": student_tok.vocab_size,
                "sha256": student_tok.vocab_sha256,
                "teacher_size": teacher_tok.vocab_size,
                "shared_with_teacher": round(shared, 4),
                "dev_unknown_rate": unknown_rate(student_tok, dev.text_a),
                "dev_pieces_per_word": {
                    "teacher": round(float(dev_words.values.shape[0]) / max(1, int(dev_words.nrows())), 4),
                    "student": round(
                        float(student_tok.tokenize(list(dev.text_a)).values.shape[0]) / max(1, int(dev_words.nrows())),
                        4,
                    ),
                },
                "num_truncated_dev": {"teacher": dev_teacher["num_truncated"], "student": dev_student["num_truncated"]},
            },
            "teacher_dir": str(teacher_dir),
            "teacher_sha256": file_sha256(teacher_dir / "model.keras"),
            "command": command,
            "code_version": code_version(),
            "seconds": round(time.perf_counter() - start, 1),
            "train_seconds": round(history.seconds, 1),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "num_train": len(train),
            "num_dev": len(dev),
            "config": dataclasses.asdict(config),
        }
        meta = {
            "task": task.name,
            "metrics": result["metrics"],
            "checkpoint": teacher_meta.get("checkpoint"),
            "config": teacher_meta.get("config"),
            "labels": teacher_meta.get("labels"),
            "num_classes": teacher_meta.get("num_classes"),
            "mixed_vocabulary": {k: result[k] for k in ("teacher_dir", "teacher_sha256", "teacher_metrics",
                                                        "mixed_metrics", "vocabulary", "config")},
        }  # fmt: skip
        save_teacher(stage2, student_tok, out_dir, meta)
        remove_checkpoints(out_dir / "backup")
        return result


def load_or_train_mixed_vocabulary_teacher(task, teacher_dir, out_dir, config=None, glue_dir=None, source="tsv",
                                           max_train_examples=None, verbose="auto") -> Path:  # fmt: skip
    """The stage-II teacher directory ``out_dir``, trained there first (stage I) if it has no ``teacher.json``;
    its result is written to ``out_dir/stage1_result.json``. Returns ``out_dir``. Raises as
    :func:`mixed_vocabulary_teacher`."""
    out_dir = Path(out_dir)
    if not (out_dir / "teacher.json").is_file():
        result = mixed_vocabulary_teacher(
            task,
            teacher_dir,
            out_dir,
            config,
            glue_dir,
            source,
            max_train_examples,
            verbose,
            command="(stage I by distill_glue)",
        )
        write_json(out_dir / "stage1_result.json", result)
    return out_dir


def packing_rows(student_tok, teacher_tok) -> dict[int, int]:
    """``{student id: teacher id}`` of the tokens ``pack`` inserts (``[CLS]``, ``[SEP]``, ``[PAD]``): stage I packs
    with the teacher's, so the stage-II teacher takes the teacher's rows for them
    (:meth:`MixedVocabularyTeacher.student_vocabulary_teacher`)."""
    return {student_tok.cls_id: teacher_tok.cls_id, student_tok.sep_id: teacher_tok.sep_id,
            student_tok.pad_id: teacher_tok.pad_id}  # fmt: skip
