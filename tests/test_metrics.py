"""cnn.metrics against scikit-learn and hand arithmetic: Keras 3's definitions, weighted and unweighted."""
import numpy as np
import pytest
from sklearn import metrics as skm

from cnn import metrics as M


@pytest.fixture
def binary(rng):
    y = rng.integers(0, 2, 301)
    p = np.clip(0.35 * y + 0.65 * rng.random(301), 0, 1)
    return y, p, rng.random(301) * 3


@pytest.mark.parametrize("weighted", [False, True])
def test_precision_recall_match_sklearn(binary, weighted):
    y, p, w = binary
    w = w if weighted else None
    assert M.Precision()(y, p, w) == pytest.approx(skm.precision_score(y, p > 0.5, sample_weight=w), abs=1e-12)
    assert M.Recall()(y, p, w) == pytest.approx(skm.recall_score(y, p > 0.5, sample_weight=w), abs=1e-12)
    got = M.Precision(thresholds=[0.7, 0.2])(y, p, w)
    assert got == pytest.approx([skm.precision_score(y, p > t, sample_weight=w) for t in (0.7, 0.2)], abs=1e-12)


def test_precision_recall_keras_examples():
    """keras.metrics.Precision/Recall docstrings: 2/3, weighted 1, and top_k over the last axis (ties: first k)."""
    assert M.Precision()([0, 1, 1, 1], [1, 0, 1, 1]) == pytest.approx(2 / 3)
    assert M.Recall()([0, 1, 1, 1], [1, 0, 1, 1]) == pytest.approx(2 / 3)
    assert M.Precision()([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0]) == 1.0
    assert M.Precision(top_k=2)([0, 0, 1, 1], [1, 1, 1, 1]) == 0.0
    assert M.Precision(top_k=4)([0, 0, 1, 1], [1, 1, 1, 1]) == 0.5
    # class_id: column 1 only; nothing predicted positive there gives 0, not NaN
    assert M.Recall(class_id=1)([[0, 1], [1, 0], [0, 1]], [[0.2, 0.8], [0.9, 0.1], [0.7, 0.3]]) == 0.5
    assert M.Precision()([1, 1], [0.1, 0.2]) == 0.0


@pytest.mark.parametrize("weighted", [False, True])
def test_auc_is_exact_when_each_bucket_holds_one_prediction(rng, weighted):
    """With at most one prediction between neighbouring thresholds the 200-threshold ROC passes through every
    corner of the exact ROC, so the trapezoid rule gives sklearn's exact AUC."""
    buckets = rng.permutation(198)[:150]
    p = (buckets + 1.5) / 199  # inside (i/199, (i+1)/199): one per bucket
    y = (rng.random(150) < p).astype(int)
    w = rng.random(150) * 2 if weighted else None
    assert M.AUC()(y, p, w) == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-12)


def test_auc_approximates_sklearn_and_accumulates(binary):
    y, p, _ = binary
    m = M.AUC()
    for start in range(0, 301, 50):  # batch by batch, as evaluate feeds it
        m.update_state(y[start:start + 50], p[start:start + 50])
    assert abs(m.result() - skm.roc_auc_score(y, p)) < 2e-3
    assert m.result() == M.AUC()(y, p)
    assert M.AUC(from_logits=True)(y, np.log(p + 1e-12) - np.log1p(-p + 1e-12)) == pytest.approx(m.result(), abs=1e-3)


