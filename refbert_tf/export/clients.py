"""Standard runtimes as clients of an exported ``.tflite``: code that is not this project's reads the file as a
user's app would. TensorFlow-free.

- :func:`mediapipe_classify`: MediaPipe Tasks ``TextClassifier`` (the same C++ task as on Android, iOS and Web),
  in its tool environment (:mod:`refbert_tf.export.toolenv`). It needs the file's TFLite Model Metadata
  (:mod:`refbert_tf.export.metadata`) and tokenizes the text itself.
"""

from __future__ import annotations

import json

from refbert_tf.export.toolenv import run_tool


def mediapipe_classify(model_path, texts, timeout: float = 1800.0) -> list[dict]:
    """Classify each of ``texts`` with MediaPipe's ``TextClassifier`` on ``model_path``.

    Args:
        model_path: a single-text classifier ``.tflite`` with metadata.
        texts: strings.
        timeout: seconds for the whole batch.

    Returns:
        one dict per text: ``label``, ``score`` (the runtime's score of that label: the model's output, here a
        logit), ``scores`` {label: score}, ``ms`` (wall time of the classify call, ms); or ``error`` for a text
        the runtime refuses.

    Raises:
        ToolError: the runtime could not load the model (its message, e.g. missing metadata) or failed.
    """
    stdin = "".join(json.dumps(str(t)) + "\n" for t in texts)
    out = run_tool("mediapipe", "mediapipe_classify.py", ["--model", str(model_path)], input=stdin, timeout=timeout)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(rows) != len(texts):
        raise RuntimeError(f"MediaPipe answered {len(rows)} of {len(texts)} texts")
    return rows
