"""Protocol: grouped stratified splits, locked test set, grouped CV, leak-free tuning, calibration."""

import itertools

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.naive_bayes import GaussianNB

from xtml.learn import split as protocol  # the fold apportionment (_choose_folds) lives in split
from xtml.learn.protocol import CVResult, calibrate_classifier, cross_validate_model, tune
from xtml.learn.split import LockedTestSet, LockedTestSetError, split_dataset

FRACTIONS = (0.7, 0.15, 0.15)
#: Largest allowed |class share in a part - overall class share| (observed <= 0.01 over 30 seeds;
#: a random grouped assignment misses it by up to 0.12).
CLASS_TOL = 0.02
#: Largest allowed |row fraction of a part - requested fraction|.
FRACTION_TOL = 0.02


def observations(rng, n_obs=600, p=(0.6, 0.3, 0.1)):
    """Rows of ``n_obs`` simulated observations with 1-5 segments each, one label per observation."""
    sizes = rng.integers(1, 6, n_obs)
    labels = rng.choice(len(p), n_obs, p=p)
    groups = np.repeat(np.arange(n_obs), sizes)
    return np.repeat(labels, sizes), groups


def features(rng, y, groups):
    """Column 0 = row id (for the spy), column 1 = a noisy signal, column 2 = an observation effect."""
    n = y.size
    effect = rng.normal(size=groups.max() + 1)[groups]
    signal = 1.5 * (y == y.max()) + rng.normal(size=n) + effect
    return np.column_stack([np.arange(n), signal, effect])


def assert_grouped(groups, *parts):
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            shared = np.intersect1d(groups[a], groups[b])
            assert shared.size == 0, f"observations {shared[:5]} are on two sides"


# ----------------------------------------------------------------------------- split_dataset


def test_split_is_grouped_stratified_and_meets_fractions(rng):
    y, groups = observations(rng)
    split = split_dataset(y, groups, fractions=FRACTIONS, rng=rng)
    test = split.unlock_test("check the split")
    parts = (split.train, split.validation, test)
    allrows = np.concatenate(parts)
    assert np.array_equal(np.sort(allrows), np.arange(y.size)), "parts must partition the rows"
    assert_grouped(groups, *parts)
    overall = np.bincount(y) / y.size
    for rows, f in zip(parts, FRACTIONS, strict=True):
        assert abs(rows.size / y.size - f) < FRACTION_TOL
        share = np.bincount(y[rows], minlength=overall.size) / rows.size
        np.testing.assert_allclose(share, overall, atol=CLASS_TOL)


def test_split_of_observations_mixing_classes(rng):
    """Observations holding rows of both classes go through StratifiedGroupKFold, still whole."""
    groups = np.repeat(np.arange(300), 2)
    y = (rng.random(groups.size) < 0.3).astype(int)
    split = split_dataset(y, groups, fractions=(0.6, 0.2, 0.2), rng=rng)
    test = split.unlock_test("mixed")
    assert_grouped(groups, split.train, split.validation, test)
    for rows, f in zip((split.train, split.validation, test), (0.6, 0.2, 0.2), strict=True):
        assert abs(rows.size / y.size - f) < FRACTION_TOL
        assert abs(y[rows].mean() - y.mean()) < CLASS_TOL


def test_split_is_seeded(rng):
    y, groups = observations(rng)
    a = split_dataset(y, groups, rng=7)
    b = split_dataset(y, groups, rng=7)
    c = split_dataset(y, groups, rng=8)
    assert np.array_equal(a.train, b.train)
    assert np.array_equal(a.unlock_test("seed"), b.unlock_test("seed"))
    assert not np.array_equal(a.train, c.train)


@pytest.mark.parametrize(
    ("fractions", "k"), [((0.8, 0.1, 0.1), 10), ((0.5, 0.25, 0.25), 4), ((0.7, 0.15, 0.15), 20)]
)
def test_fold_count_matches_fractions(fractions, k):
    assert protocol._choose_folds(fractions, 20)[0] == k


def test_split_fraction_with_empty_validation(rng):
    y, groups = observations(rng)
    split = split_dataset(y, groups, fractions=(0.8, 0.0, 0.2), rng=rng)
    assert split.validation.size == 0
    assert abs(split.sizes[2] / y.size - 0.2) < FRACTION_TOL


def test_regression_split_is_grouped(rng):
    _, groups = observations(rng)
    split = split_dataset(None, groups, fractions=(0.6, 0.2, 0.2), rng=rng)
    test = split.unlock_test("regression check")
    assert_grouped(groups, split.train, split.validation, test)
    n_obs = np.unique(groups).size
    for rows, f in zip((split.train, split.validation, test), (0.6, 0.2, 0.2), strict=True):
        assert abs(np.unique(groups[rows]).size / n_obs - f) < 0.01  # exact in observations
        assert abs(rows.size / groups.size - f) < 0.05  # approximate in rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.7, 0.2, 0.2)}, "sum to 1"),
        ({"fractions": (0.7, 0.3)}, "three"),
        ({"fractions": (1.0, 0.0, 0.0)}, "must be > 0"),
    ],
)
def test_split_rejects_bad_fractions(rng, kwargs, message):
    y, groups = observations(rng, n_obs=50)
    with pytest.raises(ValueError, match=message):
        split_dataset(y, groups, rng=rng, **kwargs)


