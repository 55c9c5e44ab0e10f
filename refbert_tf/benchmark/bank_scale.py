"""Bank building at scale, behind ``recipes/benchmark_bank.py``: a synthetic corpus of N sentences, one bank build.

The corpus is made on the fly, never stored: sentence i is 5-30 words drawn (with replacement) from the running
words of the SST-2 training set, so word frequencies follow real English (Zipf), from a generator seeded by
``(seed, i // BLOCK)``. The figures printed are seconds per phase and the peak resident memory of the process
(``ru_maxrss``, which includes TensorFlow and the teacher's weights).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from refbert_tf.bank import Corpus, build_bank
from refbert_tf.data import read_glue_tsv
from refbert_tf.models.checkpoints import load_backbone
from refbert_tf.training import peak_memory_mb

BLOCK = 65536  # sentences generated together (one generator seed)
MIN_WORDS, MAX_WORDS = 5, 30


class SyntheticCorpus:
    """A deterministic, lazily generated sequence of ``size`` sentences (``len`` and ``corpus[i]``).

    Memory O(BLOCK) sentences (the block last asked for is cached; ascending access regenerates each block once).

    Args:
        words: the vocabulary to sample from (repeats make frequent words frequent).
        size: N.
        seed: generator seed; the same (words, seed) give the same sentences.
    """

    def __init__(self, words, size: int, seed: int = 0):
        self.words = np.asarray(list(words), dtype=object)
        if len(self.words) == 0 or size < 0:
            raise ValueError(f"need a non-empty word list and size >= 0, got {len(self.words)} words, size {size}")
        self.size, self.seed = int(size), int(seed)
        self._block, self._sentences = -1, []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self.size:
            raise IndexError(f"sentence {i} out of range 0..{self.size - 1}")
        block = i // BLOCK
        if block != self._block:
            rng = np.random.default_rng([self.seed, block])
            lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, size=BLOCK)
            picks = self.words[rng.integers(0, len(self.words), size=int(lengths.sum()))]
            self._sentences = [" ".join(s) for s in np.split(picks, np.cumsum(lengths)[:-1])]
            self._block = block
        return self._sentences[i % BLOCK]


def sst2_words(glue_dir=None) -> list[str]:
    """The running words (whitespace-split, repeats kept) of the SST-2 training sentences.

    Raises:
        GlueDataError: if the SST-2 training file is missing.
    """
    return [w for text in read_glue_tsv("sst2", "train", glue_dir=glue_dir).text_a for w in text.split()]


def run_bank_benchmark(
    num_sentences: int = 1_000_000,
    max_anchors: int = 1024,
    num_tokens: int = 4,
    shard_size: int = 4096,
    batch_size: int = 128,
    chunk_size: int = 65536,
    out_dir: str = "bank_scale",
    strategy=None,
    glue_dir=None,
    seed: int = 0,
    max_seq_len: int = 128,
    kmeans_passes: int = 100,
    progress: bool = True,
) -> dict:
    """Build a bank over a synthetic corpus with the default MiniLM teacher, pick every sentence's reference.

    Args:
        num_sentences: N.
        max_anchors: M.
        num_tokens: R.
        shard_size: anchors per representation shard.
        batch_size: global batch of the teacher's forward passes.
        chunk_size: sentences tokenized, hashed or searched at once.
        out_dir: the bank directory written.
        strategy: a ``tf.distribute.Strategy`` for teacher inference (None: the default strategy).
        glue_dir: GLUE root (SST-2 words for the corpus).
        seed: corpus and k-means seed.
        max_seq_len: packed length limit of the teacher's inputs.
        kmeans_passes: cap on k-means' mini-batch steps in passes over the corpus.
        progress: progress bars.

    Returns:
        the figures: N, M, R, shards, seconds per phase and in total, peak memory (MB), references excluding self.
    """
    start = time.perf_counter()
    backbone, tokenizer, info = load_backbone()
    corpus = Corpus.from_texts(SyntheticCorpus(sst2_words(glue_dir), num_sentences, seed), tokenizer, max_seq_len)
    timings = {"load_teacher_and_words": round(time.perf_counter() - start, 1)}
    bank = build_bank(
        backbone,
        corpus,
        num_tokens=num_tokens,
        max_anchors=max_anchors,
        batch_size=batch_size,
        seed=seed,
        ignore_ids=(tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id),
        metadata={
            "teacher": info.spec,
            "vocab_sha256": tokenizer.vocab_sha256,
            "corpus": f"synthetic sst2-words seed={seed}",
        },
        progress=progress,
        strategy=strategy,
        bank_dir=out_dir,
        shard_size=shard_size,
        chunk_size=chunk_size,
        kmeans_passes=kmeans_passes,
        timings=timings,
    )
    t0 = time.perf_counter()
    reference, _ = bank.references_for(corpus, exclude_self=True, chunk_size=chunk_size)
    timings["references"] = round(time.perf_counter() - t0, 1)
    return {
        "num_sentences": num_sentences,
        "num_anchors": bank.num_anchors,
        "max_anchors": max_anchors,
        "num_tokens": bank.num_tokens,
        "teacher_dim": int(bank.representations.shape[2]),
        "num_shards": len(list(Path(out_dir).glob("representations-*-of-*.npy"))),
        "shard_size": shard_size,
        "batch_size": batch_size,
        "chunk_size": chunk_size,
        "kmeans_passes": kmeans_passes,
        "replicas": int(getattr(strategy, "num_replicas_in_sync", 1)),
        "seconds": timings,
        "total_seconds": round(time.perf_counter() - start, 1),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "bank_mb": round(bank.size_mb, 1),
        "self_references": int(np.sum(bank.anchor_ids[reference] == np.arange(num_sentences))),
        "distinct_references": int(len(np.unique(reference))),
    }
