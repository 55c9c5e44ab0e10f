"""Golden tokenizer vectors, and the pure-Java WordPieceTokenizer of the Android demo checked against them."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from refbert_tf import golden

ROOT = Path(__file__).resolve().parents[1]
RUN_JAVA_TESTS = ROOT / "android_demo" / "run_java_tests.sh"
INSTALL_HINT = "install a JDK and JUnit 4 (Debian/Ubuntu: sudo apt-get install -y default-jdk-headless junit4)"

# from the Python tokenizer, whose ids equal Hugging Face's (tests/test_tokenization.py)
KNOWN = {
    "edge/uncased/empty": ([101, 102], [0, 0]),
    "edge/pair/pair_empty_both": ([101, 102, 102], [0, 0, 1]),
    "edge/uncased/long_a150": ([101, 100, 102], [0, 0, 0]),
    "edge/uncased/mixed_case": ([101, 7592, 2088, 18059, 9383, 1005, 1055, 102], [0] * 8),
    "edge/uncased/micro_ligature": ([101, 1085, 27390, 2226, 1984, 2595, 102], [0] * 7),
    # longest_first tie: 5 + 5 tokens, budget 3 -> 1 + 2 (the second text gets the odd token)
    "grid/5x5@6": ([101, 1996, 102, 1037, 13523, 102], [0, 0, 0, 1, 1, 1]),
}


def _java_tools():
    """Paths of javac/java and the JUnit + Hamcrest jars, or fail with the apt packages to install."""
    junit = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))
    hamcrest = Path(os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar"))
    missing = [
        name
        for name, ok in (
            ("javac", shutil.which("javac")),
            ("java", shutil.which("java")),
            (str(junit), junit.is_file()),
            (str(hamcrest), hamcrest.is_file()),
        )
        if not ok
    ]
    if missing:
        pytest.fail(f"the Java tokenizer test needs {', '.join(missing)}: {INSTALL_HINT}")


def _assert_java_equals_golden(golden_path, vocab_path, num_cases):
    """Run the Java tokenizer tests on a golden file and require every one of its ``num_cases`` cases equal."""
    proc = subprocess.run(
        ["bash", str(RUN_JAVA_TESTS), str(golden_path), str(vocab_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Java tokenizer tests failed (exit {proc.returncode}):\n{report[-6000:]}"
    match = re.search(r"GOLDEN: (\d+)/(\d+) cases equal \(100\.00%\)", report)
    assert match, report[-3000:]
    assert int(match.group(1)) == int(match.group(2)) == num_cases


def test_golden_vectors_match_java_tokenizer(tmp_path, glue_dir, minilm_dir):
    _java_tools()
    out = tmp_path / "golden.jsonl"
    header = golden.generate_golden(out, minilm_dir / "vocab.txt", glue_dir=glue_dir)
    n_edge = len(golden.edge_cases())
    assert header["num_cases"] == n_edge + 300 + 60 + 200 + 50 == 1072
    assert header["vocab_size"] == 30522
    _, records = golden.read_golden(out)
    by_name = {r["name"]: r for r in records}
    for name, (ids, segs) in KNOWN.items():
        assert (by_name[name]["token_ids"], by_name[name]["segment_ids"]) == (ids, segs), name
    assert by_name["sst2/dev/0"]["token_ids"][0] == 101 and by_name["sst2/dev/0"]["text_b"] is None
    mrpc = [r for r in records if r["name"].startswith("mrpc/") and r["max_seq_len"] == 32]
    assert all(len(r["token_ids"]) <= 32 for r in mrpc) and sum(r["truncated"] for r in mrpc) > 100
    assert all(1 in r["segment_ids"] for r in mrpc)
    assert out.read_text(encoding="utf-8").isascii()

    _assert_java_equals_golden(out, minilm_dir / "vocab.txt", header["num_cases"])


def _rejoin(pieces):
    """WordPiece pieces -> words: a ``##`` piece continues the word before it."""
    words = []
    for piece in pieces:
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return words


