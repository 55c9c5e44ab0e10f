"""Desktop benchmark of ``.tflite`` files with the LiteRT Python interpreter (``ai_edge_litert``).

Each measurement runs in a fresh Python process (``python -m refbert_tf.benchmark.desktop``), so its peak memory
is that model's alone: the process imports only NumPy and ai_edge_litert (no TensorFlow), records its resident
memory, loads the model, times ``allocate_tensors`` (init), the warm-up runs and ``num_runs`` timed ``invoke``
calls at batch 1 and a fixed sequence length, then reports its peak resident memory (``ru_maxrss``).

Inputs are valid token ids (uniform in ``[first_id, vocab_size)``, fixed seed), segment ids 0 and a full mask:
``benchmark_litert_model`` fills int32 inputs with arbitrary values, and an id past the vocabulary makes the
embedding ``GATHER`` fail (design note, "API facts"), so it is not used for these models. Latency does not depend
on the ids' values except through the bank's argmax, which costs the same for any input.

Output schema (shared with :mod:`refbert_tf.benchmark.mobile`, all times in ms, memory in MB):
``init_ms, warmup_first_ms, warmup_avg_ms, median_ms, p90_ms, p99_ms, avg_ms, std_ms, min_ms, max_ms, count,
peak_mem_mb, model_mem_mb, threads, seq_len, size_mb, source``.
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


def _rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc (Linux); peak if /proc is unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_in_process(
    model_path: str,
    seq_len: int,
    threads: int,
    num_runs: int = 50,
    warmup_runs: int = 5,
    vocab_size: int = 30522,
    first_id: int = 1000,
    seed: int = 0,
) -> dict:
    """Time one model in this process (see the module docstring; prefer :func:`benchmark_tflite`).

    Raises:
        refbert_tf.inference.ModelFileError: not a TFLite file.
        ValueError: ``seq_len`` < 2 or ``vocab_size`` <= ``first_id``.
    """
    import numpy as np  # lazy: this runs in the measuring child process, which imports only what it times
    from ai_edge_litert.interpreter import Interpreter  # lazy: as above

    from refbert_tf.inference import check_tflite_file  # lazy: as above

    check_tflite_file(model_path)
    if seq_len < 2 or vocab_size <= first_id:
        raise ValueError(f"need seq_len >= 2 and vocab_size > first_id, got {seq_len}, {vocab_size}, {first_id}")
    base_mb = _rss_mb()
    rng = np.random.default_rng(seed)
    ids = rng.integers(first_id, vocab_size, size=(1, seq_len), dtype=np.int32)
    ids[0, 0], ids[0, -1] = 101, 102  # [CLS] ... [SEP] of the uncased BERT vocabulary
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    t0 = time.perf_counter()
    interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
    for detail in interpreter.get_input_details():
        name = next(n for n in inputs if n in detail["name"])
        interpreter.resize_tensor_input(detail["index"], [1, seq_len])
    interpreter.allocate_tensors()
    init_ms = (time.perf_counter() - t0) * 1000
    for detail in interpreter.get_input_details():
        name = next(n for n in inputs if n in detail["name"])
        interpreter.set_tensor(detail["index"], inputs[name])

    def run() -> float:
        t = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - t) * 1000

    warm = [run() for _ in range(max(warmup_runs, 1))]
    times = np.asarray([run() for _ in range(num_runs)])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "init_ms": round(init_ms, 3),
        "warmup_first_ms": round(warm[0], 3),
        "warmup_avg_ms": round(float(np.mean(warm)), 3),
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "avg_ms": round(float(times.mean()), 3),
        "std_ms": round(float(times.std()), 3),
        "min_ms": round(float(times.min()), 3),
        "max_ms": round(float(times.max()), 3),
        "count": int(num_runs),
        "peak_mem_mb": round(peak_mb, 1),
        "model_mem_mb": round(peak_mb - base_mb, 1),
        "threads": threads,
        "seq_len": seq_len,
        "size_mb": round(os.path.getsize(model_path) / 2**20, 3),
        "source": "litert_python",
    }


def benchmark_tflite(
    model_path,
    seq_len: int = 128,
    threads: int = 1,
    num_runs: int = 50,
    warmup_runs: int = 5,
    vocab_size: int = 30522,
    timeout_s: float = 600,
) -> dict:
    """Benchmark one ``.tflite`` file in a fresh process and return the schema of the module docstring.

    Args:
        model_path: the model.
        seq_len: tokens per input (batch 1).
        threads: interpreter threads.
        num_runs, warmup_runs: timed and untimed ``invoke`` calls.
        vocab_size: token ids are drawn below it.
        timeout_s: the child is killed after this many seconds.

    Raises:
        RuntimeError: the child failed (its last error line is in the message) or timed out.
    """
    cmd = [
        sys.executable,
        "-m",
        "refbert_tf.benchmark.desktop",
        str(model_path),
        "--seq-len",
        str(seq_len),
        "--threads",
        str(threads),
        "--num-runs",
        str(num_runs),
        "--warmup-runs",
        str(warmup_runs),
        "--vocab-size",
        str(vocab_size),
        "--json",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"benchmark of {model_path} timed out after {timeout_s} s") from e
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"benchmark of {model_path} failed: {lines[-1] if lines else 'no error output'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    """``python -m refbert_tf.benchmark.desktop model.tflite [--seq-len 128] [--threads 1] ...``."""
    p = argparse.ArgumentParser(description="Benchmark one .tflite model with the LiteRT interpreter (batch 1).")
    p.add_argument("model", help=".tflite file")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per input (128)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (1)")
    p.add_argument("--num-runs", type=int, default=50, help="timed runs (50)")
    p.add_argument("--warmup-runs", type=int, default=5, help="untimed warm-up runs (5)")
    p.add_argument("--vocab-size", type=int, default=30522, help="token ids are drawn below this (30522)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a sentence")
    args = p.parse_args(argv)
    try:
        r = measure_in_process(args.model, args.seq_len, args.threads, args.num_runs, args.warmup_runs, args.vocab_size)
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
