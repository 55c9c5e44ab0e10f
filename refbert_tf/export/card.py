"""The model card: the JSON file beside each ``.tflite`` file, and the vocabulary that travels with the model.

The card (``<file>.json``) records task, labels (readable names, :data:`LABEL_NAMES`, beside the TSV's values),
vocabulary checksum (``vocab_sha256``) and file (``vocab-<sha256[:12]>.txt`` beside the model), max sequence
length, input/output tensors, bank size, quantization, source student and the op list. Every file is written
atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from refbert_tf import faults
from refbert_tf.io_utils import atomic_path, file_sha256, read_json, write_json

# readable class names for the tasks whose GLUE files use 0/1 (the card's "labels"; "label_values" keeps the TSV's)
LABEL_NAMES = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_paraphrase", "paraphrase"),
    "qqp": ("not_duplicate", "duplicate"),
    "wnli": ("not_entailment", "entailment"),
}


class CardNotFoundError(FileNotFoundError):
    """A ``.tflite`` file without its model card beside it."""


def model_card(
    student_meta: dict,
    variant: str,
    info: dict,
    flatbuffer_size: int,
    bank_mb: float,
    source: str,
    dev_metrics: dict | None = None,
) -> dict:
    """The JSON card written beside a ``.tflite`` file.

    Args:
        student_meta: the student's ``student.json`` (task, labels, vocab sha256, max_seq_len, lowercase...).
        variant: quantization variant.
        info: from :func:`convert`.
        flatbuffer_size: file size in bytes.
        bank_mb: float32 size of the bank constants (MB; 0 for a vanilla student).
        source: the source student directory.
        dev_metrics: GLUE dev metrics measured through the interpreter (percent).
    """
    return {
        "task": student_meta["task"],
        "labels": list(LABEL_NAMES.get(student_meta["task"], student_meta.get("labels") or [])),
        "label_values": student_meta.get("labels"),
        "model": student_meta.get("model"),
        "variant": variant,
        "quantization": {
            "float32": "none",
            "dynamic_int8": "dynamic-range int8 weights",
            "full_int8": "full-integer int8 (representative dataset calibration)",
            "float16": "float16 weights",
        }[variant],
        "integer_only": info.get("integer_only"),
        "vocab_sha256": student_meta.get("vocab_sha256"),
        "lowercase": student_meta.get("lowercase", True),
        "max_seq_len": student_meta.get("max_seq_len"),
        "vocab_size": student_meta.get("vocab_size"),
        "vocab_file": student_meta.get("vocab_file"),
        "inputs": info.get("inputs"),
        "outputs": info.get("outputs"),
        "bank": student_meta.get("bank"),
        "bank_size_mb": round(bank_mb, 3),
        "size_mb": round(flatbuffer_size / 2**20, 3),
        "source_student": str(source),
        "ops": info.get("ops"),
        "graph_changes": info.get("graph_changes"),
        "dev_metrics": dev_metrics,
    }


def write_tflite(path: str | os.PathLike, flatbuffer: bytes, card: dict) -> dict:
    """Write ``path`` and its card ``path.with_suffix('.json')`` atomically (model first); the card gains the file's
    ``size_mb`` and ``file_sha256``.

    Returns:
        the card as written.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    card = {**card, "size_mb": round(len(flatbuffer) / 2**20, 3), "file_sha256": hashlib.sha256(flatbuffer).hexdigest()}
    write_json(path.with_suffix(".json"), card)
    return card


def place_tflite(staged: str | os.PathLike, path: str | os.PathLike, card: dict) -> Path:
    """Copy a finished ``.tflite`` (``staged``, complete with metadata and measured) to ``path``, then write its
    ``card`` beside it; each file atomically, so the destination holds either the old pair, the new pair, or the new
    model beside the old card, which :class:`~refbert_tf.inference.LiteRTClassifier` refuses (``file_sha256``).

    Returns:
        ``path``.
    """
    path = Path(path)
    card = {**card, "size_mb": round(Path(staged).stat().st_size / 2**20, 3), "file_sha256": file_sha256(staged)}
    with atomic_path(path) as tmp:
        shutil.copyfile(staged, tmp)
    faults.reached("export:placed")
    write_json(path.with_suffix(".json"), card)
    return path


def bundle_vocab(meta: dict, out_dir: Path) -> dict:
    """Copy the vocabulary ``meta["vocab_path"]`` into ``out_dir`` as ``vocab-<sha256[:12]>.txt`` (atomically,
    unless that file is already there), so it travels with the model.

    Returns:
        ``meta`` with ``vocab_file`` (the copy's name) added; ``meta`` itself when it has no ``vocab_path``.
    """
    if not meta.get("vocab_path"):
        return meta
    vocab_file = out_dir / f"vocab-{meta['vocab_sha256'][:12]}.txt"
    if not vocab_file.is_file():
        with atomic_path(vocab_file) as tmp:
            shutil.copyfile(meta["vocab_path"], tmp)
    return {**meta, "vocab_file": vocab_file.name}


def read_card(model_path: str | os.PathLike) -> dict:
    """The model card beside a ``.tflite`` file.

    Raises:
        FileNotFoundError: no ``<model>.json`` beside the model (the message names it).
        CorruptArtifactError: a card that is not valid JSON (cut short).
    """
    card_path = Path(model_path).with_suffix(".json")
    if not card_path.is_file():
        raise CardNotFoundError(
            f"no model card {card_path} beside {model_path}: export the model with "
            "recipes/export_tflite.py, which writes one"
        )
    return read_json(card_path, f"re-export {model_path} with recipes/export_tflite.py, which writes both")
