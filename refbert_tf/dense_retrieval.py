"""Dense reference retrieval: anchors found by similarity of teacher representations, not of words.

RefBERT (Wang et al. 2021) leaves the similarity criterion open ("containing the most common keywords or following
the most similar structure"); :mod:`refbert_tf.retrieval` is the lexical reading. Retrieval-augmented distillation
that carries the label (ReAugKD, Zhang et al., ACL 2023; kNN-CM, Findings of EMNLP 2023) searches the
*fine-tuned* teacher's representation space instead. This module gives those key spaces and the neighbour search:

- :data:`KEY_SPACES`: ``cls`` (the fine-tuned teacher's last-layer ``[CLS]`` hidden state), ``pooled`` (its
  pooler output, what its classifier reads), ``mean`` (the mean of its last-layer states over real tokens); with a
  *pre-trained* backbone as the encoder, ``mean`` is the usual sentence embedding (Reimers & Gurevych 2019).
- :func:`teacher_keys`: L2-normalised keys [N, D] of encoded examples.
- :func:`dense_neighbours`: exact cosine nearest anchors with scikit-learn's ``NearestNeighbors``, an example's
  own anchor excluded (training: a reference is never the example itself).
"""

from __future__ import annotations

import numpy as np

KEY_SPACES = ("cls", "pooled", "mean")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` [N, D] with every row scaled to unit L2 norm (all-zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def vote_labels(neighbour_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority label of each row of ``neighbour_labels`` int [N, k] (ties: the lowest label id)."""
    return np.array([np.bincount(row, minlength=num_classes).argmax() for row in neighbour_labels], np.int64)


def teacher_keys(encoder, features: dict, space: str = "cls", batch_size: int = 64, with_logits: bool = False):
    """L2-normalised dense keys of encoded examples.

    Args:
        encoder: a keras-hub ``BertTextClassifier`` (its ``.backbone`` is used) or a ``BertBackbone``.
        features: :meth:`~refbert_tf.tokenization.BertWordPieceTokenizer.encode` output (N examples).
        space: one of :data:`KEY_SPACES`.
        batch_size: examples per forward pass.
        with_logits: also return the classifier's logits (a fine-tuned ``BertTextClassifier`` only).

    Returns:
        float32 [N, hidden] with unit rows; with ``with_logits``, ``(keys, logits float32 [N, C])`` of one pass.

    Raises:
        ValueError: an unknown ``space``, or ``with_logits`` for a bare backbone.
    """
    from refbert_tf.data import make_dataset  # lazy: TensorFlow

    if space not in KEY_SPACES:
        raise ValueError(f"unknown key space {space!r}; use one of {', '.join(KEY_SPACES)}")
    backbone = getattr(encoder, "backbone", encoder)
    if with_logits and not hasattr(encoder, "output_dense"):
        raise ValueError("with_logits needs a fine-tuned classifier; a bare backbone has no logits")
    out, logits = [], []
    for batch in make_dataset(features, None, batch_size=batch_size, shuffle=False):
        states = backbone(batch, training=False)
        if with_logits:
            logits.append(np.asarray(encoder.output_dense(states["pooled_output"]), np.float32))
        if space == "pooled":
            keys = np.asarray(states["pooled_output"])
        else:
            sequence = np.asarray(states["sequence_output"])  # [B, T, H]
            if space == "cls":
                keys = sequence[:, 0]
            else:
                mask = np.asarray(batch["padding_mask"], np.float32)[..., None]
                keys = (sequence * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
        out.append(keys.astype(np.float32))
    keys = unit_rows(np.concatenate(out) if out else np.zeros((0, backbone.hidden_dim), np.float32))
    return (keys, np.concatenate(logits)) if with_logits else keys


def dense_neighbours(queries: np.ndarray, anchors: np.ndarray, k: int = 1, exclude=None):
    """The ``k`` most cosine-similar anchors of each query, best first.

    Args:
        queries: float [N, D]; anchors: float [M, D] (unit rows or not: cosine either way).
        k: neighbours per query (1 <= k < M when ``exclude`` is given, else <= M).
        exclude: optional int [N], an anchor index each query may not return (its own anchor; -1: none).

    Returns:
        ``(indices, similarities)``: int [N, k] anchor indices and float [N, k] cosine similarities.

    Raises:
        ValueError: ``k`` out of range.
    """
    from sklearn.neighbors import NearestNeighbors

    m = len(anchors)
    extra = 0 if exclude is None else 1
    if not 1 <= k <= m - extra:
        raise ValueError(f"k must be in 1..{m - extra} for {m} anchors, got {k}")
    index = NearestNeighbors(n_neighbors=k + extra, metric="cosine", algorithm="brute").fit(anchors)
    distance, found = index.kneighbors(queries)
    similarity = 1.0 - distance
    if exclude is not None:
        exclude = np.asarray(exclude)
        hit = found == exclude[:, None]
        drop = np.where(hit.any(1), np.argmax(hit, 1), k)  # the excluded anchor where found, else the k+1-th
        keep = np.ones_like(hit)
        keep[np.arange(len(found)), drop] = False
        found = found[keep].reshape(len(found), k)
        similarity = similarity[keep].reshape(len(found), k)
    return found, similarity
