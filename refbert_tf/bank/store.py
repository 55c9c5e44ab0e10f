"""The reference bank's container and its files: :class:`ReferenceBank`, the sharded on-disk layout, diagnostics.

On disk a bank is a directory, each file written atomically and ``bank.json`` last (its presence marks a complete
bank): ``representations-00000-of-0000S.npy`` ... (float32 [<= shard_size, R, d] each, in anchor order),
``bank.npz`` (mask, keys, anchor ids, idf) and ``bank.json`` (metadata, the shard names). Banks written before
sharding keep the representations inside ``bank.npz`` and still load.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from refbert_tf import faults
from refbert_tf.bank.corpus import DEFAULT_CHUNK_SIZE, as_corpus
from refbert_tf.io_utils import atomic_path, file_sha256, load_artifact, read_json, write_json
from refbert_tf.retrieval import RetrievalIndex, nearest_anchors

DEFAULT_SHARD_SIZE = 4096  # anchors per representation shard (25 MB at R=4, d=384)
SHARD_PATTERN = "representations-{:05d}-of-{:05d}.npy"
SHARD_GLOB = "representations-*-of-*.npy"  # every file SHARD_PATTERN names


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
                "representation_sha256": [file_sha256(bank_dir / name) for name in writer.names],
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
            CorruptArtifactError: a file that cannot be read, or a shard that is not the file whose sha256
                ``bank.json`` records (truncated): the message names it and says to delete the bank.
        """
        bank_dir = Path(bank_dir)
        for name in ("bank.npz", "bank.json"):
            if not (bank_dir / name).is_file():
                raise BankError(f"no reference bank in {bank_dir} (missing {name})")
        remedy = f"delete {bank_dir} and re-run: the bank is built again"
        meta = read_json(bank_dir / "bank.json", remedy)
        arrays = load_artifact(bank_dir / "bank.npz", _read_npz, remedy)
        shards = meta.pop("representation_shards", None)
        checksums = meta.pop("representation_sha256", None) or [None] * len(shards or ())
        if "representations" not in arrays:
            missing = [name for name in shards if not (bank_dir / name).is_file()] if shards else ["representations"]
            if missing:
                raise BankError(f"reference bank {bank_dir} is incomplete: missing {', '.join(missing)}")
            arrays["representations"] = np.concatenate(
                [
                    load_artifact(bank_dir / name, lambda p: np.load(p, mmap_mode="r"), remedy, sha256=sha)
                    for name, sha in zip(shards, checksums)
                ]
            )
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


def _read_npz(path) -> dict:
    with np.load(path) as arrays:
        return dict(arrays)


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
        faults.reached("bank:shard")


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
