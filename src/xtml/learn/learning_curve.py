"""Learning curves: is there enough training data?  The headline metric against training-set size.

:func:`learning_curve` refits one model (the same estimator and hyper-parameters) on nested subsets of
its training rows, whole observations at a time and stratified by class, and scores every fit on the
same validation rows (never the test set).  The metric is the run's headline: for QPO detection the TPR
at the fixed false-positive rate (with the ROC-AUC beside it), for state classification the accuracy,
for regression the RMSE (mean over targets).  All sizes are bootstrapped from the same resamples of the
validation rows, so the change between the two largest sizes is a *paired* difference with its own
interval, and :attr:`LearningCurve.verdict` reads it:

* **still improving**: the largest size is better than the one before by a resolved margin (interval
  above zero): more training data would likely help;
* **no resolved gain**: the last step's interval includes zero (or lies below it): these validation
  rows cannot show that more data of the same kind would help; its upper end bounds the gain of one more
  doubling;

and for detection, when the validation rows hold too few QPO-free spectra to resolve the TPR at the
fixed FPR (:func:`~xtml.learn.comparison.tpr_resolution`), the verdict is read from the ROC-AUC and says
so.  Scores are the model's raw ones (before the calibration fitted on the same validation rows): the
ranking metrics do not need it, and calibrating on the rows that score the curve would bias it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone

from xtml.learn.bootstrap import _group_index, _interval
from xtml.learn.comparison import _resample_counts, compare_scores, tpr_resolution

__all__ = ["DEFAULT_FRACTIONS", "LearningCurve", "learning_curve", "nested_subsets"]

#: Fractions of the training rows of a learning curve (each subset contains the smaller ones).
DEFAULT_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class LearningCurve:
    """A metric on fixed validation rows against the number of training rows.

    Attributes
    ----------
    metric, label : str
        The metric (``"tpr_at_fpr"``, ``"accuracy"``, ``"rmse"``) and its name in words.
    higher_is_better : bool
        False for the RMSE.
    sizes : tuple of int
        Training rows of each fit, increasing.
    estimate, low, high : tuple of float
        The metric at each size and its bootstrap interval (``level``).
    level : float
    rows : str
        The rows it was scored on, e.g. "the 600 validation spectra".
    n_positive, n_negative : int
        Detection only: rows with and without a QPO among them (else 0).
    resolved : bool
        Whether the rows resolve the metric (detection: enough QPO-free rows for the TPR at the FPR).
    judged_on : str
        The metric the verdict reads: ``metric``, or ``"roc_auc"`` where the TPR is not resolved.
    secondary : dict
        Detection: ``{"metric": "roc_auc", "estimate": [...], "low": [...], "high": [...]}``.
    last_step : dict
        ``judged_on`` at the largest minus the next size: ``difference``, ``low``, ``high``.
    verdict : str
        "still improving" or "no resolved gain", with the figures (module docstring).
    """

    metric: str
    label: str
    higher_is_better: bool
    sizes: tuple[int, ...]
    estimate: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    level: float
    rows: str
    n_positive: int
    n_negative: int
    resolved: bool
    judged_on: str
    secondary: dict[str, Any]
    last_step: dict[str, float]
    verdict: str

    def judged(self) -> tuple[str, list[float], list[float], list[float]]:
        """The metric the verdict reads: its name and its values with their intervals, per size."""
        if self.judged_on == self.metric:
            return self.label, list(self.estimate), list(self.low), list(self.high)
        s = self.secondary
        return "ROC-AUC", list(s["estimate"]), list(s["low"]), list(s["high"])

    @property
    def still_improving(self) -> bool:
        """Whether the last doubling of the training set improved the judged metric, resolved."""
        d = self.last_step
        return (
            bool(d["low"] > 0)
            if self.higher_is_better or self.judged_on == "roc_auc"
            else bool(d["high"] < 0)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("sizes", "estimate", "low", "high"):
            out[k] = list(out[k])
        out["still_improving"] = self.still_improving
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearningCurve:
        """Inverse of :meth:`to_dict`."""
        kw = {k: d[k] for k in cls.__dataclass_fields__}
        for k in ("sizes", "estimate", "low", "high"):
            kw[k] = tuple(kw[k])
        return cls(**kw)


def nested_subsets(
    y: ArrayLike | None, groups: ArrayLike, fractions: Sequence[float], rng: np.random.Generator | int | None
) -> list[NDArray[np.intp]]:
    """Row indices of nested training subsets: whole observations, stratified by class.

    Observations (``groups``) are shuffled once within each class (the class of an observation is that
    of its first row; ``y=None``: one class); subset ``k`` takes the first
    :math:`\\lceil f_k\\, G_c \\rceil` observations of every class :math:`c`, so each subset holds the
    smaller ones and every class at every size.

    Returns
    -------
    list of ndarray
        Sorted row indices, one array per fraction.
    """
    g = np.asarray(groups)
    gen = np.random.default_rng(rng)
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr) or fr != sorted(fr):
        raise ValueError(f"fractions must be increasing numbers in (0, 1], got {list(fractions)!r}")
    uniq, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    cls = (
        np.zeros(uniq.size, dtype=np.intp)
        if y is None
        else np.unique(np.asarray(y)[first], return_inverse=True)[1]
    )
    orders = [gen.permutation(np.flatnonzero(cls == c)) for c in range(int(cls.max()) + 1)]
    out = []
    for f in fr:
        keep = np.concatenate([o[: max(1, math.ceil(f * o.size))] for o in orders])
        out.append(np.flatnonzero(np.isin(inverse, keep)))
    return out


def _weighted_accuracy(correct: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    return (w @ correct) / w.sum(axis=1)


def _weighted_rmse(sq_err: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sqrt((w @ sq_err) / w.sum(axis=1))


def learning_curve(
    estimator: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    groups_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    *,
    task: str,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    full_scores: ArrayLike | None = None,
    fpr_target: float = 0.01,
    n_boot: int = 500,
    level: float = 0.95,
    groups_val: ArrayLike | None = None,
    rows: str = "the validation spectra",
    rng: np.random.Generator | int | None,
) -> LearningCurve:
    """The headline metric on ``(X_val, y_val)`` of ``estimator`` fitted on nested training subsets.

    Parameters
    ----------
    estimator : scikit-learn estimator
        The model with its final hyper-parameters; cloned for every fit.
    X_train, y_train, groups_train : array_like
        The training rows, their labels or targets, and observation ids (subsets keep observations whole).
    X_val, y_val : array_like
        The rows that score every fit.
    task : {"detect", "state", "regress"}
        Picks the metric: TPR at ``fpr_target`` (and ROC-AUC), accuracy, RMSE.
    fractions : sequence of float
        Increasing fractions of the training rows (:func:`nested_subsets`).
    full_scores : array_like, optional
        Validation predictions of the model already fitted on all training rows (``fractions[-1] == 1``):
        the positive-class score (detect), class probabilities (state) or predictions (regress); saves
        the largest refit.
    fpr_target, n_boot, level : float, int, float
        As in :func:`~xtml.learn.comparison.compare_scores`.
    groups_val : array_like, optional
        Observation ids of the validation rows: resample whole observations.
    rows : str
        What the validation rows are, for the record.
    rng : Generator or int
        Random source of the subsets and the bootstrap.

    Returns
    -------
    LearningCurve
    """
    if task not in ("detect", "state", "regress"):
        raise ValueError(f"task must be 'detect', 'state' or 'regress', got {task!r}")
    if len(fractions) < 2:
        raise ValueError(f"a learning curve needs at least two fractions, got {list(fractions)!r}")
    gen = np.random.default_rng(rng)
    Xt, yt, yv = np.asarray(X_train), np.asarray(y_train), np.asarray(y_val)
    subsets = nested_subsets(yt if task != "regress" else None, groups_train, fractions, gen)
    preds = []
    for k, idx in enumerate(subsets):
        if k == len(subsets) - 1 and full_scores is not None and idx.size == yt.shape[0]:
            preds.append(np.asarray(full_scores))
            continue
        model = clone(estimator).fit(Xt[idx], yt[idx])
        if task == "detect":
            preds.append(model.predict_proba(X_val)[:, 1])
        elif task == "state":
            preds.append(model.predict_proba(X_val))
        else:
            preds.append(np.asarray(model.predict(X_val)).reshape(yv.shape))
    sizes = tuple(int(s.size) for s in subsets)
    names = [f"n={s}" for s in sizes]
    if task == "detect":
        return _detection_curve(yv, names, sizes, preds, fpr_target, n_boot, level, groups_val, rows, gen)
    n = yv.shape[0]
    gi = _group_index(groups_val, n)
    w = _resample_counts(gen, n_boot, n) if gi is None else _resample_counts(gen, n_boot, gi[1])[:, gi[0]]
    if task == "state":
        per_row = [(np.argmax(p, axis=1) == yv).astype(np.float64) for p in preds]
        point = [float(x.mean()) for x in per_row]
        boot = [_weighted_accuracy(x, w) for x in per_row]
        metric, label, higher = "accuracy", "accuracy", True
    else:
        per_row = [((p - yv) ** 2).reshape(n, -1).mean(axis=1) for p in preds]
        point = [float(np.sqrt(x.mean())) for x in per_row]
        boot = [_weighted_rmse(x, w) for x in per_row]
        metric, label, higher = "rmse", "RMSE (mean over targets)", False
    cis = [_interval(b, p, level, n_boot, label) for b, p in zip(boot, point, strict=True)]
    step = _interval(boot[-1] - boot[-2], point[-1] - point[-2], level, n_boot, f"{label} difference")
    last = {"difference": step.estimate, "low": step.low, "high": step.high}
    better = step.low > 0 if higher else step.high < 0
    verdict = _verdict(label, sizes, point, last, better, "", level)
    return LearningCurve(
        metric=metric,
        label=label,
        higher_is_better=higher,
        sizes=sizes,
        estimate=tuple(c.estimate for c in cis),
        low=tuple(c.low for c in cis),
        high=tuple(c.high for c in cis),
        level=float(level),
        rows=rows,
        n_positive=0,
        n_negative=0,
        resolved=True,
        judged_on=metric,
        secondary={},
        last_step=last,
        verdict=verdict,
    )


def _verdict(
    label: str,
    sizes: Sequence[int],
    point: Sequence[float],
    last: dict[str, float],
    improved: bool,
    note: str,
    level: float,
) -> str:
    step = (
        f"{label} {point[-2]:.3f} at {sizes[-2]:,} training spectra, {point[-1]:.3f} at {sizes[-1]:,} "
        f"(change {last['difference']:+.3f}, {100 * level:g}% CI {last['low']:+.3f} to {last['high']:+.3f})"
    )
    if improved:
        return f"still improving: {step}; more training data would likely help{note}"
    return (
        f"no resolved gain: {step}; these validation rows cannot show that more data of the same kind "
        f"would help{note}"
    )


def _detection_curve(
    yv: NDArray[Any],
    names: list[str],
    sizes: tuple[int, ...],
    preds: list[NDArray[Any]],
    fpr_target: float,
    n_boot: int,
    level: float,
    groups_val: ArrayLike | None,
    rows: str,
    gen: np.random.Generator,
) -> LearningCurve:
    table = compare_scores(
        yv,
        dict(zip(names, preds, strict=True)),
        reference=names[-1],
        fpr_target=fpr_target,
        n_boot=n_boot,
        level=level,
        groups=groups_val,
        rng=gen,
    )
    resolved, why = tpr_resolution(table.n_negative, fpr_target)
    judged = "tpr_at_fpr" if resolved else "roc_auc"
    est = {m: [table.get(n, m) for n in names] for m in ("tpr_at_fpr", "roc_auc")}
    diff = next(d for d in table.differences if d.scorer == names[-2] and d.metric == judged)
    # the table's difference is (next size) - (largest): the last step is its negative
    last = {"difference": -diff.difference, "low": -diff.high, "high": -diff.low}
    label = f"TPR at {100 * fpr_target:g}% FPR"
    note = "" if resolved else f" (read from the ROC-AUC: {why.split(';')[0]} do not resolve the {label})"
    judged_label = label if resolved else "ROC-AUC"
    point = [e.estimate for e in est[judged]]
    verdict = _verdict(judged_label, sizes, point, last, last["low"] > 0, note, level)
    return LearningCurve(
        metric="tpr_at_fpr",
        label=label,
        higher_is_better=True,
        sizes=sizes,
        estimate=tuple(float(e.estimate) for e in est["tpr_at_fpr"]),
        low=tuple(float(e.low) for e in est["tpr_at_fpr"]),
        high=tuple(float(e.high) for e in est["tpr_at_fpr"]),
        level=float(level),
        rows=rows,
        n_positive=table.n_positive,
        n_negative=table.n_negative,
        resolved=resolved,
        judged_on=judged,
        secondary={
            "metric": "roc_auc",
            "estimate": [float(e.estimate) for e in est["roc_auc"]],
            "low": [float(e.low) for e in est["roc_auc"]],
            "high": [float(e.high) for e in est["roc_auc"]],
        },
        last_step=last,
        verdict=verdict,
    )
