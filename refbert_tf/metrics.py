"""Official GLUE metrics (Wang et al. 2019, "GLUE: A Multi-Task Benchmark..."), computed with scikit-learn/SciPy.

All values are returned in percent. CoLA: Matthews correlation; MRPC/QQP: F1 of the positive class and
accuracy; STS-B: Pearson and Spearman correlation; all others: accuracy.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from refbert_tf.data import GlueTask, get_task


def predictions_from_outputs(task: GlueTask | str, outputs: np.ndarray) -> np.ndarray:
    """Turn model outputs into predictions.

    Args:
        task: task name or :class:`~refbert_tf.data.GlueTask`.
        outputs: logits [N, num_classes] (classification) or scores [N] / [N, 1] (STS-B).

    Returns:
        int class ids [N] (argmax of logits) or float scores [N].
    """
    task = get_task(task) if isinstance(task, str) else task
    outputs = np.asarray(outputs)
    if task.is_regression:
        return outputs.reshape(-1).astype(np.float64)
    return outputs.argmax(axis=-1)


def compute_metrics(task: GlueTask | str, predictions, labels) -> dict[str, float]:
    """Compute the task's official metrics.

    Args:
        task: task name or :class:`~refbert_tf.data.GlueTask`.
        predictions: [N] class ids or scores (see :func:`predictions_from_outputs`).
        labels: [N] gold class ids or scores.

    Returns:
        ``{metric_name: value in percent}``, the main metric first (``task.main_metric``).

    Raises:
        ValueError: if the two arrays differ in length or are empty.
    """
    task = get_task(task) if isinstance(task, str) else task
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape[0] != labels.shape[0] or predictions.ndim != 1:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be [N] with equal N")
    if labels.shape[0] == 0:
        raise ValueError("cannot compute metrics on zero examples")
    out = {}
    for name in task.metric_names:
        if name == "accuracy":
            value = skm.accuracy_score(labels, predictions)
        elif name == "f1":
            value = skm.f1_score(labels, predictions, pos_label=1, zero_division=0.0)
        elif name == "mcc":
            value = skm.matthews_corrcoef(labels, predictions)
        elif name == "pearson":
            value = stats.pearsonr(predictions, labels)[0] if np.std(predictions) > 0 else 0.0
        elif name == "spearman":
            value = stats.spearmanr(predictions, labels)[0] if np.std(predictions) > 0 else 0.0
        else:  # pragma: no cover - registry and this function are edited together
            raise KeyError(name)
        out[name] = 100.0 * float(value)
    return out
