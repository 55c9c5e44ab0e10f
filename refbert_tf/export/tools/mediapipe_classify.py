"""Classify texts with MediaPipe Tasks' TextClassifier (runs in the ``mediapipe`` tool environment).

Standalone: imports only MediaPipe. Reads one JSON string per line on stdin, writes one JSON object per line on
stdout: ``{"label", "score", "scores": {label: score}, "ms"}`` (``ms``: the classify call's wall time), or
``{"error": message}`` for a text the task refuses. Called by :func:`refbert_tf.export.clients.mediapipe_classify`.
"""

import argparse
import json
import sys
import time

from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="a .tflite text classifier with metadata")
    args = p.parse_args()
    options = TextClassifierOptions(base_options=BaseOptions(model_asset_path=args.model), max_results=-1)
    with TextClassifier.create_from_options(options) as classifier:
        for line in sys.stdin:
            text = json.loads(line)
            try:
                start = time.perf_counter()
                result = classifier.classify(text)
                ms = 1000 * (time.perf_counter() - start)
            except Exception as error:  # the task's own refusal, reported per text
                print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
                continue
            categories = result.classifications[0].categories
            scores = {c.category_name: float(c.score) for c in categories}
            best = max(categories, key=lambda c: c.score)
            print(
                json.dumps({"label": best.category_name, "score": float(best.score), "scores": scores, "ms": ms}),
                flush=True,
            )


if __name__ == "__main__":
    main()
