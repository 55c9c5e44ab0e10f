#!/usr/bin/env python
"""Create (or update) the tool environments of refbert_tf.export.toolenv, as an install step.

Example:
    python recipes/make_tool_envs.py                 # metadata (tflite-support) and mediapipe
    python recipes/make_tool_envs.py metadata

Each is a virtual environment in $REFBERT_TOOLS_DIR (default ./.tools), made from the pinned file
refbert_tf/export/tools/<name>.txt with pip (about a minute each, once; the package index is needed then).
Exports and tests create a missing one themselves; this makes it beforehand, so they do not wait for pip.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from refbert_tf.cli import run  # noqa: E402
from refbert_tf.export.toolenv import ENVIRONMENTS, tool_python  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"environments to create (default all: {', '.join(ENVIRONMENTS)})"
    )
    args = p.parse_args(argv)
    for name in args.names or ENVIRONMENTS:
        if name not in ENVIRONMENTS:
            p.error(f"unknown tool environment {name!r}; known: {', '.join(ENVIRONMENTS)}")
        print(f"{name}: {tool_python(name)}")


if __name__ == "__main__":
    run(main)
