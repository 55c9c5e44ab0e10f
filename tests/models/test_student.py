import keras
import numpy as np
import pytest
from helpers import tiny_bert_backbone

from refbert_tf.bank import build_bank
from refbert_tf.data import read_glue_tsv
from refbert_tf.models.student import STUDENT_PRESETS, ReferenceTransformerEncoder, build_student


def test_all_masked_reference_equals_plain_attention():
    keras.utils.set_random_seed(0)
    block = ReferenceTransformerEncoder(num_heads=4, intermediate_dim=32, dropout=0.0)
    x = np.random.default_rng(0).normal(size=(3, 7, 16)).astype(np.float32)
    mask = np.ones((3, 7), np.int32)
    mask[1, 5:] = 0
    ref = np.random.default_rng(1).normal(size=(3, 4, 16)).astype(np.float32) * 10
    plain = np.asarray(block(x, padding_mask=mask))
    masked = np.asarray(block(x, padding_mask=mask, reference=ref, reference_mask=np.zeros((3, 4), np.int32)))
    np.testing.assert_allclose(masked, plain, atol=1e-5)
    visible = np.asarray(block(x, padding_mask=mask, reference=ref, reference_mask=np.ones((3, 4), np.int32)))
    assert np.abs(visible - plain).max() > 1e-2  # the reference does change the output when visible


@pytest.fixture(scope="module")
def small_bank(glue_dir, minilm_tokenizer):
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(120)
    feats = tok.encode(train.text_a, max_seq_len=32)
    teacher = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)
    bank = build_bank(
        teacher, feats, layer=2, num_tokens=4, max_anchors=60, ignore_ids=(101, 102, 0), num_buckets=128, progress=False
    )
    return bank, feats


def _inputs(feats, n=8):
    ids = feats["token_ids"][:n].to_tensor(0)
    return {
        "token_ids": ids,
        "segment_ids": feats["segment_ids"][:n].to_tensor(0),
        "padding_mask": keras.ops.cast(feats["token_ids"][:n].to_tensor(-1) >= 0, "int32"),
    }


def test_in_graph_retrieval_equals_offline_choice(small_bank):
    bank, feats = small_bank
    student = build_student("tinybert4", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64)
    x = _inputs(feats)
    offline, _ = bank.references_for({"token_ids": feats["token_ids"][:8]})
    np.testing.assert_array_equal(np.asarray(student.bank.retrieve(x["token_ids"], x["padding_mask"])), offline)
    logits = np.asarray(student(x, training=False))
    with_index = np.asarray(student({**x, "reference_index": offline.astype(np.int32)}, training=False))
    np.testing.assert_allclose(logits, with_index, atol=1e-6)
    feats_out = student.call_with_features(x)
    assert len(feats_out["hidden_states"]) == 4 and feats_out["attention_logits"][0].shape[1] == 12


def test_reference_is_trimmed_to_the_longest_valid_prefix_without_changing_logits(small_bank):
    import tensorflow as tf

    bank, feats = small_bank
    student = build_student("tinybert4", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64)
    lengths = bank.representation_mask.sum(axis=1).astype(int)
    short = np.flatnonzero(lengths < bank.num_tokens)
    assert short.size and np.all(bank.representation_mask[:, :1] == 1)  # the slice has short anchors
    reference, mask = student.bank(tf.constant(short[:3], tf.int32))
    assert reference.shape[1] == mask.shape[1] == lengths[short[:3]].max() < bank.num_tokens
    x = _inputs(feats)
    index = tf.constant(np.resize(short, 8), tf.int32)
    trimmed = np.asarray(student({**x, "reference_index": index}, training=False))
    layer = student.bank
    layer.call = lambda i: (tf.gather(layer.representations, i), tf.gather(layer.representation_mask, i))
    untrimmed = np.asarray(student({**x, "reference_index": index}, training=False))
    np.testing.assert_allclose(trimmed, untrimmed, atol=1e-5)


def test_student_save_load_round_trip(small_bank, tmp_path):
    bank, feats = small_bank
    student = build_student("tinybert4", 3, 30522, teacher_dim=24, bank=bank, max_sequence_length=64)
    student.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    x = _inputs(feats)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(student(x)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.bank.keys), bank.keys)