def test_golden_vectors_match_java_tokenizer_on_a_student_vocabulary(tmp_path, glue_dir):
    """The Java tokenizer on a small student vocabulary (refbert_tf.vocabulary): [CLS] is id 2 there, not 101,
    and most words are several pieces."""
    from refbert_tf.data import load_glue
    from refbert_tf.tokenization import read_vocab, split_words
    from refbert_tf.vocabulary import STUDENT_SPECIAL_TOKENS, train_student_vocabulary

    _java_tools()
    sst2 = load_glue("sst2", "train", glue_dir=glue_dir).take(5000)
    mrpc = load_glue("mrpc", "train", glue_dir=glue_dir).take(2000)
    texts = sst2.text_a + mrpc.text_a + mrpc.text_b
    vocab_path = train_student_vocabulary(texts, 2000, tmp_path / "student" / "vocab.txt", lowercase=True)
    vocab = read_vocab(vocab_path)
    assert vocab[: len(STUDENT_SPECIAL_TOKENS)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 1000 < len(vocab) <= 2000

    out = tmp_path / "golden.jsonl"
    header = golden.generate_golden(out, vocab_path, glue_dir=glue_dir)
    assert header["num_cases"] == len(golden.edge_cases()) + 300 + 60 + 200 + 50
    assert header["vocab_size"] == len(vocab_path.read_text(encoding="utf-8").splitlines()) == len(vocab)
    _, records = golden.read_golden(out)
    by_name = {r["name"]: r for r in records}
    assert by_name["edge/uncased/empty"]["token_ids"] == [2, 3]
    assert by_name["edge/uncased/long_a150"]["token_ids"] == [2, 1, 3]  # [UNK] is 1
    assert by_name["edge/pair/pair_empty_both"]["token_ids"] == [2, 3, 3]
    # a plain ASCII sentence: its ids decode to pieces, some words are several, and they rejoin to its words
    rec = by_name["sst2/dev/1"]
    assert rec["text_a"] == "unflinchingly bleak and desperate" and rec["text_a"].isascii()
    ids = rec["token_ids"]
    assert (ids[0], ids[-1]) == (2, 3) and not rec["truncated"]
    pieces = [vocab[i] for i in ids[1:-1]]
    words = [w.decode("utf-8") for w in split_words([rec["text_a"]], True).to_list()[0]]
    assert "[UNK]" not in pieces and len(pieces) > len(words), pieces
    assert _rejoin(pieces) == words
    assert all(r["token_ids"][0] == 2 for r in records)
    glue_ids = [i for r in records if r["name"].startswith(("sst2/", "mrpc/")) for i in r["token_ids"]]
    assert sum(vocab[i].startswith("##") for i in glue_ids) > 0.1 * len(glue_ids)  # many words split
    assert max(glue_ids) < len(vocab) and sum(i == 1 for i in glue_ids) < 0.01 * len(glue_ids)

    _assert_java_equals_golden(out, vocab_path, header["num_cases"])


def test_committed_edge_cases_are_current(tmp_path, minilm_dir):
    """The committed file (edge cases only, no GLUE text) equals what refbert_tf.golden generates now."""
    committed = ROOT / golden.COMMITTED_GOLDEN
    fresh = tmp_path / "edge.jsonl"
    golden.generate_golden(fresh, minilm_dir / "vocab.txt", glue_dir=None)
    assert committed.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        f"{committed} is stale: regenerate it with "
        f"python recipes/make_golden_vectors.py --edge-cases-only --out {golden.COMMITTED_GOLDEN}"
    )
    _, records = golden.read_golden(committed)
    assert not any(r["name"].startswith(("sst2/", "mrpc/")) for r in records)


def test_compute_rejects_bad_inputs(minilm_dir):
    vocab = minilm_dir / "vocab.txt"
    with pytest.raises(ValueError, match="unique"):
        golden.compute([golden.GoldenInput("x", "a", None, 8)] * 2, vocab)
    with pytest.raises(ValueError, match="x: max_seq_len 2 leaves no room"):
        golden.compute([golden.GoldenInput("x", "a", "b", 2)], vocab)