def test_split_rejects_bad_inputs(rng):
    y, groups = observations(rng, n_obs=100)
    with pytest.raises(ValueError, match="one entry per row"):
        split_dataset(y, groups[:-1], rng=rng)
    with pytest.raises(ValueError, match="y=None"):
        split_dataset(rng.normal(size=y.size), groups, rng=rng)
    # 6 observations of class 2: the 15 % parts need ceil(1 / 0.15) = 7
    y_small = np.repeat(np.r_[np.zeros(94, int), np.full(6, 2)], 1)
    with pytest.raises(ValueError, match="class 2 has 6 observations"):
        split_dataset(y_small, np.arange(100), rng=rng)
    split_dataset(np.r_[np.zeros(93, int), np.full(7, 2)], np.arange(100), rng=rng)  # 7 are enough
    with pytest.raises(ValueError, match="too few"):
        split_dataset(None, np.arange(5), rng=rng)


# ----------------------------------------------------------------------------- locked test set


def test_test_set_opens_once_and_records(rng):
    y, groups = observations(rng, n_obs=100, p=(0.5, 0.5))
    split = split_dataset(y, groups, rng=rng)
    with pytest.raises(AttributeError, match="unlock_test"):
        _ = split.test
    assert not split.locked_test.is_unlocked
    assert split.sizes[2] == split.locked_test.size > 0  # size known while locked
    test = split.unlock_test("final evaluation")
    assert test.size == split.locked_test.size
    assert not test.flags.writeable
    with pytest.raises(LockedTestSetError, match="already opened 1 time") as err:
        split.unlock_test("one more look")
    assert err.value.openings[0].reason == "final evaluation"
    assert __file__ in err.value.openings[0].where  # the caller, not the protocol module
    again = split.unlock_test("redraw the same figure", allow_reopen=True)
    assert np.array_equal(again, test)
    assert [o.reason for o in split.locked_test.openings] == ["final evaluation", "redraw the same figure"]


def test_unlock_needs_a_reason():
    lock = LockedTestSet([3, 1, 2])
    with pytest.raises(ValueError, match="reason"):
        lock.unlock("  ")
    assert not lock.is_unlocked
    assert "openings=0" in repr(lock)


# ----------------------------------------------------------------------------- cross-validation


def test_cross_validation_folds_are_grouped_and_stratified(rng):
    y, groups = observations(rng, n_obs=300)
    X = features(rng, y, groups)[:, 1:]
    res = cross_validate_model(LogisticRegression(), X, y, groups, n_splits=5, scoring="accuracy", rng=rng)
    assert isinstance(res, CVResult)
    assert len(res.folds) == 5
    tested = np.concatenate([te for _, te in res.folds])
    assert np.array_equal(np.sort(tested), np.arange(y.size))  # every row tested exactly once
    overall = np.bincount(y) / y.size
    for train, test in res.folds:
        assert_grouped(groups, train, test)
        assert np.union1d(train, test).size == y.size
        np.testing.assert_allclose(np.bincount(y[test], minlength=3) / test.size, overall, atol=0.04)
    scores = res.scores["accuracy"]
    assert scores.shape == (5,)
    assert res.mean["accuracy"] == pytest.approx(scores.mean())
    assert res.std["accuracy"] == pytest.approx(scores.std(ddof=1))
    assert res.summary(".2f")["accuracy"] == f"{scores.mean():.2f} +- {scores.std(ddof=1):.2f}"


def test_regression_cv_is_grouped(rng):
    _, groups = observations(rng, n_obs=200)
    x = rng.normal(size=(groups.size, 2))
    t = x @ [1.0, -2.0] + rng.normal(size=groups.size)
    res = cross_validate_model(LinearRegression(), x, t, groups, n_splits=4, rng=rng)
    assert list(res.scores) == ["neg_root_mean_squared_error"]
    # residual sd is 1, so the held-out RMSE is ~1
    assert -res.mean["neg_root_mean_squared_error"] == pytest.approx(1.0, abs=0.1)
    for train, test in res.folds:
        assert_grouped(groups, train, test)


def test_multiple_scores(rng):
    y, groups = observations(rng, n_obs=200, p=(0.5, 0.5))
    X = features(rng, y, groups)[:, 1:]
    res = cross_validate_model(
        LogisticRegression(), X, y, groups, n_splits=3, scoring=["roc_auc", "accuracy"], rng=rng
    )
    assert set(res.summary()) == {"roc_auc", "accuracy"}
    assert 0.6 < res.mean["roc_auc"] <= 1.0


# ----------------------------------------------------------------------------- the spy: no test rows leak


SPY_LOG: list[tuple[str, np.ndarray]] = []