def test_presets_and_errors(small_bank):
    bank, _ = small_bank
    vanilla = build_student("tinybert4", 2, 30522, teacher_dim=384)
    # TinyBERT-4 is ~14.5M parameters: embeddings 30522*312 + 4 blocks + pooler/head
    assert 14.0e6 < vanilla.count_params() < 15.0e6 and not vanilla.uses_reference
    assert STUDENT_PRESETS["tinybert6"]["hidden_dim"] == 768
    with pytest.raises(ValueError, match="unknown student preset 'tinybert5'"):
        build_student("tinybert5", 2, 30522, teacher_dim=24)
    with pytest.raises(ValueError, match="24-wide teacher states, but the teacher is 384 wide"):
        build_student("tinybert4", 2, 30522, teacher_dim=384, bank=bank)


def test_init_from_teacher_copies_mapped_layers():
    from refbert_tf.models.student import RefBertStudent, init_student_from_teacher

    teacher = tiny_bert_backbone(
        num_layers=4, hidden_dim=16, intermediate_dim=32, vocabulary_size=100, max_sequence_length=32
    )
    student = RefBertStudent(
        100,
        2,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=32,
        teacher_dim=16,
        dropout=0.0,
    )
    x = {
        "token_ids": np.array([[1, 5, 7, 2]], np.int32),
        "segment_ids": np.zeros((1, 4), np.int32),
        "padding_mask": np.ones((1, 4), np.int32),
    }
    student(x)
    init_student_from_teacher(student, teacher, [2, 4])
    for block, t in zip(student.blocks, [2, 4]):
        for a, b in zip(block.get_weights(), teacher.get_layer(f"transformer_layer_{t - 1}").get_weights()):
            np.testing.assert_array_equal(a, b)
    wide = RefBertStudent(
        100, 2, num_layers=2, hidden_dim=8, num_heads=2, intermediate_dim=32, max_sequence_length=32, teacher_dim=16
    )
    wide(x)
    with pytest.raises(ValueError, match="needs equal widths"):
        init_student_from_teacher(wide, teacher, [2, 4])


def test_init_from_general_student_copies_the_encoder_and_checks_shape_and_vocabulary(tmp_path):
    import json

    from refbert_tf.io_utils import write_json
    from refbert_tf.models.student import RefBertStudent, init_student_from_general

    x = {
        "token_ids": np.array([[1, 5, 7, 2]], np.int32),
        "segment_ids": np.zeros((1, 4), np.int32),
        "padding_mask": np.ones((1, 4), np.int32),
    }
    shape = dict(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32, teacher_dim=16, dropout=0.0)
    general = RefBertStudent(100, 1, max_sequence_length=64, **shape)
    general(x)
    general.save(tmp_path / "student.keras")
    (tmp_path / "vocab.txt").write_text("x\n")
    write_json(tmp_path / "student.json", {"model": "general", "vocab_sha256": "a" * 64})
    student = RefBertStudent(100, 3, max_sequence_length=32, **shape)
    student(x)
    head = student.classifier.get_weights()
    meta = init_student_from_general(student, tmp_path, "a" * 64)
    assert meta["model"] == "general"
    for mine, theirs in zip(student.blocks, general.blocks):
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(student.token_embedding.get_weights()[0], general.token_embedding.get_weights()[0])
    np.testing.assert_array_equal(
        student.position_embedding.get_weights()[0], general.position_embedding.get_weights()[0][:32]
    )
    for a, b in zip(student.classifier.get_weights(), head):  # the task head stays as it was
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not the teacher's vocabulary"):
        init_student_from_general(student, tmp_path, "b" * 64)
    narrow = RefBertStudent(100, 3, max_sequence_length=32, **{**shape, "intermediate_dim": 16})
    narrow(x)
    with pytest.raises(ValueError, match="same --student preset"):
        init_student_from_general(narrow, tmp_path, "a" * 64)
    with pytest.raises(FileNotFoundError, match="missing student.keras"):
        init_student_from_general(student, tmp_path / "nothing", "a" * 64)
    assert json.loads((tmp_path / "student.json").read_text())["model"] == "general"


