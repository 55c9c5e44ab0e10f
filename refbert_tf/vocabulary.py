"""A student vocabulary, and the mixed tokenization that aligns it with the teacher's.

Zhao et al., "Extremely Small BERT Models from Mixed-Vocabulary Training" (EACL 2021), Sec. 3: most of a small
BERT's parameters are the teacher's 30k-piece embedding table, so the student reads a vocabulary of a few thousand
WordPiece tokens learned from the task's text instead (4,928 there). To align the new embeddings with the
teacher's, the teacher is first trained on *mixed* inputs, in which each word is tokenized with the student
vocabulary with probability ``p`` and with its own otherwise (Sec. 3.1, stage I).

- :func:`train_student_vocabulary` learns the vocabulary with the ``tokenizers`` library's WordPiece trainer on
  text normalised and split exactly as :class:`~refbert_tf.tokenization.BertWordPieceTokenizer` does (so a piece
  never spans a word the teacher's tokenizer would split), and writes it as a BERT ``vocab.txt``.
- :func:`mixed_tokenize` picks, word by word, one vocabulary or the other: every word stays whole in one.

A character the student vocabulary never saw makes its word ``[UNK]`` (WordPiece's rule: a word it cannot cover
with pieces is one ``[UNK]``); :func:`unknown_rate` measures how often that happens on a text set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

from refbert_tf.io_utils import atomic_path
from refbert_tf.tokenization import SPECIAL_TOKENS, BertWordPieceTokenizer, split_words

STUDENT_SPECIAL_TOKENS = (*SPECIAL_TOKENS, "[MASK]")  # ids 0..4 of a student vocabulary


def train_student_vocabulary(
    texts: Iterable[str],
    vocab_size: int,
    out_path: str | os.PathLike,
    lowercase: bool = True,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    batch_size: int = 4096,
) -> Path:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens from ``texts`` and write it as ``vocab.txt``.

    The texts are normalised and split into words by :func:`~refbert_tf.tokenization.split_words` (the teacher's
    normalisation: BERT's clean-up, and for ``lowercase`` NFD, accents stripped, lower case), then handed to
    ``tokenizers.trainers.WordPieceTrainer`` (``##`` continuation prefix). Lines of the file: the special tokens
    ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4), then the learned tokens, sorted.

    Args:
        texts: training text (the task's training sentences, both sides of a pair).
        vocab_size: the vocabulary's size in tokens, special tokens included (the trainer may stop short of it on
            a small corpus).
        out_path: the ``vocab.txt`` to write (atomically).
        lowercase: the teacher's casing (an uncased teacher: True).
        min_frequency: a merge must occur at least this often.
        limit_alphabet: at most this many distinct characters are kept as single-character pieces (the most
            frequent ones); rarer characters become ``[UNK]``.
        batch_size: texts normalised per TensorFlow call.

    Returns:
        ``out_path``.

    Raises:
        ValueError: ``vocab_size`` not above the number of special tokens, or no text at all.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # lazy: only this step trains a vocabulary

    if vocab_size <= len(STUDENT_SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be > {len(STUDENT_SPECIAL_TOKENS)} (the special tokens), got {vocab_size}")
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("train_student_vocabulary: no text to learn a vocabulary from")

    def words():
        for start in range(0, len(texts), batch_size):
            for row in split_words(texts[start : start + batch_size], lowercase).to_list():
                yield " ".join(w.decode("utf-8") for w in row)

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # the words are split already
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        limit_alphabet=limit_alphabet,
        special_tokens=list(STUDENT_SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(words(), trainer, length=len(texts))
    # not bit-reproducible: the trainer breaks ties between merges of equal count by symbol ids it assigns in
    # hash-map order, so two trainings on the same text can differ in a few pieces (2 of 1,000 seen); the
    # saved file, named by its checksum in the card, is the vocabulary, and a resumed run reuses it
    # the id order of tokens of equal count still follows the trainer's internals; greedy longest-match WordPiece
    # depends only on the set of tokens, so they are written sorted: the same set, the same file
    tokens = list(STUDENT_SPECIAL_TOKENS) + sorted(set(tokenizer.get_vocab()) - set(STUDENT_SPECIAL_TOKENS))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    return out_path


def unknown_rate(tokenizer: BertWordPieceTokenizer, texts) -> float:
    """Fraction of the WordPiece tokens of ``texts`` that are ``[UNK]`` under ``tokenizer`` (0 to 1)."""
    ids = tokenizer.tokenize(list(texts)).flat_values.numpy()
    return float(np.mean(ids == tokenizer.unk_id)) if ids.size else 0.0


def mixed_tokenize(
    teacher: BertWordPieceTokenizer, student: BertWordPieceTokenizer, texts, p: float, seed: int = 0
) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Tokenize each word with the student vocabulary with probability ``p``, else with the teacher's
    (Zhao et al. 2021, Sec. 3.1).

    Both tokenizers must normalise alike (``lowercase``), so that they split every text into the same words.
    Student ids are offset by ``teacher.vocab_size``: an id ``i >= teacher.vocab_size`` is the student's token
    ``i - teacher.vocab_size``, looked up in the student-vocabulary embedding table.

    Args:
        teacher, student: the two tokenizers.
        texts: N strings.
        p: probability that a word is tokenized with the student vocabulary (0: the teacher's tokenization, 1: the
            student's, offset).
        seed: NumPy seed of the per-word choices.

    Returns:
        ``(ids, from_student)``: int32 ``tf.RaggedTensor`` [N, (pieces)] of mixed ids, and bool [N, (words)], which
        words were tokenized with the student vocabulary.

    Raises:
        ValueError: ``p`` outside [0, 1], or tokenizers of different casing.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if teacher.lowercase != student.lowercase:
        raise ValueError("the teacher's and the student's tokenizers normalise differently (lowercase differs)")
    texts = [str(t) for t in texts]
    ours, theirs = teacher.tokenize_words(texts), student.tokenize_words(texts)  # [N, (words), (pieces)]
    num_words = int(ours.values.nrows())
    choice = np.random.default_rng(seed).random(num_words) < p
    pieces_t, pieces_s = ours.values, theirs.values + teacher.vocab_size  # [W, (pieces)]
    lengths = np.where(choice, pieces_s.row_lengths().numpy(), pieces_t.row_lengths().numpy())
    flat_t, flat_s = pieces_t.to_list(), pieces_s.to_list()
    flat = [piece for w in range(num_words) for piece in (flat_s[w] if choice[w] else flat_t[w])]
    words = tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.int32), lengths)
    mixed = tf.RaggedTensor.from_row_splits(words, ours.row_splits).merge_dims(-2, -1)
    return mixed, tf.RaggedTensor.from_row_splits(tf.constant(choice), ours.row_splits)
