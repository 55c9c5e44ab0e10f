"""TFLite Model Metadata for exported single-text classifiers, so that standard runtimes load the file as it is.

MediaPipe Tasks' ``TextClassifier`` (Android, iOS, Web, Python) and the TFLite Task Library's ``BertNLClassifier``
read a BERT classifier's metadata: the three inputs (ids, mask, segment ids) with a ``BertTokenizer`` process unit
whose vocabulary is packed into the file, and the output with its label file. The metadata is written with
tflite-support's ``metadata_writers.bert_nl_classifier`` in its own tool environment
(:mod:`refbert_tf.export.toolenv`). TFLite packs the associated files as a zip archive appended to the
flatbuffer, so this module reads them back with :mod:`zipfile` (TensorFlow-free).

The runtime's tokenizer is fixed: lower-casing WordPiece over the packed vocabulary. :func:`check_runtime_tokenizer`
refuses a vocabulary it would misread (a cased one), instead of shipping a model fed the wrong ids.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from pathlib import Path

from refbert_tf.export.toolenv import run_tool
from refbert_tf.io_utils import atomic_path, file_sha256, write_json
from refbert_tf.tasks import TASKS

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
TENSOR_NAMES = {
    "ids_name": "serve_token_ids:0",
    "mask_name": "serve_padding_mask:0",
    "segment_name": "serve_segment_ids:0",
}  # the SavedModel signature of export_saved_model
LABEL_FILE = "labels.txt"


class MetadataError(ValueError):
    """Metadata that cannot be written (a vocabulary the runtime would misread) or that does not match its card."""


def metadata_skip_reason(card: dict) -> str | None:
    """Why a model gets no text-classifier metadata, or None when it does: MediaPipe's ``TextClassifier`` and the
    Task Library's ``BertNLClassifier`` classify one text into labels, so sentence-pair and regression tasks are
    left without (their users call the interpreter with both texts packed, as ``refbert-predict`` does)."""
    task = TASKS.get(str(card.get("task")))
    if task is not None and task.is_pair:
        return f"{task.name} is a sentence-pair task; the runtimes' text classifier reads one text"
    return None


def check_runtime_tokenizer(card: dict, vocab_path) -> None:
    """Refuse metadata that a runtime's BERT tokenizer would turn into other ids than the model was trained on.

    Args:
        card: the model card (:func:`~refbert_tf.export.card.model_card`): ``lowercase``, ``task``.
        vocab_path: the vocabulary file.

    Raises:
        MetadataError: a cased vocabulary (``lowercase`` false: the runtime lower-cases every text), a vocabulary
            without one of :data:`SPECIAL_TOKENS`, or a task of :func:`metadata_skip_reason`.
    """
    if not card.get("lowercase", True):
        raise MetadataError(
            f"{vocab_path}: a cased vocabulary; the runtime's BERT tokenizer lower-cases every text, "
            "so the model would read other ids than it was trained on. Export without metadata"
        )
    tokens = set(Path(vocab_path).read_text(encoding="utf-8").splitlines())
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise MetadataError(f"{vocab_path}: the runtime's BERT tokenizer needs {', '.join(missing)} in the vocabulary")
    reason = metadata_skip_reason(card)
    if reason:
        raise MetadataError(reason)


def write_metadata(model_path, card: dict, vocab_path) -> dict:
    """Write TFLite Model Metadata into ``model_path`` (replaced atomically) and record it in its card.

    Args:
        model_path: an exported single-text classifier ``.tflite`` (its card beside it).
        card: its model card; gains ``metadata`` (writer, packed files and their sha256, tokenizer) and
            ``file_sha256``, and is rewritten beside the model.
        vocab_path: the vocabulary to pack (its sha256 must be the card's ``vocab_sha256``).

    Returns:
        the updated card.

    Raises:
        MetadataError: see :func:`check_runtime_tokenizer`; a vocabulary whose checksum is not the card's.
        ToolError: the tool environment or the writer failed.
    """
    model_path = Path(model_path)
    check_runtime_tokenizer(card, vocab_path)
    if card.get("vocab_sha256") and file_sha256(vocab_path) != card["vocab_sha256"]:
        raise MetadataError(f"{vocab_path} is not the vocabulary of {model_path} (sha256 differs from its card)")
    with tempfile.TemporaryDirectory() as tmp:
        labels, vocab = Path(tmp) / LABEL_FILE, Path(tmp) / "vocab.txt"
        labels.write_text("".join(f"{name}\n" for name in card["labels"]), encoding="utf-8")
        vocab.write_bytes(Path(vocab_path).read_bytes())
        spec = {"name": f"refbert-tf {card['task']} {card['model']} student ({card['variant']})",
                "description": f"GLUE {card['task']} classifier distilled by refbert-tf ({card['model']}); input: "
                               "one text, lower-cased BERT WordPiece ids; output: logits, one per label",
                "version": str(card.get("source_student", "")), "author": "refbert-tf", "licenses": "Apache-2.0",
                "output_description": "logits (unnormalised): the label with the largest is the prediction",
                "vocab": str(vocab), "labels": str(labels), **TENSOR_NAMES}  # fmt: skip
        out = Path(tmp) / model_path.name
        run_tool("metadata", "write_metadata.py", ["--model", str(model_path), "--out", str(out),
                                                   "--spec", json.dumps(spec)])  # fmt: skip
        with atomic_path(model_path) as final:
            final.write_bytes(out.read_bytes())
    card = {**card, "size_mb": round(model_path.stat().st_size / 2**20, 3), "file_sha256": file_sha256(model_path),
            "metadata": {"writer": "tflite-support 0.4.4 metadata_writers.bert_nl_classifier",
                         "tokenizer": "BertTokenizer (lower-cased WordPiece)", "files": packed_files(model_path)}}  # fmt: skip
    write_json(model_path.with_suffix(".json"), card)
    return card


def packed_files(model_path) -> dict:
    """The files packed into a ``.tflite`` by its metadata: ``{name: sha256}`` ({} for a file without)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def verify_metadata(model_path, card: dict | None = None) -> dict:
    """Check that a ``.tflite``'s packed vocabulary and labels are the ones its card names.

    Returns:
        the card.

    Raises:
        MetadataError: no packed files; a packed vocabulary whose sha256 is not the card's ``vocab_sha256``; packed
            labels that are not the card's ``labels``; a card whose ``metadata.files`` checksums differ from the
            packed files (the message names the file and what to re-run).
    """
    model_path = Path(model_path)
    card = card if card is not None else json.loads(model_path.with_suffix(".json").read_text(encoding="utf-8"))
    files = packed_files(model_path)
    fix = "re-export it with recipes/export_tflite.py"
    if not files:
        raise MetadataError(f"{model_path} carries no metadata files; {fix}")
    if files.get("vocab.txt") != card.get("vocab_sha256"):
        raise MetadataError(f"{model_path}: the packed vocab.txt is not the card's vocabulary (sha256); {fix}")
    with zipfile.ZipFile(model_path) as archive:
        labels = archive.read(LABEL_FILE).decode("utf-8").split()
    if labels != list(card.get("labels") or []):
        raise MetadataError(f"{model_path}: packed labels {labels} differ from the card's {card.get('labels')}; {fix}")
    recorded = (card.get("metadata") or {}).get("files")
    if recorded is not None and recorded != files:
        raise MetadataError(
            f"{model_path.with_suffix('.json')}: the card's checksums do not match the packed files; {fix}"
        )
    return card
