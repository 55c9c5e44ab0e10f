"""Conversion of a Keras classifier to TFLite (LiteRT) flatbuffers, in four quantization variants.

Path: Keras 3 model -> ``keras.export.ExportArchive`` SavedModel (one ``serve`` endpoint) ->
``tf.lite.TFLiteConverter.from_saved_model`` with ``TFLITE_BUILTINS`` only. Keras' own ``model.export(format=
"litert")`` always enables SELECT_TF_OPS (Flex), which the LiteRT Android runtime lacks, so it is not used.
tensorflow-model-optimization works on tf_keras models only; quantization here is the converter's own:

* ``float32``: no optimization.
* ``dynamic_int8``: dynamic-range quantization (int8 weights, float activations; ``Optimize.DEFAULT``).
* ``full_int8``: full-integer quantization, activations calibrated on a representative dataset of real training
  examples; integer-only kernels (``TFLITE_BUILTINS_INT8``) when every op has one, else float fallback for the
  rest (recorded in the card as ``integer_only``).
* ``float16``: float16 weights (``supported_types=[tf.float16]``), dequantized to float32 at load on CPU.

This module imports neither TensorFlow nor Keras at import time (``refbert-predict`` and ``recipes/benchmark.py
--report-only`` import :mod:`refbert_tf.export` without needing them): the functions that convert import them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from refbert_tf import faults
from refbert_tf.export.card import bundle_vocab, model_card, place_tflite, write_tflite
from refbert_tf.export.metadata import metadata_skip_reason, write_metadata
from refbert_tf.inference import LiteRTClassifier
from refbert_tf.io_utils import remove_stale_partials
from refbert_tf.metrics import compute_metrics, predictions_from_outputs
from refbert_tf.tasks import get_task

VARIANTS = ("float32", "dynamic_int8", "full_int8", "float16")
GRAPH_CHANGES_SKIPPED = ("full_int8",)  # variants exported without refbert_tf.export.graph_changes
INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
OUTPUT_NAME = "logits"


class ExportError(RuntimeError):
    """Raised when a conversion fails or produces ops outside TFLite's builtin set."""


def export_saved_model(
    model,
    directory: str | os.PathLike,
    max_seq_len: int | None = None,
    graph_changes: bool = True,
    input_length: int | None = None,
) -> Path:
    """Write ``model`` as a SavedModel with one ``serve`` endpoint on int32 [1, None] inputs.

    With ``max_seq_len`` the endpoint truncates longer inputs as the tokenizer does: the first ``max_seq_len - 1``
    positions and the last one (the closing ``[SEP]`` of a packed text), so a runtime that packs a whole text
    without truncating it (MediaPipe's BERT preprocessor, for dynamic-shape inputs) gets the logits of the text
    ``refbert-predict`` would have packed. Shorter inputs pass unchanged.

    Args:
        model: a Keras model taking ``{"token_ids", "segment_ids", "padding_mask"}`` int32 [B, T] and returning
            logits [B, C] (a RefBERT student retrieves its reference in-graph when no ``reference_index`` is
            given).
        directory: output directory (created).
        max_seq_len: longest input (tokens) the endpoint passes on (None: all).
        input_length: a fixed input length (a fixed-shape file, [1, input_length]); None: [1, None].
        graph_changes: trace with :func:`refbert_tf.export.graph_changes.export_graph_changes` (the same logits,
            without the ``SELECT_V2`` / ``BROADCAST_TO`` ops XNNPACK does not delegate).

    Returns:
        the directory.
    """
    import keras  # lazy: refbert_tf.export stays TensorFlow-free at import (refbert-predict, --report-only)
    import tensorflow as tf  # lazy: refbert_tf.export stays TensorFlow-free at import

    from refbert_tf.export.graph_changes import export_graph_changes  # lazy: imports keras, as above

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec([1, input_length], tf.int32, name=name) for name in INPUT_NAMES]

    def serve(token_ids, segment_ids, padding_mask):
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
        if max_seq_len:  # positions 0 .. m-2 and n-1, m = min(n, max_seq_len): all n of them when n <= max_seq_len
            n = tf.shape(token_ids)[1]
            keep = tf.concat([tf.range(tf.minimum(n, max_seq_len) - 1), [n - 1]], axis=0)
            inputs = {k: tf.gather(v, keep, axis=1) for k, v in inputs.items()}
        return {OUTPUT_NAME: model(inputs, training=False)}

    # a RefBERT student's bank as export constants: sparse retrieval table, projection folded in
    constants = model.export_constants() if hasattr(model, "export_constants") else contextlib.nullcontext()
    changes = export_graph_changes(model) if graph_changes else contextlib.nullcontext()
    with constants, changes:
        archive.add_endpoint("serve", serve, input_signature=spec)
        archive.write_out(str(directory), verbose=False)
    return Path(directory)


