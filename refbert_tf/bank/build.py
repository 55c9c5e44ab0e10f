"""Building a reference bank (RefBERT, Wang et al. 2021) from a training set, streaming.

Building scales to corpora far larger than GLUE (:func:`build_bank`): the training set is a
:class:`~refbert_tf.bank.corpus.Corpus` read in chunks (tokenized and hashed chunk by chunk into one sparse count
matrix, O(N * nnz) memory), the anchors are chosen by k-means over the sparse keys (:func:`select_anchors`), the
teacher runs over the M anchors in batches under any ``tf.distribute.Strategy`` (:func:`teacher_representations`),
and its hidden states stream to shard files (:class:`~refbert_tf.bank.store.ShardWriter`). References for every
training example (:meth:`~refbert_tf.bank.store.ReferenceBank.references_for`) are picked chunk by chunk as well.
``recipes/benchmark_bank.py`` measures a million-sentence build.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin
from tqdm.auto import tqdm

from refbert_tf.bank.corpus import DEFAULT_CHUNK_SIZE, as_corpus, corpus_counts
from refbert_tf.bank.store import DEFAULT_SHARD_SIZE, BankError, ReferenceBank, ShardWriter, read_shards
from refbert_tf.data import make_dataset
from refbert_tf.retrieval import DEFAULT_NUM_BUCKETS, RetrievalIndex


def select_anchors(keys, max_anchors: int, seed: int = 0, kmeans_passes: int = 100) -> np.ndarray:
    """Indices of at most ``max_anchors`` training examples that cover the key space.

    All examples when there are few enough; otherwise the example nearest to each centroid of a k-means
    clustering of the keys (scikit-learn ``MiniBatchKMeans``, Sculley 2010), duplicates removed.

    Cost with N keys, M anchors and ``nnz`` buckets per key: k-means++ initialisation on max(3 * 4096, 3 * M)
    sampled keys, O(M * max(12288, 3 * M) * log M * nnz); each mini-batch step O(4096 * M * nnz), steps until
    scikit-learn's early stopping or ``kmeans_passes * N / 4096``; the nearest example to each centroid
    O(M * N * nnz). Memory: O(N * nnz) keys (sparse), O(M * K) centroids, scikit-learn's chunked distances.
    ``kmeans_passes`` bounds the time when early stopping does not end the fit.

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
