"""ONNX export of the tiny RefBERT student (bank and in-graph retrieval included): parity, the two op handlers,
dynamic int8, and the parity check refusing a perturbed model."""

import numpy as np
import onnx
import pytest


@pytest.fixture(scope="module")
def onnx_files(student_run, tmp_path_factory):
    from refbert_tf.export.onnx import export_onnx

    _, student, _, _ = student_run
    return export_onnx(student, tmp_path_factory.mktemp("onnx"), "sst2_refbert", max_seq_len=32)


def test_refbert_student_converts_with_parity(student_run, onnx_files):
    from refbert_tf.export.onnx import check_parity, onnx_parity

    _, student, feats, _ = student_run
    graph = onnx.load(str(onnx_files["float32"])).graph
    ops = {n.op_type for n in graph.node}
    assert "Erf" in ops and "Erfc" not in ops  # the exact GELU as 1 - Erf
    assert "ScatterND" in ops and "OneHot" not in ops  # histogram and anchor scores, not tf2onnx's sort-based path
    parity = check_parity(onnx_parity(student, onnx_files["float32"], feats, num_examples=30), onnx_files["float32"])
    assert parity["num_examples"] == 30 and parity["max_abs_diff"] < 1e-4
    assert parity["prediction_agreement"] == 1.0


def test_dynamic_int8_quantizes_every_matmul(student_run, onnx_files):
    from refbert_tf.export.onnx import onnx_parity

    _, student, feats, _ = student_run
    graph = onnx.load(str(onnx_files["dynamic_int8"])).graph
    ops = [n.op_type for n in graph.node]
    weights = {t.name for t in graph.initializer}
    assert not [n for n in graph.node if n.op_type == "Gemm" and n.input[1] in weights]  # every weight product is int8
    assert ops.count("MatMulInteger") > 0
    parity = onnx_parity(student, onnx_files["dynamic_int8"], feats, num_examples=30)
    assert parity["max_abs_diff"] < 0.5  # int8 weights: close, not equal


def test_parity_check_refuses_a_perturbed_model(student_run, onnx_files, tmp_path):
    from onnx import numpy_helper

    from refbert_tf.export.onnx import OnnxExportError, check_parity, onnx_parity

    _, student, feats, _ = student_run
    model = onnx.load(str(onnx_files["float32"]))
    rng = np.random.default_rng(0)
    for weight in model.graph.initializer:  # noise on every weight matrix but the embedding tables
        if weight.data_type == 1 and len(weight.dims) == 2 and np.prod(weight.dims) < 10**5:
            values = numpy_helper.to_array(weight)
            noisy = values + rng.standard_normal(values.shape) * values.std()
            weight.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), weight.name))
    bad = tmp_path / "perturbed.onnx"
    onnx.save(model, str(bad))
    parity = onnx_parity(student, bad, feats, num_examples=30)
    with pytest.raises(OnnxExportError, match="disagrees with its Keras model"):
        check_parity(parity, bad)


def test_gemm_rewrite_keeps_the_product():
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from refbert_tf.export.onnx import gemm_to_matmul

    rng = np.random.default_rng(0)
    w, c = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1, beta=2.0)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert gemm_to_matmul(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x @ w.T + 2.0 * c, rtol=1e-5, atol=1e-5)


def test_low_opset_and_unknown_variant_are_refused(student_run, tmp_path):
    from refbert_tf.export.onnx import OnnxExportError, convert_saved_model, export_onnx

    _, student, _, _ = student_run
    with pytest.raises(OnnxExportError, match="opset must be >= 16"):
        convert_saved_model(tmp_path, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ValueError, match="unknown ONNX variants"):
        export_onnx(student, tmp_path, "x", variants=("float16",))


def test_onnx_file_times_in_a_child_process(onnx_files):
    from refbert_tf.benchmark.desktop import benchmark_tflite

    r = benchmark_tflite(onnx_files["dynamic_int8"], seq_len=8, num_runs=3, warmup_runs=1, runtime="onnxruntime")
    assert r["runtime"] == "onnxruntime" and r["count"] == 3 and r["median_ms"] > 0
    real = benchmark_tflite(onnx_files["float32"], num_runs=1, warmup_runs=1, runtime="onnxruntime", lengths=[4, 6])
    assert real["seq_len"] == "real" and real["count"] == 2
