"""End-to-end jobs behind the recipes: RefBERT (or vanilla TinyBERT) distillation of a GLUE teacher.

``distill_glue`` = load (or fine-tune) the teacher -> encode the data -> build the reference bank and pick every
example's reference -> two-stage distillation (intermediate, then prediction) -> evaluate on dev with in-graph
retrieval, as the exported model will -> save the student, its metrics JSON and a markdown summary.
Each stage is resumable: an interrupted run picks up at its last checkpoint interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from refbert_tf.cli import code_version
from refbert_tf.config import TrainingConfig
from refbert_tf.data import GlueTask, get_task, load_encoded_splits, load_text_corpus, make_dataset
from refbert_tf.io_utils import atomic_path, write_json, write_text

# Provisional per-task budgets (passes over the training set per stage); to be tuned on measured runs.
DISTILL_DEFAULTS: dict[str, dict] = {
    "sst2": dict(intermediate_epochs=1.0, prediction_epochs=1.0),
    "cola": dict(intermediate_epochs=4.0, prediction_epochs=3.0),
    "mrpc": dict(intermediate_epochs=6.0, prediction_epochs=4.0),
    "rte": dict(intermediate_epochs=6.0, prediction_epochs=4.0),
    "stsb": dict(intermediate_epochs=4.0, prediction_epochs=3.0),
}


@dataclasses.dataclass
class DistillConfig(TrainingConfig):
    """Hyper-parameters of one distillation run: :class:`~refbert_tf.config.TrainingConfig` (batch, AdamW
    schedule with ``learning_rate`` 1e-4 in both stages, length, seed, checkpoints) plus

    Attributes:
        student: student preset (``tinybert4``, ``tinybert6``).
        use_reference: RefBERT (True) or the vanilla TinyBERT baseline (False), all else equal.
        bank_layer: teacher layer whose hidden states the bank stores (0 = embeddings, -1 = the last block: the
            fine-tuned teacher's most task-specific states).
        bank_tokens: R, tokens stored per anchor ([CLS] first).
        max_anchors: M, cap on the bank size. With R=4 and K=1024 a 1,024-anchor bank of a 384-wide teacher
            is 10 MB in float32, about 15% of an exported tinybert4 student (issue 4 caps the bank at 20%).
        num_buckets: K, hash buckets of the retrieval key.
        top_k: references read per input (1: RefBERT; k > 1: the k best anchors' R tokens side by side, an
            ablation).
        reference_projection: P, ``linear`` or ``linear_norm`` (see :class:`~refbert_tf.models.student.RefBertStudent`).
        intermediate_epochs, prediction_epochs: passes over the training set in each stage.
        temperature: prediction-loss temperature.
        init_from_teacher: copy the teacher's embeddings and mapped blocks into the student (needs equal widths;
            the default MiniLM teacher (384) and tinybert4 (312) differ, so the default is random init).
        init_embeddings_from_teacher: initialise only the student's embeddings from the teacher's, projected to
            the student width by PCA (any widths; see
            :func:`~refbert_tf.models.student.init_student_embeddings_from_teacher`).
        init_by_pruning: initialise the student from a width-pruned slice of the fine-tuned teacher: its most
            active hidden coordinates, head dimensions and FFN units in the mapped blocks, pooler and classifier
            (any student no wider than the teacher; :mod:`refbert_tf.models.pruning`), copying and then learning
            the teacher layers :func:`~refbert_tf.distillation.pruning_layer_map`. ``fit_dense`` starts as the
            matching 0/1 map back to teacher width. None (the default): prune when no other initialisation is
            chosen and the student fits the teacher (:func:`~refbert_tf.models.pruning.pruning_misfit`; tinybert4
            on the MiniLM or BERT-base teacher does), random init otherwise; the run's result records what was
            done. True: prune or fail; False: random init (``--random-init``). Measured on the five GLUE tasks:
            the vanilla student keeps 96.8% of the teacher's average pruned, 69.5% from random init (README).
        student_init: directory of a general-distilled student (``recipes/general_distill.py``) whose encoder
            the student starts from (:func:`~refbert_tf.models.student.init_student_from_general`), as TinyBERT's
            task distillation starts from general TinyBERT. None: no general distillation.
        augment: N_a, word-replaced copies of each training example added to the training set
            (:mod:`refbert_tf.augmentation`, TinyBERT sec. 3.1); 0: no augmentation. Epochs count passes over the
            augmented set (``1 + augment`` times the rows), so keep steps equal by dividing them by ``1 + augment``.
        augment_prob: p_t, probability of replacing each one-piece word.
        augment_candidates: K, nearest teacher-embedding neighbours a word is replaced by.

    Raises:
        ValueError: more than one of ``init_from_teacher``, ``init_embeddings_from_teacher``,
            ``init_by_pruning``, ``student_init``;
            ``augment`` < 0.
    """

    student: str = "tinybert4"
    use_reference: bool = True
    bank_layer: int = -1
    bank_tokens: int = 4
    max_anchors: int = 1024
    num_buckets: int = 1024
    top_k: int = 1
    reference_projection: str = "linear"
    intermediate_epochs: float = 1.0
    prediction_epochs: float = 1.0
    temperature: float = 1.0
    init_from_teacher: bool = False
    init_embeddings_from_teacher: bool = False
    init_by_pruning: bool | None = None
    student_init: str | None = None
    augment: int = 0
    augment_prob: float = 0.4
    augment_candidates: int = 15

    def __post_init__(self):
        if self.augment < 0:
            raise ValueError(f"augment (--augment) must be >= 0, got {self.augment}")
        chosen = [
            name
            for name, value in (
                ("init_from_teacher (--init-from-teacher)", self.init_from_teacher),
                ("init_embeddings_from_teacher (--init-embeddings-from-teacher)", self.init_embeddings_from_teacher),
                ("init_by_pruning (--init-by-pruning)", self.init_by_pruning),
                ("student_init (--student-init)", self.student_init),
            )
            if value
        ]
        if len(chosen) > 1:
            raise ValueError(f"choose one way to initialise the student, not {' and '.join(chosen)}")


def distill_config(task: str, **overrides) -> DistillConfig:
    """The default :class:`DistillConfig` for ``task`` with non-None ``overrides`` applied."""
    from refbert_tf.training import task_config

    return task_config(DistillConfig, DISTILL_DEFAULTS, task, **overrides)


def _references_to_rows(bank, references, rows) -> int:
    """How many of ``references`` (anchor indices [N] or [N, k]) are the anchor of training row ``rows`` [N]: the
    rows an example may not read (itself; an augmented copy's source). 0 in a correct run."""
    return int(np.sum(bank.anchor_ids[references].reshape(len(references), -1) == np.asarray(rows)[:, None]))


def _resolve_pruning(config: DistillConfig, student, backbone) -> DistillConfig:
    """``config`` with ``init_by_pruning`` decided (True or False) for this student and teacher encoder.

    None becomes True when no other initialisation is chosen and the student fits the teacher, else False (with a
    printed note when only the shapes stand in the way). An explicit True for a student that does not fit raises.

    Raises:
        ValueError: ``init_by_pruning`` is True and :func:`~refbert_tf.models.pruning.pruning_misfit` gives a reason.
    """
    from refbert_tf.models.pruning import pruning_misfit

    misfit = pruning_misfit(student, backbone)
    if config.init_by_pruning and misfit:
        raise ValueError(
            f"--init-by-pruning: {misfit}; drop the option (or pass --random-init) to train this "
            "student from random init"
        )
    if config.init_by_pruning is None:
        other = config.init_from_teacher or config.init_embeddings_from_teacher or config.student_init
        if misfit and not other:
            print(f"The {config.student} student is not pruned from the teacher ({misfit}): random init.")
        return dataclasses.replace(config, init_by_pruning=not (other or misfit))
    return config


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_or_finetune_teacher(
    task: GlueTask, teacher_dir: Path, finetune_missing: bool, glue_dir, source, teacher_checkpoint, verbose, strategy
):
    from refbert_tf.models.teacher import TeacherNotFoundError, finetune_teacher, load_teacher

    if not (teacher_dir / "teacher.json").is_file():
        if not finetune_missing:
            raise TeacherNotFoundError(
                f"no fine-tuned {task.name} teacher in {teacher_dir}: run "
                f"recipes/finetune_teacher.py --task {task.name}, or drop --no-finetune-teacher"
            )
        result = finetune_teacher(
            task,
            teacher_dir,
            checkpoint=teacher_checkpoint,
            glue_dir=glue_dir,
            source=source,
            verbose=verbose,
            command="(fine-tuned by distill_glue)",
            strategy=strategy,
        )
        write_json(teacher_dir / "finetune_result.json", result)
    with strategy.scope():
        return load_teacher(teacher_dir, task=task)


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
        config: :class:`DistillConfig` (None: the task's defaults).
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
        retrieval agreement on dev), ``stage_seconds``, ``config``.

    Raises:
        TeacherNotFoundError: no teacher and ``finetune_missing_teacher`` is False.
        BankError: an existing bank built with another vocabulary, teacher or task.
        GlueDataError, CheckpointError: from the loaders.
    """
    import keras
    import tensorflow as tf

    from refbert_tf.bank import BankError, ReferenceBank, build_bank, resolve_layer
    from refbert_tf.distillation import Distiller, pruning_layer_map
    from refbert_tf.distribute import check_global_batch, strategy_info
    from refbert_tf.models.student import build_student
    from refbert_tf.training import evaluate, optimizer_for, peak_memory_mb, plan_steps, run_fit

    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    config = config or distill_config(task.name)
    strategy = strategy or tf.distribute.get_strategy()
    check_global_batch(config.batch_size, strategy)
    out_dir, teacher_dir = Path(out_dir), Path(teacher_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    teacher, tokenizer, teacher_meta = _load_or_finetune_teacher(
        task, teacher_dir, finetune_missing_teacher, glue_dir, source, teacher_checkpoint, verbose, strategy
    )
    teacher_id = _file_sha256(teacher_dir / "model.keras")[:16]
    max_len = min(config.max_seq_len, teacher.backbone.max_sequence_length)
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir, max_train_examples)

    bank, bank_info, features = None, None, {"token_ids": train_f["token_ids"], "segment_ids": train_f["segment_ids"]}
    labels, aug_source, timings = train.labels, None, {}
    if config.augment:
        from refbert_tf.augmentation import augment_features, word_candidates

        t0 = time.perf_counter()
        candidates = word_candidates(
            tokenizer.vocab, teacher.backbone.get_layer("token_embedding").get_weights()[0], config.augment_candidates
        )
        augmented, aug_source = augment_features(
            train_f, candidates, config.augment, config.augment_prob, seed=config.seed
        )
        features = {k: tf.concat([v, augmented[k]], axis=0) for k, v in features.items()}
        labels = np.concatenate([train.labels, train.labels[aug_source]])  # student_loss metric only
        timings["augment_seconds"] = round(time.perf_counter() - t0, 1)
    if config.use_reference:
        t0 = time.perf_counter()
        bank_dir = Path(bank_dir) if bank_dir else out_dir / "bank"
        wanted = {
            "layer": resolve_layer(teacher.backbone, config.bank_layer),
            "num_tokens": config.bank_tokens,
            "num_buckets": config.num_buckets,
            "max_anchors": config.max_anchors,
            "num_train": len(train),
        }
        if (bank_dir / "bank.json").is_file():
            bank = ReferenceBank.load(bank_dir)
            bank.check_compatible(tokenizer.vocab_sha256, teacher_id, task.name, where=str(bank_dir))
            have = {
                "layer": bank.layer,
                "num_tokens": bank.num_tokens,
                "num_buckets": bank.index.num_buckets,
                "max_anchors": bank.metadata.get("max_anchors"),
                "num_train": bank.metadata.get("num_train"),
            }
            if have != wanted:
                raise BankError(
                    f"{bank_dir} was built with {have}, this run asks for {wanted}: pass another "
                    "--bank-dir or delete it"
                )
        else:
            bank = build_bank(
                teacher.backbone,
                train_f,
                layer=config.bank_layer,
                num_tokens=config.bank_tokens,
                max_anchors=config.max_anchors,
                num_buckets=config.num_buckets,
                seed=config.seed,
                ignore_ids=(tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id),
                metadata={
                    "task": task.name,
                    "teacher": teacher_id,
                    "vocab_sha256": tokenizer.vocab_sha256,
                    "max_anchors": config.max_anchors,
                },
                progress=verbose != 0,
                strategy=strategy,
            )
            bank.save(bank_dir)
        train_refs, _ = bank.references_for(train_f, exclude_self=True, top_k=config.top_k)
        all_refs = train_refs
        if aug_source is not None:  # a copy may not read its source example, as an example may not read itself
            aug_refs, _ = bank.references_for(augmented, top_k=config.top_k, exclude_rows=aug_source)
            all_refs = np.concatenate([train_refs, aug_refs])
        features["reference_index"] = all_refs.astype(np.int32)
        timings["bank_seconds"] = round(time.perf_counter() - t0, 1)

    with strategy.scope():
        student = build_student(
            config.student,
            task.num_classes,
            tokenizer.vocab_size,
            teacher.backbone.hidden_dim,
            bank=bank,
            max_sequence_length=teacher.backbone.max_sequence_length,
            top_k=config.top_k,
            reference_projection=config.reference_projection,
        )
        config = _resolve_pruning(config, student, teacher.backbone)
        mapping = (
            pruning_layer_map(len(student.blocks), teacher.backbone.num_layers) if config.init_by_pruning else None
        )
        distiller = Distiller(
            teacher, student, regression=task.is_regression, temperature=config.temperature, layer_mapping=mapping
        )
    if bank is not None:
        bank_info = {
            "num_anchors": bank.num_anchors,
            "num_tokens": bank.num_tokens,
            "layer": bank.layer,
            "num_buckets": bank.index.num_buckets,
            "size_mb": round(bank.size_mb, 2),
            **reference_diagnostics(task, student, bank, train, dev, train_f, dev_f),
            "train_self_references": _references_to_rows(bank, train_refs, np.arange(len(train_refs))),
        }
        if aug_source is not None:
            bank_info["augmented_source_references"] = _references_to_rows(bank, aug_refs, aug_source)

    if config.init_from_teacher:
        from refbert_tf.models.student import init_student_from_teacher

        init_student_from_teacher(student, teacher.backbone, distiller.mapping)
    elif config.init_embeddings_from_teacher:
        from refbert_tf.models.student import init_student_embeddings_from_teacher

        init_student_embeddings_from_teacher(student, teacher.backbone)
    elif config.init_by_pruning:
        from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics, selection_matrix

        stats = pruning_statistics(distiller.teacher_features, _pruning_sample(train_f, config.seed))
        kept = init_student_by_pruning(student, teacher, stats, distiller.mapping)
        distiller.fit_dense.set_weights(
            [selection_matrix(kept, teacher.backbone.hidden_dim), np.zeros(teacher.backbone.hidden_dim, np.float32)]
        )
    elif config.student_init:
        from refbert_tf.models.student import init_student_from_general

        init_student_from_general(student, config.student_init, tokenizer.vocab_sha256)
    ds = make_dataset(
        {k: (tf.constant(v) if isinstance(v, np.ndarray) else v) for k, v in features.items()},
        labels,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        repeat=True,
    )
    if config.use_reference and "reference_index" not in ds.element_spec[0]:
        raise RuntimeError(
            "the training batches lack reference_index: the student would retrieve in-graph, "
            "where an anchor is its own reference"
        )
    for stage, epochs in (("intermediate", config.intermediate_epochs), ("prediction", config.prediction_epochs)):
        done = out_dir / f"stage_{stage}.weights.h5"
        if done.is_file():  # finished in an earlier, interrupted run
            distiller.load_weights(done)
            continue
        t0 = time.perf_counter()
        distiller.set_stage(stage)
        intervals, steps = plan_steps(len(labels), config.batch_size, epochs, config.backup_every)
        with strategy.scope():
            distiller.compile(optimizer=optimizer_for(config, intervals * steps))
            if epochs > 0:
                run_fit(distiller, ds, intervals, steps, out_dir / f"backup_{stage}", verbose=verbose)
        with atomic_path(done) as tmp:
            distiller.save_weights(tmp)
        timings[f"{stage}_seconds"] = round(time.perf_counter() - t0, 1)

    metrics = evaluate(student, task, dev_f, dev.labels)  # in-graph retrieval, as on the device
    with atomic_path(out_dir / "student.keras") as tmp:
        student.save(tmp)
    with atomic_path(out_dir / "vocab.txt") as tmp:
        shutil.copyfile(tokenizer.vocab_path, tmp)
    model_name = "refbert" if config.use_reference else "vanilla"
    result = {
        "task": task.name,
        "model": model_name,
        "metrics": metrics,
        "main_metric": task.main_metric,
        "teacher_metrics": teacher_meta.get("metrics"),
        "teacher_dir": str(teacher_dir),
        "teacher_id": teacher_id,
        "command": command,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "stage_seconds": timings,
        "bank": bank_info,
        "num_train": len(train),
        "num_augmented": 0 if aug_source is None else len(aug_source),
        "num_dev": len(dev),
        "student_parameters": int(student.count_params()),
        "config": dataclasses.asdict(config),
        "strategy": strategy_info(strategy),
    }
    write_json(
        out_dir / "student.json",
        {
            **result,
            "labels": list(task.labels),
            "lowercase": tokenizer.lowercase,
            "vocab_sha256": tokenizer.vocab_sha256,
            "max_seq_len": max_len,
        },
    )
    write_text(out_dir / "summary.md", summary_markdown(result))
    return result


@dataclasses.dataclass
class GeneralDistillConfig(TrainingConfig):
    """Hyper-parameters of one general-distillation run (see :func:`general_distill`):
    :class:`~refbert_tf.config.TrainingConfig` (``seed`` also picks the corpus subset) plus

    Attributes:
        student: student preset (``tinybert4``, ``tinybert6``).
        tasks: GLUE tasks whose training text forms the corpus (None: every task present).
        max_examples: cap on corpus rows (a seeded random subset).
        epochs: passes over the corpus (TinyBERT: 3 over English Wikipedia).
    """

    student: str = "tinybert4"
    tasks: tuple | None = None
    max_examples: int | None = None
    epochs: float = 3.0


def general_distill(
    out_dir,
    checkpoint=None,
    config: GeneralDistillConfig | None = None,
    glue_dir=None,
    source: str = "tsv",
    backbone=None,
    tokenizer=None,
    verbose="auto",
    command: str = "",
    strategy=None,
) -> dict:
    """General distillation (TinyBERT, Jiao et al. 2020, sec. 3.3): a task-agnostic student for task distillation.

    The pre-trained (not fine-tuned) teacher encoder teaches the student its embeddings, attention scores and
    hidden states (Eq. 7-10, the intermediate stage of :class:`~refbert_tf.distillation.Distiller`) on unlabeled
    text: here the training splits of the GLUE tasks (:func:`refbert_tf.data.load_text_corpus`), the in-domain text
    on disk, in place of TinyBERT's Wikipedia. The student has no task head worth keeping; pass the run directory
    to ``distill_glue.py --student-init`` (:attr:`DistillConfig.student_init`). Resumable, like ``distill_glue``:
    an interrupted run resumes from its last checkpoint, and a finished one is not trained again (its stored result
    is returned) when the same configuration and teacher are asked for.

    Args:
        out_dir: run directory: ``student.keras``, ``student.json``, ``vocab.txt``, the resume checkpoint.
        checkpoint: teacher checkpoint spec for :func:`~refbert_tf.models.checkpoints.load_backbone` (None: the
            default MiniLM); ignored when ``backbone`` and ``tokenizer`` are given.
        config: :class:`GeneralDistillConfig` (None: defaults).
        glue_dir, source: where the corpus is read (see :func:`refbert_tf.data.load_glue`).
        backbone, tokenizer: a ready teacher encoder and its tokenizer (tests).
        verbose: ``fit`` verbosity.
        command: command line recorded in the result.
        strategy: a ``tf.distribute.Strategy`` (None: the default one).

    Returns:
        result dict: ``model`` (``general``), ``teacher`` (checkpoint spec), ``corpus`` {task: rows},
        ``num_examples``, ``loss`` (first and last interval's mean distillation loss), ``seconds``,
        ``examples_per_second``, ``peak_memory_mb``, ``student_parameters``, ``config``, ``command``,
        ``code_version``.

    Raises:
        CheckpointError: from the checkpoint loader; GlueDataError: from the corpus loader.
        ValueError: ``out_dir`` holds a finished student of another configuration or teacher.
    """
    import json

    import keras
    import tensorflow as tf

    from refbert_tf.distillation import Distiller
    from refbert_tf.distribute import check_global_batch, strategy_info
    from refbert_tf.models.checkpoints import load_backbone
    from refbert_tf.models.student import build_student
    from refbert_tf.training import optimizer_for, peak_memory_mb, plan_steps, run_fit

    start = time.perf_counter()
    config = config or GeneralDistillConfig()
    strategy = strategy or tf.distribute.get_strategy()
    check_global_batch(config.batch_size, strategy)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    teacher_spec = "(given)" if backbone is not None else str(checkpoint or "default")
    card_path = out_dir / "student.json"
    if card_path.is_file() and (out_dir / "student.keras").is_file():  # finished earlier
        card = json.loads(card_path.read_text(encoding="utf-8"))
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        if card.get("config") != wanted or card.get("teacher") != teacher_spec:
            raise ValueError(
                f"{out_dir} holds a finished general student of teacher {card.get('teacher')!r} and "
                f"config {card.get('config')}; this run asks for teacher {teacher_spec!r} and config "
                f"{wanted}: pass another --output-dir or delete it"
            )
        return {k: v for k, v in card.items() if k not in ("lowercase", "vocab_sha256", "max_seq_len")}
    with strategy.scope():
        if backbone is None or tokenizer is None:
            backbone, tokenizer, _ = load_backbone(checkpoint, config.max_seq_len)
    max_len = min(config.max_seq_len, backbone.max_sequence_length)
    features, counts = load_text_corpus(
        tokenizer, max_len, config.tasks, source, glue_dir, config.max_examples, config.seed
    )
    num_examples = int(features["token_ids"].nrows())
    with strategy.scope():
        student = build_student(
            config.student,
            1,
            tokenizer.vocab_size,
            backbone.hidden_dim,
            max_sequence_length=backbone.max_sequence_length,
        )
        distiller = Distiller(backbone, student, stage="intermediate")
    ds = make_dataset(features, None, batch_size=config.batch_size, shuffle=True, seed=config.seed, repeat=True)
    intervals, steps = plan_steps(num_examples, config.batch_size, config.epochs, config.backup_every)
    with strategy.scope():
        distiller.compile(optimizer=optimizer_for(config, intervals * steps))
        history = run_fit(distiller, ds, intervals, steps, out_dir / "backup", verbose=verbose)
    losses = history.history.get("distillation_loss", [])
    with atomic_path(out_dir / "student.keras") as tmp:
        student.save(tmp)
    with atomic_path(out_dir / "vocab.txt") as tmp:
        shutil.copyfile(tokenizer.vocab_path, tmp)
    result = {
        "model": "general",
        "teacher": teacher_spec,
        "corpus": counts,
        "num_examples": num_examples,
        "num_truncated": features["num_truncated"],
        "loss": {
            "first_interval": round(float(losses[0]), 4) if losses else None,
            "last_interval": round(float(losses[-1]), 4) if losses else None,
            "intervals_run": len(losses),
        },
        "command": command,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - start, 1),
        "examples_per_second": round(intervals * steps * config.batch_size / max(history.seconds, 1e-9), 1),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "student_parameters": int(student.count_params()),
        "config": dataclasses.asdict(config),
        "strategy": strategy_info(strategy),
    }
    write_json(
        out_dir / "student.json",
        {**result, "lowercase": tokenizer.lowercase, "vocab_sha256": tokenizer.vocab_sha256, "max_seq_len": max_len},
    )
    return result


def summary_markdown(result: dict) -> str:
    """A short markdown report of one distillation run."""
    m = result["main_metric"]
    lines = [
        f"# {result['task']}: {result['model']} student",
        "",
        "| model | " + " | ".join(result["metrics"]) + " |",
        "|---|" + "---|" * len(result["metrics"]),
        f"| {result['model']} | " + " | ".join(f"{v:.2f}" for v in result["metrics"].values()) + " |",
    ]
    if result.get("teacher_metrics"):
        lines.append(
            "| teacher | "
            + " | ".join(f"{result['teacher_metrics'].get(k, float('nan')):.2f}" for k in result["metrics"])
            + " |"
        )
    lines += [
        "",
        f"Main metric: {m}. Wall time {result['seconds']:.0f} s, peak memory "
        f"{result['peak_memory_mb']:.0f} MB, student parameters {result['student_parameters']:,}.",
    ]
    if result.get("bank"):
        b = result["bank"]
        lines.append(
            f"Reference bank: {b['num_anchors']} anchors x {b['num_tokens']} tokens of teacher layer "
            f"{b['layer']} ({b['size_mb']} MB); on-device retrieval agrees with the offline choice on "
            f"{100 * b['dev_retrieval_agreement']:.1f}% of dev."
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def pruning_probe(
    task,
    teacher_dir,
    mappings,
    student: str = "tinybert4",
    glue_dir=None,
    source: str = "tsv",
    max_seq_len: int = 128,
    seed: int = 42,
) -> list[dict]:
    """Dev metrics of students pruned from a fine-tuned teacher (:mod:`refbert_tf.models.pruning`), before any
    training: how much of the teacher each choice of copied layers keeps.

    Args:
        task: GLUE task (name or :class:`GlueTask`).
        teacher_dir: the fine-tuned teacher (``recipes/finetune_teacher.py``).
        mappings: lists of teacher blocks (1-based), one per student block, to try.
        student: student preset.
        glue_dir, source: see :func:`refbert_tf.data.load_glue`.
        max_seq_len: tokens per input.
        seed: picks the :data:`PRUNING_SAMPLE` training examples that rank the units.

    Returns:
        One row per mapping: ``{"task", "mapping", "metrics"}`` (dev metrics in percent).

    Raises:
        TeacherNotFoundError: no fine-tuned teacher in ``teacher_dir``; ValueError: a mapping that does not fit.
    """
    from refbert_tf.distillation import TeacherFeatures
    from refbert_tf.models.pruning import init_student_by_pruning, pruning_statistics
    from refbert_tf.models.student import build_student
    from refbert_tf.models.teacher import load_teacher
    from refbert_tf.training import evaluate

    task = get_task(task) if isinstance(task, str) else task
    teacher, tokenizer, _ = load_teacher(teacher_dir, task)
    max_len = min(max_seq_len, teacher.backbone.max_sequence_length)
    _, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir)
    stats = pruning_statistics(TeacherFeatures(teacher), _pruning_sample(train_f, seed))
    rows = []
    for mapping in mappings:
        pruned = build_student(
            student,
            task.num_classes,
            tokenizer.vocab_size,
            teacher.backbone.hidden_dim,
            max_sequence_length=teacher.backbone.max_sequence_length,
        )
        init_student_by_pruning(pruned, teacher, stats, list(mapping))
        rows.append({"task": task.name, "mapping": list(mapping), "metrics": evaluate(pruned, task, dev_f, dev.labels)})
    return rows


def _pruning_sample(train_f, seed: int) -> dict:
    """:data:`PRUNING_SAMPLE` random rows of encoded training features as padded int32 arrays [n, T]."""
    import tensorflow as tf

    rows = np.random.default_rng(seed).permutation(int(train_f["token_ids"].nrows()))[:PRUNING_SAMPLE]
    sample = {k: tf.gather(train_f[k], rows) for k in ("token_ids", "segment_ids")}
    sample["padding_mask"] = tf.ones_like(sample["token_ids"])
    return {k: v.to_tensor().numpy() for k, v in sample.items()}


PRUNING_SAMPLE = 512  # training examples whose teacher activations rank the units kept by --init-by-pruning
SUMMARY_TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")


def glue_summary(results_dir="results", tasks=SUMMARY_TASKS, distill_dir=None) -> tuple[list[dict], str]:
    """Collect teacher / vanilla / RefBERT dev results into one table.

    Reads ``<results_dir>/teacher/<task>.json`` and ``<distill_dir>/<task>_{vanilla,refbert}.json``
    (``distill_dir`` defaults to ``<results_dir>/distill``; another one holds another family of student runs, such
    as ``results/distill/gd``, students started from general distillation).
    A student row gets a ``note`` (and its cell a footnote) when its result's ``teacher_metrics`` differ from the
    teacher row (distilled from another teacher), or when it is a RefBERT run from before the reference fix
    (commit 4e48621; recognised by a ``config`` without ``top_k``, a field added right after the fix): those
    runs trained on in-graph references, where a bank anchor is its own reference.

    Returns:
        ``(rows, markdown)``: rows ``{task, model, metric, value (percent), command[, note]}`` for every result
        found, and a markdown table with each model's average over the tasks it has all of, and RefBERT's average
        as a percentage of the teacher's.
    """
    import json

    results_dir = Path(results_dir)
    distill_dir = Path(distill_dir) if distill_dir else results_dir / "distill"
    rows = []
    for task_name in tasks:
        task = get_task(task_name)
        paths = {
            "teacher": results_dir / "teacher" / f"{task.name}.json",
            "vanilla": distill_dir / f"{task.name}_vanilla.json",
            "refbert": distill_dir / f"{task.name}_refbert.json",
        }
        teacher_value = None
        for model, path in paths.items():
            if path.is_file():
                r = json.loads(path.read_text(encoding="utf-8"))
                row = {
                    "task": task.name,
                    "model": model,
                    "metric": task.main_metric,
                    "value": round(float(r["metrics"][task.main_metric]), 2),
                    "command": r["command"],
                }
                notes = []
                if model == "teacher":
                    teacher_value = row["value"]
                elif (
                    teacher_value is not None
                    and "teacher_metrics" in r
                    and round(float(r["teacher_metrics"][task.main_metric]), 2) != teacher_value
                ):
                    notes.append(f"distilled from a teacher scoring {r['teacher_metrics'][task.main_metric]:.2f}")
                if model == "refbert" and "config" in r and "top_k" not in r["config"]:
                    notes.append("distilled before the reference fix (4e48621): trained on in-graph references")
                if notes:
                    row["note"] = "; ".join(notes)
                rows.append(row)
    table = {(r["task"], r["model"]): r["value"] for r in rows}
    footnotes = [(r["task"], r["model"], r["note"]) for r in rows if "note" in r]
    marks = {(t, m): f" [{i + 1}]" for i, (t, m, _) in enumerate(footnotes)}
    models = ("teacher", "vanilla", "refbert")
    lines = ["| task | metric | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for task_name in tasks:
        cells = [
            f"{table[(task_name, m)]:.2f}{marks.get((task_name, m), '')}" if (task_name, m) in table else "-"
            for m in models
        ]
        lines.append(f"| {task_name} | {get_task(task_name).main_metric} | " + " | ".join(cells) + " |")
    complete = [t for t in tasks if all((t, m) in table for m in models)]
    if complete:
        avg = {m: sum(table[(t, m)] for t in complete) / len(complete) for m in models}
        lines.append(f"| average ({len(complete)} tasks) | | " + " | ".join(f"{avg[m]:.2f}" for m in models) + " |")
        lines += [
            "",
            f"RefBERT keeps {100 * avg['refbert'] / avg['teacher']:.1f}% of the teacher's average and is "
            f"{avg['refbert'] - avg['vanilla']:+.2f} points from the vanilla student.",
        ]
    if footnotes:
        lines += [""] + [f"{marks[(t, m)].strip()} {t} {m}: {note}." for t, m, note in footnotes]
    return rows, "\n".join(lines) + "\n"


ABLATION_KNOBS = (
    "use_reference",
    "bank_layer",
    "bank_tokens",
    "max_anchors",
    "num_buckets",
    "top_k",
    "reference_projection",
    "intermediate_epochs",
    "prediction_epochs",
    "temperature",
    "student",
    "init_from_teacher",
    "init_embeddings_from_teacher",
    "init_by_pruning",
    "student_init",
    "augment",
    "augment_prob",
    "learning_rate",
    "batch_size",
)


def _change_label(model: str, changes) -> str:
    """``knob=value, ...`` for an ablation row, or ``baseline`` / ``no reference`` when it changes nothing."""
    return ", ".join(f"{k}={v}" for k, v in changes) or ("baseline" if model == "refbert" else "no reference")


def ablation_summary(result_paths) -> tuple[list[dict], str]:
    """Tabulate distillation runs that differ in a few knobs, each against the vanilla run of the same budget.

    Every path is a ``recipes/distill_glue.py`` result JSON of one task; other JSON files (no ``config``, such as
    an earlier summary caught by a glob) are skipped. The baseline the knobs are described against is the RefBERT
    run closest to the task's defaults (fewest :data:`ABLATION_KNOBS` changed; the first such in the given order);
    a run's vanilla partner is the ``--no-reference`` run with the same seed, number of training examples,
    augmentation and student init (so a change is read against the same budget).

    Args:
        result_paths: result JSON paths, all of one task.

    Returns:
        ``(rows, markdown)``: rows ``{run, model, changes (knob -> value, vs the baseline RefBERT run), seed,
        num_train, metric, value (percent), minus_vanilla (points, or None without a partner), minutes,
        command}``, and a markdown table of them with the mean and spread of the seeds where a setting has several.

    Raises:
        ValueError: no paths, paths of several tasks, or no RefBERT run among them.
    """
    import json

    results = [(Path(p).stem, json.loads(Path(p).read_text(encoding="utf-8"))) for p in result_paths]
    results = [(name, r) for name, r in results if isinstance(r, dict) and "config" in r]
    if not results:
        raise ValueError("ablation_summary: no distill_glue result files given")
    tasks = {r["task"] for _, r in results}
    if len(tasks) != 1:
        raise ValueError(f"ablation_summary: results of several tasks {sorted(tasks)}; give one task's runs")
    defaults = dataclasses.asdict(distill_config(tasks.pop()))
    defaults["init_by_pruning"] = False  # a result file without the field comes from a random-init run
    refbert_configs = [r["config"] for _, r in results if r["config"].get("use_reference")]
    if not refbert_configs:
        raise ValueError("ablation_summary: no RefBERT run (config.use_reference true) to describe changes against")
    baseline = min(refbert_configs, key=lambda c: sum(c.get(k, defaults[k]) != defaults[k] for k in ABLATION_KNOBS))

    def budget(r):  # what a vanilla partner must share: seed, rows, augmentation and starting point
        return (
            r["config"]["seed"],
            r["num_train"],
            r["config"].get("augment", 0),
            r["config"].get("student_init"),
            r["config"].get("init_by_pruning", False),
        )

    vanilla = {budget(r): r for _, r in results if not r["config"].get("use_reference")}
    rows = []
    for name, r in results:
        cfg = r["config"]
        metric = r["main_metric"]
        value = round(float(r["metrics"][metric]), 2)
        partner = vanilla.get(budget(r))
        changes = {
            k: cfg.get(k, defaults[k])
            for k in ABLATION_KNOBS
            if k != "use_reference" and cfg.get(k, defaults[k]) != baseline.get(k, defaults[k])
        }
        rows.append(
            {
                "run": name,
                "model": r["model"],
                "changes": changes,
                "seed": cfg["seed"],
                "num_train": r["num_train"],
                "metric": metric,
                "value": value,
                "minus_vanilla": None
                if partner is None or partner is r
                else round(value - float(partner["metrics"][metric]), 2),
                "minutes": round(float(r["seconds"]) / 60, 1),
                "command": r["command"],
            }
        )
    lines = [
        "| run | model | change vs the baseline RefBERT run | seed | train examples | "
        f"dev {rows[0]['metric']} | minus vanilla (same seed, budget) | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = _change_label(r["model"], r["changes"].items())
        delta = "" if r["minus_vanilla"] is None else f"{r['minus_vanilla']:+.2f}"
        lines.append(
            f"| {r['run']} | {r['model']} | {change} | {r['seed']} | {r['num_train']} | {r['value']:.2f} | "
            f"{delta} | {r['minutes']:.1f} |"
        )
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(
            (r["model"], tuple(sorted(r["changes"].items(), key=lambda kv: kv[0])), r["num_train"]), []
        ).append(r["value"])
    repeated = {k: v for k, v in groups.items() if len(v) > 1}
    if repeated:
        lines.append("")
        for (model, changes, num_train), values in repeated.items():
            lines.append(
                f"{model} ({_change_label(model, changes)}, {num_train} train examples) over {len(values)} seeds: "
                f"mean {np.mean(values):.2f}, range {min(values):.2f}-{max(values):.2f}."
            )
    return rows, "\n".join(lines) + "\n"


def ablation_plot(rows: list[dict], path) -> None:
    """Bar chart of an :func:`ablation_summary`'s runs (dev metric, %), vanilla runs in grey, as a PNG.

    Raises:
        ValueError: no rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("ablation_plot: no rows to plot")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows)), 4.0))
    colors = ["tab:gray" if r["model"] == "vanilla" else "tab:green" for r in rows]
    values = [r["value"] for r in rows]
    ax.bar(range(len(rows)), values, color=colors)
    ax.set_xticks(range(len(rows)), [r["run"] for r in rows], rotation=30, ha="right", fontsize=8)
    bottom = max(0.0, min(values) - 3.0)
    ax.set_ylim(bottom, max(values) + 1.0)
    for i, v in enumerate(values):
        ax.text(i, v + 0.1, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_ylabel(f"dev {rows[0]['metric']} (%)" + (f", axis from {bottom:.0f}" if bottom > 0 else ""))
    ax.set_title("Distillation runs: RefBERT knobs (green) against vanilla (grey)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def export_glue_student(
    task: GlueTask | str,
    student_dir,
    out_dir,
    variants=None,
    glue_dir=None,
    source: str = "tsv",
    without_bank: bool = False,
    num_representative: int = 300,
    parity_examples: int = 200,
    command: str = "",
) -> dict:
    """Export a distilled GLUE student to TFLite variants and measure each through the LiteRT interpreter.

    Args:
        task: GLUE task.
        student_dir: the distillation run directory (``student.keras``, ``student.json``, ``vocab.txt``).
        out_dir: where ``<task>_<model>_<variant>.tflite`` and their cards go.
        variants: subset of :data:`refbert_tf.export.VARIANTS` (None: all four).
        glue_dir, source: GLUE data (training examples calibrate ``full_int8``; dev measures every file).
        without_bank: export the RefBERT student minus its reference path (``refbert_no_bank``).
        num_representative: calibration examples.
        parity_examples: dev examples on which float32 logits are compared with Keras.
        command: command line recorded in the result.

    Returns:
        ``{"task", "model", "keras_dev_metric", "variants": [{variant, path, size_mb, dev_metric, dev_drop,
        integer_only, ops}], "parity": {...} (float32 only), "command", "seconds"}``; the Keras metric is the
        student's, measured again here, so ``dev_drop`` = Keras - TFLite in points.

    Raises:
        FileNotFoundError: no student in ``student_dir``.
        ExportError: a conversion failed or needs non-builtin ops.
    """
    from refbert_tf.export import VARIANTS, export_student, keras_parity
    from refbert_tf.inference import LiteRTClassifier
    from refbert_tf.metrics import compute_metrics, predictions_from_outputs
    from refbert_tf.models.student import load_student
    from refbert_tf.tokenization import BertWordPieceTokenizer
    from refbert_tf.training import predict_outputs

    start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    student_dir = Path(student_dir)
    student, meta = load_student(student_dir)
    if meta.get("task") != task.name:
        raise ValueError(
            f"{student_dir / 'student.json'}: the student was distilled on {meta.get('task')!r}, not {task.name!r}"
        )
    tokenizer = BertWordPieceTokenizer(student_dir / "vocab.txt", lowercase=meta.get("lowercase", True))
    max_len = meta["max_seq_len"]
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir)
    cards = export_student(
        student_dir,
        out_dir,
        variants or VARIANTS,
        train_features=train_f,
        dev_features=dev_f,
        dev_labels=dev.labels,
        without_bank=without_bank,
        num_representative=num_representative,
    )
    ours = predict_outputs(student, dev_f)  # the Keras student, evaluated now with the current code
    keras_metric = (
        None
        if without_bank
        else float(compute_metrics(task, predictions_from_outputs(task, ours), dev.labels)[task.main_metric])
    )
    rows = []
    for card in cards:
        value = float(card["dev_metrics"][task.main_metric])
        rows.append(
            {
                "variant": card["variant"],
                "path": card["path"],
                "size_mb": card["size_mb"],
                "bank_size_mb": card["bank_size_mb"],
                "dev_metric": value,
                "dev_drop": None if keras_metric is None else round(keras_metric - value, 3),
                "integer_only": card["integer_only"],
                "ops": card["ops"],
            }
        )
    parity = None
    float32 = [c for c in cards if c["variant"] == "float32"]
    if float32 and not without_bank:
        parity = keras_parity(student, float32[0]["path"], dev_f, parity_examples)
        lite = LiteRTClassifier(float32[0]["path"]).predict_features(dev_f)
        parity["prediction_agreement_dev"] = (
            float(np.mean(np.argmax(lite, -1) == np.argmax(ours, -1))) if ours.shape[-1] > 1 else None
        )
    model_name = "refbert_no_bank" if without_bank else meta["model"]
    return {
        "task": task.name,
        "model": model_name,
        "main_metric": task.main_metric,
        "source_student": str(student_dir),
        "keras_dev_metric": keras_metric,
        "variants": rows,
        "parity": parity,
        "student_config": meta.get("config"),
        "command": command,
        "seconds": round(time.perf_counter() - start, 1),
    }


