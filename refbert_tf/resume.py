"""Resume checkpoints of a ``model.fit``: one atomically written file per finished checkpoint interval.

``keras.callbacks.BackupAndRestore`` writes its weights and its epoch counter as two files, in place: a run
killed while it saves leaves a truncated ``latest.weights.h5``, or weights one interval ahead of the counter, and
the re-run then fails or trains an interval twice. Here each checkpoint is a single file,
``interval-<e>.weights.h5`` (``save_weights``: model weights, optimizer state and step; plus, in a group of
its own, the state of every ``keras.random.SeedGenerator`` of the model, which ``save_weights`` leaves out and
without which a resumed run draws other dropout masks; ``e`` = the intervals done), written under a temporary name
and renamed into place, so the newest file in the directory is
always a complete checkpoint and its name says where to resume. :func:`run_fit` in :mod:`refbert_tf.training`
resumes with ``fit(initial_epoch=e)`` over the repeated dataset with its first ``e * steps`` batches skipped, so a
resumed run sees the same batches in the same order as one never interrupted. TensorFlow is imported by Keras.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import keras
import numpy as np

from refbert_tf import faults
from refbert_tf.io_utils import atomic_path, load_artifact

_NAME = re.compile(r"^interval-(\d+)\.weights\.h5$")
SEED_GROUP = "refbert_seed_states"


def seed_states(model) -> list:
    """The model's ``keras.random.SeedGenerator`` state variables (dropout's random streams), in model order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def save_checkpoint(model, path) -> None:
    """``model.save_weights(path)`` plus the seed states in the group ``refbert_seed_states`` of the same file."""
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        group = f.create_group(SEED_GROUP)
        for i, v in enumerate(seed_states(model)):
            group.create_dataset(str(i), data=np.asarray(v))
            group[str(i)].attrs["path"] = v.path


def load_checkpoint(model, path) -> None:
    """Load a :func:`save_checkpoint` file (weights, optimizer, seed states) into ``model``.

    Raises:
        ValueError: the file's seed states are not the model's (another model's checkpoint).
    """
    model.load_weights(path)
    with h5py.File(path, "r") as f:
        group = f.get(SEED_GROUP)
        states = seed_states(model)
        if group is None:
            return
        if len(group) != len(states):
            raise ValueError(f"{len(group)} seed states in the checkpoint, the model has {len(states)}")
        for i, v in enumerate(states):
            v.assign(group[str(i)][()])


def latest_checkpoint(backup_dir) -> tuple[Path, int] | None:
    """The newest ``interval-<e>.weights.h5`` in ``backup_dir`` and its ``e``; None when there is none."""
    backup_dir = Path(backup_dir)
    found = []
    if backup_dir.is_dir():
        for path in backup_dir.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    if not found:
        return None
    done, path = max(found)
    return path, done


def restore(model, backup_dir, label: str, intervals: int) -> int:
    """Load the newest checkpoint of ``backup_dir`` into ``model`` (weights, optimizer state and step).

    Args:
        model: the compiled model (its optimizer is built here if it is not yet, so its state is restored too).
        backup_dir: the checkpoint directory.
        label: what is being trained (``backup_intermediate``...), for the log line.
        intervals: the fit's number of intervals, for the log line.

    Returns:
        the intervals already done (0 when there is no checkpoint).

    Raises:
        CorruptArtifactError: the newest checkpoint cannot be read (the message names it: delete it to resume
            from the one before, or from the start).
    """
    latest = latest_checkpoint(backup_dir)
    if latest is None:
        return 0
    path, done = latest
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    load_artifact(
        path,
        lambda p: load_checkpoint(model, p),
        f"delete it (the run then resumes from an earlier checkpoint in {path.parent}, or from the start)",
    )
    print(f"resuming {label} at interval {done + 1} of {intervals}: weights, optimizer state and step from {path}")
    return done


class IntervalCheckpoint(keras.callbacks.Callback):
    """Writes ``backup_dir/interval-<e>.weights.h5`` atomically at the end of every interval (Keras epoch) and
    removes the older ones; then reaches the fault point ``fit:<backup_dir name>`` (:mod:`refbert_tf.faults`).

    Args:
        backup_dir: the checkpoint directory (created).
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = Path(backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        path = self.backup_dir / f"interval-{epoch + 1:06d}.weights.h5"
        with atomic_path(path) as tmp:
            save_checkpoint(self.model, tmp)
        for old in self.backup_dir.glob("interval-*.weights.h5"):
            if old != path:
                old.unlink(missing_ok=True)
        faults.reached(f"fit:{self.backup_dir.name}")


def remove_checkpoints(backup_dir) -> None:
    """Delete ``backup_dir`` (a finished fit's checkpoints), if it exists."""
    shutil.rmtree(backup_dir, ignore_errors=True)
