"""This machine's matrix-multiply limit, measured in the same run as the models: what fraction of it each row reaches.

Two probes, each in a fresh process with its threads pinned:

* :func:`numpy_matmul_gflops`: a float32 ``[n, n] @ [n, n]`` product through NumPy's BLAS (OpenBLAS in the
  wheels), ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` set to the thread count: the CPU's practical float32
  GEMM peak.
* :func:`fully_connected_probe`: one large ``FULLY_CONNECTED`` layer (``[rows, k] @ [k, n]``, the shape class of a
  BERT feed-forward block) written as ``.tflite`` in float32 and dynamic-range int8, then timed by
  :func:`refbert_tf.benchmark.desktop.benchmark_tflite` like any model: the peak *this runtime's* kernels reach
  for each kind of arithmetic.

GFLOP/s = ``2 * rows * k * n / median seconds / 1e9`` (a multiply-add is 2 FLOPs, as in
:mod:`refbert_tf.benchmark.flops`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_NUMPY_PROBE = """
import json, sys, time
import numpy as np
n, runs = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
for _ in range(3):
    a @ b
times = []
for _ in range(runs):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
print(json.dumps({"median_s": float(np.median(times)), "min_s": float(np.min(times))}))
"""


def numpy_matmul_gflops(threads: int = 1, n: int = 1024, runs: int = 20, timeout_s: float = 300) -> dict:
    """float32 GEMM throughput of NumPy's BLAS in a fresh process with ``threads`` threads.

    Returns:
        ``{"probe": "numpy_matmul", "threads", "n", "median_gflops", "best_gflops"}`` (GFLOP/s).

    Raises:
        RuntimeError: the child failed or timed out.
    """
    from refbert_tf.benchmark.desktop import run_child  # lazy: keeps this module's import light

    pinned = {name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    r = run_child([sys.executable, "-c", _NUMPY_PROBE, str(n), str(runs)], "NumPy matmul probe", timeout_s, pinned)
    flops = 2.0 * n**3
    return {
        "probe": "numpy_matmul",
        "threads": threads,
        "n": n,
        "median_gflops": round(flops / r["median_s"] / 1e9, 2),
        "best_gflops": round(flops / r["min_s"] / 1e9, 2),
    }


def write_fully_connected_probe(out_dir, rows: int = 128, k: int = 1024, n: int = 4096) -> dict:
    """Write ``fc_probe_float32.tflite`` and ``fc_probe_dynamic_int8.tflite``: ``x [1, rows, k] -> x W``, W [k, n].

    Returns:
        ``{variant: path}`` plus ``"flops"`` (``2 rows k n``).
    """
    import numpy as np  # lazy: numpy is cheap, but TensorFlow below is not
    import tensorflow as tf  # lazy: only when the probe files are written

    from refbert_tf.io_utils import atomic_path  # lazy: as above

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = tf.Module()
    module.weights = tf.Variable((np.random.default_rng(0).standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, rows, k], tf.float32, name="x")])
    def dense(x):
        return tf.reshape(tf.matmul(tf.reshape(x, [rows, k]), module.weights), [1, rows, n])

    paths = {"flops": 2 * rows * k * n}
    for variant in ("float32", "dynamic_int8"):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([dense.get_concrete_function()], module)
        if variant == "dynamic_int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        path = out_dir / f"fc_probe_{variant}.tflite"
        flatbuffer = converter.convert()
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(flatbuffer)
        paths[variant] = str(path)
    return paths


def fully_connected_probe(paths: dict, threads: int = 1, num_runs: int = 30) -> list[dict]:
    """Time the probe files of :func:`write_fully_connected_probe` through LiteRT (fresh process each).

    Returns:
        one row per variant: ``{"probe": "litert_fully_connected", "variant", "threads", "median_ms",
        "median_gflops"}``.
    """
    from refbert_tf.benchmark.desktop import benchmark_tflite  # lazy: keeps this module's import light

    rows = []
    for variant in ("float32", "dynamic_int8"):
        r = benchmark_tflite(paths[variant], threads=threads, num_runs=num_runs)
        rows.append(
            {
                "probe": "litert_fully_connected",
                "variant": variant,
                "threads": threads,
                "median_ms": r["median_ms"],
                "median_gflops": round(paths["flops"] / (r["median_ms"] / 1000) / 1e9, 2),
            }
        )
    return rows


def machine_description() -> str:
    """One line about this CPU: model name, logical cores, and its SIMD / matrix extensions from ``/proc/cpuinfo``
    (Linux; ``platform.processor()`` elsewhere)."""
    import platform  # lazy: only for the report

    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8")
    present = [f for f in wanted if f in flags]
    return f"{name}, {os.cpu_count()} logical cores, {' '.join(present) or 'no AVX2'}"