def representative_examples(
    features: dict, num_examples: int = 300, length: int | None = None, seed: int = 0
) -> list[dict]:
    """A representative dataset for full-integer calibration: real training examples, batch 1, no padding.

    Every example has the same ``length`` (tokens) and no padding: the converter's calibrator fails on inputs of
    varying length ("shapes [1,10,32] and [1,11,32] are not broadcastable", TF 2.21), and padding must not be
    used either, because the attention mask adds a large negative number to padded key positions, which then
    sets the int8 range of the attention scores and crushes every real score to one value. Examples at least
    ``length`` long are truncated to it, keeping their final ``[SEP]``.

    Args:
        features: encoded training examples (ragged ``token_ids`` / ``segment_ids`` from the tokenizer).
        num_examples: how many (sampled without replacement, fixed seed).
        length: calibration length; None: the longest multiple of 8, up to the 99th percentile of the training
            lengths rounded up, that ``num_examples`` training examples reach (at least 8). Activation ranges
            calibrated on short inputs clip those of longer ones: an SST-2 student calibrated at its training
            lengths' 75th percentile lost several points of dev accuracy that calibration at 48 tokens kept
            (docs/export.md).

    Returns:
        list of dicts of int32 [1, length] arrays (``token_ids``, ``segment_ids``, ``padding_mask``).

    Raises:
        ValueError: if no training example is ``length`` tokens long.
    """
    lengths = features["token_ids"].row_lengths().numpy()
    if length is None:
        cap = int(np.ceil(np.percentile(lengths, 99) / 8) * 8)
        enough = min(num_examples, lengths.size)
        length = next((n for n in range(cap, 7, -8) if np.sum(lengths >= n) >= enough), 8)
        length = min(max(8, length), int(lengths.max()))
    candidates = np.flatnonzero(lengths >= length)
    if candidates.size == 0:
        raise ValueError(f"no training example has {length} tokens for calibration")
    rows = np.sort(
        np.random.default_rng(seed).choice(candidates, size=min(num_examples, candidates.size), replace=False)
    )
    out = []
    for i in rows:
        ids = features["token_ids"][int(i)].numpy().astype(np.int32)
        segs = features["segment_ids"][int(i)].numpy().astype(np.int32)
        cut = np.concatenate([ids[: length - 1], ids[-1:]])  # keep the closing [SEP]
        out.append(
            {"token_ids": cut[None], "segment_ids": segs[:length][None], "padding_mask": np.ones((1, length), np.int32)}
        )
    return out


