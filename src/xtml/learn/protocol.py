"""Evaluation protocol: grouped, stratified splits, a locked test set, cross-validation, tuning, calibration.

A simulated data set has several rows per *observation* (segments, detectors, augmentations of one
simulated source): rows of one observation are not independent, so every split here is **grouped**
(all rows with the same ``groups`` value fall on one side) and, for class labels, **stratified**
(class proportions are about the same on every side).  The protocol is the usual one:

1. :func:`split_dataset` cuts the rows once into training, validation and test indices
   (a :class:`Split`); the test indices sit behind a :class:`LockedTestSet`.
2. Model selection uses the training rows only: :func:`cross_validate_model` and :func:`tune`
   (grouped, stratified K-fold inside the rows they are given; they never see other rows).
3. Probabilities are recalibrated on the validation rows with :func:`calibrate_classifier`.
4. The test set is unlocked **once**, with a reason, for the final evaluation
   (:meth:`Split.unlock_test`); a second opening raises :class:`LockedTestSetError` unless it is
   explicitly allowed, and every opening is recorded.

All the machinery is scikit-learn's (:class:`~sklearn.model_selection.StratifiedGroupKFold`,
:class:`~sklearn.model_selection.GroupShuffleSplit`, :func:`~sklearn.model_selection.cross_validate`,
:class:`~sklearn.model_selection.GridSearchCV`, :class:`~sklearn.calibration.CalibratedClassifierCV`);
this module fixes how it is used.
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    GroupShuffleSplit,
    RandomizedSearchCV,
    StratifiedGroupKFold,
    cross_validate,
)
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CVResult",
    "LockedTestSet",
    "LockedTestSetError",
    "Split",
    "TuneResult",
    "UnlockRecord",
    "calibrate_classifier",
    "cross_validate_model",
    "split_dataset",
    "tune",
]

IndexArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]
Scoring = str | Callable[..., float] | Sequence[str] | Mapping[str, Any] | None
CalibrationMethod = Literal["isotonic", "sigmoid", "temperature"]
_CAL_METHODS = ("isotonic", "sigmoid", "temperature")

#: Largest number of folds used to place the three parts of a stratified split: fractions are met to
#: within about half a fold, i.e. 1/40 of the rows at worst (exactly when they are multiples of 1/K).
MAX_SPLIT_FOLDS = 20
_PARTS = ("train", "validation", "test")


# ----------------------------------------------------------------------------- locked test set


class LockedTestSetError(RuntimeError):
    """The test set was asked for a second time without ``allow_reopen=True``.

    Attributes
    ----------
    openings : tuple of UnlockRecord
        The earlier openings, first one first.
    """

    def __init__(self, message: str, openings: tuple[UnlockRecord, ...]) -> None:
        super().__init__(message)
        self.openings = openings


@dataclass(frozen=True)
class UnlockRecord:
    """One opening of a locked test set.

    Attributes
    ----------
    reason : str
        Why it was opened (e.g. ``"final evaluation, paper table 2"``).
    time : datetime
        When, in UTC.
    where : str
        The calling code, ``file:line in function``.
    """

    reason: str
    time: datetime
    where: str


class LockedTestSet:
    """Test-set row indices that are handed out once, with a recorded reason.

    Choosing a model, a threshold or a feature after looking at test scores leaks the test set
    into the model and biases every reported metric upward.  This guard makes the single use
    explicit: :meth:`unlock` returns the indices and records ``(reason, time, caller)``; a second
    call raises :class:`LockedTestSetError` unless ``allow_reopen=True`` is passed (e.g. to
    re-draw a figure of the *same* final evaluation), and that opening is recorded too, so
    :attr:`openings` tells a reader how often the test set was looked at.

    It is a guard against accidents within one workflow, not a security boundary: the lock state
    lives in this object (it survives pickling, but a split re-created from the same seed comes
    with a fresh lock).

    Parameters
    ----------
    indices : array_like of int, shape (n_test,)
        Row indices of the test set.
    """

    __slots__ = ("_indices", "_openings")

    def __init__(self, indices: ArrayLike) -> None:
        idx = np.array(indices, dtype=np.intp).reshape(-1)
        idx.flags.writeable = False
        self._indices = idx
        self._openings: list[UnlockRecord] = []

    @property
    def size(self) -> int:
        """Number of test rows (known without unlocking)."""
        return int(self._indices.size)

    @property
    def openings(self) -> tuple[UnlockRecord, ...]:
        """Every opening so far, first one first."""
        return tuple(self._openings)

    @property
    def is_unlocked(self) -> bool:
        """Whether the indices were handed out at least once."""
        return bool(self._openings)

    def unlock(self, reason: str, *, allow_reopen: bool = False) -> IndexArray:
        """Return the test indices (read-only) and record the opening.

        Parameters
        ----------
        reason : str
            Non-empty reason, kept in :attr:`openings`.
        allow_reopen : bool
            Allow an opening after the first one (it is recorded as well).

        Raises
        ------
        LockedTestSetError
            On a second opening without ``allow_reopen``.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(
                f"reason must be a non-empty string saying why the test set is opened, got {reason!r}"
            )
        if self._openings and not allow_reopen:
            first = self._openings[0]
            raise LockedTestSetError(
                f"the test set was already opened {len(self._openings)} time(s), first at "
                f"{first.time.isoformat()} from {first.where} for {first.reason!r}; evaluating on it again "
                "after seeing its scores biases the result. Pass allow_reopen=True only to recompute "
                "the same final evaluation.",
                self.openings,
            )
        outside = [f for f in traceback.extract_stack() if f.filename != __file__]
        where = f"{outside[-1].filename}:{outside[-1].lineno} in {outside[-1].name}" if outside else "?"
        self._openings.append(UnlockRecord(reason=reason, time=datetime.now(UTC), where=where))
        return self._indices

    def __repr__(self) -> str:
        return f"LockedTestSet(size={self.size}, openings={len(self._openings)})"


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of a grouped train / validation / test split.

    The training and validation indices are plain read-only arrays; the test indices are only
    available through :meth:`unlock_test` (see :class:`LockedTestSet`).

    Attributes
    ----------
    train : ndarray of int, shape (n_train,)
        Training rows, sorted.
    validation : ndarray of int, shape (n_validation,)
        Validation rows (early stopping, calibration, thresholds), sorted; may be empty.
    locked_test : LockedTestSet
        The test rows, sorted, behind the lock.
    """

    train: IndexArray
    validation: IndexArray
    locked_test: LockedTestSet = field(repr=True)

    def __post_init__(self) -> None:
        for name in ("train", "validation"):
            arr = np.array(getattr(self, name), dtype=np.intp).reshape(-1)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Number of training, validation and test rows."""
        return (self.train.size, self.validation.size, self.locked_test.size)

    @property
    def test(self) -> NoReturn:
        """Not available: the test rows are read through :meth:`unlock_test`."""
        raise AttributeError(
            "the test indices are locked; call split.unlock_test(reason) once, for the final evaluation"
        )

    def unlock_test(self, reason: str, *, allow_reopen: bool = False) -> IndexArray:
        """Test indices, for the final evaluation; see :meth:`LockedTestSet.unlock`."""
        return self.locked_test.unlock(reason, allow_reopen=allow_reopen)


