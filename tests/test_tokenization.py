"""Tokenizer parity with Hugging Face ``tokenizers`` run on the checkpoint's own tokenizer.json."""

import pytest

from refbert_tf.data import read_glue_tsv
from refbert_tf.tokenization import BertWordPieceTokenizer, VocabularyError, read_vocab

EDGE_CASES = [
    "Café naïve résumé",
    "北京欢迎你 to Tokyo",
    "a" * 150,
    "ж" * 101,
    "ж" * 100,
    "ΣΑΣ and σας",
    "x\x00y\ufffdz",
    "line\u2028separator",
    "µGuru ﬁx",
    "emoji 😀 test",
    "$5.00 & 10%!",
    "tab\there\nnew line",
    "ÅNGSTRÖM",
    "don't",
    "１２３ＡＢＣ",
    "〈test〉 ’quote’ …",
]


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    return tok


def _hf_ids(hf, a, b=None, max_len=512):
    hf.enable_truncation(max_len, strategy="longest_first")
    encs = hf.encode_batch(list(zip(a, b)) if b is not None else list(a))
    return [e.ids for e in encs], [e.type_ids for e in encs]


def test_parity_on_every_sst2_dev_sentence(glue_dir, hf_tokenizer, minilm_tokenizer):
    ex = read_glue_tsv("sst2", "dev", glue_dir=glue_dir)
    ref_ids, _ = _hf_ids(hf_tokenizer, ex.text_a)
    enc = minilm_tokenizer.encode(ex.text_a, max_seq_len=512)
    assert enc["token_ids"].to_list() == ref_ids


@pytest.mark.parametrize("max_len", [512, 128, 40])
def test_parity_on_every_mrpc_dev_pair(glue_dir, hf_tokenizer, minilm_tokenizer, max_len):
    ex = read_glue_tsv("mrpc", "dev", glue_dir=glue_dir)
    ref_ids, ref_segs = _hf_ids(hf_tokenizer, ex.text_a, ex.text_b, max_len)
    enc = minilm_tokenizer.encode(ex.text_a, ex.text_b, max_seq_len=max_len)
    assert enc["token_ids"].to_list() == ref_ids
    assert enc["segment_ids"].to_list() == ref_segs
    assert enc["num_truncated"] == sum(
        len(e) > max_len - 3
        for e in (hf_tokenizer.encode(a, b, add_special_tokens=False).ids for a, b in zip(ex.text_a, ex.text_b))
    )


def test_parity_on_edge_cases(hf_tokenizer, minilm_tokenizer):
    ref_ids, _ = _hf_ids(hf_tokenizer, EDGE_CASES)
    assert minilm_tokenizer.encode(EDGE_CASES, max_seq_len=512)["token_ids"].to_list() == ref_ids


def test_empty_and_over_long_text(minilm_tokenizer):
    tok = minilm_tokenizer
    enc = tok.encode(["", "word " * 300], max_seq_len=16)
    assert enc["token_ids"].to_list()[0] == [tok.cls_id, tok.sep_id]
    assert len(enc["token_ids"].to_list()[1]) == 16 and enc["num_truncated"] == 1
    padded = tok("hello world", "second", max_seq_len=8)
    assert padded["token_ids"].shape == (1, 8)
    assert padded["padding_mask"].numpy().tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    assert padded["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]]


def test_vocabulary_errors(tmp_path):
    with pytest.raises(VocabularyError, match="vocabulary file not found: .*missing.txt"):
        read_vocab(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(VocabularyError, match="empty.txt: empty vocabulary"):
        read_vocab(tmp_path / "empty.txt")
    (tmp_path / "nocls.txt").write_text("[PAD]\n[UNK]\n[SEP]\nhello\n")
    with pytest.raises(VocabularyError, match=r"nocls.txt: vocabulary lacks special token\(s\) \['\[CLS\]'\]"):
        BertWordPieceTokenizer(tmp_path / "nocls.txt")


def test_mismatched_pair_lengths(minilm_tokenizer):
    with pytest.raises(ValueError, match="text_a has 2 texts but text_b has 1"):
        minilm_tokenizer.encode(["a", "b"], ["c"])
