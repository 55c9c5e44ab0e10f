import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_finetune_teacher_help():
    out = _run("recipes/finetune_teacher.py", "--help")
    assert out.returncode == 0
    for flag in ("--task", "--teacher-checkpoint", "--glue-dir", "--epochs", "--learning-rate", "--source"):
        assert flag in out.stdout


def test_finetune_teacher_rejects_an_unknown_task():
    out = _run("recipes/finetune_teacher.py", "--task", "sst3")
    assert out.returncode != 0
    assert "unknown GLUE task 'sst3'" in out.stderr


def test_distill_glue_help():
    out = _run("recipes/distill_glue.py", "--help")
    assert out.returncode == 0
    for flag in (
        "--task",
        "--no-reference",
        "--bank-layer",
        "--bank-tokens",
        "--max-anchors",
        "--temperature",
        "--teacher-dir",
        "--no-finetune-teacher",
        "--student-vocab-size",
    ):
        assert flag in out.stdout


def test_mixed_vocab_teacher_help():
    out = _run("recipes/mixed_vocab_teacher.py", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--student-vocab-size", "--mix-prob", "--kd-weight", "--embedding-dim", "--no-train-teacher"):
        assert flag in out.stdout


def test_general_distill_help():
    out = _run("recipes/general_distill.py", "--help")
    assert out.returncode == 0, out.stderr
    for flag in (
        "--teacher-checkpoint",
        "--glue-dir",
        "--tasks",
        "--max-examples",
        "--student",
        "--epochs",
        "--output-dir",
        "--results",
    ):
        assert flag in out.stdout
    out = _run("recipes/distill_glue.py", "--help")
    assert "--student-init" in out.stdout and "--init-by-pruning" in out.stdout and "--random-init" in out.stdout


def test_distill_glue_init_option_and_its_old_spellings():
    """Student initialisation is one option, --init (default auto); the old flags still work, print the new
    spelling, and two different choices are refused as a usage error."""
    sys.path.insert(0, str(ROOT / "recipes"))
    from distill_glue import parse_args

    assert parse_args(["--task", "sst2"]).init is None  # not given: DistillConfig's "auto"
    assert parse_args(["--task", "sst2", "--init", "random"]).init == "random"
    for old, new in (
        ("--init-by-pruning", "pruned"),
        ("--random-init", "random"),
        ("--init-from-teacher", "teacher"),
        ("--init-embeddings-from-teacher", "teacher-embeddings"),
    ):
        assert parse_args(["--task", "sst2", old]).init == new
    assert parse_args(["--task", "sst2", "--student-init", "some/dir"]).init == "some/dir"
    assert parse_args(["--task", "sst2", "--random-init", "--init", "random"]).init == "random"  # same choice
    out = _run("recipes/distill_glue.py", "--task", "sst2", "--init-by-pruning", "--random-init")
    assert out.returncode == 2 and "--random-init conflicts with --init-by-pruning" in out.stderr
    assert "note: --init-by-pruning is spelled --init pruned now" in out.stderr


def test_distill_glue_refuses_bad_values_before_any_work():
    for flag, value, message in (
        ("--learning-rate", "-1", "--learning-rate must be > 0, got -1.0"),
        ("--temperature", "nan", "--temperature must be a finite number"),
        ("--init", "prunned", "--init 'prunned': neither one of auto"),
        ("--bank-tokens", "0", "--bank-tokens must be >= 1"),
    ):
        out = _run("recipes/distill_glue.py", "--task", "sst2", flag, value)
        assert out.returncode == 2 and message in out.stderr, (flag, out.stderr[-500:])
        assert "Traceback" not in out.stderr


def test_pruning_probe_help_and_bad_mapping():
    out = _run("recipes/pruning_probe.py", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--tasks", "--teacher-dir", "--glue-dir", "--mappings", "--out"):
        assert flag in out.stdout
    out = _run("recipes/pruning_probe.py", "--mappings", "1,two")
    assert out.returncode != 0 and "--mappings: '1,two'" in out.stderr


def test_reference_ceiling_help_and_bad_values():
    out = _run("recipes/reference_ceiling.py", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--tasks", "--num-buckets", "--max-anchors", "--vote", "--out"):
        assert flag in out.stdout
    out = _run("recipes/reference_ceiling.py", "--max-anchors", "1024", "-1")
    assert out.returncode == 2 and "--max-anchors: every M must be >= 0" in out.stderr


def test_edge_recipes_help():
    for recipe, flags in (
        ("recipes/export_tflite.py", ("--task", "--variants", "--without-bank", "--num-representative")),
        ("recipes/benchmark.py", ("--seq-lens", "--threads", "--models", "--variants", "--plot", "--onnx-variants")),
        ("recipes/benchmark_levers.py", ("--student-dir", "--seq-lens", "--variants", "--output")),
        ("recipes/benchmark_profile.py", ("--model", "--seq-lens", "--tflite-dir", "--output")),
        ("tflite/android_benchmark.py", ("--model", "--threads", "--delegate", "--parse-log")),
        ("recipes/make_tool_envs.py", ("NAME", "metadata", "mediapipe")),
    ):
        out = _run(recipe, "--help")
        assert out.returncode == 0, (recipe, out.stderr)
        for flag in flags:
            assert flag in out.stdout, (recipe, flag)


def test_summary_recipes_help():
    for recipe, flags in (
        ("recipes/glue_summary.py", ("--results-dir", "--tasks", "--distill-dir", "--baseline-dir", "--out")),
        ("recipes/ablation_summary.py", ("results", "--out")),
        ("recipes/pilot_summary.py", ("results", "--out", "--min-gain")),
        ("recipes/size_curve.py", ("results", "--out", "--variant", "--target-mb", "--teacher-vocab-size")),
    ):
        out = _run(recipe, "--help")
        assert out.returncode == 0, (recipe, out.stderr)
        for flag in flags:
            assert flag in out.stdout, (recipe, flag)


@pytest.mark.slow
def test_main_job_ends_with_a_tflite_file_measured_beside_the_keras_student(tiny_main_job):
    """README command 1 in miniature: distill, then export the dynamic-range int8 file with its card and
    vocabulary, and record the Keras and LiteRT dev metrics side by side."""
    work, result, out = tiny_main_job["work"], tiny_main_job["result"], tiny_main_job["stdout"]
    tflite = work / "tflite" / "sst2_refbert_dynamic_int8.tflite"
    assert tflite.is_file() and tflite.with_suffix(".json").is_file()
    assert list((work / "tflite").glob("vocab-*.txt"))
    (row,) = result["export"]["variants"]
    assert row["variant"] == "dynamic_int8" and row["path"] == str(tflite)
    assert result["export"]["keras_dev_metric"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    # the label changes explain the drop: accuracy can move by at most one example per changed label
    assert 0 <= row["label_changes"] <= row["num_dev"] == 872
    assert abs(row["dev_drop"]) <= 100.0 * row["label_changes"] / row["num_dev"] + 1e-6
    assert f"LiteRT {row['dev_metric']:.2f}" in out and "peak memory" in out
    assert result["job_seconds"] >= result["seconds"]


def test_benchmark_curve_help_and_a_missing_model_named():
    out = _run("recipes/benchmark_curve.py", "--help")
    assert out.returncode == 0 and "--models" in out.stdout and "--real" in out.stdout
    out = _run("recipes/benchmark_curve.py", "--models", "nowhere.tflite")
    assert out.returncode == 2 and "no such file: nowhere.tflite" in out.stderr


def test_dense_ceiling_help_and_bad_numbers_named():
    out = _run("recipes/dense_ceiling.py", "--help")
    assert out.returncode == 0 and "--spaces" in out.stdout and "pretrained:mean" in out.stdout
    out = _run("recipes/dense_ceiling.py", "--vote", "-1")
    assert out.returncode == 2 and "--vote must be >= 0" in out.stderr
