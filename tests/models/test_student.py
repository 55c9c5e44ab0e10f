import keras
import numpy as np
import pytest
from helpers import run_model_saving_test, tiny_bert_backbone

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
    loaded = run_model_saving_test(student, _inputs(feats), tmp_path)
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


def test_narrow_presets_prune_from_a_minilm_shaped_teacher_and_shrink_with_the_vocabulary():
    from types import SimpleNamespace

    from refbert_tf.models.pruning import pruning_misfit

    minilm = SimpleNamespace(vocabulary_size=8192, num_heads=12, hidden_dim=384, intermediate_dim=1536, num_layers=6)
    sizes = {}
    for preset in ("tinybert4", "tinybert4_h240", "tinybert4_h192"):
        shape = STUDENT_PRESETS[preset]
        assert shape["hidden_dim"] % shape["num_heads"] == 0
        student = build_student(preset, 2, 8192, teacher_dim=384, max_sequence_length=128)
        assert pruning_misfit(student, minilm) is None, preset
        sizes[preset] = student.count_params()
    assert sizes["tinybert4"] > sizes["tinybert4_h240"] > sizes["tinybert4_h192"]
    # an 8k vocabulary at 312 wide: 2.6M embedding parameters instead of 9.5M, 4.6M in the four blocks
    assert 7.0e6 < sizes["tinybert4"] < 7.5e6


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
    loaded = run_model_saving_test(student, x, tmp_path, training=False)
    assert loaded.config_values["reference_projection"] == "linear_norm"
    assert not export.strip_bank(student).uses_reference
    with pytest.raises(ValueError, match="unknown reference_projection 'mlp'"):
        build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, reference_projection="mlp")


def test_factorised_embeddings_shrink_the_table_and_reload(small_bank, tmp_path):
    """embedding_dim E < H: a [V, E] table and an E x H projection (ALBERT), V x E + E x H + H parameters in place
    of V x H; E = H is the plain table; E outside 1..H is refused, naming the width."""
    bank, feats = small_bank
    plain = build_student("tinybert4", 2, 8192, teacher_dim=24, max_sequence_length=64)
    factorised = build_student("tinybert4", 2, 8192, teacher_dim=24, max_sequence_length=64, embedding_dim=128)
    assert factorised.token_embedding.embeddings.shape == (8192, 128)
    assert factorised.embedding_projection.kernel.shape == (128, 312)
    assert plain.count_params() - factorised.count_params() == 8192 * 312 - (8192 * 128 + 128 * 312 + 312)
    same = build_student("tinybert4", 2, 8192, teacher_dim=24, max_sequence_length=64, embedding_dim=312)
    assert same.embedding_projection is None and same.count_params() == plain.count_params()
    with pytest.raises(ValueError, match=r"embedding_dim must be in 1..hidden_dim \(312\), got 400"):
        build_student("tinybert4", 2, 8192, teacher_dim=24, embedding_dim=400)
    refbert = build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, embedding_dim=8)
    run_model_saving_test(refbert, _inputs(feats), tmp_path)
