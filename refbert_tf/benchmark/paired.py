"""Paired timing of two ``.tflite`` files in one process: the small difference the bank makes, above the noise.

Separate processes on a shared machine differ by more than the bank costs (two processes timing the same file
disagree by tens of percent: ``docs/benchmarks.md``), so a few-percent difference cannot be read off two rows of
:mod:`refbert_tf.benchmark.suite`. Here both interpreters live in one fresh process and take turns on the same
input: for each input length both are resized, then run ``runs`` times in alternating order (A B, B A, ...), so
drift hits both alike. The result is the ratio of their times per input, and its median over the inputs.

``python -m refbert_tf.benchmark.paired A.tflite B.tflite --lengths 25,31,... --json`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys


def paired_in_process(path_a, path_b, lengths, runs: int = 20, threads: int = 1, seed: int = 0) -> dict:
    """Time A and B on the same inputs, alternating (see the module docstring).

    Args:
        path_a, path_b: ``.tflite`` files on the same inputs (token ids, segment ids, mask).
        lengths: one input per length (tokens), in order.
        runs: runs of each model per input.
        threads: interpreter threads.

    Returns:
        ``{"count", "median_ms_a", "median_ms_b" (medians over inputs of per-input medians), "ratio_median"
        (median over inputs of A ms / B ms), "ratio_p10", "ratio_p90"}``.

    Raises:
        ValueError: no lengths, a length < 2, or ``runs`` < 1.
    """
    import numpy as np  # lazy: in the measuring child process only

    from refbert_tf.benchmark.desktop import _Session  # lazy: as above

    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 2 or runs < 1:
        raise ValueError(f"need lengths >= 2 and runs >= 1, got {lengths[:3]}..., runs={runs}")
    rng = np.random.default_rng(seed)
    a, b = _Session(path_a, "litert", threads), _Session(path_b, "litert", threads)
    med_a, med_b, ratios = [], [], []
    for n in lengths:
        seed_n = int(rng.integers(2**31))  # the same token ids for both models
        a.set_length(n, 30522, 1000, np.random.default_rng(seed_n))
        b.set_length(n, 30522, 1000, np.random.default_rng(seed_n))
        a.run(), b.run()  # one untimed run each after the resize
        ta, tb = [], []
        for i in range(runs):
            if i % 2 == 0:
                ta.append(a.run())
                tb.append(b.run())
            else:
                tb.append(b.run())
                ta.append(a.run())
        med_a.append(float(np.median(ta)))
        med_b.append(float(np.median(tb)))
        ratios.append(med_a[-1] / med_b[-1])
    return {
        "count": len(lengths),
        "median_ms_a": round(float(np.median(med_a)), 4),
        "median_ms_b": round(float(np.median(med_b)), 4),
        "ratio_median": round(float(np.median(ratios)), 4),
        "ratio_p10": round(float(np.percentile(ratios, 10)), 4),
        "ratio_p90": round(float(np.percentile(ratios, 90)), 4),
    }


def paired_benchmark(path_a, path_b, lengths, runs: int = 20, threads: int = 1, timeout_s: float = 900) -> dict:
    """:func:`paired_in_process` in a fresh process (NumPy's BLAS held to one thread).

    Raises:
        RuntimeError: the child failed (its last error line is in the message) or timed out.
    """
    cmd = [sys.executable, "-m", "refbert_tf.benchmark.paired", str(path_a), str(path_b)]
    cmd += ["--lengths", ",".join(str(int(n)) for n in lengths), "--runs", str(runs), "--threads", str(threads)]
    from refbert_tf.benchmark.desktop import run_child  # lazy: keeps the measuring child's imports small

    return run_child(cmd, "paired benchmark", timeout_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Time two .tflite files on the same inputs in one process, alternating.")
    p.add_argument("model_a")
    p.add_argument("model_b")
    p.add_argument("--lengths", required=True, help="comma-separated input lengths, one input each")
    p.add_argument("--runs", type=int, default=20, help="runs of each model per input (20)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (1)")
    args = p.parse_args(argv)
    try:
        lengths = [int(n) for n in args.lengths.split(",") if n.strip()]
        r = paired_in_process(args.model_a, args.model_b, lengths, args.runs, args.threads)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
