#!/usr/bin/env python
"""Benchmark a .tflite student on an Android phone with TFLite's benchmark_model (adb push + adb shell).

Examples:
    python tflite/android_benchmark.py --model artifacts/tflite/sst2_tinybert4_dynamic_int8.tflite \\
        --vocab-size 30522 --threads 1 4 --delegate xnnpack cpu --output results/mobile/sst2_int8.json
    python tflite/android_benchmark.py --parse-log saved_run.log --output row.json     # no device needed

Needs `adb` on PATH (or --adb) and exactly one attached device (or --serial), with the benchmark_model binary
already on the device (see tflite/README.md: official nightly prebuilt, pushed to /data/local/tmp). The model is
pushed to --device-dir, then one run per (delegate, thread count) is made; each log is parsed by
refbert_tf.benchmark.mobile.parse_benchmark_model_log and the rows are written as a JSON list (times in ms).

Inputs: the model card <model>.json beside the model (written by the export) gives the input names in order,
their shapes, max_seq_len, model and variant; --inputs, --ids-input, --vocab-size and --seq-len replace or complete
it. Token ids are drawn in [0, vocab_size - 1], inputs whose name contains "mask" are all ones, other inputs in
[0, 1] (benchmark_model's own default for int32, [0, 99], breaks the 2-row segment embedding).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.benchmark.mobile import (  # noqa: E402
    DELEGATES,
    DEVICE_BINARY,
    BenchmarkLogError,
    benchmark_model_command,
    parse_benchmark_model_log,
    parse_benchmark_model_log_file,
)


class UsageError(Exception):
    """A problem the user can fix (no adb, no device, bad card...): printed without a traceback."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="the .tflite file to benchmark (host path)")
    p.add_argument("--parse-log", metavar="FILE", help="parse a saved benchmark_model log instead of running")
    p.add_argument(
        "--benchmark-binary",
        default=DEVICE_BINARY,
        help=f"benchmark_model path on the device (default {DEVICE_BINARY})",
    )
    p.add_argument("--threads", type=int, nargs="+", default=[1, 4], help="thread counts, one run each (1 4)")
    p.add_argument(
        "--delegate",
        nargs="+",
        choices=DELEGATES,
        default=["xnnpack"],
        help="delegates, one run each: cpu (builtin kernels), xnnpack, gpu, nnapi (default xnnpack)",
    )
    p.add_argument("--num-runs", type=int, default=50, help="--num_runs of benchmark_model (50)")
    p.add_argument("--warmup-runs", type=int, default=5, help="--warmup_runs of benchmark_model (5)")
    p.add_argument("--serial", help="adb device serial (required when several devices are attached)")
    p.add_argument("--adb", default="adb", help="adb executable (default: adb on PATH)")
    p.add_argument("--device-dir", default="/data/local/tmp", help="where the model is pushed (/data/local/tmp)")
    p.add_argument("--model-card", help="model card JSON (default <model>.json beside the model)")
    p.add_argument("--inputs", help="comma-separated input names in the interpreter's order (overrides the card)")
    p.add_argument("--ids-input", help="name of the token-ids input (default: token_ids if among the inputs)")
    p.add_argument("--vocab-size", type=int, help="vocabulary size (overrides the card's vocab_size)")
    p.add_argument("--seq-len", type=int, help="sequence length to benchmark (default: the card's max_seq_len)")
    p.add_argument("--variant", help="variant label for the rows (default: the card's variant)")
    p.add_argument("--op-profiling", action="store_true", help="add --enable_op_profiling=true")
    p.add_argument(
        "--no-peak-memory",
        action="store_true",
        help="do not pass --report_peak_memory_footprint=true (its sampling thread can perturb timings)",
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per benchmark run (900)")
    p.add_argument("--log-dir", help="also save each raw log here")
    p.add_argument("--output", help="JSON file for the rows (default: print to stdout)")
    args = p.parse_args(argv)
    if not args.parse_log and not args.model:
        p.error("give --model (run on a device) or --parse-log FILE")
    return args


def load_card(args) -> dict:
    """The model card: --model-card, else <model>.json beside the model, else {}."""
    if args.model_card:
        path = Path(args.model_card)
        if not path.is_file():
            raise UsageError(f"model card {path} not found")
    elif args.model:
        path = Path(args.model).with_suffix(".json")
        if not path.is_file():
            return {}
    else:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UsageError(f"model card {path} is not valid JSON: {err}") from None


def input_spec(args, card: dict):
    """(input_layers [(name, shape)], ids input name, vocab size, value ranges, seq_len) from card + options."""
    seq_len = args.seq_len or card.get("max_seq_len") or card.get("seq_len")
    if args.inputs:
        names = [n.strip() for n in args.inputs.split(",") if n.strip()]
        shapes = {n: [1, -1] for n in names}
    else:
        # the card lists inputs in the model's own order; benchmark_model wants the flatbuffer tensor names
        names = [i.get("tensor") or i["name"] for i in card.get("inputs", [])]
        shapes = {i.get("tensor") or i["name"]: list(i.get("shape") or [1, -1]) for i in card.get("inputs", [])}
    ids_tensor = next(
        (i.get("tensor") or i["name"] for i in card.get("inputs", []) if i["name"] == "token_ids"),
        "token_ids" if "token_ids" in names else None,
    )
    ids_input = args.ids_input or card.get("ids_input") or ids_tensor
    vocab_size = args.vocab_size or card.get("vocab_size")
    if not names:
        raise UsageError(
            "no model inputs known: benchmark_model needs every input listed with its shape to set "
            "the token-id range; give --model-card (or <model>.json beside the model) or --inputs"
        )
    if ids_input is None or ids_input not in names:
        raise UsageError(f"token-ids input {ids_input!r} is not among the inputs {names}: pass --ids-input")
    if not vocab_size:
        raise UsageError("vocabulary size unknown (the card has no vocab_size): pass --vocab-size")
    layers = []
    for name in names:
        shape = shapes[name]
        if any(d is None or int(d) < 1 for d in shape):
            if not seq_len:
                raise UsageError(
                    f"input {name} has a dynamic shape {shape}: pass --seq-len (no max_seq_len in the card)"
                )
            shape = [int(seq_len) if (d is None or int(d) < 1) else int(d) for d in shape]
        layers.append((name, [int(d) for d in shape]))
    ranges = {n: ((1, 1) if "mask" in n.lower() else (0, 1)) for n in names if n != ids_input}
    for i in card.get("inputs", []):
        name = i.get("tensor") or i["name"]
        if i.get("value_range") and name in ranges:
            ranges[name] = tuple(i["value_range"])
    seq = seq_len or dict(layers)[ids_input][-1]
    return layers, ids_input, int(vocab_size), ranges, int(seq)


def adb_base(args) -> list:
    adb = shutil.which(args.adb) or (args.adb if os.path.isfile(args.adb) and os.access(args.adb, os.X_OK) else None)
    if adb is None:
        raise UsageError(
            f"adb not found ({args.adb!r} is not on PATH): install Android platform-tools "
            "(https://developer.android.com/tools/releases/platform-tools) or pass --adb"
        )
    listing = run([adb, "devices"], timeout=60)
    if listing.returncode != 0:
        raise UsageError(f"`adb devices` failed: {listing.stdout.strip()}")
    # "List of devices attached" then one "<serial>\t<state>" line per device (state: device, unauthorized...).
    devices = [
        parts[0] for parts in map(str.split, listing.stdout.splitlines()) if len(parts) >= 2 and parts[1] == "device"
    ]
    if args.serial:
        if args.serial not in devices:
            raise UsageError(
                f"device {args.serial} is not attached or not authorized; adb devices lists: {devices or 'none'}"
            )
        return [adb, "-s", args.serial]
    if not devices:
        raise UsageError(
            "no Android device attached (adb devices lists none in state 'device'): connect a phone "
            "with USB debugging enabled and accept the authorization prompt"
        )
    if len(devices) > 1:
        raise UsageError(f"several devices attached ({', '.join(devices)}): pass --serial")
    return [adb]


def run(cmd, timeout) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"timed out after {timeout:.0f} s: {shlex.join(map(str, cmd))}") from None
    except OSError as err:
        raise UsageError(f"cannot run {cmd[0]}: {err}") from None