def reference_report(task: GlueTask | str, run_dir, glue_dir=None, source: str = "tsv", command: str = "") -> dict:
    """Reference diagnostics of a RefBERT run: agreement of the student's in-graph retrieval with the offline
    choice on dev, and how often train and dev references share the gold label.

    Args:
        task: GLUE task (classification).
        run_dir: the RefBERT run directory (``bank/``, ``student.json``, ``vocab.txt``).

    Returns:
        ``{"task", "bank": {...}, "dev_retrieval_agreement" (fraction), "reference_label_agreement": {"train": ...,
        "dev": ...}, "command"}`` (see
        :func:`refbert_tf.bank.reference_label_agreement`).

    Raises:
        BankError: no bank in ``run_dir/bank``.
        ValueError: a regression task.
    """
    import json

    from refbert_tf.bank import ReferenceBank
    from refbert_tf.tokenization import BertWordPieceTokenizer

    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: label agreement is undefined")
    run_dir = Path(run_dir)
    bank = ReferenceBank.load(run_dir / "bank")
    meta = json.loads((run_dir / "student.json").read_text(encoding="utf-8"))
    tokenizer = BertWordPieceTokenizer(run_dir / "vocab.txt", lowercase=meta.get("lowercase", True))
    bank.check_compatible(tokenizer.vocab_sha256, task=task.name, where=str(run_dir / "bank"))
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, meta["max_seq_len"], source, glue_dir)
    from refbert_tf.models.student import load_student

    student, _ = load_student(run_dir)
    return {
        "task": task.name,
        "run_dir": str(run_dir),
        "bank": {"num_anchors": bank.num_anchors, "layer": bank.layer, "num_tokens": bank.num_tokens},
        **reference_diagnostics(task, student, bank, train, dev, train_f, dev_f),
        "command": command,
    }


