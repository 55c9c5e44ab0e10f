"""The dense side of a reference bank: each anchor's key in the fine-tuned teacher's space and the teacher's class
probabilities on it, and every training row's dense reference.

Dense retrieval (``DistillConfig.retrieval = "dense"``) keeps the bank's anchors (:mod:`refbert_tf.bank.build`
chooses them) and their reference tokens, and finds an input's reference by cosine similarity of teacher keys
(:mod:`refbert_tf.dense_retrieval`) instead of hashed wordpieces: the space in which nearest training examples
share the label (ReAugKD, Zhang et al., ACL 2023; kNN-CM, Findings of EMNLP 2023). During training an example's
reference is its nearest *other* anchor in the teacher's own space (offline, like the lexical references); on the
device the student's learned query finds it (:class:`~refbert_tf.models.student.RefBertStudent`).

The keys of every training row are one teacher pass over the training set; :func:`load_or_build_dense_anchors`
caches them (with the anchors' keys and probabilities) as ``dense-<space>.npz`` in the bank directory, written
atomically and checked against the bank and teacher on reuse.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy.special import softmax

from refbert_tf.bank.store import BankError, ReferenceBank, label_agreement
from refbert_tf.dense_retrieval import KEY_SPACES, dense_neighbours, teacher_keys, vote_labels
from refbert_tf.io_utils import atomic_path, load_artifact


@dataclasses.dataclass
class DenseAnchors:
    """The bank's anchors in a teacher key space.

    Attributes:
        keys: float32 [M, D], unit-norm teacher keys of the anchors.
        soft_labels: float32 [M, C], the teacher's class probabilities on each anchor (softmax of its logits); for
            regression (C = 1) a column of ones (the early entry reads only keys).
        anchor_ids: int64 [M], the anchors' training rows (the bank's ``anchor_ids``).
        train_keys: float32 [N, D], unit-norm keys of every training row (offline references, query targets).
        space: the key space (:data:`~refbert_tf.dense_retrieval.KEY_SPACES`).
    """

    keys: np.ndarray
    soft_labels: np.ndarray
    anchor_ids: np.ndarray
    train_keys: np.ndarray
    space: str

    @property
    def num_anchors(self) -> int:
        """M."""
        return int(self.keys.shape[0])

    @property
    def key_dim(self) -> int:
        """D."""
        return int(self.keys.shape[1])

    def anchor_positions(self, rows) -> np.ndarray:
        """int32 [len(rows)]: the anchor index of each training row in ``rows``, -1 for rows that are no anchor
        (the ``anchor_position`` input that keeps an example from retrieving itself)."""
        position = np.full(len(self.train_keys), -1, np.int32)
        position[self.anchor_ids] = np.arange(self.num_anchors, dtype=np.int32)
        return position[np.asarray(rows, np.int64)]

    def references_for_rows(self, rows, top_k: int = 1) -> np.ndarray:
        """The ``top_k`` nearest anchors (teacher keys, cosine) of training rows ``rows`` [N], the row's own anchor
        excluded: int32 [N] for ``top_k`` 1, else [N, k]."""
        rows = np.asarray(rows, np.int64)
        found, _ = dense_neighbours(self.train_keys[rows], self.keys, k=top_k, exclude=self.anchor_positions(rows))
        found = found.astype(np.int32)
        return found[:, 0] if top_k == 1 else found


def _cache_matches(cached: dict, teacher_id: str, bank: ReferenceBank, space: str, num_train: int) -> bool:
    """A cached ``dense-<space>.npz`` is this run's: same teacher, space, anchors and training rows."""
    return (
        str(cached["teacher_id"]) == teacher_id
        and str(cached["space"]) == space
        and np.array_equal(cached["anchor_ids"], bank.anchor_ids)
        and len(cached["train_keys"]) == num_train
    )


