"""Desktop benchmark of ``.tflite`` files with the LiteRT Python interpreter (``ai_edge_litert``), and of ``.onnx``
files with ONNX Runtime (``runtime="onnxruntime"``, CPU provider, intra-op threads as given, sequential).

Each measurement runs in a fresh Python process (``python -m refbert_tf.benchmark.desktop``), so its peak memory
is that model's alone: the process imports only NumPy and the runtime (no TensorFlow), records its resident
memory, loads the model, times ``allocate_tensors`` (init), the warm-up runs and ``num_runs`` timed ``invoke``
calls at batch 1 and a fixed sequence length (or, for "real traffic", one input per given length), then reports
its peak resident memory (``ru_maxrss``). NumPy's BLAS is held to one thread in the child.

Inputs are valid token ids (uniform in ``[first_id, vocab_size)``, fixed seed), segment ids 0 and a full mask:
``benchmark_litert_model`` fills int32 inputs with arbitrary values, and an id past the vocabulary makes the
embedding ``GATHER`` fail (design note, "API facts"), so it is not used for these models. Latency does not depend
on the ids' values except through the bank's argmax, which costs the same for any input.

Output schema (shared with :mod:`refbert_tf.benchmark.mobile`, all times in ms, memory in MB):
``init_ms, warmup_first_ms, warmup_avg_ms, median_ms, p90_ms, p99_ms, avg_ms, std_ms, min_ms, max_ms, count,
peak_mem_mb, model_mem_mb, threads, seq_len, size_mb, source`` (plus ``runtime``; with real-traffic lengths
``first_median_ms, resize_median_ms, median_len, total_ms`` and ``seq_len = "real"``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RUNTIMES = ("litert", "onnxruntime")


def _rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc (Linux); peak if /proc is unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Session:
    """One model in one runtime at batch 1: ``set_length(T)`` (LiteRT: resize + allocate), ``run()`` in ms."""

    def __init__(self, model_path, runtime: str, threads: int, latest_features: bool = False):
        import numpy as np  # lazy: this runs in the measuring child process, which imports only what it times

        self.np, self.runtime = np, runtime
        if runtime == "litert":
            from ai_edge_litert.interpreter import Interpreter  # lazy: as above

            from refbert_tf.inference import check_tflite_file  # lazy: as above

            check_tflite_file(model_path)
            self.interpreter = Interpreter(
                model_path=str(model_path),
                num_threads=threads,
                experimental_default_delegate_latest_features=latest_features,
            )
            self.inputs = self.interpreter.get_input_details()
        elif runtime == "onnxruntime":
            from refbert_tf.export.onnx import OnnxClassifier  # lazy: as above (onnxruntime)

            self.session = OnnxClassifier(model_path, threads=threads).session
            self.inputs = [{"name": i.name, "shape": i.shape, "dtype": i.type} for i in self.session.get_inputs()]
        else:
            raise ValueError(f"unknown runtime {runtime!r}; use one of {RUNTIMES}")
        self.token_model = all("int" in str(d["dtype"]) for d in self.inputs)
        self.feeds = {}

    def set_length(self, seq_len: int, vocab_size: int, first_id: int, rng) -> None:
        np = self.np
        if self.token_model:
            ids = rng.integers(first_id, vocab_size, size=(1, seq_len), dtype=np.int32)
            ids[0, 0], ids[0, -1] = 101, 102  # [CLS] ... [SEP] of the uncased BERT vocabulary
            values = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
            self.feeds = {d["name"]: values[next(k for k in values if k in d["name"])] for d in self.inputs}
        else:  # a float model (the matrix-multiply peak probe): its own fixed shape
            self.feeds = {
                d["name"]: rng.standard_normal([int(n) for n in d["shape"]]).astype(np.float32) for d in self.inputs
            }
        if self.runtime == "litert":
            if self.token_model:
                for d in self.inputs:
                    self.interpreter.resize_tensor_input(d["index"], [1, seq_len])
            self.interpreter.allocate_tensors()
            for d in self.inputs:
                self.interpreter.set_tensor(d["index"], self.feeds[d["name"]])

    def run(self) -> float:
        t = time.perf_counter()
        if self.runtime == "litert":
            self.interpreter.invoke()
        else:
            self.session.run(None, self.feeds)
        return (time.perf_counter() - t) * 1000


def _summary(np, times) -> dict:
    times = np.asarray(times)
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "avg_ms": round(float(times.mean()), 3),
        "std_ms": round(float(times.std()), 3),
        "min_ms": round(float(times.min()), 3),
        "max_ms": round(float(times.max()), 3),
    }


def measure_in_process(
    model_path: str,
    seq_len: int,
    threads: int,
    num_runs: int = 50,
    warmup_runs: int = 5,
    vocab_size: int = 30522,
    first_id: int = 1000,
    seed: int = 0,
    runtime: str = "litert",
    lengths=None,
    latest_features: bool = False,
) -> dict:
    """Time one model in this process (see the module docstring; prefer :func:`benchmark_tflite`).

    Args:
        runtime: ``"litert"`` (``.tflite``) or ``"onnxruntime"`` (``.onnx``).
        lengths: "real traffic" instead of one ``seq_len``: one input per length, in the given order (LiteRT
            resizes and re-allocates for each, as an app does); each is run ``num_runs`` times (at least 1) and
            its time is the median of those. ``median_ms`` / ``p90_ms`` are then over the inputs,
            ``first_median_ms`` the median first run after a resize and ``resize_median_ms`` the median
            resize + allocation; ``seq_len`` is reported as ``"real"``.
        latest_features: LiteRT only: ``experimental_default_delegate_latest_features`` (XNNPACK's
            flag-protected features).

    Raises:
        refbert_tf.inference.ModelFileError: not a TFLite file (LiteRT).
        ValueError: ``seq_len`` < 2, ``vocab_size`` <= ``first_id``, an empty ``lengths`` or an unknown runtime.
    """
    import numpy as np  # lazy: this runs in the measuring child process, which imports only what it times

    lengths = None if lengths is None else [int(n) for n in lengths]
    if lengths is not None and not lengths:
        raise ValueError("lengths is empty: give at least one input length")
    shortest = min(lengths) if lengths else seq_len
    if shortest < 2 or vocab_size <= first_id:
        raise ValueError(
            f"need seq_len (every length) >= 2, got {shortest}, and vocab_size > first_id, got {vocab_size}, {first_id}"
        )
    base_mb = _rss_mb()
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    session = _Session(model_path, runtime, threads, latest_features)
    session.set_length(lengths[0] if lengths else seq_len, vocab_size, first_id, rng)
    init_ms = (time.perf_counter() - t0) * 1000
    warm = [session.run() for _ in range(max(warmup_runs, 1))]
    out = {"init_ms": round(init_ms, 3), "warmup_first_ms": round(warm[0], 3)}
    out["warmup_avg_ms"] = round(float(np.mean(warm)), 3)
    if lengths is None:
        out.update(_summary(np, [session.run() for _ in range(num_runs)]))
        out["count"] = int(num_runs)
    else:
        per_input, first, resize = [], [], []
        for n in lengths:
            t = time.perf_counter()
            session.set_length(n, vocab_size, first_id, rng)
            resize.append((time.perf_counter() - t) * 1000)
            runs = [session.run() for _ in range(max(num_runs, 1))]
            first.append(runs[0])
            per_input.append(float(np.median(runs)))
        out.update(_summary(np, per_input))
        out.update(
            count=len(lengths),
            first_median_ms=round(float(np.median(first)), 3),
            resize_median_ms=round(float(np.median(resize)), 3),
            median_len=float(np.median(lengths)),
            total_ms=round(float(np.sum(per_input)), 3),
        )
        seq_len = "real"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out.update(
        peak_mem_mb=round(peak_mb, 1),
        model_mem_mb=round(peak_mb - base_mb, 1),
        threads=threads,
        seq_len=seq_len,
        size_mb=round(os.path.getsize(model_path) / 2**20, 3),
        source="litert_python" if runtime == "litert" else "onnxruntime_python",
        runtime=runtime,
    )
    return out


def benchmark_tflite(
    model_path,
    seq_len: int = 128,
    threads: int = 1,
    num_runs: int = 50,
    warmup_runs: int = 5,
    vocab_size: int = 30522,
    timeout_s: float = 600,
    runtime: str = "litert",
    lengths=None,
    latest_features: bool = False,
) -> dict:
    """Benchmark one model file in a fresh process and return the schema of the module docstring.

    Args:
        model_path: the ``.tflite`` (or, with ``runtime="onnxruntime"``, ``.onnx``) file.
        seq_len: tokens per input (batch 1).
        threads: interpreter (ONNX Runtime: intra-op) threads.
        num_runs, warmup_runs: timed and untimed calls.
        vocab_size: token ids are drawn below it.
        timeout_s: the child is killed after this many seconds.
        runtime, lengths, latest_features: see :func:`measure_in_process`.

    Raises:
        RuntimeError: the child failed (its last error line is in the message) or timed out.
    """
    cmd = [sys.executable, "-m", "refbert_tf.benchmark.desktop", str(model_path), "--seq-len", str(seq_len)]
    cmd += ["--threads", str(threads), "--num-runs", str(num_runs), "--warmup-runs", str(warmup_runs)]
    cmd += ["--vocab-size", str(vocab_size), "--runtime", runtime, "--json"]
    if lengths is not None:
        cmd += ["--lengths", ",".join(str(int(n)) for n in lengths)]
    if latest_features:
        cmd.append("--latest-features")
    return run_child(cmd, f"benchmark of {model_path}", timeout_s)


# one thread for NumPy/OpenBLAS in a measuring child, so only the runtime under test uses the cores
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_child(cmd: list, what: str, timeout_s: float, env: dict | None = None) -> dict:
    """Run a measuring child process and parse the JSON of its last stdout line.

    Args:
        env: variables over :data:`CHILD_ENV` (for example a probe's own thread count).

    Raises:
        RuntimeError: ``"<what> failed: <the child's last error line>"`` or ``"<what> timed out after N s"``.
    """
    env = {**os.environ, **CHILD_ENV, **(env or {})}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{what} timed out after {timeout_s} s") from e
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"{what} failed: {lines[-1] if lines else 'no error output'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    """``python -m refbert_tf.benchmark.desktop model.tflite [--seq-len 128] [--threads 1] ...``."""
    p = argparse.ArgumentParser(description="Benchmark one .tflite (or .onnx) model at batch 1.")
    p.add_argument("model", help=".tflite file (.onnx with --runtime onnxruntime)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per input (128)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (1)")
    p.add_argument("--num-runs", type=int, default=50, help="timed runs (50; per input with --lengths)")
    p.add_argument("--warmup-runs", type=int, default=5, help="untimed warm-up runs (5)")
    p.add_argument("--vocab-size", type=int, default=30522, help="token ids are drawn below this (30522)")
    p.add_argument("--runtime", choices=RUNTIMES, default="litert", help="litert (default) or onnxruntime")
    p.add_argument("--lengths", default=None, help="comma-separated input lengths: real traffic, one input each")
    p.add_argument("--latest-features", action="store_true", help="LiteRT: XNNPACK's flag-protected features")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a sentence")
    args = p.parse_args(argv)
    lengths = None if args.lengths is None else [int(n) for n in args.lengths.split(",") if n.strip()]
    try:
        r = measure_in_process(
            args.model,
            args.seq_len,
            args.threads,
            args.num_runs,
            args.warmup_runs,
            args.vocab_size,
            runtime=args.runtime,
            lengths=lengths,
            latest_features=args.latest_features,
        )
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{Path(args.model).name}: seq {r['seq_len']}, {r['threads']} thread(s): init {r['init_ms']:.1f} ms, "
            f"median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"peak memory {r['peak_mem_mb']:.0f} MB ({r['model_mem_mb']:.0f} MB for the model)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
