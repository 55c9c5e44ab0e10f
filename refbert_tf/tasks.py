"""The GLUE task registry: :class:`GlueTask` descriptions, ``TASKS`` and :func:`get_task`.

Imports only the standard library (no TensorFlow, no NumPy), so command-line parsing (the ``--task`` help of the
recipes) and task look-ups stay fast. The loaders are in :mod:`refbert_tf.data`.
"""

from __future__ import annotations

import dataclasses


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
