"""Where the time goes: a kernel-level profile of a LiteRT model (Linux ``perf``) and ONNX Runtime's op profile.

* :func:`litert_kernel_profile` samples a fresh benchmark process (:mod:`refbert_tf.benchmark.desktop`) with
  ``perf record`` and attributes the samples to the kernels that ran (``perf report --sort sym``): XNNPACK
  micro-kernels (``xnn_qd8_f32_qc8w_gemm...``: the int8 GEMM of dynamic-range fully connected layers;
  ``xnn_f32_gemm...``: float32 GEMM; ``...vgelu...``, ``...expminusmax...``) and the builtin reference kernels
  (``tflite::reference_ops::RunSelectOp``: ``SELECT_V2``). :data:`KERNEL_OP_TYPES` maps each kernel to the op
  type it implements. Shares are of the samples in the runtime's own libraries and libc (model load is a small
  fixed part at many runs); Python, NumPy and the loader are left out.
* :func:`onnxruntime_op_profile` runs ONNX Runtime's own profiler (``SessionOptions.enable_profiling``) and sums the
  ``Node`` events' durations by ONNX op type over the timed runs.

``perf`` must be installed and allowed to sample user space (``kernel.perf_event_paranoid`` <= 2, the Debian
default); otherwise :class:`ProfileUnavailable` is raised with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from refbert_tf.benchmark.desktop import CHILD_ENV

# (pattern on the kernel's symbol, op type); the first match wins
KERNEL_OP_TYPES = (
    (r"qd8_f32_qc8w_(i?gemm)|qp8_f32_qc8w", "int8 GEMM (dynamic-range FULLY_CONNECTED)"),
    (r"qs8_qc8w_(i?gemm)|qs8_(i?gemm)|qu8_(i?gemm)", "int8 GEMM (full-integer FULLY_CONNECTED / BATCH_MATMUL)"),
    (r"f32_(i?gemm|ppmm)|f16_f32acc_gemm|pf32_gemm", "float32 GEMM (FULLY_CONNECTED, BATCH_MATMUL)"),
    (r"f32_qd8_convert|f32_qs8_vcvt|qd8_asymmetric|f32_qdu8|pack_lh_fx_qd|f32_qp8", "activation quantization (int8)"),
    (r"rminmax|rmax|rmin", "activation range (min/max for quantization, softmax max)"),
    (r"packw|pack_lh|x32_pack|packx|zerob", "weight / operand packing"),
    (r"transpose", "TRANSPOSE"),
    (r"vgelu|gelu", "GELU"),
    (r"expminusmax|vexp|softmax", "SOFTMAX"),
    (r"SelectOp|[Ss]elect", "SELECT_V2 (reference kernel)"),
    (r"BroadcastTo", "BROADCAST_TO (reference kernel)"),
    (r"one_hot", "ONE_HOT"),
    (r"[Gg]ather", "GATHER"),
    (r"[Ss]egment", "UNSORTED_SEGMENT_SUM"),
    (r"ArgMax|arg_min_max", "ARG_MAX"),
    (r"vsqrdiff|rsum|rdsum|vrsqrt|mean|Mean|ReduceImpl|reduce", "MEAN / SUM (LayerNorm, reductions)"),
    (r"vadd|vmul|vsub|vdiv|vmax|vmin|vcopysign|vclamp|vtanh|vsqrt|binary|Broadcast", "element-wise (ADD, MUL...)"),
    (r"memmove|memcpy|memset|copy", "memory copies (RESHAPE, CONCATENATION, tensor copies)"),
)
_RUNTIME_DSO = re.compile(r"litert|tflite|tensorflowlite|onnxruntime|libc\.so|libm\.so|libstdc")
_REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$")


class ProfileUnavailable(RuntimeError):
    """``perf`` is missing or may not sample this process (the message says which and what to do)."""


def op_type_of(symbol: str) -> str:
    """The op type of a kernel symbol (:data:`KERNEL_OP_TYPES`), ``"other"`` when none matches."""
    for pattern, op_type in KERNEL_OP_TYPES:
        if re.search(pattern, symbol):
            return op_type
    return "other"


def parse_perf_report(text: str) -> list[dict]:
    """Rows ``{"percent", "dso", "symbol"}`` of ``perf report --stdio --sort dso,sym`` output (comments skipped)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = _REPORT_LINE.match(line)
        if m:
            rows.append({"percent": float(m.group(1)), "dso": m.group(2), "symbol": m.group(3)})
    return rows


