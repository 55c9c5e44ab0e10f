"""Run configuration: every setting of a training run, in one place.

Each config class is a dataclass whose fields are the run's settings. A field's ``metadata`` (written with
:func:`setting`) holds its help text, its valid range, whether it is an ablation knob, and any old flag spellings
that still work; the recipes build their command-line options from it (:func:`refbert_tf.cli.add_config_args`)
and :data:`ABLATION_KNOBS` is read from it. Adding a distillation option is one field here plus the code that uses
it. Per-task defaults are plain data (:data:`TEACHER_DEFAULTS`, :data:`DISTILL_DEFAULTS`).

TensorFlow-free, so that a recipe's ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import os

from refbert_tf.dense_retrieval import KEY_SPACES
from refbert_tf.models.presets import DENSE_ENTRIES, REFERENCE_PROJECTIONS, RETRIEVALS, STUDENT_PRESETS

STUDENT_INITS = ("auto", "random", "pruned", "teacher", "teacher-embeddings")  # or a directory: see DistillConfig.init


def setting(
    default,
    help: str,
    *,
    knob: bool = False,
    minimum=None,
    maximum=None,
    above=None,
    choices=None,
    flag: str | None = None,
    metavar: str | None = None,
    aliases: dict | None = None,
):
    """A config field with its command-line description.

    Args:
        default: the field's default value.
        help: the option's help text (the default is appended by the recipes).
        knob: an ablation knob: :func:`refbert_tf.reports.ablation_summary` describes runs by the knobs they change.
        minimum, maximum: inclusive bounds; ``above``: exclusive lower bound. Checked, with finiteness, when the
            config is built (:meth:`TrainingConfig.__post_init__`).
        choices: the allowed values.
        flag: the option's name when it is not ``--<field-name>`` (booleans get ``--flag`` / ``--no-flag``).
        metavar: the value's name in ``--help``.
        aliases: old option spellings that still work: ``{"--old-flag": value}`` sets the field to ``value``, and
            ``{"--old-flag": None}`` takes the value from the command line; both print the new spelling.

    Returns:
        a ``dataclasses.field``.
    """
    meta = {
        "help": help,
        "knob": knob,
        "minimum": minimum,
        "maximum": maximum,
        "above": above,
        "choices": choices,
        "flag": flag,
        "metavar": metavar,
        "aliases": aliases or {},
    }
    return dataclasses.field(default=default, metadata=meta)


def option_name(field: dataclasses.Field) -> str:
    """The command-line spelling of a config field: ``--bank-tokens`` for ``bank_tokens``."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _check_field(config, field: dataclasses.Field) -> None:
    value, meta, name = getattr(config, field.name), field.metadata, option_name(field)
    if value is None or isinstance(value, (bool, str, tuple)):
        if meta.get("choices") and value is not None and value not in meta["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ValueError(f"{name} must be >= {meta['minimum']}, got {value}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ValueError(f"{name} must be <= {meta['maximum']}, got {value}")
    if meta.get("above") is not None and value <= meta["above"]:
        raise ValueError(f"{name} must be > {meta['above']}, got {value}")


@dataclasses.dataclass
class TrainingConfig:
    """Optimisation settings shared by every training run: fine-tuning (:class:`FinetuneConfig`), task distillation
    (:class:`DistillConfig`) and general distillation (:class:`GeneralDistillConfig`).

    Attributes:
        batch_size: examples per optimizer step: the global batch, split over the replicas of a strategy.
        learning_rate: peak AdamW learning rate (for ``batch_size``; see ``lr_scaling``).
        lr_scaling: ``none``, ``linear`` or ``sqrt``: scale ``learning_rate`` by ``batch_size / 32``
            (see :func:`refbert_tf.distribute.scaled_learning_rate`).
        warmup_ratio: share of steps spent warming up (linear warm-up, then linear decay).
        weight_decay: AdamW decoupled weight decay.
        max_seq_len: packed sequence length limit (tokens).
        seed: seed for weights init, dropout and shuffling.
        backup_every: optimizer steps between resume checkpoints (each is one Keras "epoch" of the progress
            bar; passes over the data are set by the subclass).

    Raises:
        ValueError: a setting outside its range or not finite (the message names the option).
    """

    batch_size: int = setting(
        32, "examples per optimizer step: the global batch, split over the replicas", knob=True, minimum=1
    )
    learning_rate: float = setting(1e-4, "peak AdamW learning rate", knob=True, above=0)
    lr_scaling: str = setting(
        "none",
        "scale the learning rate by (global batch / 32): linear (Goyal et al. 2017) or sqrt",
        choices=("none", "linear", "sqrt"),
    )
    warmup_ratio: float = setting(0.1, "share of steps spent on the linear warm-up", minimum=0, maximum=1)
    weight_decay: float = setting(0.01, "AdamW decoupled weight decay (not on biases and LayerNorm)", minimum=0)
    max_seq_len: int = setting(128, "max packed tokens per input; longer inputs are truncated", minimum=8)
    seed: int = setting(42, "random seed: weights init, dropout, shuffling, anchor selection", minimum=0)
    backup_every: int = setting(200, "optimizer steps between resume checkpoints", minimum=1)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _check_field(self, field)


@dataclasses.dataclass
class FinetuneConfig(TrainingConfig):
    """Hyper-parameters of one teacher fine-tuning run: :class:`TrainingConfig` plus

    Attributes:
        epochs: passes over the training set.
        learning_rate: peak learning rate (default 5e-5, BERT's).
        dropout: dropout before the task head.
    """

    epochs: float = setting(3.0, "passes over the training set (may be fractional)", above=0)
    learning_rate: float = setting(5e-5, "peak AdamW learning rate", above=0)
    dropout: float = setting(0.1, "dropout before the task head", minimum=0, maximum=0.99)


@dataclasses.dataclass
class DistillConfig(TrainingConfig):
    """Hyper-parameters of one task-distillation run (RefBERT, Wang et al. 2021; TinyBERT, Jiao et al. 2020):
    :class:`TrainingConfig` (``learning_rate`` 1e-4 in both stages) plus

    Attributes:
        student: student preset (:data:`~refbert_tf.models.presets.STUDENT_PRESETS`).
        embedding_dim: E of factorised token embeddings (ALBERT, Lan et al. 2020, sec. 3.1): a [V, E] table and an
            E x H projection; 0 keeps the preset's [V, H] table. At most the preset's hidden width.
        use_reference: RefBERT (True) or the vanilla TinyBERT baseline (False), all else equal.
        init: how the student's weights start: ``auto`` (``pruned`` when the student fits the teacher,
            :func:`~refbert_tf.models.pruning.pruning_misfit`, else ``random``), ``random``, ``pruned`` (a
            width-pruned slice of the fine-tuned teacher, :mod:`refbert_tf.models.pruning`; an error if it does
            not fit), ``teacher`` (the teacher's embeddings and mapped blocks; equal widths), ``teacher-embeddings``
            (the teacher's embeddings projected by PCA) or a directory holding a general-distilled student
            (``recipes/general_distill.py``; TinyBERT sec. 3.3). A run's result records the resolved choice.
        bank_layer: teacher layer whose hidden states the bank stores (0 = embeddings, -1 = the last block).
        bank_tokens: R, tokens stored per anchor ([CLS] first).
        max_anchors: M, cap on the number of anchors (k-means picks them above it).
        num_buckets: K, hash buckets of the retrieval key.
        top_k: references read per input (1: RefBERT; k > 1: the k best anchors' R tokens side by side).
        reference_projection: P, ``linear`` or ``linear_norm`` (see :class:`~refbert_tf.models.student.RefBertStudent`).
        retrieval: how the reference is found: ``lexical`` (hashed wordpieces, :mod:`refbert_tf.retrieval`) or
            ``dense`` (cosine of teacher keys, :mod:`refbert_tf.bank.dense`; a RefBERT run only).
        dense_entry: dense only: ``early`` (the reference tokens join the first block's keys and values) or
            ``late`` (the nearest anchors' teacher probabilities mixed with the student's prediction).
        dense_key_space: dense only: the teacher key space (``cls``, ``pooled``, ``mean``;
            :data:`~refbert_tf.dense_retrieval.KEY_SPACES`).
        dense_top_k, dense_temperature: late entry only: anchors mixed per input, softmax temperature over their
            cosine similarities.
        query_loss_weight: dense only: weight of the query loss, mean (1 - cos(query, the input's teacher key)),
            added in both stages.
        intermediate_epochs, prediction_epochs: passes over the training set in each stage.
        temperature: prediction-loss temperature (TinyBERT Eq. 11).
        prediction_loss: the prediction-stage loss on classification logits, by name
            (:data:`~refbert_tf.distillation.PREDICTION_LOSSES`); regression always uses MSE.
        augment: N_a, word-replaced copies of each training example (TinyBERT sec. 3.1; 0: none). Epochs count
            passes over the augmented set, ``1 + augment`` times the rows.
        augment_prob: p_t, probability of replacing each one-piece word.
        augment_candidates: K, nearest teacher-embedding neighbours a word is replaced by.

    Raises:
        ValueError: a setting outside its range; an ``init`` that is neither a known choice nor a directory.
    """

    student: str = setting("tinybert4", "student preset", knob=True, choices=STUDENT_PRESETS)
    embedding_dim: int = setting(
        0,
        "E: factorised token embeddings, a V x E table and an E x hidden projection (ALBERT); 0: the preset's "
        "hidden width, no projection",
        knob=True,
        minimum=0,
    )
    use_reference: bool = setting(
        True,
        "RefBERT references (--no-reference: the vanilla TinyBERT baseline, all else equal)",
        knob=True,
        flag="--reference",
    )
    init: str = setting(
        "auto",
        "how the student's weights start: auto (pruned from the fine-tuned teacher when the student fits "
        "it, else random), random, pruned (fail if it does not fit), teacher (copy the teacher's embeddings and "
        "mapped blocks; equal widths), teacher-embeddings (the teacher's embeddings projected by PCA), or DIR (the "
        "encoder of a general-distilled student, recipes/general_distill.py)",
        knob=True,
        metavar="{auto,random,pruned,teacher,teacher-embeddings,DIR}",
        aliases={
            "--init-by-pruning": "pruned",
            "--random-init": "random",
            "--init-from-teacher": "teacher",
            "--init-embeddings-from-teacher": "teacher-embeddings",
            "--student-init": None,
        },
    )
    bank_layer: int = setting(
        -1, "teacher layer whose hidden states the bank stores (0 = embeddings, -1 = last)", knob=True
    )
    bank_tokens: int = setting(4, "R: tokens stored per anchor", knob=True, minimum=1)
    max_anchors: int = setting(1024, "M: bank size cap; k-means picks the anchors", knob=True, minimum=1)
    num_buckets: int = setting(1024, "K: hash buckets of the retrieval key", knob=True, minimum=1)
    top_k: int = setting(
        1, "references read per input (1: RefBERT; k > 1: the k best anchors side by side)", knob=True, minimum=1
    )
    reference_projection: str = setting(
        "linear",
        "P: teacher width -> student width: linear, or linear_norm (then a LayerNorm)",
        knob=True,
        choices=REFERENCE_PROJECTIONS,
    )
    retrieval: str = setting(
        "lexical",
        "how a reference is found: lexical (hashed wordpieces) or dense (cosine of fine-tuned teacher keys; the "
        "student learns a query head)",
        knob=True,
        choices=RETRIEVALS,
    )
    dense_entry: str = setting(
        "early",
        "dense: where the reference enters: early (its tokens in the first block's keys and values, RefBERT) or "
        "late (the nearest anchors' teacher probabilities mixed with the prediction, ReAugKD)",
        knob=True,
        choices=DENSE_ENTRIES,
    )
    dense_key_space: str = setting("cls", "dense: the teacher key space", knob=True, choices=KEY_SPACES)
    dense_top_k: int = setting(16, "dense, late: anchors mixed per input", knob=True, minimum=1)
    dense_temperature: float = setting(
        0.1, "dense, late: softmax temperature over the anchors' cosine similarities", knob=True, above=0
    )
    query_loss_weight: float = setting(
        1.0, "dense: weight of the query loss (1 - cosine to the input's own teacher key)", knob=True, minimum=0
    )
    intermediate_epochs: float = setting(
        1.0,
        "passes over the training set in the intermediate stage (embeddings, attention scores, hidden states)",
        knob=True,
        minimum=0,
    )
    prediction_epochs: float = setting(
        1.0, "passes over the training set in the prediction stage (logits)", knob=True, minimum=0
    )
    temperature: float = setting(1.0, "prediction-loss temperature", knob=True, above=0)
    prediction_loss: str = setting(
        "soft_ce",
        "prediction-stage loss on classification logits: soft_ce (TinyBERT "
        "Eq. 11) or mse (squared logit difference; Kim et al. 2021)",
        knob=True,
        choices=("soft_ce", "mse"),
    )
    augment: int = setting(
        0,
        "N: word-replaced copies of each training example, relabelled by the teacher "
        "(TinyBERT data augmentation; 0 = off); epochs then count passes over the (1 + N)x set",
        knob=True,
        minimum=0,
    )
    augment_prob: float = setting(
        0.4, "p_t: probability of replacing each one-piece word", knob=True, minimum=0, maximum=1
    )
    augment_candidates: int = setting(15, "K: nearest teacher-embedding neighbours a word may become", minimum=1)

    def __post_init__(self):
        super().__post_init__()
        if self.retrieval == "dense" and not self.use_reference:
            raise ValueError("--retrieval dense is a RefBERT variant: it cannot be combined with --no-reference")
        hidden = STUDENT_PRESETS[self.student]["hidden_dim"]
        if self.embedding_dim > hidden:
            raise ValueError(
                f"--embedding-dim {self.embedding_dim} exceeds the {self.student} student's hidden width {hidden}: "
                "factorised embeddings are narrower than the encoder (0 for none)"
            )
        if self.init not in STUDENT_INITS and not os.path.isdir(self.init):
            raise ValueError(
                f"--init {self.init!r}: neither one of {', '.join(STUDENT_INITS)} nor a directory "
                "holding a general-distilled student"
            )


def model_name(config: DistillConfig) -> str:
    """The student's name in run directories, result files and exported files: ``vanilla``, ``refbert`` (lexical
    references) or ``refbert_dense_<early|late>``."""
    if not config.use_reference:
        return "vanilla"
    return "refbert" if config.retrieval == "lexical" else f"refbert_dense_{config.dense_entry}"


@dataclasses.dataclass
class GeneralDistillConfig(TrainingConfig):
    """Hyper-parameters of one general-distillation run (TinyBERT, Jiao et al. 2020, sec. 3.3):
    :class:`TrainingConfig` (``seed`` also picks the corpus subset) plus

    Attributes:
        student: student preset.
        tasks: GLUE tasks whose training text forms the corpus (None: every task present).
        max_examples: cap on corpus rows (a seeded random subset).
        epochs: passes over the corpus (TinyBERT: 3 over English Wikipedia).
    """

    student: str = setting("tinybert4", "student preset", choices=STUDENT_PRESETS)
    tasks: tuple | None = setting(None, "GLUE tasks whose training text forms the corpus (default: every task present)")
    max_examples: int | None = setting(None, "use a seeded random subset of N corpus rows", minimum=1)
    epochs: float = setting(3.0, "passes over the corpus", above=0)


@dataclasses.dataclass
class MixedVocabConfig(TrainingConfig):
    """Hyper-parameters of stage I of mixed-vocabulary distillation (Zhao et al. 2021, Sec. 3.1;
    :mod:`refbert_tf.models.mixed_vocabulary`): :class:`TrainingConfig` plus

    Attributes:
        student_vocab_size: pieces of the student vocabulary, special tokens included.
        vocab_min_frequency: a WordPiece merge must occur this often in the training text.
        mix_prob: p, probability that a word of a training input is tokenized with the student vocabulary.
        embedding_dim: E, the width of the student-vocabulary table (the student's hidden width).
        epochs: passes over the training set (each pass draws the mixed tokenization anew).
        learning_rate: peak learning rate.
        kd_weight: weight of the distillation term towards the original teacher's logits (the rest: gold labels).
        temperature: its softmax temperature.
        train_teacher: train the teacher's weights too (False: only the new table and projection).
    """

    student_vocab_size: int = setting(8192, "pieces of the student vocabulary (special tokens included)", minimum=16)
    vocab_min_frequency: int = setting(2, "a WordPiece merge must occur this often in the training text", minimum=1)
    mix_prob: float = setting(
        1.0, "p: probability that a word is tokenized with the student vocabulary", minimum=0, maximum=1
    )
    embedding_dim: int = setting(312, "E: width of the student-vocabulary table (the student's width)", minimum=1)
    epochs: float = setting(1.0, "passes over the training set (a new mixed tokenization each pass)", above=0)
    learning_rate: float = setting(5e-5, "peak AdamW learning rate", above=0)
    kd_weight: float = setting(
        0.5, "weight of the distillation term towards the original teacher's logits", minimum=0, maximum=1
    )
    temperature: float = setting(1.0, "temperature of the distillation term", above=0)
    train_teacher: bool = setting(
        True, "train the teacher's weights too (--no-train-teacher: only the new table and projection)"
    )


# Per-task defaults for the MiniLM-L6-H384 teacher; results/teacher/*.json record what each produced.
TEACHER_DEFAULTS: dict[str, dict] = {
    "sst2": dict(epochs=0.5, learning_rate=1e-4),
    "cola": dict(epochs=6, learning_rate=1e-4),
    "mrpc": dict(epochs=3, learning_rate=1e-4),
    "rte": dict(epochs=6, learning_rate=3e-5),
    "stsb": dict(epochs=3, learning_rate=1e-4),
    "wnli": dict(epochs=3, learning_rate=2e-5),
}

# Per-task distillation budgets (passes over the training set per stage).
DISTILL_DEFAULTS: dict[str, dict] = {
    "sst2": dict(intermediate_epochs=1.0, prediction_epochs=1.0),
    "cola": dict(intermediate_epochs=4.0, prediction_epochs=3.0),
    "mrpc": dict(intermediate_epochs=6.0, prediction_epochs=4.0),
    "rte": dict(intermediate_epochs=6.0, prediction_epochs=4.0),
    "stsb": dict(intermediate_epochs=4.0, prediction_epochs=3.0),
}

# Per-task stage-I settings of mixed-vocabulary distillation (passes over the training set; SST-2: the one setting
# measured within 1.0 point of the teacher; p = 1 for every task, measured better than 0.5 on SST-2: results/mixed_vocab/
# and docs/method.md).
MIXED_VOCAB_DEFAULTS: dict[str, dict] = {
    "sst2": dict(epochs=1.5),
    "cola": dict(epochs=3),
    "mrpc": dict(epochs=3),
    "rte": dict(epochs=3),
    "stsb": dict(epochs=3),
}

ABLATION_KNOBS = tuple(f.name for f in dataclasses.fields(DistillConfig) if f.metadata.get("knob"))


def task_config(config_cls, defaults: dict, task: str, **overrides):
    """``config_cls`` with the task's ``defaults`` and the non-None ``overrides`` applied.

    Raises:
        TypeError: for an override that is not a field of ``config_cls``.
        ValueError: a value outside its field's range.
    """
    values = dict(defaults.get(task, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_cls(**values)


def teacher_config(task: str, **overrides) -> FinetuneConfig:
    """The default :class:`FinetuneConfig` for ``task``, with non-None ``overrides`` applied."""
    return task_config(FinetuneConfig, TEACHER_DEFAULTS, task, **overrides)


def distill_config(task: str, **overrides) -> DistillConfig:
    """The default :class:`DistillConfig` for ``task``, with non-None ``overrides`` applied."""
    return task_config(DistillConfig, DISTILL_DEFAULTS, task, **overrides)


def mixed_vocab_config(task: str, **overrides) -> MixedVocabConfig:
    """The default :class:`MixedVocabConfig` for ``task``, with non-None ``overrides`` applied."""
    return task_config(MixedVocabConfig, MIXED_VOCAB_DEFAULTS, task, **overrides)


def init_from_record(config: dict) -> str:
    """The ``init`` of a recorded run's config, also for result files written before ``init`` was one field.

    Those recorded ``init_from_teacher``, ``init_embeddings_from_teacher``, ``student_init`` (a directory) and
    ``init_by_pruning`` (absent in runs older than pruning, which started from random weights).
    """
    if "init" in config:
        return config["init"]
    if config.get("init_from_teacher"):
        return "teacher"
    if config.get("init_embeddings_from_teacher"):
        return "teacher-embeddings"
    if config.get("student_init"):
        return str(config["student_init"])
    return "pruned" if config.get("init_by_pruning") else "random"
