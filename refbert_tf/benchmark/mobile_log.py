"""Parser of the log of TFLite's ``benchmark_model`` tool (desktop Linux or Android), into the benchmark row schema.

The formats below are read from the tool's source, not guessed:

* ``tensorflow/lite/tools/benchmark/benchmark_model.cc`` (moved to ``tflite/tools/benchmark/benchmark_model.cc`` in
  google-ai-edge/LiteRT): ``BenchmarkModel::Run`` logs ``Running benchmark for at least N iterations ...`` and then
  one statistics line per phase (warm-up first, then the timed runs); ``BenchmarkLoggingListener::OnBenchmarkEnd``
  logs ``Inference timings in us: Init: <us>, First inference: <us>, Warmup (avg): <us>, Inference (avg): <us>``,
  then ``Memory footprint delta from the start of the tool (MB): init=<MB> overall=<MB>`` and, with
  ``--report_peak_memory_footprint=true``, ``Overall peak memory footprint (MB) via periodic monitoring: <MB>``.
  Older releases printed ``Average inference timings in us: Warmup: <us>, Init: <us>, Inference: <us>`` (before
  that ``no stats: <us>``) and ``Peak memory footprint (MB): init=<MB> overall=<MB>``.
* ``tensorflow/core/util/stats_calculator.h`` / ``xla/tsl/util/stats_calculator.h`` (``Stat::OutputToStream``):
  ``count=<n> first=<us> curr=<us> min=<us> max=<us> avg=<us> std=<us>``, or ``count=<n> curr=<us>`` followed by
  ``(all same)`` when every run took the same time; ``StatWithPercentiles`` (used by LiteRT's benchmark_model)
  appends `` p5=<us> median=<us> p95=<us>``. ``avg`` is a C++ ``double`` printed with 6 significant digits, so
  large values appear as ``2.95034e+06``. No TFLite version prints p90 or p99.
* ``tflite/tools/benchmark/benchmark_tflite_model.cc`` and the delegate providers: the parameter lines
  (``Graph: [...]``, ``Num threads: [4]``, ``Use xnnpack: [1]``...), ``Explicitly applied <NAME> delegate, and the
  model graph will be completely|partially executed ...``, ``Though <NAME> delegate is explicitly applied, the model
  graph will not be executed ...``, ``Failed to allocate tensors!``; ``benchmark_main.cc`` ends a failed run with
  ``Benchmarking failed.``.
* Documentation: https://github.com/tensorflow/tensorflow/tree/master/tensorflow/lite/tools/benchmark (README, flag
  list) and https://www.tensorflow.org/lite/performance/measurement (now
  https://ai.google.dev/edge/litert/models/measurement).

Lines may carry prefixes: ``INFO: `` / ``ERROR: `` (newer builds), Android logcat ``threadtime``
(``05-30 15:16:44.857  3380  3380 I tflite  : ``) or ``brief`` (``I/tflite  ( 3380): ``) headers, and ``\\r`` line
ends from old ``adb shell``. The real logs under ``tests/fixtures/benchmark_logs`` cover these cases.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BenchmarkLogError", "parse_benchmark_model_log", "parse_benchmark_model_log_file"]

_NUM = r"[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"

# Prefixes put in front of the tool's own text (stripped before matching).
_LOGCAT_PREFIXES = (
    # threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : " (optionally with a year)
    re.compile(r"^(?:\d{4}-)?\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+[VDIWEFA]\s+[^:]*?\s*:\s?"),
    # brief: "I/tflite  ( 3380): "
    re.compile(r"^[VDIWEFA]/[^(]*\(\s*\d+\)\s*:\s?"),
    # tag only: "I tflite  : "
    re.compile(r"^[VDIWEFA]\s+[\w./-]+\s*:\s"),
)
_SEVERITY_PREFIX = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|VERBOSE|FATAL):\s?")

_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})",
    re.IGNORECASE,
)
_LEGACY_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
    rf"(?:no stats|Inference): (?P<avg>{_NUM})",
    re.IGNORECASE,
)
_RUN_HEADER = re.compile(r"^Running benchmark for at least")
_RUN_START = re.compile(r"^(?:STARTING!|Log parameter values verbosely)")
_STAT_PAIR = re.compile(rf"(\w+)=({_NUM})", re.IGNORECASE)

_PEAK_MONITOR = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_MEM_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({_NUM})\s+overall=({_NUM})"
)
_MEM_OLD = re.compile(rf"^Peak memory footprint \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")

_THREADS = re.compile(r"^Num threads\s*:\s*\[(-?\d+)\]")
_CPU_THREADS = re.compile(r"^#threads used for CPU inference\s*:\s*\[(-?\d+)\]")
_GRAPH = re.compile(r"^Graph\s*:\s*\[(.*)\]\s*$")
_LOADED = re.compile(r"^Loaded model (.+?)\s*$")

_APPLIED = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be (?:completely|partially) executed"
)
_NOT_APPLIED = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed")
_REPLACING = re.compile(r"Replacing \d+ (?:out of \d+ )?node\(s\) with delegate \((\w+)\)")
_XNNPACK_CREATED = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
_USE_FLAG = re.compile(r"^Use (xnnpack|gpu|nnapi|hexagon|coreml)\s*:\s*\[1\]", re.IGNORECASE)
_CONFIG_LINE = re.compile(
    r"^(?:Graph\s*:|Log parameter values verbosely|Loaded model |Initialized session in|STARTING!)"
)

_FATAL_IN_RUN = re.compile(r"Benchmarking failed|failed to invoke", re.IGNORECASE)
_ERROR_LINE = re.compile(
    r"\berror\b|failed|failure|fatal|abort|segmentation fault|out of bounds|was not true|not found|"
    r"no such file|cannot|can't|permission denied|inaccessible|signal \d+|killed",
    re.IGNORECASE,
)


class BenchmarkLogError(ValueError):
    """The text is not a complete, successful ``benchmark_model`` run (no timings, or the tool reported failure)."""


def _strip(line: str) -> tuple[str, str]:
    """Return ``(without logcat header, without logcat header and severity)`` for one log line."""
    line = line.rstrip("\r\n").rstrip()
    for prefix in _LOGCAT_PREFIXES:
        m = prefix.match(line)
        if m:
            line = line[m.end() :]
            break
    shown = line.strip()
    bare = shown
    while True:
        m = _SEVERITY_PREFIX.match(bare)
        if not m:
            break
        bare = bare[m.end() :].lstrip()
    return shown, bare


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 6)


def _parse_stats(bare: str) -> dict[str, float | None]:
    """Parse ``count=... first=... curr=... [min= max= avg= std=] [p5= median= p95=]`` (values as printed)."""
    all_same = "(all same)" in bare
    stats = {k.lower(): _num(v) for k, v in _STAT_PAIR.findall(bare.replace("(all same)", " "))}
    if "min" not in stats and stats.get("curr") is not None and stats.get("count"):
        # Stat::OutputToStream prints only count and curr when min == max (all runs identical): then
        # min = max = avg = curr and std = 0 by definition (std_deviation() returns 0 when all_same()).
        curr = stats["curr"]
        stats.update(min=curr, max=curr, avg=curr, std=0.0)
        stats.setdefault("first", curr)
    stats["all_same"] = all_same
    return stats


def _error_lines(shown_lines: Sequence[str], limit: int = 6) -> list[str]:
    seen, found = set(), []
    for line in shown_lines:
        if line and _ERROR_LINE.search(line) and line not in seen:
            seen.add(line)
            found.append(line)
            if len(found) == limit:
                break
    return found


def _delegate_name(name: str) -> str:
    low = name.lower()
    for key in ("xnnpack", "gpu", "nnapi", "hexagon", "coreml"):
        if key in low:
            return key
    return low


def _detect_delegate(bare_lines: Sequence[str]) -> str | None:
    applied, replacing, not_applied, flags = [], [], set(), []
    xnnpack_created = has_config = False
    for bare in bare_lines:
        if m := _APPLIED.search(bare):
            applied.append(_delegate_name(m.group(1)))
        elif m := _NOT_APPLIED.search(bare):
            not_applied.add(_delegate_name(m.group(1)))
        elif m := _REPLACING.search(bare):
            replacing.append(_delegate_name(m.group(1)))
        elif _XNNPACK_CREATED.search(bare):
            xnnpack_created = True
        elif m := _USE_FLAG.match(bare):
            flags.append(_delegate_name(m.group(1)))
        if _CONFIG_LINE.match(bare):
            has_config = True
    for names in (applied, replacing):
        names = [n for n in dict.fromkeys(names) if n not in not_applied]
        if names:
            return "+".join(names)
    if xnnpack_created:
        return "xnnpack"
    flags = [n for n in dict.fromkeys(flags) if n not in not_applied]
    if flags:
        return "+".join(flags)
    return "cpu" if has_config else None


def parse_benchmark_model_log(text: str) -> dict:
    """Parse the stdout/stderr (or logcat) of one TFLite ``benchmark_model`` run into the benchmark row schema.

    Accepts the desktop Linux binary's output, ``adb shell <device>/benchmark_model ...`` output and logcat lines
    (``threadtime``/``brief`` headers, ``INFO:`` severities and ``\\r`` are stripped). When the text holds several
    runs, the last complete run is used. Formats: see the module docstring (``benchmark_model.cc``,
    ``stats_calculator.h``, ``benchmark_tflite_model.cc`` and the TFLite benchmark README).

    Args:
        text: the captured log.
    Returns:
        dict with the desktop runner's timing and memory keys (the caller adds ``seq_len``, ``size_mb``...) plus
        ``delegate`` and ``model_path``; times in milliseconds (the tool prints microseconds), memory in MB as
        printed by the tool (KiB / 1024):

        - ``init_ms``: ``Init`` (interpreter creation, delegate application, tensor allocation);
        - ``warmup_first_ms``: ``First inference`` (legacy logs: first warm-up run from the warm-up statistics
          line, else None); ``warmup_avg_ms``: ``Warmup (avg)``;
        - ``avg_ms``: ``Inference (avg)``; ``std_ms``, ``min_ms``, ``max_ms``, ``count``: the statistics line of
          the timed runs (None if that line is missing; ``std`` is the population standard deviation the tool
          truncates to whole microseconds);
        - ``median_ms``: the printed ``median=`` (or ``p50=``) of the timed runs, None when the tool did not
          print percentiles (TFLite releases before LiteRT's ``StatWithPercentiles``): it is never computed
          here. ``p90_ms`` / ``p99_ms``: the printed ``p90=`` / ``p99=``, None otherwise (no TFLite version prints
          them today: LiteRT prints p5, median and p95 only);
        - ``peak_mem_mb``: ``Overall peak memory footprint (MB) via periodic monitoring`` (the process's peak
          footprint; printed only with ``--report_peak_memory_footprint=true``), None if absent;
        - ``model_mem_mb``: the ``overall=`` figure of ``Memory footprint delta from the start of the tool (MB)``
          (older builds: ``Peak memory footprint (MB): init=.. overall=..``), i.e. the growth of the footprint
          from the tool's start to the end of the runs (the desktop runner's ``model_mem_mb`` is the same kind of
          delta); None if absent. Not a peak: never copied into ``peak_mem_mb``;
        - ``threads``: ``Num threads: [n]`` (else ``#threads used for CPU inference: [n]``), None if absent or
          not positive (-1 means "platform default");
        - ``delegate``: the delegate that actually ran graph nodes: ``"xnnpack"``, ``"gpu"``, ``"nnapi"``,
          ``"hexagon"`` ... (several joined by ``+``), ``"cpu"`` when the run shows no delegate (builtin kernels;
          a delegate the tool reports as "will not be executed" does not count), None when the log has neither
          delegate nor configuration lines (e.g. a truncated excerpt);
        - ``model_path``: ``Graph: [...]`` (else ``Loaded model ...``), None if absent;
        - ``source``: ``"benchmark_model"``.
    Raises:
        BenchmarkLogError: (a ``ValueError``) when the text holds no ``Inference timings in us`` (or legacy
            ``Average inference timings in us``) line, or when the run logged ``Benchmarking failed.`` or an op
            ``failed to invoke``; the message quotes the tool's own error lines (``Failed to ...``,
            ``gather index out of bounds`` ...).
    """
    raw_lines = text.splitlines()
    shown_lines, bare_lines = [], []
    for raw in raw_lines:
        shown, bare = _strip(raw)
        shown_lines.append(shown)
        bare_lines.append(bare)

    summaries = [(i, m, False) for i, b in enumerate(bare_lines) if (m := _SUMMARY.search(b))]
    summaries += [(i, m, True) for i, b in enumerate(bare_lines) if (m := _LEGACY_SUMMARY.search(b))]
    if not summaries:
        errors = _error_lines(shown_lines)
        if not text.strip():
            raise BenchmarkLogError("the benchmark_model log is empty")
        detail = (
            ("; tool errors: " + " | ".join(errors))
            if errors
            else ("; no error line either: the log may be truncated or not from benchmark_model")
        )
        raise BenchmarkLogError("no 'Inference timings in us' line in the benchmark_model log" + detail)
    summaries.sort(key=lambda item: item[0])
    s_idx, summary, legacy = summaries[-1]

    # The lines of this run: from its STARTING!/parameter block (or the previous summary) to the next run.
    previous = [i for i, _, _ in summaries[:-1]]
    lower = previous[-1] + 1 if previous else 0
    starts = [i for i in range(lower, s_idx) if _RUN_START.match(bare_lines[i])]
    start = starts[0] if starts else lower
    nexts = [i for i in range(s_idx + 1, len(bare_lines)) if _RUN_START.match(bare_lines[i])]
    end = nexts[0] if nexts else len(bare_lines)
    run_bare, run_shown = bare_lines[start:end], shown_lines[start:end]

    if any(_FATAL_IN_RUN.search(b) for b in run_bare):
        errors = _error_lines(run_shown)
        raise BenchmarkLogError("benchmark_model reported a failed run: " + " | ".join(errors))

    stats_lines = [_parse_stats(b) for b in bare_lines[start:s_idx] if b.startswith("count=")]
    timed = stats_lines[-1] if stats_lines else {}
    warmup = stats_lines[-2] if len(stats_lines) >= 2 else {}

    init_us, warmup_avg_us, avg_us = _num(summary["init"]), _num(summary["warmup"]), _num(summary["avg"])
    first_us = None if legacy else _num(summary["first"])
    if first_us is None and warmup:
        first_us = warmup.get("first")

    peak = delta = None
    for b in bare_lines[s_idx:end]:
        if m := _PEAK_MONITOR.search(b):
            peak = _num(m.group(1))
        elif m := (_MEM_DELTA.search(b) or _MEM_OLD.match(b)):
            delta = _num(m.group(2))

    threads = None
    for pattern in (_THREADS, _CPU_THREADS):
        for b in run_bare:
            if m := pattern.match(b):
                threads = int(m.group(1))
                break
        if threads is not None:
            break
    if threads is not None and threads < 1:
        threads = None

    model_path = None
    for pattern in (_GRAPH, _LOADED):
        for b in run_bare:
            if m := pattern.match(b):
                model_path = m.group(1).strip() or None
                break
        if model_path:
            break

    count = timed.get("count")
    return {
        "init_ms": _ms(init_us),
        "warmup_first_ms": _ms(first_us),
        "warmup_avg_ms": _ms(warmup_avg_us),
        "median_ms": _ms(timed.get("median", timed.get("p50"))),
        "p90_ms": _ms(timed.get("p90")),
        "p99_ms": _ms(timed.get("p99")),
        "avg_ms": _ms(avg_us),
        "std_ms": _ms(timed.get("std")),
        "min_ms": _ms(timed.get("min")),
        "max_ms": _ms(timed.get("max")),
        "count": None if count is None else int(count),
        "peak_mem_mb": peak,
        "model_mem_mb": delta,
        "threads": threads,
        "delegate": _detect_delegate(run_bare),
        "model_path": model_path,
        "source": "benchmark_model",
    }


def parse_benchmark_model_log_file(path: str | os.PathLike) -> dict:
    """Read a saved ``benchmark_model`` log (UTF-8, undecodable bytes replaced) and parse it.

    Args:
        path: log file (desktop stdout/stderr, ``adb shell`` output or ``adb logcat`` dump).
    Returns:
        the dict of :func:`parse_benchmark_model_log` (ms, MB).
    Raises:
        BenchmarkLogError: the file is empty, holds no inference timings, or records a failed run; the message
            starts with the file name and quotes the tool's error lines.
        OSError: the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise BenchmarkLogError(f"{path}: file is empty, no benchmark_model output in it")
    try:
        return parse_benchmark_model_log(text)
    except BenchmarkLogError as err:
        raise BenchmarkLogError(f"{path}: {err}") from None
