"""Performance maps: where a model works and where it does not, as a function of a physical variable.

A single number (an AUC, an RMSE, a coverage) averages over everything a test set holds.  A QPO
detector that finds every QPO of 20 % rms and none of 3 % rms, or a regressor unbiased at 100 ct/s
and 10 % low at 2,000 ct/s, hides its failures in that average.  A *performance map* bins the test
rows by one physical variable (QPO rms, centroid frequency, quality factor, count rate, dead time,
exposure) and gives the metric per bin with a confidence interval, as a :class:`PerformanceMap`
that prints as a table (:meth:`PerformanceMap.to_rows`, :meth:`PerformanceMap.to_markdown`) and
plots with :func:`plot_performance_map`.

* :func:`detection_map`: detection rate (TPR) of a score per bin of the variable, over the rows
  that hold a QPO, at one global threshold (by default the one of a fixed false-positive rate), and
  the false-positive rate per bin where the variable is defined for QPO-free rows;
* :func:`regression_map`: bias, relative bias, RMSE and 68 % coverage of a regression;
* :func:`posterior_map`: 68 % and 95 % coverage and median bias of posteriors stored as quantiles
  (simulation-based inference test sets), one map per parameter;
* :func:`shift_test`: train on one range of the variable, evaluate across all of it: the map shows
  how a model degrades outside its training domain.

Bins are ``[e_j, e_{j+1})``, the last one closed; rows outside the edges or with a NaN variable are
in no bin.  :func:`bin_edges` picks quantile edges (equal counts) or log-spaced edges for variables
that span decades.

Intervals, all at the central confidence ``level`` (default 0.68, "1 sigma"):

* fractions (TPR, FPR, coverage, accuracy): Wilson score interval
  :math:`\\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}`, which
  stays inside [0, 1] and is not degenerate at :math:`\\hat p = 0` or 1;
* means (bias, relative bias): :math:`\\bar e \\pm z\\, s/\\sqrt n` (sample standard deviation
  :math:`s`, ddof = 1);
* RMSE: the same interval on the mean squared error, mapped through the square root (lower end
  clipped at 0);
* ROC AUC: Hanley & McNeil (1982) standard error, clipped to [0, 1].

They are analytic, so a map is deterministic and cheap.  A bin with a single row has an infinite
interval for means and RMSE.  NaN marks a metric that is undefined in a bin: no rows for it (an empty
bin, or e.g. no QPO-free rows with a defined variable for the FPR), or for the AUC a bin holding one
class only.  This module imports matplotlib only when a map is plotted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from xtml.learn.metrics import binary_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "PerformanceMap",
    "bin_edges",
    "detection_map",
    "plot_performance_map",
    "posterior_map",
    "regression_map",
    "shift_test",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ShiftMetric = Literal["roc_auc", "rmse", "accuracy"]

#: ``bin_edges(log=None)`` and the plots use a log scale when all values are > 0 and span more than this.
LOG_RATIO = 20.0
#: Probability of a standard normal within one standard deviation, :math:`\mathrm{erf}(1/\sqrt2)`.
ONE_SIGMA = math.erf(1 / math.sqrt(2))
#: Quantile levels that :func:`posterior_map` needs (central 68.27 % and 95 % intervals, median).
POSTERIOR_LEVELS = {
    "lo95": 0.025,
    "lo68": (1 - ONE_SIGMA) / 2,
    "median": 0.5,
    "hi68": (1 + ONE_SIGMA) / 2,
    "hi95": 0.975,
}
#: How far a given quantile level may be from the one needed (0.16 and 0.84 count as the 68 % ones).
LEVEL_TOLERANCE = 0.0025
_SHIFT_METRICS = ("roc_auc", "rmse", "accuracy")


# --------------------------------------------------------------------------------------------- the map


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _is_log(edges: FloatArray) -> bool:
    """Log axis for edges > 0 spanning more than ``LOG_RATIO`` that are more even in log x than in x."""
    if edges[0] <= 0 or edges[-1] / edges[0] <= LOG_RATIO:
        return False
    if edges.size < 3:
        return True

    def spread(widths: FloatArray) -> float:
        return float(widths.std() / widths.mean())

    return spread(np.diff(np.log(edges))) < spread(np.diff(edges))


@dataclass(frozen=True, eq=False)
class PerformanceMap:
    """Metrics of a model per bin of a physical variable, with confidence intervals.

    Attributes
    ----------
    variable : str
        Name of the binning variable, with its unit if any (e.g. ``"qpo.rms"``, ``"rate [ct/s]"``).
    edges : ndarray, shape (n_bins + 1,)
        Increasing bin edges; bin ``j`` is ``[edges[j], edges[j+1])``, the last one closed.
    count : ndarray of int, shape (n_bins,)
        Rows in each bin (all rows the map was computed from).
    metrics : dict of str to ndarray, shape (n_bins,)
        Metric per bin.  NaN where the metric is undefined in the bin: no rows for it (``n[name]``
        is 0) or, for the ROC AUC, one class only.
    lower, upper : dict of str to ndarray, shape (n_bins,)
        Central ``level`` confidence interval of each metric (same keys as ``metrics``); NaN exactly
        where the metric is NaN, infinite for means and RMSE of a bin with one row.
    n : dict of str to ndarray of int, shape (n_bins,)
        Rows behind each metric per bin (e.g. positives for the TPR, negatives for the FPR);
        defaults to ``count`` for every metric.
    level : float
        Confidence level of the intervals.
    nominal : dict of str to float
        The value a metric should have, for metrics that have one (``coverage_68``: 0.6827,
        ``fpr``: the target rate); drawn as a reference line.
    inside_training : ndarray of bool, shape (n_bins,), optional
        :func:`shift_test` only: whether the bin lies within the training range.
    train_range : (float, float), optional
        :func:`shift_test` only: the range of the variable the model was trained on.
    threshold : float, optional
        :func:`detection_map` only: the detection threshold (detect if ``score >= threshold``).
    """

    variable: str
    edges: FloatArray
    count: IntArray
    metrics: dict[str, FloatArray]
    lower: dict[str, FloatArray]
    upper: dict[str, FloatArray]
    n: dict[str, IntArray] = field(default_factory=dict)
    level: float = 0.68
    nominal: dict[str, float] = field(default_factory=dict)
    inside_training: NDArray[np.bool_] | None = None
    train_range: tuple[float, float] | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        edges = _check_edges(self.edges)
        nb = edges.size - 1
        count = np.asarray(self.count)
        if count.shape != (nb,) or (count < 0).any():
            raise ValueError(f"count must be {nb} non-negative integers (one per bin), got {count!r}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "count", count.astype(np.int64))
        names = list(self.metrics)
        if not names:
            raise ValueError("metrics must hold at least one metric")
        for what in ("lower", "upper", "n"):
            extra = set(getattr(self, what)) - set(names)
            missing = set(names) - set(getattr(self, what))
            if extra or (missing and what != "n"):
                raise ValueError(
                    f"{what} must have the keys of metrics {names}, got {list(getattr(self, what))}"
                )
        out: dict[str, dict[str, Any]] = {"metrics": {}, "lower": {}, "upper": {}, "n": {}}
        for name in names:
            for what in ("metrics", "lower", "upper"):
                arr = np.asarray(getattr(self, what)[name], dtype=np.float64)
                if arr.shape != (nb,):
                    raise ValueError(f"{what}[{name!r}] must have shape ({nb},), got {arr.shape}")
                out[what][name] = arr
            counts = np.asarray(self.n.get(name, count))
            if counts.shape != (nb,):
                raise ValueError(f"n[{name!r}] must have shape ({nb},), got {counts.shape}")
            out["n"][name] = counts.astype(np.int64)
        for what, value in out.items():
            object.__setattr__(self, what, value)
        if not 0 < float(self.level) < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")
        object.__setattr__(self, "level", float(self.level))
        object.__setattr__(self, "nominal", {str(k): float(v) for k, v in self.nominal.items()})
        if self.inside_training is not None:
            inside = np.asarray(self.inside_training, dtype=bool)
            if inside.shape != (nb,):
                raise ValueError(f"inside_training must have shape ({nb},), got {inside.shape}")
            object.__setattr__(self, "inside_training", inside)
        if self.train_range is not None:
            object.__setattr__(self, "train_range", _check_range(self.train_range))

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.edges.size - 1)

    def centres(self, log: bool | None = None) -> FloatArray:
        """Bin centres: geometric means of the edges on a log scale, arithmetic means otherwise.

        ``log=None`` picks the log scale when all edges are > 0, span more than ``LOG_RATIO`` and are
        more evenly spaced in :math:`\\log x` than in :math:`x` (as :func:`bin_edges` makes them).
        """
        lo, hi = self.edges[:-1], self.edges[1:]
        if (_is_log(self.edges) if log is None else log) and self.edges[0] > 0:
            return np.sqrt(lo * hi)
        return 0.5 * (lo + hi)

    def to_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per bin (non-finite numbers as ``None``).

        Keys: ``variable``, ``low``, ``high``, ``count``, ``inside_training`` (shift tests only) and,
        for each metric ``m``: ``m``, ``m_lower``, ``m_upper``, ``m_n``.
        """
        rows = []
        for j in range(self.n_bins):
            row: dict[str, Any] = {
                "variable": self.variable,
                "low": float(self.edges[j]),
                "high": float(self.edges[j + 1]),
                "count": int(self.count[j]),
            }
            if self.inside_training is not None:
                row["inside_training"] = bool(self.inside_training[j])
            for m in self.metrics:
                row[m] = _finite_or_none(self.metrics[m][j])
                row[f"{m}_lower"] = _finite_or_none(self.lower[m][j])
                row[f"{m}_upper"] = _finite_or_none(self.upper[m][j])
                row[f"{m}_n"] = int(self.n[m][j])
            rows.append(row)
        return rows

    def to_markdown(self) -> str:
        """A Markdown table: one row per bin, each metric as ``value [lower, upper]`` ("n/a" if NaN).

        A metric computed from fewer rows than the bin holds shows its own count, ``(n=...)``.
        """

        def cell(m: str, j: int) -> str:
            value = self.metrics[m][j]
            if not math.isfinite(value):
                return "n/a"
            text = f"{value:.3g} [{self.lower[m][j]:.3g}, {self.upper[m][j]:.3g}]"
            return text if self.n[m][j] == self.count[j] else f"{text} (n={self.n[m][j]})"

        head = [self.variable, "n", *(f"{m} ({self.level:.0%} CI)" for m in self.metrics)]
        if self.inside_training is not None:
            head.append("in training")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for j in range(self.n_bins):
            last = "]" if j == self.n_bins - 1 else ")"
            cells = [f"[{self.edges[j]:.4g}, {self.edges[j + 1]:.4g}{last}", str(self.count[j])]
            cells += [cell(m, j) for m in self.metrics]
            if self.inside_training is not None:
                cells.append("yes" if self.inside_training[j] else "no")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- checks


