#!/usr/bin/env python
"""Bank building at scale: time and peak memory of a reference bank over a synthetic corpus (issue 6).

Example:
    python recipes/benchmark_bank.py --glue-dir ../shared/glue_data
    python recipes/benchmark_bank.py --max-anchors 4096 --shard-size 512 --kmeans-passes 1 --strategy mirrored \
        --cpu-devices 2 --results results/bank_scale_m4096.json

Makes N sentences (default 1,000,000) of 5-30 words drawn from the SST-2 training words, deterministically from
--seed and never stored; builds the bank with the default MiniLM teacher (hash + idf + keys in chunks, k-means
anchors, teacher inference over the anchors under --strategy, representations streamed to shard files in
--out-dir); picks every sentence's reference (never itself). Prints and writes (atomically) seconds per phase,
total seconds and the peak resident memory (ru_maxrss, MB) with the command line.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import command_line, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-sentences", type=int, default=1_000_000, help="N, synthetic corpus size")
    p.add_argument("--max-anchors", type=int, default=1024, help="M, anchors in the bank (k-means)")
    p.add_argument("--num-tokens", type=int, default=4, help="R, teacher positions stored per anchor")
    p.add_argument("--shard-size", type=int, default=4096, help="anchors per representation shard file")
    p.add_argument("--batch-size", type=int, default=128, help="global batch of the teacher's forward passes")
    p.add_argument("--chunk-size", type=int, default=65536, help="sentences tokenized, hashed or searched at once")
    p.add_argument(
        "--kmeans-passes",
        type=int,
        default=100,
        help="cap on k-means' mini-batch steps, in passes over the corpus (scikit-learn's default 100; "
        "1 keeps large M practical)",
    )
    p.add_argument("--seed", type=int, default=0, help="corpus and k-means seed")
    p.add_argument("--glue-dir", default=None, help="GLUE TSV directory, for the SST-2 words (default: $GLUE_DIR)")
    p.add_argument(
        "--out-dir",
        default=None,
        help="bank directory written (shards, bank.npz, bank.json); default: a temporary directory, removed",
    )
    p.add_argument(
        "--strategy",
        choices=["default", "mirrored"],
        default="default",
        help="tf.distribute strategy of the teacher inference",
    )
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="with --strategy mirrored and no GPU, split the CPU into N logical devices (demo)",
    )
    p.add_argument("--results", default="results/bank_scale.json", help="output JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    from refbert_tf.benchmark.bank_scale import run_bank_benchmark
    from refbert_tf.distribute import make_strategy
    from refbert_tf.io_utils import write_json

    strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices)  # before any other TensorFlow use
    with contextlib.ExitStack() as stack:
        out_dir = args.out_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bank_scale-"))
        report = run_bank_benchmark(
            args.num_sentences,
            args.max_anchors,
            args.num_tokens,
            args.shard_size,
            args.batch_size,
            args.chunk_size,
            out_dir,
            strategy,
            args.glue_dir,
            args.seed,
            kmeans_passes=args.kmeans_passes,
            progress=not args.no_progress,
        )
    report = {**report, "strategy": args.strategy, "command": command_line(argv)}
    write_json(args.results, report)
    print(json.dumps(report, indent=2))
    print(f"written to {args.results}")


if __name__ == "__main__":
    run(main)
