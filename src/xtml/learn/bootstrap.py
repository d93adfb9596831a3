"""Percentile-bootstrap confidence intervals of any metric, by rows or by whole observations.

:func:`bootstrap_ci` resamples the rows (or, with ``groups``, the observations) of one or more paired
arrays with replacement and returns the central percentile interval of the metric,
:class:`BootstrapCI`, unpacking as ``estimate, low, high``.  The private helpers here (argument checks,
group indices, the percentile interval) are shared with the paired comparison of scorers in
:mod:`xtml.learn.comparison`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.exceptions import UndefinedMetricWarning

__all__ = ["BootstrapCI", "bootstrap_ci"]

FloatArray = NDArray[np.float64]

#: Elements (resamples x rows) handled at once by the vectorised bootstraps.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile-bootstrap confidence interval; unpacks as ``estimate, low, high``.

    Attributes
    ----------
    estimate : float
        The metric on the full data (not the bootstrap mean).
    low, high : float
        Percentiles :math:`(1 \\mp \\mathrm{level})/2` of the valid resampled metrics.
    std : float
        Standard deviation of the valid resampled metrics (bootstrap standard error).
    level : float
        Confidence level.
    n_boot : int
        Resamples drawn.
    n_skipped : int
        Resamples left out because the metric was undefined on them (a class missing, an error, or
        a non-finite value); the interval uses the other ``n_boot - n_skipped``.
    """

    estimate: float
    low: float
    high: float
    std: float
    level: float
    n_boot: int
    n_skipped: int

    def __iter__(self) -> Iterator[float]:
        return iter((self.estimate, self.low, self.high))


