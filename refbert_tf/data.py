"""GLUE data: loaders (local GLUE TSV directory or TensorFlow Datasets) and tf.data pipelines.

Both sources return the same :class:`GlueExamples` schema, so everything downstream (tokenization, teacher
fine-tuning, the reference bank, distillation) is source-agnostic. The task registry (:class:`GlueTask`, ``TASKS``,
:func:`get_task`, :class:`GlueDataError`) is in :mod:`refbert_tf.tasks` and re-exported here.

Local layout (as written by the original GLUE download script)::

    <glue_dir>/<TASK>/train.tsv, dev.tsv, test.tsv        (MNLI: dev_matched.tsv, dev_mismatched.tsv, ...)

The GLUE directory is taken from the ``glue_dir`` argument, else the ``GLUE_DIR`` environment variable.

TensorFlow is imported by the functions that build tensors only: this module is imported by TensorFlow-free code
(:mod:`refbert_tf.cli` before argument parsing, :mod:`refbert_tf.metrics`, :mod:`refbert_tf.predict`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from refbert_tf.tasks import TASKS, GlueDataError, GlueTask, get_task  # re-exported: the registry lives there

csv.field_size_limit(sys.maxsize)

GLUE_DIR_ENV = "GLUE_DIR"


@dataclasses.dataclass
class GlueExamples:
    """One split of one task, source-agnostic.

    Attributes:
        task: the :class:`GlueTask`.
        split: split name (``train``, ``dev``, ``test``, ``dev_mismatched``...).
        text_a: list of N first texts.
        text_b: list of N second texts, or None for single-sentence tasks.
        labels: array [N]: int32 class ids (-1 when unlabeled) or float32 scores (NaN when unlabeled).
        source: where the rows came from (file path or ``tfds:glue/<task>``).
    """

    task: GlueTask
    split: str
    text_a: list
    text_b: list | None
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def has_labels(self) -> bool:
        """False for GLUE test splits, which carry no labels."""
        if self.task.is_regression:
            return not np.isnan(self.labels).all()
        return bool((self.labels >= 0).any())

    def take(self, n: int) -> GlueExamples:
        """The first ``n`` examples (a slice, for tests and smoke runs)."""
        return dataclasses.replace(
            self,
            text_a=self.text_a[:n],
            text_b=None if self.text_b is None else self.text_b[:n],
            labels=self.labels[:n],
        )


def resolve_glue_dir(glue_dir: str | os.PathLike | None = None) -> Path:
    """Return the GLUE directory: the argument, else ``$GLUE_DIR``.

    Raises:
        GlueDataError: if neither is set, or the directory does not exist or cannot be read.
    """
    value = glue_dir if glue_dir is not None else os.environ.get(GLUE_DIR_ENV)
    if not value:
        raise GlueDataError(f"no GLUE directory: pass glue_dir / --glue-dir or set ${GLUE_DIR_ENV}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise GlueDataError(f"GLUE directory {path} does not exist (from --glue-dir / ${GLUE_DIR_ENV})")
    try:
        os.listdir(path)
    except OSError as exc:
        raise GlueDataError(f"GLUE directory {path} cannot be read ({exc.strerror or exc})") from None
    return path


def not_utf8_message(path, error: UnicodeDecodeError) -> str:
    """``<path>:<line>: not UTF-8 text ...`` for a decoding ``error`` met while reading ``path``: the first line of
    the file that does not decode (UTF-8 never uses a newline byte inside a character, so lines decode alone)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return (
                    f"{path}:{number}: not UTF-8 text (byte 0x{line[bad.start]:02x} at byte {bad.start + 1} of "
                    "the line); save the file as UTF-8"
                )
    return f"{path}: not UTF-8 text ({error.reason}); save the file as UTF-8"


