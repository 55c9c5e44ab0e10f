import dataclasses
import json

import keras
import numpy as np
import pytest
from helpers import TINY_DISTILL as CONFIG
from helpers import tiny_bert_backbone

from refbert_tf.cli import code_version
from refbert_tf.config import DistillConfig, GeneralDistillConfig
from refbert_tf.pipelines import distill_glue, general_distill


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
            init=str(tmp_path / "general"),
            **{**CONFIG, "intermediate_epochs": 0, "prediction_epochs": 0},
        ),
    )
    task_student = keras.saving.load_model(tmp_path / "task" / "student.keras")
    for a, b in zip(task_student.blocks[-1].get_weights(), student.blocks[-1].get_weights()):
        np.testing.assert_array_equal(a, b)  # no training steps: the encoder is the general student's
    assert run["config"]["init"] == str(tmp_path / "general")
