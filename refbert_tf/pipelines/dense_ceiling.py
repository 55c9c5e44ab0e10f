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
from scipy.special import softmax

from refbert_tf.bank.store import label_agreement
from refbert_tf.data import GlueTask, get_task, load_encoded_splits, take_examples
from refbert_tf.dense_retrieval import KEY_SPACES, dense_neighbours, teacher_keys, unit_rows, vote_labels

SPACES = tuple(f"teacher:{s}" for s in KEY_SPACES) + ("pretrained:mean",)


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
    train, dev, dev_f, anchors, anchor_f, anchor_labels, rng = sample_anchors(
        task, tokenizer, max_len, max_anchors, seed, source, glue_dir, max_train_examples
    )
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


def sample_anchors(task, tokenizer, max_len, max_anchors, seed, source, glue_dir, max_train_examples):
    """The task's splits encoded with ``tokenizer`` and the anchors: a seeded random sample of ``max_anchors``
    training examples (all of them when there are fewer, or for None).

    Returns:
        ``(train, dev, dev_features, anchors int [M] (training rows, sorted), anchor_features, anchor_labels [M],
        rng)``; ``rng`` is the seeded generator after the draw, for the callers' further samples.
    """
    import tensorflow as tf  # lazy

    train, dev, train_f, dev_f = load_encoded_splits(task, tokenizer, max_len, source, glue_dir, max_train_examples)
    rng = np.random.default_rng(seed)
    anchors = np.arange(len(train))
    if max_anchors and len(train) > max_anchors:
        anchors = np.sort(rng.permutation(len(train))[:max_anchors])
    anchor_f = take_examples(train_f, tf.constant(anchors, tf.int64))
    return train, dev, dev_f, anchors, anchor_f, np.asarray(train.labels)[anchors], rng


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


def _encoder_outputs(model, features: dict, batch_size: int = 64) -> dict:
    """One pass of a teacher (keras-hub classifier) or a :class:`~refbert_tf.models.student.RefBertStudent` over
    encoded examples: ``cls`` [N, H] (last-layer ``[CLS]`` state) and ``logits`` [N, C]."""
    from refbert_tf.data import make_dataset  # lazy: TensorFlow

    cls, logits = [], []
    for batch in make_dataset(features, None, batch_size=batch_size, shuffle=False):
        if hasattr(model, "call_with_features"):  # a student
            out = model.call_with_features(batch, training=False)
            cls.append(np.asarray(out["hidden_states"][-1][:, 0]))
            logits.append(np.asarray(out["logits"]))
        else:
            states = model.backbone(batch, training=False)
            cls.append(np.asarray(states["sequence_output"][:, 0]))
            logits.append(np.asarray(model.output_dense(states["pooled_output"])))
    return {"cls": np.concatenate(cls), "logits": np.concatenate(logits)}


def knn_soft_labels(similarity: np.ndarray, neighbour_probs: np.ndarray, temperature: float) -> np.ndarray:
    """Similarity-weighted mean of the neighbours' teacher probabilities (ReAugKD's aggregation, Zhang et al. 2023):
    weights ``softmax(similarity / temperature)`` over the k neighbours.

    Args:
        similarity: float [N, k] cosine similarities; neighbour_probs: float [N, k, C].

    Returns:
        float [N, C] probabilities.
    """
    w = softmax(similarity / temperature, axis=-1)
    return np.einsum("nk,nkc->nc", w, neighbour_probs)


