"""The RefBERT student: a small BERT whose first block also attends to the teacher's representation of a reference.

RefBERT (Wang et al. 2021; design note part 4): the first Transformer block's keys and values are extended with
the reference tokens, ``K = [X W_K ; P(ref) W_K]``, ``V = [X W_V ; P(ref) W_V]``, queries from the input only;
``P: d_teacher -> d_student`` is a learned linear projection (*our reading*; ``reference_projection="linear_norm"``
adds a LayerNorm after it). The reference is the bank anchor most similar to the input under
:mod:`refbert_tf.retrieval` (or, with ``top_k > 1``, the k best anchors' tokens side by side); the bank is a
constant, non-trainable part of the model, so one exported file carries it.

The student takes ``{"token_ids", "segment_ids", "padding_mask"}`` int32 [B, T] and, during training, an optional
``"reference_index"`` int32 [B] (or [B, k]; the anchors chosen offline, excluding the example itself). Without it the model
retrieves the reference in-graph (``argmax`` of key similarities), as on the device.

Dense retrieval (``dense_config``; Zhang et al., "ReAugKD", ACL 2023, read for RefBERT's open similarity
criterion): the bank also holds each anchor's key in the fine-tuned teacher's space and the teacher's class
probabilities on it (:class:`~refbert_tf.models.dense_bank_layer.DenseReferenceBank`), and a learned query head
maps the student's own representation into that space. ``entry="early"``: the query is a projection of the
student's mean-pooled embedding output, and the top-1 anchor's reference tokens join the first block's keys and
values as above (RefBERT's entry point). ``entry="late"``: the query is a projection of the student's pooled
output; the top-k anchors' teacher probabilities, weighted by similarity, are mixed with the student's prediction
(:class:`~refbert_tf.models.dense_bank_layer.LateFusion`, ReAugKD's aggregation), so the model outputs
log-probabilities. An optional ``"anchor_position"`` int32 [B] input (-1: not an anchor) keeps a training example
from retrieving itself.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import keras_hub
import numpy as np

from refbert_tf import faults
from refbert_tf.io_utils import file_sha256, load_artifact, read_json, save_model_dir, write_json, write_text
from refbert_tf.models.dense_bank_layer import DenseReferenceBank, LateFusion
from refbert_tf.models.presets import DENSE_ENTRIES, REFERENCE_PROJECTIONS, STUDENT_PRESETS
from refbert_tf.models.reference_bank_layer import ReferenceBankLayer
from refbert_tf.models.reference_encoder import ReferenceTransformerEncoder, attention_logits


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def mean_over_tokens(sequence, padding_mask):
    """Mean of ``sequence`` [B, T, D] over the real tokens of ``padding_mask`` [B, T] (0/1) -> [B, D]; a row with no
    real token gives zeros. The student's early dense query and the teacher's ``mean`` key space."""
    mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, sequence.dtype), -1)
    return keras.ops.sum(sequence * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


def dummy_inputs() -> dict:
    """A one-example, four-token batch of model inputs, for building models before use."""
    return {
        "token_ids": np.zeros((1, 4), np.int32),
        "segment_ids": np.zeros((1, 4), np.int32),
        "padding_mask": np.ones((1, 4), np.int32),
    }


@keras.saving.register_keras_serializable(package="refbert_tf")
class RefBertStudent(keras.Model):
    """Small BERT classifier, optionally reference-augmented (RefBERT) or plain (vanilla TinyBERT).

    Args:
        vocabulary_size: the teacher's vocabulary size (students share the teacher's tokenizer).
        num_classes: task outputs (1 for STS-B).
        num_layers, hidden_dim, num_heads, intermediate_dim: encoder shape (see ``STUDENT_PRESETS``).
        embedding_dim: E, width of the token embeddings. None (or ``hidden_dim``): a [V, H] table. Smaller:
            factorised embeddings (ALBERT, Lan et al. 2020, sec. 3.1), a [V, E] table followed by an E x H
            projection (``embedding_projection``, with bias), so the table costs V x E instead of V x H.
        max_sequence_length: position embeddings (tokens).
        teacher_dim: hidden size of the teacher (the bank's width, input of the projection P).
        bank_config: ``ReferenceBankLayer`` config (None: a vanilla student without references).
        dropout: dropout rate.
        reference_projection: P, ``"linear"`` (a Dense, *our reading* of the design note) or ``"linear_norm"``
            (Dense, then LayerNorm: the projected reference on the scale of the student's normalised embeddings,
            which it meets in the first block's keys and values).
        dense_config: dense retrieval (None: lexical, or none for vanilla): ``entry`` (``"early"``, which needs
            ``bank_config`` for the reference tokens, or ``"late"``) and the
            :class:`~refbert_tf.models.dense_bank_layer.DenseReferenceBank` arguments ``num_anchors``,
            ``key_dim``, ``num_classes``, ``top_k``, ``temperature``.

    Raises:
        ValueError: for an unknown ``reference_projection`` or dense ``entry``, ``embedding_dim`` outside
            1..``hidden_dim``, an early dense entry without
            ``bank_config``, or a late one for regression (``num_classes`` 1).

    ``call(inputs)`` returns logits [B, num_classes]; ``call_with_features(inputs)`` returns a dict with
    ``logits``, ``embeddings`` [B, T, H], ``hidden_states`` (list of L tensors [B, T, H]) and ``attention_logits``
    (list of L tensors [B, heads, T, T], pre-softmax scores over the input tokens) for distillation; with dense
    retrieval also ``query`` [B, key_dim] (the query head's output, which the distiller pulls towards the
    input's own teacher key) and, late, ``student_logits`` (the classifier's logits before the fusion).
    """

    def __init__(
        self,
        vocabulary_size: int,
        num_classes: int,
        num_layers: int = 4,
        hidden_dim: int = 312,
        num_heads: int = 12,
        intermediate_dim: int = 1200,
        max_sequence_length: int = 512,
        teacher_dim: int = 384,
        bank_config: dict | None = None,
        dropout: float = 0.1,
        reference_projection: str = "linear",
        dense_config: dict | None = None,
        embedding_dim: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embedding_dim is not None and not 1 <= embedding_dim <= hidden_dim:
            raise ValueError(f"embedding_dim must be in 1..hidden_dim ({hidden_dim}), got {embedding_dim}")
        if embedding_dim == hidden_dim:
            embedding_dim = None
        if dense_config is not None:
            entry = dense_config.get("entry")
            if entry not in DENSE_ENTRIES:
                raise ValueError(f"unknown dense entry {entry!r}; use one of {', '.join(DENSE_ENTRIES)}")
            if entry == "early" and bank_config is None:
                raise ValueError("an early dense entry reads the bank's reference tokens: bank_config is required")
            if entry == "late" and num_classes < 2:
                raise ValueError("a late dense entry mixes class probabilities: classification tasks only")
        if reference_projection not in REFERENCE_PROJECTIONS:
            raise ValueError(
                f"unknown reference_projection {reference_projection!r}; use one of {', '.join(REFERENCE_PROJECTIONS)}"
            )
        self.config_values = dict(
            vocabulary_size=vocabulary_size,
            num_classes=num_classes,
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            max_sequence_length=max_sequence_length,
            teacher_dim=teacher_dim,
            bank_config=bank_config,
            dropout=dropout,
            reference_projection=reference_projection,
            dense_config=dense_config,
            embedding_dim=embedding_dim,
        )
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim or hidden_dim, embeddings_initializer=init, name="token_embedding"
        )
        self.embedding_projection = None
        if embedding_dim is not None:
            self.embedding_projection = keras.layers.Dense(
                hidden_dim, kernel_initializer=init, name="embedding_projection"
            )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            max_sequence_length, initializer=init, name="position_embedding"
        )
        self.segment_embedding = keras.layers.Embedding(
            2, hidden_dim, embeddings_initializer=init, name="segment_embedding"
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout)
        self.blocks = [
            ReferenceTransformerEncoder(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation=_gelu,
                dropout=dropout,
                layer_norm_epsilon=1e-12,
                kernel_initializer=init,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=init, name="pooled_dense"
        )
        self.head_dropout = keras.layers.Dropout(dropout)
        self.classifier = keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")
        self.bank = None
        if bank_config is not None:
            self.bank = ReferenceBankLayer(**bank_config, name="reference_bank")
            self.reference_projection = keras.layers.Dense(
                hidden_dim, kernel_initializer=init, name="reference_projection"
            )
            self.reference_projection_norm = None
            if reference_projection == "linear_norm":
                self.reference_projection_norm = keras.layers.LayerNormalization(
                    epsilon=1e-12, name="reference_projection_norm"
                )
        self.dense_entry = self.dense_bank = self.late_fusion = None
        if dense_config is not None:
            self.dense_entry = dense_config["entry"]
            bank_args = {k: v for k, v in dense_config.items() if k != "entry"}
            self.dense_bank = DenseReferenceBank(**bank_args, name="dense_reference_bank")
            self.query_projection = keras.layers.Dense(
                bank_args["key_dim"], kernel_initializer=init, name="query_projection"
            )
            if self.dense_entry == "late":
                self.late_fusion = LateFusion(name="late_fusion")

    def project_reference(self, reference):
        """P(ref): teacher-width reference tokens [..., d_teacher] -> [..., d_student]."""
        projected = self.reference_projection(reference)
        if self.reference_projection_norm is not None:
            projected = self.reference_projection_norm(projected)
        return projected

    @property
    def uses_reference(self) -> bool:
        """True for a RefBERT student, False for the vanilla baseline."""
        return self.bank is not None or self.dense_bank is not None

    def call_with_features(self, inputs, training=None):
        token_ids, segment_ids = inputs["token_ids"], inputs["segment_ids"]
        padding_mask = inputs["padding_mask"]
        x = self.token_embedding(token_ids)
        if self.embedding_projection is not None:
            x = self.embedding_projection(x)
        x = x + self.segment_embedding(segment_ids)
        x = x + self.position_embedding(x)
        x = self.embeddings_dropout(self.embeddings_layer_norm(x), training=training)
        features = {"embeddings": x, "hidden_states": [], "attention_logits": []}
        exclude = inputs.get("anchor_position") if isinstance(inputs, dict) else None
        if self.dense_entry == "early":
            features["query"] = self.query_projection(mean_over_tokens(x, padding_mask))
        reference = reference_mask = None
        if self.bank is not None:
            index = inputs.get("reference_index") if isinstance(inputs, dict) else None
            if index is None and self.dense_entry == "early":
                index = self.dense_bank.retrieve(features["query"], exclude)[0]  # [B, k], best first
                if self.bank.top_k == 1:
                    index = index[:, 0]
            elif index is None:
                index = self.bank.retrieve(token_ids, padding_mask)
            reference, reference_mask = self.bank(index)
            if self.bank.projected_representations is None:  # else P(ref) is folded into the bank (export)
                reference = self.project_reference(reference)
        for i, block in enumerate(self.blocks):
            block_input = x
            if i == 0 and reference is not None:
                x = block(
                    x, padding_mask=padding_mask, reference=reference, reference_mask=reference_mask, training=training
                )
            else:
                x = block(x, padding_mask=padding_mask, training=training)
            features["attention_logits"].append(attention_logits(block, block_input))  # block is built now
            features["hidden_states"].append(x)
        pooled = self.pooled_dense(x[:, 0, :])
        features["logits"] = self.classifier(self.head_dropout(pooled, training=training))
        if self.dense_entry == "late":
            features["query"] = self.query_projection(pooled)
            features["student_logits"] = features["logits"]
            features["logits"] = self.late_fusion(features["logits"], self.dense_bank(features["query"], exclude))
        return features

    def call(self, inputs, training=None):
        return self.call_with_features(inputs, training=training)["logits"]

    @contextlib.contextmanager
    def export_constants(self):
        """Within this context the bank is traced as export constants: the retrieval score table sparse
        (:meth:`ReferenceBankLayer.freeze_retrieval`) and ``P(ref)`` folded into the representations
        (:meth:`ReferenceBankLayer.fold_projection`). Outputs are unchanged (to float rounding); the bank shrinks by
        d_student / d_teacher and the score table to its non-zeros. Both are undone on exit, so later
        changes of the bank's weights are not shadowed by stale constants. A vanilla student is left as it is."""
        if self.bank is None:
            yield self
            return
        self.bank.freeze_retrieval()
        self.bank.fold_projection(self.project_reference)
        try:
            yield self
        finally:
            self.bank.scorer.sparse_table = None
            self.bank.projected_representations = None

    def get_config(self):
        return {**super().get_config(), **self.config_values}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(**config)


def build_student(
    preset: str,
    num_classes: int,
    vocabulary_size: int,
    teacher_dim: int,
    bank=None,
    max_sequence_length: int = 512,
    dropout: float = 0.1,
    top_k: int = 1,
    reference_projection: str = "linear",
    dense=None,
    dense_entry: str = "early",
    dense_top_k: int = 16,
    dense_temperature: float = 0.1,
    embedding_dim: int | None = None,
) -> RefBertStudent:
    """Build a student from a preset name, with the bank's arrays loaded when ``bank`` is given.

    Args:
        preset: ``"tinybert4"`` or ``"tinybert6"`` (see ``STUDENT_PRESETS``).
        num_classes: task outputs.
        vocabulary_size: the teacher's vocabulary size.
        teacher_dim: teacher hidden size.
        bank: a :class:`~refbert_tf.bank.ReferenceBank` (RefBERT) or None (vanilla student).
        max_sequence_length: position embeddings.
        dropout: dropout rate.
        top_k: references read per input (RefBERT: 1).
        reference_projection: P, see :class:`RefBertStudent`.
        dense: a :class:`~refbert_tf.bank.dense.DenseAnchors` (the anchors' teacher keys and probabilities) for
            dense retrieval, or None (lexical). ``dense_entry="early"`` needs ``bank`` (the same anchors' tokens);
            ``"late"`` reads only ``dense``.
        dense_entry: ``"early"`` or ``"late"`` (see :class:`RefBertStudent`).
        dense_top_k, dense_temperature: late entry: anchors mixed per input and the softmax temperature over
            their cosine similarities (early reads the ``top_k`` best, as the lexical bank).
        embedding_dim: E of factorised token embeddings (None or 0: the preset's hidden width; see
            :class:`RefBertStudent`).

    Raises:
        ValueError: unknown preset or projection; a bank whose representation width differs from
            ``teacher_dim``; ``top_k`` outside 1..M; dense anchors that are not the bank's.
    """
    if preset not in STUDENT_PRESETS:
        raise ValueError(f"unknown student preset {preset!r}; known: {', '.join(STUDENT_PRESETS)}")
    bank_config = None
    if bank is not None:
        if bank.representations.shape[-1] != teacher_dim:
            raise ValueError(
                f"the bank holds {bank.representations.shape[-1]}-wide teacher states, but the "
                f"teacher is {teacher_dim} wide: the bank was built with another teacher"
            )
        bank_config = dict(
            num_anchors=bank.num_anchors,
            num_tokens=bank.num_tokens,
            teacher_dim=teacher_dim,
            num_buckets=bank.index.num_buckets,
            idf=bank.index.idf.tolist(),
            ignore_ids=list(bank.index.ignore_ids),
            top_k=top_k,
        )
    dense_config = None
    if dense is not None:
        if bank is not None and not np.array_equal(dense.anchor_ids, bank.anchor_ids):
            raise ValueError("the dense anchors are not the reference bank's anchors: build both from one bank")
        dense_config = dict(
            entry=dense_entry, num_anchors=dense.num_anchors, key_dim=dense.key_dim, num_classes=num_classes,
            top_k=top_k if dense_entry == "early" else dense_top_k, temperature=dense_temperature,
        )  # fmt: skip
    student = RefBertStudent(
        vocabulary_size,
        num_classes,
        max_sequence_length=max_sequence_length,
        teacher_dim=teacher_dim,
        bank_config=bank_config,
        dropout=dropout,
        reference_projection=reference_projection,
        dense_config=dense_config,
        embedding_dim=embedding_dim or None,
        **STUDENT_PRESETS[preset],
    )
    student(dummy_inputs())  # build
    if dense is not None:
        student.dense_bank.set_anchors(dense.keys, dense.soft_labels)
    if bank is not None:
        student.bank.representations.assign(bank.representations)
        student.bank.representation_mask.assign(bank.representation_mask.astype(np.float32))
        student.bank.keys.assign(bank.keys)
    return student


STUDENT_FILES = ("student.keras", "student.json", "vocab.txt")


def load_student(student_dir):
    """Reload a student written by :func:`save_student` (``recipes/distill_glue.py``, ``general_distill.py``).

    Args:
        student_dir: the run directory (``student.keras``, ``student.json``, ``vocab.txt``).

    Returns:
        ``(student, metadata)``: the :class:`RefBertStudent` (bank included) and ``student.json``.

    Raises:
        FileNotFoundError: if a file is missing (the message names the directory and the files).
        CorruptArtifactError: ``student.json`` or ``student.keras`` cannot be read, or the model is not the file
            whose sha256 ``student.json`` records (truncated, replaced): the message names it and what to re-run.
    """
    student_dir = Path(student_dir)
    missing = [f for f in STUDENT_FILES if not (student_dir / f).is_file()]
    if missing:
        raise StudentNotFoundError(
            f"no distilled student in {student_dir} (missing {', '.join(missing)}); run recipes/distill_glue.py first"
        )
    remedy = f"re-run the distillation (recipes/distill_glue.py) that wrote {student_dir}; it resumes from its stages"
    meta = read_json(student_dir / "student.json", remedy)
    student = load_artifact(
        student_dir / "student.keras",
        lambda path: keras.saving.load_model(path, compile=False),
        remedy,
        sha256=meta.get("student_sha256"),
    )
    return student, meta


class StudentNotFoundError(FileNotFoundError):
    """A directory without a distilled student's files (the message names the directory and the missing files)."""


def save_student(out_dir, student: RefBertStudent, tokenizer, card: dict, summary: str | None = None) -> Path:
    """Save a distilled student atomically, file by file: ``student.keras``, ``vocab.txt`` (the tokenizer's),
    ``student.json`` (``card`` plus the tokenizer's ``lowercase`` and ``vocab_sha256`` and the model file's
    ``student_sha256``; written last, so a complete ``student.json`` vouches for the other files) and, given,
    ``summary.md``. :func:`load_student` reloads it.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = save_model_dir(out_dir, student, "student.keras", tokenizer.vocab_path)
    faults.reached("save:model")
    write_json(
        out_dir / "student.json",
        {**card, "lowercase": tokenizer.lowercase, "vocab_sha256": tokenizer.vocab_sha256,
         "student_sha256": file_sha256(out_dir / "student.keras")},
    )  # fmt: skip
    if summary is not None:
        write_text(out_dir / "summary.md", summary)
    return out_dir


_MOVED = ("init_student_from_teacher", "init_student_embeddings_from_teacher", "init_student_from_general")


def __getattr__(name):  # the student initialisations moved to refbert_tf.models.initialization; old path kept
    if name in _MOVED:
        from refbert_tf.models import initialization  # lazy: initialization imports this module

        return getattr(initialization, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
