"""Initialise a narrower student from the teacher by structured width pruning (our addition; not in the design note).

``init_student_from_teacher`` copies blocks only when the widths match; the default MiniLM teacher (hidden 384,
12 heads of 32, FFN 1536) and ``tinybert4`` (312, 12 heads of 26, FFN 1200) do not. Here the student keeps, for
the mapped teacher blocks, the teacher's most active coordinates:

- hidden (residual-stream) coordinates: the d_s of d_t with the largest mean squared activation over the
  embeddings and every hidden state of a sample of real inputs, the same set in every layer (the residual
  stream and the LayerNorm parameters are per coordinate, so a common subset keeps them consistent);
- per head, the query/key dimensions with the largest E[q_i^2] E[k_i^2] (their share of q.k), the queries
  rescaled by sqrt(d_s_head / d_t_head) so the scores keep the teacher's 1/sqrt(d_t_head) scale;
- per head, the value dimensions with the largest E[v_i^2] ||W_O[i, :]||^2, and the FFN units with the largest
  E[a_j^2] ||W_2[j, :]||^2 (a = GELU(h W_1 + b_1)): each unit's output energy.

This is the magnitude-and-activation criterion of structured pruning (e.g. Michel et al. 2019, "Are Sixteen Heads
Really Better than One?"; Sajjad et al. 2023 for layer dropping; Xia et al. 2022, CoFi, for hidden-dimension
pruning), used here only to initialise the student before TinyBERT's task distillation, as DistilBERT (Sanh et al.
2019, sec. 3) initialises its student from every other teacher layer.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from refbert_tf.distillation import check_layer_mapping, is_backbone


def _mean_square(x, mask):
    """Mean of x**2 over the real tokens: x [B, T, ...], mask [B, T] -> [...]."""
    x = np.asarray(x, np.float64)
    m = np.asarray(mask, np.float64).reshape(mask.shape + (1,) * (x.ndim - 2))
    return (x * x * m).sum(axis=(0, 1)) / max(m.sum(), 1.0)


def _top(scores, k):
    """Indices of the k largest of ``scores`` along the last axis, in ascending index order."""
    return np.sort(np.argsort(-scores, axis=-1, kind="stable")[..., :k], axis=-1)


def pruning_statistics(teacher_features, inputs, batch_size: int = 32) -> dict:
    """Activation statistics of the teacher on a sample of inputs, for :func:`init_student_by_pruning`.

    Args:
        teacher_features: :class:`refbert_tf.distillation.TeacherFeatures` of the (fine-tuned) teacher.
        inputs: dict ``token_ids``, ``segment_ids``, ``padding_mask``, int32 [N, T] (a few hundred examples).
        batch_size: teacher batch size.

    Returns:
        dict: ``hidden`` [d_t] (mean squared embedding and hidden-state activations), and per teacher block
        (0-based lists) ``query``, ``key``, ``value`` [heads, d_head] and ``ffn`` [F] mean squared activations.

    Raises:
        ValueError: if ``inputs`` is empty.
    """
    n = len(inputs["token_ids"])
    if n == 0:
        raise ValueError("pruning statistics need at least one example")
    model = teacher_features.model
    layers = teacher_features.num_layers
    sums = {
        "hidden": 0.0,
        "query": [0.0] * layers,
        "key": [0.0] * layers,
        "value": [0.0] * layers,
        "ffn": [0.0] * layers,
    }
    weight = 0.0
    for start in range(0, n, batch_size):
        batch = {
            k: np.asarray(inputs[k][start : start + batch_size], np.int32)
            for k in ("token_ids", "segment_ids", "padding_mask")
        }
        mask = batch["padding_mask"]
        tokens = float(mask.sum())
        out = model(batch, training=False)
        states = [out["embeddings"]] + [out[f"hidden_{i}"] for i in range(layers)]
        sums["hidden"] += tokens * sum(_mean_square(s, mask) for s in states)
        for i in range(layers):
            block = model.get_layer(f"transformer_layer_{i}")
            attention = block._self_attention_layer
            x = states[i]
            for name, dense in (
                ("query", attention._query_dense),
                ("key", attention._key_dense),
                ("value", attention._value_dense),
            ):
                sums[name][i] += tokens * _mean_square(dense(x), mask)
            attended = attention(query=x, value=x, key=x, attention_mask=keras.ops.expand_dims(mask, 1))
            h = block._self_attention_layer_norm(x + attended)
            sums["ffn"][i] += tokens * _mean_square(block._feedforward_intermediate_dense(h), mask)
        weight += tokens
    return {k: (v / weight if not isinstance(v, list) else [x / weight for x in v]) for k, v in sums.items()}


def pruning_misfit(student, backbone) -> str | None:
    """Why ``student`` cannot be pruned from the teacher encoder ``backbone``, or None when it can.

    Pruning keeps every head and removes units, so the student needs the teacher's vocabulary and head count and
    no more layers, hidden units or FFN units than the teacher. The default MiniLM teacher (6 layers, 384 wide,
    12 heads, FFN 1536) fits ``tinybert4`` (4, 312, 12, 1200) but not ``tinybert6`` (768 wide).

    Args:
        student: a built :class:`~refbert_tf.models.student.RefBertStudent`.
        backbone: the teacher's keras-hub ``BertBackbone``.

    Returns:
        A one-line reason naming the mismatched sizes, or None.
    """
    c = student.config_values
    if c["vocabulary_size"] != backbone.vocabulary_size:
        return f"student vocabulary ({c['vocabulary_size']}) differs from the teacher's ({backbone.vocabulary_size})"
    if c["num_heads"] != backbone.num_heads:
        return f"student has {c['num_heads']} heads, the teacher {backbone.num_heads} (pruning keeps every head)"
    if c["hidden_dim"] > backbone.hidden_dim or c["intermediate_dim"] > backbone.intermediate_dim:
        return (
            f"student (hidden {c['hidden_dim']}, FFN {c['intermediate_dim']}) is wider than the teacher (hidden "
            f"{backbone.hidden_dim}, FFN {backbone.intermediate_dim}; pruning cannot add units)"
        )
    if len(student.blocks) > backbone.num_layers:
        return f"student has {len(student.blocks)} layers, the teacher {backbone.num_layers}"
    return None


def init_student_by_pruning(student, teacher, statistics: dict, layer_mapping: list[int]) -> np.ndarray:
    """Copy a width-pruned slice of the teacher into a narrower student (see the module docstring).

    Copies the token (for factorised embeddings, E < d_s: the truncated SVD of the pruned table,
    :func:`truncated_svd`, as table and projection), position (first ``max_sequence_length`` rows) and segment
    embeddings, the embedding
    LayerNorm, the mapped Transformer blocks (student block m from teacher block ``layer_mapping[m]``, 1-based, as
    :func:`refbert_tf.distillation.layer_map`), the pooler and, for a classifier teacher with as many outputs, the
    classifier, each restricted to the kept coordinates. A RefBERT student's projection P (d_t -> d_s) becomes the
    selection of the kept coordinates, so a reference enters in the same coordinates as the student's states.

    Args:
        student: a built :class:`~refbert_tf.models.student.RefBertStudent`, no wider than the teacher in hidden
            size, head size and FFN size, with as many heads and the same vocabulary.
        teacher: the fine-tuned keras-hub ``BertTextClassifier`` (or a bare ``BertBackbone``: no classifier copy).
        statistics: :func:`pruning_statistics` of this teacher.
        layer_mapping: teacher block (1-based) for each student block.

    Returns:
        The kept hidden coordinates, int [d_s] ascending: the student's coordinate i is the teacher's
        ``kept[i]``, so ``selection_matrix(kept, d_t)`` maps student states to teacher width.

    Raises:
        ValueError: another vocabulary or head count, a student wider than the teacher, or a mapping of the wrong
            length or out of range.
    """
    backbone = teacher if is_backbone(teacher) else teacher.backbone
    misfit = pruning_misfit(student, backbone)
    if misfit:
        raise ValueError(f"{misfit}: the student cannot be pruned from this teacher")
    c = student.config_values
    d_s, d_t = c["hidden_dim"], backbone.hidden_dim
    heads = c["num_heads"]
    check_layer_mapping(layer_mapping, len(student.blocks), backbone.num_layers)
    head_s, head_t = d_s // heads, d_t // heads
    kept = _top(np.asarray(statistics["hidden"]), d_s)

    def copy_embedding(name, rows=None):
        table = backbone.get_layer(name).get_weights()[0]
        getattr(student, name).set_weights([table[:rows, kept]])

    tokens = backbone.get_layer("token_embedding").get_weights()[0][:, kept]
    if student.embedding_projection is None:
        student.token_embedding.set_weights([tokens])
    else:  # factorised embeddings: the best rank-E approximation of the pruned table
        table, projection = truncated_svd(tokens, student.token_embedding.output_dim)
        student.token_embedding.set_weights([table])
        student.embedding_projection.set_weights([projection, np.zeros(d_s, np.float32)])
    copy_embedding("position_embedding", c["max_sequence_length"])
    copy_embedding("segment_embedding", student.segment_embedding.input_dim)
    gamma, beta = backbone.get_layer("embeddings_layer_norm").get_weights()
    student.embeddings_layer_norm.set_weights([gamma[kept], beta[kept]])

    def per_head(array, keep, axis):  # array with a [heads, d_head] pair at (axis, axis + 1)
        index = np.expand_dims(keep, tuple(range(axis))) if axis else keep
        index = np.expand_dims(index, tuple(range(axis + 2, array.ndim)))
        return np.take_along_axis(array, index, axis=axis + 1)

    for block, t in zip(student.blocks, layer_mapping):
        source = backbone.get_layer(f"transformer_layer_{t - 1}")
        mine, theirs = block._self_attention_layer, source._self_attention_layer
        q_keep = _top(np.asarray(statistics["query"][t - 1]) * np.asarray(statistics["key"][t - 1]), head_s)
        w_o = theirs._output_dense.get_weights()[0]  # [heads, d_head, d_t]
        v_keep = _top(np.asarray(statistics["value"][t - 1]) * np.square(w_o).sum(-1), head_s)
        scale = np.sqrt(head_s / head_t)  # q.k / sqrt(head_s) == (teacher's kept part of q.k) / sqrt(head_t)
        for dense, keep, factor in (
            ("_query_dense", q_keep, scale),
            ("_key_dense", q_keep, 1.0),
            ("_value_dense", v_keep, 1.0),
        ):
            kernel, bias = getattr(theirs, dense).get_weights()  # [d_t, heads, d_head], [heads, d_head]
            getattr(mine, dense).set_weights(
                [per_head(kernel[kept], keep, 1) * factor, per_head(bias, keep, 0) * factor]
            )
        out_bias = theirs._output_dense.get_weights()[1]
        mine._output_dense.set_weights([per_head(w_o, v_keep, 0)[:, :, kept], out_bias[kept]])
        for norm in ("_self_attention_layer_norm", "_feedforward_layer_norm"):
            gamma, beta = getattr(source, norm).get_weights()
            getattr(block, norm).set_weights([gamma[kept], beta[kept]])
        w_1, b_1 = source._feedforward_intermediate_dense.get_weights()
        w_2, b_2 = source._feedforward_output_dense.get_weights()
        units = _top(np.asarray(statistics["ffn"][t - 1]) * np.square(w_2).sum(-1), c["intermediate_dim"])
        block._feedforward_intermediate_dense.set_weights([w_1[kept][:, units], b_1[units]])
        block._feedforward_output_dense.set_weights([w_2[units][:, kept], b_2[kept]])

    kernel, bias = backbone.get_layer("pooled_dense").get_weights()
    student.pooled_dense.set_weights([kernel[kept][:, kept], bias[kept]])
    if not is_backbone(teacher):
        kernel, bias = teacher.output_dense.get_weights()
        if kernel.shape[1] == c["num_classes"]:
            student.classifier.set_weights([kernel[kept], bias])
    if student.bank is not None:  # the lexical reference tokens' P (a dense-only student has none)
        student.reference_projection.set_weights([selection_matrix(kept, d_t).T, np.zeros(d_s, np.float32)])
    return kept


def truncated_svd(table, dim: int):
    """Factorise ``table`` [V, H] as ``S W`` with ``S = U_E Sigma_E`` [V, E] and ``W = V_E^T`` [E, H] by a truncated
    SVD: the best rank-E approximation in Frobenius norm (Eckart-Young). ``dim >= H`` gives ``S`` = the table
    padded with zero columns and ``W`` the identity padded with zero rows (exact).

    Returns:
        ``(S, W)`` float32.

    Raises:
        ValueError: ``dim`` < 1.
    """
    if dim < 1:
        raise ValueError(f"embedding dim must be >= 1, got {dim}")
    table = np.asarray(table, np.float32)
    hidden = table.shape[1]
    if dim >= hidden:
        s = np.zeros((table.shape[0], dim), np.float32)
        s[:, :hidden] = table
        return s, np.eye(dim, hidden, dtype=np.float32)
    u, sigma, vt = np.linalg.svd(table, full_matrices=False)
    return (u[:, :dim] * sigma[:dim]).astype(np.float32), vt[:dim].astype(np.float32)


def selection_matrix(kept, width: int) -> np.ndarray:
    """The 0/1 matrix S [len(kept), width] with S[i, kept[i]] = 1: x S puts student coordinates back at their
    teacher positions (zeros elsewhere); S^T selects them from a teacher-width vector."""
    s = np.zeros((len(kept), width), np.float32)
    s[np.arange(len(kept)), kept] = 1.0
    return s


PRUNING_SAMPLE = 512  # training examples whose teacher activations rank the units a pruned student keeps


def pruning_sample(train_features: dict, seed: int, size: int = PRUNING_SAMPLE) -> dict:
    """``size`` seeded random rows of encoded training features, as padded int32 arrays [n, T] (the inputs of
    :func:`pruning_statistics`).

    Args:
        train_features: ragged ``token_ids`` and ``segment_ids`` [N, None] (:meth:`BertWordPieceTokenizer.encode`).
        seed: picks the rows.
        size: rows to take (all of them when fewer).
    """
    rows = np.random.default_rng(seed).permutation(int(train_features["token_ids"].nrows()))[:size]
    sample = {k: tf.gather(train_features[k], rows) for k in ("token_ids", "segment_ids")}
    sample["padding_mask"] = tf.ones_like(sample["token_ids"])
    return {k: v.to_tensor().numpy() for k, v in sample.items()}
