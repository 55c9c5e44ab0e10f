"""The reference bank: anchors with the teacher's pre-computed representations (RefBERT, Wang et al. 2021).

For each anchor the bank keeps the teacher's hidden states of one layer for the anchor's first ``R`` tokens
(layer and R are options; design note part 3, *our reading*), and its retrieval key
(:mod:`refbert_tf.retrieval`). Small tasks use every training example as an anchor; above ``max_anchors`` the
anchors are the training examples nearest to k-means centroids of the retrieval keys (scikit-learn
``MiniBatchKMeans``), so they cover the lexical space.

Modules:

* :mod:`refbert_tf.bank.corpus`: :class:`Corpus`, a training set encoded and hashed a chunk at a time.
* :mod:`refbert_tf.bank.store`: :class:`ReferenceBank` (references per example, compatibility checks), its
  sharded on-disk layout (:class:`ShardWriter`, :func:`read_shards`) and the label-agreement diagnostics.
* :mod:`refbert_tf.bank.build`: :func:`build_bank` (anchor selection, the teacher's representations, streamed to
  shards).
* :mod:`refbert_tf.bank.references`: a distillation run's bank (:func:`load_or_build_bank`) and every training
  example's offline reference (:func:`training_references`).

Every public name is importable from ``refbert_tf.bank`` itself.
"""

from refbert_tf.bank.build import (
    build_bank,
    resolve_layer,
    select_anchors,
    teacher_layer_model,
    teacher_representations,
)
from refbert_tf.bank.corpus import DEFAULT_CHUNK_SIZE, Corpus, as_corpus, corpus_counts
from refbert_tf.bank.references import load_or_build_bank, training_references
from refbert_tf.bank.store import (
    DEFAULT_SHARD_SIZE,
    SHARD_GLOB,
    SHARD_PATTERN,
    BankError,
    ReferenceBank,
    ShardWriter,
    label_agreement,
    read_shards,
    reference_label_agreement,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SHARD_SIZE",
    "SHARD_GLOB",
    "SHARD_PATTERN",
    "BankError",
    "Corpus",
    "ReferenceBank",
    "ShardWriter",
    "as_corpus",
    "build_bank",
    "corpus_counts",
    "label_agreement",
    "load_or_build_bank",
    "read_shards",
    "reference_label_agreement",
    "resolve_layer",
    "select_anchors",
    "teacher_layer_model",
    "teacher_representations",
    "training_references",
]
