"""Diagnostic plots of classifiers and regressors next to the classical reference (``ax=None`` style).

Every function draws on ``ax`` (or a new figure) and returns the axes; matplotlib is imported only when a
plot is drawn.  ROC and precision-recall curves take any scores (probabilities or test statistics), so the
likelihood-ratio test and the ML models share one figure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "plot_confusion",
    "plot_evaluation",
    "plot_importances",
    "plot_learning_curve",
    "plot_pr",
    "plot_regression",
    "plot_reliability",
    "plot_roc",
]


def _axes(ax: Axes | None, size: tuple[float, float] = (5.2, 4.4)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size).add_subplot()


def plot_roc(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    *,
    fpr_target: float | None = 0.01,
    operating: Mapping[str, tuple[float, float]] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """ROC curves of several scorers on the same labels, log false-positive axis; ``fpr_target`` marked.

    ``operating`` maps scorer names to their operating point ``(fpr, tpr)`` (e.g. the headline's TPR at
    ``fpr_target`` and the FPR its threshold reaches), drawn as a dot on the curve; an FPR of 0 sits on
    the left edge of the axis.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    ax = _axes(ax)
    y = np.asarray(y_true)
    left = 1e-3
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, np.asarray(s))
        (line,) = ax.step(
            np.maximum(fpr, 1e-4), tpr, where="post", label=f"{name} (AUC {roc_auc_score(y, s):.3f})"
        )
        if operating is not None and name in operating:
            f0, t0 = operating[name]
            ax.plot(max(f0, left), t0, "o", ms=5, color=line.get_color(), clip_on=False, zorder=5)
    if fpr_target is not None:
        ax.axvline(fpr_target, color="0.6", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_pr(y_true: ArrayLike, scores: Mapping[str, ArrayLike], *, ax: Axes | None = None) -> Axes:
    """Precision-recall curves of several scorers; the positive fraction as the no-skill line."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    ax = _axes(ax)
    y = np.asarray(y_true)
    for name, s in scores.items():
        prec, rec, _ = precision_recall_curve(y, np.asarray(s))
        ax.step(rec, prec, where="post", label=f"{name} (AP {average_precision_score(y, s):.3f})")
    ax.axhline(y.mean(), color="0.6", ls=":", lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_confusion(
    matrix: ArrayLike, labels: Sequence[str], *, title: str = "", ax: Axes | None = None
) -> Axes:
    """A confusion matrix (rows: true class, columns: predicted) with counts and row fractions."""
    ax = _axes(ax, (4.2, 3.8))
    m = np.asarray(matrix, dtype=float)
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                f"{int(m[i, j])}\n{frac[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return ax


def plot_reliability(
    y_true: ArrayLike, probabilities: Mapping[str, ArrayLike], *, n_bins: int = 10, ax: Axes | None = None
) -> Axes:
    """Reliability diagram: observed frequency of positives against the predicted probability."""
    from sklearn.calibration import calibration_curve

    ax = _axes(ax)
    y = np.asarray(y_true)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    for name, p in probabilities.items():
        frac, mean = calibration_curve(y, np.asarray(p), n_bins=n_bins, strategy="quantile")
        ax.plot(mean, frac, marker="o", ms=3, label=name)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed fraction of positives")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_importances(
    names: Sequence[str], values: ArrayLike, *, title: str = "", top: int = 15, ax: Axes | None = None
) -> Axes:
    """Horizontal bars of the ``top`` largest importances."""
    ax = _axes(ax, (5.2, 4.4))
    v = np.asarray(values, dtype=float)
    order = np.argsort(np.abs(v))[::-1][:top][::-1]
    ax.barh([names[i] for i in order], v[order], color="C0")
    ax.set_xlabel("importance")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    return ax


def plot_learning_curve(curve: Any, *, label: str | None = None, ax: Axes | None = None) -> Axes:
    """The metric a learning curve's verdict reads against the training-set size, with its intervals.

    ``curve`` is a :class:`~xtml.learn.learning_curve.LearningCurve`; call once per model on one ``ax``
    to compare them.  Log size axis; the y label names the metric and the validation rows.
    """
    ax = _axes(ax, (5.2, 4.0))
    name, est, low, high = curve.judged()
    e, lo, hi = np.asarray(est), np.asarray(low), np.asarray(high)
    sizes = np.asarray(curve.sizes, dtype=float)
    ax.errorbar(sizes, e, yerr=np.vstack([e - lo, hi - e]), fmt="o-", ms=4, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{int(s):,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training spectra")
    ax.set_ylabel(f"{name} on {curve.rows.removeprefix('the ')}", fontsize=8)
    if label is not None:
        ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_regression(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_std: ArrayLike | None = None,
    *,
    label: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Predicted against true values with 1-sigma error bars and the identity line."""
    ax = _axes(ax, (4.4, 4.2))
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ax.errorbar(t, p, yerr=None if y_std is None else np.asarray(y_std), fmt=".", ms=2, lw=0.5, alpha=0.5)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    return ax


def _save(ax: Axes, path: Path) -> str:
    import matplotlib.pyplot as plt

    ax.figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(ax.figure)
    return path.name


def plot_evaluation(run_dir: str | Path) -> list[str]:
    """Every diagnostic plot of an evaluated training run into ``RUN_DIR/evaluation/plots``; returns the
    file names.

    Detection: ROC and precision-recall curves of the models and the likelihood-ratio test on the same
    spectra, the reliability diagram of the calibrated probabilities, confusion matrices; state: confusion
    matrices; regression: predicted against true values with error bars; all: feature importances.
    """
    import matplotlib

    matplotlib.use("Agg")
    run = Path(run_dir)
    from xtml.learn.evaluate import evaluation_dir

    ev = evaluation_dir(run)
    metrics = json.loads((ev / "metrics.json").read_text())
    importances = json.loads((ev / "importances.json").read_text())
    out_dir = ev / "plots"
    out_dir.mkdir(exist_ok=True)
    files: list[str] = []
    names = metrics["names"]
    with np.load(ev / "test_predictions.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    y = arrays["y"]
    if metrics["task"] == "detect":
        subset = arrays["reference/subset"]
        scores = {k[6:]: v[subset, 1] for k, v in arrays.items() if k.startswith("proba/")}
        if "reference/lrt" in arrays:
            scores["LRT (reference)"] = arrays["reference/lrt"]
        fpr = metrics.get("fpr_target", 0.01)
        head = metrics.get("headline", {}).get("scorers", {})
        points = {n: (h["fpr_at_threshold"], h["tpr_at_fpr"]) for n, h in head.items()}
        files.append(
            _save(plot_roc(y[subset], scores, fpr_target=fpr, operating=points), out_dir / "roc.png")
        )
        files.append(_save(plot_pr(y[subset], scores), out_dir / "pr.png"))
        probs = {k[6:]: v[:, 1] for k, v in arrays.items() if k.startswith("proba/")}
        files.append(_save(plot_reliability(y, probs), out_dir / "reliability.png"))
    if metrics["task"] in ("detect", "state"):
        for name, m in metrics["models"].items():
            ax = plot_confusion(m["test"]["confusion_matrix"], names, title=name)
            files.append(_save(ax, out_dir / f"confusion_{name}.png"))
    else:
        prefix = "log10 " if metrics.get("log_targets") else ""
        for name in metrics["models"]:
            mean, std = arrays[f"pred/{name}"], arrays[f"std/{name}"]
            truth = y.reshape(len(y), -1)
            for j, target in enumerate(names):
                ax = plot_regression(truth[:, j], mean[:, j], std[:, j], label=prefix + target)
                ax.set_title(name, fontsize=9)
                files.append(_save(ax, out_dir / f"regression_{name}_{target}.png"))
    for name, imp in importances.items():
        ax = plot_importances(imp["names"], imp["values"], title=f"{name}: feature importance")
        files.append(_save(ax, out_dir / f"importance_{name}.png"))
    return files
