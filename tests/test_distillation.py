import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from refbert_tf.bank import build_bank
from refbert_tf.data import get_task, make_dataset, read_glue_tsv
from refbert_tf.distillation import Distiller, attention_mse, layer_map, masked_mse, soft_cross_entropy
from refbert_tf.models.backbone import BertBackbone
from refbert_tf.models.student import RefBertStudent
from refbert_tf.models.teacher import build_teacher


def test_masked_mse_by_hand():
    s = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])
    # only position 0 is real: mean(1^2, 2^2) = 2.5
    assert float(masked_mse(s, tf.zeros_like(s), tf.constant([[1, 0]]))) == pytest.approx(2.5)
    assert float(masked_mse(s, tf.zeros_like(s), tf.constant([[1, 1]]))) == pytest.approx((2.5 + 12.5) / 2)


def test_attention_mse_by_hand():
    s = np.zeros((1, 2, 2, 2), np.float32)
    s[0, 0, 0, 0], s[0, 1, 0, 0] = 1.0, 3.0  # the only real (query, key) pair is (0, 0)
    s[0, :, 1, :] = 100.0  # padded query: ignored
    loss = attention_mse(tf.constant(s), tf.zeros((1, 2, 2, 2)), tf.constant([[1, 0]]))
    assert float(loss) == pytest.approx((1.0 + 9.0) / 2)


def test_soft_cross_entropy_by_hand():
    student, teacher = tf.constant([[math.log(3.0), 0.0]]), tf.constant([[0.0, 0.0]])
    # target (0.5, 0.5); student probabilities (3/4, 1/4)
    assert float(soft_cross_entropy(student, teacher)) == pytest.approx(-0.5 * (math.log(0.75) + math.log(0.25)))
    # temperature 2: student probabilities sqrt(3)/(sqrt(3)+1), 1/(sqrt(3)+1)
    r3 = math.sqrt(3.0)
    expected = -0.5 * (math.log(r3 / (r3 + 1)) + math.log(1 / (r3 + 1)))
    assert float(soft_cross_entropy(student, teacher, temperature=2.0)) == pytest.approx(expected, rel=1e-6)


def test_layer_map():
    assert layer_map(4, 12) == [3, 6, 9, 12]
    assert layer_map(4, 6) == [2, 3, 5, 6]
    assert layer_map(6, 6) == [1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def tiny_setup(glue_dir, minilm_tokenizer):
    keras.utils.set_random_seed(0)
    tok = minilm_tokenizer
    ex = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(64)
    feats = tok.encode(ex.text_a, max_seq_len=32)
    teacher = build_teacher(BertBackbone(vocabulary_size=30522, num_layers=4, num_heads=2, hidden_dim=24,
                                         intermediate_dim=48, max_sequence_length=64, hidden_activation="gelu"),
                            "sst2")
    bank = build_bank(teacher.backbone, feats, layer=1, num_tokens=4, max_anchors=64,
                      ignore_ids=(tok.cls_id, tok.sep_id, tok.pad_id), num_buckets=128, progress=False)
    return ex, feats, teacher, bank


def _student(bank):
    bank_config = None
    if bank is not None:
        bank_config = dict(num_anchors=bank.num_anchors, num_tokens=bank.num_tokens, teacher_dim=24,
                           num_buckets=bank.index.num_buckets, idf=bank.index.idf.tolist(),
                           ignore_ids=list(bank.index.ignore_ids))
    return RefBertStudent(30522, 2, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                          max_sequence_length=64, teacher_dim=24, bank_config=bank_config, dropout=0.0)


@pytest.mark.parametrize("use_reference", [True, False])
def test_train_step_lowers_the_loss(tiny_setup, use_reference):
    ex, feats, teacher, bank = tiny_setup
    keras.utils.set_random_seed(1)
    student = _student(bank if use_reference else None)
    features = {"token_ids": feats["token_ids"], "segment_ids": feats["segment_ids"]}
    if use_reference:
        ref, _ = bank.references_for(feats, exclude_self=True)
        features["reference_index"] = tf.constant(ref.astype(np.int32))
    ds = make_dataset(features, ex.labels, batch_size=64, shuffle=False).cache()
    distiller = Distiller(teacher, student, stage="intermediate")
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = distiller.fit(ds, epochs=15, verbose=0).history["total_loss"]
    assert hist[-1] < 0.5 * hist[0], hist
    distiller.set_stage("prediction")
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = distiller.fit(ds, epochs=15, verbose=0).history["distillation_loss"]
    assert hist[-1] < hist[0], hist


def test_unknown_stage(tiny_setup):
    _, _, teacher, _ = tiny_setup
    with pytest.raises(ValueError, match="unknown distillation stage 'final'"):
        Distiller(teacher, _student(None), stage="final")
