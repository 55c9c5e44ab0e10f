"""Tool environments: small virtual environments, made from pinned files shipped in ``refbert_tf/export/tools/``,
for the edge tools that cannot share TensorFlow 2.21's environment.

- ``metadata``: tflite-support 0.4.4 (it pins protobuf < 4; TensorFlow 2.21 needs protobuf >= 6), whose
  ``metadata_writers`` write TFLite Model Metadata (:mod:`refbert_tf.export.metadata`).
- ``mediapipe``: MediaPipe Tasks (``mediapipe.tasks.python.text.TextClassifier``), the runtime that Android, iOS
  and Web apps use, as a client that is not this project's code (:mod:`refbert_tf.export.clients`).

Each lives in ``<tools dir>/<name>-venv`` (``$REFBERT_TOOLS_DIR``, default ``.tools`` in the working directory),
is created on first use with ``pip install --no-deps -r <name>.txt`` (every package pinned) and re-created when the
file changes. TensorFlow-free.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

TOOLS = Path(__file__).resolve().parent / "tools"
ENVIRONMENTS = ("metadata", "mediapipe")


class ToolError(RuntimeError):
    """A tool environment could not be created, or its tool failed (the message carries the tool's own error)."""


def tools_dir() -> Path:
    """Where the tool environments live: ``$REFBERT_TOOLS_DIR``, default ``./.tools``."""
    return Path(os.environ.get("REFBERT_TOOLS_DIR") or Path.cwd() / ".tools")


def _requirements(name: str) -> Path:
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown tool environment {name!r}; known: {', '.join(ENVIRONMENTS)}")
    return TOOLS / f"{name}.txt"


def tool_python(name: str, quiet: bool = True) -> Path:
    """The Python interpreter of tool environment ``name``, creating (or updating) the environment first.

    Creating one takes about a minute and needs the package index (PyPI) once; later calls only compare the
    requirements file's checksum with the one the environment was made from.

    Raises:
        ValueError: an unknown ``name``.
        ToolError: ``venv`` or ``pip`` failed (the message ends with pip's last lines).
    """
    requirements = _requirements(name)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    env = tools_dir() / f"{name}-venv"
    python, stamp = env / "bin" / "python", env / "refbert-requirements.sha256"

    def ready():
        return python.is_file() and stamp.is_file() and stamp.read_text().strip() == digest

    if ready():
        return python
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{name}-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time (parallel exports, test workers); others wait
        if ready():
            return python
        print(f"creating the {name} tool environment in {env} from {requirements} (once)", file=sys.stderr)
        venv.EnvBuilder(clear=True, with_pip=True).create(env)
        pip = [str(python), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-r", str(requirements)]
        done = subprocess.run(pip + (["-q"] if quiet else []), capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolError(f"pip could not install {requirements} into {env}:\n{done.stderr[-2000:]}")
        _link_native_libraries(env)
        stamp.write_text(digest + "\n")
    return python


def _link_native_libraries(env: Path) -> None:
    """Put the shared libraries that wheels ship under other names where the dynamic loader finds them:
    ``libusb-package``'s ``libusb-1.0.so`` as ``<env>/lib/native/libusb-1.0.so.0`` (tflite-support links it)."""
    native = env / "lib" / "native"
    for lib in env.glob("lib/python*/site-packages/libusb_package/libusb-1.0.so"):
        native.mkdir(parents=True, exist_ok=True)
        link = native / "libusb-1.0.so.0"
        if not link.exists():
            link.symlink_to(lib)


def run_tool(name: str, script: str, args: list[str], input: str | None = None, timeout: float = 600.0) -> str:
    """Run ``refbert_tf/export/tools/<script>`` in tool environment ``name``; returns its standard output.

    Raises:
        ToolError: the tool exited non-zero or timed out (the message names the script and ends with its stderr).
    """
    python = tool_python(name)
    env = dict(os.environ)
    native = python.parent.parent / "lib" / "native"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(native), env.get("LD_LIBRARY_PATH", "")) if p)
    env.pop("PYTHONPATH", None)  # the tool must not see this environment's packages
    try:
        done = subprocess.run(
            [str(python), str(TOOLS / script), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise ToolError(f"{script} ({name} environment) did not finish in {timeout:.0f} s") from error
    if done.returncode != 0:
        raise ToolError(f"{script} ({name} environment) failed:\n{done.stderr[-3000:]}")
    return done.stdout
