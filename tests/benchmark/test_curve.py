"""The size x latency x accuracy curve (refbert_tf/benchmark/curve.py)."""

import pytest

from refbert_tf.benchmark.curve import curve_markdown, curve_plot, curve_table, measure_curve


def _row(label, size, ms_real, metric, task="sst2"):
    return {"path": label, "label": label, "task": task, "size_mb": size, "vocab_size": 100, "metric": "accuracy",
            "dev_metric": metric, "variant": "dynamic_int8", "median_len": 20, "seq_len": 128, "threads": 1,
            "ms_fixed": 2 * ms_real, "ms_real": ms_real, "real_p90_ms": ms_real, "peak_mem_mb": 50.0}  # fmt: skip


def test_ratios_and_targets_are_against_the_first_row():
    table = curve_table(
        [_row("teacher", 22.0, 3.0, 90.0), _row("small", 5.0, 0.9, 88.5), _row("close", 5.6, 0.9, 89.0)]
    )
    assert table[0]["smaller"] == table[0]["faster_real"] == table[0]["metric_share"] == 1.0
    assert not table[0]["meets_targets"]
    small, close = table[1], table[2]
    assert small["smaller"] == pytest.approx(4.4) and small["faster_real"] == pytest.approx(3.333, abs=1e-3)
    assert small["meets_targets"]  # 4.4x, 3.3x, 98.3%
    assert not close["meets_targets"]  # 3.93x smaller: short of 4x
    text = curve_markdown(table, "python recipes/benchmark_curve.py ...")
    assert "| small | dynamic_int8 | 5.00 | 88.50 |" in text and "| met |" in text and "Command:" in text
    with pytest.raises(ValueError, match="several tasks"):
        curve_table([_row("a", 1, 1, 1), _row("b", 1, 1, 1, task="cola")])


def test_measure_curve_times_exported_files_at_their_own_lengths(exported, glue_dir, tmp_path):
    paths = [exported["dynamic_int8"]["path"], exported["float32"]["path"]]
    rows = measure_curve(paths, glue_dir, seq_len=16, real=5, rounds=2, num_runs=3, log=lambda *_: None)
    assert [r["variant"] for r in rows] == ["dynamic_int8", "float32"]
    for r in rows:
        assert r["ms_fixed"] > 0 and r["ms_real"] > 0 and r["median_len"] >= 3 and r["peak_mem_mb"] > 0
    assert rows[0]["median_len"] == rows[1]["median_len"]  # one vocabulary, the same sampled examples
    table = curve_table(rows)
    assert table[1]["smaller"] < 1.0  # float32 is the larger file
    png = curve_plot(table, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_row_labels_name_the_vocabulary_preset_and_a_factorised_width(tmp_path):
    from refbert_tf.benchmark.curve import model_label
    from refbert_tf.io_utils import write_json

    for name, config, want in (
        ("plain", {"student": "tinybert4", "embedding_dim": 0}, "vanilla v8192 tinybert4"),
        ("factorised", {"student": "tinybert4_h192", "embedding_dim": 128}, "vanilla v8192 tinybert4_h192 e128"),
    ):
        write_json(tmp_path / name / "student.json", {"config": config})
        assert model_label({"model": "vanilla", "vocab_size": 8192, "source_student": str(tmp_path / name)}) == want
    assert model_label({"model": "teacher", "vocab_size": 30522, "source_student": None}) == "teacher v30522"
