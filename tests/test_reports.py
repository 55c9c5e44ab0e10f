"""Reports read from result files (TensorFlow-free): GLUE table, ablation table and plot."""

import pytest

from refbert_tf.io_utils import write_json
from refbert_tf.reports import ablation_plot, ablation_summary, family_comparison, glue_summary, pilot_summary


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


def _student(path, metric, value, lite=None, size=None):
    export = {"variants": [{"variant": "dynamic_int8", "dev_metric": lite, "size_mb": size}]} if lite else None
    write_json(path, {"main_metric": metric, "metrics": {metric: value}, "command": f"cmd {value}", "export": export})


def test_family_comparison_averages_only_the_tasks_both_families_have(tmp_path):
    small, full = tmp_path / "small", tmp_path / "full"
    for task, metric in (("stsb", "pearson"), ("cola", "mcc")):
        _student(full / f"{task}_vanilla.json", metric, 80.0, 79.0, 15.7)
        _student(full / f"{task}_refbert.json", metric, 82.0)
    _student(full / "rte_vanilla.json", "accuracy", 60.0)
    _student(small / "stsb_vanilla.json", "pearson", 79.0, 78.5, 7.8)
    _student(small / "stsb_refbert.json", "pearson", 82.5)
    _student(small / "cola_vanilla.json", "mcc", 77.0)  # cola has no refbert: not in the averages
    _student(small / "sst2_vanilla.json", "accuracy", 88.0)  # no baseline: no row
    rows, md = family_comparison(small, full, ("sst2", "rte", "cola", "stsb"))
    assert [(r["task"], r["model"], r["difference"]) for r in rows] == [
        ("cola", "vanilla", -3.0),
        ("stsb", "vanilla", -1.0),
        ("stsb", "refbert", 0.5),
    ]
    assert rows[1]["size_mb"] == 7.8 and rows[1]["baseline_size_mb"] == 15.7 and rows[2]["size_mb"] is None
    assert "| stsb | pearson | vanilla | 80.00 | 79.00 | -1.00 | 79.00 | 78.50 | 15.70 | 7.80 |" in md
    assert "vanilla: average over 1 of 4 tasks (stsb) 79.00 against the baseline's 80.00, -1.00 points" in md
    assert "refbert: average over 1 of 4 tasks (stsb) 82.50 against the baseline's 82.00, +0.50 points" in md
    with pytest.raises(ValueError, match="in both"):
        family_comparison(small, full, ("rte",))


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


def _run(tmp_path, name, task, value, retrieval=None, entry="early", seed=42, num_train=100, metric="accuracy"):
    config = {"seed": seed, "use_reference": retrieval is not None}
    if retrieval:
        config |= {"retrieval": retrieval, "dense_entry": entry}
    record = {
        "task": task, "model": "x", "main_metric": metric, "metrics": {metric: value}, "config": config,
        "num_train": num_train, "seconds": 60.0, "command": f"cmd {name}",
        "export": {"variants": [{"variant": "dynamic_int8", "dev_metric": value - 0.1, "size_mb": 15.0}]},
    }  # fmt: skip
    if retrieval == "dense":
        record["bank"] = {
            "dev_retrieval_agreement": 0.5,
            "label_agreement": {"student_query": {"top1": {"agreement": 80.0}}},
        }
    path = tmp_path / f"{name}.json"
    write_json(path, record)
    return path


def test_pilot_summary_pairs_each_variant_with_its_vanilla_run_and_applies_the_rule(tmp_path):
    paths = [
        _run(tmp_path, "sst2_vanilla", "sst2", 88.0),
        _run(tmp_path, "sst2_early", "sst2", 89.0, "dense"),
        _run(tmp_path, "sst2_late", "sst2", 90.0, "dense", "late"),
        _run(tmp_path, "sst2_early_seed1", "sst2", 80.0, "dense", seed=1),  # no vanilla of seed 1: no gain
        _run(tmp_path, "rte_vanilla", "rte", 60.0, num_train=2490),
        _run(tmp_path, "rte_early", "rte", 60.2, "dense", num_train=2490),
        _run(tmp_path, "rte_lexical", "rte", 59.0, "lexical", num_train=2490),
    ]
    summary, md = pilot_summary(paths)
    by_run = {r["run"]: r for r in summary["rows"]}
    assert by_run["sst2_early"]["minus_vanilla"] == 1.0 and by_run["sst2_late"]["minus_vanilla"] == 2.0
    assert by_run["sst2_early_seed1"]["minus_vanilla"] is None and by_run["rte_lexical"]["variant"] == "lexical"
    assert by_run["sst2_early"]["label_agreement_top1"] == 80.0 and by_run["sst2_early"]["tflite_value"] == 88.9
    assert summary["variants"]["dense_early"] == {"tasks": ["rte", "sst2"], "mean_gain": 0.6}
    # dense_late gains more, but only on SST-2: only a variant measured on every pilot task can pass
    assert summary["variants"]["dense_late"]["tasks"] == ["sst2"]
    assert summary["best"] == "dense_early" and summary["go"]
    assert "dense_late: mean gain +2.00 over sst2 (not measured on rte)" in md
    summary, md = pilot_summary(paths, tasks=["sst2", "rte", "mrpc"])  # MRPC not run yet: nothing is decided
    assert summary["best"] is None and not summary["go"] and "no decision (so far: dense_early +0.60" in md
    # dense_early falls short of +1.0, but dense_late and lexical lack a task: no stop while they are undecided
    summary, md = pilot_summary(paths, min_gain=1.0)
    assert not summary["go"] and summary["pending"] == ["dense_late", "lexical"] and "stop." not in md
    assert "dense_early +0.60 below +1.00; dense_late, lexical not measured on every task" in md
    summary, md = pilot_summary(paths[:2] + paths[4:6], min_gain=1.0)  # every variant judged, none passes: stop
    assert not summary["go"] and summary["pending"] == [] and md.rstrip().endswith("(best dense_early, +0.60): stop.")
    with pytest.raises(ValueError, match="no vanilla"):
        pilot_summary([paths[1]])
    with pytest.raises(ValueError, match="no distill_glue result"):
        pilot_summary([])
