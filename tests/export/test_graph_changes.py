"""Export-time graph changes: the same logits (padding included), no attention selects or position broadcast in
the TFLite file, and the Keras model put back as it was."""

import numpy as np


def _ops(flatbuffer):
    """{op name: count} of a TFLite flatbuffer."""
    from collections import Counter

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    return Counter(d["op_name"] for d in interpreter._get_ops_details())


def test_changes_keep_logits_and_restore_the_model(student_run):
    from refbert_tf.export.graph_changes import AdditiveMaskSoftmax, export_graph_changes

    _, student, feats, _ = student_run
    ids = feats["token_ids"][0].numpy().astype(np.int32)
    padded = np.concatenate([ids, np.zeros(5, np.int32)])
    mask = (np.arange(padded.size) < ids.size).astype(np.int32)
    inputs = {"token_ids": padded[None], "segment_ids": np.zeros_like(padded)[None], "padding_mask": mask[None]}
    before = np.asarray(student(inputs, training=False))
    with export_graph_changes(student) as counts:
        during = np.asarray(student(inputs, training=False))
        softmaxes = [layer._softmax for layer in student._flatten_layers() if hasattr(layer, "_softmax")]
    assert counts["attention_layers"] >= 2 and counts["position_embeddings"] == 1
    assert all(isinstance(s, AdditiveMaskSoftmax) for s in softmaxes)
    np.testing.assert_allclose(during, before, atol=1e-6)
    after = [layer._softmax for layer in student._flatten_layers() if hasattr(layer, "_softmax")]
    assert not any(isinstance(s, AdditiveMaskSoftmax) for s in after)
    assert "call" not in student.position_embedding.__dict__
    np.testing.assert_allclose(np.asarray(student(inputs, training=False)), before, atol=1e-7)


def test_changed_file_drops_the_undelegated_ops(student_run, tmp_path):
    from refbert_tf.export import convert, export_saved_model

    _, student, _, _ = student_run
    counts = {}
    for changes in (False, True):
        saved = export_saved_model(student, tmp_path / f"saved_{changes}", 32, graph_changes=changes)
        ops = _ops(convert(saved, "float32")[0])
        counts[changes] = ops
    assert counts[False].get("SELECT_V2", 0) - counts[True].get("SELECT_V2", 0) >= 4  # two per attention layer
    assert counts[True].get("BROADCAST_TO", 0) < counts[False].get("BROADCAST_TO", 0)
    assert "ONE_HOT" not in counts[True]


def test_full_integer_files_keep_the_keras_graph(exported):
    assert exported["full_int8"]["graph_changes"] is False
    assert all(exported[v]["graph_changes"] is True for v in ("float32", "dynamic_int8", "float16"))
    assert "SELECT_V2" in exported["full_int8"]["ops"]
