"""Edge export: a distilled student as a TFLite (LiteRT) flatbuffer with the reference bank inside, plus its card.

The exported graph takes ``token_ids``, ``segment_ids``, ``padding_mask`` (int32 [1, T], T <= the card's
``max_seq_len``; the sequence dimension is dynamic, resize it per input) and returns ``logits`` (float32
[1, num_classes]; a score [1, 1] for STS-B). A RefBERT student retrieves its reference inside the graph (hashed
bucket histogram of the input, exact int32 scores against the bank's sparse score table, argmax, gather:
:mod:`refbert_tf.retrieval`), so one file carries the bank and nothing else is needed on the device.

Modules:

* :mod:`refbert_tf.export.converter`: SavedModel export, TFLite conversion in the four ``VARIANTS``
  (``float32``, ``dynamic_int8``, ``full_int8``, ``float16``), calibration data, :func:`export_student`,
  :func:`keras_parity`.
* :mod:`refbert_tf.export.card`: the model card (``<file>.json``: task, labels, vocabulary checksum and file,
  max sequence length, input/output tensors, bank size, quantization, source student, op list) and
  :func:`read_card`.

Every file is written atomically. Every public name is importable from ``refbert_tf.export`` itself, which imports
neither TensorFlow nor Keras at import time.
"""

from refbert_tf.export.card import LABEL_NAMES, CardNotFoundError, bundle_vocab, model_card, read_card, write_tflite
from refbert_tf.export.converter import (
    INPUT_NAMES,
    OUTPUT_NAME,
    VARIANTS,
    ExportError,
    bank_size_mb,
    convert,
    describe,
    export_model,
    export_saved_model,
    export_student,
    keras_parity,
    representative_examples,
    strip_bank,
)

__all__ = [
    "CardNotFoundError",
    "INPUT_NAMES",
    "LABEL_NAMES",
    "OUTPUT_NAME",
    "VARIANTS",
    "ExportError",
    "bank_size_mb",
    "bundle_vocab",
    "convert",
    "describe",
    "export_model",
    "export_saved_model",
    "export_student",
    "keras_parity",
    "model_card",
    "read_card",
    "representative_examples",
    "strip_bank",
    "write_tflite",
]
