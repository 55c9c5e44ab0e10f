"""benchmark_model log parser, command builder and the Android script, on real logs (tests/fixtures/benchmark_logs).

Each ``*.log`` fixture is real tool output from a public source named in its ``*.source.txt`` (copied verbatim, or a
concatenation of two such logs, as that file says); the expected numbers below were read off the log by hand
(microseconds / 1000; LiteRT's results block prints ms). Texts built inside this file from TFLite's source strings or
by re-wrapping a fixture are marked "constructed".
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from refbert_tf.benchmark.mobile import (
    BenchmarkLogError,
    benchmark_model_command,
    parse_benchmark_model_log,
    parse_benchmark_model_log_file,
)

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "tests" / "fixtures" / "benchmark_logs"
SCRIPT = ROOT / "tflite" / "android_benchmark.py"

NO_PERCENTILES = {
    "median_ms": None,
    "p5_ms": None,
    "p95_ms": None,
    "p90_ms": None,
    "p99_ms": None,
    "source": "benchmark_model",
}
NO_P90_P99 = {"p90_ms": None, "p99_ms": None, "source": "benchmark_model"}
GPU_TF43541 = {
    "init_ms": 870.557,
    "warmup_first_ms": 130.565,
    "warmup_avg_ms": 122.373,
    "avg_ms": 119.375,
    "std_ms": 1.948,
    "min_ms": 113.737,
    "max_ms": 124.776,
    "count": 50,
    "peak_mem_mb": None,
    "model_mem_mb": None,
    "threads": 4,
    "delegate": "gpu",
    "model_path": "/data/local/tmp/tflite/denoising_32bit.tflite",
    **NO_PERCENTILES,
}
EXPECTED = {
    # Desktop Linux, INFO: prefixes, no delegate lines, memory delta line.
    "linux_desktop_tf61946.log": {
        "init_ms": 0.53,
        "warmup_first_ms": 124.02,
        "warmup_avg_ms": 117.225,
        "avg_ms": 116.066,
        "std_ms": 1.906,
        "min_ms": 111.222,
        "max_ms": 121.324,
        "count": 50,
        "peak_mem_mb": None,
        "model_mem_mb": 12.1914,
        "threads": None,
        "delegate": "cpu",
        "model_path": "./mobilenet_v1_1.0_224_quant.tflite",
        **NO_PERCENTILES,
    },
    # Android, adb shell, GPU delegate fully applied; excerpt ends at the timings line (no memory line).
    "android_adb_shell_gpu_tf43541.log": GPU_TF43541,
    # A failed adb-shell run (Failed to apply XNNPACK delegate. / Benchmarking failed.), then the run above.
    "failed_then_good_tf56166_tf43541.log": GPU_TF43541,
    # Android logcat (threadtime headers), NNAPI partially applied; excerpt without the parameter block.
    "android_logcat_nnapi_tf56301.log": {
        "init_ms": 126.059,
        "warmup_first_ms": 32.942,
        "warmup_avg_ms": 12.5819,
        "avg_ms": 12.1676,
        "std_ms": 0.325,
        "min_ms": 11.787,
        "max_ms": 13.649,
        "count": 75,
        "peak_mem_mb": None,
        "model_mem_mb": None,
        "threads": None,
        "delegate": "nnapi",
        "model_path": None,
        **NO_PERCENTILES,
    },
    # TF 2.2: legacy summary line, warm-up "count=1 curr=15908626", avg in scientific notation.
    "legacy_tf40183.log": {
        "init_ms": 48.019,
        "warmup_first_ms": 15908.626,
        "warmup_avg_ms": 15908.6,
        "avg_ms": 16850.5,
        "std_ms": 69.772,
        "min_ms": 16767.506,
        "max_ms": 17015.249,
        "count": 9,
        "peak_mem_mb": None,
        "model_mem_mb": None,
        "threads": 8,
        "delegate": "cpu",
        "model_path": "model.tflite",
        **NO_PERCENTILES,
    },
    # adb logcat -v time headers (07-08 15:33:55.768 I/tflite  ( 5395): ), p5/median/p95, warm-up "count=1 curr=".
    "android_logcat_time_yolo26l_citrus.log": {
        "init_ms": 458.883,
        "warmup_first_ms": 2732.148,
        "warmup_avg_ms": 2732.15,
        "avg_ms": 2719.85,
        "std_ms": 105.101,
        "min_ms": 2640.862,
        "max_ms": 3025.403,
        "count": 10,
        "median_ms": 2709.263,
        "p5_ms": 2640.862,
        "p95_ms": 3025.403,
        "peak_mem_mb": None,
        "model_mem_mb": 337.0,
        "threads": 4,
        "delegate": "xnnpack",
        "model_path": "/data/local/tmp/yolo26l_fp16.tflite",
        **NO_P90_P99,
    },
    # 8 runs pasted as 4-space-indented markdown code blocks (threadtime logcat): the last run is returned.
    "android_logcat_indented_multirun_citrus.log": {
        "init_ms": 123.966,
        "warmup_first_ms": 321.652,
        "warmup_avg_ms": 317.742,
        "avg_ms": 284.021,
        "std_ms": 7.781,
        "min_ms": 279.652,
        "max_ms": 310.759,
        "count": 25,
        "median_ms": 280.999,
        "p5_ms": 279.713,
        "p95_ms": 306.309,
        "peak_mem_mb": None,
        "model_mem_mb": 115.047,
        "threads": 4,
        "delegate": "xnnpack",
        "model_path": "/data/local/tmp/yolo26n_p2_fp16.tflite",
        **NO_P90_P99,
    },
    # LiteRT CompiledModel tool: "INFO: [file.h:NN] " prefixes, results block in ms, statistics lines in us (used:
    # finer), "Initialized session in 4.478ms." for init, Overall footprint as model_mem_mb; profiler tables after.
    "litert_compiled_model_android_sme2_armlp.log": {
        "init_ms": 4.478,
        "warmup_first_ms": 1.033,
        "warmup_avg_ms": 0.465319,
        "avg_ms": 0.464545,
        "std_ms": 0.013,
        "min_ms": 0.442,
        "max_ms": 0.979,
        "count": 2112,
        "median_ms": 0.462,
        "p5_ms": 0.46,
        "p95_ms": 0.478,
        "peak_mem_mb": None,
        "model_mem_mb": 11.51,
        "threads": None,
        "delegate": "xnnpack",
        "model_path": None,
        **NO_P90_P99,
    },
    # LiteRT CompiledModel tool, GPU, results block only (no statistics line): every figure from the block.
    "litert_compiled_model_gpu_mlcommons1134.log": {
        "init_ms": 23744.73,
        "warmup_first_ms": 7441.04,
        "warmup_avg_ms": 7441.04,
        "avg_ms": 7430.20,
        "std_ms": 9.92,
        "min_ms": 7416.40,
        "max_ms": 7448.86,
        "count": 10,
        "peak_mem_mb": None,
        "model_mem_mb": 6391.74,
        "threads": None,
        "delegate": None,
        "model_path": None,
        **NO_PERCENTILES,
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_logs_parse_to_the_printed_numbers(name):
    assert (LOGS / name.replace(".log", ".source.txt")).is_file()
    assert parse_benchmark_model_log_file(LOGS / name) == pytest.approx(EXPECTED[name])


def test_logcat_brief_headers_and_crlf_do_not_change_the_result():
    text = (LOGS / "linux_desktop_tf61946.log").read_text()
    wrapped = "".join(f"I/tflite  ( 4242): {line}\r\n" for line in text.splitlines())
    assert parse_benchmark_model_log(wrapped) == pytest.approx(EXPECTED["linux_desktop_tf61946.log"])


def test_every_fixture_is_tested_and_has_a_source():
    logs = {path.name for path in LOGS.glob("*.log")}
    assert logs == set(EXPECTED) | {"failed_android_tf45986.log", "failed_xnnpack_tf56166.log"}
    assert all((LOGS / name.replace(".log", ".source.txt")).is_file() for name in logs)


def test_litert_block_agrees_with_the_statistics_lines_it_was_printed_from():
    # The block prints the same Stat objects in ms with 2 decimals: the finer figures must round to it.
    row = parse_benchmark_model_log_file(LOGS / "litert_compiled_model_android_sme2_armlp.log")
    printed = {"init_ms": 4.48, "warmup_first_ms": 1.03, "warmup_avg_ms": 0.47, "avg_ms": 0.46}
    printed.update(min_ms=0.44, max_ms=0.98, std_ms=0.01)
    assert {key: round(row[key], 2) for key in printed} == printed


def test_litert_lines_in_logcat_time_format():
    # Constructed: LiteRT's logger sends "[file.h:NN] message" to logcat with tag "litert" (litert_logging.cc),
    # re-headed here in logcat's "time" format ("%s.%03ld %c/%-8s(%5d): ", liblog logprint.c).
    text = (LOGS / "litert_compiled_model_android_sme2_armlp.log").read_text()
    wrapped = "".join(
        f"09-18 10:21:07.512 I/litert  (27692): {line.removeprefix('INFO: ')}\n" for line in text.splitlines()
    )
    expected = EXPECTED["litert_compiled_model_android_sme2_armlp.log"]
    assert parse_benchmark_model_log(wrapped) == pytest.approx(expected)


def test_quoted_and_tab_indented_paste():
    # Constructed: a GitHub "> " quote and a tab-indented copy of a real log parse like the log itself.
    text = (LOGS / "android_logcat_time_yolo26l_citrus.log").read_text()
    for prefix in ("> ", "\t", ">   "):
        pasted = "".join(f"{prefix}{line}\n" for line in text.splitlines())
        assert parse_benchmark_model_log(pasted) == pytest.approx(EXPECTED["android_logcat_time_yolo26l_citrus.log"])


def test_truncated_run_in_a_multirun_paste_does_not_inherit_the_previous_run():
    # The report pastes its yolo26l run without the parameter block: cut the capture after that run.
    text = (LOGS / "android_logcat_indented_multirun_citrus.log").read_text()
    cut = text[: text.index("overall=358.59") + len("overall=358.59")]
    row = parse_benchmark_model_log(cut)
    assert (row["avg_ms"], row["init_ms"], row["warmup_first_ms"]) == pytest.approx((2449.49, 450.85, 2562.79))
    assert (row["median_ms"], row["p5_ms"], row["p95_ms"], row["count"]) == pytest.approx(
        (2447.822, 2423.455, 2491.568, 25)
    )
    assert row["model_mem_mb"] == 358.59
    assert row["threads"] is None and row["model_path"] is None and row["delegate"] is None


def test_failed_run_after_a_good_run_makes_the_capture_a_failure():
    text = (LOGS / "android_adb_shell_gpu_tf43541.log").read_text() + (LOGS / "failed_xnnpack_tf56166.log").read_text()
    with pytest.raises(BenchmarkLogError, match="Failed to apply XNNPACK delegate") as err:
        parse_benchmark_model_log(text)
    assert "Benchmarking failed." in str(err.value)


def test_cut_off_run_after_a_good_run_is_ignored():
    # A capture that ends while a later run is still starting (no summary, no failure line) keeps the good run.
    later = "\n".join((LOGS / "failed_xnnpack_tf56166.log").read_text().splitlines()[:5])
    text = (LOGS / "android_adb_shell_gpu_tf43541.log").read_text() + later
    assert parse_benchmark_model_log(text) == pytest.approx(GPU_TF43541)


def test_failed_run_alone_quotes_the_tool():
    with pytest.raises(BenchmarkLogError) as err:
        parse_benchmark_model_log_file(LOGS / "failed_xnnpack_tf56166.log")
    assert "tool errors: Failed to apply XNNPACK delegate. | Benchmarking failed." in str(err.value)


def test_last_run_wins_and_its_fields_do_not_leak_from_the_previous_run():
    text = (LOGS / "linux_desktop_tf61946.log").read_text() + (LOGS / "android_adb_shell_gpu_tf43541.log").read_text()
    row = parse_benchmark_model_log(text)
    assert row == pytest.approx(EXPECTED["android_adb_shell_gpu_tf43541.log"])  # model_mem_mb stays None


def test_failed_real_run_raises_with_the_tool_error_and_file_name():
    path = LOGS / "failed_android_tf45986.log"
    with pytest.raises(BenchmarkLogError) as err:
        parse_benchmark_model_log_file(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert "Node number 553 (EXPAND_DIMS) failed to prepare." in message
    assert "axis <= input_dims.size was not true" in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file_raises_naming_the_file(tmp_path, content):
    path = tmp_path / "empty_run.log"
    path.write_text(content)
    with pytest.raises(BenchmarkLogError, match="empty_run.log: file is empty"):
        parse_benchmark_model_log_file(path)


def test_text_without_timings_or_errors_says_so():
    with pytest.raises(BenchmarkLogError, match="truncated"):
        parse_benchmark_model_log("INFO: STARTING!\nINFO: Graph: [m.tflite]\n")


def test_gather_failure_message_is_quoted():
    # Constructed from TFLite's own strings (kernels/gather.cc, Subgraph::Invoke, benchmark_main.cc).
    text = (
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if "
        "exceeding 150 seconds.\nERROR: gather index out of bounds\n"
        "ERROR: Node number 17 (GATHER) failed to invoke.\nERROR: Benchmarking failed.\n"
    )
    with pytest.raises(BenchmarkLogError, match="gather index out of bounds") as err:
        parse_benchmark_model_log(text)
    assert "Node number 17 (GATHER) failed to invoke." in str(err.value)


def test_failure_after_the_timings_line_still_raises():
    # A failed timed run still reaches OnBenchmarkEnd (timings printed), then benchmark_main logs the failure.
    text = (LOGS / "linux_desktop_tf61946.log").read_text() + "ERROR: Benchmarking failed.\n"
    with pytest.raises(BenchmarkLogError, match="Benchmarking failed"):
        parse_benchmark_model_log(text)


def test_percentiles_all_same_and_periodic_peak_memory():
    # Constructed in LiteRT's format (StatWithPercentiles::OutputToStream, BenchmarkLoggingListener).
    text = "\n".join(
        [
            "INFO: STARTING!",
            "INFO: Num threads: [2]",
            "INFO: Graph: [/data/local/tmp/s.tflite]",
            "INFO: Use xnnpack: [1]",
            "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
            "INFO: count=3 curr=2000(all same) p5=2000 median=2000 p95=2000",
            "INFO: count=50 first=1500 curr=1400 min=1300 max=2500 avg=1450.5 std=120 p5=1310 median=1420 p95=1900",
            "INFO: Inference timings in us: Init: 9000, First inference: 2000, Warmup (avg): 2000, Inference (avg): 1450.5",
            "INFO: Memory footprint delta from the start of the tool (MB): init=3.5 overall=20.25",
            "INFO: Overall peak memory footprint (MB) via periodic monitoring: 31.5",
        ]
    )
    row = parse_benchmark_model_log(text)
    assert (row["median_ms"], row["p5_ms"], row["p95_ms"]) == pytest.approx((1.42, 1.31, 1.9))
    assert row["p90_ms"] is None and row["p99_ms"] is None
    assert (row["min_ms"], row["max_ms"], row["std_ms"], row["count"]) == pytest.approx((1.3, 2.5, 0.12, 50))
    assert row["peak_mem_mb"] == 31.5 and row["model_mem_mb"] == 20.25
    assert row["threads"] == 2 and row["delegate"] == "xnnpack"
    assert row["warmup_first_ms"] == 2.0 and row["warmup_avg_ms"] == 2.0


def test_delegate_not_executed_is_not_reported():
    text = (
        "Graph: [m.tflite]\nUse NNAPI: [1]\nThough NNAPI delegate is explicitly applied, the model graph will "
        "not be executed by the delegate.\ncount=5 first=10 curr=10 min=9 max=11 avg=10 std=1\n"
        "Inference timings in us: Init: 1, First inference: 10, Warmup (avg): 10, Inference (avg): 10\n"
    )
    assert parse_benchmark_model_log(text)["delegate"] == "cpu"


BERT_INPUTS = [("token_ids", [1, 128]), ("segment_ids", [1, 128]), ("padding_mask", [1, 128])]


def test_command_for_a_bert_student_on_xnnpack():
    argv = benchmark_model_command(
        "/data/local/tmp/s.tflite",
        threads=4,
        delegate="xnnpack",
        num_runs=100,
        warmup_runs=5,
        input_layer="token_ids",
        vocab_size=30522,
        input_layers=BERT_INPUTS,
        value_ranges={"segment_ids": (0, 1), "padding_mask": (1, 1)},
    )
    assert argv == [
        "/data/local/tmp/benchmark_model",
        "--graph=/data/local/tmp/s.tflite",
        "--num_threads=4",
        "--num_runs=100",
        "--warmup_runs=5",
        "--use_xnnpack=true",
        "--report_peak_memory_footprint=true",
        "--input_layer=token_ids,segment_ids,padding_mask",
        "--input_layer_shape=1,128:1,128:1,128",
        "--input_layer_value_range=token_ids,0,30521:segment_ids,0,1:padding_mask,1,1",
    ]


@pytest.mark.parametrize(
    "delegate, expected, absent",
    [
        ("cpu", ["--use_xnnpack=false"], ["--use_gpu=true", "--use_nnapi=true"]),
        ("gpu", ["--use_gpu=true"], ["--use_xnnpack=true", "--use_xnnpack=false", "--use_nnapi=true"]),
        ("nnapi", ["--use_nnapi=true"], ["--use_xnnpack=true", "--use_xnnpack=false", "--use_gpu=true"]),
    ],
)
def test_command_delegate_flags(delegate, expected, absent):
    argv = benchmark_model_command(
        "m.tflite",
        threads=1,
        delegate=delegate,
        enable_op_profiling=True,
        report_peak_memory_footprint=False,
        binary="./benchmark_model",
    )
    assert argv[0] == "./benchmark_model" and "--enable_op_profiling=true" in argv
    assert "--report_peak_memory_footprint=true" not in argv
    assert all(flag in argv for flag in expected) and not any(flag in argv for flag in absent)


def test_command_sanitizes_names_with_separators():
    argv = benchmark_model_command(
        "m.tflite",
        input_layer="serve_token_ids:0",
        vocab_size=100,
        input_layers=[("serve_token_ids:0", [1, 8]), ("serve_mask:0", [1, 8])],
    )
    assert "--input_layer=serve_token_ids_0,serve_mask_0" in argv
    assert "--input_layer_value_range=serve_token_ids_0,0,99" in argv


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"delegate": "tpu"}, "delegate must be one of"),
        ({"delegate": "cpu", "use_xnnpack": True}, "contradicts"),
        ({"input_layer": "token_ids", "vocab_size": 30522}, "need input_layers"),
        ({"input_layer": "ids", "vocab_size": 10, "input_layers": BERT_INPUTS}, "not in input_layers"),
        ({"input_layer": "token_ids", "vocab_size": 0, "input_layers": BERT_INPUTS}, "vocab_size >= 1"),
        ({"input_layers": [("token_ids", [1, -1])]}, "fully known shape"),
        ({"threads": 0}, "threads must be"),
    ],
)
def test_command_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark_model_command("m.tflite", **kwargs)


# ---- the command-line script ------------------------------------------------------------------------------------


def run_script(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_script_help():
    result = run_script("--help")
    assert result.returncode == 0 and "--parse-log" in result.stdout and "--benchmark-binary" in result.stdout


def test_script_parse_log_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    result = run_script("--parse-log", LOGS / "android_adb_shell_gpu_tf43541.log", "--output", out)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row["avg_ms"] == 119.375 and row["threads"] == 4 and row["delegate"] == "gpu"
    assert {"model", "variant", "seq_len", "size_mb"} <= set(row)


def test_script_parse_log_failure_is_a_clean_error():
    result = run_script("--parse-log", LOGS / "failed_android_tf45986.log")
    assert result.returncode == 2
    assert "EXPAND_DIMS) failed to prepare" in result.stderr and "Traceback" not in result.stderr


def fake_adb(tmp_path, devices="FAKE123\tdevice\n"):
    """A shell script standing in for adb: lists ``devices``, accepts push, answers shell commands."""
    path = tmp_path / "adb"
    path.write_text(f"""#!/bin/sh
