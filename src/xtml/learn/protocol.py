"""Evaluation protocol: cross-validation, tuning and calibration inside a grouped, stratified split.

A simulated data set has several rows per *observation* (segments, detectors, augmentations of one
simulated source): rows of one observation are not independent, so every split here is **grouped**
(all rows with the same ``groups`` value fall on one side) and, for class labels, **stratified**
(class proportions are about the same on every side).  The protocol is the usual one:

1. :func:`~xtml.learn.split.split_dataset` cuts the rows once into training, validation and test
   indices (a :class:`~xtml.learn.split.Split`); the test indices sit behind a
   :class:`~xtml.learn.split.LockedTestSet` (both in :mod:`xtml.learn.split`).
2. Model selection uses the training rows only: :func:`cross_validate_model` and :func:`tune`
   (grouped, stratified K-fold inside the rows they are given; they never see other rows).
3. Probabilities are recalibrated on the validation rows with :func:`calibrate_classifier`.
4. The test set is unlocked **once**, with a reason, for the final evaluation
   (:meth:`~xtml.learn.split.Split.unlock_test`); a second opening raises
   :class:`~xtml.learn.split.LockedTestSetError` unless it is explicitly allowed, and every opening
   is recorded.

All the machinery is scikit-learn's (:class:`~sklearn.model_selection.StratifiedGroupKFold`,
:class:`~sklearn.model_selection.GroupShuffleSplit`, :func:`~sklearn.model_selection.cross_validate`,
:class:`~sklearn.model_selection.GridSearchCV`, :class:`~sklearn.calibration.CalibratedClassifierCV`);
this module and :mod:`xtml.learn.split` fix how it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, GroupKFold, RandomizedSearchCV, cross_validate
from sklearn.utils.validation import check_is_fitted

from xtml.learn.split import _check_groups, _seed, _stratified_group_folds

__all__ = [
    "CVResult",
    "TuneResult",
    "calibrate_classifier",
    "cross_validate_model",
    "tune",
]

IndexArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]
Scoring = str | Callable[..., float] | Sequence[str] | Mapping[str, Any] | None
CalibrationMethod = Literal["isotonic", "sigmoid", "temperature"]
_CAL_METHODS = ("isotonic", "sigmoid", "temperature")


# ----------------------------------------------------------------------------- cross-validation


def _is_classification(estimator: BaseEstimator) -> bool:
    """Classifiers (scikit-learn's ``is_classifier``) get stratified folds, everything else plain groups."""
    return bool(is_classifier(estimator))


def _grouped_cv(
    classification: bool, y: NDArray[Any], g: NDArray[Any], n_splits: int, gen: np.random.Generator
) -> list[tuple[IndexArray, IndexArray]]:
    """``(train, test)`` row indices of grouped K-fold CV, stratified for classification."""
    if not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    k = int(n_splits)
    if classification:
        if y.ndim != 1:
            raise ValueError(f"classification needs 1-D labels y, got shape {y.shape}")
        for c in np.unique(y).tolist():
            m = np.unique(g[y == c]).size
            if m < k:
                raise ValueError(
                    f"class {c!r} has {m} observations (distinct groups), fewer than n_splits={k}"
                )
        tests = _stratified_group_folds(y, g, k, gen)
    else:
        if np.unique(g).size < k:
            raise ValueError(
                f"{np.unique(g).size} observations (distinct groups) are fewer than n_splits={k}"
            )
        cv = GroupKFold(n_splits=k, shuffle=True, random_state=_seed(gen))
        tests = [test for _, test in cv.split(np.zeros((g.shape[0], 1)), None, g)]
    rows = np.arange(g.shape[0])
    return [(np.setdiff1d(rows, test, assume_unique=True), np.sort(test)) for test in tests]


def _default_scoring(classification: bool, y: NDArray[Any]) -> str:
    if not classification:
        return "neg_root_mean_squared_error"
    return "roc_auc" if np.unique(y).size == 2 else "neg_log_loss"


def _score_names(scoring: Scoring) -> list[str]:
    if isinstance(scoring, str):
        return [scoring]
    if callable(scoring):
        return ["score"]
    if isinstance(scoring, Mapping):
        return [str(k) for k in scoring]
    return [str(s) for s in scoring]  # type: ignore[union-attr]


def _check_xyg(X: ArrayLike, y: ArrayLike, groups: ArrayLike) -> tuple[Any, NDArray[Any], NDArray[Any]]:
    y_arr = np.asarray(y)
    n = y_arr.shape[0]
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)  # type: ignore[arg-type]
    if n_x != n:
        raise ValueError(f"X and y must have the same number of rows, got {n_x} and {n}")
    return X, y_arr, _check_groups(groups, n)


