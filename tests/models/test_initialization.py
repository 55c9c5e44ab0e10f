"""Student initialisations before task distillation (refbert_tf.models.initialization)."""

import keras
import numpy as np
import pytest
from helpers import tiny_bert_backbone

from refbert_tf.models.initialization import (
    init_student_embeddings_from_teacher,
    init_student_from_general,
    init_student_from_teacher,
)


def test_init_from_teacher_copies_mapped_layers():
    from refbert_tf.models.student import RefBertStudent

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
    from refbert_tf.models.student import RefBertStudent

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

    from refbert_tf.models.student import RefBertStudent

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
