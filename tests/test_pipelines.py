import json

import keras
import pytest

from refbert_tf.bank import BankError
from refbert_tf.data import read_glue_tsv
from refbert_tf.models.teacher import TeacherNotFoundError, finetune_teacher
from refbert_tf.pipelines import DistillConfig, distill_glue
from refbert_tf.training import FinetuneConfig, predict_outputs
from helpers import tiny_bert_backbone


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory, glue_dir, minilm_tokenizer):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "sst2"
    backbone = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)
    finetune_teacher("sst2", path, config=FinetuneConfig(epochs=1, batch_size=16, max_seq_len=32),
                     glue_dir=glue_dir, max_train_examples=32, backbone=backbone, tokenizer=minilm_tokenizer,
                     verbose=0)
    return path


CONFIG = dict(student="tiny", intermediate_epochs=1, prediction_epochs=1, batch_size=16, bank_tokens=4,
              max_anchors=32, num_buckets=128, max_seq_len=32)


@pytest.mark.parametrize("use_reference", [True, False])
def test_distill_end_to_end_and_resume(tiny_teacher_dir, glue_dir, tmp_path, use_reference):
    config = DistillConfig(use_reference=use_reference, **CONFIG)
    out = tmp_path / "run"
    result = distill_glue("sst2", out, tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48,
                          verbose=0, command="pytest")
    assert result["model"] == ("refbert" if use_reference else "vanilla")
    assert list(result["metrics"]) == ["accuracy"] and result["num_dev"] == 872
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
    again = distill_glue("sst2", out, tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48,
                         verbose=0)
    assert again["metrics"] == pytest.approx(result["metrics"])
    assert "intermediate_seconds" not in again["stage_seconds"]


@pytest.mark.parametrize("top_k", [1, 2])
def test_distillation_batches_carry_the_offline_references(tiny_teacher_dir, glue_dir, tmp_path, monkeypatch,
                                                           top_k):
    """Training must read each example's offline reference (never itself), not retrieve in-graph, where a bank
    anchor finds itself. The old pipeline lost ``reference_index`` on the way into the batches."""
    from refbert_tf.distillation import Distiller

    seen = []
    original = Distiller.compute_gradients

    def spy(self, data):
        seen.append(tuple(data[0]["reference_index"].shape) if "reference_index" in data[0] else None)
        return original(self, data)

    monkeypatch.setattr(Distiller, "compute_gradients", spy)
    config = DistillConfig(**{**CONFIG, "top_k": top_k, "reference_projection": "linear_norm",
                              "prediction_epochs": 0})
    result = distill_glue("sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir,
                          max_train_examples=48, verbose=0)
    assert seen and all(s is not None and s[1:] == (() if top_k == 1 else (top_k,)) for s in seen), seen
    assert result["bank"]["train_self_references"] == 0 and result["config"]["top_k"] == top_k
    assert result["bank"]["dev_retrieval_agreement"] >= 0.95


def test_missing_teacher_and_foreign_bank(tiny_teacher_dir, glue_dir, tmp_path):
    config = DistillConfig(**CONFIG)
    with pytest.raises(TeacherNotFoundError, match="no fine-tuned sst2 teacher in"):
        distill_glue("sst2", tmp_path / "x", tmp_path / "no_teacher", config=config, glue_dir=glue_dir,
                     finetune_missing_teacher=False, verbose=0)
    distill_glue("sst2", tmp_path / "run", tiny_teacher_dir, config=DistillConfig(
        **{**CONFIG, "intermediate_epochs": 0, "prediction_epochs": 0}), glue_dir=glue_dir,
        max_train_examples=48, verbose=0)
    meta_path = tmp_path / "run" / "bank" / "bank.json"
    meta = json.loads(meta_path.read_text())
    meta["teacher"] = "another-teacher"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BankError, match="teacher='another-teacher'"):
        distill_glue("sst2", tmp_path / "run2", tiny_teacher_dir, config=config, glue_dir=glue_dir,
                     max_train_examples=48, bank_dir=tmp_path / "run" / "bank", verbose=0)


def test_glue_summary(tmp_path):
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import glue_summary

    for model, value in (("teacher", 90.0), ("vanilla", 80.0), ("refbert", 85.0)):
        path = tmp_path / ("teacher/sst2.json" if model == "teacher" else f"distill/sst2_{model}.json")
        write_json(path, {"metrics": {"accuracy": value}, "command": f"cmd {model}"})
    rows, md = glue_summary(tmp_path, ("sst2", "mrpc"))
    assert rows[0] == {"task": "sst2", "model": "teacher", "metric": "accuracy", "value": 90.0,
                       "command": "cmd teacher"}
    assert len(rows) == 3 and "| mrpc | f1 | - | - | - |" in md
    assert "94.4% of the teacher's average" in md and "+5.00 points" in md


def test_glue_summary_flags_students_of_another_teacher_and_pre_fix_runs(tmp_path):
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines import glue_summary

    write_json(tmp_path / "teacher/rte.json", {"metrics": {"accuracy": 60.65}, "command": "t"})
    write_json(tmp_path / "distill/rte_vanilla.json", {"metrics": {"accuracy": 52.7}, "command": "v",
                                                       "teacher_metrics": {"accuracy": 59.57},
                                                       "config": {"use_reference": False}})
    write_json(tmp_path / "distill/rte_refbert.json", {"metrics": {"accuracy": 55.0}, "command": "r",
                                                       "teacher_metrics": {"accuracy": 60.65},
                                                       "config": {"use_reference": True, "top_k": 1}})
    rows, md = glue_summary(tmp_path, ("rte",))
    notes = {r["model"]: r.get("note") for r in rows}
    assert notes == {"teacher": None, "vanilla": "distilled from a teacher scoring 59.57", "refbert": None}
    assert "| rte | accuracy | 60.65 | 52.70 [1] | 55.00 |" in md and "[1] rte vanilla: distilled from a teacher" in md
    write_json(tmp_path / "distill/rte_refbert.json", {"metrics": {"accuracy": 55.0}, "command": "r",
                                                       "teacher_metrics": {"accuracy": 60.65},
                                                       "config": {"use_reference": True}})
    rows, md = glue_summary(tmp_path, ("rte",))
    assert "55.00 [2]" in md and "before the reference fix" in rows[2]["note"]
