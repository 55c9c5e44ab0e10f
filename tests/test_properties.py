"""Property-based tests (Hypothesis) on arbitrary Unicode text: the WordPiece tokenizer and its packing, the GLUE TSV
reader, and what an exported model receives from refbert-predict's packing.

Example counts are set per test (``max_examples``); ``pytest --hypothesis-show-statistics`` prints how many ran.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from refbert_tf.data import GlueDataError, read_glue_tsv

# Hypothesis keeps its example database and caches in ./.hypothesis by default: not in the checkout
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "refbert-tf-hypothesis")

CLS, SEP, PAD = 101, 102, 0  # MiniLM's [CLS], [SEP], [PAD]
COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# any code point but surrogates (which no UTF-8 text holds): control characters, unassigned, private use included
TEXT = st.text(max_size=120)
WORDS = st.lists(st.text(min_size=1, max_size=12), min_size=15, max_size=60).map(" ".join)  # long: truncated
ANY_TEXT = st.one_of(TEXT, WORDS, st.sampled_from(["", " ", "\t\n", "\x00\x07\x1b", "[CLS] [SEP] [PAD]", "a" * 150]))
# what a TSV field can hold: no tab and no line break (the reader has no quoting, see read_glue_tsv)
FIELD = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\t\n\r"), max_size=80)


def longest_first(n1: int, n2: int, budget: int) -> tuple[int, int]:
    """Hugging Face ``tokenizers``' ``TruncationStrategy::LongestFirst`` for a pair (utils/truncation.rs), in Python:
    the tokens kept of each text when ``n1 + n2`` exceed ``budget``."""
    if n1 + n2 <= budget:
        return n1, n2
    swap = n1 > n2
    short, long = (n2, n1) if swap else (n1, n2)
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short = budget // 2
        long = short + budget % 2
    keep1, keep2 = (long, short) if swap else (short, long)
    return min(keep1, n1), min(keep2, n2)


@settings(max_examples=150, **COMMON)
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=6), max_seq_len=st.integers(3, 48))
def test_any_text_packs_into_cls_text_sep_within_the_vocabulary_and_length(minilm_tokenizer, texts, max_seq_len):
    tok = minilm_tokenizer
    enc = tok.encode(texts, max_seq_len=max_seq_len)
    pieces = tok.tokenize(texts).to_list()
    ids, segs = enc["token_ids"].to_list(), enc["segment_ids"].to_list()
    assert len(ids) == len(segs) == len(texts)
    for row, seg, full in zip(ids, segs, pieces):
        assert 2 <= len(row) <= max_seq_len
        assert row[0] == CLS and row[-1] == SEP and seg == [0] * len(row)
        assert all(0 <= i < tok.vocab_size for i in row)
        assert row[1:-1] == full[: max_seq_len - 2]  # a truncated text keeps its first tokens
        assert not {CLS, SEP, PAD} & set(full)  # a text cannot inject special tokens ("[CLS]" is split)
    assert enc["num_truncated"] == sum(len(full) > max_seq_len - 2 for full in pieces)
    event("a text truncated" if enc["num_truncated"] else "no text truncated")


@settings(max_examples=150, **COMMON)
@given(pairs=st.lists(st.tuples(ANY_TEXT, ANY_TEXT), min_size=1, max_size=6), max_seq_len=st.integers(3, 48))
def test_any_pair_packs_into_cls_a_sep_b_sep_with_longest_first_truncation(minilm_tokenizer, pairs, max_seq_len):
    tok = minilm_tokenizer
    text_a, text_b = [a for a, _ in pairs], [b for _, b in pairs]
    enc = tok.encode(text_a, text_b, max_seq_len=max_seq_len)
    pieces_a, pieces_b = tok.tokenize(text_a).to_list(), tok.tokenize(text_b).to_list()
    for row, seg, a, b in zip(enc["token_ids"].to_list(), enc["segment_ids"].to_list(), pieces_a, pieces_b):
        assert 3 <= len(row) <= max_seq_len and len(seg) == len(row)
        assert row[0] == CLS and row[-1] == SEP
        assert all(0 <= i < tok.vocab_size for i in row)
        first = seg.count(0)  # [CLS] a [SEP] in segment 0, then b [SEP] in segment 1
        assert seg == [0] * first + [1] * (len(row) - first) and row[first - 1] == SEP
        kept_a, kept_b = row[1 : first - 1], row[first:-1]
        assert (len(kept_a), len(kept_b)) == longest_first(len(a), len(b), max_seq_len - 3)
        assert kept_a == a[: len(kept_a)] and kept_b == b[: len(kept_b)]
    event("a pair truncated" if enc["num_truncated"] else "no pair truncated")


@settings(max_examples=300, **COMMON)
@given(
    rows=st.lists(st.tuples(FIELD, st.sampled_from(["0", "1"])), min_size=1, max_size=8),
    bom=st.booleans(),
    crlf=st.booleans(),
)
def test_sentences_written_to_an_sst2_tsv_read_back_or_are_refused_at_their_line(rows, bom, crlf):
    end = "\r\n" if crlf else "\n"
    content = ("sentence\tlabel" + end + "".join(f"{s}\t{label}{end}" for s, label in rows)).encode("utf-8")
    empty = [i for i, (s, _) in enumerate(rows) if not s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SST-2" / "train.tsv"
        path.parent.mkdir()
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content)
        try:
            ex = read_glue_tsv("sst2", "train", glue_dir=tmp)
        except GlueDataError as e:  # only a text that is empty once stripped is refused, at its line
            assert empty and str(e).startswith(f"{path}:{empty[0] + 2}: empty text"), (str(e), rows)
            event("refused: an empty text")
            return
        assert not empty
        assert ex.text_a == [s.strip() for s, _ in rows] and ex.labels.tolist() == [int(lb) for _, lb in rows]
        assert ex.source == str(path)


# TSV-like lines, well-formed ones (a text, a tab, a label) more often than not, and any line ends
ROW = st.tuples(FIELD, st.sampled_from(["0", "1"])).map("\t".join)
FIELDS = st.lists(st.one_of(st.sampled_from(["0", "1", "", " ", "label", "sentence"]), TEXT), max_size=4)
LINE = st.one_of(ROW, ROW, ROW, FIELDS.map("\t".join))
LINES = st.tuples(st.lists(LINE, max_size=6), st.sampled_from(["\n", "\r\n", "\r"])).map(
    lambda t: t[1].join(t[0]) + t[1]
)


@settings(max_examples=300, **COMMON)
@given(
    body=st.one_of(LINES, st.text(max_size=300)),
    tail=st.one_of(st.just(b""), st.binary(max_size=20)),
    header=st.sampled_from(["sentence\tlabel\n", "sentence\tlabel\r\n", ""]),
)
def test_any_file_content_reads_or_is_refused_naming_the_file(body, tail, header):
    """Anything in an SST-2 TSV (tabs, line breaks, control characters, bytes that are not UTF-8): the reader
    returns well-formed examples or raises GlueDataError naming the file, never another exception."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SST-2" / "train.tsv"
        path.parent.mkdir()
        path.write_bytes((header + body).encode("utf-8") + tail)
        try:
            ex = read_glue_tsv("sst2", "train", glue_dir=tmp)
        except GlueDataError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e), str(e)
            event("refused with a GlueDataError")
            return
        assert len(ex) >= 1 and len(ex.labels) == len(ex) and set(ex.labels.tolist()) <= {0, 1}
        assert all(t and t == t.strip() and not {"\t", "\n", "\r"} & set(t) for t in ex.text_a)
        event("read")


