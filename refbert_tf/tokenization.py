"""WordPiece tokenization from a checkpoint's ``vocab.txt``, matching Hugging Face's BERT tokenizer.

Pipeline (all TensorFlow ops, so it runs inside ``tf.data`` and graphs):

1. :func:`bert_normalize`: the normalization of Hugging Face's ``BertNormalizer`` (clean text: drop control
   characters and U+FFFD, map whitespace to spaces; for uncased checkpoints: NFD, strip combining marks,
   lower-case character by character). TF Text's own ``lower_case_nfd_strip_accents`` uses
   NFKC case folding instead, which differs on characters such as ``µ`` and ``ﬁ`` (measured on MRPC dev).
2. ``tensorflow_text.FastBertTokenizer`` with its normalization off: BERT's basic tokenizer (split on
   whitespace, punctuation, CJK ideographs) then WordPiece (Wu et al. 2016; Devlin et al. 2019), ``[UNK]`` for
   words longer than 100 characters as in BERT.
3. Packing: ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` with segment ids 0/1, truncated to ``max_seq_len``
   with Hugging Face's ``longest_first`` allocation (keras-hub's ``MultiSegmentPacker`` round-robin gives the
   odd token to the first text instead of the longer one, so ids would differ from the checkpoint's own
   tokenizer on truncated pairs).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
MAX_CHARS_PER_WORD = 100  # BERT's WordpieceTokenizer.max_input_chars_per_word
_CJK = (
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
    r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
)
# BERT's basic tokenizer: split on whitespace (dropped), punctuation (ASCII symbols count) and CJK (kept)
_KEEP = r"[!-/:-@\[-`{-~\p{P}" + _CJK + r"]"
_SPLIT = r"\s+|" + _KEEP
_UNKNOWN_WORD = "\ue000"  # private-use char: bert_normalize removes all of them, so it only marks long words


class VocabularyError(ValueError):
    """Raised for a missing, empty or incomplete ``vocab.txt`` (the message names the file)."""


def read_vocab(path: str | os.PathLike) -> list[str]:
    """Read a WordPiece ``vocab.txt`` (one token per line, id = line number - 1).

    Raises:
        VocabularyError: if the file is missing, empty, or lacks one of ``[PAD] [UNK] [CLS] [SEP]``.
    """
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"vocabulary file not found: {path}")
    with open(path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n").rstrip("\r") for line in f]
    if vocab and vocab[-1] == "":
        vocab.pop()
    if not vocab:
        raise VocabularyError(f"{path}: empty vocabulary")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise VocabularyError(f"{path}: vocabulary lacks special token(s) {missing}")
    return vocab


def bert_normalize(texts, lowercase: bool = True):
    """Hugging Face ``BertNormalizer`` in TF ops.

    Args:
        texts: string tensor of any shape.
        lowercase: lower-case and strip accents (uncased checkpoints), else only clean the text.

    Returns:
        string tensor of the same shape, ready for BERT's basic tokenizer (no further normalization).
    """
    x = tf.strings.regex_replace(texts, r"[\t\n\r\p{Z}]", " ")
    x = tf.strings.regex_replace(x, r"[\p{C}\x{FFFD}]", "")
    if lowercase:
        x = tf_text.normalize_utf8(x, "NFD")
        x = tf.strings.regex_replace(x, r"\p{Mn}", "")
        x = tf.strings.regex_replace(x, "Σ", "σ")  # HF lower-cases per character: no final-sigma rule
        x = tf.strings.lower(x, encoding="utf-8")
    return x


def split_words(texts, lowercase: bool = True):
    """BERT's basic tokenizer: :func:`bert_normalize`, then split on whitespace (dropped), punctuation and CJK
    ideographs (kept as words of their own).

    Args:
        texts: string tensor [N] (or a list of strings).
        lowercase: as :func:`bert_normalize`.

    Returns:
        ``tf.RaggedTensor`` string [N, (words)].
    """
    return tf_text.regex_split(bert_normalize(tf.convert_to_tensor(texts, tf.string), lowercase), _SPLIT, _KEEP)


def truncation_lengths(lengths, budget: int):
    """Per-example token counts to keep, Hugging Face ``tokenizers``' ``longest_first`` strategy.

    Single text: ``min(n, budget)``. Pair (n1 <= n2 after ordering): keep both if they fit; else cut only the longer
    to ``max(n1, budget - n1)``; if that still does not fit, keep ``budget // 2`` of the shorter and
    ``budget // 2 + budget % 2`` of the longer (ties: the second text gets the odd token).

    Args:
        lengths: list of one or two int64 tensors [N] (token counts without special tokens).
        budget: tokens available for the texts (max_seq_len minus special tokens).

    Returns:
        list of int64 tensors [N], one per text.
    """
    budget = tf.constant(budget, tf.int64)
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], budget)]
    n1, n2 = lengths
    swap = n1 > n2
    short = tf.minimum(n1, n2)
    long_keep = tf.where(short > budget, short, tf.maximum(short, budget - short))
    short_keep = short
    over = short_keep + long_keep > budget
    short_keep = tf.where(over, budget // 2, short_keep)
    long_keep = tf.where(over, budget // 2 + budget % 2, long_keep)
    keep1, keep2 = tf.where(swap, long_keep, short_keep), tf.where(swap, short_keep, long_keep)
    return [tf.minimum(keep1, n1), tf.minimum(keep2, n2)]


class BertWordPieceTokenizer:
    """BERT WordPiece tokenizer + pair packer for one checkpoint vocabulary.

    Args:
        vocab_path: the checkpoint's ``vocab.txt``.
        lowercase: True for uncased checkpoints (see :func:`refbert_tf.models.checkpoints.detect_lowercase`).
        max_seq_len: default packed length including ``[CLS]``/``[SEP]`` (tokens).

    Raises:
        VocabularyError: see :func:`read_vocab`.
        ValueError: if ``max_seq_len`` < 3 (pair) / 2 (single).
    """

    def __init__(self, vocab_path: str | os.PathLike, lowercase: bool = True, max_seq_len: int = 128):
        self.vocab_path = Path(vocab_path)
        self.vocab = read_vocab(self.vocab_path)
        self.lowercase = bool(lowercase)
        if max_seq_len < 3:
            raise ValueError(f"max_seq_len must be >= 3, got {max_seq_len}")
        self.max_seq_len = int(max_seq_len)
        index = {t: i for i, t in enumerate(self.vocab)}
        self.pad_id, self.unk_id = index["[PAD]"], index["[UNK]"]
        self.cls_id, self.sep_id = index["[CLS]"], index["[SEP]"]
        # words are split beforehand (basic tokenizer); the byte limit is lifted so that BERT's 100-*character*
        # rule, applied in tokenize(), decides which words become [UNK]
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            self.vocab,
            suffix_indicator="##",
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD + 4,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            no_pretokenization=True,
        )

    @property
    def vocab_size(self) -> int:
        """Number of tokens in ``vocab.txt``."""
        return len(self.vocab)

    @property
    def vocab_sha256(self) -> str:
        """SHA-256 of the vocabulary file's bytes: identifies the vocabulary in model cards and banks."""
        return hashlib.sha256(self.vocab_path.read_bytes()).hexdigest()

    def tokenize(self, texts):
        """WordPiece ids without special tokens.

        Args:
            texts: a string, a list of strings, or a string tensor [N].

        Returns:
            ``tf.RaggedTensor`` int32 [N, (tokens)] (or a 1-D tensor for a single string).
        """
        return self.tokenize_words(texts).merge_dims(-2, -1)

    def tokenize_words(self, texts):
        """WordPiece ids without special tokens, grouped by word (BERT's basic tokenizer's words).

        Args:
            texts: a list of strings or a string tensor [N] (a single string gives [(words), (pieces)]).

        Returns:
            ``tf.RaggedTensor`` int32 [N, (words), (pieces)]: two tokenizers with the same normalisation split a
            text into the same words, whatever their vocabularies.
        """
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        words = split_words(texts, self.lowercase)  # [N, (words)]
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        flat = tf.where(too_long, _UNKNOWN_WORD, flat)  # a word that is not in any vocabulary -> [UNK]
        pieces = self._wordpiece.tokenize(flat)  # [W, (pieces)]
        return words.with_flat_values(pieces)

    def encode(
        self,
        text_a: Sequence[str],
        text_b: Sequence[str] | None = None,
        max_seq_len: int | None = None,
        batch_size: int = 4096,
    ) -> dict:
        """Tokenize and pack texts into unpadded model inputs.

        Texts longer than ``max_seq_len`` are truncated (documented behaviour, never an error); the number of
        truncated examples is returned as ``num_truncated``.

        Args:
            text_a: N first texts.
            text_b: N second texts for sentence-pair tasks, or None.
            max_seq_len: packed length limit in tokens (default: the tokenizer's).
            batch_size: strings tokenized per TF call.

        Returns:
            ``{"token_ids": RaggedTensor int32 [N, (T)], "segment_ids": RaggedTensor int32 [N, (T)],
            "num_truncated": int}`` with T <= max_seq_len.

        Raises:
            ValueError: if ``text_b`` is given with a different length than ``text_a``.
        """
        max_seq_len = int(max_seq_len or self.max_seq_len)
        if text_b is not None and len(text_b) != len(text_a):
            raise ValueError(f"text_a has {len(text_a)} texts but text_b has {len(text_b)}")
        parts = []
        for start in range(0, len(text_a), batch_size):
            segments = [self.tokenize(list(text_a[start : start + batch_size]))]
            if text_b is not None:
                segments.append(self.tokenize(list(text_b[start : start + batch_size])))
            parts.append(self.pack(segments, max_seq_len))
        return concat_encoded(parts)

    def pack(self, segments, max_seq_len: int | None = None) -> dict:
        """Pack WordPiece ids (one or two texts per example) into ``[CLS] a [SEP] (b [SEP])`` inputs.

        Args:
            segments: list of one or two int32 ``tf.RaggedTensor`` [N, (pieces)] without special tokens (from
                :meth:`tokenize`, or mixed ids from :func:`refbert_tf.vocabulary.mixed_tokenize`).
            max_seq_len: packed length limit in tokens (default: the tokenizer's); longer examples are truncated
                with ``longest_first`` (:func:`truncation_lengths`).

        Returns:
            ``{"token_ids": RaggedTensor int32 [N, (T)], "segment_ids": RaggedTensor int32 [N, (T)],
            "num_truncated": int}`` with T <= max_seq_len, special tokens from this tokenizer's vocabulary.

        Raises:
            ValueError: not one or two segments.
        """
        if len(segments) not in (1, 2):
            raise ValueError(f"pack takes one or two texts per example, got {len(segments)}")
        max_seq_len = int(max_seq_len or self.max_seq_len)
        keep = truncation_lengths([s.row_lengths() for s in segments], max_seq_len - len(segments) - 1)
        full = tf.add_n([s.row_lengths() for s in segments])
        truncated = int(tf.reduce_sum(tf.cast(full > tf.add_n(keep), tf.int32)))
        n = tf.shape(segments[0].row_lengths(), out_type=tf.int64)
        column = tf.concat([n, [1]], 0)  # shape [N, 1]
        ids, segs = [tf.fill(column, self.cls_id)], [tf.zeros(column, tf.int32)]
        for seg_id, (seg, k) in enumerate(zip(segments, keep)):
            seg = tf.ragged.boolean_mask(seg, tf.ragged.range(seg.row_lengths()) < tf.expand_dims(k, 1))
            seg = tf.concat([seg, tf.fill(column, self.sep_id)], axis=1)
            ids.append(seg)
            segs.append(tf.ones_like(seg) * seg_id)
        return {"token_ids": tf.concat(ids, axis=1), "segment_ids": tf.concat(segs, axis=1), "num_truncated": truncated}

    def __call__(self, text_a, text_b=None, max_seq_len: int | None = None) -> dict:
        """Encode and pad to ``max_seq_len``: ``{"token_ids", "segment_ids", "padding_mask"}`` int32 [N, T]."""
        single = isinstance(text_a, str)
        if single:
            text_a, text_b = [text_a], None if text_b is None else [text_b]
        enc = self.encode(text_a, text_b, max_seq_len)
        max_len = int(max_seq_len or self.max_seq_len)
        ids = enc["token_ids"].to_tensor(self.pad_id, shape=[None, max_len])
        segs = enc["segment_ids"].to_tensor(0, shape=[None, max_len])
        mask = tf.cast(tf.sequence_mask(enc["token_ids"].row_lengths(), max_len), tf.int32)
        return {"token_ids": ids, "segment_ids": segs, "padding_mask": mask}


def concat_encoded(parts) -> dict:
    """Concatenate :meth:`BertWordPieceTokenizer.encode` / ``pack`` outputs row-wise (``num_truncated`` summed);
    no parts give zero examples."""
    parts = list(parts)
    if not parts:
        empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
        return {"token_ids": empty, "segment_ids": empty, "num_truncated": 0}
    return {
        "token_ids": tf.concat([p["token_ids"] for p in parts], axis=0),
        "segment_ids": tf.concat([p["segment_ids"] for p in parts], axis=0),
        "num_truncated": sum(p["num_truncated"] for p in parts),
    }
