"""Atomic file writes, so an interrupted run never leaves a half-written model or result; file checksums; reading
artifacts back with an error that names a corrupt file and what to do about it.

A file is written under a temporary name in its own directory, ``.partial-<pid>-<name>-<random><suffix>``, and
renamed over its destination when complete. A process killed mid-write leaves only such a hidden ``.partial-``
file; :func:`remove_stale_partials` deletes those whose writer is no longer running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

PARTIAL_PREFIX = ".partial-"
_PARTIAL = re.compile(r"^\.partial-(\d+)-")


class CorruptArtifactError(ValueError):
    """A saved artifact (model, weights, bank shard, card, result) that cannot be read back: truncated, cut short or
    not what its checksum says. The message names the file and what to delete or re-run."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary name keeps ``path``'s suffix (Keras insists on ``.keras`` / ``.weights.h5``).
    On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: final destination file.
    Yields:
        ``pathlib.Path`` of the temporary file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    prefix = f"{PARTIAL_PREFIX}{os.getpid()}-{path.stem.split('.')[0]}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as keras.Model.save want to create the file themselves
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``.partial-<pid>-`` files under ``directory`` (recursively) left by writers that are no longer
    running (a run killed mid-write). Files of live processes are left alone.

    Returns:
        the paths removed.
    """
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.rglob(f"{PARTIAL_PREFIX}*"):
        match = _PARTIAL.match(path.name)
        if match and path.is_file() and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_json(path: str | os.PathLike, remedy: str = "delete it and re-run the command that wrote it"):
    """Parse the JSON file ``path``.

    Raises:
        FileNotFoundError: no such file.
        CorruptArtifactError: the file is not valid UTF-8 JSON (cut short, overwritten): the message names the file,
            the line and ``remedy``.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CorruptArtifactError(f"{path} is corrupt or cut short (line {e.lineno}: {e.msg}); {remedy}") from None
    except UnicodeDecodeError:
        raise CorruptArtifactError(f"{path} is not UTF-8 text (corrupt); {remedy}") from None


def load_artifact(path: str | os.PathLike, loader, remedy: str, sha256: str | None = None):
    """``loader(path)``, with any failure to read the file reported as :class:`CorruptArtifactError`.

    Args:
        path: the file.
        loader: callable reading it (``keras.saving.load_model``, ``model.load_weights``, ``np.load``...).
        remedy: what the user should delete or re-run, appended to the message.
        sha256: when given, the file must have this checksum (checked first: a truncated file can still parse).

    Raises:
        FileNotFoundError: no such file.
        CorruptArtifactError: the checksum differs or the loader fails on the file's contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {remedy}")
    if sha256 is not None and file_sha256(path) != sha256:
        raise CorruptArtifactError(
            f"{path} does not match the sha256 recorded when it was written (truncated or replaced); {remedy}"
        )
    try:
        return loader(path)
    except Exception as e:  # BadZipFile, h5py's OSError, NumPy's ValueError, Keras' own errors...
        raise CorruptArtifactError(f"{path} cannot be read ({type(e).__name__}: {e}); {remedy}") from e


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (temp file + ``os.replace``).

    Returns:
        the destination path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model_dir(out_dir, model, model_file: str, vocab_path) -> Path:
    """Write ``out_dir/model_file`` (``model.save``, a ``.keras`` archive) and ``out_dir/vocab.txt`` (a copy of
    ``vocab_path``), each atomically; ``out_dir`` is created. The common part of saving a teacher or a student.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / model_file) as tmp:
        model.save(tmp)
    with atomic_path(out_dir / "vocab.txt") as tmp:
        shutil.copyfile(vocab_path, tmp)
    return out_dir
