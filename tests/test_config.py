import dataclasses

from refbert_tf.config import TrainingConfig
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
