"""Export of a tiny RefBERT student (real SST-2 slice, bank inside) to the four TFLite variants."""

import json

import numpy as np
import pytest

from refbert_tf import export
from refbert_tf.inference import LiteRTClassifier, ModelFileError


def test_four_variants_with_builtin_ops_and_cards(exported):
    assert set(exported) == set(export.VARIANTS)
    for variant, card in exported.items():
        assert not [op for op in card["ops"] if op.startswith("Flex") or "CUSTOM" in op], variant
        assert {"ARG_MAX", "FLOOR_MOD", "GATHER", "UNSORTED_SEGMENT_SUM"} <= set(card["ops"])  # in-graph retrieval
        on_disk = json.loads(open(card["path"][: -len(".tflite")] + ".json").read())
        assert on_disk["task"] == "sst2" and on_disk["labels"] == ["negative", "positive"]
        assert on_disk["label_values"] == ["0", "1"]
        assert on_disk["vocab_sha256"] and on_disk["max_seq_len"] == 32 and on_disk["variant"] == variant
        assert sorted(i["name"] for i in on_disk["inputs"]) == ["padding_mask", "segment_ids", "token_ids"]
        assert all(i["dtype"] == "int32" and i["shape"] == [1, -1] for i in on_disk["inputs"])
        assert on_disk["outputs"][0]["name"] == "logits" and on_disk["outputs"][0]["shape"] == [1, 2]
        assert on_disk["vocab_size"] == 30522
        assert on_disk["bank_size_mb"] > 0 and on_disk["dev_metrics"]["accuracy"] >= 0
    sizes = {v: c["size_mb"] for v, c in exported.items()}
    assert sizes["dynamic_int8"] < 0.5 * sizes["float32"] and sizes["float16"] < 0.6 * sizes["float32"]


def test_float32_matches_keras(student_run, exported):
    _, student, feats, _ = student_run
    parity = export.keras_parity(student, exported["float32"]["path"], feats, num_examples=30)
    assert parity["num_examples"] == 30
    assert parity["max_abs_diff"] < 1e-4 and parity["prediction_agreement"] == 1.0


def test_strip_bank_removes_the_reference_path(student_run, tmp_path):
    run, student, feats, _ = student_run
    plain = export.strip_bank(student)
    assert not plain.uses_reference
    np.testing.assert_array_equal(
        plain.get_layer("token_embedding").get_weights()[0], student.get_layer("token_embedding").get_weights()[0]
    )
    card = export.export_student(run, tmp_path, ["float32"], without_bank=True)[0]
    assert card["path"].endswith("sst2_refbert_no_bank_float32.tflite")
    assert "ARG_MAX" not in card["ops"] and card["bank_size_mb"] == 0
    with pytest.raises(ValueError, match="no reference bank"):
        export.strip_bank(plain)


def test_full_int8_needs_representative_data_and_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="representative"):
        export.convert(tmp_path, "full_int8")
    with pytest.raises(ValueError, match="unknown TFLite variant 'int4'"):
        export.convert(tmp_path, "int4")


def test_runner_rejects_bad_input(exported, tmp_path):
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(ModelFileError, match="is not a TFLite model"):
        LiteRTClassifier(not_tflite)
    with pytest.raises(ModelFileError, match="not found"):
        LiteRTClassifier(tmp_path / "missing.tflite")
    runner = LiteRTClassifier(exported["float32"]["path"])
    assert runner.vocab_size == 30522 and runner.max_seq_len == 32
    assert runner.predict([101, 2204, 102]).shape == (2,)
    with pytest.raises(ValueError, match="token id 30522 is outside the vocabulary"):
        runner.predict([101, 30522, 102])
    with pytest.raises(ValueError, match="longer than the model's max_seq_len 32"):
        runner.predict([101] + [2204] * 40 + [102])
    with pytest.raises(ValueError, match="empty input"):
        runner.predict([])
    with pytest.raises(FileNotFoundError, match="no model card"):
        export.read_card(tmp_path / "missing.tflite")