def test_auc_keras_example_and_pr_by_hand():
    """keras.metrics.AUC's docstring: 3 thresholds [-1e-7, 0.5, 1+1e-7]; tp [2,1,0], fp [2,0,0], fn [0,1,2]."""
    y, p = [0, 0, 1, 1], [0, 0.5, 0.3, 0.9]
    assert M.AUC(num_thresholds=3)(y, p) == pytest.approx(0.75)
    assert M.AUC(num_thresholds=3)(y, p, sample_weight=[1, 0, 0, 1]) == pytest.approx(1.0)
    # PR, Davis-Goadrich: slopes dtp/dp = [1/3, 1], intercepts tp_B - slope·p_B = [2/3, 0], p = [4, 1, 0]
    by_hand = (1 / 3) * (1 + (2 / 3) * np.log(4 / 1)) / 2 + 1 * (1 + 0) / 2
    assert M.AUC(num_thresholds=3, curve="PR")(y, p) == pytest.approx(by_hand, abs=1e-12)
    # ROC, minoring and majoring: lower and upper rectangles, heights min/max of tpr [1, 0.5, 0] over fpr [1, 0, 0]
    assert M.AUC(num_thresholds=3, summation_method="minoring")(y, p) == pytest.approx(0.5)
    assert M.AUC(num_thresholds=3, summation_method="majoring")(y, p) == pytest.approx(1.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_accuracies_and_errors_match_sklearn(rng, weighted):
    n, k = 97, 6
    labels = rng.integers(0, k, n)
    scores = rng.random((n, k))
    onehot = np.eye(k)[labels]
    w = rng.random(n) if weighted else None
    acc = skm.accuracy_score(labels, scores.argmax(1), sample_weight=w)
    assert M.CategoricalAccuracy()(onehot, scores, w) == pytest.approx(acc, abs=1e-12)
    assert M.SparseCategoricalAccuracy()(labels, scores, w) == pytest.approx(acc, abs=1e-12)
    for top in (1, 2, 5):
        ref = skm.top_k_accuracy_score(labels, scores, k=top, sample_weight=w, labels=range(k))
        assert M.TopKCategoricalAccuracy(k=top)(onehot, scores, w) == pytest.approx(ref, abs=1e-12)
        assert M.SparseTopKCategoricalAccuracy(k=top)(labels, scores, w) == pytest.approx(ref, abs=1e-12)
    target = rng.standard_normal((n, 3))
    pred = rng.standard_normal((n, 3))
    assert M.MeanAbsoluteError()(target, pred, w) == pytest.approx(
        skm.mean_absolute_error(target, pred, sample_weight=w), abs=1e-12)
    assert M.MeanSquaredError()(target, pred, w) == pytest.approx(
        skm.mean_squared_error(target, pred, sample_weight=w), abs=1e-12)
    yb, pb = rng.integers(0, 2, (n, 1)), rng.random((n, 1))
    assert M.BinaryAccuracy()(yb, pb, w) == pytest.approx(skm.accuracy_score(yb, pb > 0.5, sample_weight=w))


def test_functions_give_one_value_per_sample():
    assert M.binary_accuracy([[1, 0], [1, 1]], [[0.6, 0.7], [0.9, 0.2]]).tolist() == [0.5, 0.5]
    assert M.categorical_accuracy([[0, 1], [1, 0]], [[0.3, 0.7], [0.2, 0.8]]).tolist() == [1, 0]
    assert M.sparse_categorical_accuracy([1, 0], [[0.3, 0.7], [0.2, 0.8]]).tolist() == [1, 0]
    # a tie at the k-th place counts as a hit (keras.ops.in_top_k)
    assert M.top_k_categorical_accuracy([[0, 0, 1]], [[0.5, 0.2, 0.2]], k=2).tolist() == [1]
    assert M.top_k_categorical_accuracy([[0, 0, 1]], [[0.5, 0.3, 0.2]], k=2).tolist() == [0]
    assert M.mae([[1, 2]], [[2, 4]]).tolist() == [1.5] and M.mse([[1, 2]], [[2, 4]]).tolist() == [2.5]


def test_get_by_name_function_and_instance():
    assert isinstance(M.get("mae"), M.MeanAbsoluteError) and M.get("mae").name == "mae"
    assert M.get(M.top_k_categorical_accuracy).name == "top_k_categorical_accuracy"
    auc = M.AUC(name="roc")
    assert M.get(auc) is auc and auc.name == "roc" and M.get("auc").name == "auc"
    assert M.Precision().name == "precision" and M.MeanSquaredError().direction == "down"
    with pytest.raises(ValueError, match="unknown metric 'f1'.*valid names: acc, accuracy, auc"):
        M.get("f1")
    with pytest.raises(TypeError, match="a metric must be"):
        M.get(len)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2,\)"):
        M.Precision()([0, 1], [0.2, 0.9], sample_weight=[1, 2, 3])
