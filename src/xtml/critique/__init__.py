"""Diagnosis and scope: the scope gate (:mod:`~xtml.critique.scope`, fitted per run by
:mod:`~xtml.critique.run_scope`), performance maps and shift tests (:mod:`~xtml.critique.performance`),
and plots of data against models and of models against the reference (``learn_plots``, ``diag_plots``,
``plots``; matplotlib is imported only when a plot is drawn)."""

from xtml.critique.diag_plots import (
    plot_coverage,
    plot_embedding,
    plot_outliers,
    plot_posterior_corner,
    plot_residuals,
    plot_sbc_ranks,
)
from xtml.critique.learn_plots import (
    plot_confusion,
    plot_evaluation,
    plot_importances,
    plot_learning_curve,
    plot_pr,
    plot_regression,
    plot_reliability,
    plot_roc,
)
from xtml.critique.performance import (
    PerformanceMap,
    bin_edges,
    detection_map,
    plot_performance_map,
    posterior_map,
    regression_map,
    shift_test,
)
from xtml.critique.plots import plot_fit, plot_ratio, plot_spectra
from xtml.critique.scope import ScopeGate, ScopeResult, TrainingDomain, gap_reasons, log_spectral_features

__all__ = [
    "PerformanceMap",
    "ScopeGate",
    "ScopeResult",
    "TrainingDomain",
    "bin_edges",
    "detection_map",
    "gap_reasons",
    "log_spectral_features",
    "plot_confusion",
    "plot_coverage",
    "plot_embedding",
    "plot_evaluation",
    "plot_fit",
    "plot_importances",
    "plot_learning_curve",
    "plot_outliers",
    "plot_performance_map",
    "plot_posterior_corner",
    "plot_pr",
    "plot_ratio",
    "plot_regression",
    "plot_reliability",
    "plot_residuals",
    "plot_roc",
    "plot_sbc_ranks",
    "plot_spectra",
    "posterior_map",
    "regression_map",
    "shift_test",
]
