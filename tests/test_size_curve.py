"""refbert_tf.size_curve: students' size and accuracy over vocabulary and embedding width, from result files."""

import pytest

from refbert_tf.io_utils import write_json
from refbert_tf.size_curve import size_curve, size_curve_plot, student_vocab_size, vocabulary_series


def _result(path, command, size_mb, tflite, embedding_dim=0, vocab_size=None, model="vanilla"):
    record = {
        "task": "sst2", "model": model, "main_metric": "accuracy", "metrics": {"accuracy": tflite - 0.1},
        "teacher_metrics": {"accuracy": 89.0}, "command": command, "num_train": 20000, "student_parameters": 7.4e6,
        "config": {"student": "tinybert4", "embedding_dim": embedding_dim, "seed": 42},
        "export": {"variants": [{"variant": "dynamic_int8", "size_mb": size_mb, "dev_metric": tflite}]},
    }  # fmt: skip
    if vocab_size is not None:
        record["vocab_size"] = vocab_size
    write_json(path, record)
    return path


def test_vocabulary_from_the_record_then_the_command_then_the_teacher():
    assert student_vocab_size({"vocab_size": 4096, "command": "x --student-vocab-size 8192"}) == 4096
    assert student_vocab_size({"command": "python recipes/distill_glue.py --student-vocab-size 8192"}) == 8192
    assert student_vocab_size({"command": "python recipes/distill_glue.py --student-vocab-size=16384"}) == 16384
    assert student_vocab_size({"command": "python recipes/distill_glue.py --task sst2"}) == 30522
    assert student_vocab_size({"command": ""}, teacher_vocab_size=28996) == 28996


def test_rows_sorted_by_size_with_widths_and_a_plot(tmp_path):
    paths = [
        _result(tmp_path / "big.json", "distill_glue.py --task sst2", 14.6, 88.0),
        _result(tmp_path / "v8k.json", "distill_glue.py --student-vocab-size 8192", 7.8, 86.7),
        _result(tmp_path / "v8k_e128.json", "distill_glue.py", 6.4, 86.1, embedding_dim=128, vocab_size=8192),
    ]
    write_json(tmp_path / "summary.json", {"rows": []})  # a summary caught by a glob is skipped
    rows, markdown = size_curve([*paths, tmp_path / "summary.json"])
    assert [r["run"] for r in rows] == ["v8k_e128", "v8k", "big"]
    assert [(r["vocab_size"], r["embedding_dim"]) for r in rows] == [(8192, 128), (8192, 312), (30522, 312)]
    assert rows[0]["tflite"] == 86.1 and rows[0]["keras"] == pytest.approx(86.0)
    assert "| v8k_e128 | vanilla | tinybert4 | 8192 | 128 | 20000 | 89.00 | 86.00 | 86.10 | 6.40 | 7.40 M |" in markdown
    png = size_curve_plot(rows, tmp_path / "curve.png", target_mb=8)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_result_without_the_variant_or_no_result_is_refused(tmp_path):
    path = _result(tmp_path / "r.json", "distill_glue.py", 7.8, 86.7)
    with pytest.raises(ValueError, match=r"r.json: no float16 export \(variants: dynamic_int8\)"):
        size_curve([path], variant="float16")
    write_json(tmp_path / "other.json", {"rows": []})
    with pytest.raises(ValueError, match="no distill_glue result files given"):
        size_curve([tmp_path / "other.json"])


def test_vocabulary_series_join_runs_that_differ_only_in_the_vocabulary(tmp_path):
    paths = [
        _result(tmp_path / "v16k.json", "distill_glue.py --student-vocab-size 16384", 10.4, 87.9),
        _result(tmp_path / "v4k.json", "distill_glue.py --student-vocab-size 4096", 6.5, 86.9),
        _result(tmp_path / "v30k.json", "distill_glue.py --task sst2", 14.6, 88.0),
        _result(tmp_path / "v4k_e128.json", "distill_glue.py", 5.8, 86.0, embedding_dim=128, vocab_size=4096),
        _result(tmp_path / "v4k_refbert.json", "distill_glue.py --student-vocab-size 4096", 7.0, 87.0, model="refbert"),
    ]
    rows, _ = size_curve(paths)
    series = vocabulary_series(rows)
    assert list(series) == [("vanilla", "tinybert4", 312, 20000)]  # E = 128 and refbert are single points
    assert [r["run"] for r in series[("vanilla", "tinybert4", 312, 20000)]] == ["v4k", "v16k", "v30k"]
