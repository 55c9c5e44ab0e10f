"""Golden tokenizer vectors: inputs and the ids :class:`~refbert_tf.tokenization.BertWordPieceTokenizer` gives them.

The Android demo's pure-Java ``WordPieceTokenizer`` is tested against these files (``android_demo/``), so
the Java and Python tokenizers stay id-for-id identical.

File format (JSON lines, ``json.dumps(ensure_ascii=True)``, so every line is ASCII and non-ASCII text is
written as ``\\uXXXX`` escapes, surrogate pairs above U+FFFF):

- line 1, the header: ``{"format": "refbert-golden-v1", "vocab_sha256", "vocab_size", "num_cases"}``;
- one line per case: ``{"name", "text_a", "text_b" (or null), "max_seq_len", "lowercase", "token_ids",
  "segment_ids", "truncated"}``. ``token_ids`` / ``segment_ids`` are the unpadded packed sequence
  ``[CLS] a [SEP] (b [SEP])``; ``truncated`` says whether ``longest_first`` truncation removed tokens.

Cases: hand-written edge cases (:func:`edge_cases`, cased and uncased), a grid of pair lengths x small
``max_seq_len`` for ``longest_first`` truncation (:func:`truncation_grid`), and optionally real GLUE dev
sentences (:func:`glue_cases`: SST-2 singles, MRPC pairs at ``max_seq_len`` 32 and 128). GLUE text is only
written to files generated at test time, never to the committed edge-case file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from refbert_tf.data import load_glue
from refbert_tf.io_utils import write_text
from refbert_tf.models.checkpoints import default_teacher_dir, detect_lowercase
from refbert_tf.tokenization import BertWordPieceTokenizer, read_vocab

FORMAT = "refbert-golden-v1"
COMMITTED_GOLDEN = Path("android_demo/app/src/test/resources/golden_vectors.jsonl")  # relative to the repo root

# (name, text): each becomes a single-text case, uncased and cased, at max_seq_len 128
EDGE_TEXTS = (
    # accents and case
    ("accents", "Café naïve résumé"),
    ("accents_upper", "ÅNGSTRÖM Crème Brûlée"),
    ("accents_vi", "Tiếng Việt"),
    ("accents_ru", "Ёлка, Привет мир!"),
    ("accents_combining", "e\u0301e\u0300 n\u0303"),
    ("mixed_case", "HeLLo WoRLD iPhone McDonald's"),
    ("titlecase_dz", "ǅemal Ǆ"),
    ("dotted_i", "İstanbul ıI"),
    ("kelvin_ohm", "5 \u212a and 3 \u2126"),
    ("sharp_s", "Straße ẞTRASSE"),
    ("greek_iota", "ᾼ ᾳ ΐ"),
    ("deseret", "\U00010400\U00010401 word"),
    ("georgian", "ᲐᲑᲒ ქართული"),
    ("cherokee", "ᏣᎳᎩ"),
    ("roman_numeral", "Ⅻ ⅻ Ⅳ"),
    ("n_apostrophe", "ŉ ǰ"),
    # the characters where HF's per-character lower-casing differs from NFKC case folding
    ("micro_ligature", "µGuru ﬁx"),
    ("sigma", "ΣΑΣ and σας ΟΔΥΣΣΕΥΣ"),
    ("ligatures", "ﬀ ﬂ ﬃ ﬆ"),
    # punctuation
    ("ascii_punct", "Hello, world! (really?) [yes] {no} <tag> a/b\\c ~`^_|@#$%&*+=-\"'"),
    ("unicode_punct", "“smart quotes” ‘single’ — em – en … ¿Qué? ¡Sí! «guillemets» 〈test〉"),
    ("contractions", "don't won't y'all U.S.A. e-mail"),
    ("url", "https://example.com/path?q=1&r=2#frag"),
    ("email_tags", "a.b@c.org #hashtag @user"),
    ("code", "x += y**2; // comment"),
    ("symbols", "© ® ™ ° § ¶ † ‡ • € £ ¥ ₹"),
    ("math", "∑ ∫ √ ≤ ≥ ≠ ± × ÷"),
    # CJK and other scripts
    ("cjk_zh", "北京欢迎你 to Tokyo"),
    ("cjk_ja", "日本語のテキストです。"),
    ("cjk_ko", "한국어 문장입니다"),
    ("cjk_punct", "中文，标点。「引号」"),
    ("cjk_ext_b", "\U00020000\U0002a6d6 ext"),
    ("cjk_compat", "豈 更 \U0002f800"),
    ("halfwidth", "ｶﾀｶﾅ ｱｲｳ"),
    ("fullwidth", "１２３ＡＢＣ！"),
    ("arabic", "مرحبا بالعالم ٣٤٥"),
    ("hebrew_niqqud", "שָׁלוֹם"),
    ("hindi_virama", "नमस्ते दुनिया"),
    ("thai", "สวัสดีครับ"),
    # numbers
    ("numbers", "3.14159 1,000,000 2nd 3rd 1e-10"),
    ("money", "$5.00 & 10%!"),
    ("fractions", "½ ² ³ ¼"),
    # emoji
    ("emoji", "emoji 😀 test"),
    ("emoji_skin", "👍🏽 ok"),
    ("emoji_zwj", "👨\u200d👩\u200d👧 family"),
    ("emoji_vs16", "❤\ufe0f love"),
    ("emoji_flag", "🇺🇸 flag"),
    ("emoji_new", "shaking \U0001fae8 face"),
    # whitespace variants
    ("tab_newline", "tab\there\nnew line"),
    ("nbsp", "nbsp\u00a0here"),
    ("line_sep", "line\u2028separator"),
    ("para_sep", "para\u2029sep"),
    ("ideographic_space", "ideographic\u3000space"),
    ("thin_space", "thin\u2009space\u202fnarrow"),
    ("crlf", "crlf\r\nx\ry"),
    ("vt_ff", "a\x0bb\x0cc"),
    ("padded", "   leading and trailing   "),
    ("many_spaces", "multiple      spaces"),
    ("mongolian_vs", "\u180emongolian"),
    # control, format, private-use and replacement characters
    ("control", "x\x00y\ufffdz\x1f"),
    ("nel", "a\x85b"),
    ("zero_width", "zero\u200bwidth\u200cjoiner"),
    ("soft_hyphen", "soft\u00adhyphen"),
    ("bom", "bom\ufeffhere"),
    ("rtl_mark", "rtl\u200fmark"),
    ("tag_char", "p\U000e0001q"),
    ("private_use", "\ue000x \U000f0000y"),
    ("unassigned", "a\u0378b"),
    ("combining_alone", "\u0345 \u0301"),
    # empty after normalization
    ("empty", ""),
    ("spaces_only", "   "),
    ("whitespace_only", "\t\n\r\u00a0\u2028"),
    ("controls_only", "\x00\x01\ufffd\u200b"),
    # long words: BERT's rule is > 100 characters (after normalization) -> [UNK]
    ("long_a150", "a" * 150),
    ("long_zhe101", "ж" * 101),
    ("long_zhe100", "ж" * 100),
    ("long_ab100", "ab" * 50),
    ("long_ab101", "ab" * 50 + "c"),
    ("long_x101_in_text", "before " + "x" * 101 + " after"),
    ("long_accented100", "é" * 100),
    ("long_accented101", "é" * 101),
    ("long_emoji101", "😀" * 101),
    ("long_emoji60", "😀" * 60),
    ("long_word_repeat", "supercalifragilisticexpialidocious" * 3),
    ("long_punct", "!" * 120),
    ("long_cjk", "中" * 120),
    # unknown pieces inside a word
    ("unknown_piece", "abc😀def"),
    ("mixed_word", "hello😀"),
)

# (name, text_a, text_b, max_seq_len): pairs, uncased only
EDGE_PAIRS = (
    ("pair_basic", "How are you?", "I am fine, thanks.", 128),
    ("pair_empty_a", "", "hello world", 16),
    ("pair_empty_b", "hello world", "", 16),
    ("pair_empty_both", "", "", 16),
    ("pair_cjk", "北京欢迎你", "東京へようこそ", 10),
    ("pair_long_words", "a" * 150, "ж" * 101, 8),
    ("pair_tie", "one two three four five", "six seven eight nine ten", 8),
    ("pair_long_short", "the " * 40, "x", 12),
    ("pair_short_long", "x", "the " * 40, 12),
    ("pair_both_long", "the " * 40, "a " * 41, 13),
    ("pair_min_len", "hello world", "again", 3),
    ("pair_accents", "Café naïve", "ÅNGSTRÖM résumé µGuru ﬁx ΣΑΣ", 9),
    ("pair_whitespace", "tab\there\u00a0nbsp", "line\u2028sep\u3000x", 7),
)

GRID_LENGTHS = (0, 1, 2, 3, 5, 8)
GRID_MAX_SEQ_LENS = (3, 4, 5, 6, 7, 9, 12)
_GRID_WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "ran")  # one wordpiece each (checked)


@dataclasses.dataclass(frozen=True)
class GoldenInput:
    """One tokenizer test input (no ids yet).

    Attributes:
        name: unique label, shown by the Java test on a mismatch (``edge/...``, ``sst2/dev/12``...).
        text_a: first text.
        text_b: second text of a pair, or None.
        max_seq_len: packed length limit including special tokens (>= 2 single, >= 3 pair).
        lowercase: uncased normalization (lower-case + strip accents) or cased (clean text only).
    """

    name: str
    text_a: str
    text_b: str | None
    max_seq_len: int
    lowercase: bool = True


def edge_cases() -> list[GoldenInput]:
    """Hand-written inputs: :data:`EDGE_TEXTS` uncased and cased (max_seq_len 128, plus 16 for truncation of a
    single text), :data:`EDGE_PAIRS` uncased, then :func:`truncation_grid`. Contains no GLUE text."""
    cases = []
    for lowercase in (True, False):
        tag = "uncased" if lowercase else "cased"
        cases += [GoldenInput(f"edge/{tag}/{name}", text, None, 128, lowercase) for name, text in EDGE_TEXTS]
    cases += [
        GoldenInput(f"edge/uncased/{name}@16", text, None, 16, True)
        for name, text in EDGE_TEXTS
        if name.startswith(("long_", "ascii_punct", "unicode_punct", "cjk_"))
    ]
    cases += [GoldenInput(f"edge/pair/{name}", a, b, n, True) for name, a, b, n in EDGE_PAIRS]
    return cases + truncation_grid()


def truncation_grid() -> list[GoldenInput]:
    """Pairs of n1 x n2 one-piece words (n in :data:`GRID_LENGTHS`) at every max_seq_len in
    :data:`GRID_MAX_SEQ_LENS`: every branch of ``longest_first`` (fit, cut the longer, halve; ties)."""

    def words(n, offset):
        return " ".join(_GRID_WORDS[(offset + i) % len(_GRID_WORDS)] for i in range(n))

    return [
        GoldenInput(f"grid/{n1}x{n2}@{m}", words(n1, 0), words(n2, 4), m, True)
        for n1 in GRID_LENGTHS
        for n2 in GRID_LENGTHS
        for m in GRID_MAX_SEQ_LENS
    ]


def glue_cases(
    glue_dir: str | os.PathLike, num_sst2: int = 300, num_mrpc: int = 200, lowercase: bool = True
) -> list[GoldenInput]:
    """Real sentences from the GLUE dev files (read with :func:`refbert_tf.data.load_glue`).

    Args:
        glue_dir: GLUE root (``SST-2/dev.tsv``, ``MRPC/dev.tsv``).
        num_sst2: first SST-2 dev sentences, as single texts at max_seq_len 128 (every fifth also at 16).
        num_mrpc: first MRPC dev pairs at max_seq_len 32 (``longest_first`` truncation on most of them); the
            first quarter also at 128 (no truncation).
        lowercase: the checkpoint's casing.

    Returns:
        about ``1.2 * num_sst2 + 1.25 * num_mrpc`` inputs.

    Raises:
        refbert_tf.data.GlueDataError: missing or malformed GLUE files.
    """
    sst2 = load_glue("sst2", "dev", glue_dir=glue_dir).take(num_sst2)
    mrpc = load_glue("mrpc", "dev", glue_dir=glue_dir).take(num_mrpc)
    cases = [GoldenInput(f"sst2/dev/{i}", t, None, 128, lowercase) for i, t in enumerate(sst2.text_a)]
    cases += [GoldenInput(f"sst2/dev/{i}@16", t, None, 16, lowercase) for i, t in enumerate(sst2.text_a) if i % 5 == 0]
    pairs = list(zip(mrpc.text_a, mrpc.text_b))
    cases += [GoldenInput(f"mrpc/dev/{i}@32", a, b, 32, lowercase) for i, (a, b) in enumerate(pairs)]
    cases += [
        GoldenInput(f"mrpc/dev/{i}@128", a, b, 128, lowercase)
        for i, (a, b) in enumerate(pairs)
        if i < max(1, len(pairs) // 4)
    ]
    return cases


def compute(cases: Sequence[GoldenInput], vocab_path: str | os.PathLike) -> list[dict]:
    """Encode every input with the Python tokenizer (batched per casing / max_seq_len / single-or-pair).

    Args:
        cases: N inputs; names must be unique.
        vocab_path: the checkpoint's ``vocab.txt``.

    Returns:
        N dicts in input order: the :class:`GoldenInput` fields plus ``token_ids``, ``segment_ids`` (lists of
        ints, same length <= max_seq_len) and ``truncated`` (bool).

    Raises:
        ValueError: duplicate names, or a max_seq_len below 2 (single) / 3 (pair).
        refbert_tf.tokenization.VocabularyError: bad ``vocab.txt``.
    """
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("golden case names must be unique")
    for c in cases:
        if c.max_seq_len < (3 if c.text_b is not None else 2):
            raise ValueError(f"{c.name}: max_seq_len {c.max_seq_len} leaves no room for the special tokens")
    tokenizers = {}
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault((c.lowercase, c.max_seq_len, c.text_b is not None), []).append(i)
    out: list[dict | None] = [None] * len(cases)
    for (lowercase, max_len, pair), idx in groups.items():
        if lowercase not in tokenizers:
            tokenizers[lowercase] = BertWordPieceTokenizer(vocab_path, lowercase=lowercase)
        tok = tokenizers[lowercase]
        a = [cases[i].text_a for i in idx]
        b = [cases[i].text_b for i in idx] if pair else None
        enc = tok.encode(a, b, max_seq_len=max_len)
        full = [len(x) for x in tok.tokenize(a).to_list()]
        if pair:
            full = [n + len(x) for n, x in zip(full, tok.tokenize(b).to_list())]
        specials = 3 if pair else 2
        for i, ids, segs, n in zip(idx, enc["token_ids"].to_list(), enc["segment_ids"].to_list(), full):
            out[i] = {
                **dataclasses.asdict(cases[i]),
                "token_ids": ids,
                "segment_ids": segs,
                "truncated": n + specials > len(ids),
            }
    return out


def write_golden(path: str | os.PathLike, records: Sequence[dict], vocab_path: str | os.PathLike) -> dict:
    """Write the header and ``records`` (from :func:`compute`) as ASCII JSON lines, atomically.

    Returns:
        the header dict (``format``, ``vocab_sha256``, ``vocab_size``, ``num_cases``).
    """
    vocab_path = Path(vocab_path)
    header = {
        "format": FORMAT,
        "vocab_sha256": hashlib.sha256(vocab_path.read_bytes()).hexdigest(),
        "vocab_size": len(read_vocab(vocab_path)),
        "num_cases": len(records),
    }
    lines = [json.dumps(header, ensure_ascii=True)] + [json.dumps(r, ensure_ascii=True) for r in records]
    write_text(path, "\n".join(lines) + "\n")
    return header


def read_golden(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """Read a golden file: ``(header, records)``.

    Raises:
        ValueError: not a ``refbert-golden-v1`` file, or the case count differs from the header's.
    """
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    header = json.loads(lines[0]) if lines else {}
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} golden file")
    records = [json.loads(line) for line in lines[1:]]
    if len(records) != header["num_cases"]:
        raise ValueError(f"{path}: header says {header['num_cases']} cases, file has {len(records)}")
    return header, records


def generate_golden(
    out: str | os.PathLike,
    vocab_path: str | os.PathLike | None = None,
    glue_dir: str | os.PathLike | None = None,
    num_sst2: int = 300,
    num_mrpc: int = 200,
    extra: Iterable[GoldenInput] = (),
) -> dict:
    """Compute and write a golden file: edge cases, plus GLUE dev cases when ``glue_dir`` is given.

    Args:
        out: destination ``.jsonl``.
        vocab_path: ``vocab.txt`` (default: the default teacher's,
            :func:`refbert_tf.models.checkpoints.default_teacher_dir`); its casing is detected with
            :func:`refbert_tf.models.checkpoints.detect_lowercase` for the GLUE cases.
        glue_dir: GLUE root, or None for edge cases only (the committed file).
        num_sst2, num_mrpc: see :func:`glue_cases`.
        extra: more inputs appended at the end.

    Returns:
        the header dict (see :func:`write_golden`).

    Raises:
        refbert_tf.models.checkpoints.CheckpointError: no ``vocab_path`` and the default teacher is missing.
        refbert_tf.data.GlueDataError, refbert_tf.tokenization.VocabularyError, ValueError: see the callees.
    """
    vocab_path = Path(vocab_path) if vocab_path is not None else default_teacher_dir() / "vocab.txt"
    cases = edge_cases()
    if glue_dir is not None:
        lowercase = detect_lowercase(vocab_path.parent, read_vocab(vocab_path))
        cases += glue_cases(glue_dir, num_sst2, num_mrpc, lowercase)
    cases += list(extra)
    return write_golden(out, compute(cases, vocab_path), vocab_path)
