import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import Interrupt, tiny_bert_backbone

from refbert_tf.bank import build_bank
from refbert_tf.data import make_dataset, read_glue_tsv
from refbert_tf.distillation import (
    PREDICTION_LOSSES,
    Distiller,
    attention_mse,
    layer_map,
    logit_mse,
    masked_mse,
    query_cosine_loss,
    soft_cross_entropy,
)
from refbert_tf.models.student import build_student
from refbert_tf.models.teacher import build_teacher


def test_masked_mse_by_hand():
    s = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])
    # only position 0 is real: mean(1^2, 2^2) = 2.5
    assert float(masked_mse(s, tf.zeros_like(s), tf.constant([[1, 0]]))) == pytest.approx(2.5)
    assert float(masked_mse(s, tf.zeros_like(s), tf.constant([[1, 1]]))) == pytest.approx((2.5 + 12.5) / 2)


def test_query_cosine_loss_by_hand():
    """Dense retrieval's query loss: mean of 1 - cos over the batch, blind to the norms of query and key."""
    query, key = tf.constant([[1.0, 0.0], [0.0, 2.0]]), tf.constant([[1.0, 1.0], [0.0, -3.0]])
    want = ((1.0 - 1.0 / math.sqrt(2.0)) + (1.0 - (-1.0))) / 2  # cos 45 degrees, then opposite directions
    assert float(query_cosine_loss(query, key)) == pytest.approx(want, abs=1e-6)
    assert float(query_cosine_loss(5.0 * query, 0.1 * key)) == pytest.approx(want, abs=1e-6)
    assert float(query_cosine_loss(key, key)) == pytest.approx(0.0, abs=1e-6)


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


def test_logit_mse_by_hand_and_the_losses_by_name():
    import dataclasses

    from refbert_tf.config import DistillConfig

    student, teacher = tf.constant([[1.0, 2.0], [0.0, 0.0]]), tf.constant([[0.0, 0.0], [3.0, 0.0]])
    assert float(logit_mse(student, teacher, temperature=5.0)) == pytest.approx((1 + 4 + 9 + 0) / 4)
    field = {f.name: f for f in dataclasses.fields(DistillConfig)}["prediction_loss"]
    assert set(field.metadata["choices"]) == set(PREDICTION_LOSSES)  # the config offers what the Distiller knows


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
    teacher = build_teacher(tiny_bert_backbone(num_layers=4, hidden_dim=24, intermediate_dim=48), "sst2")
    kernel, bias = teacher.output_dense.get_weights()
    teacher.output_dense.set_weights([kernel * 200.0, bias])  # confident logits: a target worth distilling
    bank = build_bank(
        teacher.backbone,
        feats,
        layer=1,
        num_tokens=4,
        max_anchors=64,
        ignore_ids=(tok.cls_id, tok.sep_id, tok.pad_id),
        num_buckets=128,
        progress=False,
    )
    return ex, feats, teacher, bank


def _student(bank):
    """A tiny student (the ``tiny`` preset) with the bank's arrays loaded, or a vanilla one."""
    return build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, dropout=0.0)


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
    with pytest.raises(ValueError, match="unknown prediction_loss 'kl'; use one of soft_ce, mse"):
        Distiller(teacher, _student(None), prediction_loss="kl")


def test_the_mse_prediction_loss_is_the_one_trained(tiny_setup):
    ex, feats, teacher, _ = tiny_setup
    distiller = Distiller(teacher, _student(None), stage="prediction", prediction_loss="mse")
    inputs = {k: feats[k][:8].to_tensor() for k in ("token_ids", "segment_ids")}
    inputs["padding_mask"] = tf.cast(inputs["token_ids"] > 0, tf.int32)
    losses = distiller.distillation_losses(
        distiller.student.call_with_features(inputs), distiller.teacher_features(inputs), inputs["padding_mask"]
    )
    student_logits = distiller.student(inputs)
    expected = logit_mse(student_logits, distiller.teacher_features(inputs)["logits"])
    assert float(losses["prediction"]) == pytest.approx(float(expected), rel=1e-5)


def test_interrupted_distillation_resumes(tiny_setup, tmp_path):
    from refbert_tf.training import run_fit

    ex, feats, teacher, bank = tiny_setup
    ref, _ = bank.references_for(feats, exclude_self=True)
    features = {
        "token_ids": feats["token_ids"],
        "segment_ids": feats["segment_ids"],
        "reference_index": tf.constant(ref.astype(np.int32)),
    }
    ds = make_dataset(features, ex.labels, batch_size=16, shuffle=True, repeat=True)

    def distiller():
        keras.utils.set_random_seed(2)
        d = Distiller(teacher, _student(bank))
        d.compile(optimizer=keras.optimizers.Adam(1e-3))
        return d

    first = distiller()
    with pytest.raises(KeyboardInterrupt):
        run_fit(
            first, ds, intervals=4, steps_per_interval=3, backup_dir=tmp_path / "b", callbacks=[Interrupt(8)], verbose=0
        )
    assert int(first.optimizer.iterations) == 8
    resumed, counter = distiller(), Interrupt(-1)
    run_fit(resumed, ds, intervals=4, steps_per_interval=3, backup_dir=tmp_path / "b", callbacks=[counter], verbose=0)
    # checkpoints after steps 3 and 6: the resumed run restores step 6 and does the remaining 6
    assert int(resumed.optimizer.iterations) == 12 and counter.seen == 6
    np.testing.assert_array_equal(np.asarray(resumed.student.bank.keys), bank.keys)


def test_general_distillation_with_a_backbone_teacher_on_unlabeled_batches(tiny_setup):
    ex, feats, teacher, _ = tiny_setup
    keras.utils.set_random_seed(1)
    ds = make_dataset(
        {"token_ids": feats["token_ids"], "segment_ids": feats["segment_ids"]}, None, batch_size=64, shuffle=False
    ).cache()  # inputs only: no labels
    distiller = Distiller(teacher.backbone, _student(None), stage="intermediate")
    assert [m.name for m in distiller.metrics] == ["total_loss", "distillation_loss"]
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = distiller.fit(ds, epochs=15, verbose=0).history
    assert "student_loss" not in hist
    assert hist["distillation_loss"][-1] < 0.5 * hist["distillation_loss"][0], hist
    # same losses as task distillation's intermediate stage from the classifier that wraps this backbone
    batch = next(iter(ds))
    student_out = distiller.student.call_with_features(batch, training=False)
    general = distiller.distillation_losses(student_out, distiller.teacher_features(batch), batch["padding_mask"])
    task = Distiller(teacher, distiller.student, stage="intermediate")
    task.fit_dense.set_weights(distiller.fit_dense.get_weights())
    expected = task.distillation_losses(student_out, task.teacher_features(batch), batch["padding_mask"])
    assert float(general["distillation_loss"]) == pytest.approx(float(expected["distillation_loss"]), rel=1e-6)
    with pytest.raises(ValueError, match="no logits"):
        distiller.set_stage("prediction")