def reference_ceiling(
    task: GlueTask | str,
    tokenizer,
    num_buckets=(1024,),
    max_anchors=(1024,),
    vote: int = 16,
    max_seq_len: int = 128,
    glue_dir=None,
    source: str = "tsv",
    seed: int = 42,
    train_sample: int = 5000,
) -> list[dict]:
    """How much label information the lexical references can carry, before any teacher or student is involved.

    For each bank shape (K hash buckets x M anchors), the bank's own choices are replayed: idf fitted on the
    training set (:class:`~refbert_tf.retrieval.RetrievalIndex`), anchors by :func:`~refbert_tf.bank.select_anchors`
    (k-means above M, seed ``seed``), references by :func:`~refbert_tf.retrieval.nearest_anchors` (dev: best anchor;
    train: best anchor other than itself). A reference helps the student decide the label only through what the
    teacher's stored representation says about the *reference*, so the rate at which the reference shares the
    input's gold label, against the majority-class rate, bounds what top-1 references can teach; the majority vote
    of the ``vote`` best anchors shows what many references together could. Diagnostic for the README's negative
    result; RefBERT (Wang et al. 2021) does not report it.

    Args:
        task: GLUE classification task.
        tokenizer: the teacher's :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`.
        num_buckets: K values to try.
        max_anchors: M values to try (0 or None: every training example is an anchor).
        vote: anchors in the majority vote (0: skip the vote).
        max_seq_len, glue_dir, source: data (see :func:`refbert_tf.data.load_encoded_splits`).
        seed: k-means seed and the seed of the training sample.
        train_sample: training examples whose references are scored (a seeded random subset; the bank, idf and
            anchors always use the whole training set).

    Returns:
        One row per (K, M): ``{"task", "num_buckets", "max_anchors", "num_anchors", "dev": {agreement,
        majority_class, mean_similarity}, "train": {...}, "dev_vote": {agreement, majority_class}}`` (percent).

    Raises:
        ValueError: a regression task.
    """
    from refbert_tf.bank import label_agreement, select_anchors
    from refbert_tf.retrieval import RetrievalIndex, nearest_anchors

    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: label agreement is undefined")
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_seq_len, source, glue_dir)
    ignore = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    sample = np.sort(np.random.default_rng(seed).permutation(len(train))[:train_sample])
    rows = []
    for k in num_buckets:
        index = RetrievalIndex.fit(train_f, ignore, k)
        train_keys, dev_keys = index.keys(train_f), index.keys(dev_f)
        for m in max_anchors:
            anchors = select_anchors(train_keys, m or len(train), seed=seed)
            anchor_labels = train.labels[anchors]
            position = np.full(len(train), -1)
            position[anchors] = np.arange(len(anchors))
            dev_ref, dev_sim = nearest_anchors(dev_keys, train_keys[anchors])
            train_ref, train_sim = nearest_anchors(train_keys[sample], train_keys[anchors], exclude=position[sample])
            row = {
                "task": task.name,
                "num_buckets": int(k),
                "max_anchors": int(m or 0),
                "num_anchors": len(anchors),
                "dev": label_agreement(dev.labels, anchor_labels[dev_ref], dev_sim),
                "train": label_agreement(train.labels[sample], anchor_labels[train_ref], train_sim),
            }
            if vote:
                best, _ = nearest_anchors(dev_keys, train_keys[anchors], top_k=min(vote, len(anchors)))
                voted = [
                    np.bincount(anchor_labels[b], minlength=task.num_classes).argmax()
                    for b in best.reshape(len(best), -1)
                ]  # [N] when the vote is of one anchor
                row["dev_vote"] = {"k": int(min(vote, len(anchors))), **label_agreement(dev.labels, voted)}
            rows.append(row)
    return rows


