"""Reference retrieval: the cheap lexical similarity RefBERT uses to pick a reference for every input.

RefBERT (Wang et al. 2021, Sec. III) gives each input the teacher's pre-computed representation of its most
similar *other* training example under a keyword-overlap similarity. The exported model must pick references
itself, so the similarity is defined once, as a function TFLite can run with builtin ops, and training uses that
same function (our reading of the design note, part 2):

    key(x) = l2_normalize(tf(x) * idf),   tf(x)[k] = #{wordpiece ids t in x (no [CLS]/[SEP]/[PAD]) : t mod K == k}
    sim(x, a) = key(x) . key(a)          (cosine similarity of idf-weighted bags of hashed wordpiece ids)

``idf`` is fitted on the training texts by scikit-learn's ``TfidfTransformer`` (smooth idf:
``ln((1 + n) / (1 + df)) + 1``, Salton & Buckley 1988), which also computes the offline keys; the on-device
:class:`AnchorScorer` ranks the anchors by the same similarity from token ids, in integer arithmetic (TFLite
builtins, untouched by int8 quantization).

Offline nearest neighbours (:func:`nearest_anchors`) are an exact brute-force search: a chunked scipy sparse product
of the query keys with the anchor keys and a NumPy argmax (ties to the lowest index, as the exported model's
``tf.argmax``). With N queries, M anchors, K buckets and ``nnz`` counted buckets per key: time
O(N * nnz * M * nnz / K) for the products plus O(N * M) for the argmax; memory O(M * nnz) for the anchors plus a
bounded chunk of O(2**22) scores, whatever N and M. A million queries against 1,021 anchors took 48 s on this
machine, most of it re-tokenizing (``recipes/benchmark_bank.py``): no approximate index is needed at the M an
exported model can embed.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.preprocessing import normalize

DEFAULT_NUM_BUCKETS = 1024


def hashed_counts(features: dict, num_buckets: int, ignore_ids) -> sp.csr_matrix:
    """Sparse term counts of hashed wordpiece ids.

    Args:
        features: ``{"token_ids": RaggedTensor [N, (T)]}`` from the tokenizer's ``encode``.
        num_buckets: K, hash buckets (``bucket = token_id mod K``).
        ignore_ids: token ids not counted ([CLS], [SEP], [PAD]).

    Returns:
        ``scipy.sparse.csr_matrix`` float32 [N, K].
    """
    ids = features["token_ids"]
    values = ids.flat_values.numpy().astype(np.int64)
    rows = np.repeat(np.arange(int(ids.nrows())), ids.row_lengths().numpy())
    keep = ~np.isin(values, np.asarray(list(ignore_ids), dtype=np.int64))
    counts = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (rows[keep], values[keep] % num_buckets)),
        shape=(int(ids.nrows()), num_buckets),
    )
    counts.sum_duplicates()
    return counts


@dataclasses.dataclass
class RetrievalIndex:
    """Fitted retrieval similarity: bucket count and idf weights.

    Attributes:
        num_buckets: K.
        idf: float32 [K] inverse document frequencies (scikit-learn smooth idf).
        ignore_ids: token ids left out of the bag ([CLS], [SEP], [PAD]).
    """

    num_buckets: int
    idf: np.ndarray
    ignore_ids: tuple

    @classmethod
    def fit(cls, features: dict, ignore_ids, num_buckets: int = DEFAULT_NUM_BUCKETS) -> RetrievalIndex:
        """Fit idf on training features (see :func:`hashed_counts`)."""
        return cls.fit_counts(hashed_counts(features, num_buckets, ignore_ids), ignore_ids)

    @classmethod
    def fit_counts(cls, counts: sp.csr_matrix, ignore_ids) -> RetrievalIndex:
        """Fit idf on hashed counts [N, K] (:func:`hashed_counts`, or its chunks stacked with ``scipy.sparse.vstack``:
        idf depends only on the document frequencies, so chunking changes nothing). Time O(N * nnz)."""
        tfidf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=False)
        tfidf.fit(counts)
        return cls(int(counts.shape[1]), tfidf.idf_.astype(np.float32), tuple(int(i) for i in ignore_ids))

    def keys(self, features: dict) -> sp.csr_matrix:
        """Offline keys: L2-normalised tf * idf, sparse float32 [N, K] (rows of empty bags are all zero)."""
        return self.keys_from_counts(hashed_counts(features, self.num_buckets, self.ignore_ids))

    def keys_from_counts(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """:meth:`keys` from hashed counts [N, K] (row by row, so chunks may be stacked before or after)."""
        return normalize(counts.multiply(self.idf[None, :]).tocsr(), norm="l2").astype(np.float32)

    def scorer(self) -> AnchorScorer:
        """The on-device scorer whose argmax over anchors is this index's nearest anchor."""
        return AnchorScorer(self.num_buckets, self.idf, self.ignore_ids)


