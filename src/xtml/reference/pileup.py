"""Poisson pile-up references for a CCD-like detector read out every frame time.

Photons arrive at rate :math:`r` (ct/s, within one pile-up region: a pixel island that is read as one event)
and the detector is read out every :math:`t_f` seconds, so the photons per frame are
:math:`M \\sim \\mathrm{Poisson}(\\lambda)` with :math:`\\lambda = r t_f`. Every non-empty frame gives one
event (two or more photons are read as one event with their energies summed), so

.. math::

    P(M \\ge 1) = 1 - e^{-\\lambda}, \\qquad P(M \\ge 2) = 1 - e^{-\\lambda}(1 + \\lambda).

For small :math:`\\lambda` both are differences of nearly equal numbers: ``expm1`` fixes the first, but
:math:`1 - e^{-\\lambda}(1+\\lambda) = -\\mathrm{expm1}(\\log1p(\\lambda) - \\lambda)` still cancels inside
:math:`\\log1p(\\lambda) - \\lambda`. Below :math:`\\lambda = 1` the functions here therefore use power series
with positive terms (relative error ~1e-16 down to :math:`\\lambda = 0`), and the closed forms above it.
This module ignores grade migration and event rejection, which depend on the instrument.
"""

from __future__ import annotations

from math import factorial

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["detected_event_rate", "photon_loss_fraction", "pileup_fraction"]

FloatArray = NDArray[np.float64]

# Below this lambda the power series are used; 24 terms reach ~1e-24 relative truncation at lambda = 1.
_SERIES_MAX = 1.0
_TERMS = 24
# s1(l) = sum_i l^i / (i+1)!  = (e^l - 1) / l
# s2(l) = sum_i l^i / (i+2)!  = (e^l - 1 - l) / l^2
# s3(l) = sum_i (i+1) l^i / (i+2)!  = (l - 1 + e^-l) e^l / l^2
_S1 = np.array([1.0 / factorial(i + 1) for i in range(_TERMS)])
_S2 = np.array([1.0 / factorial(i + 2) for i in range(_TERMS)])
_S3 = np.array([(i + 1) / factorial(i + 2) for i in range(_TERMS)])


def _lam(rate: ArrayLike, frame_time: ArrayLike) -> FloatArray:
    """Mean photons per frame, :math:`\\lambda = r t_f`, after checking both arguments."""
    try:
        r = np.asarray(rate, dtype=np.float64)
        tf = np.asarray(frame_time, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"rate and frame_time must be numbers, got {rate!r} and {frame_time!r}") from None
    bad = ~np.isfinite(r) | (r < 0)
    if bad.any():
        raise ValueError(f"rate must be finite and >= 0 ct/s, got {float(r[bad].flat[0])!r}")
    bad = ~np.isfinite(tf) | (tf <= 0)
    if bad.any():
        raise ValueError(f"frame_time must be finite and > 0 s, got {float(tf[bad].flat[0])!r}")
    lam = r * tf
    if not np.all(np.isfinite(lam)):
        raise ValueError("rate * frame_time overflows; give a finite number of photons per frame")
    return lam


def _series(coeffs: NDArray[np.float64], lam: FloatArray) -> FloatArray:
    return np.polynomial.polynomial.polyval(lam, coeffs)


