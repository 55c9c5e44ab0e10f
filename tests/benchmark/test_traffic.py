"""The real-traffic length sampler, and dev lengths from the real SST-2 dev set."""

import pytest

from refbert_tf.benchmark.traffic import dev_lengths, sample_lengths


def test_sample_is_seeded_without_replacement_and_shuffled():
    lengths = list(range(2, 102))
    a, b = sample_lengths(lengths, 30, seed=1), sample_lengths(lengths, 30, seed=1)
    assert a == b and len(a) == len(set(a)) == 30 and set(a) <= set(lengths)
    assert sample_lengths(lengths, 30, seed=2) != a
    everything = sample_lengths(lengths, None, seed=0)
    assert sorted(everything) == lengths and everything != lengths  # all of them, in arrival (random) order
    assert sorted(sample_lengths(lengths, 10**6)) == lengths


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least one length"):
        sample_lengths([], 3)
    with pytest.raises(ValueError, match=">= 1 token"):
        sample_lengths([5, 0], 3)
    with pytest.raises(ValueError, match="num must be >= 1"):
        sample_lengths([5], 0)


def test_dev_lengths_are_the_packed_lengths(glue_dir, minilm_tokenizer):
    lengths = dev_lengths("sst2", minilm_tokenizer, 64, glue_dir=glue_dir)
    assert len(lengths) == 872 and min(lengths) >= 3 and max(lengths) <= 64
    first = minilm_tokenizer.encode(["it 's a charming and often affecting journey . "], max_seq_len=64)
    assert lengths[0] == int(first["token_ids"].row_lengths()[0])
