import keras
import keras_hub
import numpy as np
import pytest

from tests.helpers import tiny_bert_backbone


def _inputs(n=6, length=10, vocab=100, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((n, length), np.int32)
    mask[::2, length // 2 :] = 0  # half the rows padded
    return {
        "token_ids": (rng.integers(3, vocab, (n, length)) * mask).astype(np.int32),
        "segment_ids": np.zeros((n, length), np.int32),
        "padding_mask": mask,
    }


def _teacher(num_classes=2, hidden_dim=32):
    keras.utils.set_random_seed(5)
    backbone = tiny_bert_backbone(
        num_layers=2,
        hidden_dim=hidden_dim,
        intermediate_dim=64,
        vocabulary_size=100,
        max_sequence_length=32,
        dropout=0.0,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=None, dropout=0.0
    )


def _student(hidden_dim, intermediate_dim, num_heads=2, num_layers=2, num_classes=2, dense_config=None):
    from refbert_tf.models.student import RefBertStudent

    student = RefBertStudent(
        100,
        num_classes,
        num_layers=num_layers,
        hidden_dim=hidden_dim,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
        max_sequence_length=24,
        teacher_dim=32,
        dropout=0.0,
        dense_config=dense_config,
    )
    student(_inputs())
    return student


def test_pruning_at_equal_width_reproduces_the_teacher():
    """Keeping every unit must copy the teacher exactly: same logits, to float rounding."""
    from refbert_tf.distillation import TeacherFeatures
    from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics

    teacher = _teacher()
    x = _inputs()
    stats = pruning_statistics(TeacherFeatures(teacher), x, batch_size=4)
    assert stats["hidden"].shape == (32,) and stats["query"][0].shape == (2, 16) and stats["ffn"][1].shape == (64,)
    student = _student(32, 64)
    kept = init_student_by_pruning(student, teacher, stats, [1, 2])
    np.testing.assert_array_equal(kept, np.arange(32))
    np.testing.assert_allclose(np.asarray(student(x)), np.asarray(teacher(x)), atol=1e-4)


def test_pruning_initialises_a_late_dense_retrieval_student():
    """A dense-only student has a query head and no lexical reference projection: pruning fills its blocks and
    classifier as for the vanilla student (its own logits, before the late fusion, are the teacher's)."""
    from refbert_tf.distillation import TeacherFeatures
    from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics

    teacher = _teacher()
    x = _inputs()
    stats = pruning_statistics(TeacherFeatures(teacher), x, batch_size=4)
    dense = {"entry": "late", "num_anchors": 8, "key_dim": 32, "num_classes": 2, "top_k": 4, "temperature": 0.1}
    student = _student(32, 64, dense_config=dense)
    assert student.uses_reference and student.bank is None
    init_student_by_pruning(student, teacher, stats, [1, 2])
    out = student.call_with_features(x)
    np.testing.assert_allclose(np.asarray(out["student_logits"]), np.asarray(teacher(x)), atol=1e-4)


def test_pruning_keeps_the_most_active_units_and_refuses_misfits():
    from refbert_tf.distillation import TeacherFeatures
    from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics, selection_matrix

    teacher = _teacher()
    backbone = teacher.backbone
    dead = np.array([3, 10, 17, 29, 30, 31])  # LayerNorm gain and bias 0: these coordinates are 0 in every state
    for name in ["embeddings_layer_norm"] + [f"transformer_layer_{i}" for i in range(2)]:
        layer = backbone.get_layer(name)
        norms = (
            [layer]
            if name.startswith("embeddings")
            else [layer._self_attention_layer_norm, layer._feedforward_layer_norm]
        )
        for norm in norms:
            gamma, beta = norm.get_weights()
            gamma[dead], beta[dead] = 0.0, 0.0
            norm.set_weights([gamma, beta])
    # the second block's FFN: units 0..15 write nothing (W_2 rows 0), so they are the ones dropped
    w_2, b_2 = backbone.get_layer("transformer_layer_1")._feedforward_output_dense.get_weights()
    w_2[:16] = 0.0
    backbone.get_layer("transformer_layer_1")._feedforward_output_dense.set_weights([w_2, b_2])
    x = _inputs()
    stats = pruning_statistics(TeacherFeatures(teacher), x)
    np.testing.assert_allclose(stats["hidden"][dead], 0.0, atol=1e-12)
    student = _student(26, 48)
    kept = init_student_by_pruning(student, teacher, stats, [1, 2])
    assert len(kept) == 26 and not set(dead) & set(kept.tolist()) and np.all(np.diff(kept) > 0)
    w_1 = backbone.get_layer("transformer_layer_1")._feedforward_intermediate_dense.get_weights()[0]
    np.testing.assert_array_equal(
        student.blocks[1]._feedforward_intermediate_dense.get_weights()[0], w_1[kept][:, 16:]
    )  # all of the 48 live units, none of the 16 silent ones
    # queries rescaled so q.k keeps the teacher's 1/sqrt(16) scale under the student's 1/sqrt(13)
    q_student = student.blocks[0]._self_attention_layer._query_dense.get_weights()[0]
    q_teacher = backbone.get_layer("transformer_layer_0")._self_attention_layer._query_dense.get_weights()[0]
    assert q_student.shape == (26, 2, 13)
    ratio = np.abs(q_student).sum() / np.abs(q_teacher[kept]).sum()
    assert 0.5 * np.sqrt(13 / 16) < ratio < np.sqrt(13 / 16) + 1e-6
    np.testing.assert_array_equal(
        student.embeddings_layer_norm.get_weights()[0],
        backbone.get_layer("embeddings_layer_norm").get_weights()[0][kept],
    )
    np.testing.assert_array_equal(student.classifier.get_weights()[0], teacher.output_dense.get_weights()[0][kept])
    s = selection_matrix(kept, 32)
    np.testing.assert_array_equal(s @ s.T, np.eye(26))
    np.testing.assert_array_equal(np.ones((1, 32)) @ s.T, np.ones((1, 26)))
    assert np.isfinite(np.asarray(student(x))).all()

    with pytest.raises(ValueError, match="pruning keeps every head"):
        init_student_by_pruning(_student(24, 48, num_heads=4), teacher, stats, [1, 2])
    with pytest.raises(ValueError, match="wider than the teacher"):
        init_student_by_pruning(_student(26, 80), teacher, stats, [1, 2])
    with pytest.raises(ValueError, match="layer_mapping"):
        init_student_by_pruning(student, teacher, stats, [1, 3])
    with pytest.raises(ValueError, match="at least one example"):
        pruning_statistics(TeacherFeatures(teacher), {k: v[:0] for k, v in x.items()})


def test_pruning_a_factorised_student_gives_the_best_rank_e_table():
    """With factorised embeddings (E < d_s) pruning sets table x projection to the truncated SVD of the pruned
    token table: its squared error is the sum of the discarded squared singular values (Eckart-Young), and the
    blocks are those of the plain pruned student."""
    from refbert_tf.distillation import TeacherFeatures
    from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics
    from refbert_tf.models.student import RefBertStudent

    teacher = _teacher()
    x = _inputs()
    stats = pruning_statistics(TeacherFeatures(teacher), x, batch_size=4)
    plain = _student(16, 32)
    kept = init_student_by_pruning(plain, teacher, stats, [1, 2])
    factorised = RefBertStudent(100, 2, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                max_sequence_length=24, teacher_dim=32, dropout=0.0, embedding_dim=6)  # fmt: skip
    factorised(x)
    assert list(init_student_by_pruning(factorised, teacher, stats, [1, 2])) == list(kept)
    pruned = teacher.backbone.token_embedding.embeddings.numpy()[:, kept]
    approx = factorised.token_embedding.embeddings.numpy() @ factorised.embedding_projection.kernel.numpy()
    sigma = np.linalg.svd(pruned, compute_uv=False)
    np.testing.assert_allclose(np.sum((pruned - approx) ** 2), np.sum(sigma[6:] ** 2), rtol=1e-3)
    np.testing.assert_array_equal(factorised.embedding_projection.bias.numpy(), 0)
    for mine, theirs in zip(factorised.blocks, plain.blocks):
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_teacher_initialisations_refuse_a_factorised_student():
    from refbert_tf.models.initialization import init_student_embeddings_from_teacher, init_student_from_teacher
    from refbert_tf.models.student import RefBertStudent

    teacher = _teacher()
    student = RefBertStudent(100, 2, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64,
                             max_sequence_length=24, teacher_dim=32, embedding_dim=8)  # fmt: skip
    student(_inputs())
    for init in (init_student_from_teacher, init_student_embeddings_from_teacher):
        args = (student, teacher.backbone) + (([1, 2],) if init is init_student_from_teacher else ())
        with pytest.raises(ValueError, match="factorised embeddings \\(embedding_dim 8\\): use init pruned"):
            init(*args)
