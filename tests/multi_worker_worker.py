"""One process of ``tests/test_multi_worker.py``: the one-device reference run, or one worker of a
``MultiWorkerMirroredStrategy`` cluster (its ``TF_CONFIG`` in the environment).

Usage::

    python tests/multi_worker_worker.py single GLUE_DIR OUT_DIR   # writes OUT_DIR/bank, init_*.npz, single_*.npz
    python tests/multi_worker_worker.py worker GLUE_DIR OUT_DIR   # reads them, writes OUT_DIR/worker<i>_*.npz

Both distill the same tiny teacher into the same tiny RefBERT student for ``STEPS`` ``fit`` steps of the global
batch ``GLOBAL_BATCH`` (64 SST-2 training sentences, unshuffled), in both stages, with the project's optimizer
(AdamW, clipnorm 1.0). The workers start from the reference run's bank and initial weights, so any difference is
the strategy's. Each result file holds the ``fit`` losses, the weights after the last step and the first batch the
process's replica saw.
"""

import json
import os
import sys
import time
from pathlib import Path

MODE, GLUE_DIR, OUT = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if MODE not in ("single", "worker"):
    sys.exit(f"usage: {sys.argv[0]} single|worker GLUE_DIR OUT_DIR")
if MODE == "worker":
    from refbert_tf.distribute import make_strategy

    STRATEGY = make_strategy("multi_worker")  # before any other TensorFlow use: the cluster comes from TF_CONFIG

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from helpers import tiny_bert_backbone  # noqa: E402

from refbert_tf.bank import ReferenceBank, build_bank  # noqa: E402
from refbert_tf.data import make_dataset, read_glue_tsv  # noqa: E402
from refbert_tf.distillation import Distiller  # noqa: E402
from refbert_tf.distribute import check_global_batch, strategy_info  # noqa: E402
from refbert_tf.models.checkpoints import default_teacher_dir  # noqa: E402
from refbert_tf.models.student import build_student  # noqa: E402
from refbert_tf.models.teacher import build_teacher  # noqa: E402
from refbert_tf.tokenization import BertWordPieceTokenizer  # noqa: E402
from refbert_tf.training import make_adamw  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 3
STAGES = ("intermediate", "prediction")

if MODE == "single":
    STRATEGY = tf.distribute.get_strategy()
    NAME = "single"
else:
    NAME = f"worker{json.loads(os.environ['TF_CONFIG'])['task']['index']}"
start = time.perf_counter()
per_replica = check_global_batch(GLOBAL_BATCH, STRATEGY)
tok = BertWordPieceTokenizer(default_teacher_dir() / "vocab.txt", lowercase=True)
ex = read_glue_tsv("sst2", "train", glue_dir=GLUE_DIR).take(64)
feats = tok.encode(ex.text_a, max_seq_len=32)


def build(stage, bank):
    """Teacher (seed 0, sharpened logits), bank (built here in the reference run), student, distiller."""
    keras.utils.set_random_seed(0)
    with STRATEGY.scope():
        teacher = build_teacher(
            tiny_bert_backbone(num_layers=4, hidden_dim=24, intermediate_dim=48, dropout=0.0), "sst2", dropout=0.0
        )
        kernel, bias = teacher.output_dense.get_weights()
        teacher.output_dense.set_weights([kernel * 50.0, bias])
        if bank is None:
            bank = build_bank(
                teacher.backbone, feats, layer=1, num_tokens=4, max_anchors=64, num_buckets=128,
                ignore_ids=(tok.cls_id, tok.sep_id, tok.pad_id), progress=False,
            )  # fmt: skip
        student = build_student("tiny", 2, 30522, teacher_dim=24, bank=bank, max_sequence_length=64, dropout=0.0)
        distiller = Distiller(teacher, student, stage=stage)
        init = OUT / f"init_{stage}.npz"
        if MODE == "worker":  # the reference run's initial weights
            with np.load(init) as f:
                distiller.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
        else:
            np.savez(init, *distiller.get_weights())
        distiller.compile(optimizer=make_adamw(1e-3, total_steps=10, warmup_ratio=0.0))
    return distiller, bank


bank = ReferenceBank.load(OUT / "bank") if MODE == "worker" else None
for stage in STAGES:
    distiller, bank = build(stage, bank)
    if MODE == "single" and stage == STAGES[0]:
        bank.save(OUT / "bank")
    ref, _ = bank.references_for(feats, exclude_self=True)
    features = {
        "token_ids": feats["token_ids"],
        "segment_ids": feats["segment_ids"],
        "reference_index": tf.constant(ref.astype(np.int32)),
    }
    # unshuffled: tf.data's shuffle order under a strategy is not the one-device order (docs/scale-out.md)
    ds = make_dataset(features, ex.labels, batch_size=GLOBAL_BATCH, shuffle=False)
    first = next(iter(STRATEGY.experimental_distribute_dataset(ds)))
    local = [np.asarray(t) for t in STRATEGY.experimental_local_results(first[0]["token_ids"])]
    history = distiller.fit(ds.repeat(), epochs=STEPS, steps_per_epoch=1, verbose=0).history["total_loss"]
    np.savez(
        OUT / f"{NAME}_{stage}.npz",
        loss=np.asarray(history, np.float64),
        first_batch=np.concatenate(local),
        **{f"w{i}": w for i, w in enumerate(distiller.get_weights())},
    )
info = {**strategy_info(STRATEGY), "per_replica_batch": per_replica, "seconds": round(time.perf_counter() - start, 1)}
(OUT / f"{NAME}.json").write_text(json.dumps(info), encoding="utf-8")
print("RESULT " + json.dumps(info))