def test_init_embeddings_from_teacher_projects_by_pca():
    from sklearn.decomposition import PCA

    from refbert_tf.models.student import RefBertStudent, init_student_embeddings_from_teacher

    keras.utils.set_random_seed(3)
    teacher = tiny_bert_backbone(
        num_layers=2, hidden_dim=16, intermediate_dim=32, vocabulary_size=100, max_sequence_length=32
    )
    # teacher token embeddings of rank 8: an 8-wide student keeps them exactly, up to the basis
    rng = np.random.default_rng(0)
    low_rank = (rng.normal(size=(100, 8)) @ rng.normal(size=(8, 16))).astype(np.float32)
    teacher.get_layer("token_embedding").set_weights([low_rank])
    student = RefBertStudent(
        100,
        2,
        num_layers=1,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=16,
        max_sequence_length=24,
        teacher_dim=16,
        dropout=0.0,
    )
    x = {
        "token_ids": np.array([[1, 5, 7, 2]], np.int32),
        "segment_ids": np.zeros((1, 4), np.int32),
        "padding_mask": np.ones((1, 4), np.int32),
    }
    student(x)
    basis = init_student_embeddings_from_teacher(student, teacher)
    assert basis.shape == (8, 16)
    np.testing.assert_allclose(basis @ basis.T, np.eye(8), atol=1e-5)
    tokens = student.token_embedding.get_weights()[0]
    np.testing.assert_allclose(tokens @ basis, low_rank, atol=1e-4)  # nothing lost: rank 8 in 8 directions
    np.testing.assert_allclose(np.abs(basis), np.abs(PCA(8).fit(low_rank.astype(np.float64)).components_), atol=1e-4)
    positions = teacher.get_layer("position_embedding").get_weights()[0]
    np.testing.assert_allclose(student.position_embedding.get_weights()[0], positions[:24] @ basis.T, atol=1e-6)
    segments = teacher.get_layer("segment_embedding").get_weights()[0]
    np.testing.assert_allclose(student.segment_embedding.get_weights()[0], segments[:2] @ basis.T, atol=1e-6)
    other_vocab = RefBertStudent(
        90, 2, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16, max_sequence_length=24, teacher_dim=16
    )
    other_vocab({**x})
    with pytest.raises(ValueError, match="vocabulary"):
        init_student_embeddings_from_teacher(other_vocab, teacher)
    wider = RefBertStudent(
        100, 2, num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=16, max_sequence_length=24, teacher_dim=16
    )
    wider(x)
    with pytest.raises(ValueError, match="exceeds the teacher"):
        init_student_embeddings_from_teacher(wider, teacher)


def test_top_k_student_reads_the_k_best_references(small_bank):
    bank, feats = small_bank
    student = build_student("tinybert4", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, top_k=2)
    x = _inputs(feats)
    offline, _ = bank.references_for({"token_ids": feats["token_ids"][:8]}, top_k=2)
    on_device = np.asarray(student.bank.retrieve(x["token_ids"], x["padding_mask"]))
    assert on_device.shape == (8, 2)
    np.testing.assert_array_equal(on_device, offline)
    reference, mask = student.bank(on_device)
    assert reference.shape[1] == mask.shape[1] <= 2 * bank.num_tokens
    # slot r of reference j is token r of anchor j
    np.testing.assert_allclose(np.asarray(reference)[:, : bank.num_tokens], bank.representations[offline[:, 0]])
    with_index = np.asarray(student({**x, "reference_index": offline.astype(np.int32)}, training=False))
    np.testing.assert_allclose(np.asarray(student(x, training=False)), with_index, atol=1e-6)
    too_many = bank.num_anchors + 1
    with pytest.raises(ValueError, match=f"top_k={too_many} must be between 1 and the bank's {bank.num_anchors} "):
        build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, top_k=too_many)


def test_linear_norm_projection_folds_and_reloads(small_bank, tmp_path):
    from refbert_tf import export

    bank, feats = small_bank
    student = build_student(
        "tinybert4", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, reference_projection="linear_norm"
    )
    x = _inputs(feats)
    logits = np.asarray(student(x, training=False))
    projected = np.asarray(student.project_reference(bank.representations[:2]))
    np.testing.assert_allclose(projected.mean(-1), 0.0, atol=1e-5)  # LayerNorm'd (gamma 1, beta 0 at init)
    with student.export_constants():
        np.testing.assert_allclose(np.asarray(student(x, training=False)), logits, atol=1e-5)
    student.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), logits, atol=1e-6)
    assert loaded.config_values["reference_projection"] == "linear_norm"
    assert not export.strip_bank(student).uses_reference
    with pytest.raises(ValueError, match="unknown reference_projection 'mlp'"):
        build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, reference_projection="mlp")
