"""Grouped, stratified train / validation / test splits, with the test rows behind a lock.

Rows of one *observation* (``groups``) are never split between parts, and class proportions are about
the same in every part (:func:`split_dataset`, returning a :class:`Split`).  The test rows are only
handed out through :meth:`Split.unlock_test` / :meth:`LockedTestSet.unlock`, once, with a reason; a
second opening raises :class:`LockedTestSetError` unless explicitly allowed, and every opening is kept
as an :class:`UnlockRecord`.  The grouped, stratified fold assignment is shared with the
cross-validation of :mod:`xtml.learn.protocol`.
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedGroupKFold
from sklearn.utils.multiclass import type_of_target

__all__ = [
    "LockedTestSet",
    "LockedTestSetError",
    "Split",
    "UnlockRecord",
    "split_dataset",
]

IndexArray = NDArray[np.intp]

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