# ----------------------------------------------------------------------------- splitting


def _seed(gen: np.random.Generator) -> int:
    """A ``random_state`` for scikit-learn drawn from ``gen``."""
    return int(gen.integers(0, 2**32 - 1))


def _check_groups(groups: ArrayLike, n: int | None, what: str = "groups") -> NDArray[Any]:
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one observation id per row), got shape {g.shape}")
    if n is not None and g.shape[0] != n:
        raise ValueError(f"{what} must have one entry per row: got {g.shape[0]} for {n} rows")
    return g


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        f = tuple(float(v) for v in fractions)
    except (TypeError, ValueError):
        raise ValueError(
            f"fractions must be three numbers (train, validation, test), got {fractions!r}"
        ) from None
    if len(f) != 3 or not all(math.isfinite(v) and v >= 0 for v in f):
        raise ValueError(
            f"fractions must be three finite numbers >= 0 (train, validation, test), got {fractions!r}"
        )
    if abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(f):.6g})")
    if f[0] == 0 or f[2] == 0:
        raise ValueError(f"the train and test fractions must be > 0, got {fractions!r}")
    return f[0], f[1], f[2]


def _apportion(fractions: tuple[float, ...], k: int) -> tuple[int, ...] | None:
    """Largest-remainder apportionment of ``k`` folds, >= 1 per positive fraction (None if impossible)."""
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if k < len(positive):
        return None
    exact = np.array(fractions) * k
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    for i in order[: k - counts.sum()]:
        counts[i] += 1
    for i in positive:  # every positive part gets a fold, taken from the largest part
        if counts[i] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return tuple(int(c) for c in counts)


