"""``refbert-predict``: classify text with an exported ``.tflite`` student and its model card, on the desktop.

Usage::

    refbert-predict model.tflite "a gripping, funny film"                 # one text
    refbert-predict model.tflite "The cat sat." "A cat was sitting."      # a sentence pair
    refbert-predict model.tflite --batch dev.tsv                          # a GLUE TSV: predictions + dev metrics
    cat texts.txt | refbert-predict model.tflite --batch -                # one text per line (pairs: TAB)

The model card (``<model>.json``, written by ``recipes/export_tflite.py``) gives the task, labels, maximum
length and the vocabulary file (``vocab_file``, beside the model); tokenization is the project's Hugging
Face-exact WordPiece (:mod:`refbert_tf.tokenization`), the same as in training. Latency is the interpreter's
``invoke`` time per input, in ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from refbert_tf.cli import positive_int


class PredictError(Exception):
    """A user-facing error (bad model, card, vocabulary or input file); printed without a traceback."""


def load_predictor(model_path, num_threads: int = 1):
    """``(runner, tokenizer, card)`` for a ``.tflite`` file and its card.

    Raises:
        PredictError: missing or non-TFLite model, missing card, missing or mismatched vocabulary.
    """
    from refbert_tf.export import read_card  # lazy: --help and usage errors answer before LiteRT and TensorFlow load
    from refbert_tf.inference import LiteRTClassifier, ModelFileError, check_tflite_file  # lazy: as above
    from refbert_tf.io_utils import CorruptArtifactError
    from refbert_tf.tokenization import BertWordPieceTokenizer, VocabularyError  # lazy: imports TensorFlow

    try:
        check_tflite_file(model_path)
        card = read_card(model_path)
        runner = LiteRTClassifier(model_path, num_threads=num_threads)
    except (ModelFileError, FileNotFoundError, CorruptArtifactError) as e:
        raise PredictError(str(e)) from None
    if not card.get("vocab_file"):
        raise PredictError(f"the model card of {model_path} names no vocab_file: re-export the model")
    vocab = Path(model_path).parent / card["vocab_file"]
    try:
        tokenizer = BertWordPieceTokenizer(
            vocab, lowercase=card.get("lowercase", True), max_seq_len=card["max_seq_len"]
        )
    except VocabularyError as e:
        raise PredictError(str(e)) from None
    if card.get("vocab_sha256") and tokenizer.vocab_sha256 != card["vocab_sha256"]:
        raise PredictError(f"{vocab} does not match the vocabulary checksum in the card of {model_path}")
    return runner, tokenizer, card


def predict_texts(runner, tokenizer, card, text_a, text_b=None) -> tuple[np.ndarray, np.ndarray]:
    """Outputs [N, C] and per-input latency [N] (ms) of texts (pairs when ``text_b`` is given).

    Texts longer than the card's ``max_seq_len`` are truncated (``longest_first``), as in training.
    """
    feats = tokenizer.encode(list(text_a), None if text_b is None else list(text_b), card["max_seq_len"])
    ids, segs = feats["token_ids"], feats["segment_ids"]
    outputs, latency = [], []
    for i in range(int(ids.nrows())):
        t = time.perf_counter()
        outputs.append(runner.predict(ids[i].numpy(), segs[i].numpy()))
        latency.append((time.perf_counter() - t) * 1000)
    return np.stack(outputs), np.asarray(latency)


def _describe(card, output) -> str:
    if card["task"] == "stsb":
        return f"score {float(output[0]):.3f}"
    probs = np.exp(output - output.max())
    probs /= probs.sum()
    labels = card.get("labels") or [str(i) for i in range(len(probs))]
    best = int(np.argmax(probs))
    return f"{labels[best]} ({probs[best]:.3f}) | " + " ".join(f"{name}={p:.3f}" for name, p in zip(labels, probs))


def _read_lines(stream, source: str) -> tuple[list, list | None]:
    try:
        rows = [line.rstrip("\n").split("\t") for line in stream if line.strip()]
    except UnicodeDecodeError as e:
        if source == "standard input":
            raise PredictError(f"standard input is not UTF-8 text ({e.reason})") from None
        from refbert_tf.data import not_utf8_message  # lazy: TensorFlow-free, only for this error

        raise PredictError(not_utf8_message(source, e)) from None
    if not rows:
        raise PredictError(f"no input lines in {source}")
    if all(len(r) >= 2 for r in rows):
        return [r[0] for r in rows], [r[1] for r in rows]
    return [r[0] for r in rows], None


def check_inputs(tokenizer, card, model, text_a, text_b=None, source=None) -> None:
    """Refuse inputs the model cannot classify: a second text for a single-text task (or none for a pair task), and
    a text with no tokens (empty, or only whitespace and control characters, which the normalizer drops).

    Args:
        source: where the texts came from (a file, ``standard input``), None for texts on the command line.

    Raises:
        PredictError: naming the model, or the input and its source.
    """
    from refbert_tf.tasks import get_task  # lazy: TensorFlow-free, after the card is read

    task = get_task(card["task"])
    if task.is_pair and text_b is None:
        raise PredictError(
            f"{model} is a {task.name} model: it classifies sentence pairs; give two texts "
            "(with --batch: TAB-separated lines, or the task's GLUE TSV)"
        )
    if not task.is_pair and text_b is not None:
        raise PredictError(f"{model} is a {task.name} model: it classifies one text, not a pair")
    for which, texts in (("text", text_a), ("second text", text_b)):
        if texts is None:
            continue
        empty = np.flatnonzero(tokenizer.tokenize(list(texts)).row_lengths().numpy() == 0)
        if empty.size:
            where = f"the {which}" if source is None else f"input {empty[0] + 1} ({which}) of {source}"
            raise PredictError(f"{where} is empty or only whitespace and control characters: nothing to classify")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="refbert-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", help="exported .tflite file (its card <model>.json must sit beside it)")
    p.add_argument("text", nargs="?", help="text to classify")
    p.add_argument("text_b", nargs="?", help="second text, for sentence-pair tasks")
    p.add_argument(
        "--batch",
        metavar="FILE",
        help="a GLUE TSV of the card's task (header row: predictions and "
        "dev metrics), or a file / '-' (stdin) with one text per line (TAB-separated pairs)",
    )
    p.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (1)")
    p.add_argument("--quiet", action="store_true", help="with --batch, print only the summary")
    args = p.parse_args(argv)
    try:
        if (args.text is None) == (args.batch is None):
            raise PredictError("give a text to classify, or --batch FILE (not both)")
        runner, tokenizer, card = load_predictor(args.model, args.threads)
        labels, source = None, None
        if args.batch is None:
            text_a, text_b = [args.text], None if args.text_b is None else [args.text_b]
        elif args.batch == "-":
            source = "standard input"
            text_a, text_b = _read_lines(sys.stdin, source)
        else:
            path = Path(args.batch)
            if not path.is_file():
                raise PredictError(f"--batch file not found: {path}")
            source = str(path)
            with open(path, "rb") as f:
                first = f.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
            if "\t" in first and any(
                h in first.split("\t") for h in ("label", "sentence", "sentence1", "#1 String", "question")
            ):
                from refbert_tf.data import GlueDataError, read_glue_tsv  # lazy: only for --batch TSV files

                try:
                    examples = read_glue_tsv(card["task"], "dev", path=path)
                except GlueDataError as e:  # at the header line: maybe another task's TSV, say the model's task
                    hint = (
                        f" (the model {args.model} reads {card['task']} TSVs)"
                        if str(e).startswith(f"{path}:1: ")
                        else ""
                    )
                    raise PredictError(f"{e}{hint}") from None
                text_a, text_b, labels = examples.text_a, examples.text_b, examples.labels
            else:
                with open(path, encoding="utf-8") as f:
                    text_a, text_b = _read_lines(f, source)
        check_inputs(tokenizer, card, args.model, text_a, text_b, source)
        outputs, latency = predict_texts(runner, tokenizer, card, text_a, text_b)
    except (PredictError, ValueError) as e:
        print(f"refbert-predict: error: {e}", file=sys.stderr)
        return 2
    if args.batch is None or not args.quiet:
        for i, out in enumerate(outputs):
            prefix = "" if args.batch is None else f"{i}\t"
            print(f"{prefix}{_describe(card, out)}\t{latency[i]:.2f} ms")
    if args.batch is not None:
        print(
            f"{len(outputs)} inputs, median latency {np.median(latency):.2f} ms, p90 "
            f"{np.percentile(latency, 90):.2f} ms ({args.threads} thread(s))"
        )
        if labels is not None:
            from refbert_tf.metrics import compute_metrics, predictions_from_outputs  # lazy: only with gold labels
            from refbert_tf.tasks import get_task  # lazy: as above

            task = get_task(card["task"])
            metrics = compute_metrics(task, predictions_from_outputs(task, outputs), labels)
            print("dev " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
