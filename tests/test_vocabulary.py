"""The student vocabulary (refbert_tf.vocabulary): learned, saved, reloaded; mixed tokenization keeps words whole."""

import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv
from refbert_tf.io_utils import file_sha256
from refbert_tf.tokenization import BertWordPieceTokenizer, VocabularyError
from refbert_tf.vocabulary import STUDENT_SPECIAL_TOKENS, mixed_tokenize, train_student_vocabulary, unknown_rate


@pytest.fixture(scope="module")
def sst2_texts(glue_dir):
    return list(read_glue_tsv("sst2", "train", glue_dir=glue_dir).text_a[:3000])


@pytest.fixture(scope="module")
def student_vocab(sst2_texts, tmp_path_factory):
    return train_student_vocabulary(sst2_texts, 1000, tmp_path_factory.mktemp("vocab") / "vocab.txt")


def test_a_learned_vocabulary_round_trips_and_covers_its_training_text(student_vocab, sst2_texts, tmp_path):
    lines = student_vocab.read_text(encoding="utf-8").splitlines()
    assert lines[: len(STUDENT_SPECIAL_TOKENS)] == list(STUDENT_SPECIAL_TOKENS)
    assert 800 <= len(lines) <= 1000 and len(set(lines)) == len(lines)
    # the saved file is the vocabulary: copied and reloaded, the same checksum and the same ids
    copy = tmp_path / "copy" / "vocab.txt"
    copy.parent.mkdir()
    copy.write_bytes(student_vocab.read_bytes())
    assert file_sha256(copy) == file_sha256(student_vocab)
    sample = sst2_texts[:50]
    assert (
        BertWordPieceTokenizer(copy).tokenize(sample).to_list()
        == BertWordPieceTokenizer(student_vocab).tokenize(sample).to_list()
    )
    # a second training breaks ties between equal-count merges in its own order: a few pieces may differ, no more
    again = set(train_student_vocabulary(sst2_texts, 1000, tmp_path / "vocab.txt").read_text().splitlines())
    assert len(again ^ set(lines)) <= 0.01 * len(lines), sorted(again ^ set(lines))
    tokenizer = BertWordPieceTokenizer(student_vocab, lowercase=True)
    assert tokenizer.vocab_size == len(lines) and tokenizer.cls_id == 2 and tokenizer.sep_id == 3
    assert unknown_rate(tokenizer, sst2_texts) < 0.001
    ids = tokenizer.tokenize(sst2_texts[:200]).flat_values.numpy()
    assert ids.min() >= 0 and ids.max() < tokenizer.vocab_size


def test_the_student_vocabulary_normalises_as_the_teacher(student_vocab):
    tokenizer = BertWordPieceTokenizer(student_vocab, lowercase=True)
    a, b = tokenizer.tokenize(["CAFÉ Crème, a FILM!"]), tokenizer.tokenize(["cafe creme , a film !"])
    assert a.to_list() == b.to_list()


def test_characters_the_vocabulary_never_saw_make_their_word_unk(student_vocab):
    """Documented behaviour: a word the pieces cannot cover is one [UNK]; the words around it are read."""
    tokenizer = BertWordPieceTokenizer(student_vocab, lowercase=True)
    (ids,) = tokenizer.tokenize_words(["a 電 film"]).to_list()
    assert ids[1] == [tokenizer.unk_id] and ids[0] != [tokenizer.unk_id] and ids[2] != [tokenizer.unk_id]


def test_a_vocabulary_without_its_special_tokens_is_refused(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\nthe\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"\[SEP\]"):
        BertWordPieceTokenizer(path)
    with pytest.raises(ValueError, match="vocab_size must be > 5"):
        train_student_vocabulary(["a film"], 5, tmp_path / "v.txt")


def test_mixed_tokenization_keeps_every_word_whole_in_one_vocabulary(student_vocab, minilm_tokenizer, sst2_texts):
    student = BertWordPieceTokenizer(student_vocab, lowercase=True)
    texts = sst2_texts[:100]
    offset = minilm_tokenizer.vocab_size
    teacher_only, _ = mixed_tokenize(minilm_tokenizer, student, texts, p=0.0)
    assert teacher_only.to_list() == minilm_tokenizer.tokenize(texts).to_list()
    student_only, _ = mixed_tokenize(minilm_tokenizer, student, texts, p=1.0)
    assert (student_only - offset).to_list() == student.tokenize(texts).to_list()
    mixed, choice = mixed_tokenize(minilm_tokenizer, student, texts, p=0.5, seed=1)
    words_t, words_s = minilm_tokenizer.tokenize_words(texts).to_list(), student.tokenize_words(texts).to_list()
    for n, (row, picks) in enumerate(zip(mixed.to_list(), choice.to_list())):
        expected = [
            i for w, s in enumerate(picks) for i in ([x + offset for x in words_s[n][w]] if s else words_t[n][w])
        ]
        assert row == expected
    share = np.mean(choice.flat_values.numpy())
    assert 0.4 < share < 0.6
    with pytest.raises(ValueError, match="p must be in"):
        mixed_tokenize(minilm_tokenizer, student, texts, p=1.5)
