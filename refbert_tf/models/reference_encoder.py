"""The RefBERT block: a keras-hub Transformer encoder block whose keys and values can include reference tokens.

RefBERT (Wang et al. 2021): the first block's keys and values are extended with the (projected) reference tokens,
``K = [X W_K ; P(ref) W_K]``, ``V = [X W_V ; P(ref) W_V]``, the queries from the input only.
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np


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
