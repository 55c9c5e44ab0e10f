import dataclasses
import json

import keras
import pytest
from helpers import TINY_DISTILL as CONFIG

from refbert_tf.bank import BankError
from refbert_tf.cli import code_version
from refbert_tf.config import DistillConfig
from refbert_tf.data import make_dataset, read_glue_tsv
from refbert_tf.models.teacher import TeacherNotFoundError
from refbert_tf.pipelines import distill_glue, pruning_probe
from refbert_tf.rundir import RunDirError
from refbert_tf.training import predict_outputs


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
    # ... and a re-run with other settings is refused before any work, leaving the run as it was
    with pytest.raises(RunDirError, match=r"config.learning_rate \(was 0.0001, now 0.001\)"):
        distill_glue("sst2", out, tiny_teacher_dir, config=dataclasses.replace(config, learning_rate=1e-3),
                     glue_dir=glue_dir, max_train_examples=48, verbose=0)  # fmt: skip
    assert json.loads((out / "student.json").read_text())["metrics"] == result["metrics"]


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
    import refbert_tf.distillation

    planned = []
    original = refbert_tf.distillation.plan_steps

    def spy(num_examples, *args):
        planned.append(num_examples)
        return original(num_examples, *args)

    monkeypatch.setattr(refbert_tf.distillation, "plan_steps", spy)
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
            "init": "pruned",
            "use_reference": False,
            "intermediate_epochs": 0,
            "prediction_epochs": 0,
        }
    )
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert pruning_layer_map(backbone.num_layers, backbone.num_layers) == list(range(1, backbone.num_layers + 1))
    assert result["config"]["init"] == "pruned"
    assert result["metrics"]["accuracy"] == pytest.approx(result["teacher_metrics"]["accuracy"], abs=1e-6)
    identity = list(range(1, backbone.num_layers + 1))
    probe = pruning_probe(
        "sst2", tiny_teacher_dir, [identity, identity[::-1]], student="teacher_shaped", glue_dir=glue_dir
    )
    assert [row["mapping"] for row in probe] == [identity, identity[::-1]]
    assert probe[0]["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    # the default (init "auto") prunes a student that fits the teacher
    default = distill_glue(
        "sst2",
        tmp_path / "default",
        tiny_teacher_dir,
        config=dataclasses.replace(config, init="auto"),
        glue_dir=glue_dir,
        max_train_examples=48,
        verbose=0,
    )
    assert default["config"]["init"] == "pruned"
    assert default["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)
    # ... unless another initialisation is chosen
    other = dataclasses.replace(config, init="teacher-embeddings")
    assert (
        distill_glue(
            "sst2",
            tmp_path / "emb",
            tiny_teacher_dir,
            config=other,
            glue_dir=glue_dir,
            max_train_examples=48,
            verbose=0,
        )["config"]["init"]
        == "teacher-embeddings"
    )
    with pytest.raises(ValueError, match="cannot be pruned"):
        pruning_layer_map(7, 6)


def test_a_student_wider_than_the_teacher_falls_back_to_random_init(tiny_teacher_dir, glue_dir, tmp_path, capsys):
    """The tiny student (hidden 32) is wider than the tiny teacher (24): by default it starts from random weights
    (and says so); asking for pruning explicitly is an error naming the option and the sizes."""
    config = DistillConfig(**{**CONFIG, "use_reference": False, "intermediate_epochs": 0, "prediction_epochs": 0})
    assert config.init == "auto"
    result = distill_glue(
        "sst2", tmp_path / "run", tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48, verbose=0
    )
    assert result["config"]["init"] == "random"
    assert "not pruned from the teacher (student (hidden 32, FFN 64) is wider" in capsys.readouterr().out
    forced = dataclasses.replace(config, init="pruned")
    with pytest.raises(ValueError, match=r"--init pruned: student \(hidden 32, FFN 64\) is wider"):
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


@pytest.mark.parametrize("entry", ["early", "late"])
def test_dense_retrieval_distills_reloads_and_never_reads_its_own_anchor(
    tiny_teacher_dir, glue_dir, tmp_path, monkeypatch, entry
):
    """--retrieval dense: the batches carry the teacher-space references (early) or the anchor positions that the
    in-graph retrieval excludes (late); the query loss trains; the saved student reloads and predicts the same."""
    import numpy as np

    from refbert_tf.bank.dense import load_or_build_dense_anchors
    from refbert_tf.distillation import Distiller

    seen = []
    original = Distiller.compute_gradients

    def spy(self, data):
        losses, grads = original(self, data)  # traced: the names, not the values, are seen here
        seen.append({k for k in data[0] if k in ("reference_index", "anchor_position")} | ({"query"} & set(losses)))
        return losses, grads

    monkeypatch.setattr(Distiller, "compute_gradients", spy)
    config = DistillConfig(**{**CONFIG, "retrieval": "dense", "dense_entry": entry, "dense_top_k": 4})
    out = tmp_path / "run"
    result = distill_glue("sst2", out, tiny_teacher_dir, config=config, glue_dir=glue_dir, max_train_examples=48,
                          verbose=0)  # fmt: skip
    assert result["model"] == f"refbert_dense_{entry}"
    key = "reference_index" if entry == "early" else "anchor_position"
    assert seen and all(s == {key, "query"} for s in seen), seen
    bank = result["bank"]
    assert bank["retrieval"] == "dense" and 0 <= bank["dev_retrieval_agreement"] <= 1
    assert set(bank["label_agreement"]) == {"teacher_keys", "student_query"}
    assert (0 < bank["mixing_weight"] < 1) if entry == "late" else "mixing_weight" not in bank
    # early: no training row reads its own anchor; late: each anchor row is told its anchor, the others -1
    from refbert_tf.bank import ReferenceBank

    stored = ReferenceBank.load(out / "bank")
    dense = load_or_build_dense_anchors(out / "bank", stored, None, {"token_ids": _Rows(48)}, "cls",
                                        result["teacher_id"], False)  # fmt: skip
    rows = np.arange(48)
    if entry == "early":
        assert not np.any(stored.anchor_ids[dense.references_for_rows(rows)] == rows)
    else:
        position = dense.anchor_positions(rows)
        is_anchor = np.isin(rows, stored.anchor_ids)
        assert is_anchor.any() and np.all(position[~is_anchor] == -1)
        assert np.array_equal(stored.anchor_ids[position[is_anchor]], rows[is_anchor])
    student = keras.saving.load_model(out / "student.keras")
    assert student.dense_entry == entry
    from refbert_tf.tokenization import BertWordPieceTokenizer

    dev = read_glue_tsv("sst2", "dev", glue_dir=glue_dir).take(8)
    feats = BertWordPieceTokenizer(out / "vocab.txt").encode(dev.text_a, max_seq_len=32)
    probs = predict_outputs(student, feats)
    assert probs.shape == (8, 2) and np.all(np.isfinite(probs))
    if entry == "late":  # with a zero mixing weight the late student is the plain student (its own logits)
        student.late_fusion.w.assign(-80.0)
        (batch,) = list(make_dataset(feats, None, batch_size=8, shuffle=False))
        fused = student.call_with_features(batch)
        plain = keras.ops.convert_to_numpy(keras.ops.log_softmax(fused["student_logits"], axis=-1))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(fused["logits"]), plain, atol=1e-5)
        assert np.array_equal(np.argmax(predict_outputs(student, feats), -1), np.argmax(plain, -1))
    # the main job's export step names the file after the variant and measures it beside Keras
    from refbert_tf.pipelines import export_glue_student

    export = export_glue_student("sst2", out, tmp_path / "tflite", variants=["dynamic_int8"], glue_dir=glue_dir,
                                 metadata=False)  # fmt: skip
    (row,) = export["variants"]
    assert row["path"].endswith(f"sst2_refbert_dense_{entry}_dynamic_int8.tflite") and row["bank_size_mb"] > 0
    assert abs(row["dev_drop"]) < 5.0


class _Rows:
    """Stands in for encoded features when only the row count is read (the cached dense keys are reused)."""

    def __init__(self, n):
        self.n = n

    def nrows(self):
        return self.n


def test_lexical_runs_record_no_dense_settings():
    from refbert_tf.pipelines.task_distillation import run_record

    assert "retrieval" not in run_record(DistillConfig(**CONFIG))
    assert run_record(DistillConfig(**{**CONFIG, "retrieval": "dense"}))["dense_entry"] == "early"
