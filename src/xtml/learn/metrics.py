"""Science metrics: detection at a fixed false-alarm rate, calibration, regression coverage.

A QPO detector is any *score*, higher = more QPO-like: a classifier's probability, or a classical
test statistic such as the likelihood ratio of :func:`xtml.reference.qpo.qpo_scores` (pass
:math:`1 - p` or :math:`-\\log p` for p-values).  :func:`binary_metrics` only uses the ranking of
the scores (except the Brier score and the fixed-threshold precision / recall), so classical tests
and ML models go into the same table, and :func:`~xtml.learn.comparison.compare_scores` puts them
side by side with bootstrap confidence intervals (:mod:`xtml.learn.bootstrap`) and paired
differences against a reference.

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

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm
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
    "binary_metrics",
    "multiclass_metrics",
    "regression_metrics",
]

FloatArray = NDArray[np.float64]

#: Rounding allowance when comparing an empirical FPR (a ratio of counts) with the target.
FPR_TOLERANCE = 1e-12
#: Half-width, in standard deviations, of the central 95 % Gaussian interval.
Z95 = float(norm.ppf(0.975))


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
