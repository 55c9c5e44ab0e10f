"""Parser of the log of TFLite's and LiteRT's ``benchmark_model`` tools (desktop Linux or Android) into row schema.

The formats below are read from the tools' source, not guessed:

* ``tensorflow/lite/tools/benchmark/benchmark_model.cc`` (``tflite/tools/benchmark/`` in google-ai-edge/LiteRT):
  ``BenchmarkModel::Run`` logs ``Initialized session in <ms>ms.``, ``Running benchmark for at least N iterations
  ...`` and one statistics line per phase (warm-up, then timed runs); ``BenchmarkLoggingListener::OnBenchmarkEnd``
  logs ``Inference timings in us: Init: <us>, First inference: <us>, Warmup (avg): <us>, Inference (avg): <us>``,
  ``Memory footprint delta from the start of the tool (MB): init=<MB> overall=<MB>`` and, with
  ``--report_peak_memory_footprint=true``, ``Overall peak memory footprint (MB) via periodic monitoring: <MB>``.
  Older releases: ``Average inference timings in us: Warmup: <us>, Init: <us>, Inference: <us>`` (before that
  ``no stats: <us>``) and ``Peak memory footprint (MB): init=<MB> overall=<MB>``.
* LiteRT's CompiledModel tool (``litert/tools/benchmark_litert_model.h``, ``BenchmarkLoggingListener``; built as
  ``benchmark_model`` in google-ai-edge/LiteRT) replaces that summary with a block in *milliseconds* (``%.2f``):
  ``========== BENCHMARK RESULTS ==========``, ``Signature name:`` (2026 builds), ``Model initialization: <ms> ms``,
  ``Warmup (first): <ms> ms``, ``Warmup (avg): <ms> ms (<n> runs)``, ``Inference (avg): <ms> ms (<n> runs)``,
  ``Inference (min)`` / ``(max)`` / ``(std)``, ``Throughput``, then ``Memory Usage:`` with ``Init footprint: <MB>
  MB``, ``Overall footprint: <MB> MB`` (the two delta figures above) and ``Peak memory: <MB> MB`` or ``Peak memory
  usage not available. (peak_mem_mb <= 0)``. Its lines come from ``LITERT_LOG``, prefixed ``INFO: [file.h:NN] ``
  (``litert/c/internal/litert_logging.h``); the base class still prints the statistics lines (microseconds).
* ``tensorflow/core/util/stats_calculator.h`` / ``xla/tsl/util/stats_calculator.h``: ``Stat::OutputToStream``
  prints ``count=<n> first=<us> curr=<us> min=<us> max=<us> avg=<us> std=<us>``, or ``count=<n> curr=<us>`` when
  all runs took the same time (older builds add ``(all same)``); ``StatWithPercentiles`` (current TFLite and
  LiteRT) appends `` p5=<us> median=<us> p95=<us>``. ``avg`` is a ``double`` printed with 6 significant digits
  (``2.71985e+06``). No version prints p90 or p99.
* ``benchmark_tflite_model.cc`` and the delegate providers: parameter lines (``Graph: [...]``, ``Num threads: [4]``,
  ``Use xnnpack: [1]``...), ``Explicitly applied <NAME> delegate, and the model graph will be completely|partially
  executed ...``, ``Though <NAME> delegate is explicitly applied, the model graph will not be executed ...``;
  ``benchmark_main.cc`` (and LiteRT's ``benchmark_litert_model_main.cc``) log ``STARTING!`` first and end a failed
  run with ``Benchmarking failed.``.
* Documentation: https://github.com/tensorflow/tensorflow/tree/master/tensorflow/lite/tools/benchmark,
  https://ai.google.dev/edge/litert/models/measurement and https://developers.google.com/edge/litert/next/benchmark.

Line prefixes stripped before matching: leading spaces/tabs and ``> `` quote marks (pastes in issues or markdown),
Android logcat headers -- ``threadtime`` (``05-30 15:16:44.857  3380  3380 I tflite  : ``), ``time``
(``07-08 15:33:55.768 I/tflite  ( 5395): ``, also with a year or without the date) and ``brief``
(``I/tflite  ( 3380): ``) --, severities (``INFO: ``, ``VERBOSE: ``...), the ``[file.cc:NN] `` source location
that LiteRT puts after them, and ``\\r`` line ends. Real logs of each case are in ``tests/fixtures/benchmark_logs``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BenchmarkLogError", "parse_benchmark_model_log", "parse_benchmark_model_log_file"]

_NUM = r"[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"

_QUOTE = re.compile(r"^(?:>\s?)+")
_LOGCAT_HEADERS = (
    # threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : " (optionally with a year)
    re.compile(r"^(?:\d{4}-)?\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+[VDIWEFA]\s+[^:]*?\s*:\s?"),
    # time: "07-08 15:33:55.768 I/tflite  ( 5395): " (date optional), brief: "I/tflite  ( 3380): "
    re.compile(r"^(?:(?:(?:\d{4}-)?\d{2}-\d{2}\s+)?\d{2}:\d{2}:\d{2}(?:\.\d+)?\s+)?[VDIWEFA]/[^(]*\(\s*\d+\)\s*:\s?"),
    # tag only: "I tflite  : "
    re.compile(r"^[VDIWEFA]\s+[\w./-]+\s*:\s"),
)
_SEVERITY = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG|FATAL):\s?")
_SOURCE_LOCATION = re.compile(r"^\[[^\]\s]+:\d+\]\s?")  # LiteRT: "[./litert/tools/benchmark_litert_model.h:81] "

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
_LITERT_SUMMARY = re.compile(rf"^Inference \(avg\):\s*(?P<avg>{_NUM}) ms \((?P<count>\d+) runs\)")
_LITERT_FIELDS = {  # results-block line -> (key, pattern); ms or MB as printed
    "init": re.compile(rf"^Model initialization:\s*({_NUM}) ms"),
    "first": re.compile(rf"^Warmup \(first\):\s*({_NUM}) ms"),
    "warmup": re.compile(rf"^Warmup \(avg\):\s*({_NUM}) ms \((\d+) runs\)"),
    "min": re.compile(rf"^Inference \(min\):\s*({_NUM}) ms"),
    "max": re.compile(rf"^Inference \(max\):\s*({_NUM}) ms"),
    "std": re.compile(rf"^Inference \(std\):\s*({_NUM})"),
}
_RUN_START = re.compile(r"^(?:STARTING!|Log parameter values verbosely)")
_STAT_PAIR = re.compile(rf"(\w+)=({_NUM})", re.IGNORECASE)
_SESSION = re.compile(rf"^Initialized session in\s*({_NUM})\s*ms")

_PEAK = re.compile(rf"^(?:Overall peak memory footprint \(MB\) via periodic monitoring:|Peak memory:)\s*({_NUM})")
_MEM_DELTA = re.compile(
    rf"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*init=({_NUM})\s+"
    rf"overall=({_NUM})"
)
_MEM_OVERALL = re.compile(rf"^Overall footprint:\s*({_NUM}) MB")

_THREADS = re.compile(r"^Num threads\s*:\s*\[(-?\d+)\]")
_CPU_THREADS = re.compile(r"^#threads used for CPU inference\s*:\s*\[(-?\d+)\]")
_GRAPH = re.compile(r"^Graph\s*:\s*\[(.*)\]\s*$")
_LOADED = re.compile(r"^(?:Loaded model|Loading model from:)\s*(.+?)\s*$")

_APPLIED = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be (?:completely|partially) executed"
)
_NOT_APPLIED = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed")
_REPLACING = re.compile(r"Replacing \d+ (?:out of \d+ )?node\(s\) with delegate \((\w+)\)")
_XNNPACK_CREATED = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
_USE_FLAG = re.compile(r"^Use (xnnpack|gpu|nnapi|hexagon|coreml)\s*:\s*\[1\]", re.IGNORECASE)
_CONFIG_LINE = re.compile(
    r"^(?:Graph\s*:|Log parameter values verbosely|Loaded model |Loading model from:|Initialized session in|"
    r"STARTING!)"
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
    """Return ``(without indentation, quote and logcat header, also without severity and source location)``."""
    line = _QUOTE.sub("", line.strip()).strip()
    for header in _LOGCAT_HEADERS:
        if m := header.match(line):
            line = line[m.end() :]
            break
    shown = bare = line.strip()
    while m := (_SEVERITY.match(bare) or _SOURCE_LOCATION.match(bare)):
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
    stats = {k.lower(): _num(v) for k, v in _STAT_PAIR.findall(bare.replace("(all same)", " "))}
    if "min" not in stats and stats.get("curr") is not None and stats.get("count"):
        # Stat::OutputToStream prints only count and curr when min == max (all runs identical): then
        # min = max = avg = curr and std = 0 by definition (std_deviation() returns 0 when all_same()).
        curr = stats["curr"]
        stats.update(min=curr, max=curr, avg=curr, std=0.0)
        stats.setdefault("first", curr)
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


def _run_starts(bare_lines: Sequence[str]) -> list[int]:
    """Indices of the first line of each run (``STARTING!`` and the parameter block right after it count once)."""
    starts: list[int] = []
    for i, bare in enumerate(bare_lines):
        if _RUN_START.match(bare):
            if starts and all(not b for b in bare_lines[starts[-1] + 1 : i]):
                continue
            starts.append(i)
    return starts


def _first(pattern: re.Pattern, lines: Sequence[str]) -> re.Match | None:
    return next((m for line in lines if (m := pattern.match(line))), None)


def _litert_block(lines: Sequence[str]) -> dict:
    """The ms figures of LiteRT's results block (last occurrence of each line in ``lines``)."""
    block: dict = {}
    for line in lines:
        for key, pattern in _LITERT_FIELDS.items():
            if m := pattern.match(line):
                block[key] = _num(m.group(1))
                if key == "warmup":
                    block["warmup_count"] = int(m.group(2))
    return block


