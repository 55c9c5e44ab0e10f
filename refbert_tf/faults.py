"""Named fault points: the places where the fault-injection tests stop a real run to kill it with SIGKILL.

A long job reaches a point (:func:`reached`) at each moment worth interrupting: the end of a checkpoint interval
of any ``fit`` (``fit:<backup dir name>``: ``fit:backup`` for the teacher, ``fit:backup_intermediate`` and
``fit:backup_prediction`` for the two distillation stages), each reference-bank shard written (``bank:shard``),
a saved model whose card is not yet written (``save:model``), an exported ``.tflite`` staged but not yet in
place (``export:staged``) and one in place before its card (``export:placed``).

With ``REFBERT_PAUSE_AT=<point>[:<n>]`` in the environment, the process prints ``REFBERT_PAUSED <point> <n>`` on
stdout at the n-th time (default 1) it reaches ``<point>`` and then waits, so that a test
(``tests/test_faults.py``) kills it at exactly that moment. Unset, as it always is outside those tests, a point
costs one environment lookup. TensorFlow-free.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "REFBERT_PAUSE_AT"
MARKER = "REFBERT_PAUSED"
_counts: dict[str, int] = {}


def pause_spec(value: str | None = None) -> tuple[str, int] | None:
    """``(point, n)`` from ``REFBERT_PAUSE_AT`` (or ``value``); None when unset or empty.

    Raises:
        ValueError: ``n`` that is not a positive integer (the message names the variable).
    """
    value = os.environ.get(ENV, "") if value is None else value
    if not value:
        return None
    point, _, count = value.rpartition(":") if value.rpartition(":")[2].isdigit() else (value, "", "1")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}={value!r}: expected <point>[:<n>] with n >= 1")
    return point, int(count)


def reached(point: str) -> None:
    """Mark that the run has reached ``point``; pause there forever if ``REFBERT_PAUSE_AT`` asks for it."""
    spec = pause_spec()
    if spec is None:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if spec == (point, _counts[point]):
        print(f"\n{MARKER} {point} {_counts[point]}", flush=True)  # on a line of its own, after any progress bar
        sys.stderr.flush()
        while True:  # until the test's SIGKILL
            time.sleep(60)
