"""Science metrics: detection at a fixed false-alarm rate, calibration, regression coverage, bootstrap CIs.

A QPO detector is any *score*, higher = more QPO-like: a classifier's probability, or a classical
test statistic such as the likelihood ratio of :func:`xtml.reference.qpo.qpo_scores` (pass
:math:`1 - p` or :math:`-\\log p` for p-values).  :func:`binary_metrics` only uses the ranking of
the scores (except the Brier score and the fixed-threshold precision / recall), so classical tests
and ML models go into the same table, and :func:`compare_scores` puts them side by side with
bootstrap confidence intervals and paired differences against a reference.

The headline number of a search for QPOs is the **true-positive rate at a fixed false-positive
rate** (default 1 %): the fraction of real QPOs found when only 1 % of QPO-free observations
raise a false alarm.  It is read *exactly* off the empirical ROC curve, without interpolation:

.. math::

    \\mathrm{TPR@FPR}_0 = \\max\\{\\mathrm{TPR}(t) : \\mathrm{FPR}(t) \\le \\mathrm{FPR}_0\\},
    \\qquad \\mathrm{TPR}(t) = \\frac{\\#\\{s_i \\ge t, y_i = 1\\}}{\\#\\{y_i = 1\\}},

over the thresholds :math:`t` at the distinct scores (and :math:`t = +\\infty`, where both rates
are 0).  Tied scores enter or leave together: a tie between a positive and a negative cannot be
split to squeeze under the false-alarm budget.  Interpolating linearly between ROC vertices
would describe a *randomised* test (flip a coin at the threshold), which a search does not run;
the step rule is conservative and exactly reproducible.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)

__all__ = [
    "BootstrapCI",
    "ComparisonTable",
    "MetricEstimate",
    "PairedDifference",
    "binary_metrics",
    "bootstrap_ci",
    "compare_scores",
    "multiclass_metrics",
    "regression_metrics",
]

FloatArray = NDArray[np.float64]

#: Rounding allowance when comparing an empirical FPR (a ratio of counts) with the target.
FPR_TOLERANCE = 1e-12
#: Half-width, in standard deviations, of the central 95 % Gaussian interval.
Z95 = float(norm.ppf(0.975))
#: Elements (resamples x rows) handled at once by the vectorised bootstraps.
_CHUNK_ELEMENTS = 2_000_000
#: Metrics of :func:`compare_scores`, in table order.
COMPARED_METRICS = ("roc_auc", "pr_auc", "tpr_at_fpr", "precision", "recall", "f1", "brier")
_DIFF_METRICS = ("tpr_at_fpr", "roc_auc")


# ----------------------------------------------------------------------------- input checks


def _check_binary(y_true: ArrayLike, score: ArrayLike) -> tuple[NDArray[np.int8], FloatArray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and score must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true and score must have the same length, got {y.size} and {s.size}")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(
            f"y_true must hold 0 (no QPO) and 1 (QPO) or booleans, got values {values.tolist()[:10]}"
        )
    if values.size < 2:
        raise ValueError(f"y_true must contain both classes (0 and 1), got only {values.tolist()}")
    if not np.isfinite(s).all():
        raise ValueError(f"score must be finite, got {int((~np.isfinite(s)).sum())} non-finite values")
    return y.astype(np.int8), s


def _check_fpr_target(fpr_target: float) -> float:
    f = float(fpr_target)
    if not 0 <= f < 1:
        raise ValueError(f"fpr_target must be in [0, 1), got {fpr_target!r}")
    return f


def _is_probability(s: FloatArray, probability: bool | None, what: str = "score") -> bool:
    in_range = bool(((s >= 0) & (s <= 1)).all())
    if probability is None:
        return in_range
    if probability and not in_range:
        raise ValueError(f"probability=True needs {what} in [0, 1], got range [{s.min():.4g}, {s.max():.4g}]")
    return bool(probability)


def _fpr_label(fpr_target: float) -> str:
    return f"TPR@{100 * fpr_target:g}%FPR"


# ----------------------------------------------------------------------------- binary


def binary_metrics(
    y_true: ArrayLike,
    score: ArrayLike,
    *,
    threshold: float | None = 0.5,
    fpr_target: float = 0.01,
    probability: bool | None = None,
) -> dict[str, Any]:
    """Detection metrics of a real-valued score (probability or test statistic) against 0/1 labels.

    Parameters
    ----------
    y_true : array_like of {0, 1} or bool, shape (n,)
        1 = QPO present.  Both classes must occur.
    score : array_like of float, shape (n,)
        Any finite real score, higher = more QPO-like.
    threshold : float or None
        Rows with ``score >= threshold`` are called detections for precision, recall, F1 and the
        confusion matrix.  0.5 suits probabilities; for a test statistic pass its critical value.
        ``None`` uses the operating point of the TPR at ``fpr_target`` (then ``recall`` equals
        ``tpr_at_fpr``), which puts differently scaled scores on an equal footing.
    fpr_target : float
        False-positive rate of the headline TPR, in [0, 1).
    probability : bool or None
        Whether ``score`` is a probability, for the Brier score.  ``None``: if every score lies in
        [0, 1].  Unbounded scores (test statistics) get ``brier = None``: a Brier score is only
        defined for probabilities.

    Returns
    -------
    dict
        ``n_positive``, ``n_negative``; ``threshold`` (the one used), ``precision``, ``recall``,
        ``f1`` (at it; 0 when nothing is detected); ``roc_auc``; ``pr_auc`` (average precision,
        :math:`\\sum_k (R_k - R_{k-1}) P_k`); ``fpr_target``, ``tpr_at_fpr``,
        ``tpr_at_fpr_threshold`` (detect if ``score >= it``; ``inf`` if no threshold meets the
        target) and ``fpr_at_threshold`` (the achieved FPR, <= target); ``brier``
        (:math:`\\overline{(p - y)^2}` or None); ``confusion_matrix`` (2 x 2 ndarray
        ``[[TN, FP], [FN, TP]]`` at ``threshold``).

    Notes
    -----
    The TPR at fixed FPR is the step-rule maximum described in the module docstring, read off
    :func:`sklearn.metrics.roc_curve` with every threshold kept; an FPR counts as within the
    target up to a rounding allowance of ``FPR_TOLERANCE``.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], fpr_target=0.0)
    >>> m["roc_auc"], m["tpr_at_fpr"], m["tpr_at_fpr_threshold"]
    (0.75, 0.5, 0.8)
    """
    y, s = _check_binary(y_true, score)
    fpr_target = _check_fpr_target(fpr_target)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    k = int(np.flatnonzero(fpr <= fpr_target + FPR_TOLERANCE)[-1])
    t_used = float(thr[k]) if threshold is None else float(threshold)
    y_pred = (s >= t_used).astype(np.int8)
    precision, recall, f1, _ = precision_recall_fscore_support(y, y_pred, average="binary", zero_division=0.0)
    is_prob = _is_probability(s, probability)
    return {
        "n_positive": int(y.sum()),
        "n_negative": int(y.size - y.sum()),
        "threshold": t_used,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": float(average_precision_score(y, s)),
        "fpr_target": fpr_target,
        "tpr_at_fpr": float(tpr[k]),
        "tpr_at_fpr_threshold": float(thr[k]),
        "fpr_at_threshold": float(fpr[k]),
        "brier": float(brier_score_loss(y, s)) if is_prob else None,
        "confusion_matrix": confusion_matrix(y, y_pred, labels=[0, 1]),
    }


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


# ----------------------------------------------------------------------------- multiclass


def multiclass_metrics(y_true: ArrayLike, proba: ArrayLike, labels: ArrayLike) -> dict[str, Any]:
    """Metrics of class probabilities for K >= 2 classes.

    Parameters
    ----------
    y_true : array_like, shape (n,)
        True labels, each one of ``labels``; every label must occur (for the one-vs-rest AUCs).
    proba : array_like, shape (n, K)
        Probabilities, column ``j`` for ``labels[j]``; rows sum to 1.
    labels : array_like, shape (K,)
        The classes, in column order.

    Returns
    -------
    dict
        ``accuracy`` and ``macro_f1`` of the arg-max prediction; ``precision`` and ``recall``
        (dicts label -> value); ``roc_auc_ovr`` (dict label -> one-vs-rest AUC) and
        ``roc_auc_ovr_macro`` (their mean); ``log_loss``
        (:math:`-\\frac1n\\sum_i \\log p_{i, y_i}`); ``confusion_matrix`` (K x K, rows = true,
        columns = predicted, in ``labels`` order); ``labels``.
    """
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size < 2 or np.unique(lab).size != lab.size:
        raise ValueError(f"labels must be >= 2 distinct classes, got {lab.tolist()}")
    if y.ndim != 1 or p.shape != (y.size, lab.size):
        raise ValueError(
            f"proba must have shape (n, K) = ({y.size}, {lab.size}) for {y.size} labels and {lab.size} "
            f"classes, got {p.shape}"
        )
    unknown = np.setdiff1d(np.unique(y), lab)
    if unknown.size:
        raise ValueError(f"y_true holds labels not in labels: {unknown.tolist()}")
    absent = np.setdiff1d(lab, y)
    if absent.size:
        raise ValueError(f"every class must occur in y_true for one-vs-rest AUCs; absent: {absent.tolist()}")
    if not (np.isfinite(p).all() and (p >= 0).all() and np.allclose(p.sum(axis=1), 1.0, atol=1e-6)):
        raise ValueError("proba must be finite, >= 0, with rows summing to 1")
    pred = lab[np.argmax(p, axis=1)]
    prec, rec, _, _ = precision_recall_fscore_support(y, pred, labels=lab, average=None, zero_division=0.0)
    auc = {c: float(roc_auc_score(y == c, p[:, j])) for j, c in enumerate(lab.tolist())}
    return {
        "labels": lab.tolist(),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=lab, average="macro", zero_division=0.0)),
        "precision": dict(zip(lab.tolist(), prec.tolist(), strict=True)),
        "recall": dict(zip(lab.tolist(), rec.tolist(), strict=True)),
        "roc_auc_ovr": auc,
        "roc_auc_ovr_macro": float(np.mean(list(auc.values()))),
        "log_loss": float(log_loss(y, p, labels=lab)),
        "confusion_matrix": confusion_matrix(y, pred, labels=lab),
    }


# ----------------------------------------------------------------------------- regression


def regression_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, y_std: ArrayLike | None = None
) -> dict[str, float | FloatArray]:
    """Point-estimate and uncertainty metrics of a regression, per output.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n,) or (n, k)
        True and predicted values (e.g. QPO frequency, width, rms).
    y_std : array_like, shape like ``y_pred``, optional
        Predicted Gaussian standard deviations, > 0.

    Returns
    -------
    dict
        Floats for 1-D input, arrays of shape (k,) otherwise:

        * ``rmse`` :math:`\\sqrt{\\overline{(\\hat y - y)^2}}`, ``mae``, ``r2``,
          ``bias`` :math:`\\overline{\\hat y - y}`;
        * with ``y_std``, from :math:`z = (\\hat y - y) / \\sigma`: ``mean_z`` (0 if unbiased),
          ``std_z`` (1 if the errors are right; ddof = 0), ``coverage_68`` (fraction with
          :math:`|z| \\le 1`, nominal 68.27 %), ``coverage_95`` (:math:`|z| \\le 1.96`, nominal
          95 %) and the Gaussian negative log-likelihood per row
          :math:`\\overline{\\tfrac12 \\log(2\\pi\\sigma^2) + \\tfrac12 z^2}`.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim not in (1, 2) or t.shape[0] < 2:
        raise ValueError(
            f"y_true and y_pred must share a shape (n,) or (n, k) with n >= 2, got {t.shape}, {p.shape}"
        )
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite")
    squeeze = t.ndim == 1
    t2, p2 = t.reshape(t.shape[0], -1), p.reshape(p.shape[0], -1)
    out: dict[str, FloatArray] = {
        "rmse": root_mean_squared_error(t2, p2, multioutput="raw_values"),
        "mae": mean_absolute_error(t2, p2, multioutput="raw_values"),
        "r2": np.asarray(r2_score(t2, p2, multioutput="raw_values"), dtype=np.float64),
        "bias": np.mean(p2 - t2, axis=0),
    }
    if y_std is not None:
        sd = np.asarray(y_std, dtype=np.float64)
        if sd.shape != t.shape:
            raise ValueError(f"y_std must have the shape of y_pred {t.shape}, got {sd.shape}")
        if not (np.isfinite(sd).all() and (sd > 0).all()):
            raise ValueError("y_std must be finite and > 0")
        sd2 = sd.reshape(t2.shape)
        z = (p2 - t2) / sd2
        out |= {
            "mean_z": z.mean(axis=0),
            "std_z": z.std(axis=0),
            "coverage_68": np.mean(np.abs(z) <= 1.0, axis=0),
            "coverage_95": np.mean(np.abs(z) <= Z95, axis=0),
            "nll": np.mean(0.5 * np.log(2 * np.pi * sd2**2) + 0.5 * z**2, axis=0),
        }
    if squeeze:
        return {k: float(v[0]) for k, v in out.items()}
    return dict(out)


# ----------------------------------------------------------------------------- bootstrap


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
