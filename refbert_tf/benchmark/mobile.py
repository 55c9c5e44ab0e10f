"""TFLite's ``benchmark_model`` tool: build its command line (desktop Linux or Android) and parse its log.

The command builder (:func:`benchmark_model_command`) and the device constants are here; the log parser
(:func:`parse_benchmark_model_log`, :func:`parse_benchmark_model_log_file`, :class:`BenchmarkLogError`) is in
:mod:`refbert_tf.benchmark.mobile_log`, whose docstring lists the log formats and their sources, and is
re-exported here. Flag names are read from the tool's source (``benchmark_model.cc``,
``benchmark_tflite_model.cc`` and the delegate providers) and its README
(https://github.com/tensorflow/tensorflow/tree/master/tensorflow/lite/tools/benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from refbert_tf.benchmark.mobile_log import (
    BenchmarkLogError,
    parse_benchmark_model_log,
    parse_benchmark_model_log_file,
)

__all__ = [
    "BenchmarkLogError",
    "DEVICE_BINARY",
    "DELEGATES",
    "parse_benchmark_model_log",
    "parse_benchmark_model_log_file",
    "benchmark_model_command",
]

DEVICE_BINARY = "/data/local/tmp/benchmark_model"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")


def _flag_name(name: str) -> str:
    """A name usable inside --input_layer / --input_layer_value_range (',' and ':' are their separators)."""
    return re.sub(r"[,:\s]", "_", name)


def benchmark_model_command(
    device_model_path: str,
    threads: int = 1,
    use_xnnpack: bool | None = None,
    delegate: str = "xnnpack",
    num_runs: int = 50,
    warmup_runs: int = 1,
    input_layer: str | None = None,
    vocab_size: int | None = None,
    *,
    input_layers: Sequence[tuple[str, Sequence[int]]] | None = None,
    value_ranges: Mapping[str, tuple[int, int]] | None = None,
    binary: str = DEVICE_BINARY,
    enable_op_profiling: bool = False,
    report_peak_memory_footprint: bool = True,
    extra_flags: Sequence[str] = (),
) -> list[str]:
    """Build the argv of one ``benchmark_model`` run (first element: the binary), with TFLite's real flag names.

    Flags (names checked in ``benchmark_model.cc`` / ``benchmark_tflite_model.cc`` and the delegate providers, and
    in the tool's README https://github.com/tensorflow/tensorflow/tree/master/tensorflow/lite/tools/benchmark):
    ``--graph=``, ``--num_threads=``, ``--num_runs=``, ``--warmup_runs=``, ``--use_xnnpack=``, ``--use_gpu=true``,
    ``--use_nnapi=true``, ``--enable_op_profiling=true``, ``--report_peak_memory_footprint=true`` (a monitoring
    thread samples memory every 50 ms; the README warns it can affect the timings), ``--input_layer=``,
    ``--input_layer_shape=`` and ``--input_layer_value_range=name,low,high[:name,low,high]`` (integer inputs,
    both bounds inclusive).

    The tool fills int32/int64 inputs with random values in [0, 99] unless told otherwise
    (``tflite/tools/utils.cc``, ``GetDataRangesForType``), which overruns small embedding tables (segment ids:
    2 rows) and makes GATHER fail ("gather index out of bounds"); token ids get ``[0, vocab_size - 1]`` here and
    every other input the range given in ``value_ranges``. ``--input_layer_value_range`` only accepts names listed
    in ``--input_layer``, and ``--input_layer`` must list *every* model input, in the interpreter's input order,
    with ``--input_layer_shape`` (``PopulateInputLayerInfo`` / ``Init`` in ``benchmark_tflite_model.cc``): hence
    ``input_layers``. Names need not equal the tensor names (the tool only warns "Tensor # i is named ... but flags
    call it ..."), so ``,``, ``:`` and spaces in names are replaced by ``_``.

    Args:
        device_model_path: path of the ``.tflite`` file where the binary runs (e.g. on the phone).
        threads: ``--num_threads`` (>= 1, or -1 for the platform default).
        use_xnnpack: ``--use_xnnpack`` value; None derives it from ``delegate`` (true for "xnnpack", false for
            "cpu" = TFLite's builtin kernels without the default XNNPACK delegate, not set for "gpu"/"nnapi").
        delegate: one of ``DELEGATES``: "cpu", "xnnpack", "gpu" (``--use_gpu=true``), "nnapi" (``--use_nnapi=true``).
        num_runs: ``--num_runs`` (minimum number of timed runs; the tool also runs for at least ``min_secs``=1 s).
        warmup_runs: ``--warmup_runs``.
        input_layer: name of the token-ids input (gets the range ``0,vocab_size-1``); needs ``input_layers``.
        vocab_size: vocabulary size of that input.
        input_layers: every model input as ``(name, shape)``, in interpreter order, e.g.
            ``[("token_ids", [1, 128]), ("segment_ids", [1, 128]), ("padding_mask", [1, 128])]``.
        value_ranges: extra inclusive integer ranges, ``{input name: (low, high)}``.
        binary: the ``benchmark_model`` executable (default ``/data/local/tmp/benchmark_model``).
        enable_op_profiling: add ``--enable_op_profiling=true`` (per-op tables in the log).
        report_peak_memory_footprint: add ``--report_peak_memory_footprint=true``.
        extra_flags: further ``--name=value`` strings, appended verbatim.
    Returns:
        list of strings: ``[binary, "--graph=...", ...]``.
    Raises:
        ValueError: unknown delegate, ``use_xnnpack`` contradicting ``delegate``, non-positive counts, a vocabulary
            size below 1, ``input_layer`` without ``vocab_size``/``input_layers`` or absent from them, or a range
            for an input not in ``input_layers``.
    """
    if delegate not in DELEGATES:
        raise ValueError(f"delegate must be one of {DELEGATES}, got {delegate!r}")
    if not (threads >= 1 or threads == -1):
        raise ValueError(f"threads must be >= 1 (or -1 for the platform default), got {threads}")
    if num_runs < 1 or warmup_runs < 0:
        raise ValueError(f"num_runs must be >= 1 and warmup_runs >= 0, got {num_runs} and {warmup_runs}")
    if use_xnnpack is None:
        use_xnnpack = {"xnnpack": True, "cpu": False}.get(delegate)
    elif delegate == "cpu" and use_xnnpack:
        raise ValueError("delegate='cpu' means TFLite's builtin kernels: it contradicts use_xnnpack=True")
    elif delegate == "xnnpack" and not use_xnnpack:
        raise ValueError("delegate='xnnpack' contradicts use_xnnpack=False")

    argv = [
        str(binary),
        f"--graph={device_model_path}",
        f"--num_threads={int(threads)}",
        f"--num_runs={int(num_runs)}",
        f"--warmup_runs={int(warmup_runs)}",
    ]
    if use_xnnpack is not None:
        argv.append(f"--use_xnnpack={'true' if use_xnnpack else 'false'}")
    if delegate == "gpu":
        argv.append("--use_gpu=true")
    elif delegate == "nnapi":
        argv.append("--use_nnapi=true")
    if enable_op_profiling:
        argv.append("--enable_op_profiling=true")
    if report_peak_memory_footprint:
        argv.append("--report_peak_memory_footprint=true")

    ranges = {name: (int(lo), int(hi)) for name, (lo, hi) in (value_ranges or {}).items()}
    if input_layer is not None:
        if vocab_size is None or int(vocab_size) < 1:
            raise ValueError(f"input_layer={input_layer!r} needs vocab_size >= 1, got {vocab_size!r}")
        ranges[input_layer] = (0, int(vocab_size) - 1)
    if ranges and not input_layers:
        raise ValueError(
            "value ranges need input_layers: benchmark_model only accepts --input_layer_value_range "
            "names listed in --input_layer, which must name every model input with its shape "
            "(--input_layer_shape), in the interpreter's input order"
        )
    if input_layers:
        names = [name for name, _ in input_layers]
        unknown = sorted(set(ranges) - set(names))
        if unknown:
            raise ValueError(f"value range given for {unknown}, which are not in input_layers {names}")
        for name, (lo, hi) in ranges.items():
            if lo > hi:
                raise ValueError(f"empty value range for {name!r}: {lo} > {hi}")
        flag_names = [_flag_name(name) for name in names]
        if len(set(flag_names)) != len(flag_names):
            raise ValueError(f"input names collide once ',' ':' and spaces are replaced: {flag_names}")
        shapes = []
        for name, shape in input_layers:
            dims = [int(d) for d in shape]
            if not dims or any(d < 1 for d in dims):
                raise ValueError(f"input {name!r} needs a fully known shape (no -1/None), got {list(shape)}")
            shapes.append(",".join(str(d) for d in dims))
        argv.append("--input_layer=" + ",".join(flag_names))
        argv.append("--input_layer_shape=" + ":".join(shapes))
        if ranges:
            items = [f"{_flag_name(name)},{ranges[name][0]},{ranges[name][1]}" for name in names if name in ranges]
            argv.append("--input_layer_value_range=" + ":".join(items))
    argv.extend(str(flag) for flag in extra_flags)
    return argv
