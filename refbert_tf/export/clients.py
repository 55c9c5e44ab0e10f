"""Standard runtimes as clients of an exported ``.tflite``: code that is not this project's reads the file as a
user's app would. TensorFlow-free.

- :func:`mediapipe_classify`: MediaPipe Tasks ``TextClassifier`` (the same C++ task as on Android, iOS and Web),
  in its tool environment (:mod:`refbert_tf.export.toolenv`). It needs the file's TFLite Model Metadata
  (:mod:`refbert_tf.export.metadata`) and tokenizes the text itself.
"""

from __future__ import annotations

import json
import time

import numpy as np

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


def compare_with_mediapipe(model_path, texts, labels=None) -> dict:
    """MediaPipe's ``TextClassifier`` against ``refbert-predict``'s interpreter path on the same file and texts.

    Args:
        model_path: a single-text classifier ``.tflite`` with metadata and its card.
        texts: N strings.
        labels: optional N gold label indices (for both accuracies).

    Returns:
        ``{"num_texts", "agreement" (percent of texts with the same label), "accuracy": {"refbert_predict",
        "mediapipe"} (percent; with ``labels``), "max_abs_logit_diff", "median_ms": {"refbert_predict",
        "mediapipe"}, "disagreements": [{index, text, refbert_predict, mediapipe, logits, scores, non_ascii}]}``.
        ``non_ascii`` flags texts with characters outside ASCII: MediaPipe lower-cases ASCII letters only and keeps
        accents, where the BERT normalizer of :mod:`refbert_tf.tokenization` strips them.

    Raises:
        ToolError: from :func:`mediapipe_classify`.
    """
    from refbert_tf.predict import load_predictor, predict_texts  # lazy: the interpreter path loads LiteRT

    texts = [str(t) for t in texts]
    theirs = mediapipe_classify(model_path, texts)
    runner, tokenizer, card = load_predictor(model_path)
    ours, ms = [], []
    for text in texts:
        start = time.perf_counter()
        ours.append(predict_texts(runner, tokenizer, card, [text])[0][0])  # tokenize + invoke, as refbert-predict
        ms.append(1000 * (time.perf_counter() - start))
    ours = np.stack(ours)
    names = list(card["labels"])
    scores = np.array([[row.get("scores", {}).get(n, np.nan) for n in names] for row in theirs])
    ours_label = [names[int(i)] for i in ours.argmax(-1)]
    same = [row.get("label") == mine for row, mine in zip(theirs, ours_label)]
    result = {
        "model": str(model_path), "num_texts": len(texts), "agreement": round(100 * float(np.mean(same)), 2),
        "max_abs_logit_diff": float(np.nanmax(np.abs(scores - ours))),
        "median_ms": {"refbert_predict": round(float(np.median(ms)), 3),
                      "mediapipe": round(float(np.median([r.get("ms", np.nan) for r in theirs])), 3)},
        "disagreements": [
            {"index": i, "text": texts[i], "refbert_predict": ours_label[i], "mediapipe": theirs[i].get("label"),
             "logits": ours[i].round(4).tolist(), "scores": scores[i].round(4).tolist(),
             "non_ascii": any(ord(c) > 127 for c in texts[i]), "error": theirs[i].get("error")}
            for i in range(len(texts)) if not same[i]
        ],
    }  # fmt: skip
    if labels is not None:
        gold = np.asarray(labels)
        result["accuracy"] = {
            "refbert_predict": round(100 * float(np.mean(ours.argmax(-1) == gold)), 2),
            "mediapipe": round(100 * float(np.mean([names.index(r["label"]) == g if "label" in r else False
                                                    for r, g in zip(theirs, gold)])), 2),
        }  # fmt: skip
    return result


def pair_task_routes(model_path, text_a, text_b, labels=None) -> dict:
    """What a user of a sentence-pair model (MRPC, RTE, STS-B...) gets from each route, run on the file.

    MediaPipe's ``TextClassifier.classify`` takes one string, and the export writes no text-classifier metadata
    into a pair model (:func:`refbert_tf.export.metadata.metadata_skip_reason`); the runtime is asked to load the
    file as it is, and its answer is recorded. The route that serves pairs, the LiteRT interpreter with both texts
    packed as ``[CLS] a [SEP] b [SEP]`` and their segment ids (``refbert-predict``, the Android app's Java
    tokenizer), is then run on every pair and scored with the task's GLUE metric.

    Args:
        model_path: an exported pair-task ``.tflite`` and its card.
        text_a, text_b: N first and second texts.
        labels: optional N gold labels (class indices, or STS-B scores).

    Returns:
        ``{"model", "task", "num_pairs", "mediapipe": {"loads": bool, "error": the runtime's message (when it does
        not)}, "interpreter": {"metrics" (percent, with ``labels``), "median_ms"}}``.
    """
    from refbert_tf.export.toolenv import ToolError
    from refbert_tf.metrics import compute_metrics, predictions_from_outputs
    from refbert_tf.predict import load_predictor, predict_texts  # lazy: the interpreter path loads LiteRT
    from refbert_tf.tasks import get_task

    runner, tokenizer, card = load_predictor(model_path)
    try:
        mediapipe_classify(model_path, [f"{text_a[0]} {text_b[0]}"])
        mediapipe = {"loads": True}
    except ToolError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        mediapipe = {"loads": False, "error": lines[-1] if lines else str(error)}
    outputs, ms = predict_texts(runner, tokenizer, card, text_a, text_b)
    interpreter = {"median_ms": round(float(np.median(ms)), 3)}
    if labels is not None:
        task = get_task(card["task"])
        metrics = compute_metrics(task, predictions_from_outputs(task, outputs), np.asarray(labels))
        interpreter["metrics"] = {k: round(float(v), 2) for k, v in metrics.items()}
    return {"model": str(model_path), "task": card["task"], "num_pairs": len(text_a), "mediapipe": mediapipe,
            "interpreter": interpreter}  # fmt: skip