def load_or_build_dense_anchors(
    bank_dir, bank: ReferenceBank, teacher, train_features: dict, space: str, teacher_id: str, regression: bool
) -> DenseAnchors:
    """The bank's :class:`DenseAnchors` in ``space``, from ``bank_dir/dense-<space>.npz`` or computed (one teacher
    pass over the training set) and written there.

    Args:
        bank_dir: the run's bank directory.
        bank: its :class:`~refbert_tf.bank.ReferenceBank` (the anchors).
        teacher: the fine-tuned keras-hub ``BertTextClassifier``.
        train_features: the encoded training rows the bank was built from (N rows).
        space: a key space of :data:`~refbert_tf.dense_retrieval.KEY_SPACES`.
        teacher_id: the teacher's identity (hash prefix of its ``model.keras``), recorded and checked.
        regression: a regression task (no class probabilities).

    Raises:
        ValueError: an unknown ``space``.
        BankError: a cached file of another teacher, space, anchor set or training-set size: the message names it.
        CorruptArtifactError: a cached file that cannot be read.
    """
    if space not in KEY_SPACES:
        raise ValueError(f"unknown dense key space {space!r}; use one of {', '.join(KEY_SPACES)}")
    path = Path(bank_dir) / f"dense-{space}.npz"
    num_train = int(train_features["token_ids"].nrows())
    if path.is_file():
        cached = load_artifact(path, lambda p: dict(np.load(p)), "delete it; the next run computes it again")
        if not _cache_matches(cached, teacher_id, bank, space, num_train):
            raise BankError(
                f"{path} holds dense keys of another teacher, space, anchor set or training set than this run's: "
                "delete it (or pass another --bank-dir)"
            )
        print(f"dense anchors: {len(cached['keys'])} teacher keys ({space}) loaded from {path}")
        return DenseAnchors(cached["keys"], cached["soft_labels"], cached["anchor_ids"], cached["train_keys"], space)
    print(f"dense anchors: teacher keys ({space}) of {num_train} training rows")
    train_keys, logits = teacher_keys(teacher, train_features, space, with_logits=True)
    anchors = np.asarray(bank.anchor_ids, np.int64)
    probs = np.ones((len(anchors), 1), np.float32) if regression else softmax(logits[anchors], axis=-1)
    dense = DenseAnchors(train_keys[anchors], probs.astype(np.float32), anchors, train_keys, space)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, keys=dense.keys, soft_labels=dense.soft_labels, anchor_ids=anchors, train_keys=train_keys,
                     space=space, teacher_id=teacher_id)  # fmt: skip
    return dense


def dense_label_agreement(dense: DenseAnchors, queries: np.ndarray, labels, train_labels, vote: int = 16,
                          exclude=None) -> dict:  # fmt: skip
    """How often the nearest anchor of each query (and the majority of the ``vote`` nearest) has the query's gold
    label, beside the majority class: what a dense reference can carry (classification only).

    Args:
        dense: the anchors; queries: float [N, D] keys or student queries; labels: int [N] gold labels;
        train_labels: the training labels (anchors' labels are ``train_labels[dense.anchor_ids]``);
        vote: neighbours of the vote (0: none); exclude: optional int [N] own anchor per query (-1: none).

    Returns:
        ``{"top1": {agreement, majority_class, mean_similarity}, "vote": {k, agreement}}`` (percent).
    """
    anchor_labels = np.asarray(train_labels)[dense.anchor_ids]
    k = max(1, min(vote, dense.num_anchors - (exclude is not None)))
    found, similarity = dense_neighbours(queries, dense.keys, k=k, exclude=exclude)
    labels = np.asarray(labels)
    out = {"top1": label_agreement(labels, anchor_labels[found[:, 0]], similarity[:, 0])}
    if vote:
        votes = vote_labels(anchor_labels[found], int(max(anchor_labels.max(), labels.max())) + 1)
        out["vote"] = {"k": k, "agreement": round(100.0 * float(np.mean(votes == labels)), 2)}
    return out