def summarize_kernels(rows: list[dict], top: int = 15) -> dict:
    """Shares (percent of the runtime's samples) by op type and the ``top`` kernels, from :func:`parse_perf_report`.

    Raises:
        ProfileUnavailable: no sample fell in a runtime library.
    """
    mine = [r for r in rows if _RUNTIME_DSO.search(r["dso"])]
    total = sum(r["percent"] for r in mine)
    if total <= 0:
        raise ProfileUnavailable("no perf sample in the runtime's libraries (was the model run?)")
    by_type = defaultdict(float)
    for r in mine:
        by_type[op_type_of(r["symbol"])] += 100 * r["percent"] / total
    kernels = sorted(mine, key=lambda r: -r["percent"])[:top]
    return {
        "op_types": {k: round(v, 2) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "top_kernels": [
            {
                "share": round(100 * r["percent"] / total, 2),
                "symbol": r["symbol"][:120],
                "op_type": op_type_of(r["symbol"]),
            }
            for r in kernels
        ],
        "runtime_share_of_samples": round(total, 2),
    }


def litert_kernel_profile(
    model_path, seq_len: int = 128, threads: int = 1, num_runs: int = 300, frequency: int = 2000
) -> dict:
    """Profile one ``.tflite`` file at batch 1 and ``seq_len`` tokens with ``perf`` (fresh process).

    Returns:
        :func:`summarize_kernels` plus ``{"model", "seq_len", "threads", "num_runs", "median_ms"}``.

    Raises:
        ProfileUnavailable: ``perf`` is missing or refused to sample.
        RuntimeError: the benchmark child failed.
    """
    perf = shutil.which("perf")
    if perf is None:
        raise ProfileUnavailable("perf is not installed (Debian: apt-get install linux-perf)")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = [perf, "record", "-q", "-F", str(frequency), "-o", data, "--", sys.executable, "-m"]
        cmd += ["refbert_tf.benchmark.desktop", str(model_path), "--seq-len", str(seq_len), "--threads", str(threads)]
        cmd += ["--num-runs", str(num_runs), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, timeout=900)
        if proc.returncode != 0 or not os.path.exists(data):
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit code {proc.returncode}"
            if "perf_event_paranoid" in proc.stderr or "Permission" in proc.stderr:
                raise ProfileUnavailable(f"perf may not sample here: {reason}")
            raise RuntimeError(f"profiling {model_path} failed: {reason}")
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
        report = subprocess.run(
            [perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "--percent-limit", "0.01"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    summary = summarize_kernels(parse_perf_report(report.stdout))
    return {
        "model": Path(model_path).name,
        "seq_len": seq_len,
        "threads": threads,
        "num_runs": num_runs,
        "median_ms": timing["median_ms"],
        **summary,
    }


def onnxruntime_op_profile(onnx_path, seq_len: int = 128, threads: int = 1, num_runs: int = 100) -> dict:
    """ONNX Runtime's own profile of one ``.onnx`` file: time per op type over ``num_runs`` runs (after 5 warm-up
    runs, which are left out), as shares of the summed node time.

    Returns:
        ``{"model", "seq_len", "threads", "num_runs", "op_types": {op: percent}, "node_ms_per_run"}``.
    """
    import numpy as np  # lazy: only when profiling
    import onnxruntime as ort  # lazy: as above

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = int(threads), 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 30000, size=(1, seq_len), dtype=np.int32)
        values = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
        feeds = {i.name: values[next(k for k in values if k in i.name)] for i in session.get_inputs()}
        for _ in range(5):
            session.run(None, feeds)
        warm_end = None
        for _ in range(num_runs):
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if len(runs) > num_runs:
        warm_end = runs[-num_runs - 1]["ts"] + runs[-num_runs - 1]["dur"]
    by_type = defaultdict(float)
    for e in trace:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            if warm_end is not None and e["ts"] < warm_end:
                continue
            by_type[e.get("args", {}).get("op_name", "?")] += e["dur"]
    total = sum(by_type.values())
    return {
        "model": Path(onnx_path).name,
        "seq_len": seq_len,
        "threads": threads,
        "num_runs": num_runs,
        "op_types": {k: round(100 * v / total, 2) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "node_ms_per_run": round(total / 1000 / num_runs, 3),
    }