class SpyClassifier(ClassifierMixin, BaseEstimator):
    """Logistic score ``c * x1``; records the row ids (column 0) of every fit and prediction."""

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        X = np.asarray(X)
        SPY_LOG.append(("fit", X[:, 0].astype(int).copy()))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        X = np.asarray(X)
        SPY_LOG.append(("predict", X[:, 0].astype(int).copy()))
        p = 1 / (1 + np.exp(-self.c * (X[:, 1] - 0.75)))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def spy_check(groups, allowed, forbidden):
    """Row ids the spy saw outside ``allowed`` or inside ``forbidden``; grouping of each fit/score pair."""
    seen = np.concatenate([ids for _, ids in SPY_LOG])
    for (kind_a, fit_ids), (kind_b, pred_ids) in itertools.pairwise(SPY_LOG):
        if kind_a == "fit" and kind_b == "predict":
            assert_grouped(groups, fit_ids, pred_ids)
    return np.setdiff1d(seen, allowed), np.intersect1d(seen, forbidden)


@pytest.fixture
def spy_data(rng):
    SPY_LOG.clear()
    y, groups = observations(rng, n_obs=240, p=(0.5, 0.5))
    X = features(rng, y, groups)
    split = split_dataset(y, groups, rng=rng)
    yield X, y, groups, split
    SPY_LOG.clear()


def test_tune_sees_only_training_rows(spy_data, rng):
    X, y, groups, split = spy_data
    tr = split.train
    res = tune(SpyClassifier(), {"c": [0.1, 1.0, 10.0]}, X[tr], y[tr], groups[tr], n_splits=3, rng=rng)
    test = split.unlock_test("spy")
    outside, leaked = spy_check(groups, tr, np.union1d(test, split.validation))
    assert outside.size == 0
    assert leaked.size == 0
    fits = [ids for kind, ids in SPY_LOG if kind == "fit"]
    assert len(fits) == 3 * 3 + 1  # 3 candidates x 3 folds, then the refit
    assert np.array_equal(np.sort(fits[-1]), tr)  # the refit uses all training rows
    assert res.best_params["c"] in (0.1, 1.0, 10.0)
    assert res.best_estimator.classes_.tolist() == [0, 1]
    assert [r["rank"] for r in res.cv_table] == sorted(r["rank"] for r in res.cv_table)


def test_cross_validation_sees_only_given_rows(spy_data, rng):
    X, y, groups, split = spy_data
    tr = split.train
    cross_validate_model(SpyClassifier(), X[tr], y[tr], groups[tr], n_splits=4, rng=rng)
    outside, leaked = spy_check(groups, tr, split.unlock_test("spy"))
    assert outside.size == 0
    assert leaked.size == 0


def test_spy_catches_a_leak(spy_data, rng):
    """Negative control: handing all rows to the CV shows up as test rows seen."""
    X, y, groups, split = spy_data
    cross_validate_model(SpyClassifier(), X, y, groups, n_splits=4, rng=rng)
    test = split.unlock_test("spy control")
    outside, leaked = spy_check(groups, split.train, test)
    assert leaked.size == test.size
    assert outside.size > 0


def test_random_search_is_seeded(rng):
    y, groups = observations(rng, n_obs=150, p=(0.5, 0.5))
    X = features(rng, y, groups)[:, 1:]
    dist = {"C": loguniform(1e-3, 1e2)}
    a = tune(LogisticRegression(), dist, X, y, groups, n_splits=3, n_iter=4, rng=11)
    b = tune(LogisticRegression(), dist, X, y, groups, n_splits=3, n_iter=4, rng=11)
    assert a.best_params == b.best_params
    assert len(a.cv_table) == 4
    assert a.scoring == "roc_auc"
    assert a.best_score == a.cv_table[0]["mean_score"]
    with pytest.raises(ValueError, match="n_iter"):
        tune(LogisticRegression(), dist, X, y, groups, n_iter=0, rng=1)


# ----------------------------------------------------------------------------- calibration


def test_calibration_improves_brier_on_held_out_rows(rng):
    """Naive Bayes on 8 copies of one feature is overconfident; isotonic and sigmoid maps fix it."""
    n = 6000
    y = rng.integers(0, 2, n)
    x = (y - 0.5) + rng.normal(size=n)
    X = np.repeat(x[:, None], 8, axis=1) + 0.05 * rng.normal(size=(n, 8))
    fit, cal, test = np.split(rng.permutation(n), [2000, 4000])
    model = GaussianNB().fit(X[fit], y[fit])
    raw = brier_score_loss(y[test], model.predict_proba(X[test])[:, 1])
    for method in ("isotonic", "sigmoid"):
        calibrated = calibrate_classifier(model, X[cal], y[cal], method=method)
        brier = brier_score_loss(y[test], calibrated.predict_proba(X[test])[:, 1])
        assert brier < raw - 0.02, (method, brier, raw)
        # the frozen model is not refitted
        assert calibrated.calibrated_classifiers_[0].estimator.estimator is model


def test_calibration_errors(rng):
    X = rng.normal(size=(40, 2))
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    with pytest.raises(NotFittedError):
        calibrate_classifier(LogisticRegression(), X, y)
    model = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="method"):
        calibrate_classifier(model, X, y, method="beta")
    with pytest.raises(ValueError, match=">= 5 rows"):
        calibrate_classifier(model, X[16:24], y[16:24])
