import dataclasses

import pytest

from refbert_tf.config import ABLATION_KNOBS, TrainingConfig, init_from_record
from refbert_tf.pipelines import DistillConfig, GeneralDistillConfig, distill_config
from refbert_tf.training import FinetuneConfig


def test_every_run_config_shares_the_training_settings():
    shared = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert {
        "batch_size",
        "learning_rate",
        "lr_scaling",
        "warmup_ratio",
        "weight_decay",
        "max_seq_len",
        "seed",
        "backup_every",
    } == shared
    for cls in (FinetuneConfig, DistillConfig, GeneralDistillConfig):
        assert shared <= {f.name for f in dataclasses.fields(cls)}
    assert FinetuneConfig().learning_rate == 5e-5  # BERT's fine-tuning rate
    assert DistillConfig().learning_rate == GeneralDistillConfig().learning_rate == 1e-4
    stsb = distill_config("stsb", batch_size=16)
    assert (stsb.batch_size, stsb.intermediate_epochs, stsb.seed) == (16, 4.0, 42)


def test_every_setting_describes_itself_and_the_knobs_come_from_the_fields():
    for cls in (FinetuneConfig, DistillConfig, GeneralDistillConfig):
        for field in dataclasses.fields(cls):
            assert field.metadata.get("help"), (cls.__name__, field.name)
    knobs = {f.name for f in dataclasses.fields(DistillConfig) if f.metadata["knob"]}
    assert set(ABLATION_KNOBS) == knobs
    assert {"init", "use_reference", "bank_tokens", "top_k", "learning_rate"} <= knobs
    assert "augment_candidates" not in knobs and "seed" not in knobs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(learning_rate=-1.0), "--learning-rate must be > 0, got -1.0"),
        (dict(temperature=float("inf")), "--temperature must be a finite number"),
        (dict(warmup_ratio=1.5), "--warmup-ratio must be <= 1"),
        (dict(batch_size=0), "--batch-size must be >= 1"),
        (dict(augment=-1), "--augment must be >= 0"),
        (dict(reference_projection="mlp"), "--reference-projection must be one of linear, linear_norm"),
        (
            dict(student="tinybert5"),
            "--student must be one of tinybert4, tinybert4_h240, tinybert4_h192, tinybert6, tiny",
        ),
        (dict(init="prunned"), "--init 'prunned': neither one of auto, random, pruned"),
        (dict(embedding_dim=-1), "--embedding-dim must be >= 0"),
        (dict(student="tinybert4_h192", embedding_dim=256), "--embedding-dim 256 exceeds the tinybert4_h192 student's"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_option(kwargs, message):
    with pytest.raises(ValueError) as error:
        DistillConfig(**kwargs)
    assert message in str(error.value)


def test_init_takes_a_directory_and_reads_older_result_files(tmp_path):
    assert DistillConfig(init=str(tmp_path)).init == str(tmp_path)
    assert init_from_record({"init": "pruned"}) == "pruned"
    assert init_from_record({"init_by_pruning": True}) == "pruned"
    assert init_from_record({"init_by_pruning": False}) == "random"
    assert init_from_record({}) == "random"  # runs from before pruning started from random weights
    assert init_from_record({"init_from_teacher": True, "init_by_pruning": False}) == "teacher"
    assert init_from_record({"init_embeddings_from_teacher": True}) == "teacher-embeddings"
    assert init_from_record({"student_init": "artifacts/general/tinybert4"}) == "artifacts/general/tinybert4"