def test_representative_examples_are_unpadded_real_examples_of_one_length(student_run):
    _, _, feats, _ = student_run
    reps = export.representative_examples(feats, num_examples=15, length=12)
    assert len(reps) == 15
    lengths = feats["token_ids"].row_lengths().numpy()
    for r in reps:
        assert r["token_ids"].shape == r["segment_ids"].shape == r["padding_mask"].shape == (1, 12)
        assert r["padding_mask"].all() and r["token_ids"][0, 0] == 101 and r["token_ids"][0, -1] == 102
    default = export.representative_examples(feats, num_examples=5)
    assert default[0]["token_ids"].shape[1] % 8 == 0 or default[0]["token_ids"].shape[1] == lengths.max()
    with pytest.raises(ValueError, match="no training example has"):
        export.representative_examples({k: feats[k][:3] for k in ("token_ids", "segment_ids")}, length=10_000)


def test_full_int8_retrieval_stays_in_exact_integer_arithmetic(exported):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=exported["full_int8"]["path"])
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    argmax = [op for op in interpreter._get_ops_details() if op["op_name"] == "ARG_MAX"]
    assert len(argmax) == 1 and dtypes[argmax[0]["inputs"][0]] == np.int32  # scores not quantized to int8


def test_full_int8_attention_scores_keep_a_real_range_with_short_references(student_run, tmp_path):
    """The first block's softmax input must not be calibrated on the mask's large negative number: masked
    reference slots are trimmed away (ReferenceBankLayer). Before that, a masked slot set the int8 scale of the
    scores to ~4e6."""
    from ai_edge_litert.interpreter import Interpreter

    from refbert_tf.models.student import load_student

    run, _, feats, _ = student_run
    student, meta = load_student(run)
    mask = np.asarray(student.bank.representation_mask).copy()
    mask[:, -1] = 0  # every anchor one slot short
    student.bank.representation_mask.assign(mask)
    (card,) = export.export_model(
        student, meta, tmp_path, ("full_int8",), export.representative_examples(feats, num_examples=10), progress=False
    )
    interpreter = Interpreter(model_path=card["path"])
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    softmax_inputs = [details[op["inputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "SOFTMAX"]
    assert softmax_inputs
    for tensor in softmax_inputs:
        scale = tensor["quantization"][0]
        assert 0 < scale < 1.0, (tensor["name"], scale)


def test_exported_bank_is_projected_with_a_sparse_score_table(student_run, exported):
    from ai_edge_litert.interpreter import Interpreter

    _, student, _, _ = student_run
    bank = student.bank
    dense_table = (bank.num_buckets + 1, bank.num_anchors)
    teacher_width = (bank.num_anchors, bank.num_tokens, bank.teacher_dim)
    projected = (bank.num_anchors, bank.num_tokens, student.config_values["hidden_dim"])
    for variant, card in exported.items():
        interpreter = Interpreter(model_path=card["path"])
        shapes = {tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
        assert dense_table not in shapes and teacher_width not in shapes and projected in shapes, variant
    with student.export_constants():
        assert bank.projected_representations.shape == projected and bank.scorer.sparse_table is not None
    # undone on exit: the Keras student reads its weights again
    assert bank.projected_representations is None and bank.scorer.sparse_table is None
    assert 0 < export.bank_size_mb(student) < sum(np.asarray(w).size for w in bank.weights) * 4 / 2**20


def test_top_k_and_linear_norm_student_exports_with_builtins(student_run, tmp_path):
    """The ablation options stay exportable: top-k retrieval lowers to the builtin TOPK_V2 and the LayerNorm'd
    projection folds into the bank; the float32 file matches Keras."""
    from ai_edge_litert.interpreter import Interpreter
    from helpers import tiny_bert_backbone

    from refbert_tf.bank import build_bank
    from refbert_tf.models.student import build_student

    _, _, feats, _ = student_run
    bank = build_bank(
        tiny_bert_backbone(hidden_dim=24, intermediate_dim=48),
        feats,
        layer=-1,
        num_tokens=4,
        max_anchors=60,
        ignore_ids=(101, 102, 0),
        num_buckets=128,
        progress=False,
    )
    student = build_student(
        "tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, top_k=2, reference_projection="linear_norm"
    )
    flatbuffer, info = export.convert(export.export_saved_model(student, tmp_path / "saved"), "float32")
    assert "TOPK_V2" in info["ops"] and not [op for op in info["ops"] if op.startswith("Flex")]
    path = tmp_path / "topk.tflite"
    path.write_bytes(flatbuffer)
    runner = Interpreter(model_path=str(path))
    runner.allocate_tensors()
    signature = runner.get_signature_runner("serve")
    for i in range(10):
        ids = feats["token_ids"][i].numpy().astype(np.int32)[None]
        x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
        lite = signature(**x)["logits"]
        np.testing.assert_allclose(lite, np.asarray(student(x, training=False)), atol=1e-4)


@pytest.mark.parametrize("entry", ["early", "late"])
def test_dense_retrieval_student_exports_with_builtins_and_matches_keras(student_run, tmp_path, entry):
    """Dense retrieval in the file: cosine top-k over the anchors' teacher keys (TOPK_V2), their tokens (early) or
    teacher probabilities (late) gathered, all builtins; float32 matches Keras and dynamic-range int8 stays close."""
    from ai_edge_litert.interpreter import Interpreter
    from helpers import tiny_bert_backbone

    from refbert_tf.bank import build_bank
    from refbert_tf.bank.dense import DenseAnchors
    from refbert_tf.models.student import build_student

    _, _, feats, _ = student_run
    bank = build_bank(tiny_bert_backbone(hidden_dim=24, intermediate_dim=48), feats, layer=-1, num_tokens=4,
                      max_anchors=60, ignore_ids=(101, 102, 0), num_buckets=128, progress=False)  # fmt: skip
    rng = np.random.default_rng(0)
    train_keys = rng.normal(size=(120, 24)).astype(np.float32)
    probs = rng.dirichlet(np.ones(2), size=bank.num_anchors).astype(np.float32)
    dense = DenseAnchors(train_keys[bank.anchor_ids], probs, bank.anchor_ids, train_keys, "cls")
    student = build_student("tiny", 2, 30522, teacher_dim=24, bank=bank if entry == "early" else None,
                            max_sequence_length=64, dense=dense, dense_entry=entry, dense_top_k=4)  # fmt: skip
    assert export.bank_size_mb(student) > 0
    for variant in ("float32", "dynamic_int8"):
        flatbuffer, info = export.convert(export.export_saved_model(student, tmp_path / f"saved_{variant}"), variant)
        assert "TOPK_V2" in info["ops"] and not [op for op in info["ops"] if op.startswith("Flex")], info["ops"]
        path = tmp_path / f"{variant}.tflite"
        path.write_bytes(flatbuffer)
        signature = Interpreter(model_path=str(path)).get_signature_runner("serve")
        worst = 0.0
        for i in range(10):
            ids = np.asarray(feats["token_ids"][i], np.int32)[None]
            inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
            want = np.asarray(student(inputs))
            got = next(iter(signature(**inputs).values()))
            worst = max(worst, float(np.max(np.abs(got - want))))
        assert worst < (1e-4 if variant == "float32" else 0.1), (variant, worst)


def test_factorised_embeddings_export_with_builtins_and_match_keras(student_run, tmp_path):
    """A student with factorised embeddings (E < H) exports to a file with a [V, E] token table (the vocabulary
    size the runner reads from it) and an E x H projection; float32 matches Keras, and the dynamic-range file is
    smaller than the plain student's."""
    from refbert_tf.models.student import build_student

    _, _, feats, _ = student_run
    sizes = {}
    for e in (0, 8):
        student = build_student("tiny", 2, 30522, teacher_dim=24, max_sequence_length=64, embedding_dim=e)
        for variant in ("float32", "dynamic_int8"):
            flatbuffer, info = export.convert(export.export_saved_model(student, tmp_path / f"s{e}{variant}"), variant)
            assert not [op for op in info["ops"] if op.startswith("Flex")], info["ops"]
            path = tmp_path / f"e{e}_{variant}.tflite"
            path.write_bytes(flatbuffer)
            sizes[e, variant] = len(flatbuffer)
            runner = LiteRTClassifier(path, max_seq_len=32)
            assert runner.vocab_size == 30522
            if variant == "float32":
                for i in range(10):
                    ids = np.asarray(feats["token_ids"][i], np.int32)
                    x = {
                        "token_ids": ids[None],
                        "segment_ids": np.zeros_like(ids)[None],
                        "padding_mask": np.ones_like(ids)[None],
                    }
                    np.testing.assert_allclose(runner.predict(ids), np.asarray(student(x))[0], atol=1e-4)
    assert sizes[8, "dynamic_int8"] < sizes[0, "dynamic_int8"] * 0.5