def _choose_folds(fractions: tuple[float, float, float], k_max: int) -> tuple[int, tuple[int, ...]]:
    """Fold count in [2, k_max] whose apportionment is closest to ``fractions`` (smallest on ties)."""
    best: tuple[float, int, tuple[int, ...]] | None = None
    for k in range(2, k_max + 1):
        counts = _apportion(fractions, k)
        if counts is None:
            continue
        err = max(abs(c / k - f) for c, f in zip(counts, fractions, strict=True))
        if best is None or err < best[0] - 1e-12:
            best = (err, k, counts)
    assert best is not None  # k_max >= number of positive parts is checked by the caller
    return best[1], best[2]


def split_dataset(
    y: ArrayLike | None,
    groups: ArrayLike,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    rng: np.random.Generator | int | None,
) -> Split:
    """Grouped (and, for labels, stratified) train / validation / test split.

    Parameters
    ----------
    y : array_like, shape (n,), or None
        Class labels (binary or multiclass): the split is stratified.  ``None`` for regression
        targets (or no labels): grouped only.
    groups : array_like, shape (n,)
        Observation id of every row; all rows of one observation end up in the same part.
    fractions : (float, float, float)
        Target fractions of the rows in (train, validation, test); they sum to 1, train and test
        are > 0, validation may be 0 (an empty validation set).
    rng : Generator or int
        Random source (seed or generator), used once.

    Returns
    -------
    Split
        Sorted train and validation indices and the locked test indices.

    Raises
    ------
    ValueError
        Fractions not summing to 1; ``y`` and ``groups`` of different lengths; continuous ``y``
        (pass ``y=None``); a class (or, with ``y=None``, the data set) with too few observations
        to put at least one in every part with a positive fraction, i.e. fewer than
        :math:`\\lceil 1/f_{min} \\rceil` observations for the smallest positive fraction.

    Notes
    -----
    *Stratified* (``y`` given): the observations are dealt into :math:`K` shuffled folds, whole,
    with every class split into nearly equal row counts (per class by
    :class:`~sklearn.model_selection.GroupKFold` when each observation holds one class; by
    :class:`~sklearn.model_selection.StratifiedGroupKFold`, slow beyond ~10^4 observations,
    when observations mix classes).  The folds, in random order, are apportioned to the three
    parts by largest remainders, :math:`k_p \\approx f_p K`.  :math:`K \\le` ``MAX_SPLIT_FOLDS``
    (20) and at most the number of observations of the rarest class; among those the smallest
    :math:`K` with the closest apportionment is used (0.7/0.15/0.15 -> K = 20, 14/3/3 folds;
    0.8/0.1/0.1 -> K = 10).  The fractions are therefore met to within about one fold of rows per
    part, exactly in expectation when they are multiples of :math:`1/K`.

    *Unstratified* (``y=None``): two :class:`~sklearn.model_selection.GroupShuffleSplit` draws take
    :math:`\\lceil f_{test} G \\rceil` of the :math:`G` observations for the test set, then the
    validation share of the rest; fractions are exact in observations, approximate in rows.

    Examples
    --------
    >>> import numpy as np
    >>> groups = np.repeat(np.arange(200), 3)  # 200 observations, 3 segments each
    >>> y = np.repeat(np.arange(200) % 2, 3)
    >>> split = split_dataset(y, groups, rng=1)
    >>> split.sizes
    (420, 90, 90)
    >>> test = split.unlock_test("doctest")
    >>> bool(np.intersect1d(groups[split.train], groups[test]).size)
    False
    """
    f = _check_fractions(fractions)
    gen = np.random.default_rng(rng)
    f_min = min(v for v in f if v > 0)
    need = math.ceil(1.0 / f_min - 1e-9)
    if y is None:
        g = _check_groups(groups, None)
        return _split_unstratified(g, f, need, gen)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be 1-D class labels (or None), got shape {y_arr.shape}")
    g = _check_groups(groups, y_arr.shape[0])
    kind = type_of_target(y_arr)
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"y must be class labels for a stratified split, got a {kind!r} target; pass y=None for a "
            "grouped, unstratified split of regression targets"
        )
    classes = np.unique(y_arr)
    groups_per_class = {c: np.unique(g[y_arr == c]).size for c in classes.tolist()}
    for c, m in groups_per_class.items():
        if m < need:
            raise ValueError(
                f"class {c!r} has {m} observations (distinct groups), too few for fractions {f}: the "
                f"smallest part ({f_min:g}) needs at least {need} observations of every class"
            )
    k_max = min(MAX_SPLIT_FOLDS, *groups_per_class.values())
    k, counts = _choose_folds(f, k_max)
    folds = _stratified_group_folds(y_arr, g, k, gen)
    order = gen.permutation(k)
    edges = np.cumsum((0, *counts))
    parts = [
        np.sort(np.concatenate([folds[i] for i in order[a:b]])) if b > a else np.empty(0, np.intp)
        for a, b in itertools.pairwise(edges)
    ]
    for name, rows, frac in zip(_PARTS, parts, f, strict=True):
        missing = np.setdiff1d(classes, y_arr[rows]) if frac > 0 else []
        if len(missing):
            raise ValueError(
                f"the {name} part got no row of class(es) {missing.tolist()}: a class is too small for "
                f"fractions {f}; use larger classes or coarser fractions"
            )
    return Split(train=parts[0], validation=parts[1], locked_test=LockedTestSet(parts[2]))


