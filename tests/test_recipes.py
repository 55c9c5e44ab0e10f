import subprocess
import sys
from pathlib import Path

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
    ):
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


def test_distill_glue_pruning_options():
    """Pruning is the default (None: decided per student and teacher); --init-by-pruning forces it, --random-init
    turns it off, and the two together are refused by argparse."""
    sys.path.insert(0, str(ROOT / "recipes"))
    from distill_glue import parse_args

    assert parse_args(["--task", "sst2"]).init_by_pruning is None
    assert parse_args(["--task", "sst2", "--init-by-pruning"]).init_by_pruning is True
    assert parse_args(["--task", "sst2", "--random-init"]).init_by_pruning is False
    out = _run("recipes/distill_glue.py", "--task", "sst2", "--init-by-pruning", "--random-init")
    assert out.returncode == 2 and "not allowed with argument" in out.stderr


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
        ("recipes/benchmark.py", ("--seq-lens", "--threads", "--models", "--variants", "--plot")),
        ("tflite/android_benchmark.py", ("--model", "--threads", "--delegate", "--parse-log")),
    ):
        out = _run(recipe, "--help")
        assert out.returncode == 0, (recipe, out.stderr)
        for flag in flags:
            assert flag in out.stdout, (recipe, flag)


def test_summary_recipes_help():
    for recipe, flags in (
        ("recipes/glue_summary.py", ("--results-dir", "--tasks", "--distill-dir", "--out")),
        ("recipes/ablation_summary.py", ("results", "--out")),
    ):
        out = _run(recipe, "--help")
        assert out.returncode == 0, (recipe, out.stderr)
        for flag in flags:
            assert flag in out.stdout, (recipe, flag)
