"""Scorers side by side: every detection metric with a bootstrap interval, paired differences, a verdict.

:func:`compare_scores` evaluates ML models and classical tests (e.g. the likelihood-ratio test of
:func:`xtml.reference.qpo.qpo_scores`) on the same rows with the metrics of
:func:`~xtml.learn.metrics.binary_metrics` (headline: the TPR at a fixed FPR), and bootstraps all of
them from the same resample weights, so that the difference of each scorer to a reference is a
*paired* difference, with its own interval and a plain-language verdict, in a :class:`ComparisonTable`.
The weighted metrics are computed for a whole batch of resamples at once, from one sort of each score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.learn.bootstrap import _CHUNK_ELEMENTS, _check_boot, _group_index, _interval
from xtml.learn.metrics import FPR_TOLERANCE, _check_binary, _check_fpr_target, binary_metrics

__all__ = ["ComparisonTable", "MetricEstimate", "PairedDifference", "compare_scores"]

FloatArray = NDArray[np.float64]

#: Metrics of :func:`compare_scores`, in table order.
COMPARED_METRICS = ("roc_auc", "pr_auc", "tpr_at_fpr", "precision", "recall", "f1", "brier")
_DIFF_METRICS = ("tpr_at_fpr", "roc_auc")


def _fpr_label(fpr_target: float) -> str:
    return f"TPR@{100 * fpr_target:g}%FPR"


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
        The same in words.
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
    """

    estimates: tuple[MetricEstimate, ...]
    differences: tuple[PairedDifference, ...]
    reference: str
    fpr_target: float
    level: float
    n_boot: int
    n_skipped: int

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
        """One dict per scorer: ``scorer`` and, per metric, ``metric``, ``metric_low``, ``metric_high``."""
        out: list[dict[str, Any]] = []
        for name in self.scorers:
            row: dict[str, Any] = {"scorer": name}
            for e in self.estimates:
                if e.scorer == name:
                    row |= {e.metric: e.estimate, f"{e.metric}_low": e.low, f"{e.metric}_high": e.high}
            out.append(row)
        return out

    @property
    def verdict(self) -> str:
        """The plain-language verdicts, one line per comparison."""
        return "\n".join(d.verdict for d in self.differences)

    def to_text(self) -> str:
        """A fixed-width table ``estimate [low, high]`` per scorer and metric, then the verdicts."""
        names = {"tpr_at_fpr": _fpr_label(self.fpr_target)}
        head = ["scorer", *(names.get(m, m) for m in COMPARED_METRICS)]
        lines = []
        for name in self.scorers:
            cells = [name]
            for m in COMPARED_METRICS:
                e = self.get(name, m)
                cells.append("-" if e.estimate is None else f"{e.estimate:.3f} [{e.low:.3f}, {e.high:.3f}]")
            lines.append(cells)
        width = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
        text = ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in [head, *lines]]
        return "\n".join([*text, "", self.verdict])

    def __str__(self) -> str:
        return self.to_text()


def _verdict(
    name: str, ref: str, metric: str, d: float, sd: float, low: float, high: float, level: float, fpr: float
) -> str:
    if metric == "tpr_at_fpr":
        label, scale, unit, fmt = _fpr_label(fpr), 100.0, " pp", ".1f"
    else:
        label, scale, unit, fmt = "ROC-AUC", 1.0, "", ".3f"
    ci = f"({100 * level:g}% CI {scale * low:{fmt}} to {scale * high:{fmt}}{unit})"
    if low > 0 or high < 0:
        word = "better" if low > 0 else "worse"
        return (
            f"{name} is {word} than the reference {ref} at {label} by {scale * abs(d):{fmt}} +- "
            f"{scale * sd:{fmt}}{unit} {ci}"
        )
    return (
        f"no significant difference between {name} and the reference {ref} at {label}: "
        f"{scale * d:+{fmt}} +- {scale * sd:{fmt}}{unit} {ci}"
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
    hundred negatives is coarse (steps of :math:`1/n_{neg}` in FPR): use a test set with
    :math:`n_{neg} \\gg 1/\\mathrm{FPR}_0`.
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
    differences = []
    for name in names:
        if name == ref:
            continue
        for m in _DIFF_METRICS:
            d = point[name][m] - point[ref][m]
            ci = _interval(samples[name][m] - samples[ref][m], d, level, n_boot, f"{m} difference")
            significant = ci.low > 0 or ci.high < 0
            text = _verdict(name, ref, m, d, ci.std, ci.low, ci.high, level, fpr_target)
            differences.append(PairedDifference(name, ref, m, d, ci.std, ci.low, ci.high, significant, text))
    return ComparisonTable(
        estimates=tuple(estimates),
        differences=tuple(differences),
        reference=ref,
        fpr_target=fpr_target,
        level=float(level),
        n_boot=int(n_boot),
        n_skipped=n_skipped,
    )
