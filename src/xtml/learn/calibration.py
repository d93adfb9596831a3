"""Probability calibration on held-out rows, stored as plain numbers (JSON), never as pickles.

A classifier's scores are mapped to calibrated probabilities with a model fitted on the validation
rows only (the test set stays locked):

* binary: isotonic regression of the outcome on the score (``"isotonic"``, non-parametric; made strictly
  increasing by 1e-6 of the raw score, so that calibration never ties scores the model ranked) or Platt's
  sigmoid :math:`p = 1 / (1 + e^{-(a\\,\\mathrm{logit}(s) + b)})` (``"sigmoid"``, two numbers);
* multi-class: temperature scaling :math:`p \\propto \\exp(\\log s / T)` with one temperature ``T``
  minimising the log loss (Guo et al. 2017).

The reliability diagram of the test predictions shows whether it worked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax

__all__ = ["CALIBRATION_METHODS", "ScoreCalibrator", "fit_calibrator"]

CALIBRATION_METHODS: tuple[str, ...] = ("isotonic", "sigmoid", "temperature", "none")
_EPS = 1e-6
_TIE_BREAK = 1e-6  # weight of the raw score in an isotonic map (ScoreCalibrator.transform)


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q) - np.log1p(-q)


@dataclass(frozen=True)
class ScoreCalibrator:
    """A fitted calibration map (module docstring); ``values`` are its numbers, JSON-ready."""

    method: Literal["isotonic", "sigmoid", "temperature", "none"]
    values: dict[str, list[float]]

    def transform(self, proba: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities, (n, n_classes), from uncalibrated ones of the same shape."""
        p = np.asarray(proba, dtype=np.float64)
        if self.method == "none":
            return p
        if self.method == "temperature":
            t = self.values["temperature"][0]
            return np.exp(log_softmax(np.log(np.clip(p, 1e-300, None)) / t, axis=1))
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"{self.method} calibration is binary: proba must be (n, 2), got {p.shape}")
        if self.method == "sigmoid":
            a, b = self.values["ab"]
            p1 = expit(a * _logit(p[:, 1]) + b)
        else:
            # The isotonic map is flat between knots of equal value and beyond the outermost knots: its
            # ties would throw the model's ranking away (an operating point at 1 % FPR cannot fall inside
            # a block of tied scores, so a TPR at a fixed FPR read off tied probabilities is understated).
            # Mixing in 1e-6 of the raw score makes the map strictly increasing: the same probabilities to
            # 1e-6, the ranking of the model's own scores (scores 1e-9 apart stay apart).
            p1 = (1.0 - _TIE_BREAK) * np.interp(p[:, 1], self.values["x"], self.values["y"])
            p1 += _TIE_BREAK * p[:, 1]
        return np.column_stack([1 - p1, p1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"method": self.method, "values": self.values}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibrator:
        """Inverse of :meth:`to_dict` (checked)."""
        method = data.get("method")
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
        values = {str(k): [float(x) for x in v] for k, v in dict(data.get("values", {})).items()}
        return cls(method, values)


def fit_calibrator(
    proba: ArrayLike, y: ArrayLike, method: Literal["isotonic", "sigmoid", "temperature", "none"] = "isotonic"
) -> ScoreCalibrator:
    """Fit a calibration map on held-out probabilities ``proba`` (n, n_classes) and labels ``y`` (n,).

    Binary problems take ``"isotonic"`` or ``"sigmoid"``; multi-class ones ``"temperature"`` (also
    allowed for binary).  ``"none"`` is the identity.
    """
    p = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y)
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    if p.ndim != 2 or p.shape[0] != labels.shape[0]:
        raise ValueError(f"proba must be (n, n_classes) with n = len(y) = {labels.shape[0]}, got {p.shape}")
    if method == "none":
        return ScoreCalibrator("none", {})
    if method == "temperature":
        logp = np.log(np.clip(p, 1e-300, None))

        def nll(log_t: float) -> float:
            lp = log_softmax(logp / np.exp(log_t), axis=1)
            return float(-lp[np.arange(len(labels)), labels].mean())

        res = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
        return ScoreCalibrator("temperature", {"temperature": [float(np.exp(res.x))]})
    if p.shape[1] != 2:
        raise ValueError(f"{method!r} calibration is for binary problems; use 'temperature' for {p.shape[1]}")
    s, t = _logit(p[:, 1]), labels.astype(np.float64)
    if method == "sigmoid":

        def loss(ab: NDArray[np.float64]) -> float:
            z = ab[0] * s + ab[1]
            return float(np.mean(np.logaddexp(0.0, z) - t * z))

        ab = minimize(loss, np.array([1.0, 0.0]), method="BFGS").x
        return ScoreCalibrator("sigmoid", {"ab": [float(ab[0]), float(ab[1])]})
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, 1], t)
    return ScoreCalibrator(
        "isotonic",
        {"x": iso.X_thresholds_.astype(float).tolist(), "y": iso.y_thresholds_.astype(float).tolist()},
    )
