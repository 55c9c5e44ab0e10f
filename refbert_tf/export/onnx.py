"""ONNX export of the same SavedModel the TFLite files come from, for ONNX Runtime (the comparison users make).

Path: :func:`refbert_tf.export.converter.export_saved_model` (one ``serve`` endpoint, int32 [1, None] inputs,
the bank as constants) -> ``tf2onnx.convert.from_function`` at ``opset`` 17 -> ``float32`` ``.onnx``; and
``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantized per call: ONNX Runtime's
dynamic quantization, the counterpart of LiteRT's dynamic-range int8) -> ``dynamic_int8``.

Two TensorFlow ops have no tf2onnx mapping that ONNX Runtime accepts, so two handlers are given to the converter:

* ``Erfc`` (``tf.nn.gelu(approximate=False)``, the exact GELU of BERT's feed-forward blocks) becomes
  ``1 - Erf(x)``: ONNX has ``Erf`` but no ``Erfc``.
* ``UnsortedSegmentSum`` (the retrieval's bucket histogram and the anchor scores,
  :class:`refbert_tf.retrieval.AnchorScorer`) becomes one ``ScatterND`` with ``reduction="add"`` into zeros
  (opset 16+), exact for int32; tf2onnx's own mapping sorts the segment ids (``TopK`` + ``Unique``) on every call.

This module imports neither TensorFlow nor ONNX at import time; the functions that convert or run import them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refbert_tf.export.converter import INPUT_NAMES, OUTPUT_NAME, compare_with_keras

ONNX_VARIANTS = ("float32", "dynamic_int8")
DEFAULT_OPSET = 17


class OnnxExportError(RuntimeError):
    """A conversion to ONNX failed, or the converted model disagrees with the Keras model (parity check)."""


def _erfc_handler(ctx, node, name, args):
    """tf2onnx handler: ``Erfc(x)`` as ``1 - Erf(x)``."""
    from tf2onnx import utils  # lazy: tf2onnx imports TensorFlow

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    sub = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{name}_one_minus"))
    ctx.replace_inputs(sub, [one.output[0], node.output[0]])


def _unsorted_segment_sum_handler(ctx, node, name, args):
    """tf2onnx handler: ``UnsortedSegmentSum(data [N, ...], segment_ids [N], num_segments)`` as
    ``ScatterND(zeros [num_segments, ...], segment_ids [N, 1], data, reduction="add")``."""
    from onnx import TensorProto, helper  # lazy: with tf2onnx
    from tf2onnx import utils  # lazy: tf2onnx imports TensorFlow
    from tf2onnx.graph_builder import GraphBuilder  # lazy: as above

    data, segments, num_segments = node.input
    utils.make_sure(ctx.get_rank(segments) == 1, "UnsortedSegmentSum: segment ids of rank 1 only, in %s", name)
    build = GraphBuilder(ctx)
    segments = ctx.make_node("Cast", [segments], attr={"to": TensorProto.INT64}).output[0]
    indices = build.make_unsqueeze({"data": segments, "axes": [-1]})
    count = ctx.make_node("Cast", [num_segments], attr={"to": TensorProto.INT64}).output[0]
    count = ctx.make_node("Reshape", [count, ctx.make_const(utils.make_name("shape1"), np.array([1])).output[0]])
    tail = build.make_slice({"data": ctx.make_node("Shape", [data]).output[0], "starts": [1], "ends": [2**62]})
    shape = ctx.make_node("Concat", [count.output[0], tail], attr={"axis": 0}).output[0]
    zero = helper.make_tensor("value", ctx.get_dtype(data), dims=[1], vals=[0])
    zeros = ctx.make_node("ConstantOfShape", [shape], attr={"value": zero}).output[0]
    node.type = "ScatterND"
    ctx.replace_inputs(node, [zeros, indices, data])
    node.set_attr("reduction", "add")


CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_handler, []), "UnsortedSegmentSum": (_unsorted_segment_sum_handler, [])}


def convert_saved_model(saved_model_dir, onnx_path, opset: int = DEFAULT_OPSET) -> Path:
    """Convert the ``serve`` endpoint of a SavedModel (:func:`export_saved_model`) to a float32 ``.onnx`` file.

    Args:
        saved_model_dir: the SavedModel directory.
        onnx_path: output file (written atomically).
        opset: ONNX opset (>= 16: ``ScatterND`` with a reduction).

    Returns:
        the path, with inputs ``token_ids``, ``segment_ids``, ``padding_mask`` (int32 [1, T]) and output
        ``logits`` float32 [1, C].

    Raises:
        OnnxExportError: an op did not convert (the message names it) or ``opset`` < 16.
    """
    import tensorflow as tf  # lazy: this module is TensorFlow-free at import
    import tf2onnx  # lazy: imports TensorFlow

    from refbert_tf.io_utils import atomic_path  # lazy: keeps this module's import light

    if opset < 16:
        raise OnnxExportError(f"opset must be >= 16 (ScatterND with reduction), got {opset}")
    loaded = tf.saved_model.load(str(saved_model_dir))  # kept alive: the signature references its variables
    serve = loaded.signatures["serve"]
    spec = [tf.TensorSpec([1, None], tf.int32, name=n) for n in INPUT_NAMES]

    @tf.function(input_signature=spec)
    def endpoint(token_ids, segment_ids, padding_mask):
        out = serve(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask)
        return {OUTPUT_NAME: tf.identity(out[OUTPUT_NAME], name=OUTPUT_NAME)}

    try:
        proto, _ = tf2onnx.convert.from_function(
            endpoint, input_signature=spec, opset=opset, custom_op_handlers=dict(CUSTOM_OP_HANDLERS)
        )
    except Exception as e:  # tf2onnx raises bare exceptions with the op's name in the message
        raise OnnxExportError(f"ONNX conversion of {saved_model_dir} failed: {e}") from e
    unsupported = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if unsupported:
        raise OnnxExportError(f"ONNX conversion of {saved_model_dir} left ops ONNX Runtime lacks: {unsupported}")
    with atomic_path(onnx_path) as tmp:
        Path(tmp).write_bytes(proto.SerializeToString())
    return Path(onnx_path)


def gemm_to_matmul(model) -> int:
    """Rewrite in place every ``Gemm`` with a constant ``B`` (``alpha = 1``, ``transA = 0``) as ``MatMul`` (``B``
    transposed once if ``transB``) plus ``Add`` of ``C`` when ``beta`` != 0: ONNX Runtime's dynamic quantization
    quantizes ``MatMul`` but leaves ``Gemm`` in float32, and tf2onnx writes the attention projections as ``Gemm``.

    Args:
        model: an ``onnx.ModelProto``.

    Returns:
        the number of ``Gemm`` nodes rewritten.
    """
    from onnx import helper, numpy_helper  # lazy: only when quantizing

    inits = {t.name: t for t in model.graph.initializer}
    nodes, changed = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.input[1] not in inits
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("transA", 0)
        ):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = weight.T.copy()
        name = f"{node.name}_weight"
        model.graph.initializer.append(numpy_helper.from_array(weight, name))
        has_bias = len(node.input) > 2 and node.input[2] and attrs.get("beta", 1.0) != 0.0
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product], name=f"{node.name}_matmul"))
        if has_bias:
            bias = node.input[2]
            if attrs.get("beta", 1.0) != 1.0:
                scaled = numpy_helper.to_array(inits[bias]) * attrs["beta"]
                bias = f"{node.name}_bias"
                model.graph.initializer.append(numpy_helper.from_array(scaled.astype(weight.dtype), bias))
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]], name=f"{node.name}_add"))
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def quantize_dynamic_int8(float_path, int8_path) -> Path:
    """ONNX Runtime's dynamic quantization of a float32 ``.onnx`` file: int8 weights of every ``MatMul`` (the
    ``Gemm`` nodes first rewritten by :func:`gemm_to_matmul`), activations quantized at run time
    (``onnxruntime.quantization.quantize_dynamic``, ``QuantType.QInt8``).

    Raises:
        OnnxExportError: quantization failed.
    """
    import tempfile  # lazy: only when quantizing

    import onnx  # lazy: as above
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: as above

    from refbert_tf.io_utils import atomic_path  # lazy: as above

    try:
        model = onnx.load(str(float_path))
        gemm_to_matmul(model)
        with tempfile.TemporaryDirectory() as work, atomic_path(int8_path) as tmp:
            source = Path(work) / "matmul.onnx"
            onnx.save(model, str(source))
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
    except Exception as e:  # onnxruntime.quantization raises what the graph walk meets
        raise OnnxExportError(f"dynamic quantization of {float_path} failed: {e}") from e
    return Path(int8_path)


class OnnxClassifier:
    """Run an exported ``.onnx`` classifier with ONNX Runtime on one text at a time (batch 1).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (inter-op 1, sequential execution, all graph optimizations).

    Raises:
        OnnxExportError: the file does not load in ONNX Runtime.
    """

    def __init__(self, path, threads: int = 1):
        import onnxruntime as ort  # lazy: only where ONNX files are run

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise OnnxExportError(f"{path} does not load in ONNX Runtime: {e}") from e
        self.input_names = [i.name for i in self.session.get_inputs()]

    def feeds(self, token_ids, segment_ids=None) -> dict:
        """Inputs for one packed example: int32 [1, T] each (mask all ones)."""
        ids = np.asarray(token_ids, np.int32).reshape(1, -1)
        segs = np.zeros_like(ids) if segment_ids is None else np.asarray(segment_ids, np.int32).reshape(1, -1)
        values = {"token_ids": ids, "segment_ids": segs, "padding_mask": np.ones_like(ids)}
        return {name: values[next(k for k in values if k in name)] for name in self.input_names}

    def predict(self, token_ids, segment_ids=None) -> np.ndarray:
        """Logits float32 [C] of one packed example."""
        return np.asarray(self.session.run(None, self.feeds(token_ids, segment_ids))[0])[0]


def onnx_parity(model, onnx_path, features: dict, num_examples: int = 200) -> dict:
    """:func:`refbert_tf.export.converter.compare_with_keras` for an ``.onnx`` file (through
    :class:`OnnxClassifier`): ``{"num_examples", "max_abs_diff", "prediction_agreement"}``."""
    return compare_with_keras(model, OnnxClassifier(onnx_path).predict, features, num_examples)


def check_parity(parity: dict, path, max_abs_diff: float = 1e-3, min_agreement: float = 1.0) -> dict:
    """Refuse a converted file that disagrees with its Keras model (before any timing).

    Args:
        parity: from :func:`onnx_parity` (or :func:`refbert_tf.export.converter.keras_parity`).
        path: the file, named in the error.
        max_abs_diff: largest allowed |logit difference| (float32 files; a quantized file is checked on
            ``min_agreement`` only when ``max_abs_diff`` is None).
        min_agreement: smallest allowed fraction of equal predictions.

    Returns:
        ``parity``.

    Raises:
        OnnxExportError: over the tolerance (the message gives both figures).
    """
    too_far = max_abs_diff is not None and parity["max_abs_diff"] > max_abs_diff
    if too_far or parity["prediction_agreement"] < min_agreement:
        raise OnnxExportError(
            f"{path} disagrees with its Keras model on {parity['num_examples']} examples: max |logit difference| "
            f"{parity['max_abs_diff']:.3g} (allowed {max_abs_diff}), same prediction "
            f"{100 * parity['prediction_agreement']:.1f}% (required {100 * min_agreement:.1f}%)"
        )
    return parity


def export_onnx(model, out_dir, stem: str, max_seq_len: int | None = None, variants=ONNX_VARIANTS) -> dict:
    """Export a Keras classifier as ``<stem>_<variant>.onnx`` for each variant, from one SavedModel.

    Args:
        model: Keras classifier (inputs and outputs as :func:`export_saved_model`).
        out_dir: output directory.
        stem: file name stem, e.g. ``sst2_refbert``.
        max_seq_len: the endpoint's truncation length (the TFLite files' own).
        variants: subset of :data:`ONNX_VARIANTS`.

    Returns:
        ``{variant: path}``.

    Raises:
        OnnxExportError: conversion or quantization failed; ValueError: an unknown variant.
    """
    import tempfile  # lazy: only when exporting

    from refbert_tf.export.converter import export_saved_model  # lazy: heavy imports happen inside

    unknown = sorted(set(variants) - set(ONNX_VARIANTS))
    if unknown:
        raise ValueError(f"unknown ONNX variants {unknown}; choose from {ONNX_VARIANTS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    float_path = out_dir / f"{stem}_float32.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(model, Path(tmp) / "saved_model", max_seq_len)
        convert_saved_model(saved, float_path)
    if "float32" in variants:
        paths["float32"] = float_path
    if "dynamic_int8" in variants:
        paths["dynamic_int8"] = quantize_dynamic_int8(float_path, out_dir / f"{stem}_dynamic_int8.onnx")
    if "float32" not in variants:
        os.remove(float_path)
    return paths
