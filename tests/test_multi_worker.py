"""tf.distribute.MultiWorkerMirroredStrategy: two worker processes on localhost give the one-process losses and
weights of the same global batch (the workers are ``tests/multi_worker_worker.py``)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "multi_worker_worker.py"
TIMEOUT = 600  # seconds allowed for each wait: the reference run, then the two workers together
STAGES = ("intermediate", "prediction")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together to port 0, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        **extra,
    )
    return env


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.is_file() else ""


def run_workers(glue_dir, out: Path, ports: list[int]) -> list[subprocess.Popen]:
    """Start one worker per port, wait for all of them (at most TIMEOUT s); a failed worker ends the others."""
    procs, logs = [], []
    try:
        for i in range(len(ports)):
            log = open(out / f"worker{i}.log", "w", encoding="utf-8")  # closed in finally
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), "worker", str(glue_dir), str(out)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_env(TF_CONFIG=tf_config(ports, i)),
                    cwd=TESTS.parent,
                )
            )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes) or any(c not in (None, 0) for c in codes):
                break  # all done, or one failed: the others would wait for it in their next collective forever
            time.sleep(1)
        codes = [p.poll() for p in procs]
        logs_text = "\n".join(f"--- worker{i}:\n{_tail(out / f'worker{i}.log')}" for i in range(len(procs)))
        assert all(c == 0 for c in codes), f"worker exit codes {codes} (None: still running after {TIMEOUT} s)\n" + (
            logs_text
        )
        return procs
    finally:
        for p in procs:  # always end and reap both processes
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for log in logs:
            log.close()


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    with np.load(path) as f:
        weights = [f[f"w{i}"] for i in range(sum(k.startswith("w") for k in f.files))]
        return f["loss"], f["first_batch"], weights


@pytest.mark.slow
def test_two_workers_equal_one_process_on_the_same_global_batch(glue_dir, tmp_path):
    started = time.perf_counter()
    single = subprocess.run(
        [sys.executable, str(WORKER), "single", str(glue_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=TESTS.parent,
        timeout=TIMEOUT,
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-3000:]
    ports = free_ports(2)
    run_workers(glue_dir, tmp_path, ports)
    infos = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    assert all(i["name"] == "MultiWorkerMirroredStrategy" and i["replicas"] == 2 for i in infos), infos
    assert all(i["per_replica_batch"] == 8 for i in infos), infos
    figures = {"seconds": round(time.perf_counter() - started, 1), "ports": ports}
    for stage in STAGES:
        loss_1, batch_1, weights_1 = _load(tmp_path / f"single_{stage}.npz")
        assert len(loss_1) == 3 and batch_1.shape[0] == 16
        for i in range(2):
            loss_w, batch_w, weights_w = _load(tmp_path / f"worker{i}_{stage}.npz")
            # worker i's replica holds rows 8i..8i+7 of the one-process global batch (padded to its length)
            np.testing.assert_array_equal(batch_w, batch_1[8 * i : 8 * (i + 1)])
            assert len(weights_w) == len(weights_1) > 10
            loss_diff = float(np.max(np.abs(loss_w - loss_1)))
            weight_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights_1, weights_w))
            moved = max(float(np.max(np.abs(a - b))) for a, b in zip(weights_1, _init(tmp_path, stage)))
            figures[f"{stage}_worker{i}"] = {
                "loss_single": loss_1.tolist(),
                "max_loss_diff": loss_diff,
                "max_weight_diff": weight_diff,
                "max_weight_change": moved,
            }
            assert loss_diff <= 1e-5, figures
            assert weight_diff <= 1e-5, figures
            assert moved > 1e-4, figures  # the 3 steps did change the weights: the comparison is not vacuous
    print("MULTI_WORKER " + json.dumps(figures))


def _init(out: Path, stage: str) -> list[np.ndarray]:
    with np.load(out / f"init_{stage}.npz") as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]
