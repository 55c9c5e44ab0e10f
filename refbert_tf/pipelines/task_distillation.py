"""The main job: RefBERT (or vanilla TinyBERT) task distillation of a fine-tuned GLUE teacher, end to end.

:func:`distill_glue` is a sequence of named steps, each owned by the module of its concept: load or fine-tune the
teacher (:mod:`refbert_tf.models.teacher`), encode the data (:mod:`refbert_tf.data`), augment it
(:mod:`refbert_tf.augmentation`), load or build the reference bank and pick every example's reference
(:mod:`refbert_tf.bank`), build and initialise the student (:mod:`refbert_tf.models.student`,
:mod:`refbert_tf.models.initialization`), distill in two stages (:mod:`refbert_tf.distillation`), evaluate on dev
with in-graph retrieval as the exported model will (:mod:`refbert_tf.training`), and save. Each stage is
resumable: an interrupted run picks up at its last checkpoint interval.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from refbert_tf.augmentation import augment_training_set
from refbert_tf.bank.dense import dense_label_agreement, load_or_build_dense_anchors
from refbert_tf.bank.references import load_or_build_bank, training_references
from refbert_tf.cli import code_version
from refbert_tf.config import DistillConfig, distill_config, model_name
from refbert_tf.data import GlueTask, get_task, load_encoded_splits, make_dataset
from refbert_tf.distillation import Distiller, run_stages
from refbert_tf.distribute import check_global_batch, strategy_info
from refbert_tf.io_utils import file_sha256
from refbert_tf.models.initialization import distiller_layer_mapping, initialize_student, resolve_init
from refbert_tf.models.student import build_student, save_student
from refbert_tf.models.teacher import load_or_finetune_teacher
from refbert_tf.pipelines.probes import reference_diagnostics
from refbert_tf.reports import summary_markdown
from refbert_tf.rundir import check_run_config, run_lock
from refbert_tf.training import evaluate, peak_memory_mb


def distill_glue(
    task: GlueTask | str,
    out_dir,
    teacher_dir,
    config: DistillConfig | None = None,
    glue_dir=None,
    source: str = "tsv",
    teacher_checkpoint=None,
    finetune_missing_teacher: bool = True,
    max_train_examples: int | None = None,
    bank_dir=None,
    verbose="auto",
    command: str = "",
    strategy=None,
) -> dict:
    """Distill a GLUE teacher into a RefBERT (or vanilla) student, end to end.

    Args:
        task: GLUE task.
        out_dir: run directory: ``student.keras``, ``vocab.txt``, ``student.json``, ``bank/``, stage checkpoints.
        teacher_dir: fine-tuned teacher directory (see :mod:`refbert_tf.models.teacher`); fine-tuned there first
            when missing and ``finetune_missing_teacher``.
        config: :class:`~refbert_tf.config.DistillConfig` (None: the task's defaults).
        glue_dir, source: GLUE data location and source (``tsv`` / ``tfds``).
        teacher_checkpoint: checkpoint to fine-tune a missing teacher from (None: default MiniLM).
        finetune_missing_teacher: fine-tune a missing teacher instead of raising.
        max_train_examples: use only the first N training examples (smoke runs, tests).
        bank_dir: reuse (or write) the bank here instead of ``out_dir/bank``.
        verbose: ``fit`` verbosity.
        command: command line recorded in the results.
        strategy: a ``tf.distribute.Strategy`` (None: the default one): teacher, student, distiller and
            optimizers are built under its scope; ``config.batch_size`` is the global batch.

    Returns:
        result dict: ``task``, ``model`` (``refbert`` | ``vanilla``), ``metrics`` {name: percent}, ``main_metric``,
        ``teacher_metrics``, ``command``, ``seconds``, ``peak_memory_mb``, ``bank`` (size, layer, tokens, MB,
        retrieval agreement on dev), ``stage_seconds``, ``config`` (``init`` resolved).

    Raises:
        TeacherNotFoundError: no teacher and ``finetune_missing_teacher`` is False.
        BankError: an existing bank built with another vocabulary, teacher, task or shape.
        GlueDataError, CheckpointError: from the loaders.
        ValueError: ``init`` that does not fit the student and teacher.
        RunDirError: ``out_dir`` holds a run of other settings, or another process is using it.
    """
    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    config = config or distill_config(task.name)
    strategy = strategy or tf.distribute.get_strategy()
    check_global_batch(config.batch_size, strategy)
    out_dir, teacher_dir = Path(out_dir), Path(teacher_dir)
    with run_lock(out_dir):
        record = {"task": task.name, "teacher_dir": str(teacher_dir), "teacher_checkpoint": teacher_checkpoint,
                  "source": source, "max_train_examples": max_train_examples, "bank_dir": bank_dir and str(bank_dir),
                  "config": run_record(config)}  # fmt: skip
        check_run_config(out_dir, record, finished_card=out_dir / "student.json")
        keras.utils.set_random_seed(config.seed)
        teacher, tokenizer, teacher_meta = load_or_finetune_teacher(
            task, teacher_dir, finetune_missing_teacher, teacher_checkpoint, glue_dir, source, verbose, strategy
        )
        teacher_id = file_sha256(teacher_dir / "model.keras")[:16]
        max_len = min(config.max_seq_len, teacher.backbone.max_sequence_length)
        train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir, max_train_examples)
        data = training_set(train_f, train.labels, tokenizer, teacher.backbone, config)
        bank = dense = None
        if config.use_reference:
            bank_dir = Path(bank_dir) if bank_dir else out_dir / "bank"
            bank = reference_step(
                data, train_f, bank_dir, teacher.backbone, tokenizer, config, task, teacher_id, verbose, strategy
            )
            if config.retrieval == "dense":
                dense = dense_reference_step(data, train_f, bank_dir, bank, teacher, config, task, teacher_id)
        student, distiller, config = build_student_and_distiller(
            task, tokenizer, teacher, bank, config, strategy, dense
        )
        bank_info = None
        if dense is not None:
            bank_info = {"num_anchors": dense.num_anchors, "num_tokens": bank.num_tokens, "layer": bank.layer,
                         "size_mb": round(bank.size_mb, 2), "retrieval": "dense", "key_space": dense.space,
                         "entry": config.dense_entry, "key_dim": dense.key_dim}  # fmt: skip
        elif bank is not None:
            bank_info = bank_report(bank, data, reference_diagnostics(task, student, bank, train, dev, train_f, dev_f))
        initialize_student(config.init, student, teacher, distiller, train_f, config.seed, tokenizer.vocab_sha256)
        batches = training_batches(data, config)
        data.timings.update(run_stages(distiller, batches, len(data.labels), config, out_dir, strategy, verbose))
        if dense is not None:
            bank_info.update(
                dense_diagnostics(student, teacher, dense, train.labels, dev_f, dev.labels, task.is_regression)
            )
        result = {
            "task": task.name, "model": model_name(config),
            "metrics": evaluate(student, task, dev_f, dev.labels),  # in-graph retrieval, as on the device
            "main_metric": task.main_metric, "teacher_metrics": teacher_meta.get("metrics"),
            "teacher_dir": str(teacher_dir), "teacher_id": teacher_id, "command": command, "code_version": code_version(),
            "seconds": round(time.perf_counter() - start, 1), "peak_memory_mb": round(peak_memory_mb(), 1),
            "stage_seconds": data.timings, "bank": bank_info, "num_train": len(train), "num_augmented": len(data.source),
            "num_dev": len(dev), "vocab_size": tokenizer.vocab_size, "student_parameters": int(student.count_params()),
            "config": dataclasses.asdict(config),
            "strategy": strategy_info(strategy),
        }  # fmt: skip
        card = {**result, "labels": list(task.labels), "max_seq_len": max_len}
        save_student(out_dir, student, tokenizer, card, summary_markdown(result))
        return result


@dataclasses.dataclass
class TrainingSet:
    """The distillation's training rows: the task's examples, then any augmented copies.

    Attributes:
        features: ``token_ids`` and ``segment_ids`` ragged int32 [N', None] and, for RefBERT, ``reference_index``
            int32 [N'] (or [N', k]), the offline reference of every row.
        labels: [N'] gold labels (a copy's is its source's; only the ``student_loss`` metric reads them).
        augmented: the copies' features alone (None without augmentation).
        source: int [N' - N], each copy's source row.
        timings: wall time of the steps so far (s).
        references: the bank's choices (:func:`refbert_tf.bank.training_references`), once picked.
    """

    features: dict
    labels: np.ndarray
    augmented: dict | None = None
    source: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    timings: dict = dataclasses.field(default_factory=dict)
    references: dict | None = None


def training_set(train_f: dict, labels, tokenizer, teacher_backbone, config: DistillConfig) -> TrainingSet:
    """The training rows of a run: the encoded examples, grown by ``config.augment`` copies of each."""
    data = TrainingSet({k: train_f[k] for k in ("token_ids", "segment_ids")}, labels)
    if config.augment:
        t0 = time.perf_counter()
        data.features, data.labels, data.augmented, data.source = augment_training_set(
            train_f, labels, tokenizer.vocab, teacher_backbone, config.augment, config.augment_prob,
            config.augment_candidates, config.seed,
        )  # fmt: skip
        data.timings["augment_seconds"] = round(time.perf_counter() - t0, 1)
    return data


def reference_step(
    data: TrainingSet,
    train_f: dict,
    bank_dir: Path,
    teacher_backbone,
    tokenizer,
    config: DistillConfig,
    task: GlueTask,
    teacher_id: str,
    verbose,
    strategy,
):
    """Load or build the reference bank and give every training row its offline reference (never itself, nor a
    copy its source), in ``data``. Returns the :class:`~refbert_tf.bank.ReferenceBank`."""
    t0 = time.perf_counter()
    bank = load_or_build_bank(
        bank_dir, teacher_backbone, train_f, tokenizer, config, task.name, teacher_id, verbose != 0, strategy
    )
    data.references = training_references(bank, train_f, config.top_k, data.augmented, data.source)
    data.features["reference_index"] = data.references["all"]
    data.timings["bank_seconds"] = round(time.perf_counter() - t0, 1)
    return bank


DENSE_FIELDS = ("dense_entry", "dense_key_space", "dense_top_k", "dense_temperature", "query_loss_weight")


def run_record(config: DistillConfig) -> dict:
    """The configuration a run directory records (``run.json``): every field, except that a lexical run leaves out
    the dense-retrieval fields, which do not change it (so run directories of lexical runs written before dense
    retrieval existed still resume)."""
    record = dataclasses.asdict(config)
    if record.get("retrieval") == "lexical":
        for key in ("retrieval", *DENSE_FIELDS):
            record.pop(key, None)
    return record


def dense_reference_step(data: TrainingSet, train_f: dict, bank_dir: Path, bank, teacher, config: DistillConfig,
                         task: GlueTask, teacher_id: str):  # fmt: skip
    """Dense retrieval: the bank's anchors in the teacher's key space (:mod:`refbert_tf.bank.dense`) and, in
    ``data``, every row's reference replaced by its nearest other anchor in that space (early entry; a copy is
    never given its source) or the ``anchor_position`` input that keeps it from retrieving itself in the graph
    (late entry). Returns the :class:`~refbert_tf.bank.dense.DenseAnchors`."""
    t0 = time.perf_counter()
    dense = load_or_build_dense_anchors(
        bank_dir, bank, teacher, train_f, config.dense_key_space, teacher_id, task.is_regression
    )
    rows = np.concatenate([np.arange(int(train_f["token_ids"].nrows())), np.asarray(data.source, np.int64)])
    if config.dense_entry == "early":
        data.features["reference_index"] = dense.references_for_rows(rows, config.top_k)
    else:
        data.features.pop("reference_index", None)
        data.features["anchor_position"] = dense.anchor_positions(rows)
    data.timings["dense_seconds"] = round(time.perf_counter() - t0, 1)
    return dense


def dense_diagnostics(student, teacher, dense, train_labels, dev_f: dict, dev_labels, regression: bool) -> dict:
    """The trained dense student's retrieval on dev: ``dev_retrieval_agreement``, the fraction of dev examples whose
    nearest anchor by the student's query (what the device finds) is the one the teacher's own key finds (what
    training read) and, for classification, ``label_agreement``: how often that anchor (and the vote of 16) has
    the example's gold label, with the teacher's keys (the ceiling) and with the student's query (percent); late,
    also the learned ``mixing_weight`` lambda."""
    from refbert_tf.dense_retrieval import dense_neighbours, teacher_keys

    queries = np.concatenate([
        np.asarray(student.call_with_features(b, training=False)["query"])
        for b in make_dataset(dev_f, None, batch_size=256)
    ])  # fmt: skip
    keys = teacher_keys(teacher, dev_f, dense.space)
    offline, device = (dense_neighbours(x, dense.keys, k=1)[0][:, 0] for x in (keys, queries))
    out = {"dev_retrieval_agreement": float(np.mean(offline == device))}
    if student.late_fusion is not None:
        out["mixing_weight"] = student.late_fusion.mixing_weight
    if not regression:
        out["label_agreement"] = {
            "teacher_keys": dense_label_agreement(dense, keys, dev_labels, train_labels),
            "student_query": dense_label_agreement(dense, queries, dev_labels, train_labels),
        }
    return out


def training_batches(data: TrainingSet, config: DistillConfig):
    """Shuffled, repeated ``(inputs, labels)`` batches of the training rows (offline references included).

    Raises:
        RuntimeError: a RefBERT run whose batches lack both ``reference_index`` and (dense, late)
            ``anchor_position``: the student would retrieve in-graph, where an anchor is its own reference.
    """
    features = {k: (tf.constant(v) if isinstance(v, np.ndarray) else v) for k, v in data.features.items()}
    ds = make_dataset(features, data.labels, batch_size=config.batch_size, shuffle=True, seed=config.seed, repeat=True)
    if config.use_reference and not {"reference_index", "anchor_position"} & set(ds.element_spec[0]):
        raise RuntimeError(
            "the training batches lack reference_index: the student would retrieve in-graph, "
            "where an anchor is its own reference"
        )
    return ds


def build_student_and_distiller(
    task: GlueTask, tokenizer, teacher, bank, config: DistillConfig, strategy, dense=None
):  # fmt: skip
    """The student (with the bank inside for RefBERT; with ``dense``, a :class:`~refbert_tf.bank.dense.DenseAnchors`,
    its dense bank and query head) and its :class:`~refbert_tf.distillation.Distiller`, under ``strategy``; returns
    ``(student, distiller, config)`` with ``config.init`` resolved for this student."""
    backbone = teacher.backbone
    late = dense is not None and config.dense_entry == "late"
    with strategy.scope():
        student = build_student(
            config.student, task.num_classes, tokenizer.vocab_size, backbone.hidden_dim,
            bank=None if late else bank, max_sequence_length=backbone.max_sequence_length, top_k=config.top_k,
            reference_projection=config.reference_projection, dense=dense, dense_entry=config.dense_entry,
            dense_top_k=config.dense_top_k, dense_temperature=config.dense_temperature,
            embedding_dim=config.embedding_dim,
        )  # fmt: skip
        config = dataclasses.replace(config, init=resolve_init(config.init, student, backbone))
        mapping = distiller_layer_mapping(config.init, student, backbone)
        distiller = Distiller(
            teacher,
            student,
            task.is_regression,
            config.temperature,
            layer_mapping=mapping,
            prediction_loss=config.prediction_loss,
            key_space=config.dense_key_space,
            query_loss_weight=config.query_loss_weight,
        )
    return student, distiller, config


def bank_report(bank, data: TrainingSet, diagnostics: dict) -> dict:
    """The ``bank`` entry of a run's result: size, shape, retrieval diagnostics and the count of forbidden
    references (a row reading itself, a copy its source: 0 in a correct run)."""
    refs = data.references
    info = {
        "num_anchors": bank.num_anchors, "num_tokens": bank.num_tokens, "layer": bank.layer,
        "num_buckets": bank.index.num_buckets, "size_mb": round(bank.size_mb, 2), **diagnostics,
        "train_self_references": references_to_rows(bank, refs["train"], np.arange(len(refs["train"]))),
    }  # fmt: skip
    if data.augmented is not None:
        info["augmented_source_references"] = references_to_rows(bank, refs["augmented"], data.source)
    return info


def references_to_rows(bank, references, rows) -> int:
    """How many of ``references`` (anchor indices [N] or [N, k]) are the anchor of training row ``rows`` [N]: the
    rows an example may not read (itself; an augmented copy's source). 0 in a correct run."""
    return int(np.sum(bank.anchor_ids[references].reshape(len(references), -1) == np.asarray(rows)[:, None]))