@pytest.fixture(scope="module")
def spied_predictor(exported):
    """refbert-predict's ``(runner, tokenizer, card)`` for the exported float32 file, with every input the
    interpreter's signature runner receives recorded in ``runner.received``."""
    from refbert_tf.export.metadata import packed_files
    from refbert_tf.predict import load_predictor

    path = exported["float32"]["path"]
    runner, tokenizer, card = load_predictor(path)
    signature = runner.runner
    runner.received = []

    def spy(**inputs):
        runner.received.append({k: np.array(v) for k, v in inputs.items()})
        return signature(**inputs)

    runner.runner, runner.signature = spy, signature
    # the vocabulary refbert-predict reads is the model's: its embedding rows, the card's, the packed metadata's
    assert tokenizer.vocab_size == runner.vocab_size == card["vocab_size"] == 30522
    assert packed_files(path)["vocab.txt"] == tokenizer.vocab_sha256 == card["vocab_sha256"]
    return runner, tokenizer, card


@settings(max_examples=60, **COMMON)
@given(text=ANY_TEXT)
def test_the_model_receives_the_python_packing_and_truncates_an_unpacked_text_the_same_way(spied_predictor, text):
    from refbert_tf.predict import predict_texts

    runner, tokenizer, card = spied_predictor
    max_len = card["max_seq_len"]
    runner.received.clear()
    outputs, _ = predict_texts(runner, tokenizer, card, [text])
    (got,) = runner.received  # one interpreter call, with exactly the Python packing
    packed = tokenizer.encode([text], max_seq_len=max_len)["token_ids"].to_list()[0]
    assert got["token_ids"].dtype == np.int32 and got["token_ids"].shape == (1, len(packed))
    assert got["token_ids"][0].tolist() == packed and len(packed) <= max_len
    assert got["segment_ids"][0].tolist() == [0] * len(packed)
    assert got["padding_mask"][0].tolist() == [1] * len(packed)
    assert int(got["token_ids"].max()) < runner.vocab_size
    # the whole text packed without truncation (as MediaPipe's preprocessor does): the model's own in-graph
    # truncation gives the logits of refbert-predict's packing
    full = np.asarray([CLS, *tokenizer.tokenize([text]).to_list()[0], SEP], np.int32)[None]
    event("longer than max_seq_len: truncated in the graph" if full.shape[1] > max_len else "fits max_seq_len")
    logits = runner.signature(token_ids=full, segment_ids=np.zeros_like(full), padding_mask=np.ones_like(full))
    np.testing.assert_array_equal(np.asarray(logits["logits"][0]), outputs[0])
