"""A dense reference bank inside the student: anchors' teacher keys and soft labels, retrieved in the graph.

The building block of the dense RefBERT variants (:mod:`refbert_tf.dense_retrieval` finds the same neighbours
offline). :class:`DenseReferenceBank` holds, as constants, the anchors' unit-norm teacher keys ``K`` [M, D] and
the teacher's class probabilities on them ``P`` [M, C]. Given the student's query ``q`` [B, D] it returns the
``top_k`` most cosine-similar anchors and the similarity-weighted mean of their teacher probabilities,
``p_kNN = sum_i softmax(s / temperature)_i P[a_i]`` (the aggregation of ReAugKD, Zhang et al., ACL 2023).
:class:`LateFusion` mixes that with the student's own prediction, ``log((1 - lambda) softmax(z) + lambda p_kNN)``
with a learned ``lambda = sigmoid(w)``, so the output stays log-probabilities a soft cross-entropy can train.
Both use TFLite builtins only (``BATCH_MATMUL`` / ``FULLY_CONNECTED``, ``TOPK_V2``, ``GATHER``, ``SOFTMAX``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from refbert_tf.dense_retrieval import unit_rows


def _unit(x, axis=-1):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True)), 1e-12)


@keras.saving.register_keras_serializable(package="refbert_tf")
class DenseReferenceBank(keras.layers.Layer):
    """Anchors' teacher keys and soft labels (non-trainable weights) with in-graph top-k retrieval.

    Args:
        num_anchors: M.
        key_dim: D, the key width.
        num_classes: C.
        top_k: k anchors retrieved per query (1 <= k < M).
        temperature: of the softmax over the k similarities.

    ``retrieve(query, exclude=None)``: query float [B, D], ``exclude`` optional int [B] (an anchor each row may not
    return, -1 for none: a training example's own anchor) -> ``(indices int32 [B, k], similarities [B, k])``.
    ``call(query, exclude=None)`` -> ``p_kNN`` float [B, C].

    Raises:
        ValueError: ``top_k`` not in 1..M-1, or ``temperature`` <= 0.
    """

    def __init__(self, num_anchors: int, key_dim: int, num_classes: int, top_k: int = 16, temperature: float = 0.1,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if not 1 <= top_k < num_anchors:
            raise ValueError(f"top_k must be in 1..{num_anchors - 1} for {num_anchors} anchors, got {top_k}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_anchors, self.key_dim, self.num_classes = int(num_anchors), int(key_dim), int(num_classes)
        self.top_k, self.temperature = int(top_k), float(temperature)
        self.keys = self.add_weight(shape=(num_anchors, key_dim), initializer="zeros", trainable=False, name="keys")
        self.soft_labels = self.add_weight(
            shape=(num_anchors, num_classes), initializer="zeros", trainable=False, name="soft_labels"
        )

    def set_anchors(self, keys: np.ndarray, soft_labels: np.ndarray) -> None:
        """Load the anchors: keys [M, D] (normalised here) and teacher probabilities [M, C] (rows sum to 1).

        Raises:
            ValueError: shapes other than the layer's, or rows of ``soft_labels`` that are not distributions.
        """
        keys, soft_labels = np.asarray(keys, np.float32), np.asarray(soft_labels, np.float32)
        if keys.shape != (self.num_anchors, self.key_dim) or soft_labels.shape != (self.num_anchors, self.num_classes):
            raise ValueError(
                f"anchors of shape {keys.shape} / {soft_labels.shape}, the bank holds "
                f"({self.num_anchors}, {self.key_dim}) / ({self.num_anchors}, {self.num_classes})"
            )
        if np.any(soft_labels < 0) or not np.allclose(soft_labels.sum(1), 1.0, atol=1e-4):
            raise ValueError("soft_labels must be probabilities: non-negative rows summing to 1")
        self.keys.assign(unit_rows(keys))
        self.soft_labels.assign(soft_labels)

    def retrieve(self, query, exclude=None):
        similarity = ops.matmul(_unit(query), ops.transpose(self.keys))  # [B, M] cosine
        if exclude is not None:
            own = ops.one_hot(ops.cast(exclude, "int32"), self.num_anchors)  # -1 gives a zero row
            similarity = similarity - 4.0 * own  # below any cosine
        values, indices = ops.top_k(similarity, self.top_k)
        return indices, values

    def call(self, query, exclude=None):
        indices, values = self.retrieve(query, exclude)
        weights = ops.softmax(values / self.temperature, axis=-1)  # [B, k]
        neighbours = ops.take(self.soft_labels, indices, axis=0)  # [B, k, C]
        return ops.sum(ops.expand_dims(weights, -1) * neighbours, axis=1)

    def get_config(self):
        return {**super().get_config(), "num_anchors": self.num_anchors, "key_dim": self.key_dim,
                "num_classes": self.num_classes, "top_k": self.top_k, "temperature": self.temperature}  # fmt: skip


@keras.saving.register_keras_serializable(package="refbert_tf")
class LateFusion(keras.layers.Layer):
    """``log((1 - lambda) softmax(logits) + lambda p)``, ``lambda = sigmoid(w)`` learned (ReAugKD's late
    aggregation of the student's prediction with the retrieved teacher predictions, Zhang et al. 2023).

    Args:
        initial_weight: lambda at the start (0 < lambda < 1).

    ``call(logits [B, C], p [B, C])`` -> log-probabilities [B, C]; ``mixing_weight`` is the current lambda.

    Raises:
        ValueError: ``initial_weight`` outside (0, 1).
    """

    def __init__(self, initial_weight: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < initial_weight < 1.0:
            raise ValueError(f"initial_weight must be in (0, 1), got {initial_weight}")
        self.initial_weight = float(initial_weight)
        logit = float(np.log(initial_weight / (1.0 - initial_weight)))
        self.w = self.add_weight(shape=(), initializer=keras.initializers.Constant(logit), name="mixing_logit")

    @property
    def mixing_weight(self) -> float:
        """lambda, in (0, 1)."""
        return float(keras.ops.convert_to_numpy(ops.sigmoid(self.w)))

    def call(self, logits, p):
        lam = ops.sigmoid(self.w)
        return ops.log((1.0 - lam) * ops.softmax(logits, axis=-1) + lam * p + 1e-9)

    def get_config(self):
        return {**super().get_config(), "initial_weight": self.initial_weight}
