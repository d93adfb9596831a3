"""The estimators of a training run: scikit-learn pipelines from an input representation to a model.

Simple first, then complex (the field's order): logistic regression (or ridge regression) on
physically meaningful features is the baseline; random forests and histogram gradient boosting on
the same features; a 1-D convolutional network on the log-power spectrum itself.  Every model is a
:class:`sklearn.pipeline.Pipeline` whose last step is named ``"model"`` (search grids name its
parameters ``model__<param>``), so cross-validation and tuning see preprocessing and model as one
estimator and nothing is fitted on held-out rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from xtml.learn.config import ModelSpec
from xtml.learn.inputs import SpectralGrid
from xtml.learn.log_spectrum import LogSpectrum
from xtml.learn.spectral_features import SpectralFeatures

__all__ = ["build_pipeline", "final_estimator", "predict_with_std", "scores_of", "tree_spread"]


def _estimator(kind: str, classification: bool, n_outputs: int, seed: int) -> BaseEstimator:
    if kind == "cnn":
        from xtml.learn.cnn import CNNClassifier, CNNRegressor

        return CNNClassifier(random_state=seed) if classification else CNNRegressor(random_state=seed)
    if classification:
        table: dict[str, BaseEstimator] = {
            "logistic": LogisticRegression(max_iter=5000),
            "random_forest": RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed),
            "hist_gb": HistGradientBoostingClassifier(random_state=seed),
        }
        if kind not in table:
            raise ValueError(f"model kind {kind!r} is for regression; classifiers: {', '.join(table)}")
        return table[kind]
    table = {
        "linear": Ridge(alpha=1.0),
        "random_forest": RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed),
        "hist_gb": HistGradientBoostingRegressor(random_state=seed),
    }
    if kind not in table:
        raise ValueError(f"model kind {kind!r} is for classification; regressors: {', '.join(table)}, cnn")
    est = table[kind]
    return MultiOutputRegressor(est) if kind == "hist_gb" and n_outputs > 1 else est


def build_pipeline(
    spec: ModelSpec, grid: SpectralGrid, *, classification: bool, n_outputs: int = 1, seed: int = 0
) -> Pipeline:
    """An unfitted pipeline ``input -> [scaler] -> model`` for ``spec`` (module docstring).

    ``spec.params`` set the model's parameters; the CNN standardises its own inputs, the others get a
    :class:`~sklearn.preprocessing.StandardScaler`.
    """
    est = _estimator(spec.kind, classification, n_outputs, seed)
    params = dict(spec.params)
    if isinstance(est, MultiOutputRegressor):
        params = {f"estimator__{k}": v for k, v in params.items()}
    try:
        est.set_params(**params)
    except ValueError as err:
        raise ValueError(f"[models.{spec.name}] params: {err}") from None
    first: BaseEstimator = SpectralFeatures(grid) if spec.input == "features" else LogSpectrum(grid)
    steps: list[tuple[str, Any]] = [("input", first)]
    if spec.kind != "cnn":
        steps.append(("scale", StandardScaler()))
    steps.append(("model", est))
    return Pipeline(steps)


def final_estimator(model: Pipeline) -> BaseEstimator:
    """The last step of a pipeline (the estimator proper)."""
    return model.steps[-1][1]


def scores_of(model: BaseEstimator, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Class probabilities (n, n_classes) of a classifier pipeline."""
    return np.asarray(model.predict_proba(X), dtype=np.float64)


def predict_with_std(
    model: Pipeline,
    X: NDArray[np.float64],
    residual_std: NDArray[np.float64] | None = None,
    spread_scale: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Regression predictions and their 1-sigma uncertainties, each (n, k).

    * CNN: the network's own Gaussian head (heteroscedastic);
    * random forest: the spread of the trees' predictions (:func:`tree_spread`) times ``spread_scale``
      (fitted so that 68.3 % of the standardised validation residuals are within 1), added in quadrature
      to ``residual_std``;
    * others: ``residual_std``, the 68.3 % quantile of the absolute validation residuals
      (homoscedastic).
    """
    est = final_estimator(model)
    if type(est).__name__ == "CNNRegressor":
        mean, std = model.predict(X, return_std=True)  # type: ignore[call-arg]
        return np.asarray(mean).reshape(len(X), -1), np.asarray(std).reshape(len(X), -1)
    mean = np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)
    base = np.zeros(mean.shape[1]) if residual_std is None else np.asarray(residual_std, dtype=np.float64)
    if isinstance(est, RandomForestRegressor):
        scale = np.ones(mean.shape[1]) if spread_scale is None else np.asarray(spread_scale, dtype=np.float64)
        return mean, np.sqrt((scale * tree_spread(model, X)) ** 2 + base**2)
    return mean, np.broadcast_to(base, mean.shape).copy()


def tree_spread(model: Pipeline, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard deviation of the trees' predictions of a random-forest pipeline, (n, k); zeros otherwise."""
    est = final_estimator(model)
    if not isinstance(est, RandomForestRegressor):
        return np.zeros((len(X), 1))
    z = model[:-1].transform(X)
    per_tree = np.stack([t.predict(z).reshape(len(X), -1) for t in est.estimators_])
    return per_tree.std(axis=0)


def fresh(model: Pipeline) -> Pipeline:
    """An unfitted copy with the same parameters."""
    return clone(model)
