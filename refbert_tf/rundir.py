"""Run directories: one run's configuration per directory, and one process at a time.

A training job resumes from what its run directory holds, so a re-run must be the same run: :func:`claim_run_dir`
records the run's configuration in ``run.json`` the first time and, on a later start, refuses a configuration
that differs (naming the fields) instead of relabelling the finished or half-finished run with new settings. A
lock file (``.lock``, holding the owner's pid and host) keeps a second process out while the first runs; a lock
left by a process that no longer exists is taken over. TensorFlow-free.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from refbert_tf.io_utils import pid_alive, read_json, remove_stale_partials, write_json

RECORD = "run.json"
LOCK = ".lock"


class RunDirError(ValueError):
    """A run directory that holds another run's configuration, or is in use by another process."""


def _differences(have: dict, want: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(have) | set(want)):
        a, b = have.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} (was {a!r}, now {b!r})")
    return out


def check_run_config(run_dir, record: dict, finished_card=None) -> None:
    """Record ``record`` (JSON-serialisable: the run's task, configuration, teacher...) in ``run_dir/run.json``,
    or check it against the one recorded there.

    Args:
        run_dir: the run directory.
        record: what identifies the run; its ``config`` is the configuration asked for.
        finished_card: for a directory of a run finished before ``run.json`` existed: the result card whose
            ``config`` the asked-for one must match (fields the card lacks, and an ``init`` of ``auto``, which the
            card records resolved, are not compared).

    Raises:
        RunDirError: ``run.json`` (or the finished card) records another configuration (the message names every
            field that differs and what to do).
    """
    path = Path(run_dir) / RECORD
    record = json.loads(json.dumps(record))  # as it reads back from JSON (tuples as lists)
    have, want = None, record
    if path.is_file():
        have = read_json(path, f"delete {path} (it records the run's settings) or the whole {run_dir}")
    elif finished_card is not None and Path(finished_card).is_file():
        old = read_json(finished_card, f"delete {run_dir} and re-run").get("config", {})
        asked = record.get("config", {})
        keys = [k for k in asked if k in old and not (k == "init" and asked[k] == "auto")]
        have, want = {"config": {k: old[k] for k in keys}}, {"config": {k: asked[k] for k in keys}}
    if have is not None:
        diff = _differences(have, want)
        if diff:
            raise RunDirError(
                f"{run_dir} holds a run with other settings: {'; '.join(diff)}. Re-run with the same "
                "settings to resume it, or pass another --output-dir (or delete the directory)"
            )
    if not path.is_file():
        write_json(path, record)


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold ``run_dir/.lock`` for the duration of the block (the directory is created). Once the lock is held,
    partial files that a killed run left in the directory (:func:`~refbert_tf.io_utils.remove_stale_partials`) are
    deleted.

    Raises:
        RunDirError: another live process on this host holds the lock (the message gives its pid).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = {}
            if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and pid_alive(owner["pid"]):
                raise RunDirError(
                    f"{run_dir} is in use by process {owner['pid']} (lock file {lock}); wait for it "
                    "to finish or pass another --output-dir"
                ) from None
            print(f"taking over {lock}, left by process {owner.get('pid')} that is no longer running")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    for path in remove_stale_partials(run_dir):
        print(f"removed {path}, a partial file left by a killed run")
    try:
        yield run_dir
    finally:
        with contextlib.suppress(OSError):
            if json.loads(lock.read_text(encoding="utf-8")).get("pid") == me["pid"]:
                lock.unlink()
