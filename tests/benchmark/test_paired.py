"""Paired timing of two files in one process (keys and errors; no timing is asserted)."""

import pytest

from refbert_tf.benchmark.paired import paired_benchmark, paired_in_process


def test_paired_child_reports_both_and_their_ratio(exported):
    path = exported["dynamic_int8"]["path"]
    r = paired_benchmark(path, exported["float32"]["path"], [5, 9, 7], runs=2)
    assert r["count"] == 3 and r["median_ms_a"] > 0 and r["median_ms_b"] > 0
    assert r["ratio_p10"] <= r["ratio_median"] <= r["ratio_p90"]


def test_bad_lengths_are_refused(exported):
    path = exported["float32"]["path"]
    with pytest.raises(ValueError, match="lengths >= 2"):
        paired_in_process(path, path, [1, 5])
    with pytest.raises(RuntimeError, match="paired benchmark failed"):
        paired_benchmark(path, path, [5], runs=0)