def _check_edges(edges: ArrayLike) -> FloatArray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must be at least two finite, strictly increasing values, got {edges!r}")
    return e


def _check_range(train_range: Sequence[float]) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in train_range)
    except (TypeError, ValueError):
        raise ValueError(f"train_range must be two numbers (low, high), got {train_range!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"train_range must be finite with low < high, got {train_range!r}")
    return a, b


def _check_level(level: float) -> float:
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def _vector(name: str, value: ArrayLike, n: int | None = None) -> FloatArray:
    v = np.asarray(value, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and v.size != n:
        raise ValueError(f"{name} must have the length of values ({n}), got {v.size}")
    return v


def _resolve_edges(values: FloatArray, edges: ArrayLike | None, n_bins: int) -> FloatArray:
    return bin_edges(values, n_bins) if edges is None else _check_edges(edges)


def _assign(values: FloatArray, edges: FloatArray) -> NDArray[np.intp]:
    """Bin of each value, -1 outside the edges or NaN (bins ``[e_j, e_j+1)``, the last one closed)."""
    nb = edges.size - 1
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = nb - 1
    idx[(idx < 0) | (idx >= nb) | ~np.isfinite(values)] = -1
    return idx


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


# --------------------------------------------------------------------------------------------- intervals


def _wilson(k: int, n: int, level: float) -> tuple[float, float, float]:
    """Fraction ``k / n`` with its Wilson score interval; NaN for ``n = 0``."""
    if n == 0:
        return math.nan, math.nan, math.nan
    z, p = _z(level), k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def _mean_ci(x: FloatArray, level: float) -> tuple[float, float, float]:
    """Mean with :math:`\\bar x \\pm z s/\\sqrt n`; NaN for no rows, infinite interval for one."""
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size == 1:
        return m, -math.inf, math.inf
    half = _z(level) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, m - half, m + half


def _rmse_ci(err: FloatArray, level: float) -> tuple[float, float, float]:
    """RMSE with the mean-square interval mapped through the square root."""
    mse, lo, hi = _mean_ci(err**2, level)
    if not math.isfinite(mse):
        return math.nan, math.nan, math.nan
    return math.sqrt(mse), math.sqrt(max(lo, 0.0)), math.sqrt(hi)


def _auc_ci(y: NDArray[np.bool_], score: FloatArray, level: float) -> tuple[float, float, float]:
    """ROC AUC with the Hanley & McNeil (1982) standard error; NaN unless both classes occur."""
    from sklearn.metrics import roc_auc_score

    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan, math.nan
    a = float(roc_auc_score(y, score))
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a**2) + (n0 - 1) * (q2 - a**2)) / (n1 * n0)
    half = _z(level) * math.sqrt(max(var, 0.0))
    return a, max(0.0, a - half), min(1.0, a + half)


