"""Benchmark report: headline ratios, markdown table and Pareto plot from rows of the benchmark schema."""

import pytest

from refbert_tf.benchmark.report import headline, markdown_table, pareto_plot


def _row(model, variant, size, median, dev=None, seq=128, threads=1):
    return {
        "model": model,
        "variant": variant,
        "seq_len": seq,
        "threads": threads,
        "size_mb": size,
        "init_ms": 5.0,
        "median_ms": median,
        "p90_ms": median * 1.1,
        "p99_ms": median * 1.3,
        "peak_mem_mb": 60.0,
        "dev_metric": dev,
        "dev_metric_name": "accuracy",
    }


ROWS = [
    _row("bert_base_shape", "float32", 400.0, 200.0),
    _row("refbert", "float32", 50.0, 10.0, 85.0),
    _row("refbert_no_bank", "float32", 40.0, 9.0),
    _row("refbert", "dynamic_int8", 16.0, 8.0, 84.5),
    _row("refbert", "float32", 50.0, 6.0, 85.0, seq=64),
]


def test_headline_ratios():
    h = headline(ROWS)
    assert h["vs_bert_base"]["float32"] == {"smaller": 8.0, "faster": 20.0}
    assert h["vs_bert_base"]["dynamic_int8"] == {"smaller": 25.0, "faster": 25.0}
    assert h["bank_share"]["float32"] == {"size": 0.2, "latency": 0.1}
    assert "dynamic_int8" not in h["bank_share"]  # no bank-less int8 row measured


def test_markdown_and_plot(tmp_path):
    md = markdown_table(ROWS, command="python recipes/benchmark.py")
    assert sum(line.startswith("| ") for line in md.splitlines()) == len(ROWS) + 1  # header + one per row
    assert "8.0x smaller, 20.0x faster" in md and "20.0% of size, 10.0% of latency" in md
    pareto_plot(ROWS, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        pareto_plot([_row("bert_base_shape", "float32", 400.0, 200.0)], tmp_path / "q.png")


def _rt(model, runtime, variant, size, median, dev=None, seq=32):
    return {**_row(model, variant, size, median, dev, seq=seq), "runtime": runtime}


def test_ratios_student_vs_teacher_runtimes_and_bank_cost():
    from refbert_tf.benchmark.report import ratios, ratios_markdown

    rows = [
        _rt("teacher", "litert", "dynamic_int8", 22.0, 4.0, 89.0),
        _rt("vanilla", "litert", "dynamic_int8", 11.0, 2.0, 88.0),
        _rt("refbert", "litert", "dynamic_int8", 16.5, 2.2, 88.5),
        _rt("refbert", "onnxruntime", "dynamic_int8", 17.0, 3.3, 88.5),
        _rt("refbert", "litert", "dynamic_int8", 16.5, 3.0, 88.5, seq="real"),
        _rt("vanilla", "litert", "dynamic_int8", 11.0, 2.5, 88.0, seq="real"),
    ]
    r = ratios(rows)
    by_student = {(x["student"], x["seq_len"]): x for x in r["student_vs_teacher"]}
    assert by_student[("vanilla", 32)] == {
        "student": "vanilla",
        "runtime": "litert",
        "variant": "dynamic_int8",
        "seq_len": 32,
        "threads": 1,
        "smaller": 2.0,
        "faster": 2.0,
        "metric_delta": -1.0,
    }
    assert by_student[("refbert", 32)]["faster"] == round(4.0 / 2.2, 2)
    assert ("refbert", "real") not in by_student  # no teacher row at real traffic
    assert r["litert_vs_onnxruntime"] == [
        {"model": "refbert", "variant": "dynamic_int8", "seq_len": 32, "threads": 1, "onnxruntime_over_litert": 1.5}
    ]
    cost = {x["seq_len"]: x["vs_vanilla"] for x in r["bank_cost"] if x["runtime"] == "litert"}
    assert cost == {32: 0.1, "real": 0.2}
    md = ratios_markdown(rows)
    assert "| refbert | dynamic_int8 | 32 | 1 | 1.50 |" in md and "+20.0%" in md


def test_engine_order_alternates():
    from refbert_tf.benchmark.suite import engine_order

    engines = ["a", "b", "c"]
    assert engine_order(engines, 0) == engines and engine_order(engines, 1) == ["c", "b", "a"]
    assert engine_order(engines, 2) == engines