if [ "$1" = "-s" ]; then shift 2; fi
case "$1" in
  devices) printf 'List of devices attached\\n{devices}\\n' ;;
  push) echo "$2 -> $3" >> "$FAKE_ADB_CALLS" ;;
  shell) shift
    case "$*" in
      *BENCHMARK_BINARY_OK*) echo BENCHMARK_BINARY_OK ;;
      *ro.product.model*) echo "Pixel Fake" ;;
      *getprop*) echo fakesoc ;;
      *--graph=*) echo "$*" >> "$FAKE_ADB_CALLS"; cat "$FAKE_ADB_LOG" ;;
    esac ;;
esac
""")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def student(tmp_path):
    model = tmp_path / "sst2_tinybert4_dynamic_int8.tflite"
    model.write_bytes(b"\0" * 2**20)
    card = {
        "model": "tinybert4",
        "variant": "dynamic_int8",
        "max_seq_len": 128,
        "inputs": [
            {"name": n, "dtype": "int32", "shape": [1, -1]} for n in ("token_ids", "segment_ids", "padding_mask")
        ],
    }
    model.with_suffix(".json").write_text(json.dumps(card))
    return model


def test_script_without_adb_is_a_clean_error(tmp_path):
    result = run_script("--model", student(tmp_path), "--vocab-size", 30522, "--adb", tmp_path / "no-adb-here")
    assert result.returncode == 2
    assert "adb not found" in result.stderr and "Traceback" not in result.stderr


def test_script_without_device_is_a_clean_error(tmp_path):
    adb = fake_adb(tmp_path, devices="")
    result = run_script(
        "--model",
        student(tmp_path),
        "--vocab-size",
        30522,
        "--adb",
        adb,
        env={"FAKE_ADB_CALLS": str(tmp_path / "calls.txt")},
    )
    assert result.returncode == 2
    assert "no Android device attached" in result.stderr and "Traceback" not in result.stderr


def test_script_runs_on_a_fake_device(tmp_path):
    adb, calls, out = fake_adb(tmp_path), tmp_path / "calls.txt", tmp_path / "rows.json"
    result = run_script(
        "--model",
        student(tmp_path),
        "--vocab-size",
        30522,
        "--adb",
        adb,
        "--threads",
        4,
        "--delegate",
        "gpu",
        "--output",
        out,
        env={"FAKE_ADB_CALLS": str(calls), "FAKE_ADB_LOG": str(LOGS / "android_adb_shell_gpu_tf43541.log")},
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row == {
        **EXPECTED["android_adb_shell_gpu_tf43541.log"],
        "model": "tinybert4",
        "variant": "dynamic_int8",
        "seq_len": 128,
        "size_mb": 1.0,
        "threads": 4,
        "delegate_requested": "gpu",
        "device": "Pixel Fake",
        "soc": "fakesoc",
        "command": row["command"],
    }
    sent = calls.read_text()
    assert "/data/local/tmp/sst2_tinybert4_dynamic_int8.tflite" in sent
    for flag in (
        "--graph=/data/local/tmp/sst2_tinybert4_dynamic_int8.tflite",
        "--num_threads=4",
        "--use_gpu=true",
        "--input_layer=token_ids,segment_ids,padding_mask",
        "--input_layer_shape=1,128:1,128:1,128",
        "--input_layer_value_range=token_ids,0,30521:segment_ids,0,1:padding_mask,1,1",
    ):
        assert flag in sent
