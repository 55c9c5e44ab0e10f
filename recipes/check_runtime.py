#!/usr/bin/env python
"""Run an exported single-text classifier in MediaPipe Tasks' TextClassifier, a runtime that is not this project's
code (the same C++ task as on Android, iOS and Web), and compare it with refbert-predict on the same file.

Example:
    python recipes/check_runtime.py --model artifacts/tflite/sst2_refbert_dynamic_int8.tflite --glue-dir ../shared/glue_data

MediaPipe reads the file's TFLite Model Metadata (written by the export) and tokenizes each dev text itself from
the packed vocabulary. For a sentence-pair model (MRPC, RTE, STS-B: exported without that metadata) it records
what MediaPipe does with the file and measures the route that serves pairs, the interpreter with both texts packed. Prints the agreement, both accuracies, the median latency per text and every disagreement
(with whether the text has non-ASCII characters, which the two tokenizers treat differently); writes --results.
The MediaPipe tool environment is created in .tools/ on first use.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an exported .tflite (and its card): single-text or pair task")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory (default: $GLUE_DIR)")
    p.add_argument("--split", default="dev", help="GLUE split whose texts are classified (dev)")
    p.add_argument("--limit", type=int, default=None, help="classify only the first N texts")
    p.add_argument("--results", default=None, help="results JSON (default results/export/<model file>_mediapipe.json)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.limit is not None and args.limit < 1:
        print(f"{os.path.basename(sys.argv[0])}: error: --limit must be >= 1, got {args.limit}", file=sys.stderr)
        raise SystemExit(2)
    from refbert_tf.data import read_glue_tsv
    from refbert_tf.export import read_card
    from refbert_tf.export.clients import compare_with_mediapipe, pair_task_routes
    from refbert_tf.io_utils import write_json

    card = read_card(args.model)
    examples = read_glue_tsv(card["task"], args.split, glue_dir=args.glue_dir)
    if args.limit:
        examples = examples.take(args.limit)
    name = os.path.splitext(os.path.basename(args.model))[0]
    path = args.results or os.path.join("results", "export", f"{name}_mediapipe.json")
    if examples.text_b is not None:  # a pair task: what each route does with the file
        result = pair_task_routes(args.model, examples.text_a, examples.text_b, examples.labels)
        result.update(split=args.split, command=command_line(argv))
        write_json(path, result)
        mp = result["mediapipe"]
        print(f"MediaPipe TextClassifier (classify() takes one text): "
              f"{'loads the file' if mp['loads'] else 'refuses the file: ' + mp['error']}")  # fmt: skip
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in result["interpreter"].get("metrics", {}).items())
        print(f"LiteRT interpreter with both texts packed (refbert-predict, the Android app): {result['num_pairs']} "
              f"{card['task']} {args.split} pairs, {metrics}; median {result['interpreter']['median_ms']} ms a pair")  # fmt: skip
        print(f"written to {path}")
        return
    result = compare_with_mediapipe(args.model, examples.text_a, examples.labels)
    result.update(task=card["task"], split=args.split, command=command_line(argv))
    write_json(path, result)
    acc = result.get("accuracy", {})
    print(
        f"{result['num_texts']} {card['task']} {args.split} texts: same label on {result['agreement']:.2f}%; "
        f"accuracy refbert-predict {acc.get('refbert_predict')}, MediaPipe {acc.get('mediapipe')}; "
        f"max |logit difference| {result['max_abs_logit_diff']:.2e}"
    )
    print(
        f"median ms per text: refbert-predict {result['median_ms']['refbert_predict']}, "
        f"MediaPipe {result['median_ms']['mediapipe']}"
    )
    for d in result["disagreements"]:
        print(
            f"  #{d['index']}: refbert-predict {d['refbert_predict']}, MediaPipe {d['mediapipe']}"
            f"{' (non-ASCII text)' if d['non_ascii'] else ''}: {d['text'][:100]!r}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    run(main)
