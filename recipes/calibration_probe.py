#!/usr/bin/env python
"""Full-integer int8 of a distilled student calibrated at several input lengths, with the op-level evidence.

Example:
    python recipes/calibration_probe.py --task sst2 --glue-dir ../shared/glue_data --lengths 24 48

For each length: the dev metric of the full-integer file through LiteRT, and the tensors TensorFlow's
QuantizationDebugger finds worst quantized (rmse over the quantization step, on dev inputs). Writes --results.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import add_data_args, command_line, run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--model", choices=["refbert", "vanilla"], default="refbert", help="which student (refbert)")
    p.add_argument("--student-dir", default="artifacts/student", help="students live in <student-dir>/<task>/<model>")
    p.add_argument("--lengths", type=int, nargs="+", default=[24, 48], help="calibration lengths in tokens")
    p.add_argument("--results", default=None, help="JSON (default results/export/<task>_<model>_calibration.json)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if min(args.lengths) < 8:
        print(f"{os.path.basename(sys.argv[0])}: error: --lengths must be >= 8 tokens", file=sys.stderr)
        raise SystemExit(2)
    from refbert_tf.io_utils import write_json
    from refbert_tf.pipelines.probes import calibration_probe
    from refbert_tf.tasks import get_task

    task = get_task(args.task)
    run_dir = os.path.join(args.student_dir, task.name, args.model)
    keras_metric = json.load(open(os.path.join(run_dir, "student.json")))["metrics"][task.main_metric]
    rows = calibration_probe(task, run_dir, args.lengths, glue_dir=args.glue_dir, source=args.source)
    path = args.results or os.path.join("results", "export", f"{task.name}_{args.model}_calibration.json")
    write_json(path, {"task": task.name, "keras_dev_metric": keras_metric, "rows": rows, "command": command_line(argv)})
    for r in rows:
        worst = ", ".join(f"{w['op']} {w['rmse_over_scale']}" for w in r["worst_tensors"][:3])
        print(
            f"length {r['length']}: dev {r['dev_metric']:.2f} (drop {keras_metric - r['dev_metric']:+.2f}); worst: {worst}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    run(main)
