"""Stage I of mixed-vocabulary distillation: the fine-tuned teacher reading a student vocabulary's pieces.

Zhao et al., "Extremely Small BERT Models from Mixed-Vocabulary Training" (EACL 2021), Sec. 3.1: the teacher is
trained further on inputs in which each word is tokenized with the student vocabulary with probability ``p`` and
with its own otherwise (:func:`refbert_tf.vocabulary.mixed_tokenize`). Student-vocabulary pieces are looked up in
a new table of the student's width, projected up to the teacher's width, so the table learns embeddings the
teacher's blocks understand; the student later starts from them (stage II).

:class:`MixedVocabularyTeacher` is that model: token ids ``< V_t`` read the teacher's own table, ids
``V_t + j`` read row ``j`` of the student table ``S`` [V_s, E] projected by ``W`` [E, H]. Its loss (*our reading*
of the seed for a task, not pre-training, teacher): ``kd_weight`` x the distillation loss towards the original
teacher's logits on the same example tokenized with the teacher's vocabulary (soft cross-entropy at
``temperature``, Hinton et al. 2015; MSE for regression) + ``(1 - kd_weight)`` x the task loss on the gold label.

:meth:`MixedVocabularyTeacher.student_vocabulary_teacher` turns the trained model into an ordinary keras-hub
``BertTextClassifier`` whose vocabulary *is* the student's (token table ``S W``, every other weight the trained
teacher's): the teacher of stage II, which reads the same ids as the student, so every TinyBERT layer loss aligns
token by token, and whose embeddings a width-pruned student slices (:mod:`refbert_tf.models.pruning`).

:func:`svd_embedding_init` (*our addition*) starts ``S`` and ``W`` from the teacher's own embeddings of each
student piece (the piece itself where the teacher's vocabulary has it, else the mean of the teacher's pieces of
its text), factorised by a truncated SVD: before any training, the model at ``p = 1`` already reads the student
vocabulary with a rank-E approximation of the teacher's embeddings.
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
from keras import ops

from refbert_tf.models.pruning import truncated_svd
from refbert_tf.vocabulary import STUDENT_SPECIAL_TOKENS


def svd_embedding_init(teacher_tokenizer, student_tokenizer, teacher_table: np.ndarray, dim: int):
    """Student-vocabulary embeddings from the teacher's, factorised to width ``dim``.

    Each student piece gets the teacher's row of the same piece if the teacher's vocabulary has it, else the mean
    of the teacher's rows of the pieces the teacher's tokenizer splits its text into (``##`` dropped); special
    tokens take the teacher's special token of the same name. The resulting [V_s, H] table ``T`` is factorised by
    a truncated SVD, ``T ~ S W`` with ``S = U_E Sigma_E`` [V_s, E] and ``W = V_E^T`` [E, H] (Eckart-Young: the best
    rank-E approximation in Frobenius norm). ``dim >= H`` gives ``S = T`` padded with zero columns and ``W`` the
    identity padded with zero rows.

    Args:
        teacher_tokenizer, student_tokenizer: :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
        teacher_table: the teacher's token embeddings, float [V_t, H].
        dim: E, the student table's width.

    Returns:
        ``(S, W, coverage)``: float32 [V_s, E], float32 [E, H], and the share (0 to 1) of student pieces that are
        also teacher pieces.

    Raises:
        ValueError: ``dim`` < 1 (from :func:`~refbert_tf.models.pruning.truncated_svd`), or a table whose row count is not the teacher vocabulary's size.
    """
    teacher_table = np.asarray(teacher_table, np.float32)
    if teacher_table.shape[0] != teacher_tokenizer.vocab_size:
        raise ValueError(
            f"teacher table has {teacher_table.shape[0]} rows, the teacher vocabulary {teacher_tokenizer.vocab_size}"
        )
    index = {t: i for i, t in enumerate(teacher_tokenizer.vocab)}
    rows = np.zeros((student_tokenizer.vocab_size, teacher_table.shape[1]), np.float32)
    shared, missing = 0, []
    for j, piece in enumerate(student_tokenizer.vocab):
        if piece in index:
            rows[j] = teacher_table[index[piece]]
            shared += 1
        elif piece in STUDENT_SPECIAL_TOKENS:
            rows[j] = teacher_table[teacher_tokenizer.unk_id]
        else:
            missing.append(j)
    if missing:
        texts = [student_tokenizer.vocab[j].removeprefix("##") for j in missing]
        for j, ids in zip(missing, teacher_tokenizer.tokenize(texts).to_list()):
            rows[j] = teacher_table[ids].mean(0) if ids else teacher_table[teacher_tokenizer.unk_id]
    table, projection = truncated_svd(rows, dim)
    return table, projection, shared / len(rows)


@keras.saving.register_keras_serializable(package="refbert_tf")
class MixedVocabularyTeacher(keras.Model):
    """A fine-tuned BERT classifier that also reads a student vocabulary (Zhao et al. 2021, stage I).

    Args:
        teacher: the fine-tuned keras-hub ``BertTextClassifier`` (its weights are trained further unless
            ``train_teacher`` is False; the caller keeps a copy of the original if it needs one).
        student_vocab_size: V_s.
        embedding_dim: E, the width of the student table (the student's hidden width).
        kd_weight: weight of the distillation term (the rest goes to the gold-label loss), 0 to 1.
        temperature: softmax temperature of the distillation term (classification).
        regression: STS-B: MSE losses on the single score.
        train_teacher: False trains only ``S`` and ``W`` (the teacher's function on its own tokens is then kept
            exactly).

    Inputs of ``call``: ``{"token_ids", "segment_ids", "padding_mask"}`` int32 [B, T]; ids ``>= V_t`` are student
    pieces offset by ``V_t``. Output: logits [B, C]. ``fit`` takes ``(inputs, {"label": [B], "teacher_logits":
    [B, C]})``.

    Raises:
        ValueError: ``kd_weight`` outside [0, 1].
    """

    def __init__(
        self,
        teacher,
        student_vocab_size: int,
        embedding_dim: int,
        kd_weight: float = 0.5,
        temperature: float = 1.0,
        regression: bool = False,
        train_teacher: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= kd_weight <= 1.0:
            raise ValueError(f"kd_weight must be in [0, 1], got {kd_weight}")
        self.teacher = teacher
        self.teacher.trainable = train_teacher
        self.backbone = teacher.backbone
        self.teacher_vocab_size = int(self.backbone.vocabulary_size)
        self.student_vocab_size = int(student_vocab_size)
        self.kd_weight, self.temperature, self.regression = float(kd_weight), float(temperature), bool(regression)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.student_embedding = keras.layers.Embedding(
            student_vocab_size, embedding_dim, embeddings_initializer=init, name="student_token_embedding"
        )
        self.student_projection = keras.layers.Dense(
            self.backbone.hidden_dim, use_bias=False, kernel_initializer=init, name="student_embedding_projection"
        )
        self.student_embedding.build((None,))
        self.student_projection.build((None, embedding_dim))

    def set_student_table(self, table: np.ndarray, projection: np.ndarray) -> None:
        """Set ``S`` [V_s, E] and ``W`` [E, H] (for example from :func:`svd_embedding_init`)."""
        self.student_embedding.embeddings.assign(table)
        self.student_projection.kernel.assign(projection)

    def student_token_table(self):
        """``S W``: the student pieces' embeddings at the teacher's width, float [V_s, H]."""
        return self.student_projection(self.student_embedding.embeddings)

    def call(self, inputs, training=False):
        table = ops.concatenate([self.backbone.token_embedding.embeddings, self.student_token_table()], axis=0)
        b = self.backbone
        tokens = ops.take(table, inputs["token_ids"], axis=0)
        x = b.embeddings_add((tokens, b.position_embedding(tokens), b.segment_embedding(inputs["segment_ids"])))
        x = b.embeddings_dropout(b.embeddings_layer_norm(x), training=training)
        for layer in b.transformer_layers:
            x = layer(x, padding_mask=inputs["padding_mask"], training=training)
        pooled = b.pooled_dense(x[:, 0, :])
        return self.teacher.output_dense(self.teacher.output_dropout(pooled, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = y["teacher_logits"]
        if self.regression:
            distill = ops.mean(ops.square(y_pred - target))
            task = ops.mean(ops.square(y_pred[:, 0] - ops.cast(y["label"], y_pred.dtype)))
        else:
            t = self.temperature
            soft = ops.softmax(target / t, axis=-1)
            distill = -ops.mean(ops.sum(soft * ops.log_softmax(y_pred / t, axis=-1), axis=-1))
            task = ops.mean(
                keras.losses.sparse_categorical_crossentropy(ops.cast(y["label"], "int32"), y_pred, from_logits=True)
            )
        return self.kd_weight * distill + (1.0 - self.kd_weight) * task

    def student_vocabulary_teacher(self, packing_rows: dict[int, int] | None = None):
        """The stage-II teacher: a ``BertTextClassifier`` (same backbone class and shape, vocabulary V_s) whose
        token table is ``S W`` and whose other weights are this model's.

        Args:
            packing_rows: ``{student id: teacher id}`` of the tokens the packing inserts (``[CLS]``, ``[SEP]``,
                ``[PAD]``). Stage I packs its mixed inputs with the *teacher's* special tokens, so their rows of
                ``S W`` are never trained; these rows take the teacher's own (trained) rows instead.

        With ``packing_rows``, it computes exactly what this model computes on inputs whose words are all student
        pieces packed with the teacher's special tokens (``mix_prob`` 1, as stage I trains on them); without, on
        inputs made only of student pieces (ids ``V_t + j`` here are ``j`` there).

        Raises:
            ValueError: a ``packing_rows`` id outside its vocabulary.
        """
        config = dict(self.backbone.get_config(), vocabulary_size=self.student_vocab_size)
        backbone = type(self.backbone).from_config(config)
        for layer in self.backbone.layers:
            if layer.weights and layer.name != "token_embedding":
                backbone.get_layer(layer.name).set_weights(layer.get_weights())
        table = keras.ops.convert_to_numpy(self.student_token_table()).copy()
        own = keras.ops.convert_to_numpy(self.backbone.token_embedding.embeddings)
        for student_id, teacher_id in (packing_rows or {}).items():
            if not (0 <= student_id < self.student_vocab_size and 0 <= teacher_id < self.teacher_vocab_size):
                raise ValueError(
                    f"packing row {student_id} -> {teacher_id} outside the vocabularies "
                    f"({self.student_vocab_size} student, {self.teacher_vocab_size} teacher pieces)"
                )
            table[student_id] = own[teacher_id]
        backbone.token_embedding.embeddings.assign(table)
        classifier = keras_hub.models.BertTextClassifier(
            backbone=backbone,
            num_classes=self.teacher.num_classes,
            preprocessor=None,
            activation=None,
            dropout=self.teacher.dropout,
        )
        classifier.output_dense.set_weights(self.teacher.output_dense.get_weights())
        return classifier
