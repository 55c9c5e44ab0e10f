"""Atomic file writes, so an interrupted run never leaves a half-written model or result; file checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem.split('.')[0]}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as keras.Model.save want to create the file themselves
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
