"""Learning curves: nested grouped subsets, the headline metric on the validation rows, a verdict that
says "still improving" only where the validation rows resolve the gain."""

import itertools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xtml.learn.learning_curve import LearningCurve, learning_curve, nested_subsets


def test_nested_subsets_keep_observations_whole_and_classes_balanced(rng):
    groups = np.repeat(np.arange(200), 3)  # 3 rows per observation
    y = np.repeat(rng.integers(0, 2, 200), 3)
    subsets = nested_subsets(y, groups, (0.1, 0.25, 0.5, 1.0), rng)
    assert subsets[-1].size == y.size
    for small, large in itertools.pairwise(subsets):
        assert np.isin(small, large).all()  # nested
    for idx in subsets:
        kept = np.unique(groups[idx])
        assert np.isin(np.flatnonzero(np.isin(groups, kept)), idx).all()  # whole observations
        assert abs(y[idx].mean() - y.mean()) < 0.05  # stratified
    assert [s.size for s in subsets[:-1]] == pytest.approx([60, 150, 300], abs=9)
    with pytest.raises(ValueError, match="increasing"):
        nested_subsets(y, groups, (0.5, 0.25), rng)


def _detection(rng, n, d, signal):
    """Labels and features where only the first 5 of d features carry the signal."""
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    X[:, :5] += signal * y[:, None]
    return X, y


def test_a_model_starved_of_data_is_still_improving(rng):
    """40 informative-or-noise features and 60 to 1,600 training rows: the fit keeps gaining."""
    X, y = _detection(rng, 1600 + 4000, 40, 0.35)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=100.0, max_iter=2000))
    curve = learning_curve(
        model, X[:1600], y[:1600], np.arange(1600), X[1600:], y[1600:],
        task="detect", fractions=(0.0375, 0.075, 0.15, 0.5, 1.0), n_boot=300, rng=1,
    )  # fmt: skip
    assert curve.sizes[-1] == 1600
    assert curve.resolved  # ~2,000 QPO-free validation rows resolve a TPR at 1% FPR
    assert curve.judged_on == "tpr_at_fpr"
    assert curve.estimate[0] < curve.estimate[-1]
    # the judged metric at each size lies in its interval
    for e, lo, hi in zip(curve.estimate, curve.low, curve.high, strict=True):
        assert lo <= e <= hi
    again = LearningCurve.from_dict(curve.to_dict())
    assert again == curve


def test_a_saturated_model_shows_no_resolved_gain(rng):
    """Two informative features, thousands of rows: the last doubling adds nothing resolvable."""
    X, y = _detection(rng, 4000 + 3000, 2, 1.0)
    curve = learning_curve(
        LogisticRegression(), X[:4000], y[:4000], np.arange(4000), X[4000:], y[4000:],
        task="detect", n_boot=300, rng=2,
    )  # fmt: skip
    assert not curve.still_improving
    assert curve.verdict.startswith("no resolved gain: TPR at 1% FPR")
    assert curve.last_step["low"] < 0 < curve.last_step["high"]


def test_a_starved_model_reads_still_improving(rng):
    X, y = _detection(rng, 3000 + 4000, 300, 0.8)  # 300 features: 1,500 rows still overfit
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1e4, max_iter=5000))
    curve = learning_curve(
        model, X[:3000], y[:3000], np.arange(3000), X[3000:], y[3000:],
        task="detect", fractions=(0.25, 0.5, 1.0), n_boot=300, rng=3,
    )  # fmt: skip
    assert curve.still_improving, curve.verdict
    assert curve.verdict.startswith("still improving: TPR at 1% FPR")


def test_too_few_negatives_judge_on_the_auc_and_say_so(rng):
    X, y = _detection(rng, 600 + 200, 5, 0.5)
    curve = learning_curve(
        LogisticRegression(), X[:600], y[:600], np.arange(600), X[600:], y[600:], task="detect",
        n_boot=200, rng=4,
    )  # fmt: skip
    assert not curve.resolved
    assert curve.judged_on == "roc_auc"
    assert "read from the ROC-AUC" in curve.verdict
    assert "do not resolve the TPR at 1% FPR" in curve.verdict
    assert curve.judged()[0] == "ROC-AUC"


def test_regression_curve_reads_the_rmse(rng):
    X = rng.normal(size=(3000, 30))
    t = X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=3000)
    curve = learning_curve(
        Ridge(alpha=1e-6), X[:1000], t[:1000], np.arange(1000), X[1000:], t[1000:], task="regress",
        fractions=(0.04, 0.1, 1.0), n_boot=200, rng=5,
    )  # fmt: skip
    assert curve.metric == "rmse"
    assert not curve.higher_is_better
    assert curve.estimate[0] > curve.estimate[-1] > 0.25  # noise floor 0.3
