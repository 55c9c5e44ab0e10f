"""How a student's weights start before task distillation: one function per choice of ``DistillConfig.init``.

- ``random``: the Keras initialisers (TinyBERT's task distillation from scratch).
- ``pruned``: a width-pruned slice of the fine-tuned teacher (:mod:`refbert_tf.models.pruning`), copying and then
  learning the teacher layers of :func:`~refbert_tf.distillation.pruning_layer_map`.
- ``teacher``: the teacher's embeddings and mapped blocks (equal widths only).
- ``teacher-embeddings``: the teacher's embeddings projected to the student width by PCA (our addition).
- a directory: the encoder of a general-distilled student (TinyBERT, Jiao et al. 2020, sec. 3.3).
- ``auto``: ``pruned`` when the student fits the teacher (:func:`~refbert_tf.models.pruning.pruning_misfit`), else
  ``random``.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from refbert_tf.distillation import pruning_layer_map
from refbert_tf.models.pruning import (
    init_student_by_pruning,
    pruning_misfit,
    pruning_sample,
    pruning_statistics,
    selection_matrix,
)
from refbert_tf.models.student import RefBertStudent, load_student


def resolve_init(init: str, student: RefBertStudent, teacher_backbone) -> str:
    """The initialisation a run does: ``init`` with ``auto`` decided for this student and teacher encoder.

    ``auto`` becomes ``pruned`` when the student fits the teacher, else ``random`` (with a printed note naming
    the sizes that stand in the way).

    Args:
        init: a ``DistillConfig.init`` value (one of :data:`~refbert_tf.config.STUDENT_INITS` or a directory).
        student: the built student.
        teacher_backbone: the teacher's keras-hub ``BertBackbone``.

    Raises:
        ValueError: ``pruned`` for a student that does not fit the teacher (the message gives the reason).
    """
    misfit = pruning_misfit(student, teacher_backbone)
    if init == "pruned" and misfit:
        raise ValueError(f"--init pruned: {misfit}; pass --init random to train this student from random weights")
    if init == "auto":
        if misfit:
            print(f"The student is not pruned from the teacher ({misfit}): random init.")
        return "random" if misfit else "pruned"
    return init


def distiller_layer_mapping(init: str, student: RefBertStudent, teacher_backbone) -> list[int] | None:
    """The teacher block each student block learns from, for a resolved ``init`` (None: the Distiller's default,
    :func:`~refbert_tf.distillation.layer_map`). A pruned student learns from the blocks it was copied from."""
    if init == "pruned":
        return pruning_layer_map(len(student.blocks), teacher_backbone.num_layers)
    return None


def initialize_student(
    init: str,
    student: RefBertStudent,
    teacher,
    distiller,
    train_features: dict,
    seed: int,
    vocab_sha256: str | None = None,
) -> None:
    """Set ``student``'s starting weights for a resolved ``init`` (see the module docstring).

    Args:
        init: ``random``, ``pruned``, ``teacher``, ``teacher-embeddings`` or a general-student directory.
        student: the built student (``distiller.student``).
        teacher: the fine-tuned keras-hub ``BertTextClassifier`` (or a bare ``BertBackbone``).
        distiller: the :class:`~refbert_tf.distillation.Distiller` pairing it with the teacher; for ``pruned``
            its ``fit_dense`` (student width -> teacher width) starts as the 0/1 map back to the kept coordinates.
        train_features: encoded training examples (``pruned`` ranks the units on a seeded sample of them).
        seed: picks that sample.
        vocab_sha256: the teacher vocabulary's hash (checked against a general student's).

    Raises:
        ValueError: ``auto`` (resolve it first with :func:`resolve_init`), or shapes that do not fit.
        FileNotFoundError: a general-student directory without its files.
    """
    if init == "auto" or not isinstance(init, str):
        raise ValueError(f"initialize_student: resolve init={init!r} with resolve_init first")
    backbone = getattr(teacher, "backbone", teacher)
    if init == "teacher":
        init_student_from_teacher(student, backbone, distiller.mapping)
    elif init == "teacher-embeddings":
        init_student_embeddings_from_teacher(student, backbone)
    elif init == "pruned":
        stats = pruning_statistics(distiller.teacher_features, pruning_sample(train_features, seed))
        kept = init_student_by_pruning(student, teacher, stats, distiller.mapping)
        distiller.fit_dense.set_weights(
            [selection_matrix(kept, backbone.hidden_dim), np.zeros(backbone.hidden_dim, np.float32)]
        )
    elif init != "random":
        init_student_from_general(student, init, vocab_sha256)


def init_student_from_teacher(student: RefBertStudent, teacher_backbone, layer_mapping: list[int]) -> None:
    """Copy the teacher's embeddings and the mapped Transformer blocks into a student of the same width.

    Args:
        student: a built :class:`RefBertStudent`.
        teacher_backbone: the teacher's keras-hub ``BertBackbone``.
        layer_mapping: teacher block (1-based) for each student block, e.g.
            :func:`refbert_tf.distillation.layer_map`.

    Raises:
        ValueError: if hidden size, heads, FFN size or vocabulary differ (initialise randomly instead), or the
            student has factorised embeddings.
    """
    c = student.config_values
    mine = (c["hidden_dim"], c["num_heads"], c["intermediate_dim"], c["vocabulary_size"])
    theirs = (
        teacher_backbone.hidden_dim,
        teacher_backbone.num_heads,
        teacher_backbone.intermediate_dim,
        teacher_backbone.vocabulary_size,
    )
    if mine != theirs:
        raise ValueError(
            f"student (hidden, heads, ffn, vocab) = {mine} differs from the teacher's {theirs}: "
            "initialisation from the teacher needs equal widths"
        )
    _refuse_factorised(student, "init teacher")
    student.token_embedding.set_weights(teacher_backbone.get_layer("token_embedding").get_weights())
    student.segment_embedding.set_weights(teacher_backbone.get_layer("segment_embedding").get_weights())
    positions = teacher_backbone.get_layer("position_embedding").get_weights()[0]
    student.position_embedding.set_weights([positions[: c["max_sequence_length"]]])
    student.embeddings_layer_norm.set_weights(teacher_backbone.get_layer("embeddings_layer_norm").get_weights())
    for block, t in zip(student.blocks, layer_mapping):
        block.set_weights(teacher_backbone.get_layer(f"transformer_layer_{t - 1}").get_weights())
    student.pooled_dense.set_weights(teacher_backbone.get_layer("pooled_dense").get_weights())


def init_student_embeddings_from_teacher(student: RefBertStudent, teacher_backbone) -> np.ndarray:
    """Initialise the student's token, position and segment embeddings from a wider (or equal) teacher's, by PCA.

    The teacher's token-embedding matrix E_t [V, d_t] gives a PCA basis C [d_s, d_t] (scikit-learn ``PCA``, the
    top d_s principal directions, orthonormal rows); the student gets E_t C^T for tokens, and the same map of the
    teacher's position [:max_sequence_length] and segment embeddings, so their sum, which the embedding LayerNorm
    sees, is mapped consistently. The LayerNorm and everything above the embeddings stay randomly initialised.
    This gives a student narrower than the teacher (tinybert4: 312 < 384) the teacher's lexical geometry in its
    d_s strongest directions, in place of TinyBERT's general distillation (Jiao et al. 2020, sec. 3.2), which this
    machine cannot run. Our addition; not in the RefBERT design note.

    Args:
        student: a built :class:`RefBertStudent`.
        teacher_backbone: the teacher's keras-hub ``BertBackbone`` (same vocabulary, hidden_dim >= the student's).

    Returns:
        The basis C, [d_s, d_t] float32.

    Raises:
        ValueError: if the vocabularies differ in size, the student is wider than the teacher or has factorised
            embeddings.
    """
    c = student.config_values
    d_s, d_t = c["hidden_dim"], teacher_backbone.hidden_dim
    if c["vocabulary_size"] != teacher_backbone.vocabulary_size:
        raise ValueError(
            f"student vocabulary ({c['vocabulary_size']}) differs from the teacher's "
            f"({teacher_backbone.vocabulary_size}): embeddings cannot be initialised from the teacher"
        )
    if d_s > d_t:
        raise ValueError(f"student width {d_s} exceeds the teacher's {d_t}: PCA cannot add directions")
    _refuse_factorised(student, "init teacher-embeddings")
    tokens = np.asarray(teacher_backbone.get_layer("token_embedding").get_weights()[0], np.float64)
    basis = PCA(n_components=d_s, svd_solver="full").fit(tokens).components_.astype(np.float32)
    positions = teacher_backbone.get_layer("position_embedding").get_weights()[0][: c["max_sequence_length"]]
    segments = teacher_backbone.get_layer("segment_embedding").get_weights()[0][: student.segment_embedding.input_dim]
    student.token_embedding.set_weights([tokens.astype(np.float32) @ basis.T])
    student.position_embedding.set_weights([positions @ basis.T])
    student.segment_embedding.set_weights([segments @ basis.T])
    return basis


def _refuse_factorised(student, init: str) -> None:
    if student.embedding_projection is not None:
        raise ValueError(
            f"{init} copies a [V, hidden] token table, but the student has factorised embeddings (embedding_dim "
            f"{student.config_values['embedding_dim']}): use init pruned (a truncated SVD of the pruned table) or random"
        )


ENCODER_SHAPE = ("vocabulary_size", "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "embedding_dim")


def init_student_from_general(student: RefBertStudent, general_dir, vocab_sha256: str | None = None) -> dict:
    """Start task distillation from a general-distilled student (TinyBERT, Jiao et al. 2020, sec. 3.3: task
    distillation starts from the general TinyBERT).

    Copies the encoder: token, position (first ``max_sequence_length`` rows) and segment embeddings, the embedding
    LayerNorm and every Transformer block. The pooler, the classifier and the reference projection P are task
    parts that general distillation does not train; they keep their random initialisation.

    Args:
        student: a built :class:`RefBertStudent` (vanilla or RefBERT; the blocks have the same weights).
        general_dir: a directory written by ``recipes/general_distill.py`` (``student.keras``, ``student.json``,
            ``vocab.txt``); any student directory with the same encoder shape works.
        vocab_sha256: the task tokenizer's vocabulary hash; must equal the one the general student was trained with.

    Returns:
        the general student's ``student.json``.

    Raises:
        FileNotFoundError: a file of ``general_dir`` is missing.
        ValueError: another vocabulary, or an encoder shape (vocabulary size, layers, width, heads, FFN, E) that
            differs from ``student``'s (the message names the directory and both shapes).
    """
    general, meta = load_student(general_dir)
    if vocab_sha256 is not None and meta.get("vocab_sha256") != vocab_sha256:
        raise ValueError(
            f"{general_dir}/vocab.txt is not the teacher's vocabulary (sha256 "
            f"{str(meta.get('vocab_sha256'))[:12]}... vs {vocab_sha256[:12]}...): general-distil with "
            "the same checkpoint's tokenizer"
        )
    mine = {k: student.config_values[k] for k in ENCODER_SHAPE}
    theirs = {k: general.config_values[k] for k in ENCODER_SHAPE}
    if mine != theirs:
        raise ValueError(
            f"{general_dir} holds a student of shape {theirs}, this run builds {mine}: pass the same "
            "--student preset to general_distill.py and distill_glue.py"
        )
    names = ["token_embedding", "segment_embedding", "embeddings_layer_norm"]
    if student.embedding_projection is not None:
        names.append("embedding_projection")
    for name in names:
        getattr(student, name).set_weights(getattr(general, name).get_weights())
    positions = general.position_embedding.get_weights()[0]
    length = student.config_values["max_sequence_length"]
    if positions.shape[0] < length:
        raise ValueError(f"{general_dir} has {positions.shape[0]} positions, this run needs {length}")
    student.position_embedding.set_weights([positions[:length]])
    for mine_block, their_block in zip(student.blocks, general.blocks):
        mine_block.set_weights(their_block.get_weights())
    return meta
