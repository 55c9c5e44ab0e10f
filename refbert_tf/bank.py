"""The reference bank: anchors with the teacher's pre-computed representations (RefBERT, Wang et al. 2021).

For each anchor the bank keeps the teacher's hidden states of one layer for the anchor's first ``R`` tokens
(layer and R are options; design note part 3, *our reading*), and its retrieval key
(:mod:`refbert_tf.retrieval`). Small tasks use every training example as an anchor; above ``max_anchors`` the
anchors are the training examples nearest to k-means centroids of the retrieval keys (scikit-learn
``MiniBatchKMeans``), so they cover the lexical space.

On disk a bank is a directory: ``bank.npz`` (arrays) and ``bank.json`` (metadata), each written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from refbert_tf.io_utils import atomic_path, write_json
from refbert_tf.retrieval import DEFAULT_NUM_BUCKETS, RetrievalIndex, nearest_anchors


class BankError(ValueError):
    """Raised for an empty bank, a missing bank file, or a bank built for another vocabulary or teacher."""


@dataclasses.dataclass
class ReferenceBank:
    """Anchors and their teacher representations.

    Attributes:
        representations: float32 [M, R, d_teacher], teacher hidden states of layer ``layer`` for each anchor's
            first R tokens (zeros past the anchor's length).
        representation_mask: int32 [M, R], 1 for real tokens.
        keys: float32 [M, K] retrieval keys of the anchors.
        anchor_ids: int64 [M], indices of the anchors in the training set.
        index: the fitted :class:`~refbert_tf.retrieval.RetrievalIndex` (K buckets, idf).
        layer: teacher layer of the representations (0 = embeddings, i = output of Transformer block i).
        metadata: task, teacher id, vocab sha256, ... (checked by :meth:`check_compatible`).
    """

    representations: np.ndarray
    representation_mask: np.ndarray
    keys: np.ndarray
    anchor_ids: np.ndarray
    index: RetrievalIndex
    layer: int
    metadata: dict

    def __post_init__(self):
        if self.representations.shape[0] == 0:
            raise BankError("the reference bank is empty (0 anchors): build it from a non-empty training set")
        m = self.representations.shape[0]
        if not (self.representation_mask.shape[0] == self.keys.shape[0] == self.anchor_ids.shape[0] == m):
            raise BankError(f"inconsistent bank arrays: representations {self.representations.shape}, mask "
                            f"{self.representation_mask.shape}, keys {self.keys.shape}, ids {self.anchor_ids.shape}")

    @property
    def num_anchors(self) -> int:
        """M."""
        return int(self.representations.shape[0])

    @property
    def num_tokens(self) -> int:
        """R, reference tokens per anchor."""
        return int(self.representations.shape[1])

    @property
    def size_mb(self) -> float:
        """Size of the arrays an exported model embeds (representations + keys), in MB (float32)."""
        return (self.representations.nbytes + self.keys.nbytes) / 2**20

    def check_compatible(self, vocab_sha256: str | None = None, teacher_id: str | None = None,
                         task: str | None = None, where: str = "reference bank"):
        """Raise :class:`BankError` if the bank was built with another vocabulary, teacher or task."""
        for name, expected in (("vocab_sha256", vocab_sha256), ("teacher", teacher_id), ("task", task)):
            if expected is not None and self.metadata.get(name) != expected:
                raise BankError(f"{where} was built with {name}={self.metadata.get(name)!r}, but this run uses "
                                f"{expected!r}: rebuild the bank")

    def references_for(self, features: dict, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Pick the reference anchor of each example with the bank's similarity.

        Args:
            features: encoded examples (``token_ids`` ragged).
            exclude_self: the examples are the training set: an anchor may not be its own reference.

        Returns:
            ``(anchor index [N] into the bank, similarity [N])``.
        """
        queries = self.index.keys(features)
        exclude = None
        if exclude_self:
            position_of_anchor = {int(a): i for i, a in enumerate(self.anchor_ids)}
            exclude = np.asarray([position_of_anchor.get(n, -1) for n in range(queries.shape[0])], np.int64)
        return nearest_anchors(queries, self.keys, exclude=exclude)

    def save(self, bank_dir: str | os.PathLike) -> Path:
        """Write ``bank.npz`` and ``bank.json`` atomically into ``bank_dir``."""
        bank_dir = Path(bank_dir)
        bank_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(bank_dir / "bank.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, representations=self.representations, representation_mask=self.representation_mask,
                         keys=self.keys, anchor_ids=self.anchor_ids, idf=self.index.idf)
        write_json(bank_dir / "bank.json", {**self.metadata, "layer": self.layer,
                                            "num_buckets": self.index.num_buckets,
                                            "ignore_ids": list(self.index.ignore_ids),
                                            "num_anchors": self.num_anchors, "num_tokens": self.num_tokens})
        return bank_dir

    @classmethod
    def load(cls, bank_dir: str | os.PathLike) -> "ReferenceBank":
        """Reload a bank written by :meth:`save`.

        Raises:
            BankError: if a file is missing or the bank is empty.
        """
        bank_dir = Path(bank_dir)
        for name in ("bank.npz", "bank.json"):
            if not (bank_dir / name).is_file():
                raise BankError(f"no reference bank in {bank_dir} (missing {name})")
        meta = json.loads((bank_dir / "bank.json").read_text(encoding="utf-8"))
        with np.load(bank_dir / "bank.npz") as arrays:
            arrays = dict(arrays)
        index = RetrievalIndex(int(meta.pop("num_buckets")), arrays["idf"], tuple(meta.pop("ignore_ids")))
        layer = int(meta.pop("layer"))
        for derived in ("num_anchors", "num_tokens"):
            meta.pop(derived, None)
        return cls(arrays["representations"], arrays["representation_mask"], arrays["keys"], arrays["anchor_ids"],
                   index, layer, meta)


def select_anchors(keys, max_anchors: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_anchors`` training examples that cover the key space.

    All examples when there are few enough; otherwise the example nearest to each centroid of a k-means
    clustering of the keys (scikit-learn ``MiniBatchKMeans``, Sculley 2010), duplicates removed.

    Args:
        keys: [N, K] retrieval keys (sparse or dense).
        max_anchors: M, the cap.
        seed: k-means seed.

    Returns:
        sorted int64 array of at most M indices.

    Raises:
        BankError: if there are no examples or ``max_anchors`` < 1.
    """
    n = keys.shape[0]
    if n == 0 or max_anchors < 1:
        raise BankError(f"cannot select anchors from {n} examples with max_anchors={max_anchors}")
    if n <= max_anchors:
        return np.arange(n, dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import pairwise_distances_argmin

    kmeans = MiniBatchKMeans(n_clusters=max_anchors, random_state=seed, batch_size=4096, n_init=1)
    kmeans.fit(keys)
    return np.unique(pairwise_distances_argmin(kmeans.cluster_centers_, keys)).astype(np.int64)


def resolve_layer(backbone, layer: int) -> int:
    """``layer`` as a number in 0..L: negative values count from the top (-1 = the last block, L).

    Raises:
        ValueError: if ``layer`` is outside -L-1..L.
    """
    num_layers = backbone.num_layers
    if not -num_layers - 1 <= layer <= num_layers:
        raise ValueError(f"teacher layer must be in 0..{num_layers} (or -{num_layers + 1}..-1 from the top), "
                         f"got {layer}")
    return layer if layer >= 0 else num_layers + 1 + layer


def teacher_layer_model(backbone, layer: int):
    """A Keras model mapping the backbone's inputs to its hidden states after ``layer``.

    Args:
        backbone: a keras-hub ``BertBackbone`` (functional).
        layer: 0 for the embedding output, i in 1..L for the output of Transformer block i, -1 for the last.

    Returns:
        ``keras.Model``: inputs dict -> float32 [B, T, hidden_dim].

    Raises:
        ValueError: if ``layer`` is outside 0..L (or -L-1..-1).
    """
    import keras

    layer = resolve_layer(backbone, layer)
    name = "embeddings_layer_norm" if layer == 0 else f"transformer_layer_{layer - 1}"
    return keras.Model(backbone.input, backbone.get_layer(name).output)


def build_bank(backbone, features: dict, index: RetrievalIndex | None = None, layer: int = -1,
               num_tokens: int = 4, max_anchors: int = 1024, batch_size: int = 128, seed: int = 0,
               ignore_ids=None, num_buckets: int = DEFAULT_NUM_BUCKETS, metadata: dict | None = None,
               progress: bool = True) -> ReferenceBank:
    """Build a reference bank from training examples with batched teacher inference.

    Args:
        backbone: the fine-tuned teacher's encoder (``teacher.backbone``).
        features: encoded training examples (``token_ids``, ``segment_ids`` ragged [N, (T)]).
        index: a fitted retrieval index, or None to fit one on ``features``.
        layer: teacher layer of the stored hidden states (see :func:`teacher_layer_model`; -1 = last).
        num_tokens: R, tokens stored per anchor (the first R, [CLS] included).
        max_anchors: M, cap on the number of anchors (see :func:`select_anchors`).
        batch_size: examples per teacher forward pass.
        seed: anchor-selection seed.
        ignore_ids: token ids left out of retrieval keys (required when ``index`` is None).
        num_buckets: K for a new index.
        metadata: stored with the bank (task, teacher id, vocab sha256...).
        progress: show a tqdm progress bar.

    Returns:
        :class:`ReferenceBank`.

    Raises:
        BankError: for an empty training set.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    from refbert_tf.data import make_dataset

    n = int(features["token_ids"].nrows())
    if n == 0:
        raise BankError("cannot build a reference bank from 0 training examples")
    if index is None:
        if ignore_ids is None:
            raise ValueError("ignore_ids ([CLS], [SEP], [PAD] ids) is required to fit a retrieval index")
        index = RetrievalIndex.fit(features, ignore_ids, num_buckets)
    all_keys = index.keys(features)
    anchor_ids = select_anchors(all_keys, max_anchors, seed)
    anchors = {k: tf.gather(v, anchor_ids) for k, v in features.items() if k in ("token_ids", "segment_ids")}
    layer = resolve_layer(backbone, layer)
    model = teacher_layer_model(backbone, layer)
    reps, masks = [], []
    ds = make_dataset(anchors, None, batch_size=batch_size, shuffle=False)
    for batch in tqdm(ds, total=-(-len(anchor_ids) // batch_size), desc="reference bank", unit="batch",
                      disable=not progress):
        hidden = np.asarray(model(batch, training=False))[:, :num_tokens]
        mask = np.asarray(batch["padding_mask"])[:, :num_tokens]
        pad = num_tokens - hidden.shape[1]
        if pad > 0:
            hidden = np.pad(hidden, ((0, 0), (0, pad), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, pad)))
        reps.append(hidden * mask[..., None])
        masks.append(mask)
    meta = dict(metadata or {})
    meta.update(num_train=n)
    return ReferenceBank(np.concatenate(reps).astype(np.float32), np.concatenate(masks).astype(np.int32),
                         all_keys[anchor_ids].toarray().astype(np.float32), anchor_ids, index, layer, meta)


def reference_label_agreement(bank: ReferenceBank, features: dict, labels, anchor_labels,
                              exclude_self: bool = False) -> dict:
    """How often an example's reference carries the example's own gold label (classification tasks).

    A diagnostic of how much label information lexical references can pass to the student: if the reference
    anchor's label agreed with the input's no more often than the majority class does, the teacher's stored
    representation of the reference says little about the input's label.

    Args:
        bank: the reference bank.
        features: encoded examples (``token_ids`` ragged).
        labels: int [N] gold labels of the examples.
        anchor_labels: int [num_train] gold labels of the training set (anchors index into it).
        exclude_self: the examples are the training set (an anchor is not its own reference).

    Returns:
        ``{"agreement" (percent), "majority_class" (percent), "mean_similarity"}``.
    """
    index, similarity = bank.references_for(features, exclude_self=exclude_self)
    labels = np.asarray(labels)
    reference_labels = np.asarray(anchor_labels)[bank.anchor_ids[index]]
    majority = np.bincount(labels).max() / len(labels)
    return {"agreement": round(100 * float(np.mean(reference_labels == labels)), 2),
            "majority_class": round(100 * float(majority), 2), "mean_similarity": round(float(similarity.mean()), 4)}
