"""Desktop LiteRT benchmark runner on a small real model (the float32 export of a tiny student)."""

import pytest

from refbert_tf.benchmark.desktop import benchmark_tflite, measure_in_process
from refbert_tf.inference import ModelFileError

KEYS = {
    "init_ms",
    "warmup_first_ms",
    "median_ms",
    "p90_ms",
    "p99_ms",
    "peak_mem_mb",
    "model_mem_mb",
    "threads",
    "seq_len",
    "size_mb",
    "count",
}


def _tiny_model(tmp_path):
    import keras
    import tensorflow as tf

    from refbert_tf.export import convert, export_saved_model
    from refbert_tf.models.student import build_student

    keras.utils.set_random_seed(0)
    student = build_student("tiny", 2, 30522, teacher_dim=32, max_sequence_length=64)
    saved = export_saved_model(student, tmp_path / "saved")
    flatbuffer, _ = convert(saved, "float32")
    path = tmp_path / "tiny.tflite"
    path.write_bytes(flatbuffer)
    del tf
    return path


def test_benchmark_in_a_child_process(tmp_path):
    model = _tiny_model(tmp_path)
    r = benchmark_tflite(model, seq_len=16, threads=1, num_runs=5, warmup_runs=1)
    assert KEYS <= set(r) and r["count"] == 5 and r["seq_len"] == 16
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["peak_mem_mb"] > r["model_mem_mb"] >= 0


def test_bad_model_and_bad_arguments(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_text("not a model")
    with pytest.raises(RuntimeError, match="is not a TFLite model"):
        benchmark_tflite(bad, seq_len=8, num_runs=1)
    with pytest.raises(ModelFileError):
        measure_in_process(str(bad), 8, 1)
    model = _tiny_model(tmp_path)
    with pytest.raises(ValueError, match="seq_len"):
        measure_in_process(str(model), 1, 1)


def test_real_traffic_lengths_one_input_each(tmp_path):
    model = _tiny_model(tmp_path)
    r = benchmark_tflite(model, threads=1, num_runs=2, warmup_runs=1, lengths=[5, 9, 7])
    assert r["seq_len"] == "real" and r["count"] == 3 and r["median_len"] == 7.0 and r["runtime"] == "litert"
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["resize_median_ms"] >= 0
    assert r["total_ms"] >= r["median_ms"]
    with pytest.raises(ValueError, match="lengths is empty"):
        measure_in_process(str(model), 8, 1, lengths=[])
    with pytest.raises(ValueError, match="unknown runtime"):
        measure_in_process(str(model), 8, 1, runtime="tvm")
