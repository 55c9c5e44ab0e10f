"""GLUE tasks: task registry, loaders (local GLUE TSV directory or TensorFlow Datasets), tf.data pipelines.

Both sources return the same :class:`GlueExamples` schema, so everything downstream (tokenization, teacher
fine-tuning, the reference bank, distillation) is source-agnostic.

Local layout (as written by the original GLUE download script)::

    <glue_dir>/<TASK>/train.tsv, dev.tsv, test.tsv        (MNLI: dev_matched.tsv, dev_mismatched.tsv, ...)

The GLUE directory is taken from the ``glue_dir`` argument, else the ``GLUE_DIR`` environment variable.
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

csv.field_size_limit(sys.maxsize)

GLUE_DIR_ENV = "GLUE_DIR"


class GlueDataError(ValueError):
    """Raised for unknown tasks or splits, missing files and malformed rows (message names file and line)."""


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """Static description of one GLUE task.

    Attributes:
        name: canonical lower-case name (``"sst2"``).
        dirname: folder name in the GLUE TSV layout (``"SST-2"``).
        text_columns: header names of the one or two text columns (ints for header-less CoLA).
        label_column: header name (or index) of the label column.
        labels: label strings in class-id order; empty for regression (STS-B).
        metric_names: official metrics, main metric first.
        splits: split name -> TSV file stem.
        tfds_name: TensorFlow Datasets builder name.
        tfds_text_features: TFDS feature names of the text fields.
        tfds_splits: split name -> TFDS split name.
        has_header: whether train/dev TSVs start with a header row.
    """

    name: str
    dirname: str
    text_columns: tuple
    label_column: object
    labels: tuple
    metric_names: tuple
    tfds_text_features: tuple
    splits: dict = dataclasses.field(default_factory=lambda: {"train": "train", "dev": "dev", "test": "test"})
    tfds_splits: dict = dataclasses.field(
        default_factory=lambda: {"train": "train", "dev": "validation", "test": "test"}
    )
    has_header: bool = True
    test_text_columns: tuple | None = None

    @property
    def is_regression(self) -> bool:
        """True for STS-B (a real-valued similarity score in [0, 5])."""
        return not self.labels

    @property
    def num_classes(self) -> int:
        """Number of output units of a task head: 1 for regression."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks."""
        return len(self.text_columns) == 2

    @property
    def main_metric(self) -> str:
        """Name of the task's headline metric (accuracy, F1 for MRPC/QQP, MCC for CoLA, Pearson for STS-B)."""
        return self.metric_names[0]


_NLI = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask(
            "cola",
            "CoLA",
            (3,),
            1,
            ("0", "1"),
            ("mcc",),
            ("sentence",),
            has_header=False,
            test_text_columns=("sentence",),
        ),
        GlueTask("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",), ("sentence",)),
        GlueTask(
            "mrpc",
            "MRPC",
            ("#1 String", "#2 String"),
            "Quality",
            ("0", "1"),
            ("f1", "accuracy"),
            ("sentence1", "sentence2"),
        ),
        GlueTask(
            "stsb",
            "STS-B",
            ("sentence1", "sentence2"),
            "score",
            (),
            ("pearson", "spearman"),
            ("sentence1", "sentence2"),
        ),
        GlueTask(
            "qqp",
            "QQP",
            ("question1", "question2"),
            "is_duplicate",
            ("0", "1"),
            ("f1", "accuracy"),
            ("question1", "question2"),
        ),
        GlueTask(
            "mnli",
            "MNLI",
            ("sentence1", "sentence2"),
            "gold_label",
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            ("premise", "hypothesis"),
            splits={
                "train": "train",
                "dev": "dev_matched",
                "dev_matched": "dev_matched",
                "dev_mismatched": "dev_mismatched",
                "test": "test_matched",
                "test_matched": "test_matched",
                "test_mismatched": "test_mismatched",
            },
            tfds_splits={
                "train": "train",
                "dev": "validation_matched",
                "dev_matched": "validation_matched",
                "dev_mismatched": "validation_mismatched",
                "test": "test_matched",
                "test_matched": "test_matched",
                "test_mismatched": "test_mismatched",
            },
        ),
        GlueTask("qnli", "QNLI", ("question", "sentence"), "label", _NLI, ("accuracy",), ("question", "sentence")),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label", _NLI, ("accuracy",), ("sentence1", "sentence2")),
        GlueTask(
            "wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",), ("sentence1", "sentence2")
        ),
    ]
}
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def get_task(name: str) -> GlueTask:
    """Look up a GLUE task by name (case-insensitive; ``SST-2`` and ``sst2`` both work).

    Raises:
        GlueDataError: for an unknown task name, listing the known ones.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise GlueDataError(f"unknown GLUE task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[key]


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
        GlueDataError: if neither is set or the directory does not exist.
    """
    value = glue_dir if glue_dir is not None else os.environ.get(GLUE_DIR_ENV)
    if not value:
        raise GlueDataError(f"no GLUE directory: pass glue_dir / --glue-dir or set ${GLUE_DIR_ENV}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise GlueDataError(f"GLUE directory {path} does not exist (from --glue-dir / ${GLUE_DIR_ENV})")
    return path


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
    files are handled. Test splits have no labels (-1, or NaN for STS-B).

    Args:
        task: task name or :class:`GlueTask`.
        split: ``train``, ``dev``, ``test`` (MNLI also ``dev_matched``, ``dev_mismatched``...).
        glue_dir: GLUE root directory (default ``$GLUE_DIR``).
        path: read this TSV file instead of ``<glue_dir>/<TASK>/<split>.tsv``.

    Returns:
        :class:`GlueExamples`.

    Raises:
        GlueDataError: unknown task or split; missing file; a row with too few columns, a non-numeric or unknown
            label, or an empty text (the message names the file and the 1-based line number).
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
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    first_line = 1
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
    needed = max(text_idx + ([label_idx] if label_idx is not None else [])) + 1
    texts = [[] for _ in text_idx]
    labels = []
    for offset, row in enumerate(rows):
        where = f"{path}:{first_line + offset}"
        if not row or (len(row) == 1 and not row[0].strip()):
            raise GlueDataError(f"{where}: blank line")
        if len(row) < needed:
            raise GlueDataError(f"{where}: expected at least {needed} tab-separated columns, got {len(row)}")
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
    import tensorflow_datasets as tfds

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
    import tensorflow as tf

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
        features = {
            **{key: tf.gather(features[key], keep) for key in ("token_ids", "segment_ids")},
            "num_truncated": None,
        }  # not tracked for a subset
        bounds = np.cumsum([0, *counts.values()])
        counts = {
            name: int(np.sum((keep >= lo) & (keep < hi))) for name, lo, hi in zip(counts, bounds[:-1], bounds[1:])
        }
    return features, counts


EXTRA_INPUTS = ("reference_index",)  # per-example model inputs that make_dataset carries besides the tokens


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
            per-example inputs named in ``EXTRA_INPUTS`` (``reference_index`` int32 [N] or [N, k]: the offline
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
    import tensorflow as tf

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
