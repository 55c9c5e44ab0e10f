import math

import numpy as np
import pytest

from refbert_tf.metrics import compute_metrics, predictions_from_outputs

PRED, GOLD = [1, 0, 1, 1], [1, 0, 0, 1]  # tp=2, tn=1, fp=1, fn=0


def test_accuracy():
    assert compute_metrics("sst2", PRED, GOLD) == {"accuracy": 75.0}


def test_f1_and_accuracy_for_mrpc_and_qqp():
    # precision 2/3, recall 1 -> F1 = 2 * (2/3) / (5/3) = 0.8
    for task in ("mrpc", "qqp"):
        m = compute_metrics(task, PRED, GOLD)
        assert list(m) == ["f1", "accuracy"]
        assert m["f1"] == pytest.approx(80.0) and m["accuracy"] == pytest.approx(75.0)


def test_matthews_correlation_for_cola():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 2 / sqrt(3*2*2*1)
    assert compute_metrics("cola", PRED, GOLD)["mcc"] == pytest.approx(100 * 2 / math.sqrt(12))


def test_pearson_and_spearman_for_stsb():
    # x = 1,2,3; y = 1,2,4: cov = 3, |x| = sqrt(2), |y| = sqrt(42)/3 -> r = 9 / sqrt(84)
    m = compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert m["pearson"] == pytest.approx(100 * 9 / math.sqrt(84))
    assert m["spearman"] == pytest.approx(100.0)
    # ranks 1,3,2 vs 1,2,3: d^2 sum = 2 -> rho = 1 - 6*2 / (3*8) = 0.5
    assert compute_metrics("stsb", [1.0, 3.0, 2.0], [1.0, 2.0, 3.0])["spearman"] == pytest.approx(50.0)


def test_predictions_from_outputs():
    assert predictions_from_outputs("mnli", np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0]])).tolist() == [1, 0]
    assert predictions_from_outputs("stsb", np.array([[1.5], [4.0]])).tolist() == [1.5, 4.0]


def test_bad_shapes():
    with pytest.raises(ValueError, match="equal N"):
        compute_metrics("sst2", [1, 0], [1])
    with pytest.raises(ValueError, match="zero examples"):
        compute_metrics("sst2", [], [])
