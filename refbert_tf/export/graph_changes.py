"""Export-time graph changes that keep the logits and remove ops XNNPACK does not delegate.

LiteRT runs an op that XNNPACK does not take with its builtin (often reference) kernel, between delegated
partitions. Two such ops sit in every BERT graph that Keras traces, and :func:`export_graph_changes` removes both
while the SavedModel is written (the Keras model itself is left as it was):

1. The attention softmax's padding mask. Keras' ``Softmax`` layer applies it with ``where(mask, scores, -1e9)``
   before the softmax and ``where(mask, probs, 0)`` after it (for rows whose every key is masked): two
   ``SELECT_V2`` ops on every [B, heads, T, S] attention tensor, which XNNPACK does not delegate, so LiteRT runs
   them with its reference kernel. :class:`AdditiveMaskSoftmax` adds ``(mask - 1) * 1e9`` instead
   (``SUB``/``MUL``/``ADD``, all delegated) and skips the second select.
2. keras-hub's ``PositionEmbedding`` returns ``broadcast_to(table[:T], [B, T, H])``: a ``BROADCAST_TO`` whose
   reference kernel computes an index per element. :func:`position_embedding_without_broadcast` returns
   ``table[:T]`` as [1, T, H]; the ``ADD`` that follows broadcasts it over the batch itself.

Their share of the time before and after: ``docs/benchmarks.md``. The logits do not change: where the mask is 1
the bias is exactly 0, and where it is 0, ``exp(s - 1e9)`` is 0 in float32 as ``exp(-1e9)`` is. Only a query row
whose every key is masked differs (uniform instead of zeros); such rows are padding positions, which no unmasked
position reads (their keys are masked too) and which the pooler never sees, so the exported logits equal the
Keras model's (tested).
"""

from __future__ import annotations

import contextlib

import keras

LARGE_NEGATIVE = 1e9


class AdditiveMaskSoftmax(keras.layers.Softmax):
    """``softmax(scores + (mask - 1) * 1e9)`` over ``axis``; inputs [B, heads, T, S], mask broadcastable (0/1)."""

    def call(self, inputs, mask=None):
        if mask is not None:
            bias = (keras.ops.cast(mask, inputs.dtype) - 1.0) * LARGE_NEGATIVE
            inputs = inputs + bias
        axis = self.axis[0] if isinstance(self.axis, (tuple, list)) and len(self.axis) == 1 else self.axis
        return keras.ops.softmax(inputs, axis=axis)


def position_embedding_without_broadcast(layer):
    """A ``call`` for a keras-hub ``PositionEmbedding`` ``layer``: the table's first T rows as [1, T, H] (no
    ``BROADCAST_TO``); only for ``positions=None`` and ``start_index=0``, else the layer's own ``call``."""
    original = layer.call

    def call(inputs, start_index=0, positions=None):
        if positions is not None or not isinstance(start_index, int) or start_index != 0:
            return original(inputs, start_index=start_index, positions=positions)
        shape = keras.ops.shape(inputs)
        table = keras.ops.convert_to_tensor(layer.position_embeddings)
        return keras.ops.expand_dims(keras.ops.slice(table, (0, 0), (shape[-2], shape[-1])), 0)

    return call


@contextlib.contextmanager
def export_graph_changes(model):
    """Within the block, both changes of the module docstring apply to ``model``'s layers (the attention layers'
    softmax and the position embeddings' ``call``); everything is put back on exit (also on error).

    Yields:
        ``{"attention_layers": n, "position_embeddings": n}``, how many layers were changed.
    """
    import keras_hub  # lazy: keras-hub loads only when a model is exported

    changed = []
    counts = {"attention_layers": 0, "position_embeddings": 0}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.MultiHeadAttention) and hasattr(layer, "_softmax"):
            original = layer._softmax
            replacement = AdditiveMaskSoftmax(axis=original.axis, dtype=original.dtype_policy)
            changed.append((layer, "_softmax", original))
            counts["attention_layers"] += 1
        elif isinstance(layer, keras_hub.layers.PositionEmbedding):
            replacement = position_embedding_without_broadcast(layer)
            changed.append((layer, "call", layer.__dict__.get("call")))
            counts["position_embeddings"] += 1
        else:
            continue
        # object.__setattr__: a stateless swap, not new tracked state of a built layer (Keras refuses that)
        object.__setattr__(layer, changed[-1][1], replacement)
    try:
        yield counts
    finally:
        for layer, name, original in changed:
            if original is None:
                object.__delattr__(layer, name)  # back to the class's own method
            else:
                object.__setattr__(layer, name, original)
