"""Dense retrieval (refbert_tf/dense_retrieval.py) and the dense label ceiling (refbert_tf/pipelines/dense_ceiling.py)."""

import numpy as np
import pytest

from refbert_tf.dense_retrieval import dense_neighbours, teacher_keys, vote_labels
from refbert_tf.pipelines.dense_ceiling import dense_ceiling, dense_ceiling_markdown


def test_dense_neighbours_are_the_exact_cosine_best_and_skip_the_excluded_anchor():
    rng = np.random.default_rng(0)
    anchors, queries = rng.normal(size=(50, 8)), rng.normal(size=(20, 8))
    cos = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    ).T
    found, sim = dense_neighbours(queries, anchors, k=3)
    np.testing.assert_array_equal(found, np.argsort(-cos, axis=1)[:, :3])
    np.testing.assert_allclose(sim, np.sort(cos, axis=1)[:, ::-1][:, :3], atol=1e-6)
    # an anchor as its own query: it is excluded, and its next best come instead
    own, own_sim = dense_neighbours(anchors[:10], anchors, k=2, exclude=np.arange(10))
    assert not np.any(own == np.arange(10)[:, None])
    self_cos = (anchors / np.linalg.norm(anchors, axis=1, keepdims=True)) @ (
        anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    ).T
    np.testing.assert_array_equal(own, np.argsort(-self_cos[:10], axis=1)[:, 1:3])
    # excluding an anchor that is not among the best drops the k+1-th instead
    far = np.argsort(-cos[:, :], axis=1)[:, -1]
    np.testing.assert_array_equal(dense_neighbours(queries, anchors, k=3, exclude=far)[0], found)
    with pytest.raises(ValueError, match="k must be"):
        dense_neighbours(queries, anchors, k=50, exclude=far)
    assert list(vote_labels(np.array([[1, 1, 0], [0, 1, 0], [2, 1, 0]]), 3)) == [1, 0, 0]


def test_dense_ceiling_on_a_tiny_teacher(tiny_teacher_dir, glue_dir, minilm):
    rows = dense_ceiling(
        "sst2", tiny_teacher_dir, ("teacher:cls", "teacher:mean"), max_anchors=200, vote=8, train_sample=50,
        glue_dir=glue_dir, max_train_examples=400,
    )  # fmt: skip
    assert [r["space"] for r in rows] == ["teacher:cls", "teacher:mean"]
    for r in rows:
        assert r["num_anchors"] == 200 and r["dev_vote"]["k"] == 8
        assert 0 <= r["dev"]["agreement"] <= 100 and r["dev"]["majority_class"] == pytest.approx(50.92, abs=0.01)
        assert -1.0 <= r["dev"]["mean_similarity"] <= 1.0
    assert "| sst2 | teacher:cls | 200 |" in dense_ceiling_markdown(rows)
    with pytest.raises(ValueError, match="regression"):
        dense_ceiling("stsb", tiny_teacher_dir, glue_dir=glue_dir)
    with pytest.raises(ValueError, match="unknown key space"):
        dense_ceiling("sst2", tiny_teacher_dir, ("student:cls",), glue_dir=glue_dir)
    # keys: unit rows, one per example
    backbone, tokenizer, _ = minilm
    keys = teacher_keys(backbone, tokenizer.encode(["a fine film", "a dull film", "a"], None, 16), "mean")
    np.testing.assert_allclose(np.linalg.norm(keys, axis=1), 1.0, atol=1e-5)
    assert keys.shape == (3, 384) and keys[0] @ keys[1] > keys[0] @ keys[2] - 1.0


def test_late_fusion_probe_mixes_nothing_at_weight_zero_and_reports_its_choices(
    tiny_teacher_dir, student_run, glue_dir
):
    from refbert_tf.pipelines.dense_ceiling import late_fusion_probe

    run, *_ = student_run
    common = dict(k=4, glue_dir=glue_dir, max_train_examples=300, temperatures=(0.1,))
    alone = late_fusion_probe("sst2", tiny_teacher_dir, run, weights=(0.0,), **common)
    assert alone["fused"] == alone["student"] and alone["lambda"] == 0.0 and alone["num_anchors"] == 300
    assert alone["fused_teacher_query"] == alone["student"]
    assert -1.0 <= alone["query_cosine"] <= 1.0 and 0 <= alone["query_ceiling"]["dev_top1"]["agreement"] <= 100
    both = late_fusion_probe("sst2", tiny_teacher_dir, run, weights=(0.0, 1.0), **common)
    # the weight is chosen on held-out anchors, where 0 (the student alone) is always a candidate
    assert both["lambda"] in (0.0, 1.0) and both["held_out_metric"]["fused"] >= both["held_out_metric"]["alone"]