def pileup_fraction(rate: ArrayLike, frame_time: ArrayLike) -> FloatArray:
    """Fraction of non-empty frames that hold two or more photons (piled events among all events).

    .. math::

        \\frac{P(M\\ge2)}{P(M\\ge1)} = \\frac{1 - e^{-\\lambda}(1+\\lambda)}{1 - e^{-\\lambda}}
        = \\frac{\\lambda}{2} - \\frac{\\lambda^2}{12} + O(\\lambda^3), \\qquad \\lambda = r t_f,

    taken as 0 at :math:`\\lambda = 0`.

    Parameters
    ----------
    rate : array_like
        Photon rate in the pile-up region, ct/s; finite and >= 0.
    frame_time : array_like
        Frame time :math:`t_f`, s; finite and > 0. Broadcast against ``rate``.

    Returns
    -------
    ndarray of float64, broadcast shape of the inputs
        Pile-up fraction in [0, 1) (0-d for scalar inputs).

    Raises
    ------
    ValueError
        If ``rate`` < 0, ``frame_time`` <= 0 or either is not finite.

    Examples
    --------
    >>> float(pileup_fraction(1e-8, 1.0))  # lambda / 2 - lambda^2 / 12
    4.9999999916666675e-09
    >>> np.round(pileup_fraction([0.1, 1.0, 10.0], 1.0), 4)
    array([0.0492, 0.418 , 0.9995])
    """
    lam = _lam(rate, frame_time)
    small = lam < _SERIES_MAX
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = (-np.expm1(-lam) - lam * np.exp(-lam)) / -np.expm1(-lam)
    series = lam * _series(_S2, lam) / _series(_S1, lam)
    return np.asarray(np.where(small, series, closed))


def detected_event_rate(rate: ArrayLike, frame_time: ArrayLike) -> FloatArray:
    """Events per second when every non-empty frame is read as one event.

    .. math::

        r_{ev} = \\frac{1 - e^{-\\lambda}}{t_f} = \\frac{-\\mathrm{expm1}(-\\lambda)}{t_f}
        = r\\left(1 - \\frac{\\lambda}{2} + O(\\lambda^2)\\right), \\qquad \\lambda = r t_f,

    which saturates at one event per frame, :math:`1/t_f`.

    Parameters
    ----------
    rate : array_like
        Photon rate in the pile-up region, ct/s; finite and >= 0.
    frame_time : array_like
        Frame time :math:`t_f`, s; finite and > 0. Broadcast against ``rate``.

    Returns
    -------
    ndarray of float64, broadcast shape of the inputs
        Detected event rate, events/s (0-d for scalar inputs).

    Raises
    ------
    ValueError
        If ``rate`` < 0, ``frame_time`` <= 0 or either is not finite.

    Examples
    --------
    >>> float(detected_event_rate(1.0, 2.6))  # Chandra ACIS full frame, 1 ct/s: 2.6 photons per frame
    0.3560486237637177
    """
    lam = _lam(rate, frame_time)
    return np.asarray(-np.expm1(-lam) / np.asarray(frame_time, dtype=np.float64))


def photon_loss_fraction(rate: ArrayLike, frame_time: ArrayLike) -> FloatArray:
    """Fraction of photons not counted as separate events (merged into another photon's event).

    .. math::

        1 - \\frac{1 - e^{-\\lambda}}{\\lambda} = \\frac{\\lambda - 1 + e^{-\\lambda}}{\\lambda}
        = \\frac{\\lambda}{2} - \\frac{\\lambda^2}{6} + O(\\lambda^3), \\qquad \\lambda = r t_f,

    i.e. :math:`1 - r_{ev}/r` (:func:`detected_event_rate`), taken as 0 at :math:`\\lambda = 0`.

    Parameters
    ----------
    rate : array_like
        Photon rate in the pile-up region, ct/s; finite and >= 0.
    frame_time : array_like
        Frame time :math:`t_f`, s; finite and > 0. Broadcast against ``rate``.

    Returns
    -------
    ndarray of float64, broadcast shape of the inputs
        Photon loss fraction in [0, 1) (0-d for scalar inputs).

    Raises
    ------
    ValueError
        If ``rate`` < 0, ``frame_time`` <= 0 or either is not finite.

    Examples
    --------
    >>> float(photon_loss_fraction(1e-8, 1.0))  # lambda / 2 - lambda^2 / 6
    4.999999983333334e-09
    >>> np.round(photon_loss_fraction([0.1, 1.0, 10.0], 1.0), 4)
    array([0.0484, 0.3679, 0.9   ])
    """
    lam = _lam(rate, frame_time)
    small = lam < _SERIES_MAX
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = (lam + np.expm1(-lam)) / lam
    series = lam * np.exp(-lam) * _series(_S3, lam)
    return np.asarray(np.where(small, series, closed))
