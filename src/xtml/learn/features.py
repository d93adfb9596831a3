"""Feature transformers of :mod:`xtml.learn`: the public entry point for spectral and light-curve features.

The implementations live in three small modules:

* :mod:`xtml.learn.spectral_features`: :class:`SpectralFeatures` (band log-power, band fractional rms,
  power colours, peak significance, log-log slopes, rate) on the standard input matrix of
  :func:`xtml.learn.inputs.spectra_to_X`, plus the pure functions it wraps;
* :mod:`xtml.learn.log_spectrum`: :class:`LogSpectrum`, the log-scaled spectrum itself, on the same matrix;
* :mod:`xtml.learn.lightcurve_features`: :class:`LightCurveFeatures`, the Richards et al. (2011) features
  of binned light curves, and :func:`light_curve_features`.
"""

from xtml.learn.lightcurve_features import LC_FEATURES, LightCurveFeatures, light_curve_features
from xtml.learn.log_spectrum import LogSpectrum
from xtml.learn.spectral_features import (
    HEIL_BANDS,
    POWER_FLOOR,
    SpectralFeatures,
    SpectralGroup,
    band_log_power,
    band_overlap,
    band_variance,
    band_variance_error,
    geometric_bands,
    local_continuum,
    peak_significance,
    power_colours,
    spectral_slopes,
)

__all__ = [
    "HEIL_BANDS",
    "LC_FEATURES",
    "POWER_FLOOR",
    "LightCurveFeatures",
    "LogSpectrum",
    "SpectralFeatures",
    "SpectralGroup",
    "band_log_power",
    "band_overlap",
    "band_variance",
    "band_variance_error",
    "geometric_bands",
    "light_curve_features",
    "local_continuum",
    "peak_significance",
    "power_colours",
    "spectral_slopes",
]
