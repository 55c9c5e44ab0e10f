import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_bert_backbone

from refbert_tf.bank import (
    BankError,
    Corpus,
    ReferenceBank,
    build_bank,
    corpus_counts,
    label_agreement,
    reference_label_agreement,
    resolve_layer,
    select_anchors,
    teacher_layer_model,
)
from refbert_tf.data import read_glue_tsv
from refbert_tf.retrieval import RetrievalIndex, hashed_counts

TESTS = Path(__file__).resolve().parent
IGNORE = (101, 102, 0)  # MiniLM's [CLS], [SEP], [PAD]


@pytest.fixture(scope="module")
def bank_and_features(glue_dir, minilm_tokenizer):
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(200)
    feats = tok.encode(train.text_a, max_seq_len=64)
    assert (tok.cls_id, tok.sep_id, tok.pad_id) == IGNORE
    bank = build_bank(
        tiny_bert_backbone(),
        feats,
        layer=1,
        num_tokens=6,
        max_anchors=50,
        batch_size=64,
        ignore_ids=IGNORE,
        num_buckets=256,
        metadata={"task": "sst2", "teacher": "tiny", "vocab_sha256": tok.vocab_sha256},
        progress=False,
    )
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


def test_excluded_rows_are_never_picked(bank_and_features):
    """An augmented copy of example i may not read anchor i; exclude_self is exclude_rows=arange(N)."""
    bank, feats = bank_and_features
    n = int(feats["token_ids"].nrows())
    source = np.random.default_rng(0).permutation(n)  # each example stands for a copy of another one
    ref, _ = bank.references_for(feats, exclude_rows=source)
    assert not np.any(bank.anchor_ids[ref] == source)
    self_ref, self_sim = bank.references_for(feats, exclude_self=True)
    rows_ref, rows_sim = bank.references_for(feats, exclude_rows=np.arange(n))
    np.testing.assert_array_equal(self_ref, rows_ref)
    np.testing.assert_array_equal(self_sim, rows_sim)
    top, _ = bank.references_for(feats, exclude_rows=source, top_k=3)
    assert not np.any(bank.anchor_ids[top] == source[:, None])
    with pytest.raises(ValueError, match="not both"):
        bank.references_for(feats, exclude_self=True, exclude_rows=source)
    with pytest.raises(ValueError, match="exclude_rows has shape"):
        bank.references_for(feats, exclude_rows=source[:-1])


def test_bad_banks(bank_and_features, tmp_path):
    bank, feats = bank_and_features
    with pytest.raises(BankError, match="empty"):
        ReferenceBank(
            bank.representations[:0],
            bank.representation_mask[:0],
            bank.keys[:0],
            bank.anchor_ids[:0],
            bank.index,
            1,
            {},
        )
    with pytest.raises(BankError, match="vocab_sha256=.* but this run uses 'other'"):
        bank.check_compatible(vocab_sha256="other")
    with pytest.raises(BankError, match="teacher='tiny'"):
        bank.check_compatible(teacher_id="bert-base")
    with pytest.raises(BankError, match="no reference bank in"):
        ReferenceBank.load(tmp_path / "nothing")
    with pytest.raises(BankError, match="0 training examples"):
        build_bank(
            tiny_bert_backbone(),
            {k: v[:0] for k, v in feats.items() if k != "num_truncated"},
            ignore_ids=(101, 102, 0),
            progress=False,
        )
    with pytest.raises(ValueError, match="teacher layer must be in 0..2"):
        teacher_layer_model(tiny_bert_backbone(), 3)


def test_select_anchors():
    keys = np.random.default_rng(0).random((100, 8)).astype(np.float32)
    assert select_anchors(keys, 200).tolist() == list(range(100))
    for passes in (100, 1):
        chosen = select_anchors(keys, 10, kmeans_passes=passes)
        assert 0 < len(chosen) <= 10 and len(set(chosen.tolist())) == len(chosen)


def test_reference_label_agreement_by_hand(bank_and_features):
    bank, feats = bank_and_features
    labels = np.arange(200) % 2  # arbitrary labels: the check is the bookkeeping, not the value
    r = reference_label_agreement(bank, feats, labels, labels, exclude_self=True)
    index, similarity = bank.references_for(feats, exclude_self=True)
    by_hand = 100 * np.mean(labels[bank.anchor_ids[index]] == labels)
    assert r["agreement"] == round(by_hand, 2) and r["majority_class"] == 50.0
    assert r["mean_similarity"] == round(float(similarity.mean()), 4)


