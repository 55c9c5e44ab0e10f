"""The stage-I model of mixed-vocabulary distillation (refbert_tf/models/mixed_vocabulary.py)."""

import keras
import numpy as np
import pytest
from helpers import tiny_bert_backbone

from refbert_tf.models.mixed_vocabulary import MixedVocabularyTeacher, svd_embedding_init
from refbert_tf.models.teacher import build_teacher
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.vocabulary import train_student_vocabulary

TEXTS = ["the film is a charming , funny and touching story", "a dull , lifeless and overlong mess of a movie",
         "unflinchingly bleak and desperate", "it 's a bold and brilliant piece of filmmaking"] * 30  # fmt: skip


@pytest.fixture(scope="module")
def student_tokenizer(tmp_path_factory):
    path = train_student_vocabulary(TEXTS, 120, tmp_path_factory.mktemp("vocab") / "vocab.txt", min_frequency=1)
    return BertWordPieceTokenizer(path)


def test_svd_init_is_the_teachers_rows_at_full_width_and_the_best_low_rank_fit_below(
    minilm_tokenizer, student_tokenizer
):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(minilm_tokenizer.vocab_size, 16)).astype(np.float32)
    s, w, shared = svd_embedding_init(minilm_tokenizer, student_tokenizer, table, 16)
    index = {t: i for i, t in enumerate(minilm_tokenizer.vocab)}
    rows = s @ w
    for j, piece in enumerate(student_tokenizer.vocab):
        if piece in index:
            np.testing.assert_allclose(rows[j], table[index[piece]], atol=1e-6)
    assert 0.5 < shared <= 1.0
    s4, w4, _ = svd_embedding_init(minilm_tokenizer, student_tokenizer, table, 4)
    assert s4.shape == (student_tokenizer.vocab_size, 4) and w4.shape == (4, 16)
    singular = np.linalg.svd(rows, compute_uv=False)  # Eckart-Young: the residual is the dropped spectrum
    assert np.linalg.norm(rows - s4 @ w4) == pytest.approx(np.sqrt(np.sum(singular[4:] ** 2)), rel=1e-4)
    with pytest.raises(ValueError, match="rows"):
        svd_embedding_init(minilm_tokenizer, student_tokenizer, table[:10], 4)


def test_the_stage_two_teacher_computes_the_mixed_model_on_student_pieces(minilm_tokenizer, student_tokenizer):
    keras.utils.set_random_seed(0)
    teacher = build_teacher(tiny_bert_backbone(hidden_dim=16, intermediate_dim=32), "sst2")
    teacher_before = [w.copy() for w in teacher.get_weights()]
    model = MixedVocabularyTeacher(teacher, student_tokenizer.vocab_size, 8, kd_weight=0.5)
    table = keras.ops.convert_to_numpy(teacher.backbone.token_embedding.embeddings)
    model.set_student_table(*svd_embedding_init(minilm_tokenizer, student_tokenizer, table, 8)[:2])
    own = minilm_tokenizer(TEXTS[:4], max_seq_len=16)
    np.testing.assert_allclose(model(own), teacher(own), atol=1e-5)  # the teacher's own ids: the teacher

    student_inputs = student_tokenizer(TEXTS[:4], max_seq_len=16)
    offset = dict(student_inputs)
    v_t = minilm_tokenizer.vocab_size
    offset["token_ids"] = np.where(student_inputs["padding_mask"] == 1, student_inputs["token_ids"] + v_t, 0)
    stage2 = model.student_vocabulary_teacher()
    assert stage2.backbone.vocabulary_size == student_tokenizer.vocab_size
    assert type(stage2.backbone) is type(teacher.backbone)
    np.testing.assert_allclose(stage2(student_inputs), model(offset), atol=1e-5)

    # as stage I trains (p = 1): student pieces packed with the teacher's [CLS] / [SEP] / [PAD], whose rows the
    # stage-II teacher then takes from the teacher's own table
    from refbert_tf.pipelines.mixed_vocabulary import packing_rows

    rows = packing_rows(student_tokenizer, minilm_tokenizer)
    ids = student_inputs["token_ids"]
    packed = dict(student_inputs, token_ids=np.select([ids == s for s in rows], list(rows.values()), ids + v_t))
    assert (packed["token_ids"][:, 0] == minilm_tokenizer.cls_id).all()
    stage2 = model.student_vocabulary_teacher(rows)
    np.testing.assert_allclose(stage2(student_inputs), model(packed), atol=1e-5)
    assert not np.allclose(stage2(student_inputs), model(offset), atol=1e-5)  # the rows matter
    with pytest.raises(ValueError, match="packing row 999 -> 101 outside the vocabularies"):
        model.student_vocabulary_teacher({999: 101})

    # --no-train-teacher: a training step moves the new table, not the teacher
    frozen = MixedVocabularyTeacher(teacher, student_tokenizer.vocab_size, 8, train_teacher=False)
    frozen.compile(optimizer=keras.optimizers.Adam(1e-2))
    table_before = keras.ops.convert_to_numpy(frozen.student_embedding.embeddings).copy()
    frozen.fit(offset, {"label": np.array([1, 0, 0, 1]), "teacher_logits": np.zeros((4, 2), np.float32)}, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(teacher_before, teacher.get_weights()))
    assert not np.allclose(keras.ops.convert_to_numpy(frozen.student_embedding.embeddings), table_before)
    with pytest.raises(ValueError, match="kd_weight"):
        MixedVocabularyTeacher(teacher, 10, 8, kd_weight=1.5)