SCORES_PER_CHUNK = 2**22  # query x anchor scores held at once by nearest_anchors (16 MB of float32)


def nearest_anchors(
    query_keys, anchor_keys, exclude=None, batch_size: int | None = None, top_k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Most similar anchor (or ``top_k`` anchors) of every query (cosine on L2-normalised keys), optionally
    excluding one per query.

    Exact brute force, in chunks of queries (see the module docstring): time O(N * nnz * M * nnz / K + N * M),
    memory O(batch_size * M) scores on top of the inputs and the O(N) outputs.

    Args:
        query_keys: [N, K] sparse or dense keys.
        anchor_keys: [M, K] sparse or dense keys.
        exclude: int array [N]: anchor index each query may not pick (its own index when queries are the
            anchors themselves), or -1 for none.
        batch_size: queries scored per chunk (default ``SCORES_PER_CHUNK // M``, at least 1: 4096 for M=1024).
        top_k: anchors per query, best first (1: the RefBERT reference; more: the top-k ablation).

    Returns:
        ``(index [N] int64, similarity [N] float32)``, or ``[N, top_k]`` arrays when ``top_k > 1``. Ties go to the
        lowest anchor index, as ``argmax`` and ``top_k`` do in the exported model.

    Raises:
        ValueError: if there are no anchors, fewer than 2 while excluding, or fewer than ``top_k`` to choose from.
    """
    m = anchor_keys.shape[0]
    if m == 0 or (exclude is not None and m < 2):
        raise ValueError(f"need at least {1 if exclude is None else 2} anchors, got {m}")
    if top_k < 1 or top_k > m - (exclude is not None):
        raise ValueError(f"top_k={top_k} needs 1 <= top_k <= {m - (exclude is not None)} anchors to choose from")
    batch_size = batch_size or max(1, SCORES_PER_CHUNK // m)
    anchors_t = anchor_keys.T.tocsr() if sp.issparse(anchor_keys) else np.asarray(anchor_keys).T
    index = np.empty((query_keys.shape[0], top_k), np.int64)
    best = np.empty((query_keys.shape[0], top_k), np.float32)
    for start in range(0, query_keys.shape[0], batch_size):
        q = query_keys[start : start + batch_size]
        scores = q @ anchors_t
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        scores = scores.astype(np.float32)
        if exclude is not None:
            rows = np.arange(scores.shape[0])
            own = np.asarray(exclude[start : start + batch_size])
            valid = own >= 0
            scores[rows[valid], own[valid]] = -np.inf
        if top_k == 1:
            chosen = scores.argmax(axis=1)[:, None]
        else:  # a stable sort keeps ties in index order, like tf.math.top_k
            chosen = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        index[start : start + len(scores)] = chosen
        best[start : start + len(scores)] = np.take_along_axis(scores, chosen, axis=1)
    return (index[:, 0], best[:, 0]) if top_k == 1 else (index, best)


def bucket_histogram(buckets, num_buckets: int):
    """Count the tokens of each row per bucket: int32 [B, num_buckets] from int32 bucket ids [B, T].

    One ``UNSORTED_SEGMENT_SUM`` of ones over the flattened tokens, segment ``b * num_buckets + bucket``: O(B * T)
    work instead of the O(B * T * num_buckets) of summing a one-hot encoding, and a rank-1 segment op that the
    ONNX converter maps to one ``ScatterND`` (``tf.one_hot`` of rank-2 ids does not convert).

    Raises:
        tf.errors.InvalidArgumentError: (at run time) a bucket id outside ``[0, num_buckets)``.
    """
    buckets = tf.cast(buckets, tf.int32)
    batch = tf.shape(buckets)[0]
    rows = tf.range(batch, dtype=tf.int32)[:, None] * num_buckets
    segments = tf.reshape(buckets + rows, [-1])
    counts = tf.math.unsorted_segment_sum(tf.ones_like(segments), segments, batch * num_buckets)
    return tf.reshape(counts, [batch, num_buckets])


SCORE_SCALE = 2**16  # fixed-point scale of the on-device anchor scores (see AnchorScorer)


@keras.saving.register_keras_serializable(package="refbert_tf")
class AnchorScorer(keras.layers.Layer):
    """On-device retrieval scores of every anchor, in exact integer arithmetic (non-trainable).

    The reference is ``argmax_m sim(x, a_m)`` with ``sim`` the cosine of :meth:`RetrievalIndex.keys`. The query's
    norm is a positive factor common to all anchors, so the argmax needs only
    ``score_m = sum_k tf(x)_k * idf_k * key_mk = sum over counted tokens t of idf_b(t) * key_m,b(t)`` with
    ``b(t) = token_id mod K``. The table ``round(SCORE_SCALE * idf_k * key_mk)`` (int32 [K + 1, M], a zero row for
    tokens not counted) is gathered per token and summed: int32 ``FLOOR_MOD``, ``SELECT``, ``GATHER``, ``SUM``,
    ``ARG_MAX``, all TFLite builtins. Integer ops are left alone by full-integer quantization, so the exported int8
    model picks the same reference as the float one; with float ops the int8 scores collapse onto a few anchors
    (docs/export.md). Rounding changes a choice
    only between anchors whose similarities differ by about 1e-5.

    The dense table is mostly zeros (an anchor fills a handful of the K buckets), and as an int32 constant it
    would be 4 K M bytes of every exported file. :meth:`freeze` replaces it by its non-zeros (bucket, anchor, value; 12 bytes
    each) for export: the scores become ``sum_b hist(x)_b * table_bm`` over the non-zeros, with the query's bucket
    histogram from one ``UNSORTED_SEGMENT_SUM`` over the tokens (:func:`bucket_histogram`), a ``GATHER`` of the
    histogram at the non-zeros' buckets, ``MUL``, and ``UNSORTED_SEGMENT_SUM`` by anchor: the same integers as the
    dense path (tested), TFLite builtins only (and ``ScatterND`` with ``reduction="add"`` in ONNX,
    :mod:`refbert_tf.export.onnx`), O(B * (T + K + nnz)) time.

    Call args:
        token_ids: int32 [B, T].
        padding_mask: int/bool [B, T], 1 for real tokens.
        anchor_keys: float32 [M, K] L2-normalised anchor keys (constant; folded into the table at export).

    Returns:
        int32 [B, M] scores (``SCORE_SCALE`` times the un-normalised similarity).
    """

    def __init__(self, num_buckets: int, idf, ignore_ids, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.num_buckets = int(num_buckets)
        self.idf_values = np.asarray(idf, np.float32).reshape(-1)
        if self.idf_values.shape[0] != self.num_buckets:
            raise ValueError(f"idf has {self.idf_values.shape[0]} entries, expected num_buckets={num_buckets}")
        self.ignore_ids = tuple(int(i) for i in ignore_ids)
        self.sparse_table = None  # (bucket [nnz], anchor [nnz], value [nnz], num_anchors) after freeze()

    def _dense_table(self, anchor_keys):
        """int32 [K, M] ``round(SCORE_SCALE * idf_k * key_mk)`` for float32 anchor keys [M, K] (TF ops)."""
        weighted = tf.transpose(anchor_keys) * tf.expand_dims(tf.constant(self.idf_values), 1)  # [K, M]
        return tf.cast(tf.round(weighted * SCORE_SCALE), tf.int32)

    def table(self, anchor_keys) -> np.ndarray:
        """The dense score table int32 [K, M] for float32 anchor keys [M, K], as NumPy (the graph's own ops)."""
        return np.asarray(self._dense_table(np.asarray(keras.ops.convert_to_numpy(anchor_keys), np.float32)))

    def freeze(self, anchor_keys) -> int:
        """Fold the anchor keys into the sparse score table that :meth:`call` then uses (for export).

        Args:
            anchor_keys: float32 [M, K] (NumPy or a variable), the values the dense path would read.

        Returns:
            nnz, the number of non-zero table entries kept.
        """
        table = self.table(anchor_keys)
        bucket, anchor = np.nonzero(table)
        self.sparse_table = (
            bucket.astype(np.int32),
            anchor.astype(np.int32),
            table[bucket, anchor],
            int(table.shape[1]),
        )
        return int(bucket.size)

    def call(self, token_ids, padding_mask, anchor_keys):
        token_ids = tf.cast(token_ids, tf.int32)
        counted = tf.cast(padding_mask, tf.bool)
        for special in self.ignore_ids:
            counted = tf.logical_and(counted, tf.not_equal(token_ids, special))
        buckets = tf.where(counted, tf.math.floormod(token_ids, self.num_buckets), self.num_buckets)  # [B, T]
        if self.sparse_table is not None:
            bucket, anchor, value, num_anchors = self.sparse_table
            histogram = bucket_histogram(buckets, self.num_buckets + 1)  # [B, K+1]
            contributions = tf.gather(histogram, tf.constant(bucket), axis=1) * tf.constant(value)  # [B, nnz]
            return tf.transpose(
                tf.math.unsorted_segment_sum(tf.transpose(contributions), tf.constant(anchor), num_anchors)
            )  # [B, M]
        table = self._dense_table(anchor_keys)
        table = tf.concat([table, tf.zeros_like(table[:1])], axis=0)  # row K: tokens not counted
        return tf.reduce_sum(tf.gather(table, buckets), axis=1)  # [B, M]

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update(num_buckets=self.num_buckets, idf=self.idf_values.tolist(), ignore_ids=list(self.ignore_ids))
        return config
