"""Machine learning with best practice, the classical reference always in the same table.

The field's workflow as a library (``xtml train`` / ``xtml evaluate`` on the command line):

* tasks on simulated datasets (:mod:`~xtml.learn.tasks`): QPO detection, variability state, parameter
  regression; the standard input matrix (:mod:`~xtml.learn.inputs`);
* features as scikit-learn transformers (:mod:`~xtml.learn.features`): band powers, fractional rms, power
  colours, peak significance, slopes, log spectra, Richards et al. light-curve features;
* estimators (:mod:`~xtml.learn.models`): logistic/ridge regression first, random forests and gradient
  boosting, a 1-D CNN in PyTorch wrapped as a scikit-learn estimator (:mod:`~xtml.learn.cnn`, needs the
  ``sbi`` extra; imported lazily);
* protocol (:mod:`~xtml.learn.protocol`): grouped stratified splits with a locked test set, grouped CV,
  tuning inside the training rows; calibration (:mod:`~xtml.learn.calibration`);
* metrics for the science (:mod:`~xtml.learn.metrics`): TPR at fixed FPR, bootstrap intervals, paired
  comparison against the likelihood-ratio test;
* safe model files (:mod:`~xtml.learn.persist`): skops with an allow-list, safetensors, hashes.
"""

from typing import Any

from xtml.learn.bootstrap import BootstrapCI, bootstrap_ci
from xtml.learn.calibration import ScoreCalibrator, fit_calibrator
from xtml.learn.comparison import ComparisonTable, compare_scores
from xtml.learn.config import TrainConfig, load_train_config
from xtml.learn.features import LightCurveFeatures, LogSpectrum, SpectralFeatures
from xtml.learn.inputs import SpectralGrid, spectra_to_X
from xtml.learn.metrics import binary_metrics, multiclass_metrics, regression_metrics
from xtml.learn.persist import UnsafeModelError, load_model, save_model
from xtml.learn.protocol import CVResult, TuneResult, calibrate_classifier, cross_validate_model, tune
from xtml.learn.split import LockedTestSet, LockedTestSetError, Split, split_dataset
from xtml.learn.tasks import TaskData, load_task

__all__ = [
    "BootstrapCI",
    "CNNClassifier",
    "CNNRegressor",
    "CVResult",
    "ComparisonTable",
    "LightCurveFeatures",
    "LockedTestSet",
    "LockedTestSetError",
    "LogSpectrum",
    "ScoreCalibrator",
    "SpectralFeatures",
    "SpectralGrid",
    "Split",
    "TaskData",
    "TrainConfig",
    "TuneResult",
    "UnsafeModelError",
    "binary_metrics",
    "bootstrap_ci",
    "calibrate_classifier",
    "compare_scores",
    "cross_validate_model",
    "fit_calibrator",
    "load_model",
    "load_task",
    "load_train_config",
    "multiclass_metrics",
    "regression_metrics",
    "save_model",
    "spectra_to_X",
    "split_dataset",
    "tune",
]


def __getattr__(name: str) -> Any:
    """The CNN estimators import torch: only when asked for."""
    if name in ("CNNClassifier", "CNNRegressor"):
        from xtml.learn import cnn

        return getattr(cnn, name)
    raise AttributeError(f"module 'xtml.learn' has no attribute {name!r}")
