"""Every model of the side-by-side benchmark, exported once: TFLite variants, ONNX files checked against Keras.

Models (``MODELS``): a BERT-base-shaped classifier (12 layers, hidden 768, 12 heads, FFN 3072, random weights:
latency and size do not depend on the weights), the fine-tuned teacher, the vanilla and the RefBERT students, and
the RefBERT student without its bank (:func:`refbert_tf.export.strip_bank`). Each is exported in every variant of
:data:`refbert_tf.export.VARIANTS` (each model in its own process: ``TFLiteConverter.convert`` leaks memory per
call), its dev metric measured through the LiteRT interpreter where it means something (not for the random
BERT-base shape, nor for the student stripped of its bank). The teacher and the two students (``ONNX_MODELS``) are
also converted from the same SavedModel to ONNX (:mod:`refbert_tf.export.onnx`, float32 and dynamic int8) and
checked against their Keras model on 200 dev examples before any timing; their dev metric is measured through
ONNX Runtime too. The teacher's export also writes the dev set's packed lengths (real traffic).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from refbert_tf.tasks import get_task

MODELS = ("bert_base_shape", "teacher", "vanilla", "refbert", "refbert_no_bank")
ONNX_MODELS = ("teacher", "vanilla", "refbert")
BERT_BASE_SHAPE = dict(num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072, max_sequence_length=512)


def _load_model(model: str, task, paths: dict, tokenizer):
    """The Keras model of ``model`` (child process): ``(keras_model, student_dir or None)``."""
    import keras  # lazy: TensorFlow; recipes/benchmark.py --report-only runs without it
    import keras_hub  # lazy: as above

    from refbert_tf.export import strip_bank  # lazy: as above
    from refbert_tf.models.backbone import BertBackbone  # lazy: as above
    from refbert_tf.models.student import load_student  # lazy: as above

    if model in ("vanilla", "refbert", "refbert_no_bank"):
        student_dir = paths["refbert" if model == "refbert_no_bank" else model]
        student, _ = load_student(student_dir)
        return (strip_bank(student) if model == "refbert_no_bank" else student), student_dir
    keras.utils.set_random_seed(0)
    backbone = BertBackbone(vocabulary_size=tokenizer.vocab_size, hidden_activation="gelu", **BERT_BASE_SHAPE)
    shaped = keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=task.num_classes, preprocessor=None, activation=None
    )
    return shaped, None


def _export_one(
    model: str, task_name: str, paths: dict, out_dir: str, variants, onnx_variants, glue_dir, num_representative
):
    """Export one model (runs in a child process): its TFLite ``variants``, its ONNX ``onnx_variants`` (parity
    checked, dev metric measured), ``<task>_<model>_arch.json`` and, for the teacher, the dev set's lengths."""
    from refbert_tf.benchmark.flops import architecture_of  # lazy: with TensorFlow, as below
    from refbert_tf.benchmark.traffic import dev_lengths  # lazy: as below
    from refbert_tf.data import load_encoded_splits  # lazy: TensorFlow; --report-only runs without it
    from refbert_tf.export import export_model, export_student, representative_examples  # lazy: as above
    from refbert_tf.io_utils import write_json  # lazy: as above
    from refbert_tf.models.teacher import load_teacher  # lazy: as above

    task = get_task(task_name)
    out = Path(out_dir)
    teacher, tokenizer, teacher_meta = load_teacher(paths["teacher"], task=task)
    max_len = teacher_meta["max_seq_len"]
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, glue_dir=glue_dir)
    if model == "teacher":
        keras_model, student_dir = teacher, None
        write_json(out / f"{task.name}_dev_lengths.json", {"lengths": dev_lengths(task, tokenizer, max_len, glue_dir)})
    else:
        keras_model, student_dir = _load_model(model, task, paths, tokenizer)
    write_json(out / f"{task.name}_{model}_arch.json", architecture_of(keras_model).as_dict())
    if onnx_variants:
        _export_onnx_checked(keras_model, task, model, out, onnx_variants, dev_f, dev.labels, max_len)
    if not variants:
        return None
    if student_dir is not None:
        no_bank = model == "refbert_no_bank"
        return export_student(
            student_dir,
            out_dir,
            variants,
            train_features=train_f,
            dev_features=None if no_bank else dev_f,
            dev_labels=dev.labels,
            without_bank=no_bank,
            num_representative=num_representative,
            progress=False,
        )
    meta = {
        "task": task.name,
        "labels": list(task.labels),
        "vocab_sha256": tokenizer.vocab_sha256,
        "lowercase": tokenizer.lowercase,
        "max_seq_len": max_len,
        "vocab_size": tokenizer.vocab_size,
        "vocab_path": str(tokenizer.vocab_path),
    }
    representative = representative_examples(train_f, num_representative)
    if model == "teacher":
        return export_model(
            teacher,
            {**meta, "model": "teacher"},
            out_dir,
            variants,
            representative,
            dev_f,
            dev.labels,
            source=str(paths["teacher"]),
            progress=False,
        )
    return export_model(
        keras_model,
        {**meta, "model": "bert_base_shape"},
        out_dir,
        variants,
        representative,
        source="random weights, BERT-base shape (12L/768H/12 heads/FFN 3072)",
    )


