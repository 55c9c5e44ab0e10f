import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv
from refbert_tf.retrieval import RetrievalIndex, nearest_anchors


@pytest.fixture(scope="module")
def sst2(glue_dir, minilm_tokenizer):
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(2000)
    dev = read_glue_tsv("sst2", "dev", glue_dir=glue_dir)
    train_f, dev_f = tok.encode(train.text_a), tok.encode(dev.text_a)
    index = RetrievalIndex.fit(train_f, (tok.cls_id, tok.sep_id, tok.pad_id), num_buckets=512)
    return tok, train_f, dev_f, index


def test_on_device_keys_equal_offline_keys(sst2):
    tok, train_f, dev_f, index = sst2
    padded = {k: dev_f[k].to_tensor(0) for k in ("token_ids",)}
    mask = np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    on_device = np.asarray(index.encoder()(padded["token_ids"], mask))
    np.testing.assert_allclose(on_device, index.keys(dev_f).toarray(), atol=1e-6)
    assert np.allclose(np.linalg.norm(on_device, axis=1), 1.0, atol=1e-5)


def test_on_device_choice_agrees_with_offline_choice(sst2):
    tok, train_f, dev_f, index = sst2
    anchors = index.keys(train_f)
    offline, _ = nearest_anchors(index.keys(dev_f), anchors)
    mask = np.asarray(dev_f["token_ids"].to_tensor(-1)) >= 0
    on_device = np.argmax(np.asarray(index.encoder()(dev_f["token_ids"].to_tensor(0), mask)) @ anchors.toarray().T,
                          axis=1)
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