#: A per-bin statistic: rows of the bin -> (value, lower, upper, rows used).
_Stat = Callable[[NDArray[np.intp]], tuple[float, float, float, int]]


def _fraction_stat(flags: NDArray[np.bool_], level: float) -> _Stat:
    return lambda r: (*_wilson(int(flags[r].sum()), r.size, level), r.size)


def _mean_stat(x: FloatArray, level: float) -> _Stat:
    return lambda r: (*_mean_ci(x[r], level), r.size)


def _relative_stat(err: FloatArray, truth: FloatArray, level: float) -> _Stat:
    def stat(rows: NDArray[np.intp]) -> tuple[float, float, float, int]:
        r = rows[truth[rows] != 0]
        return (*_mean_ci(err[r] / truth[r], level), r.size)

    return stat


def _rmse_stat(err: FloatArray, level: float) -> _Stat:
    return lambda r: (*_rmse_ci(err[r], level), r.size)


def _auc_stat(positive: NDArray[np.bool_], score: FloatArray, level: float) -> _Stat:
    return lambda r: (*_auc_ci(positive[r], score[r], level), r.size)


def _per_bin(idx: NDArray[np.intp], nb: int, stats: Mapping[str, _Stat]) -> dict[str, dict[str, Any]]:
    """Run each ``stat(rows) -> (value, lower, upper, n)`` on the rows of each bin."""
    out: dict[str, dict[str, Any]] = {
        what: {m: np.full(nb, np.nan) for m in stats} for what in ("metrics", "lower", "upper")
    }
    out["n"] = {m: np.zeros(nb, dtype=np.int64) for m in stats}
    for j in range(nb):
        rows = np.flatnonzero(idx == j)
        for m, stat in stats.items():
            value, lo, hi, n = stat(rows)
            out["metrics"][m][j], out["lower"][m][j], out["upper"][m][j] = value, lo, hi
            out["n"][m][j] = n
    return out


# --------------------------------------------------------------------------------------------- edges