def test_label_agreement_by_hand():
    r = label_agreement([0, 1, 1, 0], [0, 1, 0, 0], similarity=[0.5, 0.25, 0.0, 0.25])
    assert r == {"agreement": 75.0, "majority_class": 50.0, "mean_similarity": 0.25}
    assert label_agreement([1, 1, 1, 0], [0, 0, 0, 0]) == {"agreement": 25.0, "majority_class": 75.0}


def test_negative_layers_count_from_the_top():
    backbone = tiny_bert_backbone(num_layers=2)
    assert [resolve_layer(backbone, x) for x in (-1, -3, 0, 2)] == [2, 0, 0, 2]
    with pytest.raises(ValueError, match="teacher layer must be in 0..2"):
        resolve_layer(backbone, 3)


def _assert_same_bank(a, b, atol=0.0):
    np.testing.assert_allclose(a.representations, b.representations, rtol=0, atol=atol)
    for name in ("representation_mask", "keys", "anchor_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.index.idf, b.index.idf)
    assert (a.layer, a.index.num_buckets, a.index.ignore_ids) == (b.layer, b.index.num_buckets, b.index.ignore_ids)


def test_chunked_counts_index_and_keys_equal_in_memory(glue_dir, minilm_tokenizer):
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(300)
    feats = minilm_tokenizer.encode(train.text_a, max_seq_len=64)
    whole = hashed_counts(feats, 256, IGNORE)
    from_features = corpus_counts(Corpus.from_features(feats), 256, IGNORE, chunk_size=37)  # 9 chunks, last short
    from_texts = corpus_counts(Corpus.from_texts(train.text_a, minilm_tokenizer, 64), 256, IGNORE, chunk_size=64)
    for counts in (from_features, from_texts):
        assert counts.shape == whole.shape and (counts != whole).nnz == 0
    index = RetrievalIndex.fit(feats, IGNORE, 256)
    chunked = RetrievalIndex.fit_counts(from_features, IGNORE)
    np.testing.assert_array_equal(chunked.idf, index.idf)
    assert (chunked.num_buckets, chunked.ignore_ids) == (256, IGNORE)
    assert (chunked.keys_from_counts(from_texts) != index.keys(feats)).nnz == 0


def test_streamed_sharded_build_equals_in_memory_build(bank_and_features, minilm_tokenizer, glue_dir, tmp_path):
    import keras

    bank, feats = bank_and_features
    texts = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(200).text_a
    keras.utils.set_random_seed(1)
    backbone = tiny_bert_backbone()
    kwargs = dict(
        layer=1,
        num_tokens=6,
        max_anchors=50,
        ignore_ids=IGNORE,
        num_buckets=256,
        metadata=bank.metadata,
        progress=False,
    )
    in_memory = build_bank(backbone, feats, batch_size=64, **kwargs)
    timings = {}
    streamed = build_bank(
        backbone,
        Corpus.from_texts(texts, minilm_tokenizer, 64),
        batch_size=16,
        bank_dir=tmp_path / "bank",
        shard_size=8,
        chunk_size=45,
        timings=timings,
        **kwargs,
    )
    _assert_same_bank(streamed, in_memory, atol=1e-5)  # batches padded to other lengths: float rounding only
    assert np.abs(in_memory.representations).max() > 0.1
    np.testing.assert_array_equal(streamed.anchor_ids, bank.anchor_ids)
    shards = sorted(p.name for p in (tmp_path / "bank").glob("representations-*.npy"))
    num_shards = -(-bank.num_anchors // 8)
    assert num_shards > 2 and shards == [f"representations-{i:05d}-of-{num_shards:05d}.npy" for i in range(num_shards)]
    assert [len(np.load(tmp_path / "bank" / name)) for name in shards[:-1]] == [8] * (num_shards - 1)
    assert set(timings) == {"encode", "anchors", "teacher"}
    loaded = ReferenceBank.load(tmp_path / "bank")
    _assert_same_bank(loaded, streamed)
    assert loaded.metadata == streamed.metadata == in_memory.metadata == bank.metadata


def test_sharded_save_load_round_trip_and_stale_shards(bank_and_features, tmp_path):
    bank, _ = bank_and_features
    bank.save(tmp_path / "bank", shard_size=7)
    assert len(list((tmp_path / "bank").glob("representations-*.npy"))) == -(-bank.num_anchors // 7)
    with np.load(tmp_path / "bank" / "bank.npz") as arrays:
        assert "representations" not in arrays
    loaded = ReferenceBank.load(bank.save(tmp_path / "bank", shard_size=1000))  # re-save: one shard, stale gone
    assert [p.name for p in (tmp_path / "bank").glob("representations-*.npy")] == ["representations-00000-of-00001.npy"]
    _assert_same_bank(loaded, bank)
    assert loaded.metadata == bank.metadata
    (tmp_path / "bank" / "representations-00000-of-00001.npy").unlink()
    with pytest.raises(BankError, match="incomplete: missing representations-00000-of-00001.npy"):
        ReferenceBank.load(tmp_path / "bank")
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        bank.save(tmp_path / "other", shard_size=0)


def test_old_single_file_layout_still_loads(bank_and_features, tmp_path):
    bank, _ = bank_and_features
    old = tmp_path / "old"
    old.mkdir()
    np.savez(
        old / "bank.npz",
        representations=bank.representations,
        representation_mask=bank.representation_mask,
        keys=bank.keys,
        anchor_ids=bank.anchor_ids,
        idf=bank.index.idf,
    )  # the layout written before shards
    (old / "bank.json").write_text(
        json.dumps(
            {
                **bank.metadata,
                "layer": 1,
                "num_buckets": 256,
                "ignore_ids": list(IGNORE),
                "num_anchors": bank.num_anchors,
                "num_tokens": 6,
            }
        )
    )
    loaded = ReferenceBank.load(old)
    _assert_same_bank(loaded, bank)
    assert loaded.metadata == bank.metadata


def test_chunked_references_never_pick_self(bank_and_features, minilm_tokenizer, glue_dir):
    bank, feats = bank_and_features
    whole = bank.references_for(feats, exclude_self=True, chunk_size=10**6)
    texts = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(200).text_a
    chunked = bank.references_for(Corpus.from_texts(texts, minilm_tokenizer, 64), exclude_self=True, chunk_size=33)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    assert not np.any(bank.anchor_ids[chunked[0]] == np.arange(200))
    # without the exclusion every anchor is its own nearest anchor (a non-empty key has cosine 1 with itself)
    free, _ = bank.references_for(feats, chunk_size=33)
    nonempty = np.asarray(np.abs(bank.keys).sum(1) > 0)
    assert np.all(free[bank.anchor_ids[nonempty]] == np.flatnonzero(nonempty))


# a fresh process: logical devices must be configured before TensorFlow initialises (pytest's has)
MIRRORED_BANK = r"""
import json, sys
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from helpers import tiny_bert_backbone
from refbert_tf.bank import build_bank, teacher_representations
from refbert_tf.data import read_glue_tsv
from refbert_tf.models.checkpoints import default_teacher_dir
from refbert_tf.tokenization import BertWordPieceTokenizer

tok = BertWordPieceTokenizer(default_teacher_dir() / "vocab.txt", lowercase=True)
feats = tok.encode(read_glue_tsv("sst2", "train", glue_dir=sys.argv[1]).take(49).text_a, max_seq_len=64)
mirrored = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
keras.utils.set_random_seed(0)
backbone = tiny_bert_backbone()
kwargs = dict(layer=1, num_tokens=6, max_anchors=64, batch_size=16, ignore_ids=(101, 102, 0), num_buckets=256,
              progress=False)  # 16 = 2 replicas x 8; the last batch (1 anchor) leaves one replica empty
single = build_bank(backbone, feats, **kwargs)
dist = build_bank(backbone, feats, strategy=mirrored, bank_dir=sys.argv[2], shard_size=16, **kwargs)
batches = [h.shape[0] for h, _ in teacher_representations(backbone, feats, 1, 6, 16, strategy=mirrored)]
print("RESULT " + json.dumps({
    "replicas": mirrored.num_replicas_in_sync, "num_anchors": single.num_anchors, "batches": batches,
    "same_anchors": bool(np.array_equal(single.anchor_ids, dist.anchor_ids)),
    "same_mask": bool(np.array_equal(single.representation_mask, dist.representation_mask)),
    "max_diff": float(np.abs(single.representations - dist.representations).max()),
    "max_abs": float(np.abs(single.representations).max())}))
"""


def test_mirrored_teacher_inference_equals_default_strategy(glue_dir, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_BANK, str(glue_dir), str(tmp_path / "bank")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT ") :])
    assert r["replicas"] == 2 and r["same_anchors"] and r["same_mask"]
    assert r["num_anchors"] == 49 and r["batches"] == [16, 16, 16, 1]
    assert r["max_diff"] <= 1e-5 and r["max_abs"] > 0.1
    assert len(list((tmp_path / "bank").glob("representations-*.npy"))) == 4


def test_benchmark_bank_help():
    out = subprocess.run(
        [sys.executable, "recipes/benchmark_bank.py", "--help"],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for flag in (
        "--num-sentences",
        "--max-anchors",
        "--num-tokens",
        "--shard-size",
        "--batch-size",
        "--chunk-size",
        "--out-dir",
        "--strategy",
        "--cpu-devices",
        "--results",
        "--kmeans-passes",
    ):
        assert flag in out.stdout


def test_dense_anchors_cached_checked_and_never_their_own_reference(bank_and_features, tiny_teacher_dir, tmp_path):
    """The bank's anchors in the teacher's [CLS] space (refbert_tf/bank/dense.py): unit keys and probabilities,
    written once and reused, refused for another teacher or training set; a row's dense reference is the most
    cosine-similar anchor other than its own, and label agreement is counted as by hand."""
    from refbert_tf.bank.dense import DenseAnchors, dense_label_agreement, load_or_build_dense_anchors
    from refbert_tf.models.teacher import load_teacher

    bank, feats = bank_and_features
    teacher, _, _ = load_teacher(tiny_teacher_dir, "sst2")
    dense = load_or_build_dense_anchors(tmp_path, bank, teacher, feats, "cls", "t1", regression=False)
    assert dense.keys.shape == (bank.num_anchors, 24) and dense.train_keys.shape == (200, 24)
    assert np.allclose(np.linalg.norm(dense.keys, axis=1), 1, atol=1e-5)
    assert np.allclose(dense.soft_labels.sum(1), 1, atol=1e-5) and np.all(dense.soft_labels >= 0)
    assert (tmp_path / "dense-cls.npz").is_file()
    again = load_or_build_dense_anchors(tmp_path, bank, None, feats, "cls", "t1", regression=False)  # no teacher pass
    assert np.array_equal(again.train_keys, dense.train_keys)
    with pytest.raises(BankError, match="dense-cls.npz holds dense keys of another teacher"):
        load_or_build_dense_anchors(tmp_path, bank, None, feats, "cls", "t2", regression=False)
    with pytest.raises(ValueError, match="unknown dense key space 'last'"):
        load_or_build_dense_anchors(tmp_path, bank, None, feats, "last", "t1", regression=False)

    # the neighbour search on well-separated keys (the tiny teacher's [CLS] states are nearly parallel)
    train_keys = np.random.default_rng(0).normal(size=(200, 24)).astype(np.float32)
    train_keys /= np.linalg.norm(train_keys, axis=1, keepdims=True)
    dense = DenseAnchors(train_keys[bank.anchor_ids], dense.soft_labels, bank.anchor_ids, train_keys, "cls")
    rows = np.arange(200)
    refs = dense.references_for_rows(rows)
    similarity = dense.train_keys @ dense.keys.T
    own = dense.anchor_positions(rows)
    similarity[own >= 0, own[own >= 0]] = -np.inf
    assert np.array_equal(refs, similarity.argmax(1)) and not np.any(bank.anchor_ids[refs] == rows)
    assert dense.references_for_rows(rows, top_k=3).shape == (200, 3)

    labels = np.arange(200) % 2
    out = dense_label_agreement(dense, dense.train_keys, labels, labels, vote=0, exclude=own)
    assert out["top1"]["agreement"] == pytest.approx(100 * np.mean(labels[bank.anchor_ids[refs]] == labels), abs=0.01)