def _stratified_group_folds(
    y: NDArray[Any], g: NDArray[Any], k: int, gen: np.random.Generator
) -> list[IndexArray]:
    """Row indices of ``k`` stratified, grouped folds.

    When every observation holds one class (the usual case: one label per simulated observation),
    each class is dealt separately by :class:`~sklearn.model_selection.GroupKFold`, which puts the
    largest remaining observation into the fold with the fewest rows (so every class is split into
    ``k`` nearly equal numbers of *rows*); observation ids are relabelled at random first (random
    order among equal sizes) and fold labels permuted per class.  Otherwise (observations mixing
    classes) :class:`~sklearn.model_selection.StratifiedGroupKFold` is used, whose greedy
    assignment costs O(observations x k) Python steps (tens of seconds for 10^4 observations).
    """
    _, g_codes = np.unique(g, return_inverse=True)
    _, y_codes = np.unique(y, return_inverse=True)
    n_groups = int(g_codes.max()) + 1
    label = np.full(n_groups, -1)
    label[g_codes] = y_codes
    if not np.array_equal(label[g_codes], y_codes):  # some observation mixes classes
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=_seed(gen))
        return [test for _, test in cv.split(np.zeros((y.shape[0], 1)), y_codes, g_codes)]
    relabel = gen.permutation(n_groups)[g_codes]
    fold = np.empty(y.shape[0], dtype=np.intp)
    for c in range(int(y_codes.max()) + 1):
        rows = np.flatnonzero(y_codes == c)
        fold_label = gen.permutation(k)
        for i, (_, test) in enumerate(GroupKFold(n_splits=k).split(rows, groups=relabel[rows])):
            fold[rows[test]] = fold_label[i]
    return [np.flatnonzero(fold == i) for i in range(k)]


def _split_unstratified(
    g: NDArray[Any], f: tuple[float, float, float], need: int, gen: np.random.Generator
) -> Split:
    n_groups = np.unique(g).size
    if n_groups < need:
        raise ValueError(
            f"{n_groups} observations (distinct groups) are too few for fractions {f}: the smallest "
            f"part needs at least {need}"
        )
    rows = np.arange(g.shape[0])
    dummy = np.zeros((g.shape[0], 1))
    rest, test = next(
        GroupShuffleSplit(n_splits=1, test_size=f[2], random_state=_seed(gen)).split(dummy, None, g)
    )
    if f[1] > 0:
        sub = GroupShuffleSplit(n_splits=1, test_size=f[1] / (f[0] + f[1]), random_state=_seed(gen))
        tr, va = next(sub.split(dummy[rest], None, g[rest]))
        train, validation = rest[tr], rest[va]
    else:
        train, validation = rest, rows[:0]
    return Split(
        train=np.sort(train), validation=np.sort(validation), locked_test=LockedTestSet(np.sort(test))
    )


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
    Classifiers get stratified grouped folds, made as in :func:`split_dataset` (per class by
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
    not overlap the rows it was trained on: use the validation rows of the :class:`Split`.

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
