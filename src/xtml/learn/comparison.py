"""Scorers side by side: every detection metric with a bootstrap interval, paired differences, a verdict.

:func:`compare_scores` evaluates ML models and classical tests (e.g. the likelihood-ratio test of
:func:`xtml.reference.qpo.qpo_scores`) on the same rows with the metrics of
:func:`~xtml.learn.metrics.binary_metrics` (headline: the TPR at a fixed FPR), and bootstraps all of
them from the same resample weights, so that the difference of each scorer to a reference is a
*paired* difference, with its own interval and a plain-language verdict, in a :class:`ComparisonTable`.
The weighted metrics are computed for a whole batch of resamples at once, from one sort of each score.

**Resolution.**  A comparison only names a winner when the test set can tell: a paired difference whose
interval includes zero, or a TPR at a fixed FPR measured on fewer QPO-free rows than
:func:`min_negatives` asks for, reads "not resolved by this test set" (:func:`tpr_resolution` says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.learn.bootstrap import _CHUNK_ELEMENTS, _check_boot, _group_index, _interval
from xtml.learn.metrics import FPR_TOLERANCE, _check_binary, _check_fpr_target, binary_metrics

__all__ = [
    "MIN_FALSE_ALARMS",
    "ComparisonTable",
    "MetricEstimate",
    "PairedDifference",
    "compare_scores",
    "min_negatives",
    "tpr_resolution",
]

FloatArray = NDArray[np.float64]

#: Metrics of :func:`compare_scores`, in table order.
COMPARED_METRICS = ("roc_auc", "pr_auc", "tpr_at_fpr", "precision", "recall", "f1", "brier")
_DIFF_METRICS = ("tpr_at_fpr", "roc_auc")


#: Expected false alarms at the operating point below which a TPR at a fixed FPR is "not resolved".
MIN_FALSE_ALARMS = 10


def _fpr_label(fpr_target: float) -> str:
    return f"TPR@{100 * fpr_target:g}%FPR"


def min_negatives(fpr_target: float) -> int | None:
    """QPO-free rows a test set needs before its TPR at ``fpr_target`` means something.

    The operating threshold of a TPR at :math:`\\mathrm{FPR}_0` is an empirical quantile of the
    negatives' scores: with :math:`n` negatives it lets through at most the :math:`k = \\lfloor
    \\mathrm{FPR}_0\\, n \\rfloor` highest, so it lies between the :math:`k`-th and the
    :math:`(k+1)`-th highest negative score.  The false-alarm rate that such a threshold really has (on
    new QPO-free data) is an order statistic of uniforms, about :math:`\\mathrm{Beta}(k + 1, n - k)`,
    with relative standard deviation
    :math:`\\sqrt{(n - k) / ((k + 1)(n + 2))} \\approx 1 / \\sqrt{k + 1}`.  A test set with
    :math:`\\mathrm{FPR}_0\\, n \\ge` ``MIN_FALSE_ALARMS`` (10) expected false alarms pins the real
    operating point to within about 30 % (one sigma: "1 %" means 0.7-1.3 %); with
    :math:`\\mathrm{FPR}_0\\, n < 1` (e.g. 60 negatives at 1 %) the threshold is simply the highest
    negative score, its false-alarm rate is uncertain by 100 %, and the TPR read there answers a
    different question than the one asked.  Hence
    :math:`n_{neg} \\ge \\lceil 10 / \\mathrm{FPR}_0 \\rceil`: 1,000 negatives at 1 %, 200 at 5 %.

    Returns None for ``fpr_target = 0``: no finite test set resolves it.

    Examples
    --------
    >>> min_negatives(0.01), min_negatives(0.05)
    (1000, 200)
    """
    f = _check_fpr_target(fpr_target)
    if f == 0:
        return None
    return math.ceil(round(MIN_FALSE_ALARMS / f, 9))


def tpr_resolution(n_negative: int, fpr_target: float) -> tuple[bool, str]:
    """Whether ``n_negative`` QPO-free rows resolve a TPR at ``fpr_target`` (:func:`min_negatives`), and why.

    Examples
    --------
    >>> tpr_resolution(60, 0.01)
    (False, '60 QPO-free spectra; a TPR at 1% FPR needs at least 1,000 (10 expected false alarms)')
    """
    need = min_negatives(fpr_target)
    label = f"a TPR at {100 * fpr_target:g}% FPR"
    if need is None:
        return False, f"{label} is not resolved by any finite test set"
    if n_negative < need:
        return False, (
            f"{n_negative:,} QPO-free spectra; {label} needs at least {need:,} "
            f"({MIN_FALSE_ALARMS} expected false alarms)"
        )
    return True, f"{n_negative:,} QPO-free spectra, at least the {need:,} that {label} needs"


# ----------------------------------------------------------------------------- vectorised weighted metrics


@dataclass(frozen=True)
class _Ranked:
    """A score sorted once (descending) for the weighted, vectorised ROC statistics."""

    order: NDArray[np.intp]
    y: FloatArray  # labels in score order
    s: FloatArray  # scores in score order
    last: NDArray[np.intp]  # last position of every block of tied scores

    @classmethod
    def of(cls, y: NDArray[np.int8], s: FloatArray) -> _Ranked:
        order = np.argsort(-s, kind="stable")
        s_o = s[order]
        last = np.r_[np.flatnonzero(np.diff(s_o) != 0), s_o.size - 1].astype(np.intp)
        return cls(order=order, y=y[order].astype(np.float64), s=s_o, last=last)


def _weighted_binary(
    r: _Ranked, w: FloatArray, *, threshold: float | None, fpr_target: float, probability: bool
) -> dict[str, FloatArray]:
    """The metrics of :func:`binary_metrics` for every row of weights ``w`` (b, n), in original row order.

    Integer weights are resample counts: the result equals :func:`binary_metrics` on the data with
    row ``i`` repeated ``w[j, i]`` times.  Rows of ``w`` without both classes give NaN.
    """
    wo = w[:, r.order]
    tp = np.cumsum(wo * r.y, axis=1)[:, r.last]
    fp = np.cumsum(wo * (1.0 - r.y), axis=1)[:, r.last]
    P, N = tp[:, -1], fp[:, -1]
    valid = (P > 0) & (N > 0)
    P1, N1 = np.where(valid, P, 1.0), np.where(valid, N, 1.0)
    zero = np.zeros((w.shape[0], 1))
    tpr = np.hstack([zero, tp / P1[:, None]])
    fpr = np.hstack([zero, fp / N1[:, None]])
    auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1) / 2
    called = tp + fp
    prec_curve = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    ap = np.sum(np.diff(tpr, axis=1) * prec_curve, axis=1)
    k = np.sum(fpr <= fpr_target + FPR_TOLERANCE, axis=1) - 1
    rows = np.arange(w.shape[0])
    tpr_at = tpr[rows, k]
    if threshold is None:
        tp_t = np.hstack([zero, tp])[rows, k]
        fp_t = np.hstack([zero, fp])[rows, k]
    else:
        det = r.s >= threshold
        tp_t = wo @ (r.y * det)
        fp_t = wo @ ((1.0 - r.y) * det)
    precision = np.divide(tp_t, tp_t + fp_t, out=np.zeros_like(tp_t), where=(tp_t + fp_t) > 0)
    out = {
        "roc_auc": auc,
        "pr_auc": ap,
        "tpr_at_fpr": tpr_at,
        "precision": precision,
        "recall": tp_t / P1,
        "f1": 2 * tp_t / (tp_t + fp_t + P1),
    }
    if probability:
        out["brier"] = (wo @ (r.s - r.y) ** 2) / wo.sum(axis=1)
    for v in out.values():
        v[~valid] = np.nan
    return out


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class MetricEstimate:
    """One metric of one scorer with its bootstrap interval (``None`` where undefined, e.g. Brier)."""

    scorer: str
    metric: str
    estimate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedDifference:
    """Paired-bootstrap difference ``scorer - reference`` of one metric.

    Attributes
    ----------
    difference : float
        On the full data.
    std : float
        Bootstrap standard error of the difference.
    low, high : float
        Percentile interval of the difference at the table's level.
    significant : bool
        Whether the interval excludes 0.
    verdict : str
        In words: a winner only when ``resolved``, else "not resolved by this test set" and why.
    resolved : bool
        ``significant`` and, for the TPR at a fixed FPR, enough QPO-free rows (:func:`tpr_resolution`).
    """

    scorer: str
    reference: str
    metric: str
    difference: float
    std: float
    low: float
    high: float
    significant: bool
    verdict: str
    resolved: bool = False


@dataclass(frozen=True)
class ComparisonTable:
    """Every metric of every scorer with bootstrap intervals, and paired differences to a reference.

    Attributes
    ----------
    estimates : tuple of MetricEstimate
        Scorer by scorer, metrics in the order of ``COMPARED_METRICS``.
    differences : tuple of PairedDifference
        For each non-reference scorer: TPR at ``fpr_target`` and ROC-AUC.
    reference : str
        Name of the reference scorer.
    fpr_target, level : float
        False-positive rate of the TPR, confidence level.
    n_boot, n_skipped : int
        Resamples drawn and those skipped (one class missing).
    n_positive, n_negative : int
        Rows with and without a QPO behind every figure of the table.
    operating : dict of str to (float, float)
        Per scorer, the operating point of its TPR at ``fpr_target``: the threshold (detect if
        ``score >= threshold``) and the false-positive rate it reaches on these rows.
    """

    estimates: tuple[MetricEstimate, ...]
    differences: tuple[PairedDifference, ...]
    reference: str
    fpr_target: float
    level: float
    n_boot: int
    n_skipped: int
    n_positive: int = 0
    n_negative: int = 0
    operating: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def tpr_resolved(self) -> bool:
        """Whether the rows hold enough QPO-free spectra for the TPR at ``fpr_target``."""
        return tpr_resolution(self.n_negative, self.fpr_target)[0]

    @property
    def resolution(self) -> str:
        """Why the TPR at ``fpr_target`` is, or is not, resolved by these rows."""
        return tpr_resolution(self.n_negative, self.fpr_target)[1]

    @property
    def scorers(self) -> tuple[str, ...]:
        """Scorer names, in input order."""
        return tuple(dict.fromkeys(e.scorer for e in self.estimates))

    def get(self, scorer: str, metric: str) -> MetricEstimate:
        """The entry of ``scorer`` and ``metric``."""
        for e in self.estimates:
            if e.scorer == scorer and e.metric == metric:
                return e
        raise KeyError(f"no entry for scorer {scorer!r} and metric {metric!r}")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per scorer: ``scorer``; per metric ``metric``, ``metric_low``, ``metric_high``; the
        operating point ``threshold``, ``fpr_at_threshold``; ``n_positive`` and ``n_negative``."""
        out: list[dict[str, Any]] = []
        for name in self.scorers:
            row: dict[str, Any] = {"scorer": name}
            for e in self.estimates:
                if e.scorer == name:
                    row |= {e.metric: e.estimate, f"{e.metric}_low": e.low, f"{e.metric}_high": e.high}
            if name in self.operating:
                row["threshold"], row["fpr_at_threshold"] = self.operating[name]
            row |= {"n_positive": self.n_positive, "n_negative": self.n_negative}
            out.append(row)
        return out

    @property
    def verdict(self) -> str:
        """The plain-language verdicts, one line per comparison."""
        return "\n".join(d.verdict for d in self.differences)

    def to_text(self) -> str:
        """The rows behind the table, a fixed-width table ``estimate [low, high]`` per scorer and metric
        ("n/a" where a metric does not apply), then the verdicts."""
        names = {"tpr_at_fpr": _fpr_label(self.fpr_target)}
        head = ["scorer", *(names.get(m, m) for m in COMPARED_METRICS)]
        lines = []
        for name in self.scorers:
            cells = [name]
            for m in COMPARED_METRICS:
                e = self.get(name, m)
                cells.append("n/a" if e.estimate is None else f"{e.estimate:.3f} [{e.low:.3f}, {e.high:.3f}]")
            lines.append(cells)
        width = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
        text = ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in [head, *lines]]
        n = self.n_positive + self.n_negative
        rows = (
            f"{n:,} rows ({self.n_positive:,} with a QPO, {self.n_negative:,} without); "
            f"{100 * self.level:g}% bootstrap intervals; {_fpr_label(self.fpr_target)} "
            + ("resolved" if self.tpr_resolved else "NOT resolved")
            + f": {self.resolution}"
        )
        return "\n".join([rows, *text, "", self.verdict])

    def __str__(self) -> str:
        return self.to_text()


def _verdict(
    name: str,
    ref: str,
    metric: str,
    d: float,
    sd: float,
    low: float,
    high: float,
    level: float,
    fpr: float,
    too_few: str | None,
) -> tuple[bool, str]:
    """Whether the difference is resolved, and the verdict in words (a winner only when resolved).

    ``too_few`` is the reason a TPR at ``fpr`` is not resolved by the rows (None when it is).
    """
    if metric == "tpr_at_fpr":
        label, scale, unit, fmt = _fpr_label(fpr), 100.0, " pp", ".1f"
    else:
        label, scale, unit, fmt = "ROC-AUC", 1.0, "", ".3f"
    ci = f"({100 * level:g}% CI {scale * low:{fmt}} to {scale * high:{fmt}}{unit})"
    measured = f"{scale * d:+{fmt}} +- {scale * sd:{fmt}}{unit} {ci}"
    if metric == "tpr_at_fpr" and too_few is not None:
        return False, (
            f"not resolved by this test set: {name} against the reference {ref} at {label}, {measured}; "
            f"{too_few}"
        )
    if low > 0 or high < 0:
        word = "better" if low > 0 else "worse"
        return True, (
            f"{name} is {word} than the reference {ref} at {label} by {scale * abs(d):{fmt}} +- "
            f"{scale * sd:{fmt}}{unit} {ci}"
        )
    return False, (
        f"not resolved by this test set: {name} against the reference {ref} at {label}, {measured}; "
        "the interval includes zero"
    )


def _resample_counts(gen: np.random.Generator, b: int, k: int) -> FloatArray:
    """How often each of ``k`` items is drawn in each of ``b`` resamples of size ``k``, shape (b, k)."""
    picks = gen.integers(0, k, size=(b, k)) + k * np.arange(b)[:, None]
    return np.bincount(picks.ravel(), minlength=b * k).reshape(b, k).astype(np.float64)


def compare_scores(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    *,
    reference: str | None = None,
    fpr_target: float = 0.01,
    threshold: float | Mapping[str, float] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    groups: ArrayLike | None = None,
    rng: np.random.Generator | int | None,
) -> ComparisonTable:
    """Scorers side by side (ML models and classical tests): metrics, bootstrap CIs, paired differences.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels of the (test) rows.
    scores : mapping of str to array_like, each shape (n,)
        Scores of the same rows, higher = more QPO-like, by scorer name.
    reference : str, optional
        Scorer the others are compared with (e.g. the likelihood-ratio test); default the first.
    fpr_target : float
        False-positive rate of the TPR.
    threshold : float, mapping or None
        Detection threshold of precision / recall / F1, one for all or one per scorer; ``None``
        (default) uses each scorer's own operating point at ``fpr_target``, the only choice that
        treats probabilities and test statistics alike.
    n_boot : int
        Bootstrap resamples, shared by all scorers (so differences are paired).
    level : float
        Confidence level.
    groups : array_like, shape (n,), optional
        Observation ids: resample whole observations.
    rng : Generator or int
        Random source.

    Returns
    -------
    ComparisonTable
        ``estimates`` (point values from :func:`binary_metrics`, intervals from the bootstrap),
        ``differences`` and ``verdict``.

    Notes
    -----
    Each resample weights every row by the number of times it (or its observation) is drawn; all
    metrics of all scorers are computed from the same weights, vectorised over resamples, so the
    difference of two scorers is bootstrapped *paired*: the resample-to-resample variation of the
    test set cancels and the interval of the difference is much narrower than the two intervals
    suggest.  A difference is called significant when its percentile interval excludes 0
    (two-sided at :math:`1 - \\mathrm{level}`, not corrected for the number of scorers).
    Resamples with only one class are skipped (``n_skipped``).  The TPR at a fixed FPR of a few
    hundred negatives is coarse (steps of :math:`1/n_{neg}` in FPR): with fewer negatives than
    :func:`min_negatives` (:math:`10 / \\mathrm{FPR}_0`) its differences read "not resolved by this test
    set" whatever their interval, and so does any difference whose interval includes 0.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping of scorer name to scores")
    names = [str(k) for k in scores]
    ref = names[0] if reference is None else reference
    if ref not in names:
        raise ValueError(f"reference {reference!r} is not one of the scorers {names}")
    fpr_target = _check_fpr_target(fpr_target)
    _check_boot(n_boot, level)
    checked = {name: _check_binary(y_true, s) for name, s in scores.items()}
    y = checked[names[0]][0]
    n = y.size

    def thr(name: str) -> float | None:
        return threshold.get(name) if isinstance(threshold, Mapping) else threshold

    point = {
        name: binary_metrics(y, s, threshold=thr(name), fpr_target=fpr_target)
        for name, (_, s) in checked.items()
    }
    ranked = {name: _Ranked.of(y, s) for name, (_, s) in checked.items()}
    is_prob = {name: point[name]["brier"] is not None for name in names}
    gen = np.random.default_rng(rng)
    gi = _group_index(groups, n)
    boot: dict[str, dict[str, list[FloatArray]]] = {name: {} for name in names}
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        w = _resample_counts(gen, b, n) if gi is None else _resample_counts(gen, b, gi[1])[:, gi[0]]
        for name in names:
            stats = _weighted_binary(
                ranked[name], w, threshold=thr(name), fpr_target=fpr_target, probability=is_prob[name]
            )
            for m, v in stats.items():
                boot[name].setdefault(m, []).append(v)
    samples = {name: {m: np.concatenate(v) for m, v in per.items()} for name, per in boot.items()}
    n_skipped = int(np.isnan(samples[ref]["roc_auc"]).sum())

    estimates = []
    for name in names:
        for m in COMPARED_METRICS:
            if m not in samples[name]:
                estimates.append(MetricEstimate(name, m, None, None, None))
                continue
            ci = _interval(samples[name][m], point[name][m], level, n_boot, f"{m} of {name!r}")
            estimates.append(MetricEstimate(name, m, ci.estimate, ci.low, ci.high))
    n_positive, n_negative = int(y.sum()), int(y.size - y.sum())
    resolved_tpr, why = tpr_resolution(n_negative, fpr_target)
    differences = []
    for name in names:
        if name == ref:
            continue
        for m in _DIFF_METRICS:
            d = point[name][m] - point[ref][m]
            ci = _interval(samples[name][m] - samples[ref][m], d, level, n_boot, f"{m} difference")
            significant = ci.low > 0 or ci.high < 0
            resolved, text = _verdict(
                name, ref, m, d, ci.std, ci.low, ci.high, level, fpr_target, None if resolved_tpr else why
            )
            differences.append(
                PairedDifference(name, ref, m, d, ci.std, ci.low, ci.high, significant, text, resolved)
            )
    return ComparisonTable(
        estimates=tuple(estimates),
        differences=tuple(differences),
        reference=ref,
        fpr_target=fpr_target,
        level=float(level),
        n_boot=int(n_boot),
        n_skipped=n_skipped,
        n_positive=n_positive,
        n_negative=n_negative,
        operating={
            name: (float(point[name]["tpr_at_fpr_threshold"]), float(point[name]["fpr_at_threshold"]))
            for name in names
        },
    )
