import json

import keras
import pytest
from helpers import Interrupt, tiny_bert_backbone

from refbert_tf.data import get_task, read_glue_tsv
from refbert_tf.models.teacher import TeacherNotFoundError, build_teacher, finetune_teacher, load_teacher
from refbert_tf.training import FinetuneConfig, fit, predict_outputs


@pytest.mark.parametrize("task", ["sst2", "stsb"])
def test_tiny_finetune_saves_a_teacher_that_reloads(glue_dir, minilm_tokenizer, tmp_path, task):
    config = FinetuneConfig(epochs=2, batch_size=16, learning_rate=1e-3, max_seq_len=32)
    result = finetune_teacher(
        task,
        tmp_path / task,
        config=config,
        glue_dir=glue_dir,
        max_train_examples=64,
        backbone=tiny_bert_backbone(),
        tokenizer=minilm_tokenizer,
        verbose=0,
        command="pytest",
    )
    t = get_task(task)
    assert result["task"] == task and list(result["metrics"]) == list(t.metric_names)
    assert result["num_train"] == 64 and result["num_dev"] == len(read_glue_tsv(task, "dev", glue_dir=glue_dir))
    assert not (tmp_path / task / "backup").exists()  # removed once training finished
    model, tokenizer, meta = load_teacher(tmp_path / task, task=task)
    assert meta["task"] == task and meta["vocab_sha256"] == minilm_tokenizer.vocab_sha256
    dev = read_glue_tsv(task, "dev", glue_dir=glue_dir).take(8)
    feats = tokenizer.encode(dev.text_a, dev.text_b, 32)
    assert predict_outputs(model, feats).shape == (8, t.num_classes)
    if task == "sst2":  # a fresh interpreter, where nothing has imported refbert_tf's registered classes yet
        import subprocess
        import sys

        code = f"from refbert_tf.models.teacher import load_teacher; load_teacher({str(tmp_path / task)!r})"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]


def test_fit_lowers_the_loss(minilm_tokenizer, glue_dir, tmp_path):
    keras.utils.set_random_seed(0)
    ex = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(32)
    feats = minilm_tokenizer.encode(ex.text_a, max_seq_len=32)
    model = build_teacher(tiny_bert_backbone(dropout=0.0), "sst2", dropout=0.0)
    config = FinetuneConfig(epochs=60, batch_size=32, learning_rate=3e-3, max_seq_len=32, backup_every=10)
    history = fit(model, get_task("sst2"), feats, ex.labels, config, backup_dir=tmp_path / "backup", verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_interrupted_fit_resumes_from_its_last_checkpoint(minilm_tokenizer, glue_dir, tmp_path):
    ex = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(64)
    feats = minilm_tokenizer.encode(ex.text_a, max_seq_len=32)
    config = FinetuneConfig(epochs=3, batch_size=16, learning_rate=1e-3, max_seq_len=32, backup_every=2)
    task = get_task("sst2")
    keras.utils.set_random_seed(0)
    model = build_teacher(tiny_bert_backbone(), task)
    with pytest.raises(KeyboardInterrupt):
        fit(model, task, feats, ex.labels, config, backup_dir=tmp_path / "backup", callbacks=[Interrupt(7)], verbose=0)
    assert (tmp_path / "backup").exists() and int(model.optimizer.iterations) == 7
    keras.utils.set_random_seed(0)
    resumed = build_teacher(tiny_bert_backbone(), task)
    counter = Interrupt(at_step=-1)
    fit(resumed, task, feats, ex.labels, config, backup_dir=tmp_path / "backup", callbacks=[counter], verbose=0)
    # 12 steps in all, a checkpoint every 2; the last was written at step 6, so the resumed run does the other 6
    assert int(resumed.optimizer.iterations) == 12
    assert counter.seen == 6
    assert not (tmp_path / "backup").exists()


def test_load_teacher_errors(tmp_path, glue_dir, minilm_tokenizer):
    with pytest.raises(TeacherNotFoundError, match=rf"no fine-tuned teacher in {tmp_path / 'rte'}"):
        load_teacher(tmp_path / "rte", task="rte")
    config = FinetuneConfig(epochs=1, batch_size=16, max_seq_len=32)
    finetune_teacher(
        "rte",
        tmp_path / "rte",
        config=config,
        glue_dir=glue_dir,
        max_train_examples=16,
        backbone=tiny_bert_backbone(),
        tokenizer=minilm_tokenizer,
        verbose=0,
    )
    with pytest.raises(ValueError, match="fine-tuned on 'rte', not 'mrpc'"):
        load_teacher(tmp_path / "rte", task="mrpc")
    meta = json.loads((tmp_path / "rte" / "teacher.json").read_text())
    meta["vocab_sha256"] = "0" * 64
    (tmp_path / "rte" / "teacher.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the sha256"):
        load_teacher(tmp_path / "rte")
