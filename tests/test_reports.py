"""Reports read from result files (TensorFlow-free): GLUE table, ablation table and plot."""

import pytest

from refbert_tf.io_utils import write_json
from refbert_tf.reports import ablation_plot, ablation_summary, glue_summary


def test_glue_summary(tmp_path):
    for model, value in (("teacher", 90.0), ("vanilla", 80.0), ("refbert", 85.0)):
        path = tmp_path / ("teacher/sst2.json" if model == "teacher" else f"distill/sst2_{model}.json")
        write_json(path, {"metrics": {"accuracy": value}, "command": f"cmd {model}"})
    rows, md = glue_summary(tmp_path, ("sst2", "mrpc"))
    assert rows[0] == {
        "task": "sst2",
        "model": "teacher",
        "metric": "accuracy",
        "value": 90.0,
        "command": "cmd teacher",
    }
    assert len(rows) == 3 and "| mrpc | f1 | - | - | - | - | - |" in md
    assert "94.4% of the teacher's average" in md and "+5.00 points" in md
    write_json(tmp_path / "distill/gd/sst2_refbert.json", {"metrics": {"accuracy": 88.0}, "command": "cmd gd"})
    rows, md = glue_summary(tmp_path, ("sst2",), distill_dir=tmp_path / "distill/gd")  # another family of runs
    assert [(r["model"], r["value"]) for r in rows] == [("teacher", 90.0), ("refbert", 88.0)]
    assert "| sst2 | accuracy | 90.00 | - | - | 88.00 | - |" in md


def test_glue_summary_has_the_exported_students_tflite_columns(tmp_path):
    write_json(tmp_path / "teacher/sst2.json", {"metrics": {"accuracy": 90.0}, "command": "t"})
    for model, value, lite in (("vanilla", 80.0, 79.5), ("refbert", 85.0, 84.25)):
        export = {
            "variants": [{"variant": "float32", "dev_metric": 1.0}, {"variant": "dynamic_int8", "dev_metric": lite}]
        }
        write_json(
            tmp_path / f"distill/sst2_{model}.json", {"metrics": {"accuracy": value}, "command": "c", "export": export}
        )
    rows, md = glue_summary(tmp_path, ("sst2",))
    assert [r.get("tflite_value") for r in rows] == [None, 79.5, 84.25]
    assert "| task | metric | teacher | vanilla | vanilla .tflite int8 | refbert | refbert .tflite int8 |" in md
    assert "| sst2 | accuracy | 90.00 | 80.00 | 79.50 | 85.00 | 84.25 |" in md
    assert "| average (1 tasks) | | 90.00 | 80.00 | 79.50 | 85.00 | 84.25 |" in md


def test_glue_summary_flags_students_of_another_teacher_and_pre_fix_runs(tmp_path):
    write_json(tmp_path / "teacher/rte.json", {"metrics": {"accuracy": 60.65}, "command": "t"})
    write_json(
        tmp_path / "distill/rte_vanilla.json",
        {
            "metrics": {"accuracy": 52.7},
            "command": "v",
            "teacher_metrics": {"accuracy": 59.57},
            "config": {"use_reference": False},
        },
    )
    write_json(
        tmp_path / "distill/rte_refbert.json",
        {
            "metrics": {"accuracy": 55.0},
            "command": "r",
            "teacher_metrics": {"accuracy": 60.65},
            "config": {"use_reference": True, "top_k": 1},
        },
    )
    rows, md = glue_summary(tmp_path, ("rte",))
    notes = {r["model"]: r.get("note") for r in rows}
    assert notes == {"teacher": None, "vanilla": "distilled from a teacher scoring 59.57", "refbert": None}
    assert (
        "| rte | accuracy | 60.65 | 52.70 [1] | - | 55.00 | - |" in md
        and "[1] rte vanilla: distilled from a teacher" in md
    )
    write_json(
        tmp_path / "distill/rte_refbert.json",
        {
            "metrics": {"accuracy": 55.0},
            "command": "r",
            "teacher_metrics": {"accuracy": 60.65},
            "config": {"use_reference": True},
        },
    )
    rows, md = glue_summary(tmp_path, ("rte",))
    assert "55.00 [2]" in md and "before the reference fix" in rows[2]["note"]


def test_ablation_summary_pairs_each_run_with_the_vanilla_run_of_its_seed_and_budget(tmp_path):
    base = {
        "use_reference": True,
        "bank_layer": -1,
        "bank_tokens": 4,
        "top_k": 1,
        "seed": 42,
        "intermediate_epochs": 1.0,
        "prediction_epochs": 1.0,
    }
    runs = {
        "vanilla": ({**base, "use_reference": False}, 80.0, 20000),
        "refbert": (base, 81.5, 20000),
        "top4": ({**base, "top_k": 4}, 79.0, 20000),
        "vanilla_seed1": ({**base, "use_reference": False, "seed": 1}, 82.0, 20000),
        "refbert_seed1": ({**base, "seed": 1}, 81.0, 20000),
        "refbert_small": (base, 70.0, 1000),
    }
    paths = []
    for name, (cfg, value, n) in runs.items():
        paths.append(tmp_path / f"{name}.json")
        write_json(
            paths[-1],
            {
                "task": "sst2",
                "model": "refbert" if cfg["use_reference"] else "vanilla",
                "main_metric": "accuracy",
                "metrics": {"accuracy": value},
                "config": cfg,
                "num_train": n,
                "seconds": 600.0,
                "command": f"cmd {name}",
            },
        )
    write_json(tmp_path / "summary.json", {"rows": [], "command": "an earlier summary"})
    rows, md = ablation_summary([paths[2], tmp_path / "summary.json", *paths[:2], *paths[3:]])  # top4 first
    by = {r["run"]: r for r in rows}
    assert len(rows) == 6 and rows[0]["run"] == "top4"
    assert by["refbert"]["minus_vanilla"] == 1.5 and by["refbert"]["changes"] == {}
    assert by["top4"]["minus_vanilla"] == -1.0 and by["top4"]["changes"] == {"top_k": 4}
    assert by["refbert_seed1"]["minus_vanilla"] == -1.0 and by["refbert_seed1"]["changes"] == {}
    assert by["vanilla"]["minus_vanilla"] is None and by["refbert_small"]["minus_vanilla"] is None
    assert by["refbert_seed1"]["minutes"] == 10.0
    assert "| top4 | refbert | top_k=4 | 42 | 20000 | 79.00 | -1.00 | 10.0 |" in md
    assert "refbert (baseline, 20000 train examples) over 2 seeds: mean 81.25, range 81.00-81.50." in md
    assert "vanilla (no reference, 20000 train examples) over 2 seeds: mean 81.00" in md
    ablation_plot(rows, tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 1000
    write_json(
        paths[0],
        {
            "task": "cola",
            "model": "vanilla",
            "main_metric": "mcc",
            "metrics": {"mcc": 1.0},
            "config": {**base, "use_reference": False},
            "num_train": 1,
            "seconds": 1,
            "command": "",
        },
    )
    with pytest.raises(ValueError, match="several tasks"):
        ablation_summary(paths)
    with pytest.raises(ValueError, match="no RefBERT run"):
        ablation_summary(paths[:1])