def bin_edges(values: ArrayLike, n_bins: int = 6, *, log: bool | None = None) -> FloatArray:
    """Bin edges for a performance map: quantiles (equal counts) or log-spaced.

    Parameters
    ----------
    values : array_like, shape (n,)
        The variable; NaN and infinite values are ignored.
    n_bins : int
        Number of bins, >= 1.  Quantile edges that coincide (repeated values) are merged, so fewer
        bins may come back.
    log : bool or None
        ``True``: ``n_bins`` bins of equal width in :math:`\\log x` between the minimum and the
        maximum (needs values > 0).  ``False``: edges at the quantiles ``j / n_bins``.  ``None``:
        log-spaced if all values are > 0, ``max / min > LOG_RATIO`` (20) and the bulk is centred in
        :math:`\\log x` (the median nearer the geometric than the arithmetic mean of the 5th and 95th
        percentiles: a uniform sample on (0, 10) has a tiny minimum but wants linear bins),
        quantiles otherwise.

    Returns
    -------
    ndarray, shape (n_bins + 1,)
        Increasing edges from the minimum to the maximum.

    Examples
    --------
    >>> bin_edges([1.0, 2.0, 3.0, 4.0, 5.0], n_bins=2).tolist()
    [1.0, 3.0, 5.0]
    >>> bin_edges([1.0, 10.0, 100.0], n_bins=2).tolist()
    [1.0, 10.0, 100.0]
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("values has no finite entries: nothing to bin")
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        raise ValueError(f"values are all equal to {lo:g}: nothing to bin; pass edges explicitly")
    if log is None:
        # A wide span alone is not enough: a uniform sample on (0, 10) has a tiny minimum but wants
        # linear bins.  Log bins also need the bulk to be centred in log x: the median nearer the
        # geometric than the arithmetic mean of the 5th and 95th percentiles.
        p5, median, p95 = np.quantile(v, [0.05, 0.5, 0.95])
        centred_in_log = lo > 0 and abs(median - math.sqrt(p5 * p95)) < abs(median - (p5 + p95) / 2)
        use_log = bool(centred_in_log and hi / lo > LOG_RATIO)
    else:
        use_log = bool(log)
    if use_log:
        if lo <= 0:
            raise ValueError(f"log=True needs values > 0, got a minimum of {lo:g}")
        edges = np.geomspace(lo, hi, int(n_bins) + 1)
    else:
        edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, int(n_bins) + 1)))
    edges[0], edges[-1] = lo, hi
    return edges


# --------------------------------------------------------------------------------------------- detection


def detection_map(
    values: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float | None = None,
    fpr_target: float = 0.01,
    edges: ArrayLike | None = None,
    n_bins: int = 6,
    level: float = 0.68,
    variable: str = "value",
) -> PerformanceMap:
    """Detection rate (TPR) and false-positive rate of a score per bin of a variable.

    One global threshold is applied to all rows (as a search would); the map shows how the fraction
    of real QPOs found depends on the variable:

    .. math::

        \\mathrm{TPR}_j = \\frac{\\#\\{i \\in j : y_i = 1, s_i \\ge t\\}}{\\#\\{i \\in j : y_i = 1\\}},
        \\qquad
        \\mathrm{FPR}_j = \\frac{\\#\\{i \\in j : y_i = 0, s_i \\ge t\\}}{\\#\\{i \\in j : y_i = 0\\}}.

    Parameters
    ----------
    values : array_like, shape (n,)
        The variable (e.g. QPO rms).  Must be finite for rows with a QPO.  For QPO-free rows it may be
        NaN (a QPO rms is undefined without a QPO): those rows still set the threshold but are in no
        bin.  A variable defined for every row (count rate, exposure) also gives the FPR per bin.
    y_true : array_like of {0, 1} or bool, shape (n,)
        1 = QPO present.
    scores : array_like of float, shape (n,)
        Finite scores, higher = more QPO-like (probability or test statistic).
    threshold : float, optional
        Detect if ``score >= threshold``.  Default: the threshold of the TPR at ``fpr_target``
        (:func:`xtml.learn.metrics.binary_metrics`), i.e. the empirical :math:`(1 - \\mathrm{FPR}_0)`
        quantile of the QPO-free scores by the step rule, so that at most a fraction ``fpr_target``
        of them is above it.  Needs both classes.
    fpr_target : float
        Target false-positive rate of the default threshold, in [0, 1).
    edges : array_like, optional
        Bin edges; default :func:`bin_edges` of the values of the QPO rows, ``n_bins`` bins.
    n_bins : int
        Number of bins when ``edges`` is not given.
    level : float
        Confidence level of the Wilson intervals.
    variable : str
        Name of the variable, for tables and plots.

    Returns
    -------
    PerformanceMap
        Metrics ``"tpr"`` (over the QPO rows of each bin) and ``"fpr"`` (over the QPO-free rows with
        a value in the bin; NaN where there are none); ``n`` holds the two denominators, ``count``
        their sum; ``threshold`` the one used and, for the default threshold, ``nominal["fpr"]``
        the target.

    Examples
    --------
    >>> pm = detection_map([1, 2, 3, 4, np.nan, np.nan], [1, 1, 1, 1, 0, 0],
    ...                    [0.2, 0.4, 0.6, 0.9, 0.1, 0.5], threshold=0.5, n_bins=2)
    >>> pm.metrics["tpr"].tolist(), pm.n["tpr"].tolist()
    ([0.0, 1.0], [2, 2])
    """
    v = _vector("values", values)
    y_raw = np.asarray(y_true)
    if y_raw.shape != v.shape:
        raise ValueError(f"y_true must have the shape of values {v.shape}, got {y_raw.shape}")
    classes = np.unique(y_raw)
    if not np.isin(classes, (0, 1)).all():
        raise ValueError(f"y_true must hold 0 (no QPO) and 1 (QPO) or booleans, got {classes.tolist()[:10]}")
    y = y_raw.astype(bool)
    s = _vector("scores", scores, v.size)
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite, got {int((~np.isfinite(s)).sum())} non-finite values")
    if not y.any():
        raise ValueError("y_true holds no positive (QPO) rows: there is no detection rate to map")
    bad = y & ~np.isfinite(v)
    if bad.any():
        raise ValueError(f"values must be finite for rows with a QPO; {int(bad.sum())} are not")
    level = _check_level(level)
    nominal: dict[str, float] = {}
    if threshold is None:
        t = float(binary_metrics(y, s, threshold=None, fpr_target=fpr_target)["tpr_at_fpr_threshold"])
        nominal["fpr"] = float(fpr_target)
    else:
        t = float(threshold)
    e = _resolve_edges(v[y], edges, n_bins)
    idx = _assign(v, e)
    hit = s >= t

    # Rows of the other class are put in no bin, so each rate is over its own class only.
    out_pos = _per_bin(np.where(y, idx, -1), e.size - 1, {"tpr": _fraction_stat(hit, level)})
    out_neg = _per_bin(np.where(y, -1, idx), e.size - 1, {"fpr": _fraction_stat(hit, level)})
    out = {what: out_pos[what] | out_neg[what] for what in out_pos}
    return PerformanceMap(
        variable=variable,
        edges=e,
        count=out["n"]["tpr"] + out["n"]["fpr"],
        level=level,
        nominal=nominal,
        threshold=t,
        **out,
    )


# --------------------------------------------------------------------------------------------- regression


def regression_map(
    values: ArrayLike,
    truth: ArrayLike,
    mean: ArrayLike,
    std: ArrayLike | None = None,
    *,
    edges: ArrayLike | None = None,
    n_bins: int = 6,
    level: float = 0.68,
    variable: str = "value",
) -> PerformanceMap:
    """Bias, relative bias, RMSE and 68 % coverage of a regression per bin of a variable.

    With errors :math:`e_i = \\hat y_i - y_i` over the rows of a bin:

    .. math::

        \\mathrm{bias} = \\bar e, \\quad
        \\mathrm{rel\\_bias} = \\overline{e_i / y_i}, \\quad
        \\mathrm{RMSE} = \\sqrt{\\overline{e^2}}, \\quad
        \\mathrm{coverage\\_68} = \\overline{[\\,|e_i| \\le \\sigma_i\\,]}.

    Parameters
    ----------
    values : array_like, shape (n,)
        The binning variable (may be ``truth`` itself); rows with NaN are in no bin.
    truth, mean : array_like, shape (n,)
        True values and point estimates, finite.
    std : array_like, shape (n,), optional
        Predicted standard deviations, finite and > 0; gives ``coverage_68`` (nominal 0.6827 for
        Gaussian errors).
    edges, n_bins :
        Bin edges, default :func:`bin_edges` of ``values`` with ``n_bins`` bins.
    level : float
        Confidence level of the analytic intervals (see the module docstring).
    variable : str
        Name of the variable.

    Returns
    -------
    PerformanceMap
        Metrics ``"bias"``, ``"rel_bias"`` (over rows with ``truth != 0``), ``"rmse"`` and, with
        ``std``, ``"coverage_68"``.

    Examples
    --------
    >>> pm = regression_map([1, 1, 2, 2], [1.0, 1.0, 2.0, 2.0], [1.1, 0.9, 2.4, 2.4], edges=[0.5, 1.5, 2.5])
    >>> np.round(pm.metrics["bias"], 3).tolist(), np.round(pm.metrics["rel_bias"], 3).tolist()
    ([0.0, 0.4], [0.0, 0.2])
    """
    v = _vector("values", values)
    t = _vector("truth", truth, v.size)
    m = _vector("mean", mean, v.size)
    if not (np.isfinite(t).all() and np.isfinite(m).all()):
        raise ValueError("truth and mean must be finite")
    level = _check_level(level)
    err = m - t
    stats: dict[str, _Stat] = {
        "bias": _mean_stat(err, level),
        "rel_bias": _relative_stat(err, t, level),
        "rmse": _rmse_stat(err, level),
    }
    nominal: dict[str, float] = {"bias": 0.0, "rel_bias": 0.0}
    if std is not None:
        sd = _vector("std", std, v.size)
        if not (np.isfinite(sd).all() and (sd > 0).all()):
            raise ValueError("std must be finite and > 0")
        stats["coverage_68"] = _fraction_stat(np.abs(err) <= sd, level)
        nominal["coverage_68"] = ONE_SIGMA
    e = _resolve_edges(v, edges, n_bins)
    idx = _assign(v, e)
    out = _per_bin(idx, e.size - 1, stats)
    return PerformanceMap(
        variable=variable, edges=e, count=out["n"]["bias"], level=level, nominal=nominal, **out
    )


# --------------------------------------------------------------------------------------------- posteriors


def _find_levels(levels: FloatArray) -> dict[str, int]:
    found: dict[str, int] = {}
    missing = []
    for key, target in POSTERIOR_LEVELS.items():
        k = int(np.argmin(np.abs(levels - target)))
        if abs(levels[k] - target) <= LEVEL_TOLERANCE:
            found[key] = k
        else:
            missing.append(round(target, 4))
    if missing:
        raise ValueError(
            f"posterior_map needs the quantile levels {[round(x, 4) for x in POSTERIOR_LEVELS.values()]} "
            f"(within {LEVEL_TOLERANCE}; 0.16/0.84 serve for the 68 % interval); missing {missing}, "
            f"got quantile_levels {levels.tolist()}"
        )
    return found


def posterior_map(
    values: ArrayLike,
    truths: ArrayLike,
    quantiles: ArrayLike,
    quantile_levels: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    edges: ArrayLike | None = None,
    n_bins: int = 6,
    level: float = 0.68,
    variable: str = "value",
) -> dict[str, PerformanceMap]:
    """Coverage and median bias of posteriors stored as quantiles, per bin of a variable.

    For each test observation :math:`i` and parameter the posterior is summarised by its quantiles
    :math:`q_i(\\alpha)`.  Per bin: the fraction of true values inside the central 68 % interval
    :math:`[q(0.1587), q(0.8413)]` (``coverage_68``) and the 95 % one :math:`[q(0.025), q(0.975)]`
    (``coverage_95``), the bias of the posterior median :math:`\\overline{q_i(0.5) - \\theta_i}` and
    its relative bias :math:`\\overline{(q_i(0.5) - \\theta_i)/\\theta_i}`.  A calibrated posterior
    covers at the nominal rate in *every* bin, not only on average.

    Parameters
    ----------
    values : array_like, shape (n,)
        The binning variable; rows with NaN are in no bin.
    truths : array_like, shape (n, n_params) or (n,)
        True parameters.
    quantiles : array_like, shape (n, n_levels, n_params) or (n, n_levels)
        Posterior quantiles at ``quantile_levels``, non-decreasing along the levels.
    quantile_levels : array_like, shape (n_levels,)
        Increasing levels in (0, 1), e.g. ``[0.025, 0.16, 0.25, 0.5, 0.75, 0.84, 0.975]``.  Must
        include 0.025, 0.5, 0.975 and 0.1587/0.8413 (0.16/0.84 accepted), each within
        ``LEVEL_TOLERANCE``.
    names : sequence of str, optional
        Parameter names, default ``"theta_0"``, ``"theta_1"``, ...
    edges, n_bins :
        Bin edges, default :func:`bin_edges` of ``values`` with ``n_bins`` bins.
    level : float
        Confidence level of the intervals of the metrics.
    variable : str
        Name of the variable.

    Returns
    -------
    dict of str to PerformanceMap
        One map per parameter with metrics ``"coverage_68"``, ``"coverage_95"``, ``"bias"`` and
        ``"rel_bias"`` (over truths != 0); ``nominal`` holds the coverages the given levels promise
        (e.g. 0.68 for 0.16/0.84).

    Raises
    ------
    ValueError
        Mismatched shapes, empty input, or needed quantile levels missing (naming those given).
    """
    v = _vector("values", values)
    n = v.size
    t = np.asarray(truths, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    lv = np.asarray(quantile_levels, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if q.ndim == 2:
        q = q[:, :, None]
    if lv.ndim != 1 or lv.size == 0 or np.any(np.diff(lv) <= 0) or np.any((lv <= 0) | (lv >= 1)):
        raise ValueError(f"quantile_levels must be increasing values in (0, 1), got {lv.tolist()}")
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"truths must have shape ({n}, n_params) for {n} values, got {t.shape}")
    p = t.shape[1]
    if q.shape != (n, lv.size, p):
        raise ValueError(
            f"quantiles must have shape (n, n_levels, n_params) = ({n}, {lv.size}, {p}), got {q.shape}"
        )
    if not (np.isfinite(t).all() and np.isfinite(q).all()):
        raise ValueError("truths and quantiles must be finite")
    if np.any(np.diff(q, axis=1) < 0):
        raise ValueError("quantiles must be non-decreasing along the levels axis (axis 1)")
    names = [f"theta_{k}" for k in range(p)] if names is None else [str(x) for x in names]
    if len(names) != p or len(set(names)) != p:
        raise ValueError(f"names must be {p} distinct names (one per parameter), got {names}")
    at = _find_levels(lv)
    level = _check_level(level)
    nominal = {
        "coverage_68": float(lv[at["hi68"]] - lv[at["lo68"]]),
        "coverage_95": float(lv[at["hi95"]] - lv[at["lo95"]]),
        "bias": 0.0,
        "rel_bias": 0.0,
    }
    e = _resolve_edges(v, edges, n_bins)
    idx = _assign(v, e)
    maps = {}
    for k, name in enumerate(names):
        tk, qk = t[:, k], q[:, :, k]
        err = qk[:, at["median"]] - tk
        stats = {
            "coverage_68": _fraction_stat((qk[:, at["lo68"]] <= tk) & (tk <= qk[:, at["hi68"]]), level),
            "coverage_95": _fraction_stat((qk[:, at["lo95"]] <= tk) & (tk <= qk[:, at["hi95"]]), level),
            "bias": _mean_stat(err, level),
            "rel_bias": _relative_stat(err, tk, level),
        }
        out = _per_bin(idx, e.size - 1, stats)
        maps[name] = PerformanceMap(
            variable=variable, edges=e, count=out["n"]["bias"], level=level, nominal=nominal, **out
        )
    return maps


# --------------------------------------------------------------------------------------------- shift test


def _snap_edges(edges: FloatArray, bounds: tuple[float, float]) -> FloatArray:
    """Move the interior edge nearest to each bound of the training range onto it (bins line up)."""
    e = edges.copy()
    snapped: list[float] = []
    for bound in bounds:
        if not e[0] < bound < e[-1] or np.any(np.isclose(e, bound, rtol=1e-12, atol=0.0)):
            continue
        free = [i for i in range(1, e.size - 1) if e[i] not in snapped]
        if free:
            e[min(free, key=lambda i: abs(e[i] - bound))] = bound
        else:
            e = np.append(e, bound)
        snapped.append(bound)
        e = np.sort(e)
    return np.unique(e)


def _positive_score(model: Any, X: NDArray[Any]) -> FloatArray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=np.float64)[:, 1]
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), dtype=np.float64).reshape(-1)
    raise ValueError(
        f"metric='roc_auc' needs predict_proba or decision_function; {type(model).__name__} has neither"
    )


def shift_test(
    estimator: Any,
    X: ArrayLike,
    y: ArrayLike,
    values: ArrayLike,
    *,
    train_range: Sequence[float],
    edges: ArrayLike | None = None,
    n_bins: int = 6,
    metric: ShiftMetric = "roc_auc",
    holdout: float = 0.3,
    level: float = 0.68,
    rng: np.random.Generator | int | None,
    variable: str = "value",
) -> PerformanceMap:
    """Train inside one range of a variable, evaluate across all of it: degradation under domain shift.

    A model trained on, say, count rates of 100-500 ct/s is often applied to 2,000 ct/s.  The shift
    test makes that explicit: an unfitted clone of ``estimator`` is fitted on the rows whose variable
    lies in ``train_range`` (minus a random ``holdout`` fraction of them, kept as in-domain test
    rows); the metric is then computed per bin over every row *not* used for fitting.  Bins inside
    the training range measure in-domain performance, bins outside it how the model degrades when
    it extrapolates: a model that generalises shows a flat map, one that learnt a rule specific to
    its training range shows a drop outside the shaded region of :func:`plot_performance_map`.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned with :func:`sklearn.base.clone`; the original is not fitted.
    X : array_like, shape (n, n_features)
        Inputs (the variable itself need not be a feature).
    y : array_like, shape (n,)
        Targets: binary labels for ``"roc_auc"``, labels for ``"accuracy"``, numbers for ``"rmse"``.
    values : array_like, shape (n,)
        The variable, finite.
    train_range : (float, float)
        Closed range ``[low, high]`` of the variable used for training.
    edges : array_like, optional
        Bin edges.  Default: :func:`bin_edges` of ``values`` with ``n_bins`` bins, with the interior
        edges nearest to the ends of ``train_range`` moved onto them, so that bins are either inside
        or outside the training range.
    n_bins : int
        Number of bins when ``edges`` is not given.
    metric : {"roc_auc", "rmse", "accuracy"}
        ``"roc_auc"`` uses ``predict_proba[:, 1]`` (or ``decision_function``) of a binary
        classifier, with the Hanley-McNeil interval; ``"accuracy"`` ``predict`` with a Wilson
        interval; ``"rmse"`` ``predict`` with the interval of the module docstring.
    holdout : float
        Fraction of the in-range rows held out from fitting, in (0, 1).
    level : float
        Confidence level of the intervals.
    rng : Generator, int or None
        Random source of the hold-out split (the estimator keeps its own ``random_state``).
    variable : str
        Name of the variable.

    Returns
    -------
    PerformanceMap
        One metric, named ``metric``; ``inside_training`` flags the bins that lie within
        ``train_range`` (both edges inside it), ``train_range`` is recorded for the plots; ``count``
        is the number of evaluation rows per bin.
    """
    from sklearn.base import clone

    if metric not in _SHIFT_METRICS:
        raise ValueError(f"metric must be one of {_SHIFT_METRICS}, got {metric!r}")
    if not 0 < float(holdout) < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    v = _vector("values", values)
    if not np.isfinite(v).all():
        raise ValueError(f"values must be finite, got {int((~np.isfinite(v)).sum())} non-finite")
    Xa = np.asarray(X)
    ya = np.asarray(y)
    if Xa.ndim != 2 or Xa.shape[0] != v.size:
        raise ValueError(f"X must have shape (n, n_features) with n = {v.size} (len(values)), got {Xa.shape}")
    if ya.shape != v.shape:
        raise ValueError(f"y must have shape {v.shape} (one per value), got {ya.shape}")
    a, b = _check_range(train_range)
    level = _check_level(level)
    in_range = np.flatnonzero((v >= a) & (v <= b))
    n_hold = round(float(holdout) * in_range.size)
    if in_range.size - n_hold < 2 or n_hold < 1:
        raise ValueError(
            f"train_range {train_range!r} holds {in_range.size} rows: too few to fit on and hold out "
            f"{holdout:g} of them"
        )
    gen = np.random.default_rng(rng)
    perm = gen.permutation(in_range)
    fit_rows = perm[n_hold:]
    model = clone(estimator).fit(Xa[fit_rows], ya[fit_rows])
    evaluate = np.ones(v.size, dtype=bool)
    evaluate[fit_rows] = False
    e = _snap_edges(bin_edges(v, n_bins), (a, b)) if edges is None else _check_edges(edges)
    idx = np.where(evaluate, _assign(v, e), -1)

    if metric == "roc_auc":
        classes = np.unique(ya)
        if classes.size != 2:
            raise ValueError(f"metric='roc_auc' needs binary y, got classes {classes.tolist()[:10]}")
        positive = ya == getattr(model, "classes_", classes)[1]
        score = np.zeros(v.size)
        score[evaluate] = _positive_score(model, Xa[evaluate])
        stat = _auc_stat(positive, score, level)
    elif metric == "accuracy":
        correct = np.zeros(v.size, dtype=bool)
        correct[evaluate] = np.asarray(model.predict(Xa[evaluate])) == ya[evaluate]
        stat = _fraction_stat(correct, level)
    else:
        err = np.zeros(v.size)
        err[evaluate] = np.asarray(model.predict(Xa[evaluate]), dtype=np.float64).reshape(-1) - ya[evaluate]
        stat = _rmse_stat(err, level)
    out = _per_bin(idx, e.size - 1, {metric: stat})
    tol = 1e-12 * max(abs(a), abs(b), 1.0)
    inside = (e[:-1] >= a - tol) & (e[1:] <= b + tol)
    return PerformanceMap(
        variable=variable,
        edges=e,
        count=out["n"][metric],
        level=level,
        inside_training=inside,
        train_range=(a, b),
        **out,
    )


# --------------------------------------------------------------------------------------------- plot


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(5.6, 4.0)).add_subplot()


def _draw(
    ax: Axes, pmap: PerformanceMap, metric: str, log: bool, label: str | None, colour: str, marker: str = "o"
) -> None:
    x = pmap.centres(log)
    y, lo, hi = pmap.metrics[metric], pmap.lower[metric], pmap.upper[metric]
    shown = np.isfinite(y)
    # Infinite interval ends (one-row bins) are drawn as no bar rather than stretching the axes.
    yerr = np.stack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
    xerr = np.stack([x - pmap.edges[:-1], pmap.edges[1:] - x])
    ax.errorbar(
        x[shown],
        y[shown],
        yerr=np.clip(yerr[:, shown], 0.0, None),
        xerr=xerr[:, shown],
        fmt=marker,
        ms=4 if marker == "o" else 6,
        mfc=colour if marker == "o" else "none",
        capsize=2,
        color=colour,
        label=label,
    )


def plot_performance_map(
    pmap: PerformanceMap,
    metric: str,
    *,
    ax: Axes | None = None,
    reference: PerformanceMap | None = None,
    log: bool | None = None,
    label: str | None = None,
    reference_label: str = "reference",
) -> Axes:
    """Plot one metric of a performance map against the variable, with its confidence intervals.

    Points sit at the bin centres, horizontal bars span the bins and vertical bars are the intervals
    of the map (bins where the metric is undefined are left out).  The training range of a shift test
    is shaded, the nominal value of the metric (e.g. 0.68 for a 68 % coverage) drawn as a dotted line.

    Parameters
    ----------
    pmap : PerformanceMap
        The map to draw.
    metric : str
        One of ``pmap.metrics``.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    reference : PerformanceMap, optional
        A second map of the same metric (e.g. the classical reference next to an ML model), drawn in
        another colour with open squares (so that equal values do not hide each other).
    log : bool, optional
        Log scale for the variable; default as in :meth:`PerformanceMap.centres`.
    label, reference_label : str
        Legend entries of the two maps.

    Returns
    -------
    matplotlib Axes
    """
    for name, pm in (("pmap", pmap), ("reference", reference)):
        if pm is not None and metric not in pm.metrics:
            raise ValueError(f"{name} has no metric {metric!r}; it has {list(pm.metrics)}")
    ax = _axes(ax)
    use_log = _is_log(pmap.edges) if log is None else bool(log)
    if use_log and pmap.edges[0] <= 0:
        raise ValueError(f"log=True needs edges > 0, got a first edge of {pmap.edges[0]:g}")
    if pmap.train_range is not None:
        low = max(pmap.train_range[0], pmap.edges[0])
        high = min(pmap.train_range[1], pmap.edges[-1])
        ax.axvspan(low, high, color="0.9", zorder=0, label="training range")
    if metric in pmap.nominal:
        ax.axhline(pmap.nominal[metric], color="0.5", ls=":", lw=1, label=f"nominal {pmap.nominal[metric]:g}")
    _draw(ax, pmap, metric, use_log, label, "C0")
    if reference is not None:
        _draw(ax, reference, metric, use_log, reference_label, "C1", marker="s")  # open: overlaps show
    if use_log:
        ax.set_xscale("log")
    ax.set_xlabel(pmap.variable)
    ax.set_ylabel(f"{metric} ({pmap.level:.0%} CI)")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(frameon=False, fontsize="small")
    return ax
