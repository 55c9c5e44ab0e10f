"""tf.distribute: MirroredStrategy over 2 logical CPUs gives the single-device losses and gradients."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refbert_tf.distribute import check_global_batch, make_strategy, scaled_learning_rate

TESTS = Path(__file__).resolve().parent

# Run in a fresh process: logical devices must be configured before TensorFlow initialises (pytest's has).
MIRRORED_CHECK = r"""
import json, sys
from refbert_tf.distribute import make_strategy
mirrored = make_strategy("mirrored", cpu_devices=2)  # before any other TensorFlow use
import keras, numpy as np, tensorflow as tf
from helpers import tiny_bert_backbone
from refbert_tf.bank import build_bank
from refbert_tf.data import make_dataset, read_glue_tsv
from refbert_tf.distillation import Distiller
from refbert_tf.models.checkpoints import default_teacher_dir
from refbert_tf.models.student import build_student
from refbert_tf.models.teacher import build_teacher
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.training import make_adamw

glue_dir, stage, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
single = tf.distribute.get_strategy()
tok = BertWordPieceTokenizer(default_teacher_dir() / "vocab.txt", lowercase=True)
ex = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(64)
feats = tok.encode(ex.text_a, max_seq_len=32)

if stage == "teacher":  # teacher fine-tuning: keras-hub classifier, built-in Keras loss, AdamW, run_fit
    from refbert_tf.data import get_task
    from refbert_tf.training import make_adamw, run_fit, task_loss
    histories, weights = [], None
    for i, strategy in enumerate((single, mirrored)):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            teacher = build_teacher(tiny_bert_backbone(num_layers=2, hidden_dim=24, intermediate_dim=48,
                                                       dropout=0.0), "sst2", dropout=0.0)
            weights = weights or teacher.get_weights()
            teacher.set_weights(weights)
            teacher.compile(optimizer=make_adamw(1e-3, total_steps=3, warmup_ratio=0.0),
                            loss=task_loss(get_task("sst2")))
            # unshuffled: tf.data's shuffle order under a strategy is not the one-device order (see README)
            ds = make_dataset(feats, ex.labels, batch_size=16, shuffle=False, repeat=True)
            h = run_fit(teacher, ds, intervals=3, steps_per_interval=1, backup_dir=f"{tmp}/b{i}", verbose=0)
        histories.append(h.history["loss"])
        after = teacher.get_weights()
        single_after = after if i == 0 else single_after
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single_after, after))
    print("RESULT " + json.dumps({"fit_loss_single": histories[0], "fit_loss_mirrored": histories[1],
                                  "max_weight_diff": diff}))
    sys.exit(0)

def models(strategy, weights=None):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        teacher = build_teacher(tiny_bert_backbone(num_layers=4, hidden_dim=24, intermediate_dim=48, dropout=0.0),
                                "sst2", dropout=0.0)
        kernel, bias = teacher.output_dense.get_weights()
        teacher.output_dense.set_weights([kernel * 50.0, bias])
        bank = build_bank(teacher.backbone, feats, layer=1, num_tokens=4, max_anchors=64, num_buckets=128,
                          ignore_ids=(tok.cls_id, tok.sep_id, tok.pad_id), progress=False)
        student = build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, dropout=0.0)
        distiller = Distiller(teacher, student, stage=stage)
        if weights is not None:
            distiller.set_weights(weights)
        distiller.compile(optimizer=make_adamw(1e-3, total_steps=10, warmup_ratio=0.0))
    return distiller, bank

d1, bank = models(single)
d2, _ = models(mirrored, d1.get_weights())
ref, _ = bank.references_for(feats, exclude_self=True)
features = {"token_ids": feats["token_ids"], "segment_ids": feats["segment_ids"],
            "reference_index": tf.constant(ref.astype(np.int32))}
ds = make_dataset(features, ex.labels, batch_size=16, shuffle=False)  # global batch 16 = 2 replicas x 8

def single_grads(batch):
    losses, grads = d1.compute_gradients(batch)
    return losses["distillation_loss"], [tf.convert_to_tensor(g) for g in grads if g is not None]

@tf.function
def mirrored_grads(batch):
    losses, grads = mirrored.run(d2.compute_gradients, args=(batch,))
    total = mirrored.reduce("SUM", losses["distillation_loss"], axis=None)
    return total, [tf.convert_to_tensor(mirrored.reduce("SUM", g, axis=None)) for g in grads if g is not None]

def compare(batch, dist_batch):
    l1, g1 = single_grads(batch)
    l2, g2 = mirrored_grads(dist_batch)
    return {"loss_single": float(l1), "loss_mirrored": float(l2),
            "max_grad_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(g1, g2)),
            "max_grad_abs": max(float(np.max(np.abs(np.asarray(a)))) for a in g1),
            "max_grad_norm": max(float(np.linalg.norm(np.asarray(a))) for a in g1), "num_grads": len(g1)}

batch = next(iter(ds))
dist_batch = next(iter(mirrored.experimental_distribute_dataset(ds)))
shards = mirrored.experimental_local_results(dist_batch[0]["padding_mask"])
out = {"replicas": mirrored.num_replicas_in_sync, "per_replica_examples": [int(s.shape[0]) for s in shards],
       "per_replica_tokens": [int(np.sum(s)) for s in shards], "before": compare(batch, dist_batch)}
