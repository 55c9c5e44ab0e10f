"""The reference bank: anchors with the teacher's pre-computed representations (RefBERT, Wang et al. 2021).

For each anchor the bank keeps the teacher's hidden states of one layer for the anchor's first ``R`` tokens
(layer and R are options; design note part 3, *our reading*), and its retrieval key
(:mod:`refbert_tf.retrieval`). Small tasks use every training example as an anchor; above ``max_anchors`` the
anchors are the training examples nearest to k-means centroids of the retrieval keys (scikit-learn
``MiniBatchKMeans``), so they cover the lexical space.

Building scales to corpora far larger than GLUE (:func:`build_bank`): the training set is a :class:`Corpus` read in
chunks (tokenized and hashed chunk by chunk into one sparse count matrix, O(N * nnz) memory), the anchors are
chosen by k-means over the sparse keys, the teacher runs over the M anchors in batches under any
``tf.distribute.Strategy``, and its hidden states stream to shard files. References for every training example
(:meth:`ReferenceBank.references_for`) are picked chunk by chunk as well. ``recipes/benchmark_bank.py`` measures a
million-sentence build.

On disk a bank is a directory, each file written atomically and ``bank.json`` last (its presence marks a complete
bank): ``representations-00000-of-0000S.npy`` ... (float32 [<= shard_size, R, d] each, in anchor order),
``bank.npz`` (mask, keys, anchor ids, idf) and ``bank.json`` (metadata, the shard names). Banks written before
sharding keep the representations inside ``bank.npz`` and still load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from refbert_tf.io_utils import atomic_path, write_json
from refbert_tf.retrieval import DEFAULT_NUM_BUCKETS, RetrievalIndex, hashed_counts, nearest_anchors

DEFAULT_CHUNK_SIZE = 65536  # examples tokenized, hashed or searched at once
DEFAULT_SHARD_SIZE = 4096  # anchors per representation shard (25 MB at R=4, d=384)
SHARD_PATTERN = "representations-{:05d}-of-{:05d}.npy"
SHARD_GLOB = "representations-*-of-*.npy"  # every file SHARD_PATTERN names


class BankError(ValueError):
    """Raised for an empty bank, a missing bank file, or a bank built for another vocabulary or teacher."""


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
        import tensorflow as tf

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
    per counted bucket: ~230 MB for a million 5-30-word sentences) plus one chunk's encoding.

    Returns:
        ``scipy.sparse.csr_matrix`` float32 [N, K].
    """
    parts = [hashed_counts(features, num_buckets, ignore_ids) for _, features in corpus.chunks(chunk_size)]
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, num_buckets), dtype=np.float32)


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
            raise BankError(
                f"inconsistent bank arrays: representations {self.representations.shape}, mask "
                f"{self.representation_mask.shape}, keys {self.keys.shape}, ids {self.anchor_ids.shape}"
            )

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

    def check_compatible(
        self,
        vocab_sha256: str | None = None,
        teacher_id: str | None = None,
        task: str | None = None,
        where: str = "reference bank",
    ):
        """Raise :class:`BankError` if the bank was built with another vocabulary, teacher or task."""
        for name, expected in (("vocab_sha256", vocab_sha256), ("teacher", teacher_id), ("task", task)):
            if expected is not None and self.metadata.get(name) != expected:
                raise BankError(
                    f"{where} was built with {name}={self.metadata.get(name)!r}, but this run uses "
                    f"{expected!r}: rebuild the bank"
                )

    def references_for(
        self,
        features,
        exclude_self: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        top_k: int = 1,
        exclude_rows=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pick the reference anchor of each example with the bank's similarity, a chunk of examples at a time.

        Time O(N * T) to encode plus :func:`~refbert_tf.retrieval.nearest_anchors`' O(N * nnz * M * nnz / K + N * M);
        memory O(N) for the result plus one chunk (``chunk_size`` encodings and keys, a bounded block of scores).

        Args:
            features: encoded examples (``token_ids`` ragged [N, (T)]) or a :class:`Corpus`.
            exclude_self: the examples are the training set: an anchor may not be its own reference.
            chunk_size: examples encoded and searched at once.
            top_k: references per example, best first (see :func:`~refbert_tf.retrieval.nearest_anchors`).
            exclude_rows: int array [N], for each example the training row whose anchor it may not pick (for
                augmented copies, their source example: :mod:`refbert_tf.augmentation`), -1 for none;
                ``exclude_self`` is ``exclude_rows=arange(N)``.

        Returns:
            ``(anchor index [N] into the bank, similarity [N])``, or ``[N, top_k]`` arrays when ``top_k > 1``.

        Raises:
            ValueError: if rows are excluded and the bank has a single anchor, ``top_k`` exceeds the choices, both
                ``exclude_self`` and ``exclude_rows`` are given, or ``exclude_rows`` is not [N].
        """
        corpus = as_corpus(features)
        if exclude_self and exclude_rows is not None:
            raise ValueError("pass exclude_self or exclude_rows, not both")
        if exclude_self:
            exclude_rows = np.arange(corpus.size)
        position_of_anchor = None
        if exclude_rows is not None:
            exclude_rows = np.asarray(exclude_rows, np.int64)
            if exclude_rows.shape != (corpus.size,):
                raise ValueError(f"exclude_rows has shape {exclude_rows.shape}, expected ({corpus.size},)")
            num_rows = int(max(exclude_rows.max(initial=-1), self.anchor_ids.max(initial=-1))) + 1
            anchor_of_row = np.full(num_rows, -1, np.int64)
            anchor_of_row[self.anchor_ids] = np.arange(self.num_anchors)
            position_of_anchor = np.where(exclude_rows >= 0, anchor_of_row[np.maximum(exclude_rows, 0)], -1)
        anchor_keys = sp.csr_matrix(self.keys)
        shape = (corpus.size,) if top_k == 1 else (corpus.size, top_k)
        index, similarity = np.empty(shape, np.int64), np.empty(shape, np.float32)
        for ids, chunk in corpus.chunks(chunk_size):
            exclude = None if position_of_anchor is None else position_of_anchor[ids]
            index[ids], similarity[ids] = nearest_anchors(
                self.index.keys(chunk), anchor_keys, exclude=exclude, top_k=top_k
            )
        return index, similarity

    def save(self, bank_dir: str | os.PathLike, shard_size: int = DEFAULT_SHARD_SIZE) -> Path:
        """Write the bank into ``bank_dir`` (sharded layout, see the module docstring), replacing any bank there.

        Raises:
            ValueError: if ``shard_size`` < 1.
        """
        writer = ShardWriter(bank_dir, self.num_anchors, shard_size)
        for start in range(0, self.num_anchors, writer.shard_size):
            writer.add(self.representations[start : start + writer.shard_size])
        return self._write_index_files(writer.close())

    def _write_index_files(self, writer: ShardWriter) -> Path:
        """Write ``bank.npz`` and then ``bank.json`` beside the shards ``writer`` wrote; drop stale shards."""
        bank_dir = writer.bank_dir
        with atomic_path(bank_dir / "bank.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    representation_mask=self.representation_mask,
                    keys=self.keys,
                    anchor_ids=self.anchor_ids,
                    idf=self.index.idf,
                )
        write_json(
            bank_dir / "bank.json",
            {
                **self.metadata,
                "layer": self.layer,
                "num_buckets": self.index.num_buckets,
                "ignore_ids": list(self.index.ignore_ids),
                "num_anchors": self.num_anchors,
                "num_tokens": self.num_tokens,
                "representation_shards": writer.names,
            },
        )
        for stale in set(p.name for p in bank_dir.glob(SHARD_GLOB)) - set(writer.names):
            (bank_dir / stale).unlink()
        return bank_dir

    @classmethod
    def load(cls, bank_dir: str | os.PathLike) -> ReferenceBank:
        """Reload a bank written by :meth:`save` or :func:`build_bank` (also the older single-``bank.npz`` layout).

        Raises:
            BankError: if a file (``bank.json``, ``bank.npz``, a shard) is missing or the bank is empty.
        """
        bank_dir = Path(bank_dir)
        for name in ("bank.npz", "bank.json"):
            if not (bank_dir / name).is_file():
                raise BankError(f"no reference bank in {bank_dir} (missing {name})")
        meta = json.loads((bank_dir / "bank.json").read_text(encoding="utf-8"))
        with np.load(bank_dir / "bank.npz") as arrays:
            arrays = dict(arrays)
        shards = meta.pop("representation_shards", None)
        if "representations" not in arrays:
            missing = [name for name in shards if not (bank_dir / name).is_file()] if shards else ["representations"]
            if missing:
                raise BankError(f"reference bank {bank_dir} is incomplete: missing {', '.join(missing)}")
            arrays["representations"] = read_shards(bank_dir, shards)
        index = RetrievalIndex(int(meta.pop("num_buckets")), arrays["idf"], tuple(meta.pop("ignore_ids")))
        layer = int(meta.pop("layer"))
        for derived in ("num_anchors", "num_tokens"):
            meta.pop(derived, None)
        return cls(
            arrays["representations"],
            arrays["representation_mask"],
            arrays["keys"],
            arrays["anchor_ids"],
            index,
            layer,
            meta,
        )


def read_shards(bank_dir: Path, names) -> np.ndarray:
    """The representation shards ``names`` in ``bank_dir``, concatenated: float32 [M, R, d]."""
    return np.concatenate([np.load(bank_dir / name, mmap_mode="r") for name in names])


class ShardWriter:
    """Writes anchor representations to ``representations-<i>-of-<S>.npy`` files as they arrive.

    Holds at most one shard (``shard_size`` anchors) in memory; each shard is written atomically. Removes
    ``bank.json`` first, so an interrupted write never leaves a directory that loads as a complete bank.

    Args:
        bank_dir: destination directory (created).
        num_anchors: M, the anchors that will be added in total.
        shard_size: anchors per file (the last file holds the rest).

    Raises:
        ValueError: if ``shard_size`` < 1.
    """

    def __init__(self, bank_dir: str | os.PathLike, num_anchors: int, shard_size: int = DEFAULT_SHARD_SIZE):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.bank_dir, self.num_anchors, self.shard_size = Path(bank_dir), int(num_anchors), int(shard_size)
        self.bank_dir.mkdir(parents=True, exist_ok=True)
        (self.bank_dir / "bank.json").unlink(missing_ok=True)
        num_shards = -(-self.num_anchors // self.shard_size)
        self.names = [SHARD_PATTERN.format(i, num_shards) for i in range(num_shards)]
        self._pending, self._num_pending, self._num_written = [], 0, 0

    def add(self, representations: np.ndarray):
        """Append float32 [b, R, d] representations of the next b anchors; writes every shard that fills up."""
        while len(representations):
            take = min(len(representations), self.shard_size - self._num_pending)
            self._pending.append(np.asarray(representations[:take], np.float32))
            self._num_pending += take
            representations = representations[take:]
            if self._num_pending == self.shard_size:
                self._flush()

    def close(self) -> ShardWriter:
        """Write the last partial shard.

        Raises:
            BankError: if the number of anchors added is not ``num_anchors``.
        """
        if self._num_pending:
            self._flush()
        if self._num_written != self.num_anchors:
            raise BankError(
                f"{self.bank_dir}: {self._num_written} anchor representations written, expected {self.num_anchors}"
            )
        return self

    def _flush(self):
        shard = self._num_written // self.shard_size
        if shard >= len(self.names):
            raise BankError(f"{self.bank_dir}: more than {self.num_anchors} anchor representations added")
        with atomic_path(self.bank_dir / self.names[shard]) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.concatenate(self._pending))
        self._num_written += self._num_pending
        self._pending, self._num_pending = [], 0


def select_anchors(keys, max_anchors: int, seed: int = 0, kmeans_passes: int = 100) -> np.ndarray:
    """Indices of at most ``max_anchors`` training examples that cover the key space.

    All examples when there are few enough; otherwise the example nearest to each centroid of a k-means
    clustering of the keys (scikit-learn ``MiniBatchKMeans``, Sculley 2010), duplicates removed.

    Cost with N keys, M anchors and ``nnz`` buckets per key: k-means++ initialisation on max(3 * 4096, 3 * M)
    sampled keys, O(M * max(12288, 3 * M) * log M * nnz); each mini-batch step O(4096 * M * nnz), steps until
    scikit-learn's early stopping or ``kmeans_passes * N / 4096``; the nearest example to each centroid
    O(M * N * nnz). Memory: O(N * nnz) keys (sparse), O(M * K) centroids, scikit-learn's chunked distances.
    Measured on this machine (2 cores, shared with a training job), N = 10**6: M = 1024 stopped early after 699
    steps, 2.3 minutes in all; M = 4096 had not stopped after 25 minutes (> 2,900 steps), and took 8.8 minutes with
    ``kmeans_passes=1`` (244 steps).

    Args:
        keys: [N, K] retrieval keys (sparse or dense).
        max_anchors: M, the cap.
        seed: k-means seed.
        kmeans_passes: cap on the mini-batch steps, in passes over the N keys (``MiniBatchKMeans(max_iter=...)``;
            the default is scikit-learn's).

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

    # compute_labels=False: the labels of all N keys are not needed (the centroids are the same either way);
    # max_iter: at least one mini-batch step (scikit-learn takes max_iter * N // 4096 steps)
    kmeans = MiniBatchKMeans(
        n_clusters=max_anchors,
        random_state=seed,
        batch_size=4096,
        n_init=1,
        compute_labels=False,
        max_iter=max(int(kmeans_passes), -(-4096 // n)),
    )
    kmeans.fit(keys)
    return np.unique(pairwise_distances_argmin(kmeans.cluster_centers_, keys)).astype(np.int64)


def resolve_layer(backbone, layer: int) -> int:
    """``layer`` as a number in 0..L: negative values count from the top (-1 = the last block, L).

    Raises:
        ValueError: if ``layer`` is outside -L-1..L.
    """
    num_layers = backbone.num_layers
    if not -num_layers - 1 <= layer <= num_layers:
        raise ValueError(
            f"teacher layer must be in 0..{num_layers} (or -{num_layers + 1}..-1 from the top), got {layer}"
        )
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


def teacher_representations(
    backbone,
    features: dict,
    layer: int = -1,
    num_tokens: int = 4,
    batch_size: int = 128,
    strategy=None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Run the teacher over examples in batches, distributed by a ``tf.distribute`` strategy, in input order.

    Each global batch of ``batch_size`` examples (padded to its longest member) is split over the replicas
    (``strategy.experimental_distribute_dataset``), each replica runs the layer model (``strategy.run``) and keeps
    its first R positions, and ``strategy.gather`` concatenates the replicas' rows back in input order. Memory:
    one batch; the caller decides what to keep (:func:`build_bank` streams to shard files). Input order is
    checked for the default strategy and ``MirroredStrategy`` (one worker); several workers
    (``MultiWorkerMirroredStrategy``, tf.data auto-sharding) are not tested here.

    Args:
        backbone: the teacher's encoder (built outside or inside ``strategy.scope()``; its weights are only read).
        features: encoded examples (``token_ids``, ``segment_ids`` ragged [n, (T)]).
        layer: teacher layer (see :func:`teacher_layer_model`).
        num_tokens: R, positions kept per example.
        batch_size: global batch (examples per forward pass over all replicas).
        strategy: a ``tf.distribute.Strategy`` (``MirroredStrategy`` for several GPUs or logical CPUs,
            ``TPUStrategy``...); None: ``tf.distribute.get_strategy()``, the strategy whose scope is active, else
            the default single-device one.
        progress: show a tqdm progress bar.

    Yields:
        ``(hidden float32 [b, R, d] (zeros past an example's length), mask int32 [b, R])`` per batch.

    Raises:
        ValueError: if ``layer`` is out of range.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    from refbert_tf.data import make_dataset

    strategy = strategy or tf.distribute.get_strategy()
    model = teacher_layer_model(backbone, layer)
    n = int(features["token_ids"].nrows())
    batches = strategy.experimental_distribute_dataset(make_dataset(features, None, batch_size=batch_size))

    def replica_step(batch):
        mask = batch["padding_mask"][:, :num_tokens]
        pad = [[0, 0], [0, num_tokens - tf.shape(mask)[1]]]
        mask = tf.pad(mask, pad)
        hidden = tf.pad(model(batch, training=False)[:, :num_tokens], pad + [[0, 0]])
        return hidden * tf.cast(mask, hidden.dtype)[..., None], mask

    @tf.function(reduce_retracing=True)
    def step(batch):
        # one gather per tensor: on a tuple of per-replica values, gather (TF 2.21, MirroredStrategy) returned
        # the first replica's rows only
        return tuple(strategy.gather(v, axis=0) for v in strategy.run(replica_step, args=(batch,)))

    for batch in tqdm(batches, total=-(-n // batch_size), desc="teacher", unit="batch", disable=not progress):
        hidden, mask = step(batch)
        yield hidden.numpy().astype(np.float32), mask.numpy().astype(np.int32)


def build_bank(
    backbone,
    features,
    index: RetrievalIndex | None = None,
    layer: int = -1,
    num_tokens: int = 4,
    max_anchors: int = 1024,
    batch_size: int = 128,
    seed: int = 0,
    ignore_ids=None,
    num_buckets: int = DEFAULT_NUM_BUCKETS,
    metadata: dict | None = None,
    progress: bool = True,
    *,
    strategy=None,
    bank_dir: str | os.PathLike | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    kmeans_passes: int = 100,
    timings: dict | None = None,
) -> ReferenceBank:
    """Build a reference bank from training examples, streaming: memory grows with N only by the sparse keys.

    Phases (seconds recorded in ``timings``):

    1. ``encode``: tokenize (for a text :class:`Corpus`) and hash the corpus ``chunk_size`` examples at a time into
       one sparse count matrix; fit the idf (unless ``index`` is given) and compute the keys. Time O(N * T),
       memory O(N * nnz) (~8 bytes per counted bucket).
    2. ``anchors``: :func:`select_anchors` (k-means over the keys; see its cost).
    3. ``teacher``: :func:`teacher_representations` over the M anchors under ``strategy``, each batch appended to
       the current shard, written when it holds ``shard_size`` anchors (:class:`ShardWriter`). Time
       O(M * T^2 * model), memory one shard.

    The bank is then read back from its shards (M is capped, so the bank fits in memory: M * R * d * 4 bytes).

    Args:
        backbone: the fine-tuned teacher's encoder (``teacher.backbone``).
        features: encoded training examples (``token_ids``, ``segment_ids`` ragged [N, (T)]) or a :class:`Corpus`.
        index: a fitted retrieval index, or None to fit one on ``features``.
        layer: teacher layer of the stored hidden states (see :func:`teacher_layer_model`; -1 = last).
        num_tokens: R, tokens stored per anchor (the first R, [CLS] included).
        max_anchors: M, cap on the number of anchors (see :func:`select_anchors`).
        batch_size: examples per teacher forward pass (the global batch under ``strategy``).
        seed: anchor-selection seed.
        ignore_ids: token ids left out of retrieval keys (required when ``index`` is None).
        num_buckets: K for a new index.
        metadata: stored with the bank (task, teacher id, vocab sha256...).
        progress: show a tqdm progress bar.
        strategy: ``tf.distribute.Strategy`` for the teacher's forward passes (None: the active or default one).
        bank_dir: write the bank there (as :meth:`ReferenceBank.save` does); None: shards go to a temporary
            directory, removed before returning.
        shard_size: anchors per representation shard.
        chunk_size: examples encoded at once.
        kmeans_passes: cap on k-means' mini-batch steps in passes over the corpus (see :func:`select_anchors`).
        timings: a dict that receives the seconds of each phase.

    Returns:
        :class:`ReferenceBank`.

    Raises:
        BankError: for an empty training set.
        ValueError: without ``index`` nor ``ignore_ids``; ``shard_size`` < 1; ``layer`` out of range.
    """
    corpus = as_corpus(features)
    n = corpus.size
    if n == 0:
        raise BankError("cannot build a reference bank from 0 training examples")
    if index is None and ignore_ids is None:
        raise ValueError("ignore_ids ([CLS], [SEP], [PAD] ids) is required to fit a retrieval index")
    timings = {} if timings is None else timings
    clock = time.perf_counter()

    def lap(phase):
        nonlocal clock
        timings[phase] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    counts = corpus_counts(
        corpus, index.num_buckets if index else num_buckets, index.ignore_ids if index else ignore_ids, chunk_size
    )
    index = index or RetrievalIndex.fit_counts(counts, ignore_ids)
    all_keys = index.keys_from_counts(counts)
    del counts
    lap("encode")
    anchor_ids = select_anchors(all_keys, max_anchors, seed, kmeans_passes)
    anchor_keys = all_keys[anchor_ids].toarray().astype(np.float32)
    del all_keys
    lap("anchors")
    layer = resolve_layer(backbone, layer)
    masks = np.zeros((len(anchor_ids), num_tokens), np.int32)
    with contextlib.ExitStack() as stack:
        out = Path(bank_dir) if bank_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        writer = ShardWriter(out, len(anchor_ids), shard_size)
        done = 0
        for hidden, mask in teacher_representations(
            backbone, corpus.encode(anchor_ids), layer, num_tokens, batch_size, strategy, progress
        ):
            masks[done : done + len(mask)] = mask
            writer.add(hidden)
            done += len(mask)
        writer.close()
        representations = read_shards(out, writer.names)
        bank = ReferenceBank(
            representations, masks, anchor_keys, anchor_ids, index, layer, {**(metadata or {}), "num_train": n}
        )
        if bank_dir is not None:
            bank._write_index_files(writer)
    lap("teacher")
    return bank


def reference_label_agreement(
    bank: ReferenceBank, features: dict, labels, anchor_labels, exclude_self: bool = False
) -> dict:
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
    return label_agreement(labels, np.asarray(anchor_labels)[bank.anchor_ids[index]], similarity)


def label_agreement(labels, reference_labels, similarity=None) -> dict:
    """Share of examples whose reference label equals their own, beside the majority-class share.

    Args:
        labels: int [N] gold labels of the examples.
        reference_labels: int [N] labels of their references (or of a vote over several).
        similarity: optional float [N] retrieval similarities (their mean is reported).

    Returns:
        ``{"agreement" (percent), "majority_class" (percent)[, "mean_similarity"]}``.
    """
    labels = np.asarray(labels)
    out = {
        "agreement": round(100 * float(np.mean(np.asarray(reference_labels) == labels)), 2),
        "majority_class": round(100 * float(np.bincount(labels).max() / len(labels)), 2),
    }
    if similarity is not None:
        out["mean_similarity"] = round(float(np.mean(similarity)), 4)
    return out
