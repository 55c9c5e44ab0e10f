"""The reference bank inside the student: constant anchors and their retrieval key, retrieved in the graph."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from refbert_tf.retrieval import AnchorScorer


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
    block's attention scores, where every real score would round to one value (docs/export.md).
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