def reference_ceiling_markdown(rows: list[dict]) -> str:
    """Markdown table of :func:`reference_ceiling` rows."""
    lines = [
        "| task | K buckets | M anchors | dev: reference has the input's label | dev: vote of the k best | "
        "train (not itself) | majority class (dev) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vote = f"{r['dev_vote']['agreement']:.2f} (k={r['dev_vote']['k']})" if "dev_vote" in r else "-"
        lines.append(
            f"| {r['task']} | {r['num_buckets']} | {r['num_anchors']}{'' if r['max_anchors'] else ' (all)'} "
            f"| {r['dev']['agreement']:.2f} | {vote} | {r['train']['agreement']:.2f} | "
            f"{r['dev']['majority_class']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def reference_diagnostics(task: GlueTask, student, bank, train, dev, train_f: dict, dev_f: dict) -> dict:
    """Agreement of the student's in-graph retrieval with the offline choice on dev and, for classification
    tasks, how often train and dev references share the gold label.

    Returns:
        ``{"dev_retrieval_agreement" (fraction; per reference slot with top-k), "reference_label_agreement":
        {"train", "dev"}}`` (the second key only for classification, for the best reference; see
        :func:`refbert_tf.bank.reference_label_agreement`).
    """
    from refbert_tf.bank import reference_label_agreement

    offline, _ = bank.references_for(dev_f, top_k=student.bank.top_k)
    on_device = np.concatenate(
        [
            np.asarray(student.bank.retrieve(b["token_ids"], b["padding_mask"]))
            for b in make_dataset(dev_f, None, batch_size=256)
        ]
    )
    out = {"dev_retrieval_agreement": float(np.mean(on_device == offline))}
    if not task.is_regression:
        out["reference_label_agreement"] = {
            "train": reference_label_agreement(bank, train_f, train.labels, train.labels, exclude_self=True),
            "dev": reference_label_agreement(bank, dev_f, dev.labels, train.labels),
        }
    return out