def shell(adb, command: str, timeout=120) -> subprocess.CompletedProcess:
    return run(adb + ["shell", command], timeout=timeout)


def tensor_name_warnings(log: str) -> list:
    """benchmark_model maps --input_layer entries to model inputs by position: report name mismatches."""
    found = []
    for tensor, flag in re.findall(r"Tensor # ?\d+ is named (\S+) but flags call it (\S+)", log):
        if flag.lower() not in tensor.lower():
            found.append(
                f"model input {tensor} received the settings of {flag}: input order differs from "
                "--inputs/the card, value ranges went to the wrong tensor"
            )
    return found


def base_row(model: str | None, variant, seq_len, size_mb) -> dict:
    return {"model": model, "variant": variant, "seq_len": seq_len, "size_mb": size_mb}


def parse_only(args) -> list:
    card = load_card(args)
    row = parse_benchmark_model_log_file(args.parse_log)
    size_mb = round(os.path.getsize(args.model) / 2**20, 3) if args.model and os.path.isfile(args.model) else None
    model = card.get("model") or (Path(args.model).stem if args.model else None)
    row.update(base_row(model, args.variant or card.get("variant"), args.seq_len or card.get("max_seq_len"), size_mb))
    row["log_file"] = str(args.parse_log)
    return [row]


