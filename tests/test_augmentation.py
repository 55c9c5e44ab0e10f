import numpy as np
import pytest
import tensorflow as tf

from refbert_tf.augmentation import augment_features, word_candidates

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "good",
    "great",
    "bad",
    "awful",
    "movie",
    "film",
    "##s",
    "a",
    ",",
    "play",
    "fine",
]
ID = {w: i for i, w in enumerate(VOCAB)}
# 2-d embeddings: the positive words, the negative words and the nouns lie in three directions
EMB = np.array(
    [
        [0, 0],
        [0, 0],
        [0, 0],
        [0, 0],
        [1, 0.10],
        [1, 0.20],
        [-1, 0.10],
        [-1, 0.25],
        [0.05, 1],
        [0.15, 1],
        [0.3, 0.3],
        [0.5, 0.5],
        [0.5, -0.5],
        [0.3, 1],
        [1, 0.3],
    ],
    np.float32,
)


@pytest.fixture(scope="module")
def candidates():
    return word_candidates(VOCAB, EMB, num_candidates=2)


def features(rows, segments=None):
    ids = [[ID[w] for w in row] for row in rows]
    segs = segments or [[0] * len(r) for r in rows]
    return {"token_ids": tf.ragged.constant(ids, tf.int32), "segment_ids": tf.ragged.constant(segs, tf.int32)}


def test_candidates_are_the_nearest_other_whole_words(candidates):
    assert candidates.replaceable.tolist() == [False] * 4 + [True] * 6 + [False] * 3 + [True] * 2
    assert candidates.continuation[ID["##s"]] and not candidates.continuation[ID["movie"]]
    names = {w: [VOCAB[j] for j in candidates.candidates[ID[w]]] for w in ("good", "bad", "movie")}
    assert names == {"good": ["great", "fine"], "bad": ["awful", "movie"], "movie": ["film", "play"]}
    for token_id in np.flatnonzero(candidates.replaceable):
        row = candidates.candidates[token_id]
        assert token_id not in row and candidates.replaceable[row].all()
    assert (candidates.candidates[~candidates.replaceable] == -1).all()


def test_candidates_reject_a_foreign_vocabulary_and_bad_k():
    with pytest.raises(ValueError, match="15 entries but the embedding table is \\(14, 2\\)"):
        word_candidates(VOCAB, EMB[:-1])
    with pytest.raises(ValueError, match="num_candidates must be >= 1"):
        word_candidates(VOCAB, EMB, num_candidates=0)
    with pytest.raises(ValueError, match="only 8 replaceable"):
        word_candidates(VOCAB, EMB, num_candidates=8)


def test_augmented_copies_replace_only_one_piece_words_with_their_candidates(candidates):
    rows = [
        ["[CLS]", "a", "good", "movie", ",", "film", "##s", "[SEP]"],
        ["[CLS]", "bad", "play", "[SEP]", "great", "movie", "[SEP]"],
    ]
    feats = features(rows, [[0] * 8, [0, 0, 0, 0, 1, 1, 1]])
    augmented, source = augment_features(feats, candidates, copies=50, replace_prob=0.5, seed=3)
    assert source.tolist() == [0, 1] * 50
    np.testing.assert_array_equal(augmented["token_ids"].row_lengths(), [8, 7] * 50)
    np.testing.assert_array_equal(augmented["segment_ids"].flat_values, np.tile(feats["segment_ids"].flat_values, 50))
    changed = 0
    for row, src in zip(augmented["token_ids"].to_list(), source):
        original = [ID[w] for w in rows[src]]
        for new, old in zip(row, original):
            if new != old:
                changed += 1
                assert new in candidates.candidates[old], (VOCAB[old], VOCAB[new])
        # specials, one-letter words, punctuation, ## pieces and a word split into pieces ("film ##s") stay
        kept = [
            pos
            for pos, w in enumerate(rows[src])
            if w in ("[CLS]", "[SEP]", "a", ",", "##s") or (w == "film" and rows[src][pos + 1] == "##s")
        ]
        assert [row[p] for p in kept] == [original[p] for p in kept]
    eligible = 50 * (2 + 4)  # "good movie" and "bad play great movie"
    assert 0.4 < changed / eligible < 0.6  # p = 0.5


def test_augmentation_is_seeded_and_checks_its_arguments(candidates):
    feats = features([["[CLS]", "good", "movie", "[SEP]"]])
    a, _ = augment_features(feats, candidates, copies=4, seed=7)
    b, _ = augment_features(feats, candidates, copies=4, seed=7)
    c, _ = augment_features(feats, candidates, copies=4, seed=8)
    assert a["token_ids"].to_list() == b["token_ids"].to_list() != c["token_ids"].to_list()
    with pytest.raises(ValueError, match="copies must be >= 1"):
        augment_features(feats, candidates, copies=0)
    with pytest.raises(ValueError, match="replace_prob must be in"):
        augment_features(feats, candidates, copies=1, replace_prob=0.0)
    with pytest.raises(ValueError, match="token id 30 is outside the candidates' vocabulary of 15"):
        augment_features({"token_ids": tf.ragged.constant([[2, 30, 3]])}, candidates, copies=1)
