"""Diagnosis and scope: plots of data against models and of models against the reference (scope gate and
performance maps come later)."""

from xtml.critique.learn_plots import (
    plot_confusion,
    plot_evaluation,
    plot_importances,
    plot_pr,
    plot_regression,
    plot_reliability,
    plot_roc,
)
from xtml.critique.plots import plot_ratio, plot_spectra

__all__ = [
    "plot_confusion",
    "plot_evaluation",
    "plot_importances",
    "plot_pr",
    "plot_ratio",
    "plot_regression",
    "plot_reliability",
    "plot_roc",
    "plot_spectra",
]
