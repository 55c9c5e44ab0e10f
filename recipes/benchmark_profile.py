#!/usr/bin/env python
"""Where the time goes in the exported student: a kernel-level profile per op type, LiteRT and ONNX Runtime.

Example:
    python recipes/benchmark_profile.py --task sst2 --model refbert

Needs the files recipes/benchmark.py exports (<tflite-dir>/<task>_<model>_<variant>.tflite / .onnx, and
<task>_dev_lengths.json for the real-traffic length: the median packed length of the dev set). Profiles each LiteRT
file with Linux perf (refbert_tf/benchmark/profile.py: samples attributed to XNNPACK and builtin kernels, grouped
by op type) and each ONNX file with ONNX Runtime's own profiler, at --seq-lens and at the real-traffic length.
Writes <output>.json and <output>.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="sst2", help="GLUE task (sst2)")
    p.add_argument("--model", default="refbert", help="refbert, vanilla or teacher (refbert)")
    p.add_argument("--variants", nargs="+", default=["float32", "dynamic_int8"], help="float32 dynamic_int8")
    p.add_argument("--seq-lens", nargs="+", type=int, default=[128], help="fixed lengths (128), plus real traffic")
    p.add_argument("--threads", type=int, default=1, help="threads (1)")
    p.add_argument("--tflite-dir", default="artifacts/tflite", help="where recipes/benchmark.py exported the files")
    p.add_argument("--output", default="results/benchmark_profile", help="writes <output>.json and <output>.md")
    return p.parse_args(argv)


def _markdown(profiles, command):
    lines = ["# Where the time goes", ""]
    for p in profiles:
        head = f"## {p['model']}, {p['seq_len']} tokens, {p['threads']} thread ({p['runtime']})"
        extra = f", median {p['median_ms']:.2f} ms" if "median_ms" in p else ""
        lines += [head + extra, "", "| op type | share of time |", "|---|---|"]
        lines += [f"| {k} | {v:.1f}% |" for k, v in p["op_types"].items() if v >= 0.5]
        lines.append("")
    lines += [f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import json
    import statistics

    from refbert_tf.benchmark.profile import litert_kernel_profile, onnxruntime_op_profile
    from refbert_tf.io_utils import write_json, write_text
    from refbert_tf.tasks import get_task

    task = get_task(args.task)
    lengths_file = os.path.join(args.tflite_dir, f"{task.name}_dev_lengths.json")
    seq_lens = list(args.seq_lens)
    if os.path.isfile(lengths_file):
        with open(lengths_file, encoding="utf-8") as f:
            seq_lens.append(int(statistics.median(json.load(f)["lengths"])))
    profiles = []
    for variant in args.variants:
        stem = os.path.join(args.tflite_dir, f"{task.name}_{args.model}_{variant}")
        for n in seq_lens:
            if os.path.isfile(stem + ".tflite"):
                profiles.append({**litert_kernel_profile(stem + ".tflite", n, args.threads), "runtime": "litert"})
            if os.path.isfile(stem + ".onnx"):
                profiles.append({**onnxruntime_op_profile(stem + ".onnx", n, args.threads), "runtime": "onnxruntime"})
    if not profiles:
        raise SystemExit(
            f"error: no {task.name}_{args.model}_<variant> files in {args.tflite_dir}: run recipes/benchmark.py"
        )
    command = command_line(argv)
    write_json(args.output + ".json", {"profiles": profiles, "command": command})
    report = _markdown(profiles, command)
    write_text(args.output + ".md", report)
    print(report)


if __name__ == "__main__":
    run(main)