@dataclass(frozen=True)
class CVResult:
    """Scores of a grouped K-fold cross-validation.

    Attributes
    ----------
    scores : dict of str to ndarray, each shape (n_splits,)
        Held-out score of every fold, per scorer (scikit-learn's sign convention: higher is better,
        so errors appear as ``neg_*``).
    fit_time : ndarray, shape (n_splits,)
        Seconds to fit each fold.
    folds : tuple of (ndarray, ndarray)
        ``(train_rows, test_rows)`` of every fold, as positions in the ``X`` that was passed.
    """

    scores: dict[str, FloatArray]
    fit_time: FloatArray
    folds: tuple[tuple[IndexArray, IndexArray], ...]

    @property
    def mean(self) -> dict[str, float]:
        """Mean over folds, per scorer."""
        return {k: float(np.mean(v)) for k, v in self.scores.items()}

    @property
    def std(self) -> dict[str, float]:
        """Sample standard deviation over folds (ddof = 1), per scorer.

        Folds share training rows, so this spread understates the uncertainty of the mean; it is a
        guide to stability, not a confidence interval.
        """
        return {k: float(np.std(v, ddof=1)) if v.size > 1 else 0.0 for k, v in self.scores.items()}

    def summary(self, fmt: str = ".3f") -> dict[str, str]:
        """``"mean +- std"`` per scorer, formatted with ``fmt`` (e.g. ``"0.912 +- 0.013"``)."""
        mean, std = self.mean, self.std
        return {k: f"{mean[k]:{fmt}} +- {std[k]:{fmt}}" for k in self.scores}

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.summary().items())


def cross_validate_model(
    estimator: BaseEstimator,
    X: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    *,
    n_splits: int = 5,
    scoring: Scoring = None,
    rng: np.random.Generator | int | None,
    n_jobs: int | None = None,
) -> CVResult:
    """Grouped (and stratified, for classifiers) K-fold cross-validation of an estimator.

    Pass the training rows only: the function sees nothing else, so it cannot leak test rows.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned for every fold (the object passed is not fitted).
    X : array_like, shape (n, ...)
        Features.
    y : array_like, shape (n,) or (n, k)
        Labels (classifiers) or targets (regressors).
    groups : array_like, shape (n,)
        Observation id per row: no observation is on both sides of a fold.
    n_splits : int
        Number of folds, >= 2.
    scoring : str, callable, list or dict, optional
        Any scikit-learn ``scoring``; default ``"roc_auc"`` (binary), ``"neg_log_loss"``
        (multiclass) or ``"neg_root_mean_squared_error"`` (regression).
    rng : Generator or int
        Random source of the fold assignment.
    n_jobs : int, optional
        Folds fitted in parallel (scikit-learn's ``n_jobs``).

    Returns
    -------
    CVResult

    Notes
    -----
    Classifiers get stratified grouped folds, made as in :func:`~xtml.learn.split.split_dataset` (per class by
    :class:`~sklearn.model_selection.GroupKFold`, balancing rows; by
    :class:`~sklearn.model_selection.StratifiedGroupKFold` when observations mix classes);
    regressors a shuffled :class:`~sklearn.model_selection.GroupKFold`.  Fitting errors raise
    (``error_score="raise"``).
    """
    X, y_arr, g = _check_xyg(X, y, groups)
    gen = np.random.default_rng(rng)
    classification = _is_classification(estimator)
    cv = _grouped_cv(classification, y_arr, g, n_splits, gen)
    if scoring is None:
        scoring = _default_scoring(classification, y_arr)
    names = _score_names(scoring)
    out = cross_validate(
        estimator,
        X,
        y_arr,
        groups=g,
        scoring=scoring,
        cv=cv,
        n_jobs=n_jobs,
        error_score="raise",
        return_indices=True,
    )
    if len(names) == 1 and "test_score" in out:
        scores = {names[0]: np.asarray(out["test_score"], dtype=np.float64)}
    else:
        scores = {k: np.asarray(out[f"test_{k}"], dtype=np.float64) for k in names}
    folds = tuple(
        (np.asarray(tr, dtype=np.intp), np.asarray(te, dtype=np.intp))
        for tr, te in zip(out["indices"]["train"], out["indices"]["test"], strict=True)
    )
    return CVResult(scores=scores, fit_time=np.asarray(out["fit_time"], dtype=np.float64), folds=folds)


