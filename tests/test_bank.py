import numpy as np
import pytest

from refbert_tf.bank import (BankError, ReferenceBank, build_bank, reference_label_agreement, resolve_layer,
                             select_anchors, teacher_layer_model)
from refbert_tf.data import read_glue_tsv
from helpers import tiny_bert_backbone


@pytest.fixture(scope="module")
def bank_and_features(glue_dir, minilm_tokenizer):
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(200)
    feats = tok.encode(train.text_a, max_seq_len=64)
    bank = build_bank(tiny_bert_backbone(), feats, layer=1, num_tokens=6, max_anchors=50, batch_size=64,
                      ignore_ids=(tok.cls_id, tok.sep_id, tok.pad_id), num_buckets=256,
                      metadata={"task": "sst2", "teacher": "tiny", "vocab_sha256": tok.vocab_sha256},
                      progress=False)
    return bank, feats


def test_bank_shapes_and_cap(bank_and_features):
    bank, feats = bank_and_features
    assert 0 < bank.num_anchors <= 50 and bank.num_tokens == 6
    assert bank.representations.shape == (bank.num_anchors, 6, 32)
    assert bank.keys.shape == (bank.num_anchors, 256)
    lengths = feats["token_ids"].row_lengths().numpy()[bank.anchor_ids]
    np.testing.assert_array_equal(bank.representation_mask.sum(1), np.minimum(lengths, 6))
    assert np.all(bank.representations[bank.representation_mask == 0] == 0)


def test_save_load_round_trip(bank_and_features, tmp_path):
    bank, _ = bank_and_features
    loaded = ReferenceBank.load(bank.save(tmp_path / "bank"))
    for name in ("representations", "representation_mask", "keys", "anchor_ids"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(bank, name))
    np.testing.assert_array_equal(loaded.index.idf, bank.index.idf)
    assert loaded.layer == 1 and loaded.metadata == bank.metadata


def test_training_references_exclude_self(bank_and_features):
    bank, feats = bank_and_features
    ref, _ = bank.references_for(feats, exclude_self=True)
    assert not np.any(bank.anchor_ids[ref] == np.arange(len(ref)))


def test_bad_banks(bank_and_features, tmp_path):
    bank, feats = bank_and_features
    with pytest.raises(BankError, match="empty"):
        ReferenceBank(bank.representations[:0], bank.representation_mask[:0], bank.keys[:0],
                      bank.anchor_ids[:0], bank.index, 1, {})
    with pytest.raises(BankError, match="vocab_sha256=.* but this run uses 'other'"):
        bank.check_compatible(vocab_sha256="other")
    with pytest.raises(BankError, match="teacher='tiny'"):
        bank.check_compatible(teacher_id="bert-base")
    with pytest.raises(BankError, match="no reference bank in"):
        ReferenceBank.load(tmp_path / "nothing")
    with pytest.raises(BankError, match="0 training examples"):
        build_bank(tiny_bert_backbone(), {k: v[:0] for k, v in feats.items() if k != "num_truncated"},
                   ignore_ids=(101, 102, 0), progress=False)
    with pytest.raises(ValueError, match="teacher layer must be in 0..2"):
        teacher_layer_model(tiny_bert_backbone(), 3)


def test_select_anchors():
    keys = np.random.default_rng(0).random((100, 8)).astype(np.float32)
    assert select_anchors(keys, 200).tolist() == list(range(100))
    chosen = select_anchors(keys, 10)
    assert 0 < len(chosen) <= 10 and len(set(chosen.tolist())) == len(chosen)


def test_reference_label_agreement_by_hand(bank_and_features):
    bank, feats = bank_and_features
    labels = np.arange(200) % 2  # arbitrary labels: the check is the bookkeeping, not the value
    r = reference_label_agreement(bank, feats, labels, labels, exclude_self=True)
    index, similarity = bank.references_for(feats, exclude_self=True)
    by_hand = 100 * np.mean(labels[bank.anchor_ids[index]] == labels)
    assert r["agreement"] == round(by_hand, 2) and r["majority_class"] == 50.0
    assert r["mean_similarity"] == round(float(similarity.mean()), 4)


def test_negative_layers_count_from_the_top():
    backbone = tiny_bert_backbone(num_layers=2)
    assert [resolve_layer(backbone, x) for x in (-1, -3, 0, 2)] == [2, 0, 0, 2]
    with pytest.raises(ValueError, match="teacher layer must be in 0..2"):
        resolve_layer(backbone, 3)