# a few distillation steps with model.fit (AdamW, clipnorm 1.0) on both, same data, same order
repeat = ds.repeat()
h1 = d1.fit(repeat, epochs=3, steps_per_epoch=1, verbose=0).history["total_loss"]
h2 = d2.fit(repeat, epochs=3, steps_per_epoch=1, verbose=0).history["total_loss"]
out["fit_loss_single"], out["fit_loss_mirrored"] = h1, h2
out["after"] = compare(batch, dist_batch)
out["max_weight_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(d1.get_weights(), d2.get_weights()))
print("RESULT " + json.dumps(out))
"""


def _run_check(glue_dir, stage, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_CHECK, str(glue_dir), stage, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_mirrored_two_cpus_equals_single_device(glue_dir, stage, tmp_path):
    r = _run_check(glue_dir, stage, tmp_path)
    assert r["replicas"] == 2 and r["per_replica_examples"] == [8, 8]
    # the replicas hold different token counts: a per-replica token mean averaged again would be wrong
    assert r["per_replica_tokens"][0] != r["per_replica_tokens"][1]
    for when in ("before", "after"):
        c = r[when]
        assert c["num_grads"] > 10
        assert abs(c["loss_single"] - c["loss_mirrored"]) <= 1e-5 * max(1.0, abs(c["loss_single"])), (when, c)
        assert c["max_grad_diff"] <= 1e-5 * max(1.0, c["max_grad_abs"]), (when, c)
    assert max(abs(a - b) for a, b in zip(r["fit_loss_single"], r["fit_loss_mirrored"])) <= 1e-5, r
    assert r["max_weight_diff"] <= 1e-5, r


@pytest.mark.slow
def test_mirrored_teacher_finetuning_equals_single_device(glue_dir, tmp_path):
    r = _run_check(glue_dir, "teacher", tmp_path)
    assert len(r["fit_loss_single"]) == 3  # 3 optimizer steps of the global batch 16
    assert max(abs(a - b) for a, b in zip(r["fit_loss_single"], r["fit_loss_mirrored"])) <= 1e-5, r
    assert r["max_weight_diff"] <= 1e-5, r


def test_strategy_arguments():
    with pytest.raises(ValueError, match="unknown --strategy 'horovod'"):
        make_strategy("horovod")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        if "TF_CONFIG" in os.environ:
            pytest.skip("TF_CONFIG is set in this environment")
        make_strategy("multi_worker")
    single = make_strategy("default")
    assert single.num_replicas_in_sync == 1 and check_global_batch(32, single) == 32


def test_learning_rate_scaling():
    assert scaled_learning_rate(1e-4, 256, "none") == 1e-4
    assert scaled_learning_rate(1e-4, 256, "linear") == pytest.approx(8e-4)
    assert scaled_learning_rate(1e-4, 128, "sqrt") == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="--lr-scaling"):
        scaled_learning_rate(1e-4, 32, "cubic")


def test_global_batch_must_split_over_replicas():
    class TwoReplicas:
        num_replicas_in_sync = 2

    assert check_global_batch(32, TwoReplicas()) == 16
    with pytest.raises(ValueError, match="--batch-size 33 .* multiple of the 2 replicas"):
        check_global_batch(33, TwoReplicas())


def _recipe_error(capsys, fn) -> str:
    """``fn`` under :func:`refbert_tf.cli.run`, as a recipe runs its ``main``: exit code 2 and one line."""
    from refbert_tf.cli import run

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(fn)
    err = capsys.readouterr().err
    prefix = f"{os.path.basename(sys.argv[0])}: error: "
    assert exit_info.value.code == 2 and err.startswith(prefix) and err.count("\n") == 1, err
    return err[len(prefix) : -1]


def test_strategy_errors_end_a_recipe_with_one_line(capsys, monkeypatch):
    from refbert_tf.distribute import StrategyError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert _recipe_error(capsys, lambda: make_strategy("multi_worker")) == (
        "--strategy multi_worker needs the TF_CONFIG environment variable (cluster spec and this worker's task); "
        "see docs/scale-out.md"
    )
    monkeypatch.setenv("TF_CONFIG", "{'cluster': }")
    message = _recipe_error(capsys, lambda: make_strategy("multi_worker"))
    assert message.startswith("--strategy multi_worker: TF_CONFIG is not JSON (") and "docs/scale-out.md" in message
    monkeypatch.setenv("TF_CONFIG", '{"task": {"type": "worker", "index": 0}}')
    with pytest.raises(StrategyError, match="TF_CONFIG has no 'cluster'"):
        make_strategy("multi_worker")

    class TwoReplicas:
        num_replicas_in_sync = 2

    assert _recipe_error(capsys, lambda: check_global_batch(33, TwoReplicas())) == (
        "--batch-size 33 (global) must be a multiple of the 2 replicas of the strategy"
    )


def test_multi_worker_without_tf_config_stops_the_recipe_before_any_write(glue_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "recipes/distill_glue.py", "--task", "sst2", "--glue-dir", str(glue_dir)]
        + ["--strategy", "multi_worker", "--output-dir", str(tmp_path / "students")]
        + ["--teacher-dir", str(tmp_path / "teachers"), "--results", str(tmp_path / "r.json")],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert errors == ["distill_glue.py: error: --strategy multi_worker needs the TF_CONFIG environment variable "
                      "(cluster spec and this worker's task); see docs/scale-out.md"], proc.stderr[-3000:]  # fmt: skip
    assert list(tmp_path.iterdir()) == []