def late_fusion_probe(
    task: GlueTask | str,
    teacher_dir,
    student_dir,
    max_anchors: int | None = 20000,
    k: int = 16,
    held_out: float = 0.2,
    ridge_alpha: float = 1.0,
    weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    temperatures=(0.01, 0.03, 0.1, 0.3),
    glue_dir=None,
    source: str = "tsv",
    seed: int = 42,
    max_train_examples: int | None = None,
) -> dict:
    """A post-hoc pilot of late dense retrieval: what a trained student would gain from the teacher's soft labels
    of the anchors nearest its query, without retraining it (*our* probe, in the spirit of ReAugKD, Zhang et al.
    2023, and kNN-CM, 2023; a jointly trained query and mixing weight, as ReAugKD does, can only do better on the
    training objective).

    The student's last-layer ``[CLS]`` state is mapped to the teacher's ``[CLS]`` key space by ridge regression
    (scikit-learn ``Ridge``) fitted on the anchors; a dev query's k nearest anchors (cosine, teacher keys) give
    :func:`knn_soft_labels`; the prediction is ``(1 - lambda) softmax(z_S) + lambda p_kNN``. ``lambda`` and the
    temperature are chosen on ``held_out`` of the anchors (queries from anchors the ridge was not fitted on, their
    own anchor excluded), never on dev.

    Args:
        task: GLUE classification task.
        teacher_dir: its fine-tuned teacher; student_dir: a distilled student run (``student.keras``), vanilla:
            a RefBERT student's in-graph reference would be the anchor itself on training examples.
        max_anchors: a seeded random sample of training examples as anchors (None: all).
        k: neighbours aggregated.
        held_out: share of the anchors held out to choose ``lambda`` and the temperature.
        ridge_alpha: the ridge penalty.
        weights, temperatures: the grids of ``lambda`` and of the aggregation temperature.
        glue_dir, source, seed, max_train_examples: data and sampling.

    Returns:
        ``{"task", "metric", "num_anchors", "k", "student" (dev metric alone), "fused" (dev metric, student query),
        "fused_teacher_query" (dev metric with the teacher's own dev keys: the upper bound), "dev_sweep" (both
        on dev at every grid point: a diagnostic whose maximum is optimistic, chosen on dev), "lambda",
        "temperature", "held_out_metric" {alone, fused}, "query_ceiling": {dev top-1 / vote agreement with the
        student query}, "query_cosine" (mean cosine of the mapped query to the teacher's dev key)}``, metrics in
        percent.

    Raises:
        ValueError: a regression task, or a student of another vocabulary than the teacher's.
    """
    from sklearn.linear_model import Ridge

    from refbert_tf.metrics import compute_metrics
    from refbert_tf.models.student import load_student
    from refbert_tf.models.teacher import load_teacher

    task = get_task(task) if isinstance(task, str) else task
    if task.is_regression:
        raise ValueError(f"{task.name} is a regression task: the probe mixes class probabilities")
    teacher, tokenizer, meta = load_teacher(teacher_dir, task)
    student, student_meta = load_student(student_dir)
    if student_meta.get("vocab_sha256") != tokenizer.vocab_sha256:
        raise ValueError(f"{student_dir}: the student reads another vocabulary than the teacher of {teacher_dir}")
    max_len = meta["max_seq_len"]
    train, dev, dev_f, anchors, anchor_f, labels, rng = sample_anchors(
        task, tokenizer, max_len, max_anchors, seed, source, glue_dir, max_train_examples
    )
    t_anchor, s_anchor = _encoder_outputs(teacher, anchor_f), _encoder_outputs(student, anchor_f)
    t_dev, s_dev = _encoder_outputs(teacher, dev_f), _encoder_outputs(student, dev_f)
    keys, probs = unit_rows(t_anchor["cls"]), softmax(t_anchor["logits"], axis=-1)
    order = rng.permutation(len(anchors))
    hold = np.sort(order[: max(1, int(held_out * len(anchors)))])
    fit_rows = np.sort(order[len(hold) :])
    ridge = Ridge(alpha=ridge_alpha).fit(s_anchor["cls"][fit_rows], keys[fit_rows])

    def neighbours(query, exclude):
        found, sim = dense_neighbours(query, keys, k=k, exclude=exclude)
        return found, sim, probs[found]

    def fused(student_logits, near, lam, temp):
        _, sim, near_probs = near
        return ((1 - lam) * softmax(student_logits, axis=-1) + lam * knn_soft_labels(sim, near_probs, temp)).argmax(-1)

    def metric(predictions, gold):
        return float(compute_metrics(task, predictions, gold)[task.main_metric])

    hold_near = neighbours(unit_rows(ridge.predict(s_anchor["cls"][hold])), hold)
    grid = [
        (metric(fused(s_anchor["logits"][hold], hold_near, lam, temp), labels[hold]), lam, temp)
        for lam in weights
        for temp in temperatures
    ]
    best_metric, lam, temp = max(grid, key=lambda g: (g[0], -g[1]))  # ties: the smaller weight
    dev_query = unit_rows(ridge.predict(s_dev["cls"]))
    teacher_dev_keys = unit_rows(t_dev["cls"])
    dev_near, upper_near = neighbours(dev_query, None), neighbours(teacher_dev_keys, None)
    found = dev_near[0]
    sweep = [
        {"lambda": float(w), "temperature": float(t), "fused": metric(fused(s_dev["logits"], dev_near, w, t), dev.labels),
         "fused_teacher_query": metric(fused(s_dev["logits"], upper_near, w, t), dev.labels)}
        for w in weights
        for t in temperatures
    ]  # fmt: skip
    alone = s_dev["logits"].argmax(-1)
    return {
        "task": task.name,
        "metric": task.main_metric,
        "num_anchors": int(len(anchors)),
        "k": int(k),
        "student_dir": str(student_dir),
        "student": metric(alone, dev.labels),
        "fused": metric(fused(s_dev["logits"], dev_near, lam, temp), dev.labels),
        "fused_teacher_query": metric(fused(s_dev["logits"], upper_near, lam, temp), dev.labels),
        "dev_sweep": sweep,
        "teacher_dev": meta.get("metrics"),
        "lambda": float(lam),
        "temperature": float(temp),
        "held_out_metric": {"alone": metric(s_anchor["logits"][hold].argmax(-1), labels[hold]), "fused": best_metric},
        "query_ceiling": {
            "dev_top1": label_agreement(dev.labels, labels[found[:, 0]]),
            "dev_vote": label_agreement(dev.labels, vote_labels(labels[found], task.num_classes)),
        },
        "query_cosine": round(float(np.mean(np.sum(dev_query * teacher_dev_keys, axis=1))), 4),
    }
