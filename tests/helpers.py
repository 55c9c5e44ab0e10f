"""Test helpers shared across test files (importable because pytest puts tests/ on sys.path via conftest.py)."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parents[1]


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after ``at_step`` training batches (never if negative); counts batches seen."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.seen = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at_step:
            raise KeyboardInterrupt("simulated interruption")


def tiny_bert_backbone(
    num_layers=2, hidden_dim=32, intermediate_dim=64, vocabulary_size=30522, max_sequence_length=64, dropout=0.1
):
    """A small randomly initialised BERT encoder (2 heads, exact GELU) for tests that train or run a teacher."""
    from refbert_tf.models.backbone import BertBackbone

    return BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        dropout=dropout,
        hidden_activation="gelu",
    )


def run_model_saving_test(model, inputs, tmp_path, atol=1e-6, **call_kwargs):
    """Save ``model`` as ``.keras``, reload it, check that it gives the same outputs on ``inputs`` (to ``atol``)
    and return the reloaded model (keras-hub's ``run_model_saving_test``, for this project's models)."""
    import numpy as np

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = np.asarray(model(inputs, **call_kwargs))
    np.testing.assert_allclose(np.asarray(loaded(inputs, **call_kwargs)), expected, atol=atol)
    return loaded


# a tiny task-distillation run: tiny student, one pass per stage, a 32-anchor bank, 32 tokens
TINY_DISTILL = dict(
    student="tiny",
    intermediate_epochs=1,
    prediction_epochs=1,
    batch_size=16,
    bank_tokens=4,
    max_anchors=32,
    num_buckets=128,
    max_seq_len=32,
)


# README command 1 in miniature: the tiny student on 48 SST-2 examples, 3 optimizer steps a stage, a checkpoint
# after every step
TINY_MAIN_JOB = ("--student", "tiny", "--max-train-examples", "48", "--intermediate-epochs", "1", "--prediction-epochs", "1",
        "--batch-size", "16", "--max-anchors", "32", "--num-buckets", "128", "--max-seq-len", "32",
        "--backup-every", "1")  # fmt: skip


def run_recipe(args, pause_at=None, timeout=600):
    """Run ``python <args>`` from the project root; with ``pause_at``, SIGKILL it when it reaches that fault point.

    Returns:
        ``(returncode, stdout, stderr)``; for a killed run the return code is ``-SIGKILL``.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REFBERT_PAUSE_AT", None)
    if pause_at:
        env["REFBERT_PAUSE_AT"] = pause_at
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    lines, err = queue.Queue(), []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    out, deadline = [], time.monotonic() + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{args[0]} did not finish (or reach {pause_at}) in {timeout} s") from None
            if line is None:
                break
            out.append(line)
            if pause_at and "REFBERT_PAUSED" in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)  # the reader threads drain what is left
    return proc.returncode, "".join(out), "".join(err)


def distill_tiny(work, teacher_dir, glue_dir, pause_at=None):
    """README command 1 in miniature (:data:`TINY_MAIN_JOB`), its outputs under ``work``; see :func:`run_recipe`."""
    work, teacher_dir = Path(work), Path(teacher_dir)
    return run_recipe(
        ["recipes/distill_glue.py", "--task", "sst2", "--glue-dir", str(glue_dir), "--no-finetune-teacher",
         "--teacher-dir", str(teacher_dir.parent), "--output-dir", str(work / "student"),
         "--tflite-dir", str(work / "tflite"), "--results", str(work / "result.json"), *TINY_MAIN_JOB],
        pause_at,
    )  # fmt: skip