# parity required of an ONNX file before it is timed: float32 matches the Keras logits; int8 keeps the predictions
ONNX_PARITY = {
    "float32": {"max_abs_diff": 1e-3, "min_agreement": 1.0},
    "dynamic_int8": {"max_abs_diff": None, "min_agreement": 0.9},
}


def _export_onnx_checked(keras_model, task, model, out: Path, variants, dev_f, dev_labels, max_len):
    """ONNX files of one model with their cards ``<file>.json``: parity on 200 dev examples (refused beyond
    :data:`ONNX_PARITY`) and the dev metric through ONNX Runtime."""
    import numpy as np  # lazy: in the child, with the rest

    from refbert_tf.export.onnx import OnnxClassifier, check_parity, export_onnx, onnx_parity  # lazy: TensorFlow
    from refbert_tf.io_utils import write_json  # lazy: as above
    from refbert_tf.metrics import compute_metrics, predictions_from_outputs  # lazy: as above

    files = export_onnx(keras_model, out, f"{task.name}_{model}", max_len, variants)
    for variant, path in files.items():
        parity = check_parity(onnx_parity(keras_model, path, dev_f), path, **ONNX_PARITY[variant])
        runner = OnnxClassifier(path)
        ids, segs = dev_f["token_ids"], dev_f["segment_ids"]
        outputs = np.stack([runner.predict(ids[i].numpy(), segs[i].numpy()) for i in range(int(ids.nrows()))])
        metrics = compute_metrics(task, predictions_from_outputs(task, outputs), dev_labels)
        card = {
            "task": task.name,
            "model": model,
            "variant": variant,
            "runtime": "onnxruntime",
            "parity": parity,
            "dev_metrics": metrics,
            "size_mb": round(path.stat().st_size / 2**20, 3),
        }
        write_json(Path(str(path) + ".json"), card)


def export_all(
    task: str,
    paths: dict,
    out_dir,
    variants,
    glue_dir=None,
    num_representative: int = 300,
    models=MODELS,
    reuse: bool = True,
    log=print,
    onnx_variants=("float32", "dynamic_int8"),
) -> dict:
    """Export every model of ``models`` in every variant (and ONNX for :data:`ONNX_MODELS`), one process each.

    Args:
        task: GLUE task.
        paths: ``{"teacher": dir, "vanilla": dir, "refbert": dir}`` (fine-tuned teacher, student runs).
        out_dir: where the ``.tflite`` / ``.onnx`` files and cards go.
        variants: TFLite variants (``bert_base_shape``: float32 only, the reference point).
        reuse: keep files whose card already exists (delete them to re-export).
        onnx_variants: ONNX variants for :data:`ONNX_MODELS` (empty: no ONNX).

    Returns:
        ``{(model, runtime, variant): card}`` with ``card["path"]`` the file; ``card["arch"]`` the architecture.

    Raises:
        RuntimeError: an export failed (the child's exception is re-raised with its message).
        refbert_tf.export.onnx.OnnxExportError: an ONNX file failed its parity check (the message gives figures).
    """

    task_name = get_task(task).name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cards = {}
    context = multiprocessing.get_context("spawn")
    for model in models:
        model_variants = ["float32"] if model == "bert_base_shape" else list(variants)
        model_onnx = list(onnx_variants) if model in ONNX_MODELS else []
        wanted = [v for v in model_variants if not (reuse and (out_dir / f"{task_name}_{model}_{v}.json").is_file())]
        wanted_onnx = [
            v for v in model_onnx if not (reuse and (out_dir / f"{task_name}_{model}_{v}.onnx.json").is_file())
        ]
        side = [out_dir / f"{task_name}_{model}_arch.json"]
        if model == "teacher":
            side.append(out_dir / f"{task_name}_dev_lengths.json")
        if wanted or wanted_onnx or not all(f.is_file() for f in side):
            log(f"exporting {model}: {', '.join(wanted + [v + ' (onnx)' for v in wanted_onnx]) or 'architecture'}")
            with context.Pool(1) as pool:
                pool.apply(
                    _export_one,
                    (
                        model,
                        task_name,
                        {k: str(v) for k, v in paths.items()},
                        str(out_dir),
                        wanted,
                        wanted_onnx,
                        glue_dir,
                        num_representative,
                    ),
                )
        arch = json.loads((out_dir / f"{task_name}_{model}_arch.json").read_text(encoding="utf-8"))
        for v in model_variants:
            card_path = out_dir / f"{task_name}_{model}_{v}.json"
            card = json.loads(card_path.read_text(encoding="utf-8"))
            cards[(model, "litert", v)] = {**card, "path": str(card_path.with_suffix(".tflite")), "arch": arch}
        for v in model_onnx:
            card_path = out_dir / f"{task_name}_{model}_{v}.onnx.json"
            card = json.loads(card_path.read_text(encoding="utf-8"))
            cards[(model, "onnxruntime", v)] = {**card, "path": str(card_path)[: -len(".json")], "arch": arch}
    return cards
