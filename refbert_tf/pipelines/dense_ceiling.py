"""How much of the label a *dense* reference can carry: nearest anchors in the teacher's representation spaces.

The dense counterpart of :func:`refbert_tf.pipelines.probes.reference_ceiling` (lexical). For every dev example,
the nearest training anchor (top-1) and the majority vote of the ``vote`` nearest, by cosine similarity of keys
from :func:`refbert_tf.dense_retrieval.teacher_keys`; the share of dev examples whose reference (or vote) has their
gold label, beside the majority class and the teacher's own dev accuracy, bounds what a reference found in that
space could teach. Spaces: ``teacher:<cls|pooled|mean>`` (the fine-tuned teacher: the upper bound the device cannot
compute) and ``pretrained:mean`` (the pre-trained encoder's mean-pooled sentence embedding). A diagnostic of our
own (the question of ReAugKD, Zhang et al. 2023, and kNN-CM, 2023); RefBERT does not report it.
"""

from __future__ import annotations

import numpy as np

from refbert_tf.bank.store import label_agreement
from refbert_tf.data import GlueTask, get_task, load_encoded_splits
from refbert_tf.dense_retrieval import KEY_SPACES, dense_neighbours, teacher_keys

SPACES = tuple(f"teacher:{s}" for s in KEY_SPACES) + ("pretrained:mean",)


def vote_labels(neighbour_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority label of each row of ``neighbour_labels`` int [N, k] (ties: the lowest label id)."""
    return np.array([np.bincount(row, minlength=num_classes).argmax() for row in neighbour_labels], np.int64)


def dense_ceiling(
    task: GlueTask | str,
    teacher_dir,
    spaces=("teacher:cls",),
    max_anchors: int | None = 20000,
    vote: int = 16,
    train_sample: int = 2000,
    glue_dir=None,
    source: str = "tsv",
    seed: int = 42,
    pretrained_checkpoint=None,
    max_train_examples: int | None = None,
) -> list[dict]:
    """Label agreement of dense nearest anchors, per key space.

    Args:
        task: GLUE classification task.
        teacher_dir: its fine-tuned teacher (:func:`~refbert_tf.models.teacher.load_teacher`).
        spaces: names from :data:`SPACES`.
        max_anchors: a seeded random sample of this many training examples are the anchors (None or 0: all).
        vote: neighbours in the majority vote (0: none).
        train_sample: anchors whose own nearest *other* anchor is scored too (the training references).
        glue_dir, source: GLUE data.
        seed: the anchor and sample seed.
        pretrained_checkpoint: the encoder of ``pretrained:mean`` (None: the default MiniLM checkpoint).
        max_train_examples: read only the first N training examples (smoke runs, tests).

    Returns:
        one row per space: ``{"task", "space", "num_anchors", "dev": {agreement, majority_class, mean_similarity},
        "dev_vote": {k, agreement, majority_class}, "train": {...}, "teacher_dev": the teacher's dev metrics}``
        (percent).

    Raises:
        ValueError: a regression task, or an unknown space.
    """
    from refbert_tf.models.teacher import load_teacher  # lazy: TensorFlow

    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: label agreement is undefined")
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise ValueError(f"unknown key space(s) {unknown}; use {', '.join(SPACES)}")
    teacher, tokenizer, meta = load_teacher(teacher_dir, task)
    max_len = meta["max_seq_len"]
    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir, max_train_examples)
    rng = np.random.default_rng(seed)
    anchors = np.arange(len(train))
    if max_anchors and len(train) > max_anchors:
        anchors = np.sort(rng.permutation(len(train))[:max_anchors])
    anchor_f = {k: tf_gather(train_f[k], anchors) for k in ("token_ids", "segment_ids")}
    anchor_labels = np.asarray(train.labels)[anchors]
    sample = np.sort(rng.permutation(len(anchors))[: min(train_sample, len(anchors))])
    pretrained = None
    rows = []
    for space in spaces:
        owner, kind = space.split(":")
        if owner == "pretrained" and pretrained is None:
            from refbert_tf.models.checkpoints import load_backbone

            pretrained, pre_tok, _ = load_backbone(pretrained_checkpoint, max_seq_len=max_len)
            if pre_tok.vocab_sha256 != tokenizer.vocab_sha256:
                raise ValueError(f"{space}: the pre-trained encoder's vocabulary is not the teacher's")
        encoder = teacher if owner == "teacher" else pretrained
        anchor_keys = teacher_keys(encoder, anchor_f, kind)
        dev_keys = teacher_keys(encoder, dev_f, kind)
        k = min(vote or 1, len(anchors) - 1)
        best, sim = dense_neighbours(dev_keys, anchor_keys, k=max(1, k))
        own, own_sim = dense_neighbours(anchor_keys[sample], anchor_keys, k=1, exclude=sample)
        row = {
            "task": task.name,
            "space": space,
            "num_anchors": int(len(anchors)),
            "dev": label_agreement(dev.labels, anchor_labels[best[:, 0]], sim[:, 0]),
            "train": label_agreement(anchor_labels[sample], anchor_labels[own[:, 0]], own_sim[:, 0]),
            "teacher_dev": meta.get("metrics"),
        }
        if vote:
            voted = vote_labels(anchor_labels[best], task.num_classes)
            row["dev_vote"] = {"k": int(best.shape[1]), **label_agreement(dev.labels, voted)}
        rows.append(row)
    return rows


def tf_gather(ragged, rows):
    """Rows ``rows`` (int [M]) of a ragged tensor [N, (T)]."""
    import tensorflow as tf  # lazy

    return tf.gather(ragged, tf.constant(rows, tf.int64))


def dense_ceiling_markdown(rows: list[dict]) -> str:
    """Markdown table of :func:`dense_ceiling` rows."""
    lines = [
        "| task | key space | anchors | dev: top-1 has the input's label | dev: vote of the k best | "
        "train: top-1 (not itself) | majority class (dev) | teacher dev |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vote = f"{r['dev_vote']['agreement']:.2f} (k={r['dev_vote']['k']})" if "dev_vote" in r else "-"
        teacher = ", ".join(f"{k} {v:.2f}" for k, v in (r.get("teacher_dev") or {}).items())
        lines.append(
            f"| {r['task']} | {r['space']} | {r['num_anchors']} | {r['dev']['agreement']:.2f} | {vote} | "
            f"{r['train']['agreement']:.2f} | {r['dev']['majority_class']:.2f} | {teacher} |"
        )
    return "\n".join(lines) + "\n"