def _check_boot(n_boot: int, level: float) -> None:
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _group_index(groups: ArrayLike | None, n: int) -> tuple[NDArray[np.intp], int] | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) (one id per row), got {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    return inv.astype(np.intp), int(inv.max()) + 1


def _interval(values: FloatArray, estimate: float, level: float, n_boot: int, what: str) -> BootstrapCI:
    ok = values[np.isfinite(values)]
    n_skipped = n_boot - ok.size
    if ok.size < max(2, n_boot / 2):
        raise ValueError(
            f"the {what} is undefined on {n_skipped} of {n_boot} resamples (e.g. a class missing): too few "
            "valid resamples for an interval; use more data, or resample groups that hold both classes"
        )
    low, high = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapCI(
        estimate=float(estimate),
        low=float(low),
        high=float(high),
        std=float(ok.std(ddof=1)),
        level=float(level),
        n_boot=int(n_boot),
        n_skipped=int(n_skipped),
    )


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    level: float = 0.95,
    groups: ArrayLike | None = None,
    rng: np.random.Generator | int | None,
    class_labels: int | None = None,
    vectorized: bool = False,
) -> BootstrapCI:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``.

    Resamples rows with replacement, or, with ``groups``, whole observations: draw :math:`G`
    group ids with replacement from the :math:`G` groups and keep all their rows.  Rows of one
    observation are correlated, so only the grouped bootstrap gives honest intervals for them.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float`` (e.g. ``sklearn.metrics.roc_auc_score``).  With
        ``vectorized=True`` it receives arrays with an extra leading resample axis,
        shape (b, n, ...), and returns shape (b,) (e.g. ``lambda x: x.mean(axis=-1)``).
    *arrays : array_like
        Same length n on the first axis; resampled together (paired).
    n_boot : int
        Number of resamples.
    level : float
        Confidence level of the central interval.
    groups : array_like, shape (n,), optional
        Observation id per row, for the grouped bootstrap.
    rng : Generator or int
        Random source.
    class_labels : int, optional
        Position in ``arrays`` of class labels: resamples that miss one of their classes are
        skipped before calling ``metric_fn``.  Independently of it, a resample is skipped when
        ``metric_fn`` raises ``ValueError`` or scikit-learn's ``UndefinedMetricWarning``, or
        returns a non-finite value.
    vectorized : bool
        Call ``metric_fn`` on batches of resamples (fast); with ``groups`` all groups must have
        the same size.

    Returns
    -------
    BootstrapCI
        Unpacks as ``(estimate, low, high)``; ``n_skipped`` counts skipped resamples.

    Raises
    ------
    ValueError
        Bad arguments, a metric that is not finite on the full data, or fewer than half of the
        resamples valid (the interval would describe only the lucky resamples).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=200)
    >>> est, low, high = bootstrap_ci(lambda a: a.mean(axis=-1), x, rng=1, vectorized=True)
    >>> bool(low < est < high)
    True
    """
    _check_boot(n_boot, level)
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0] if arrs[0].ndim else 0
    if n < 2 or any(a.ndim == 0 or a.shape[0] != n for a in arrs):
        raise ValueError(
            f"arrays must share a first axis of length >= 2, got shapes {[a.shape for a in arrs]}"
        )
    gen = np.random.default_rng(rng)
    gi = _group_index(groups, n)
    members: list[NDArray[np.intp]] | None = None
    if gi is not None:
        order = np.argsort(gi[0], kind="stable")
        members = np.split(order, np.cumsum(np.bincount(gi[0], minlength=gi[1]))[:-1])
    label_codes: tuple[NDArray[np.intp], int] | None = None
    if class_labels is not None:
        _, codes = np.unique(arrs[class_labels], return_inverse=True)
        label_codes = (codes.reshape(-1), int(codes.max()) + 1)

    def draw(b: int) -> list[NDArray[np.intp]] | NDArray[np.intp]:
        if members is None:
            return gen.integers(0, n, size=(b, n))
        picks = gen.integers(0, len(members), size=(b, len(members)))
        if vectorized:
            table = np.stack(members)  # equal sizes checked below
            return table[picks].reshape(b, -1)
        return [np.concatenate([members[j] for j in row]) for row in picks]

    def all_classes(idx: NDArray[np.intp]) -> NDArray[np.bool_]:
        if label_codes is None:
            return np.ones(idx.shape[0] if idx.ndim == 2 else 1, dtype=bool)
        codes, k = label_codes
        if idx.ndim == 1:
            return np.array([np.unique(codes[idx]).size == k])
        return np.all([(codes[idx] == c).any(axis=1) for c in range(k)], axis=0)

    values = np.full(n_boot, np.nan)
    if vectorized:
        if members is not None and len({m.size for m in members}) != 1:
            raise ValueError("vectorized=True with groups needs groups of equal size; use vectorized=False")
        estimate = float(np.asarray(metric_fn(*[a[None] for a in arrs])).reshape(-1)[0])
        step = max(1, _CHUNK_ELEMENTS // n)
        for start in range(0, n_boot, step):
            b = min(step, n_boot - start)
            idx = np.asarray(draw(b))
            v = np.asarray(metric_fn(*[a[idx] for a in arrs]), dtype=np.float64).reshape(b)
            values[start : start + b] = np.where(all_classes(idx), v, np.nan)
    else:
        estimate = float(metric_fn(*arrs))
        for j, idx in enumerate(draw(n_boot)):
            if not all_classes(np.asarray(idx))[0]:
                continue
            values[j] = _safe_call(metric_fn, [a[idx] for a in arrs])
    if not math.isfinite(estimate):
        raise ValueError(f"metric_fn is not finite on the full data (got {estimate}); nothing to bootstrap")
    return _interval(values, estimate, level, n_boot, "metric")


def _safe_call(metric_fn: Callable[..., float], arrays: list[NDArray[Any]]) -> float:
    """``metric_fn(*arrays)``, or NaN where the metric is undefined on this resample."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        try:
            return float(metric_fn(*arrays))
        except (ValueError, ZeroDivisionError, UndefinedMetricWarning):
            return math.nan
