""" "Real traffic": the lengths at which a deployed classifier actually runs, sampled from a task's dev set.

Fixed lengths of 64 and 128 tokens say little about a model that sees SST-2 sentences, most of which pack to
under 40 tokens. The benchmark times every sampled dev example at its own packed length (``[CLS]``, the
wordpieces, ``[SEP]``, truncated at the model's maximum), one input after the other in a shuffled order, as an app
receives them (:func:`refbert_tf.benchmark.desktop.measure_in_process` with ``lengths``).
"""

from __future__ import annotations

import numpy as np


def sample_lengths(lengths, num: int | None = 200, seed: int = 0) -> list[int]:
    """A seeded random sample of ``num`` lengths without replacement, in random (arrival) order.

    Args:
        lengths: packed lengths of every example (tokens), e.g. from :func:`dev_lengths`.
        num: how many to keep (None or more than there are: all of them, shuffled).
        seed: NumPy seed; the same seed gives the same sample.

    Returns:
        list of int lengths.

    Raises:
        ValueError: no lengths, a length < 1, or ``num`` < 1.
    """
    lengths = np.asarray(list(lengths), dtype=np.int64)
    if lengths.size == 0 or lengths.min() < 1:
        raise ValueError("need at least one length, each >= 1 token")
    if num is not None and num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    rng = np.random.default_rng(seed)
    take = lengths.size if num is None else min(int(num), lengths.size)
    return [int(n) for n in lengths[rng.permutation(lengths.size)[:take]]]


def dev_lengths(task, tokenizer, max_seq_len: int, glue_dir=None) -> list[int]:
    """Packed lengths (tokens, ``[CLS]`` and ``[SEP]`` included, truncated at ``max_seq_len``) of every dev example.

    Raises:
        refbert_tf.data.GlueDataError: from :func:`refbert_tf.data.load_glue`.
    """
    from refbert_tf.data import load_glue  # lazy: imports TensorFlow; sample_lengths does not need it

    dev = load_glue(task, "dev", glue_dir=glue_dir)
    features = tokenizer.encode(dev.text_a, dev.text_b, max_seq_len)
    return [int(n) for n in features["token_ids"].row_lengths().numpy()]
