"""LULC metrics against scikit-learn and hand-computed values; absent classes, weights, no-data rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.evaluate.categorical import (
    categorical_metrics,
    confusion_matrix,
    macro_f1,
    mean_iou,
    overall_accuracy,
    per_class_f1,
)

LABELS = np.arange(5)


def _data(n=300, seed=0, k=5):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.7, t, rng.integers(0, k, n))
    w = rng.uniform(0.1, 3.0, n)
    return t, p, w


def test_hand_computed_values():
    t = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0])
    lab = [0, 1, 2]
    np.testing.assert_array_equal(confusion_matrix(t, p, w, labels=lab), [[1, 1, 0], [0, 3, 0], [1, 0, 0]])
    assert overall_accuracy(t, p, w, labels=lab) == pytest.approx(4 / 6)
    # F1 = 2TP / (2TP + FP + FN): class 0: 2/4, class 1: 6/7, class 2: 0
    f1 = per_class_f1(t, p, w, labels=lab)
    np.testing.assert_allclose(f1.to_numpy(), [0.5, 6 / 7, 0.0])
    assert macro_f1(t, p, w, labels=lab) == pytest.approx((0.5 + 6 / 7) / 3)
    # IoU = TP / (TP + FP + FN): 1/3, 3/4, 0
    assert mean_iou(t, p, w, labels=lab) == pytest.approx((1 / 3 + 3 / 4) / 3)


def test_weighted_metrics_match_scikit_learn():
    t, p, w = _data()
    np.testing.assert_allclose(confusion_matrix(t, p, w, labels=LABELS),
                               skm.confusion_matrix(t, p, labels=LABELS, sample_weight=w))
    assert overall_accuracy(t, p, w, labels=LABELS) == pytest.approx(skm.accuracy_score(t, p, sample_weight=w))
    assert macro_f1(t, p, w, labels=LABELS) == pytest.approx(skm.f1_score(t, p, average="macro", sample_weight=w))
    assert mean_iou(t, p, w, labels=LABELS) == pytest.approx(
        skm.jaccard_score(t, p, average="macro", sample_weight=w))
    np.testing.assert_allclose(per_class_f1(t, p, w, labels=LABELS).to_numpy(),
                               skm.f1_score(t, p, average=None, sample_weight=w))


def test_confusion_matrix_sums_to_total_weight_in_label_order():
    t, p, w = _data()
    cm = confusion_matrix(t, p, w, labels=LABELS[::-1])
    assert cm.sum() == pytest.approx(w.sum())
    assert cm[0, 0] == pytest.approx(w[(t == 4) & (p == 4)].sum())


def test_classes_absent_from_truth_and_prediction_are_left_out_of_macro_means():
    t, p, w = _data(k=3)
    labels = [0, 1, 2, 3, 4]
    assert macro_f1(t, p, w, labels=labels) == pytest.approx(skm.f1_score(t, p, average="macro", sample_weight=w))
    assert mean_iou(t, p, w, labels=labels) == pytest.approx(
        skm.jaccard_score(t, p, average="macro", sample_weight=w))
    f1 = per_class_f1(t, p, w, labels=labels)
    assert list(f1.index) == labels and f1.iloc[3:].isna().all()


def test_a_class_predicted_but_absent_from_the_truth_scores_zero():
    t = np.array([0, 0, 1, 1])
    p = np.array([0, 0, 1, 2])
    f1 = per_class_f1(t, p, labels=[0, 1, 2, 3])
    assert f1[2] == 0.0 and np.isnan(f1[3])
    assert macro_f1(t, p, labels=[0, 1, 2, 3]) == pytest.approx((1 + 2 / 3 + 0) / 3)


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "miou"])
def test_duplicating_a_row_equals_doubling_its_weight(name):
    fn = categorical_metrics(LABELS)[name]
    t, p, w = _data(40, seed=3)
    dup = np.r_[np.arange(40), [2, 2, 11]]
    w2 = w.copy()
    w2[2] *= 3
    w2[11] *= 2
    assert fn(t, p, w2) == pytest.approx(fn(t[dup], p[dup], w[dup]), rel=1e-12)


def test_no_data_truth_and_missing_predictions_are_skipped():
    t, p, w = _data(50, seed=4)
    t2 = t.astype(np.float64)
    p2 = p.astype(np.float64)
    t2[[0, 1]] = 255  # no-data class code
    t2[2] = np.nan
    p2[3] = np.nan
    keep = np.arange(4, 50)
    for fn in categorical_metrics(LABELS).values():
        assert fn(t2, p2, w) == pytest.approx(fn(t[keep], p[keep], w[keep]))
    assert confusion_matrix(t2, p2, w, labels=LABELS).sum() == pytest.approx(w[keep].sum())
    assert np.isnan(overall_accuracy([255, 255], [0, 1], labels=LABELS))


def test_prediction_outside_the_labels_is_refused():
    with pytest.raises(ValueError, match="not among the 5 labels"):
        overall_accuracy([0, 1], [0, 7], labels=LABELS)
    with pytest.raises(ValueError, match="distinct"):
        overall_accuracy([0, 1], [0, 1], labels=[0, 0, 1])