def _timings(kind: str, summary: re.Match, run: Sequence[str], timed: dict, warmup: dict) -> dict:
    """Times in ms. TFLite: its summary (us) and statistics lines. LiteRT: the statistics lines (us) and
    ``Initialized session in`` where they exist and agree with the block's run counts, else the block (ms)."""
    if kind != "litert":
        first = None if kind == "legacy" else _num(summary["first"])
        return {
            "init": _ms(_num(summary["init"])),
            "first": _ms(first if first is not None else warmup.get("first")),
            "warmup": _ms(_num(summary["warmup"])),
            "avg": _ms(_num(summary["avg"])),
            **{key: _ms(timed.get(key)) for key in ("std", "min", "max", "p5", "p95", "p90", "p99")},
            "median": _ms(timed.get("median", timed.get("p50"))),
            "count": timed.get("count"),
        }
    block = {**_litert_block(run), "avg": _num(summary["avg"]), "count": int(summary["count"])}
    if not (timed and timed.get("count") == block["count"]):
        timed = {}
    if not (warmup and warmup.get("count") == block.get("warmup_count")):
        warmup = {}
    session = _first(_SESSION, run)
    out = {key: _ms(timed.get(key)) for key in ("p5", "p95", "p90", "p99")}
    out["median"] = _ms(timed.get("median", timed.get("p50")))
    for key in ("avg", "std", "min", "max"):
        out[key] = _ms(timed[key]) if timed.get(key) is not None else block.get(key)
    out["first"] = _ms(warmup["first"]) if warmup.get("first") is not None else block.get("first")
    out["warmup"] = _ms(warmup["avg"]) if warmup.get("avg") is not None else block.get("warmup")
    out["init"] = _num(session.group(1)) if session else block.get("init")
    out["count"] = block["count"]
    return out