def convert(
    saved_model_dir: str | os.PathLike,
    variant: str,
    representative: list[dict] | None = None,
    per_channel: bool = True,
) -> tuple[bytes, dict]:
    """Convert a SavedModel (from :func:`export_saved_model`) to a TFLite flatbuffer.

    Args:
        saved_model_dir: the SavedModel directory.
        variant: one of ``VARIANTS``.
        representative: calibration inputs (required for ``full_int8``), see :func:`representative_examples`.
        per_channel: int8 weights with one scale per output channel (the converter's default); False: one scale
            per tensor (a lever measured in docs/benchmarks.md).

    Returns:
        ``(flatbuffer bytes, info)`` with ``info`` = ``{"variant", "integer_only" (full_int8), "ops" (sorted
        builtin op names)}``.

    Raises:
        ValueError: unknown variant, or ``full_int8`` without a representative dataset.
        ExportError: the converter failed, or the model needs ops outside TFLite's builtins.
    """
    import tensorflow as tf  # lazy: refbert_tf.export stays TensorFlow-free at import

    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if variant == "full_int8" and not representative:
        raise ValueError("full_int8 needs a representative dataset of real examples (calibration)")

    def make_converter():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serve"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not per_channel:
            converter._experimental_disable_per_channel = True
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if variant == "full_int8":
            converter.representative_dataset = lambda: iter(representative)
        return converter

    info = {"variant": variant}
    try:
        if variant == "full_int8":
            converter = make_converter()
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            try:
                flatbuffer = converter.convert()
                info["integer_only"] = True
            except Exception:  # an op without an int8 kernel: let it run in float
                converter = make_converter()
                converter.target_spec.supported_ops = [
                    tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                    tf.lite.OpsSet.TFLITE_BUILTINS,
                ]
                flatbuffer = converter.convert()
                info["integer_only"] = False
        else:
            flatbuffer = make_converter().convert()
    except Exception as e:
        raise ExportError(f"TFLite conversion of {saved_model_dir} to {variant} failed: {e}") from e
    info.update(describe(flatbuffer))
    foreign = [op for op in info["ops"] if op.startswith("Flex") or op == "CUSTOM" or op.startswith("Custom")]
    if foreign:
        raise ExportError(f"{variant} model needs non-builtin ops {foreign}: only TFLITE_BUILTINS are allowed")
    return flatbuffer, info


def describe(flatbuffer: bytes) -> dict:
    """What a TFLite model holds, read back with the ``ai_edge_litert`` interpreter.

    Returns:
        ``{"ops": sorted distinct op names, "inputs": [{"name", "tensor", "dtype", "shape"}] in the model's own
        input order (``tensor`` is the flatbuffer tensor name tools such as ``benchmark_model`` use; ``shape``
        has -1 for the dynamic sequence length), "outputs": [...] likewise}``.
    """
    from ai_edge_litert.interpreter import Interpreter  # lazy: the LiteRT runtime loads only to describe a model

    interpreter = Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner("serve")
    found = {}
    for kind, details, named in (
        ("inputs", interpreter.get_input_details(), runner.get_input_details()),
        ("outputs", interpreter.get_output_details(), runner.get_output_details()),
    ):
        key_of = {v["name"]: k for k, v in named.items()}  # flatbuffer tensor name -> signature key
        found[kind] = [
            {
                "name": key_of.get(d["name"], d["name"]),
                "tensor": d["name"],
                "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(x) for x in d["shape_signature"]],
            }
            for d in details
        ]
    return {"ops": sorted({d["op_name"] for d in interpreter._get_ops_details()}), **found}


def strip_bank(student):
    """The same RefBERT student without its reference path (no bank, no projection): the ``refbert_no_bank``
    model that measures the bank's share of file size and latency. Weights are copied; outputs differ.

    Raises:
        ValueError: if ``student`` has no bank.
    """
    from refbert_tf.models.student import RefBertStudent, dummy_inputs  # lazy: imports keras (TensorFlow)

    if not student.uses_reference:
        raise ValueError("the student has no reference bank to strip")
    config = {**student.config_values, "bank_config": None, "dense_config": None}
    plain = RefBertStudent(**config)
    plain(dummy_inputs())
    skip = {"reference_bank", "reference_projection", "reference_projection_norm", "dense_reference_bank",
            "query_projection", "late_fusion"}  # fmt: skip
    for layer in student.layers:
        if layer.name not in skip and layer.weights:
            plain.get_layer(layer.name).set_weights(layer.get_weights())
    return plain


