"""The dense reference bank layer and late fusion (refbert_tf/models/dense_bank_layer.py)."""

import keras
import numpy as np
import pytest

from refbert_tf.dense_retrieval import dense_neighbours
from refbert_tf.models.dense_bank_layer import DenseReferenceBank, LateFusion


def _anchors(m=40, d=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.normal(size=(m, d)).astype(np.float32)
    logits = rng.normal(size=(m, c)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return keys, probs.astype(np.float32)


def test_in_graph_retrieval_is_the_offline_neighbour_search_and_aggregates_soft_labels():
    keys, probs = _anchors()
    bank = DenseReferenceBank(40, 8, 3, top_k=4, temperature=0.1)
    bank.set_anchors(keys, probs)
    queries = np.random.default_rng(1).normal(size=(12, 8)).astype(np.float32)
    idx, sim = bank.retrieve(queries)
    want_idx, want_sim = dense_neighbours(queries, keys, k=4)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    np.testing.assert_allclose(np.asarray(sim), want_sim, atol=1e-5)
    own = np.arange(12)  # queries 0..11 may not return anchors 0..11
    idx_ex, _ = bank.retrieve(keys[:12], exclude=own)
    np.testing.assert_array_equal(np.asarray(idx_ex), dense_neighbours(keys[:12], keys, k=4, exclude=own)[0])
    p = np.asarray(bank(queries))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    sharp = DenseReferenceBank(40, 8, 3, top_k=4, temperature=1e-4)
    sharp.set_anchors(keys, probs)
    np.testing.assert_allclose(np.asarray(sharp(queries)), probs[want_idx[:, 0]], atol=1e-4)  # top-1's labels
    with pytest.raises(ValueError, match="top_k"):
        DenseReferenceBank(4, 8, 3, top_k=4)
    with pytest.raises(ValueError, match="probabilities"):
        bank.set_anchors(keys, probs * 2)
    with pytest.raises(ValueError, match="shape"):
        bank.set_anchors(keys[:, :4], probs)


def test_late_fusion_is_a_mixture_whose_weight_is_learned():
    fusion = LateFusion(0.25)
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], np.float32)
    p = np.array([[0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], np.float32)
    out = np.exp(np.asarray(fusion(logits, p)))
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out, 0.75 * soft + 0.25 * p, atol=1e-5)
    assert fusion.mixing_weight == pytest.approx(0.25)
    # a zero mixing weight is the plain student: its log-softmax, whatever the retrieved labels say
    fusion.w.assign(-80.0)
    log_soft = np.log(soft)
    np.testing.assert_allclose(np.asarray(fusion(logits, p)), log_soft, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fusion(logits, p[::-1])), log_soft, atol=1e-5)
    fusion.w.assign(np.log(0.25 / 0.75))
    # a training signal that favours the retrieved labels raises lambda
    z_in, p_in = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([z_in, p_in], fusion(z_in, p_in))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y, logp: -keras.ops.sum(y * logp, -1))
    model.fit([logits[:1], p[:1]], p[:1], epochs=5, verbose=0)
    assert fusion.mixing_weight > 0.3
    with pytest.raises(ValueError, match="initial_weight"):
        LateFusion(1.0)


def test_dense_bank_exports_with_tflite_builtins_and_keeps_its_choices(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from refbert_tf.export.converter import convert

    keys, probs = _anchors(m=64, d=16, c=2)
    bank = DenseReferenceBank(64, 16, 2, top_k=8, temperature=0.1)
    bank.set_anchors(keys, probs)
    query_in, logits_in = keras.Input((16,), name="query"), keras.Input((2,), name="logits")
    model = keras.Model({"query": query_in, "logits": logits_in}, LateFusion(0.2)(logits_in, bank(query_in)))
    saved = tmp_path / "saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    rng = np.random.default_rng(3)
    queries = (keys[rng.integers(0, 64, 20)] + 0.1 * rng.normal(size=(20, 16))).astype(np.float32)
    logits = rng.normal(size=(20, 2)).astype(np.float32)
    want = np.asarray(model({"query": queries, "logits": logits}))
    for variant in ("float32", "dynamic_int8"):
        flatbuffer, info = convert(saved, variant)  # raises on any non-builtin op
        assert "TOPK_V2" in info["ops"] and "GATHER" in info["ops"]
        runner = Interpreter(model_content=flatbuffer).get_signature_runner("serve")
        got = np.stack([next(iter(runner(query=queries[i : i + 1], logits=logits[i : i + 1]).values()))[0]
                        for i in range(20)])  # fmt: skip
        np.testing.assert_allclose(got, want, atol=1e-4 if variant == "float32" else 5e-2)
