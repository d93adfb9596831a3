"""Light-curve features of Richards et al. (2011) for binned X-ray light curves, vectorised over rows.

Input is a batch of light curves of counts in equal time bins, shape (n, n_bins), one light curve per row.
Time is measured in bins, so slopes are in counts per bin per bin. Poisson errors are
:math:`\\sigma_i = \\sqrt{\\max(x_i, 1)}` (one count at least, so that empty bins keep a finite weight).

Conventions where the literature leaves a choice (documented per feature in :data:`LC_FEATURES`): the
mean is the arithmetic mean (an inverse-variance mean with Poisson errors is the harmonic mean, biased low
for counts); ``std`` uses ``ddof = 1``; ``skew`` is :func:`scipy.stats.skew` (``bias=True``) and
``small_kurtosis`` is :func:`scipy.stats.kurtosis` with ``bias=False`` (Fisher, the small-sample estimator
Richards et al. call "small kurtosis"); percentiles are :func:`numpy.percentile` (linear interpolation).

Degenerate light curves never give NaN or inf. A light curve is *flat* when its variance
:math:`m_2 = \\langle (x - \\bar x)^2 \\rangle \\le (10^{-14} \\bar x)^2` (scipy's precision-loss rule);
for flat light curves ``skew``, ``small_kurtosis``, ``stetson_j`` and ``stetson_k`` are 0, and
``median_buffer_range_percentage`` is 1 (every bin is at the median). ``small_kurtosis`` (whose
bias-corrected estimator needs four bins) is 0 for light curves of fewer than 4 bins. Ratios whose
denominator vanishes are 0: flux percentile ratios when :math:`F_{95} = F_5`, ``frac_rms`` when the mean
is <= 0. The median in ``percent_amplitude`` and ``percent_difference_flux_percentile`` is replaced by one
count when its magnitude is below one count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LC_FEATURES", "LightCurveFeatures", "light_curve_features"]

FloatArray = NDArray[np.float64]

LC_FEATURES: dict[str, str] = {
    "mean": "arithmetic mean counts per bin, xbar",
    "std": "sample standard deviation, s (ddof = 1)",
    "frac_rms": "Poisson-subtracted fractional rms, sign(v) sqrt(|v|) with v = (s^2 - xbar) / xbar^2",
    "amplitude": "half the range, (max - min) / 2",
    "beyond1std": "fraction of bins with |x - xbar| > s",
    "flux_percentile_ratio_mid20": "(F60 - F40) / (F95 - F5)",
    "flux_percentile_ratio_mid35": "(F67.5 - F32.5) / (F95 - F5)",
    "flux_percentile_ratio_mid50": "(F75 - F25) / (F95 - F5)",
    "flux_percentile_ratio_mid65": "(F82.5 - F17.5) / (F95 - F5)",
    "flux_percentile_ratio_mid80": "(F90 - F10) / (F95 - F5)",
    "linear_trend": "least-squares slope of x vs bin index, counts / bin^2",
    "max_slope": "max |x_{i+1} - x_i|, counts / bin",
    "median_absolute_deviation": "median |x - median(x)|",
    "median_buffer_range_percentage": "fraction of bins with |x - median| <= 0.1 amplitude",
    "pair_slope_trend": "over the last 30 bins: fraction of rising minus fraction of falling differences",
    "percent_amplitude": "max(|max - median|, |min - median|) / |median|",
    "percent_difference_flux_percentile": "(F95 - F5) / |median|",
    "skew": "m3 / m2^1.5 (scipy.stats.skew)",
    "small_kurtosis": "bias-corrected excess kurtosis G2 (scipy.stats.kurtosis, bias=False)",
    "stetson_j": "Stetson (1996) J from consecutive pairs, equal weights",
    "stetson_k": "Stetson (1996) K, mean|delta| / sqrt(mean delta^2)",
}
"""Names of the light-curve features, in output order, with their definitions (``x`` counts per bin;
``F_p`` the p-th percentile; Stetson :math:`\\delta_i = \\sqrt{n/(n-1)}\\,(x_i - \\bar x) / \\sigma_i`)."""

_NAMES: tuple[str, ...] = tuple(LC_FEATURES)
_PERCENTILES = np.array([5.0, 10.0, 17.5, 25.0, 32.5, 40.0, 50.0, 60.0, 67.5, 75.0, 82.5, 90.0, 95.0])
_MID = {20: (7, 5), 35: (8, 4), 50: (9, 3), 65: (10, 2), 80: (11, 1)}  # indices of (upper, lower) in above
_PAIR_SLOPE_BINS = 30
_MIN_BINS = 2  # std (ddof = 1) and Stetson's indices need n >= 2; small_kurtosis is 0 below 4 bins


def _check_features(features: object) -> tuple[str, ...]:
    """Resolve ``"all"`` or a sequence of names to a tuple in canonical order (checked only here)."""
    if isinstance(features, str):
        features = _NAMES if features == "all" else (features,)
    try:
        chosen = set(features)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"features must be 'all' or a sequence of {list(_NAMES)}, got {features!r}"
        ) from None
    unknown = chosen - set(_NAMES)
    if unknown or not chosen:
        raise ValueError(
            f"features must be 'all' or a non-empty subset of {list(_NAMES)}; unknown: {sorted(unknown)!r}"
        )
    return tuple(name for name in _NAMES if name in chosen)


def _safe_ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """``num / den``, 0 where ``den == 0``."""
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def light_curve_features(counts: ArrayLike, features: Sequence[str] | Literal["all"] = "all") -> FloatArray:
    """Richards et al. (2011) features of a batch of binned light curves.

    Stetson (1996) variability indices with :math:`\\sigma_i = \\sqrt{\\max(x_i, 1)}`:

    .. math::

        \\delta_i = \\sqrt{\\frac{n}{n-1}} \\frac{x_i - \\bar x}{\\sigma_i}, \\quad
        K = \\frac{\\frac1n \\sum_i |\\delta_i|}{\\sqrt{\\frac1n \\sum_i \\delta_i^2}}, \\quad
        J = \\frac{1}{n-1} \\sum_{i=1}^{n-1} \\mathrm{sgn}(P_i) \\sqrt{|P_i|}, \\
        P_i = \\delta_i \\delta_{i+1}

    (K = :math:`\\sqrt{2/\\pi} \\approx 0.798` for Gaussian noise, J ~ 0 for uncorrelated noise). The
    fractional rms subtracts the Poisson variance, estimated by the mean counts (Vaughan et al. 2003):
    :math:`v = (s^2 - \\bar x) / \\bar x^2`, reported as :math:`\\mathrm{sign}(v)\\sqrt{|v|}`. The other
    definitions are in :data:`LC_FEATURES` and the module docstring.

    Parameters
    ----------
    counts : array_like, shape (n, n_bins)
        Counts per equal time bin, finite; n_bins >= 2.
    features : "all" or sequence of str, optional
        Names from :data:`LC_FEATURES`; output columns follow the order of :data:`LC_FEATURES`.

    Returns
    -------
    ndarray of float64, shape (n, n_features)
        The features, all finite.

    Raises
    ------
    ValueError
        If ``counts`` is not 2-D and finite with at least 4 bins, or a feature name is unknown.

    Examples
    --------
    >>> light_curve_features([[1.0, 2.0, 3.0, 4.0]], ["mean", "amplitude", "linear_trend", "skew"])
    array([[2.5, 1.5, 1. , 0. ]])
    """
    names = _check_features(features)
    x = np.asarray(counts)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"counts must be a real numeric array, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < _MIN_BINS:
        raise ValueError(
            f"counts must have shape (n, n_bins) with n_bins >= {_MIN_BINS}, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("counts must be finite; got NaN or inf")
    n_bins = x.shape[1]
    want = set(names)
    out: dict[str, FloatArray] = {}

    mean = x.mean(axis=1)
    d = x - mean[:, None]
    m2 = np.mean(d**2, axis=1)
    var = m2 * n_bins / (n_bins - 1)
    std = np.sqrt(var)
    flat = m2 <= (10 * np.finfo(np.float64).resolution * mean) ** 2
    xmax, xmin = x.max(axis=1), x.min(axis=1)
    median = np.median(x, axis=1)
    median_den = np.maximum(np.abs(median), 1.0)

    out["mean"] = mean
    out["std"] = std
    v = _safe_ratio(var - mean, mean**2 * (mean > 0))
    out["frac_rms"] = np.sign(v) * np.sqrt(np.abs(v))
    out["amplitude"] = 0.5 * (xmax - xmin)
    out["beyond1std"] = np.mean(np.abs(d) > std[:, None], axis=1)
    if want & {n for n in _NAMES if "percentile" in n}:
        pct = np.percentile(x, _PERCENTILES, axis=1)  # (13, n)
        spread = pct[-1] - pct[0]
        for mid, (hi, lo) in _MID.items():
            out[f"flux_percentile_ratio_mid{mid}"] = _safe_ratio(pct[hi] - pct[lo], spread)
        out["percent_difference_flux_percentile"] = spread / median_den
    t = np.arange(n_bins) - 0.5 * (n_bins - 1)
    out["linear_trend"] = x @ t / np.sum(t**2)
    step = np.diff(x, axis=1)
    out["max_slope"] = np.abs(step).max(axis=1)
    dev = np.abs(x - median[:, None])
    out["median_absolute_deviation"] = np.median(dev, axis=1)
    out["median_buffer_range_percentage"] = np.mean(dev <= 0.1 * out["amplitude"][:, None], axis=1)
    last = step[:, -(_PAIR_SLOPE_BINS - 1) :]
    out["pair_slope_trend"] = (np.sum(last > 0, axis=1) - np.sum(last < 0, axis=1)) / last.shape[1]
    out["percent_amplitude"] = np.maximum(np.abs(xmax - median), np.abs(xmin - median)) / median_den

    safe_m2 = np.where(flat, 1.0, m2)
    skew = np.mean(d**3, axis=1) / safe_m2**1.5
    out["skew"] = np.where(flat, 0.0, skew)
    g2 = np.mean(d**4, axis=1) / safe_m2**2
    if n_bins >= 4:
        kurt = ((n_bins**2 - 1.0) * g2 - 3.0 * (n_bins - 1.0) ** 2) / ((n_bins - 2.0) * (n_bins - 3.0))
        out["small_kurtosis"] = np.where(flat, 0.0, kurt)
    else:
        out["small_kurtosis"] = np.zeros_like(mean)

    delta = np.sqrt(n_bins / (n_bins - 1.0)) * d / np.sqrt(np.maximum(x, 1.0))
    rms_delta = np.sqrt(np.mean(delta**2, axis=1))
    stetson_k = np.mean(np.abs(delta), axis=1) / np.where(flat | (rms_delta == 0), 1.0, rms_delta)
    out["stetson_k"] = np.where(flat, 0.0, stetson_k)
    pair = delta[:, :-1] * delta[:, 1:]
    out["stetson_j"] = np.where(flat, 0.0, np.mean(np.sign(pair) * np.sqrt(np.abs(pair)), axis=1))

    return np.column_stack([out[name] for name in names])


class LightCurveFeatures(TransformerMixin, BaseEstimator):
    """Richards et al. (2011) light-curve features as a scikit-learn transformer.

    A thin wrapper of :func:`light_curve_features`: ``X`` holds one light curve of counts in equal bins
    per row, shape (n, n_bins) with n_bins >= 2; output columns are the selected features in the order of
    :data:`LC_FEATURES`. The transformer learns nothing from the data; ``fit`` checks ``X`` and the
    parameters and records the number of bins.

    Parameters
    ----------
    features : "all" or sequence of str, optional
        Names from :data:`LC_FEATURES`.

    Attributes
    ----------
    n_features_in_ : int
        Number of bins of the light curves seen in ``fit``.
    features_ : tuple of str
        The computed features, in output order.

    Examples
    --------
    >>> lc = LightCurveFeatures(features=["mean", "std"]).fit([[1, 2, 3, 4], [5, 5, 5, 5]])
    >>> lc.transform([[1, 2, 3, 4], [5, 5, 5, 5]]).round(3)
    array([[2.5  , 1.291],
           [5.   , 0.   ]])
    """

    def __init__(self, *, features: Sequence[str] | Literal["all"] = "all") -> None:
        self.features = features

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> LightCurveFeatures:
        """Check the feature names and the light curves.

        Parameters
        ----------
        X : array_like, shape (n, n_bins)
            Counts per bin, n_bins >= 2.
        y : ignored

        Returns
        -------
        LightCurveFeatures
            ``self``.
        """
        features = _check_features(self.features)
        X = validate_data(self, X, dtype=np.float64)
        if X.shape[1] < _MIN_BINS:
            raise ValueError(
                f"X has {X.shape[1]} feature(s) (time bins), but light-curve features need at least "
                f"{_MIN_BINS} bins"
            )
        self.features_ = features
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Compute the features.

        Parameters
        ----------
        X : array_like, shape (n, n_bins)
            Counts per bin, with the number of bins seen in ``fit``.

        Returns
        -------
        ndarray of float64, shape (n, len(features_))
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return light_curve_features(X, self.features_)

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> NDArray:
        """The names in ``features_``; ``input_features`` is only checked for its length."""
        check_is_fitted(self)
        n_given = None if input_features is None else len(np.asarray(input_features))
        if n_given is not None and n_given != self.n_features_in_:
            raise ValueError(f"input_features must have {self.n_features_in_} entries, got {n_given}")
        return np.asarray(self.features_, dtype=object)