def bank_size_mb(student) -> float:
    """Size of the constants a RefBERT student's bank adds to an exported float32 file, in MB: the projected
    representations ``P(ref)`` float32 [M, R, d_student], the mask float32 [M, R] and the sparse retrieval table
    (bucket, anchor, value: 3 int32 per non-zero), as :meth:`RefBertStudent.export_constants` traces them; with
    dense retrieval the anchors' keys [M, D] and teacher probabilities [M, C] float32 instead of the table.
    0 for a vanilla student."""
    if not student.uses_reference:
        return 0.0
    values = 0
    if student.dense_bank is not None:
        dense = student.dense_bank
        values += dense.num_anchors * (dense.key_dim + dense.num_classes)
    if student.bank is not None:
        with student.export_constants():
            bank = student.bank
            values += bank.projected_representations.size + bank.num_anchors * bank.num_tokens
            if student.dense_bank is None:  # the lexical score table (dense retrieval does not read it)
                values += 3 * bank.scorer.sparse_table[0].size
    return values * 4 / 2**20


def export_model(
    model,
    meta: dict,
    out_dir: str | os.PathLike,
    variants=VARIANTS,
    representative=None,
    dev_features: dict | None = None,
    dev_labels=None,
    source: str = "",
    bank_mb: float = 0.0,
    progress: bool = True,
    metadata: bool = True,
) -> list[dict]:
    """Export any Keras classifier on ``{"token_ids", "segment_ids", "padding_mask"}`` to
    ``<out_dir>/<task>_<meta["model"]>_<variant>.tflite`` (+ card), one file per variant.

    Args:
        model: the Keras model (student, teacher, or a random BERT-base-shaped classifier).
        meta: card facts: ``task`` and ``model`` (required), ``labels``, ``vocab_sha256``, ``max_seq_len``...
        out_dir: destination directory.
        variants: subset of ``VARIANTS``.
        representative: calibration inputs for ``full_int8`` (:func:`representative_examples`).
        dev_features, dev_labels: when given, each file's GLUE dev metrics are measured through the LiteRT
            interpreter and written into its card.
        source: where the model came from (recorded in the card).
        bank_mb: float32 size of the reference bank inside the model (MB).
        metadata: write TFLite Model Metadata into single-text classifiers (:mod:`refbert_tf.export.metadata`),
            so standard runtimes (MediaPipe Tasks) load them; other tasks get the reason in the card.

    Returns:
        the cards written, each with its ``path``.

    Raises:
        ExportError, ValueError: from :func:`convert`.
        MetadataError: metadata asked for a vocabulary the runtime's tokenizer would misread (a cased one).
        ToolError: the metadata tool environment could not be made or failed.
    """
    task = get_task(meta["task"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)  # temporary files of an export that was killed
    meta = bundle_vocab(meta, out_dir)  # the vocabulary travels with the model: vocab-<sha256[:12]>.txt beside it
    cards = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = {}
        for variant in variants:
            # full-integer files keep Keras' own graph: with the export-time graph changes the calibrated
            # attention scores gain a requantization and SST-2's RefBERT student lost a point (docs/export.md)
            changes = variant not in GRAPH_CHANGES_SKIPPED
            if changes not in saved:
                saved[changes] = export_saved_model(
                    model, Path(tmp) / f"saved_model_{changes}", meta.get("max_seq_len"), graph_changes=changes
                )
            flatbuffer, info = convert(saved[changes], variant, representative if variant == "full_int8" else None)
            info["graph_changes"] = changes
            path = out_dir / f"{task.name}_{meta['model']}_{variant}.tflite"
            staged = Path(tmp) / path.name  # finished (metadata, dev metrics) here, then put in place whole
            card = write_tflite(staged, flatbuffer, model_card(meta, variant, info, len(flatbuffer), bank_mb, source))
            skip = metadata_skip_reason(card) if metadata else "not asked for (--no-metadata)"
            if skip is None and meta.get("vocab_file"):
                card = write_metadata(staged, card, out_dir / meta["vocab_file"])
            else:
                card["metadata"] = {"skipped": skip or "no vocabulary file to pack"}
            if dev_features is not None:  # measured on the final file, metadata included
                outputs = LiteRTClassifier(staged).predict_features(dev_features, progress=progress)
                card["dev_metrics"] = compute_metrics(task, predictions_from_outputs(task, outputs), dev_labels)
            faults.reached("export:staged")
            place_tflite(staged, path, card)
            cards.append({**card, "path": str(path)})
    return cards


def export_student(
    student_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    variants=VARIANTS,
    train_features: dict | None = None,
    dev_features: dict | None = None,
    dev_labels=None,
    without_bank: bool = False,
    num_representative: int = 300,
    progress: bool = True,
    metadata: bool = True,
) -> list[dict]:
    """Export a saved student to ``<out_dir>/<task>_<model>_<variant>.tflite`` (+ card) in each variant.

    Args:
        student_dir: a run directory of ``recipes/distill_glue.py`` (``student.keras``, ``student.json``).
        out_dir: destination directory.
        variants: subset of ``VARIANTS``.
        train_features: encoded training examples (calibration for ``full_int8``).
        dev_features, dev_labels: encoded dev set; when given, each file's dev metrics are measured through the
            LiteRT interpreter and written into its card.
        without_bank: export the student with its reference path removed (:func:`strip_bank`), named
            ``<task>_refbert_no_bank_<variant>``: for measuring the bank's share only.
        num_representative: calibration examples for ``full_int8``.
        metadata: TFLite Model Metadata in single-text classifiers (see :func:`export_model`).

    Returns:
        the cards written (each with its ``path``).

    Raises:
        FileNotFoundError: no student in ``student_dir``.
        ExportError, ValueError: from :func:`convert`.
    """
    from refbert_tf.models.student import load_student  # lazy: imports keras (TensorFlow)

    student, meta = load_student(student_dir)
    meta = {
        **meta,
        "vocab_size": student.config_values["vocabulary_size"],
        "vocab_path": str(Path(student_dir) / "vocab.txt"),
    }
    if without_bank:
        student = strip_bank(student)
        meta = {**meta, "model": "refbert_no_bank", "bank": None}
    representative = representative_examples(train_features, num_representative) if train_features else None
    return export_model(
        student,
        meta,
        out_dir,
        variants,
        representative,
        dev_features,
        dev_labels,
        source=str(student_dir),
        bank_mb=bank_size_mb(student),
        progress=progress,
        metadata=metadata,
    )


def compare_with_keras(model, predict, features: dict, num_examples: int = 200) -> dict:
    """Compare a converted file's ``predict(token_ids, segment_ids) -> logits [C]`` with the Keras ``model`` it
    came from, example by example (batch 1, mask all ones).

    Args:
        model: the Keras model (a RefBERT student retrieves in-graph, as exported).
        predict: the file's runner (:class:`LiteRTClassifier` or ONNX Runtime's, ``.predict``).
        features: encoded examples (ragged ``token_ids`` / ``segment_ids``); the first ``num_examples`` are used.

    Returns:
        ``{"num_examples", "max_abs_diff" (logits), "prediction_agreement" (fraction, 0..1)}``.
    """
    n = min(num_examples, int(features["token_ids"].nrows()))
    diffs, agree = [], []
    for i in range(n):
        ids = features["token_ids"][i].numpy().astype(np.int32)
        segs = features["segment_ids"][i].numpy().astype(np.int32)
        inputs = {"token_ids": ids[None], "segment_ids": segs[None], "padding_mask": np.ones_like(ids)[None]}
        keras_out = np.asarray(model(inputs, training=False))[0]
        file_out = predict(ids, segs)
        diffs.append(float(np.max(np.abs(keras_out - file_out))))
        agree.append(keras_out.shape[-1] == 1 or int(np.argmax(keras_out)) == int(np.argmax(file_out)))
    return {"num_examples": n, "max_abs_diff": max(diffs), "prediction_agreement": float(np.mean(agree))}


def keras_parity(student, tflite_path, features: dict, num_examples: int = 200) -> dict:
    """:func:`compare_with_keras` for a ``.tflite`` file (through :class:`LiteRTClassifier`)."""
    return compare_with_keras(student, LiteRTClassifier(tflite_path).predict, features, num_examples)