def run_on_device(args) -> tuple:
    model_path = Path(args.model)
    if not model_path.is_file():
        raise UsageError(f"model {model_path} not found")
    card = load_card(args)
    layers, ids_input, vocab_size, ranges, seq_len = input_spec(args, card)
    adb = adb_base(args)

    check = shell(adb, f"[ -x {shlex.quote(args.benchmark_binary)} ] && echo BENCHMARK_BINARY_OK")
    if "BENCHMARK_BINARY_OK" not in check.stdout:
        raise UsageError(
            f"{args.benchmark_binary} is missing or not executable on the device: download "
            "android_aarch64_benchmark_model (see tflite/README.md), then `adb push` it there and "
            "`adb shell chmod +x` it"
        )
    device_model = f"{args.device_dir.rstrip('/')}/{model_path.name}"
    pushed = run(adb + ["push", str(model_path), device_model], timeout=600)
    if pushed.returncode != 0:
        raise UsageError(f"adb push failed: {pushed.stdout.strip()}")
    device = shell(adb, "getprop ro.product.model").stdout.strip() or None
    soc = shell(adb, "getprop ro.board.platform").stdout.strip() or None

    size_mb = round(model_path.stat().st_size / 2**20, 3)
    model = card.get("model") or model_path.stem
    variant = args.variant or card.get("variant")
    rows, failures = [], []
    for delegate in args.delegate:
        for threads in args.threads:
            argv = benchmark_model_command(
                device_model,
                threads=threads,
                delegate=delegate,
                num_runs=args.num_runs,
                warmup_runs=args.warmup_runs,
                input_layer=ids_input,
                vocab_size=vocab_size,
                input_layers=layers,
                value_ranges=ranges,
                binary=args.benchmark_binary,
                enable_op_profiling=args.op_profiling,
                report_peak_memory_footprint=not args.no_peak_memory,
            )
            command = shlex.join(argv)
            print(f"[{delegate}, {threads} thread(s)] adb shell {command}", file=sys.stderr)
            log = shell(adb, command, timeout=args.timeout).stdout
            if args.log_dir:
                log_path = Path(args.log_dir) / f"{model_path.stem}.{delegate}.{threads}t.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log_path.write_text(log, encoding="utf-8")
            try:
                row = parse_benchmark_model_log(log)
            except BenchmarkLogError as err:
                failures.append(f"{delegate}, {threads} thread(s): {err}")
                print(f"  failed: {err}", file=sys.stderr)
                continue
            for warning in tensor_name_warnings(log):
                print(f"  warning: {warning}", file=sys.stderr)
            if row["threads"] is not None and row["threads"] != threads:
                print(f"  warning: the log reports {row['threads']} threads", file=sys.stderr)
            row.update(base_row(model, variant, seq_len, size_mb))
            row.update(
                threads=threads, delegate_requested=delegate, device=device, soc=soc, command="adb shell " + command
            )
            print(f"  avg {row['avg_ms']} ms, min {row['min_ms']} ms, delegate {row['delegate']}", file=sys.stderr)
            rows.append(row)
    return rows, failures


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.parse_log:
            rows, failures = parse_only(args), []
        else:
            rows, failures = run_on_device(args)
    except (UsageError, BenchmarkLogError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output:
        from refbert_tf.io_utils import write_json

        write_json(args.output, rows)
        print(f"wrote {len(rows)} row(s) to {args.output}", file=sys.stderr)
    else:
        print(json.dumps(rows, indent=2))
    if failures:
        print(f"error: {len(failures)} run(s) failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
