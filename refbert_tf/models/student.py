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
"""

from __future__ import annotations

import contextlib

import keras
import keras_hub
import numpy as np

from refbert_tf.retrieval import AnchorScorer

STUDENT_PRESETS = {
    # TinyBERT-4 (Jiao et al. 2020): 4 layers, hidden 312, 12 heads, FFN 1200 (RefBERT's student shape)
    "tinybert4": dict(num_layers=4, hidden_dim=312, num_heads=12, intermediate_dim=1200),
    # TinyBERT-6: BERT-base width, 6 layers
    "tinybert6": dict(num_layers=6, hidden_dim=768, num_heads=12, intermediate_dim=3072),
    # for tests and smoke runs only
    "tiny": dict(num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64),
}


REFERENCE_PROJECTIONS = ("linear", "linear_norm")  # P: d_teacher -> d_student (see RefBertStudent)


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def dummy_inputs() -> dict:
    """A one-example, four-token batch of model inputs, for building models before use."""
    return {
        "token_ids": np.zeros((1, 4), np.int32),
        "segment_ids": np.zeros((1, 4), np.int32),
        "padding_mask": np.ones((1, 4), np.int32),
    }


def attention_logits(block, x):
    """Pre-softmax attention scores QK^T / sqrt(d) [B, heads, T, T] of a built keras-hub ``TransformerEncoder``.

    Args:
        block: the Transformer block (its self-attention's query/key projections are used).
        x: the block's input [B, T, H].
    """
    attention = block._self_attention_layer
    q = attention._query_dense(x)  # [B, T, heads, d]
    k = attention._key_dense(x)
    scale = 1.0 / float(np.sqrt(attention._key_dim))
    return keras.ops.einsum("bqhd,bkhd->bhqk", q, k) * scale


@keras.saving.register_keras_serializable(package="refbert_tf")
class ReferenceTransformerEncoder(keras_hub.layers.TransformerEncoder):
    """keras-hub ``TransformerEncoder`` whose self-attention keys/values can be extended with reference tokens.

    Call args:
        inputs: float [B, T, H].
        padding_mask: int/bool [B, T].
        reference: float [B, R, H] (already projected to the student width), or None for plain attention.
        reference_mask: int/bool [B, R], 1 for real reference tokens.
        return_attention_scores: also return the attention probabilities [B, heads, T, T + R].

    Returns:
        [B, T, H] (and the attention probabilities). With every reference token masked the output equals plain
        self-attention (tested to 1e-5).
    """

    def call(
        self,
        inputs,
        padding_mask=None,
        reference=None,
        reference_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if reference is None:
            return super().call(
                inputs, padding_mask=padding_mask, training=training, return_attention_scores=return_attention_scores
            )
        ops = keras.ops
        x = inputs
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(x)[:2], "int32")
        key_mask = ops.concatenate([ops.cast(padding_mask, "int32"), ops.cast(reference_mask, "int32")], axis=1)
        attention_mask = ops.expand_dims(key_mask, axis=1)  # [B, 1, T + R], like keras-hub's padding mask
        memory = ops.concatenate([x, ops.cast(reference, x.dtype)], axis=1)
        residual = x
        if self.normalize_first:
            x = self._self_attention_layer_norm(x)
            memory = ops.concatenate([x, ops.cast(reference, x.dtype)], axis=1)
        outputs = self._self_attention_layer(
            query=x,
            value=memory,
            key=memory,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        x, scores = outputs if return_attention_scores else (outputs, None)
        x = self._self_attention_dropout(x, training=training)
        x = x + residual
        if not self.normalize_first:
            x = self._self_attention_layer_norm(x)
        residual = x
        if self.normalize_first:
            x = self._feedforward_layer_norm(x)
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        x = self._feedforward_dropout(x, training=training)
        x = x + residual
        if not self.normalize_first:
            x = self._feedforward_layer_norm(x)
        return (x, scores) if return_attention_scores else x


@keras.saving.register_keras_serializable(package="refbert_tf")
class ReferenceBankLayer(keras.layers.Layer):
    """The reference bank as constant, non-trainable weights, with in-graph retrieval.

    Weights: ``representations`` [M, R, d_teacher], ``representation_mask`` [M, R], ``keys`` [M, K].
    ``retrieve(token_ids, padding_mask)`` -> anchor index int32 [B] (argmax of cosine similarity, ties to the
    lowest index), or [B, k] for ``top_k = k > 1`` (``tf.math.top_k``: best first, ties to the lower index, the
    TFLite builtin ``TOPK_V2``); ``call(index)`` -> (reference [B, R', d_teacher], reference_mask [B, R']), the
    k anchors' R tokens concatenated (R' <= k R). Gathers use ``tf.gather`` (``keras.ops.take`` lowers to ops
    TFLite builtins lack).

    ``R' <= R`` is the batch's longest valid prefix: reference slots masked in every row are dropped. That changes
    no output (a masked key gets zero attention weight) but keeps the attention mask's large negative number out of
    the graph at batch 1, where full-integer calibration would otherwise take it into the int8 range of the first
    block's attention scores (46% of the SST-2 anchors have a masked fourth slot; the layer-0 score scale was
    3.9e6 against 0.09 in layer 1, every real score quantized to one value).
    """

    def __init__(
        self,
        num_anchors: int,
        num_tokens: int,
        teacher_dim: int,
        num_buckets: int,
        idf,
        ignore_ids,
        top_k: int = 1,
        **kwargs,
    ):
        super().__init__(trainable=False, **kwargs)
        if not 1 <= int(top_k) <= int(num_anchors):
            raise ValueError(f"top_k={top_k} must be between 1 and the bank's {num_anchors} anchors")
        self.top_k = int(top_k)
        self.num_anchors, self.num_tokens = int(num_anchors), int(num_tokens)
        self.teacher_dim, self.num_buckets = int(teacher_dim), int(num_buckets)
        self.scorer = AnchorScorer(num_buckets, idf, ignore_ids, name="retrieval_key")
        self.representations = self.add_weight(
            shape=(self.num_anchors, self.num_tokens, self.teacher_dim),
            initializer="zeros",
            trainable=False,
            name="representations",
        )
        self.representation_mask = self.add_weight(
            shape=(self.num_anchors, self.num_tokens), initializer="zeros", trainable=False, name="representation_mask"
        )
        self.keys = self.add_weight(
            shape=(self.num_anchors, self.num_buckets), initializer="zeros", trainable=False, name="keys"
        )
        self.projected_representations = None  # NumPy [M, R, d_student] = P(representations), for export only

    def retrieve(self, token_ids, padding_mask):
        import tensorflow as tf

        scores = self.scorer(token_ids, padding_mask, self.keys)  # [B, M] int32
        if self.top_k > 1:
            return tf.math.top_k(scores, k=self.top_k).indices  # [B, k] int32
        # tf.argmax, not keras.ops.argmax: Keras' negative-zero fix uses signbit -> BitwiseAnd, not a TFLite builtin
        return tf.argmax(scores, axis=-1, output_type=tf.int32)

    def freeze_retrieval(self) -> int:
        """Fold the current keys into the scorer's sparse table (:meth:`AnchorScorer.freeze`); call before
        exporting. Returns the number of non-zero table entries."""
        return self.scorer.freeze(self.keys)

    def fold_projection(self, projection) -> None:
        """Store ``P(representations)`` [M, R, d_student] as a constant that :meth:`call` then gathers instead of
        the teacher-width representations (design note, part 4: "At export, P(ref) can be folded into the constant
        bank"): the exported bank is d_student / d_teacher the size and the projection leaves the graph.

        Args:
            projection: the student's P, a callable [M, R, d_teacher] -> [M, R, d_student]
                (:meth:`RefBertStudent.project_reference`).
        """
        self.projected_representations = np.asarray(
            keras.ops.convert_to_numpy(projection(self.representations)), np.float32
        )

    def call(self, index):
        import tensorflow as tf

        representations = (
            self.representations
            if self.projected_representations is None
            else tf.constant(self.projected_representations)
        )
        mask = tf.gather(self.representation_mask, index)  # [B, R] float 0/1 ([B, k, R] for top-k)
        reference = tf.gather(representations, index)  # [B, R, d] ([B, k, R, d] for top-k)
        slots = self.num_tokens
        if self.top_k > 1:  # the k references side by side: [B, k R, d]
            slots = self.top_k * self.num_tokens
            mask = tf.reshape(mask, [-1, slots])
            reference = tf.reshape(reference, [-1, slots, reference.shape[-1]])
        positions = tf.range(1, slots + 1, dtype=tf.int32)
        # integer arithmetic, so that full-integer quantization cannot round the length
        length = tf.reduce_max(tf.cast(mask > 0.5, tf.int32) * positions)  # 1 + the batch's last valid slot
        return reference[:, :length], mask[:, :length]

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update(
            num_anchors=self.num_anchors,
            num_tokens=self.num_tokens,
            teacher_dim=self.teacher_dim,
            num_buckets=self.num_buckets,
            idf=self.scorer.idf_values.tolist(),
            ignore_ids=list(self.scorer.ignore_ids),
            top_k=self.top_k,
        )
        return config


@keras.saving.register_keras_serializable(package="refbert_tf")
class RefBertStudent(keras.Model):
    """Small BERT classifier, optionally reference-augmented (RefBERT) or plain (vanilla TinyBERT).

    Args:
        vocabulary_size: the teacher's vocabulary size (students share the teacher's tokenizer).
        num_classes: task outputs (1 for STS-B).
        num_layers, hidden_dim, num_heads, intermediate_dim: encoder shape (see ``STUDENT_PRESETS``).
        max_sequence_length: position embeddings (tokens).
        teacher_dim: hidden size of the teacher (the bank's width, input of the projection P).
        bank_config: ``ReferenceBankLayer`` config (None: a vanilla student without references).
        dropout: dropout rate.
        reference_projection: P, ``"linear"`` (a Dense, *our reading* of the design note) or ``"linear_norm"``
            (Dense, then LayerNorm: the projected reference on the scale of the student's normalised embeddings,
            which it meets in the first block's keys and values).

    Raises:
        ValueError: for an unknown ``reference_projection``.

    ``call(inputs)`` returns logits [B, num_classes]; ``call_with_features(inputs)`` returns a dict with
    ``logits``, ``embeddings`` [B, T, H], ``hidden_states`` (list of L tensors [B, T, H]) and ``attention_logits``
    (list of L tensors [B, heads, T, T], pre-softmax scores over the input tokens) for distillation.
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
        **kwargs,
    ):
        super().__init__(**kwargs)
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
        )
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=init, name="token_embedding"
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

    def project_reference(self, reference):
        """P(ref): teacher-width reference tokens [..., d_teacher] -> [..., d_student]."""
        projected = self.reference_projection(reference)
        if self.reference_projection_norm is not None:
            projected = self.reference_projection_norm(projected)
        return projected

    @property
    def uses_reference(self) -> bool:
        """True for a RefBERT student, False for the vanilla baseline."""
        return self.bank is not None

    def call_with_features(self, inputs, training=None):
        token_ids, segment_ids = inputs["token_ids"], inputs["segment_ids"]
        padding_mask = inputs["padding_mask"]
        x = self.token_embedding(token_ids) + self.segment_embedding(segment_ids)
        x = x + self.position_embedding(x)
        x = self.embeddings_dropout(self.embeddings_layer_norm(x), training=training)
        features = {"embeddings": x, "hidden_states": [], "attention_logits": []}
        reference = reference_mask = None
        if self.bank is not None:
            index = inputs.get("reference_index") if isinstance(inputs, dict) else None
            if index is None:
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
        return features

    def call(self, inputs, training=None):
        return self.call_with_features(inputs, training=training)["logits"]

    @contextlib.contextmanager
    def export_constants(self):
        """Within this context the bank is traced as export constants: the retrieval score table sparse
        (:meth:`ReferenceBankLayer.freeze_retrieval`) and ``P(ref)`` folded into the representations
        (:meth:`ReferenceBankLayer.fold_projection`). Outputs are unchanged (to float rounding); the SST-2 bank of
        1,001 anchors x 4 tokens shrinks from 9.8 MB to 4.8 MB in float32. Both are undone on exit, so later
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

    Raises:
        ValueError: unknown preset or projection; a bank whose representation width differs from
            ``teacher_dim``; ``top_k`` outside 1..M.
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
    student = RefBertStudent(
        vocabulary_size,
        num_classes,
        max_sequence_length=max_sequence_length,
        teacher_dim=teacher_dim,
        bank_config=bank_config,
        dropout=dropout,
        reference_projection=reference_projection,
        **STUDENT_PRESETS[preset],
    )
    student(dummy_inputs())  # build
    if bank is not None:
        student.bank.representations.assign(bank.representations)
        student.bank.representation_mask.assign(bank.representation_mask.astype(np.float32))
        student.bank.keys.assign(bank.keys)
    return student


def init_student_from_teacher(student: RefBertStudent, teacher_backbone, layer_mapping: list[int]) -> None:
    """Copy the teacher's embeddings and the mapped Transformer blocks into a student of the same width.

    Args:
        student: a built :class:`RefBertStudent`.
        teacher_backbone: the teacher's keras-hub ``BertBackbone``.
        layer_mapping: teacher block (1-based) for each student block, e.g.
            :func:`refbert_tf.distillation.layer_map`.

    Raises:
        ValueError: if hidden size, heads, FFN size or vocabulary differ (initialise randomly instead).
    """
    c = student.config_values
    mine = (c["hidden_dim"], c["num_heads"], c["intermediate_dim"], c["vocabulary_size"])
    theirs = (
        teacher_backbone.hidden_dim,
        teacher_backbone.num_heads,
        teacher_backbone.intermediate_dim,
        teacher_backbone.vocabulary_size,
    )
    if mine != theirs:
        raise ValueError(
            f"student (hidden, heads, ffn, vocab) = {mine} differs from the teacher's {theirs}: "
            "initialisation from the teacher needs equal widths"
        )
    student.token_embedding.set_weights(teacher_backbone.get_layer("token_embedding").get_weights())
    student.segment_embedding.set_weights(teacher_backbone.get_layer("segment_embedding").get_weights())
    positions = teacher_backbone.get_layer("position_embedding").get_weights()[0]
    student.position_embedding.set_weights([positions[: c["max_sequence_length"]]])
    student.embeddings_layer_norm.set_weights(teacher_backbone.get_layer("embeddings_layer_norm").get_weights())
    for block, t in zip(student.blocks, layer_mapping):
        block.set_weights(teacher_backbone.get_layer(f"transformer_layer_{t - 1}").get_weights())
    student.pooled_dense.set_weights(teacher_backbone.get_layer("pooled_dense").get_weights())


def init_student_embeddings_from_teacher(student: RefBertStudent, teacher_backbone) -> np.ndarray:
    """Initialise the student's token, position and segment embeddings from a wider (or equal) teacher's, by PCA.

    The teacher's token-embedding matrix E_t [V, d_t] gives a PCA basis C [d_s, d_t] (scikit-learn ``PCA``, the
    top d_s principal directions, orthonormal rows); the student gets E_t C^T for tokens, and the same map of the
    teacher's position [:max_sequence_length] and segment embeddings, so their sum, which the embedding LayerNorm
    sees, is mapped consistently. The LayerNorm and everything above the embeddings stay randomly initialised.
    This gives a student narrower than the teacher (tinybert4: 312 < 384) the teacher's lexical geometry in its
    d_s strongest directions, in place of TinyBERT's general distillation (Jiao et al. 2020, sec. 3.2), which this
    machine cannot run. Our addition; not in the RefBERT design note.

    Args:
        student: a built :class:`RefBertStudent`.
        teacher_backbone: the teacher's keras-hub ``BertBackbone`` (same vocabulary, hidden_dim >= the student's).

    Returns:
        The basis C, [d_s, d_t] float32.

    Raises:
        ValueError: if the vocabularies differ in size or the student is wider than the teacher.
    """
    from sklearn.decomposition import PCA

    c = student.config_values
    d_s, d_t = c["hidden_dim"], teacher_backbone.hidden_dim
    if c["vocabulary_size"] != teacher_backbone.vocabulary_size:
        raise ValueError(
            f"student vocabulary ({c['vocabulary_size']}) differs from the teacher's "
            f"({teacher_backbone.vocabulary_size}): embeddings cannot be initialised from the teacher"
        )
    if d_s > d_t:
        raise ValueError(f"student width {d_s} exceeds the teacher's {d_t}: PCA cannot add directions")
    tokens = np.asarray(teacher_backbone.get_layer("token_embedding").get_weights()[0], np.float64)
    basis = PCA(n_components=d_s, svd_solver="full").fit(tokens).components_.astype(np.float32)
    positions = teacher_backbone.get_layer("position_embedding").get_weights()[0][: c["max_sequence_length"]]
    segments = teacher_backbone.get_layer("segment_embedding").get_weights()[0][: student.segment_embedding.input_dim]
    student.token_embedding.set_weights([tokens.astype(np.float32) @ basis.T])
    student.position_embedding.set_weights([positions @ basis.T])
    student.segment_embedding.set_weights([segments @ basis.T])
    return basis


ENCODER_SHAPE = ("vocabulary_size", "num_layers", "hidden_dim", "num_heads", "intermediate_dim")


def init_student_from_general(student: RefBertStudent, general_dir, vocab_sha256: str | None = None) -> dict:
    """Start task distillation from a general-distilled student (TinyBERT, Jiao et al. 2020, sec. 3.3: task
    distillation starts from the general TinyBERT).

    Copies the encoder: token, position (first ``max_sequence_length`` rows) and segment embeddings, the embedding
    LayerNorm and every Transformer block. The pooler, the classifier and the reference projection P are task
    parts that general distillation does not train; they keep their random initialisation.

    Args:
        student: a built :class:`RefBertStudent` (vanilla or RefBERT; the blocks have the same weights).
        general_dir: a directory written by ``recipes/general_distill.py`` (``student.keras``, ``student.json``,
            ``vocab.txt``); any student directory with the same encoder shape works.
        vocab_sha256: the task tokenizer's vocabulary hash; must equal the one the general student was trained with.

    Returns:
        the general student's ``student.json``.

    Raises:
        FileNotFoundError: a file of ``general_dir`` is missing.
        ValueError: another vocabulary, or an encoder shape (vocabulary size, layers, width, heads, FFN) that
            differs from ``student``'s (the message names the directory and both shapes).
    """
    general, meta = load_student(general_dir)
    if vocab_sha256 is not None and meta.get("vocab_sha256") != vocab_sha256:
        raise ValueError(
            f"{general_dir}/vocab.txt is not the teacher's vocabulary (sha256 "
            f"{str(meta.get('vocab_sha256'))[:12]}... vs {vocab_sha256[:12]}...): general-distil with "
            "the same checkpoint's tokenizer"
        )
    mine = {k: student.config_values[k] for k in ENCODER_SHAPE}
    theirs = {k: general.config_values[k] for k in ENCODER_SHAPE}
    if mine != theirs:
        raise ValueError(
            f"{general_dir} holds a student of shape {theirs}, this run builds {mine}: pass the same "
            "--student preset to general_distill.py and distill_glue.py"
        )
    for name in ("token_embedding", "segment_embedding", "embeddings_layer_norm"):
        getattr(student, name).set_weights(getattr(general, name).get_weights())
    positions = general.position_embedding.get_weights()[0]
    length = student.config_values["max_sequence_length"]
    if positions.shape[0] < length:
        raise ValueError(f"{general_dir} has {positions.shape[0]} positions, this run needs {length}")
    student.position_embedding.set_weights([positions[:length]])
    for mine_block, their_block in zip(student.blocks, general.blocks):
        mine_block.set_weights(their_block.get_weights())
    return meta


STUDENT_FILES = ("student.keras", "student.json", "vocab.txt")


def load_student(student_dir):
    """Reload a student written by ``recipes/distill_glue.py`` (``refbert_tf.pipelines.distill_glue``).

    Args:
        student_dir: the run directory (``student.keras``, ``student.json``, ``vocab.txt``).

    Returns:
        ``(student, metadata)``: the :class:`RefBertStudent` (bank included) and ``student.json``.

    Raises:
        FileNotFoundError: if a file is missing (the message names the directory and the files).
    """
    import json
    from pathlib import Path

    student_dir = Path(student_dir)
    missing = [f for f in STUDENT_FILES if not (student_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no distilled student in {student_dir} (missing {', '.join(missing)}); run recipes/distill_glue.py first"
        )
    meta = json.loads((student_dir / "student.json").read_text(encoding="utf-8"))
    student = keras.saving.load_model(student_dir / "student.keras", compile=False)
    return student, meta
