import dataclasses
import json

import keras
import numpy as np
import pytest
from helpers import tiny_bert_backbone

from refbert_tf.bank import BankError
from refbert_tf.cli import code_version
from refbert_tf.data import read_glue_tsv
from refbert_tf.models.teacher import TeacherNotFoundError, finetune_teacher
from refbert_tf.pipelines import DistillConfig, GeneralDistillConfig, distill_glue, general_distill, pruning_probe
from refbert_tf.training import FinetuneConfig, predict_outputs


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, glue_dir, minilm_tokenizer):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "sst2"
    backbone = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)
    finetune_teacher(
        "sst2",
        path,
        config=FinetuneConfig(epochs=1, batch_size=16, max_seq_len=32),
        glue_dir=glue_dir,
        max_train_examples=32,
        backbone=backbone,
        tokenizer=minilm_tokenizer,
        verbose=0,
    )
    return path


CONFIG = dict(
    student="tiny",
    intermediate_epochs=1,
    prediction_epochs=1,
    batch_size=16,
    bank_tokens=4,
    max_anchors=32,
    num_buckets=128,
    max_seq_len=32,
)


@pytest.mark.parametrize("use_reference", [True, False])
def test_distill_end_to_end_and_resume(tiny_teacher_dir, glue_dir, tmp_path, use_reference):
    config = DistillConfig(use_reference=use_reference, **CONFIG)
    out = tmp_path / "run"
    result = distill_glue(
        "sst2",
        out,
        tiny_teacher_dir,
        config=config,
        glue_dir=glue_dir,
        max_train_examples=48,
        verbose=0,
        command="pytest",
    )
    assert result["model"] == ("refbert" if use_reference else "vanilla")
    assert list(result["metrics"]) == ["accuracy"] and result["num_dev"] == 872
    assert result["code_version"] == code_version()
    if use_reference:
        assert result["bank"]["num_anchors"] <= 32 and result["bank"]["dev_retrieval_agreement"] >= 0.95
        assert result["bank"]["train_self_references"] == 0
    else:
        assert result["bank"] is None
    student = keras.saving.load_model(out / "student.keras")
    dev = read_glue_tsv("sst2", "dev", glue_dir=glue_dir).take(16)
    from refbert_tf.tokenization import BertWordPieceTokenizer

    feats = BertWordPieceTokenizer(out / "vocab.txt").encode(dev.text_a, max_seq_len=32)
    assert predict_outputs(student, feats).shape == (16, 2)
    card = json.loads((out / "student.json").read_text())
    assert card["labels"] == ["0", "1"] and (out / "summary.md").read_text().startswith("# sst2")
    # a second run finds both stages finished and only evaluates
    again = distill_glue(
        "sst2", out, tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert again["metrics"] == pytest.approx(result["metrics"])
    assert "intermediate_seconds" not in again["stage_seconds"]


@pytest.mark.parametrize("top_k", [1, 2])
def test_distillation_batches_carry_the_offline_references(tiny_teacher_dir, glue_dir, tmp_path, monkeypatch, top_k):
    """Training must read each example's offline reference (never itself), not retrieve in-graph, where a bank
    anchor finds itself. The old pipeline lost ``reference_index`` on the way into the batches."""
    from refbert_tf.distillation import Distiller

    seen = []
    original = Distiller.compute_gradients

    def spy(self, data):
        seen.append(tuple(data[0]["reference_index"].shape) if "reference_index" in data[0] else None)
        return original(self, data)

    monkeypatch.setattr(Distiller, "compute_gradients", spy)
    config = DistillConfig(**{**CONFIG, "top_k": top_k, "reference_projection": "linear_norm", "prediction_epochs": 0})
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert seen and all(s is not None and s[1:] == (() if top_k == 1 else (top_k,)) for s in seen), seen
    assert result["bank"]["train_self_references"] == 0 and result["config"]["top_k"] == top_k
    assert result["bank"]["dev_retrieval_agreement"] >= 0.95


def test_augmented_distillation_reads_copies_with_references_other_than_their_source(
    tiny_teacher_dir, glue_dir, tmp_path, monkeypatch
):
    import refbert_tf.training

    planned = []
    original = refbert_tf.training.plan_steps

    def spy(num_examples, *args):
        planned.append(num_examples)
        return original(num_examples, *args)

    monkeypatch.setattr(refbert_tf.training, "plan_steps", spy)
    config = DistillConfig(**{**CONFIG, "augment": 2, "prediction_epochs": 0})
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert result["num_train"] == 48 and result["num_augmented"] == 96
    assert planned == [3 * 48, 3 * 48]  # epochs are passes over the originals and their two copies
    assert result["bank"]["train_self_references"] == 0 and result["bank"]["augmented_source_references"] == 0
    assert result["stage_seconds"]["augment_seconds"] > 0
    with pytest.raises(ValueError, match="--augment"):
        DistillConfig(augment=-1)


def test_pruned_initialisation_starts_from_the_teacher(tiny_teacher_dir, glue_dir, tmp_path, monkeypatch):
    """With no training at all, a student pruned to the teacher's own width is the teacher: same dev metric."""
    import refbert_tf.models.student as student_module
    from refbert_tf.distillation import pruning_layer_map
    from refbert_tf.models.teacher import load_teacher

    backbone = load_teacher(tiny_teacher_dir)[0].backbone
    monkeypatch.setitem(
        student_module.STUDENT_PRESETS,
        "teacher_shaped",
        dict(
            num_layers=backbone.num_layers,
            hidden_dim=backbone.hidden_dim,
            num_heads=backbone.num_heads,
            intermediate_dim=backbone.intermediate_dim,
        ),
    )
    config = DistillConfig(
        **{
            **CONFIG,
            "student": "teacher_shaped",
            "init_by_pruning": True,
            "use_reference": False,
            "intermediate_epochs": 0,
            "prediction_epochs": 0,
        }
    )
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert pruning_layer_map(backbone.num_layers, backbone.num_layers) == list(range(1, backbone.num_layers + 1))
    assert result["config"]["init_by_pruning"]
    assert result["metrics"]["accuracy"] == pytest.approx(result["teacher_metrics"]["accuracy"], abs=1e-6)
    identity = list(range(1, backbone.num_layers + 1))
    probe = pruning_probe(
        "sst2", tiny_teacher_dir, [identity, identity[::-1]], student="teacher_shaped", glue_dir=glue_dir
    )
    assert [row["mapping"] for row in probe] == [identity, identity[::-1]]
    assert probe[0]["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    # the default (init_by_pruning None) prunes a student that fits the teacher
    default = distill_glue(
        "sst2",
        tmp_path / "default",
        tiny_teacher_dir,
        config=dataclasses.replace(config, init_by_pruning=None),
        glue_dir=glue_dir,
        max_train_examples=48,
        verbose=0,
    )
    assert default["config"]["init_by_pruning"] is True
    assert default["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    # ... unless another initialisation is chosen
    other = dataclasses.replace(config, init_by_pruning=None, init_embeddings_from_teacher=True)
    assert (
        distill_glue(
            "sst2",
            tmp_path / "emb",
            tiny_teacher_dir,
            config=other,
            glue_dir=glue_dir,
            max_train_examples=48,
            verbose=0,
        )["config"]["init_by_pruning"]
        is False
    )
    with pytest.raises(ValueError, match="one way to initialise"):
        DistillConfig(init_by_pruning=True, student_init="artifacts/general/tinybert4")
    with pytest.raises(ValueError, match="cannot be pruned"):
        pruning_layer_map(7, 6)


def test_a_student_wider_than_the_teacher_falls_back_to_random_init(tiny_teacher_dir, glue_dir, tmp_path, capsys):
    """The tiny student (hidden 32) is wider than the tiny teacher (24): by default it starts from random weights
    (and says so); asking for pruning explicitly is an error naming the option and the sizes."""
    config = DistillConfig(**{**CONFIG, "use_reference": False, "intermediate_epochs": 0, "prediction_epochs": 0})
    assert config.init_by_pruning is None
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert result["config"]["init_by_pruning"] is False
    assert "not pruned from the teacher (student (hidden 32, FFN 64) is wider" in capsys.readouterr().out
    forced = dataclasses.replace(config, init_by_pruning=True)
    with pytest.raises(ValueError, match=r"--init-by-pruning: student \(hidden 32, FFN 64\) is wider"):
        distill_glue(
            "sst2",
            tmp_path / "forced",
            tiny_teacher_dir,
            config=forced,
            glue_dir=glue_dir,
            max_train_examples=48,
            verbose=0,
        )


def test_missing_teacher_and_foreign_bank(tiny_teacher_dir, glue_dir, tmp_path):
    config = DistillConfig(**CONFIG)
    with pytest.raises(TeacherNotFoundError, match="no fine-tuned sst2 teacher in"):
        distill_glue(
            "sst2",
            tmp_path / "x",
            tmp_path / "no_teacher",
            config=config,
            glue_dir=glue_dir,
            finetune_missing_teacher=False,
            verbose=0,
        )
    distill_glue(
        "sst2",
        tmp_path / "run",
        tiny_teacher_dir,
        config=DistillConfig(**{**CONFIG, "intermediate_epochs": 0, "prediction_epochs": 0}),
        glue_dir=glue_dir,
        max_train_examples=48,
        verbose=0,
    )
    meta_path = tmp_path / "run" / "bank" / "bank.json"
    meta = json.loads(meta_path.read_text())
    meta["teacher"] = "another-teacher"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BankError, match="teacher='another-teacher'"):
        distill_glue(
            "sst2",
            tmp_path / "run2",
            tiny_teacher_dir,
            config=config,
            glue_dir=glue_dir,
            max_train_examples=48,
            bank_dir=tmp_path / "run" / "bank",
            verbose=0,
        )


def test_reference_ceiling_on_rte(glue_dir, minilm_tokenizer):
    """The replayed bank retrieval: every training example an anchor when M = 0, a vote of one anchor equal to the
    top-1 reference, the majority share of the real dev labels, and no label agreement for a regression task."""
    from refbert_tf.pipelines import reference_ceiling, reference_ceiling_markdown

    rows = reference_ceiling(
        "rte",
        minilm_tokenizer,
        num_buckets=(256,),
        max_anchors=(64, 0),
        vote=1,
        max_seq_len=64,
        glue_dir=glue_dir,
        train_sample=300,
    )
    assert [(r["num_buckets"], r["max_anchors"]) for r in rows] == [(256, 64), (256, 0)]
    assert rows[0]["num_anchors"] <= 64 and rows[1]["num_anchors"] == 2490
    dev = read_glue_tsv("rte", "dev", glue_dir=glue_dir)
    for r in rows:
        assert r["dev"]["majority_class"] == round(100 * np.bincount(dev.labels).max() / len(dev), 2)
        assert r["dev_vote"] == {
            "k": 1,
            "agreement": r["dev"]["agreement"],
            "majority_class": r["dev"]["majority_class"],
        }
        assert 0 <= r["train"]["agreement"] <= 100 and -1 <= r["train"]["mean_similarity"] < 1.0001
    assert "| rte | 256 | 2490 (all) |" in reference_ceiling_markdown(rows)
    with pytest.raises(ValueError, match="regression"):
        reference_ceiling("stsb", minilm_tokenizer, glue_dir=glue_dir)


def test_glue_summary(tmp_path):
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import glue_summary

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
    assert len(rows) == 3 and "| mrpc | f1 | - | - | - |" in md
    assert "94.4% of the teacher's average" in md and "+5.00 points" in md
    write_json(tmp_path / "distill/gd/sst2_refbert.json", {"metrics": {"accuracy": 88.0}, "command": "cmd gd"})
    rows, md = glue_summary(tmp_path, ("sst2",), distill_dir=tmp_path / "distill/gd")  # another family of runs
    assert [(r["model"], r["value"]) for r in rows] == [("teacher", 90.0), ("refbert", 88.0)]
    assert "| sst2 | accuracy | 90.00 | - | 88.00 |" in md


def test_glue_summary_flags_students_of_another_teacher_and_pre_fix_runs(tmp_path):
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import glue_summary

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
    assert "| rte | accuracy | 60.65 | 52.70 [1] | 55.00 |" in md and "[1] rte vanilla: distilled from a teacher" in md
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
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import ablation_plot, ablation_summary

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


def test_distill_config_rejects_two_student_inits():
    with pytest.raises(ValueError, match="choose one way"):
        DistillConfig(init_from_teacher=True, init_embeddings_from_teacher=True)
    with pytest.raises(ValueError, match="student_init"):
        DistillConfig(init_embeddings_from_teacher=True, student_init="artifacts/general/tinybert4")


def test_general_distill_then_task_distill_from_it(glue_dir, minilm_tokenizer, tiny_teacher_dir, tmp_path):
    from refbert_tf.models.student import load_student

    keras.utils.set_random_seed(0)
    teacher = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)  # a "pre-trained" encoder
    config = GeneralDistillConfig(
        student="tiny", tasks=("sst2", "rte"), max_examples=48, epochs=2, batch_size=16, max_seq_len=32, backup_every=2
    )
    general = general_distill(
        tmp_path / "general",
        config=config,
        glue_dir=glue_dir,
        backbone=teacher,
        tokenizer=minilm_tokenizer,
        verbose=0,
        command="pytest",
    )
    assert general["model"] == "general" and general["num_examples"] == 48 == sum(general["corpus"].values())
    assert (
        general["loss"]["intervals_run"] == 3 and general["loss"]["last_interval"] < general["loss"]["first_interval"]
    )
    assert general["code_version"] == code_version() and general["command"] == "pytest"
    assert not (tmp_path / "general" / "backup").exists()  # the resume checkpoint is gone after a finished run
    student, meta = load_student(tmp_path / "general")
    assert meta["vocab_sha256"] == minilm_tokenizer.vocab_sha256 and student.bank is None
    # run again: the finished student is kept and its result returned; another config is refused
    again = general_distill(
        tmp_path / "general", config=config, glue_dir=glue_dir, backbone=teacher, tokenizer=minilm_tokenizer, verbose=0
    )
    assert again == json.loads(json.dumps(general))
    with pytest.raises(ValueError, match="holds a finished general student .* pass another --output-dir"):
        general_distill(
            tmp_path / "general",
            config=GeneralDistillConfig(**{**dataclasses.asdict(config), "epochs": 3}),
            glue_dir=glue_dir,
            backbone=teacher,
            tokenizer=minilm_tokenizer,
            verbose=0,
        )
    run = distill_glue(
        "sst2",
        tmp_path / "task",
        tiny_teacher_dir,
        glue_dir=glue_dir,
        max_train_examples=32,
        verbose=0,
        config=DistillConfig(
            use_reference=False,
            student_init=str(tmp_path / "general"),
            **{**CONFIG, "intermediate_epochs": 0, "prediction_epochs": 0},
        ),
    )
    task_student = keras.saving.load_model(tmp_path / "task" / "student.keras")
    for a, b in zip(task_student.blocks[-1].get_weights(), student.blocks[-1].get_weights()):
        np.testing.assert_array_equal(a, b)  # no training steps: the encoder is the general student's
    assert run["config"]["student_init"] == str(tmp_path / "general")