# ----------------------------------------------------------------------------- tuning


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a grouped hyper-parameter search.

    Attributes
    ----------
    best_estimator : estimator
        The best candidate refitted on all the rows passed to :func:`tune`.
    best_params : dict
        Its parameters.
    best_score : float
        Its mean cross-validated score.
    scoring : str
        Name of the score.
    cv_table : tuple of dict
        One row per candidate, best first: ``rank``, ``params``, ``mean_score``, ``std_score``
        (over folds, ddof = 0 as in scikit-learn), ``mean_fit_time`` (s).
    cv_results : dict
        scikit-learn's full ``cv_results_``.
    """

    best_estimator: BaseEstimator
    best_params: dict[str, Any]
    best_score: float
    scoring: str
    cv_table: tuple[dict[str, Any], ...]
    cv_results: dict[str, Any]


def tune(
    estimator: BaseEstimator,
    param_grid_or_distributions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    X: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    *,
    n_splits: int = 5,
    n_iter: int | None = None,
    scoring: str | Callable[..., float] | None = None,
    rng: np.random.Generator | int | None,
    n_jobs: int | None = None,
) -> TuneResult:
    """Hyper-parameter search with grouped (stratified) K-fold CV inside the training rows.

    Pass the training rows only (``X[split.train]`` ...): the search, its folds and the final refit
    see nothing else, so the validation and test rows cannot influence the choice.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Template; candidates are clones.
    param_grid_or_distributions : dict or list of dict
        A grid (for :class:`~sklearn.model_selection.GridSearchCV`, when ``n_iter`` is None) or
        lists / scipy distributions (for :class:`~sklearn.model_selection.RandomizedSearchCV`).
    X, y, groups : array_like
        Training features, labels or targets, and observation ids.
    n_splits : int
        Folds of the inner CV, >= 2.
    n_iter : int, optional
        Number of random candidates; None for an exhaustive grid.
    scoring : str or callable, optional
        One scikit-learn score (the one the best candidate is chosen by); default as in
        :func:`cross_validate_model`.
    rng : Generator or int
        Random source of the folds and of the random candidates.
    n_jobs : int, optional
        Parallel fits (scikit-learn's ``n_jobs``).

    Returns
    -------
    TuneResult
    """
    X, y_arr, g = _check_xyg(X, y, groups)
    gen = np.random.default_rng(rng)
    classification = _is_classification(estimator)
    cv = _grouped_cv(classification, y_arr, g, n_splits, gen)
    if scoring is None:
        scoring = _default_scoring(classification, y_arr)
    if not (isinstance(scoring, str) or callable(scoring)):
        raise ValueError(f"scoring must be one score (a name or a callable) to choose by, got {scoring!r}")
    common: dict[str, Any] = {
        "scoring": scoring,
        "cv": cv,
        "n_jobs": n_jobs,
        "refit": True,
        "error_score": "raise",
    }
    search: GridSearchCV | RandomizedSearchCV
    if n_iter is None:
        search = GridSearchCV(estimator, param_grid_or_distributions, **common)
    else:
        if not isinstance(n_iter, int | np.integer) or n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer or None (grid search), got {n_iter!r}")
        search = RandomizedSearchCV(
            estimator, param_grid_or_distributions, n_iter=int(n_iter), random_state=_seed(gen), **common
        )
    search.fit(X, y_arr, groups=g)
    res = search.cv_results_
    order = np.argsort(res["rank_test_score"], kind="stable")
    table = tuple(
        {
            "rank": int(res["rank_test_score"][i]),
            "params": dict(res["params"][i]),
            "mean_score": float(res["mean_test_score"][i]),
            "std_score": float(res["std_test_score"][i]),
            "mean_fit_time": float(res["mean_fit_time"][i]),
        }
        for i in order
    )
    return TuneResult(
        best_estimator=search.best_estimator_,
        best_params=dict(search.best_params_),
        best_score=float(search.best_score_),
        scoring=scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "score"),
        cv_table=table,
        cv_results=dict(res),
    )


# ----------------------------------------------------------------------------- calibration


def calibrate_classifier(
    estimator: BaseEstimator,
    X_cal: ArrayLike,
    y_cal: ArrayLike,
    *,
    method: CalibrationMethod = "isotonic",
) -> CalibratedClassifierCV:
    """Post-hoc probability calibration of a fitted classifier on held-out rows.

    The classifier is wrapped in a :class:`~sklearn.frozen.FrozenEstimator` (never refitted) and
    a calibration map from its scores to probabilities is fitted on ``(X_cal, y_cal)``, which must
    not overlap the rows it was trained on: use the validation rows of the :class:`~xtml.learn.split.Split`.

    Parameters
    ----------
    estimator : fitted classifier
        With ``predict_proba`` or ``decision_function``.
    X_cal, y_cal : array_like
        Calibration rows and their labels; at least 5 rows per class.
    method : {"isotonic", "sigmoid", "temperature"}
        ``"isotonic"``: non-parametric monotone map, needs a large calibration set (roughly
        > 1000 rows) or it overfits; ``"sigmoid"`` (Platt): :math:`p = 1/(1 + e^{a s + b})`, two
        parameters, for small sets; ``"temperature"``: one parameter, multiclass-friendly.

    Returns
    -------
    CalibratedClassifierCV
        Fitted; ``predict_proba`` gives calibrated probabilities.
    """
    if method not in _CAL_METHODS:
        raise ValueError(f"method must be one of {', '.join(_CAL_METHODS)}, got {method!r}")
    if not is_classifier(estimator):
        raise ValueError(f"estimator must be a classifier, got {type(estimator).__name__}")
    check_is_fitted(estimator)
    y_arr = np.asarray(y_cal)
    X_cal, y_arr, _ = _check_xyg(X_cal, y_arr, np.zeros(y_arr.shape[0]))
    _, counts = np.unique(y_arr, return_counts=True)
    if counts.size < 2 or counts.min() < 5:
        raise ValueError(
            f"y_cal needs at least 2 classes with >= 5 rows each, got class counts {counts.tolist()}"
        )
    return CalibratedClassifierCV(FrozenEstimator(estimator), method=method).fit(X_cal, y_arr)