def parse_benchmark_model_log(text: str) -> dict:
    """Parse the stdout/stderr (or logcat) of TFLite's or LiteRT's ``benchmark_model`` into the benchmark row schema.

    Accepts the desktop Linux binary's output, ``adb shell`` output, logcat dumps and pasted copies (see the module
    docstring for the prefixes stripped and the formats). Runs are delimited by ``STARTING!`` / ``Log parameter
    values verbosely`` lines (or, without them, by the previous run's summary). Rule for several runs: the last
    *complete* run (one with a summary: ``Inference timings in us``, the legacy ``Average inference timings`` or
    LiteRT's ``Inference (avg): .. ms (n runs)``) is returned; failed or unfinished runs before it are ignored; a
    failure (``Benchmarking failed.``, an op ``failed to invoke``) in that run or in any run attempted after it
    raises, while a later run that stops without summary or failure line (a cut-off capture) is ignored.

    Args:
        text: the captured log.
    Returns:
        dict with the desktop runner's timing and memory keys (the caller adds ``seq_len``, ``size_mb``...) plus
        ``delegate`` and ``model_path``; times in ms (TFLite prints us, LiteRT's results block ms), memory in MB:

        - ``init_ms``: ``Init`` (TFLite; interpreter creation, delegates, tensor allocation) or, for LiteRT,
          ``Initialized session in`` (same figure, 6 digits), else ``Model initialization``;
        - ``warmup_first_ms`` / ``warmup_avg_ms``: ``First inference`` / ``Warmup (avg)`` (legacy logs: first
          warm-up run from its statistics line, else None; LiteRT: the warm-up statistics line, else the block);
        - ``avg_ms``: ``Inference (avg)``; ``std_ms``, ``min_ms``, ``max_ms``, ``count``: the statistics line of
          the timed runs (std is the population standard deviation, whole us); for LiteRT the block's figures
          (2 decimals) when that line is missing or counts other runs. None when absent;
        - ``median_ms``, ``p5_ms``, ``p95_ms``: the printed ``median=``, ``p5=``, ``p95=`` of the timed runs
          (``StatWithPercentiles``), None when not printed (older TFLite; never computed here). ``p90_ms`` /
          ``p99_ms``: ``p90=`` / ``p99=``, which no version prints (None);
        - ``peak_mem_mb``: ``Overall peak memory footprint (MB) via periodic monitoring`` or LiteRT's ``Peak
          memory`` (only with ``--report_peak_memory_footprint=true``), None if absent;
        - ``model_mem_mb``: ``overall=`` of ``Memory footprint delta from the start of the tool (MB)`` (older:
          ``Peak memory footprint (MB)``) or LiteRT's ``Overall footprint``: growth of the footprint from the
          tool's start to the end of the runs, like the desktop runner's ``model_mem_mb``. Not a peak. None if
          absent;
        - ``threads``: ``Num threads: [n]`` (else ``#threads used for CPU inference``), None if absent or < 1;
        - ``delegate``: the delegate that ran graph nodes (``"xnnpack"``, ``"gpu"``, ``"nnapi"``... joined by
          ``+``), ``"cpu"`` when the run shows configuration lines but no delegate (one the tool reports as "will
          not be executed" does not count), None when the excerpt has neither;
        - ``model_path``: ``Graph: [...]`` (else ``Loaded model ...`` / ``Loading model from: ...``), or None;
        - ``source``: ``"benchmark_model"``.
    Raises:
        BenchmarkLogError: (a ``ValueError``) when the text holds no complete run, or the run chosen above or a
            later one failed; the message quotes the tool's own error lines (``Failed to ...``, ``gather index out
            of bounds`` ...).
    """
    shown_lines, bare_lines = [], []
    for raw in text.splitlines():
        shown, bare = _strip(raw)
        shown_lines.append(shown)
        bare_lines.append(bare)

    summaries = []
    for i, bare in enumerate(bare_lines):
        for kind, pattern in (("tflite", _SUMMARY), ("legacy", _LEGACY_SUMMARY), ("litert", _LITERT_SUMMARY)):
            if m := pattern.search(bare):
                summaries.append((i, kind, m))
                break
    if not summaries:
        if not text.strip():
            raise BenchmarkLogError("the benchmark_model log is empty")
        errors = _error_lines(shown_lines)
        detail = "tool errors: " + " | ".join(errors) if errors else "no error line either: the log may be truncated"
        raise BenchmarkLogError(f"no 'Inference timings in us' line nor LiteRT results block in the log; {detail}")
    s_idx, kind, summary = summaries[-1]

    # This run: from its last run-start line (or the previous summary) to the next run's start.
    starts = _run_starts(bare_lines)
    lower = summaries[-2][0] + 1 if len(summaries) > 1 else 0
    start = max([lower] + [i for i in starts if i < s_idx])
    end = next((i for i in starts if i > s_idx), len(bare_lines))
    run_bare = bare_lines[start:end]

    if any(_FATAL_IN_RUN.search(b) for b in bare_lines[start:]):
        errors = _error_lines(shown_lines[start:])
        raise BenchmarkLogError("benchmark_model reported a failed run: " + " | ".join(errors))

    stats_lines = [_parse_stats(b) for b in bare_lines[start:s_idx] if b.startswith("count=")]
    timed = stats_lines[-1] if stats_lines else {}
    warmup = stats_lines[-2] if len(stats_lines) >= 2 else {}
    t = _timings(kind, summary, run_bare, timed, warmup)

    peak = delta = None
    for b in bare_lines[s_idx:end]:
        if m := _PEAK.match(b):
            peak = _num(m.group(1))
        elif m := _MEM_DELTA.match(b):
            delta = _num(m.group(2))
        elif m := _MEM_OVERALL.match(b):
            delta = _num(m.group(1))

    m = _first(_THREADS, run_bare) or _first(_CPU_THREADS, run_bare)
    threads = int(m.group(1)) if m and int(m.group(1)) >= 1 else None
    graph, loaded = _first(_GRAPH, run_bare), _first(_LOADED, run_bare)
    model_path = (graph and graph.group(1).strip()) or (loaded and loaded.group(1)) or None

    return {
        "init_ms": t["init"],
        "warmup_first_ms": t["first"],
        "warmup_avg_ms": t["warmup"],
        "median_ms": t["median"],
        "p5_ms": t["p5"],
        "p95_ms": t["p95"],
        "p90_ms": t["p90"],
        "p99_ms": t["p99"],
        "avg_ms": t["avg"],
        "std_ms": t["std"],
        "min_ms": t["min"],
        "max_ms": t["max"],
        "count": None if t["count"] is None else int(t["count"]),
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
        path: log file (desktop stdout/stderr, ``adb shell`` output, ``adb logcat`` dump or a pasted copy).
    Returns:
        the dict of :func:`parse_benchmark_model_log` (ms, MB).
    Raises:
        BenchmarkLogError: the file is empty, holds no complete run, or records a failed run; the message starts
            with the file name and quotes the tool's error lines.
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
