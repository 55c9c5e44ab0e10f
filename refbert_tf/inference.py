"""Running an exported ``.tflite`` student with the LiteRT interpreter (``ai_edge_litert``), one input at a time.

Inputs are checked before they reach the interpreter, so a bad file or a bad id gives a clear Python error rather
than a failed ``GATHER`` inside a kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from refbert_tf.io_utils import file_sha256, read_json

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier at bytes 4..8 of every TFLite model


class ModelFileError(ValueError):
    """Raised for a missing file or a file that is not a TFLite flatbuffer (the message names it)."""


def check_tflite_file(path: str | os.PathLike) -> Path:
    """Return ``path`` if it is a TFLite flatbuffer, else raise :class:`ModelFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    return path


class LiteRTClassifier:
    """A ``.tflite`` student (from :mod:`refbert_tf.export`) behind a batch-1 ``predict`` with input checks.

    Args:
        model_path: the ``.tflite`` file.
        num_threads: interpreter threads (XNNPACK on CPU).
        vocab_size: token ids must be in ``[0, vocab_size)`` (None: read from the model's embedding table when
            possible, else unchecked).
        max_seq_len: longest accepted input (None: the card's, if there is one).

    Raises:
        ModelFileError: not a file, not a TFLite flatbuffer, or not the file its card's ``file_sha256`` names.
        CorruptArtifactError: a card beside the model that is not valid JSON.
    """

    def __init__(self, model_path, num_threads: int = 1, vocab_size: int | None = None, max_seq_len: int | None = None):
        from ai_edge_litert.interpreter import Interpreter  # lazy: LiteRT loads when a model is opened

        self.path = check_tflite_file(model_path)
        card_path = self.path.with_suffix(".json")
        self.card = None
        if card_path.is_file():
            self.card = read_json(card_path, f"re-export {self.path} with recipes/export_tflite.py")
            recorded = self.card.get("file_sha256")
            if recorded and file_sha256(self.path) != recorded:
                raise ModelFileError(
                    f"{self.path} is not the file its card {card_path.name} describes (sha256 differs: truncated, or "
                    "replaced by an export that did not finish); re-export it with recipes/export_tflite.py"
                )
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except Exception as e:  # a corrupt flatbuffer behind a valid header
            raise ModelFileError(f"{self.path}: the LiteRT interpreter cannot load it: {e}") from e
        self.runner = self.interpreter.get_signature_runner("serve")
        if max_seq_len is None and self.card:
            max_seq_len = self.card.get("max_seq_len")
        self.max_seq_len = max_seq_len
        self.vocab_size = vocab_size if vocab_size is not None else self._embedding_rows()

    def _embedding_rows(self) -> int | None:
        """Rows of the token embedding table (the vocabulary size), found by its tensor name."""
        for detail in self.interpreter.get_tensor_details():
            if "token_embedding" in detail["name"] and len(detail["shape"]) == 2:
                return int(detail["shape"][0])
        return None

    def predict(self, token_ids, segment_ids=None) -> np.ndarray:
        """Logits of one packed input.

        Args:
            token_ids: int [T] (``[CLS] ... [SEP]``, unpadded).
            segment_ids: int [T] (zeros when None).

        Returns:
            float32 [num_outputs].

        Raises:
            ValueError: empty input, T over ``max_seq_len``, an id outside the vocabulary, or mismatched lengths.
        """
        ids = np.asarray(token_ids, np.int32).reshape(-1)
        segs = np.zeros_like(ids) if segment_ids is None else np.asarray(segment_ids, np.int32).reshape(-1)
        if ids.size == 0:
            raise ValueError("empty input: at least [CLS] and [SEP] are needed")
        if segs.shape != ids.shape:
            raise ValueError(f"token_ids has {ids.size} entries but segment_ids has {segs.size}")
        if self.max_seq_len and ids.size > self.max_seq_len:
            raise ValueError(
                f"input of {ids.size} tokens is longer than the model's max_seq_len "
                f"{self.max_seq_len} ({self.path}); truncate it first"
            )
        if self.vocab_size is not None and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids[(ids < 0) | (ids >= self.vocab_size)][0])
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size}) of {self.path}")
        if segs.min() < 0 or segs.max() > 1:
            raise ValueError("segment ids must be 0 or 1")
        out = self.runner(token_ids=ids[None, :], segment_ids=segs[None, :], padding_mask=np.ones_like(ids)[None, :])
        return np.asarray(out["logits"][0], np.float32)

    def predict_features(self, features: dict, progress: bool = False) -> np.ndarray:
        """Logits [N, num_outputs] of encoded examples (ragged ``token_ids`` / ``segment_ids``), in order."""
        ids, segs = features["token_ids"], features["segment_ids"]
        n = int(ids.nrows())
        return np.stack(
            [
                self.predict(ids[i].numpy(), segs[i].numpy())
                for i in tqdm(range(n), desc=self.path.name, disable=not progress)
            ]
        )
