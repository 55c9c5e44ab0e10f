import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv
from refbert_tf.retrieval import SCORE_SCALE, RetrievalIndex, hashed_counts, nearest_anchors


@pytest.fixture(scope="module")
def sst2(glue_dir, minilm_tokenizer):
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(2000)
    dev = read_glue_tsv("sst2", "dev", glue_dir=glue_dir)
    train_f, dev_f = tok.encode(train.text_a), tok.encode(dev.text_a)
    index = RetrievalIndex.fit(train_f, (tok.cls_id, tok.sep_id, tok.pad_id), num_buckets=512)
    return tok, train_f, dev_f, index


def test_on_device_scores_are_scaled_unnormalised_similarities(sst2):
    tok, train_f, dev_f, index = sst2
    anchors = index.keys({"token_ids": train_f["token_ids"][:300]}).toarray()
    mask = np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    scores = np.asarray(index.scorer()(dev_f["token_ids"].to_tensor(0), mask, anchors))
    assert scores.dtype == np.int32 and scores.shape == (int(dev_f["token_ids"].nrows()), 300)
    # by hand: the idf-weighted counts of each dev input (not normalised) times the anchor keys
    weighted = hashed_counts(dev_f, index.num_buckets, index.ignore_ids).toarray() * index.idf[None, :]
    np.testing.assert_allclose(scores / SCORE_SCALE, weighted @ anchors.T, atol=2e-3)


def test_frozen_sparse_table_gives_the_dense_scores_exactly(sst2):
    tok, train_f, dev_f, index = sst2
    anchors = index.keys({"token_ids": train_f["token_ids"][:300]}).toarray()
    ids, mask = dev_f["token_ids"].to_tensor(0), np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    scorer = index.scorer()
    dense = np.asarray(scorer(ids, mask, anchors))
    nnz = scorer.freeze(anchors)
    assert 0 < nnz < 0.1 * anchors.size and nnz == np.count_nonzero(scorer.table(anchors))
    np.testing.assert_array_equal(np.asarray(scorer(ids, mask, anchors)), dense)


def test_on_device_choice_agrees_with_offline_choice(sst2):
    tok, train_f, dev_f, index = sst2
    anchors = index.keys(train_f)
    offline, _ = nearest_anchors(index.keys(dev_f), anchors)
    mask = np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    on_device = np.argmax(np.asarray(index.scorer()(dev_f["token_ids"].to_tensor(0), mask, anchors.toarray())), axis=1)
    agreement = float(np.mean(on_device == offline))
    assert agreement >= 0.95, agreement


def test_self_is_never_its_own_reference(sst2):
    tok, train_f, dev_f, index = sst2
    keys = index.keys(train_f)
    ref, sim = nearest_anchors(keys, keys, exclude=np.arange(keys.shape[0]))
    assert not np.any(ref == np.arange(keys.shape[0]))
    assert np.all(sim <= 1.0 + 1e-5)


def test_ties_go_to_the_lowest_index():
    keys = np.eye(3, dtype=np.float32)[[0, 1, 1, 2]]  # anchors 1 and 2 are identical
    ref, _ = nearest_anchors(keys[[1]], keys)
    assert ref.tolist() == [1]
    ref, _ = nearest_anchors(keys, keys, exclude=np.arange(4))
    assert ref[1] == 2 and ref[2] == 1
    with pytest.raises(ValueError, match="need at least 2 anchors"):
        nearest_anchors(keys[:1], keys[:1], exclude=np.zeros(1, np.int64))


def test_top_k_references_best_first_without_self(sst2):
    tok, train_f, dev_f, index = sst2
    keys = index.keys(train_f)
    top1, _ = nearest_anchors(index.keys(dev_f), keys)
    top3, sim3 = nearest_anchors(index.keys(dev_f), keys, top_k=3)
    assert top3.shape == sim3.shape == (int(dev_f["token_ids"].nrows()), 3)
    np.testing.assert_array_equal(top3[:, 0], top1)  # the first of the k is the RefBERT reference
    assert np.all(np.diff(sim3, axis=1) <= 0)  # best first
    by_hand = (index.keys(dev_f) @ keys.T).toarray()
    np.testing.assert_allclose(sim3, np.take_along_axis(by_hand, top3, axis=1), atol=1e-6)
    assert np.all(sim3[:, -1] >= np.sort(by_hand, axis=1)[:, -3] - 1e-6)  # nothing better was left out
    self_ref, _ = nearest_anchors(keys, keys, exclude=np.arange(keys.shape[0]), top_k=2)
    assert not np.any(self_ref == np.arange(keys.shape[0])[:, None])
    with pytest.raises(ValueError, match="top_k=4 needs 1 <= top_k <= 3"):
        nearest_anchors(keys[:1], keys[:4], exclude=np.zeros(1, np.int64), top_k=4)


def test_on_device_top_k_agrees_with_offline_top_k(sst2):
    import tensorflow as tf

    tok, train_f, dev_f, index = sst2
    anchors = index.keys(train_f)
    offline, _ = nearest_anchors(index.keys(dev_f), anchors, top_k=2)
    mask = np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    scores = index.scorer()(dev_f["token_ids"].to_tensor(0), mask, anchors.toarray())
    on_device = np.asarray(tf.math.top_k(scores, k=2).indices)
    agreement = float(np.mean(on_device == offline))
    assert agreement >= 0.95, agreement
