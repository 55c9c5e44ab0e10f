"""Training sets for bank building and reference picking, encoded a chunk at a time (never all at once).

A :class:`Corpus` is N examples behind an ``encode(ids)`` callback: already encoded features
(:meth:`Corpus.from_features`) or raw texts tokenized on demand (:meth:`Corpus.from_texts`).
:func:`corpus_counts` hashes a corpus chunk by chunk into one sparse count matrix (O(N * nnz) memory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from refbert_tf.retrieval import hashed_counts

DEFAULT_CHUNK_SIZE = 65536  # examples tokenized, hashed or searched at once


@dataclasses.dataclass(frozen=True)
class Corpus:
    """N examples that bank building and reference picking encode a chunk at a time, never all at once.

    Attributes:
        size: N.
        encode: maps ascending int64 example ids [n] to encoded features ``{"token_ids", "segment_ids"}`` (ragged
            int32 [n, (T)]; ``token_ids`` alone suffices for retrieval).
    """

    size: int
    encode: Callable[[np.ndarray], dict]

    @classmethod
    def from_features(cls, features: dict) -> Corpus:
        """Already encoded examples (ragged ``token_ids`` and optionally ``segment_ids`` [N, (T)])."""
        kept = {k: v for k, v in features.items() if k in ("token_ids", "segment_ids")}
        return cls(int(kept["token_ids"].nrows()), lambda ids: {k: tf.gather(v, ids) for k, v in kept.items()})

    @classmethod
    def from_texts(cls, texts, tokenizer, max_seq_len: int | None = None, text_b=None) -> Corpus:
        """Raw texts, tokenized on demand.

        Args:
            texts: a sequence of N strings (anything with ``len`` and ``texts[i]``, e.g. a lazy generator).
            tokenizer: a :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
            max_seq_len: packed length limit (default: the tokenizer's).
            text_b: N second texts for sentence pairs, or None.
        """

        def encode(ids):
            def pick(seq):
                return None if seq is None else [seq[int(i)] for i in ids]

            return tokenizer.encode(pick(texts), pick(text_b), max_seq_len)

        return cls(len(texts), encode)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[tuple[np.ndarray, dict]]:
        """Yield ``(ids [n], features)`` for consecutive chunks of at most ``chunk_size`` examples."""
        for start in range(0, self.size, chunk_size):
            ids = np.arange(start, min(start + chunk_size, self.size), dtype=np.int64)
            yield ids, self.encode(ids)


def as_corpus(features) -> Corpus:
    """``features`` itself if it is a :class:`Corpus`, else :meth:`Corpus.from_features`."""
    return features if isinstance(features, Corpus) else Corpus.from_features(features)


def corpus_counts(corpus: Corpus, num_buckets: int, ignore_ids, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Hashed wordpiece counts of a corpus (:func:`~refbert_tf.retrieval.hashed_counts`), built chunk by chunk.

    Equal to ``hashed_counts`` of the whole corpus. Time O(N * T); memory O(N * nnz) for the result (about 8 bytes
    per counted bucket: a float32 value and an int32 column index) plus one chunk's encoding.

    Returns:
        ``scipy.sparse.csr_matrix`` float32 [N, K].
    """
    parts = [hashed_counts(features, num_buckets, ignore_ids) for _, features in corpus.chunks(chunk_size)]
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, num_buckets), dtype=np.float32)