def _read_rows(path: Path) -> list[list[str]]:
    """The tab-separated rows of a GLUE TSV (UTF-8, a byte-order mark allowed, LF or CRLF line ends).

    Raises:
        GlueDataError: the file cannot be read, is not UTF-8 (naming the line) or is not parseable.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            try:
                return list(reader)
            except csv.Error as exc:
                raise GlueDataError(f"{path}:{reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise GlueDataError(not_utf8_message(path, exc)) from None
    except OSError as exc:
        raise GlueDataError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _parse_label(task: GlueTask, raw: str, where: str):
    raw = raw.strip()
    if task.is_regression:
        try:
            value = float(raw)
        except ValueError:
            raise GlueDataError(f"{where}: label {raw!r} is not a number (STS-B scores are floats in [0, 5])") from None
        if not math.isfinite(value):
            raise GlueDataError(f"{where}: label {raw!r} is not a finite number")
        return value
    if raw not in task.labels:
        raise GlueDataError(f"{where}: label {raw!r} is not one of {list(task.labels)} for task {task.name}")
    return task.labels.index(raw)


def read_glue_tsv(task: str | GlueTask, split: str = "train", glue_dir=None, path=None) -> GlueExamples:
    """Read one split of a GLUE task from the standard TSV layout.

    Columns are found by header name (by position for header-less CoLA), so the extra columns of MNLI/STS-B
    files are handled. Test splits have no labels (-1, or NaN for STS-B). The file is UTF-8 (a byte-order mark is
    allowed), with LF or CRLF line ends; there is no quoting, so a text cannot hold a tab or a line break (CR, LF),
    and each text is stripped of surrounding whitespace.

    Args:
        task: task name or :class:`GlueTask`.
        split: ``train``, ``dev``, ``test`` (MNLI also ``dev_matched``, ``dev_mismatched``...).
        glue_dir: GLUE root directory (default ``$GLUE_DIR``).
        path: read this TSV file instead of ``<glue_dir>/<TASK>/<split>.tsv``.

    Returns:
        :class:`GlueExamples`.

    Raises:
        GlueDataError: unknown task or split; a missing or unreadable file, one that is not UTF-8, an empty file
            or one without rows after the header; a row with too few columns or more than the header (a tab
            inside a text), a non-numeric or unknown label, or an empty text (the message names the file and the
            1-based line number).
    """
    task = get_task(task) if isinstance(task, str) else task
    if split not in task.splits:
        raise GlueDataError(f"unknown split {split!r} for task {task.name}; known: {list(task.splits)}")
    if path is None:
        path = resolve_glue_dir(glue_dir) / task.dirname / f"{task.splits[split]}.tsv"
    path = Path(path)
    if not path.is_file():
        raise GlueDataError(f"GLUE file not found: {path}")
    labeled = not split.startswith("test")
    rows = _read_rows(path)
    first_line, header = 1, None
    if task.has_header:
        if not rows:
            raise GlueDataError(f"{path}: empty file, expected a header row")
        header = [h.strip() for h in rows[0]]
        rows, first_line = rows[1:], 2
        text_names = task.text_columns
        if not labeled and task.test_text_columns:
            text_names = task.test_text_columns
        missing = [c for c in (*text_names, *([task.label_column] if labeled else [])) if c not in header]
        if missing:
            raise GlueDataError(f"{path}:1: header lacks column(s) {missing}; header is {header}")
        text_idx = [header.index(c) for c in text_names]
        label_idx = header.index(task.label_column) if labeled else None
    elif labeled:
        text_idx, label_idx = list(task.text_columns), task.label_column
    else:  # header-less task, test split: "index<TAB>sentence" with a header
        header = [h.strip() for h in rows[0]] if rows else []
        if "sentence" not in header:
            raise GlueDataError(f"{path}:1: expected a header with a 'sentence' column, got {header}")
        rows, first_line = rows[1:], 2
        text_idx, label_idx = [header.index("sentence")], None
    if not rows:
        raise GlueDataError(
            f"{path}: no examples" + (" after the header row" if header is not None else " (empty file)")
        )
    needed = max(text_idx + ([label_idx] if label_idx is not None else [])) + 1
    width = len(header) if header is not None else needed  # a row with more columns has a tab inside a text
    texts = [[] for _ in text_idx]
    labels = []
    for offset, row in enumerate(rows):
        where = f"{path}:{first_line + offset}"
        if not row or (len(row) == 1 and not row[0].strip()):
            raise GlueDataError(f"{where}: blank line")
        if len(row) < needed:
            raise GlueDataError(f"{where}: expected at least {needed} tab-separated columns, got {len(row)}")
        if len(row) > width:
            raise GlueDataError(
                f"{where}: expected {width} tab-separated columns, got {len(row)} (a tab inside a text?)"
            )
        for bucket, i in zip(texts, text_idx):
            text = row[i].strip()
            if not text:
                raise GlueDataError(f"{where}: empty text in column {i + 1}")
            bucket.append(text)
        if label_idx is None:
            labels.append(float("nan") if task.is_regression else -1)
        else:
            labels.append(_parse_label(task, row[label_idx], where))
    dtype = np.float32 if task.is_regression else np.int32
    return GlueExamples(
        task, split, texts[0], texts[1] if len(texts) > 1 else None, np.asarray(labels, dtype=dtype), str(path)
    )


def load_tfds(task: str | GlueTask, split: str = "train", data_dir=None) -> GlueExamples:
    """Load one split through ``tensorflow_datasets`` (``glue/<task>``); downloads when online.

    Args:
        task: task name or :class:`GlueTask`.
        split: as in :func:`read_glue_tsv`.
        data_dir: TFDS data directory (default: TFDS's own).

    Raises:
        GlueDataError: unknown task or split; wraps any TFDS download/preparation failure (for instance when
            offline) with a hint to use the local TSV directory instead.
    """
    task = get_task(task) if isinstance(task, str) else task
    if split not in task.tfds_splits:
        raise GlueDataError(f"unknown split {split!r} for task {task.name}; known: {list(task.tfds_splits)}")
    import tensorflow_datasets as tfds  # lazy: imports TensorFlow; this module stays TensorFlow-free at import

    name = f"glue/{task.name}"
    try:
        ds = tfds.load(name, split=task.tfds_splits[split], data_dir=data_dir, download=True)
        records = list(tfds.as_numpy(ds))
    except Exception as exc:  # TFDS raises many types (network, checksum, missing builder)
        raise GlueDataError(
            f"tensorflow-datasets could not load {name}[{task.tfds_splits[split]}]: {exc}; "
            f"offline, use --source tsv with --glue-dir / ${GLUE_DIR_ENV}"
        ) from exc
    records.sort(key=lambda r: int(r["idx"]))
    texts = [[r[f].decode("utf-8") for r in records] for f in task.tfds_text_features]
    if task.is_regression:
        labels = np.asarray([r["label"] for r in records], dtype=np.float32)
        if split.startswith("test"):
            labels[:] = np.nan
    else:
        labels = np.asarray([r["label"] for r in records], dtype=np.int32)  # TFDS uses -1 for test
    return GlueExamples(task, split, texts[0], texts[1] if len(texts) > 1 else None, labels, f"tfds:{name}")


def load_glue(
    task: str | GlueTask, split: str = "train", source: str = "tsv", glue_dir=None, data_dir=None
) -> GlueExamples:
    """Load a split from ``source`` = ``"tsv"`` (local GLUE directory) or ``"tfds"`` (TensorFlow Datasets).

    Raises:
        GlueDataError: for an unknown source, plus everything the chosen loader raises.
    """
    if source == "tsv":
        return read_glue_tsv(task, split, glue_dir=glue_dir)
    if source == "tfds":
        return load_tfds(task, split, data_dir=data_dir)
    raise GlueDataError(f"unknown data source {source!r}; use 'tsv' or 'tfds'")


# ----------------------------------------------------------------------------------------------- tf.data

DEFAULT_BUCKET_BOUNDARIES = (16, 32, 64, 128, 256)


def load_encoded_splits(
    task: str | GlueTask,
    tokenizer,
    max_seq_len: int,
    source: str = "tsv",
    glue_dir=None,
    max_train_examples: int | None = None,
):
    """Train and dev splits of a task, loaded (:func:`load_glue`) and encoded with ``tokenizer``.

    Args:
        task: GLUE task.
        tokenizer: a :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
        max_seq_len: packed length limit (longer inputs are truncated, as ``encode`` documents).
        source, glue_dir: see :func:`load_glue`.
        max_train_examples: keep only the first N training examples.

    Returns:
        ``(train, dev, train_features, dev_features)``: :class:`GlueExamples` and ``encode`` outputs.

    Raises:
        GlueDataError: from the loaders.
    """
    train = load_glue(task, "train", source=source, glue_dir=glue_dir)
    if max_train_examples:
        train = train.take(max_train_examples)
    dev = load_glue(task, "dev", source=source, glue_dir=glue_dir)
    return (
        train,
        dev,
        tokenizer.encode(train.text_a, train.text_b, max_seq_len),
        tokenizer.encode(dev.text_a, dev.text_b, max_seq_len),
    )


def load_text_corpus(
    tokenizer,
    max_seq_len: int,
    tasks: Sequence[str] | None = None,
    source: str = "tsv",
    glue_dir=None,
    max_examples: int | None = None,
    seed: int = 0,
):
    """Unlabeled text for general distillation: the *training* splits of GLUE tasks, encoded as each task's inputs
    (single sentences or segment-A/segment-B pairs). Dev and test splits are never read, so students distilled
    from this corpus are still evaluated on text they have not seen.

    Args:
        tokenizer: a :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
        max_seq_len: packed length limit (tokens; longer inputs are truncated, as ``encode`` documents).
        tasks: task names; None means every task in ``TASKS`` whose training split is present (with the local
            GLUE copy: CoLA, SST-2, MRPC, STS-B, RTE, WNLI; MNLI, QQP and QNLI when their train files exist).
        source, glue_dir: see :func:`load_glue`.
        max_examples: keep a random subset of this many rows (seeded by ``seed``), in corpus order.
        seed: subset seed.

    Returns:
        ``(features, counts)``: ``encode`` outputs for the N rows (``token_ids``, ``segment_ids``: RaggedTensor
        [N, (T)]; ``num_truncated``: rows cut to ``max_seq_len``, None for a subset) and ``{task: rows used}``.

    Raises:
        GlueDataError: an unknown task or a missing file among explicitly named ``tasks``, no task found, a
            malformed row (from :func:`load_glue`).
    """
    import tensorflow as tf  # lazy: this module stays TensorFlow-free at import (cli, metrics, predict)

    names = [get_task(t).name for t in tasks] if tasks else list(TASKS)
    parts, counts = [], {}
    for name in names:
        try:
            examples = load_glue(name, "train", source=source, glue_dir=glue_dir)
        except GlueDataError as exc:
            if tasks or "not found" not in str(exc):
                raise
            continue  # this GLUE copy lacks the task's training file
        parts.append(tokenizer.encode(examples.text_a, examples.text_b, max_seq_len))
        counts[name] = len(examples)
    if not parts:
        raise GlueDataError(f"no GLUE training split found under {resolve_glue_dir(glue_dir)} for {names}")
    features = {key: tf.concat([p[key] for p in parts], axis=0) for key in ("token_ids", "segment_ids")}
    features["num_truncated"] = int(sum(p["num_truncated"] for p in parts))
    total = sum(counts.values())
    if max_examples and max_examples < total:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_examples, replace=False))
        features = {**take_examples(features, keep), "num_truncated": None}  # not tracked for a subset
        bounds = np.cumsum([0, *counts.values()])
        counts = {
            name: int(np.sum((keep >= lo) & (keep < hi))) for name, lo, hi in zip(counts, bounds[:-1], bounds[1:])
        }
    return features, counts


# per-example model inputs that make_dataset carries besides the tokens
EXTRA_INPUTS = ("reference_index", "anchor_position")


def take_examples(features: dict, rows) -> dict:
    """The examples ``rows`` (int [n]) of encoded features, in that order: ``token_ids``, ``segment_ids`` and the
    ``EXTRA_INPUTS`` present, gathered row-wise; whole-set entries such as ``num_truncated`` are left out."""
    import tensorflow as tf  # lazy, as make_dataset

    return {
        name: tf.gather(value, rows)
        for name, value in features.items()
        if name in ("token_ids", "segment_ids", *EXTRA_INPUTS)
    }


def make_dataset(
    features: dict,
    labels: np.ndarray | None = None,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    bucket_boundaries: Sequence[int] | None = DEFAULT_BUCKET_BOUNDARIES,
    repeat: bool = False,
):
    """Build a ``tf.data.Dataset`` of ``(inputs, label)`` batches with dynamic padding.

    Args:
        features: packed, unpadded features from :meth:`refbert_tf.tokenization.BertWordPieceTokenizer.encode`:
            ``{"token_ids": RaggedTensor[N, (T)], "segment_ids": RaggedTensor[N, (T)]}``, plus optionally the
            per-example inputs named in ``EXTRA_INPUTS`` (``anchor_position`` int32 [N]: dense retrieval's own
            anchor of each row, -1 for none; ``reference_index`` int32 [N] or [N, k]: the offline
            reference of each training example), which stay with their example through shuffling and bucketing.
        labels: array [N] (int class ids or float scores), or None for inference.
        batch_size: examples per batch.
        shuffle: shuffle examples each epoch (use for training).
        seed: shuffle seed.
        bucket_boundaries: with ``shuffle``, group examples of similar length (``bucket_by_sequence_length``)
            so little compute is spent on padding; each batch is padded to its bucket's upper bound (the
            longest training example for the last bucket), so a compiled train step sees few shapes. Evaluation
            (``shuffle=False``) keeps the original order and pads each batch to its longest member.
        repeat: repeat forever (then pass ``steps_per_epoch`` to ``fit``).

    Returns:
        dataset yielding ``({"token_ids", "segment_ids", "padding_mask"}: int32 [B, T], label [B])``, or the
        inputs dict alone when ``labels`` is None. ``T`` varies from batch to batch. Extra inputs come batched
        as ``[B, ...]``.

    Raises:
        ValueError: if an extra input's row count differs from the number of examples.
    """
    import tensorflow as tf  # lazy: this module stays TensorFlow-free at import (cli, metrics, predict)

    ids, segs = features["token_ids"], features["segment_ids"]
    elements = {"token_ids": ids, "segment_ids": segs}
    for name in EXTRA_INPUTS:  # fixed-shape per-example inputs ride along with their example
        if name in features:
            extra = features[name]
            if int(extra.shape[0]) != int(ids.nrows()):
                raise ValueError(f"features[{name!r}] has {int(extra.shape[0])} rows for {int(ids.nrows())} examples")
            elements[name] = extra
    ds = tf.data.Dataset.from_tensor_slices((elements, labels) if labels is not None else (elements,))

    def to_inputs(x, *y):
        x = dict(x)
        x["padding_mask"] = tf.ones_like(x["token_ids"])
        return (x, *y) if y else x

    if shuffle:
        ds = ds.shuffle(int(ids.nrows()), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle and bucket_boundaries:
        max_len = int(tf.reduce_max(ids.row_lengths())) if int(ids.nrows()) else 1
        bounds = [b + 1 for b in bucket_boundaries if b < max_len] + [max_len + 1]
        ds = ds.bucket_by_sequence_length(  # pad to the bucket's length: few shapes, few graph traces
            element_length_func=lambda x, *y: tf.shape(x["token_ids"])[0],
            bucket_boundaries=bounds,
            bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
            pad_to_bucket_boundary=True,
            drop_remainder=False,
        )
    else:
        ds = ds.padded_batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
