"""Photon event times from binned rates, and good time intervals (GTIs).

Events are sorted 1-D arrays of arrival times in s; GTIs are ``(n_gti, 2)`` arrays of
``[start, stop]`` in s, sorted and non-overlapping, as in OGIP event files.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["check_gti", "check_rates", "events_from_rate", "gti_mask"]

FloatArray = NDArray[np.float64]


def check_rates(rate: ArrayLike, *, allow_1d: bool = False) -> FloatArray:
    """Count rates as a float64 ``(n, n_bins)`` array, finite and >= 0 (``ValueError`` naming the bin).

    With ``allow_1d`` a single light curve ``(n_bins,)`` is accepted as ``n = 1``.
    """
    lam = np.asarray(rate, dtype=np.float64)
    if allow_1d and lam.ndim == 1:
        lam = lam[np.newaxis]
    if lam.ndim != 2:
        shapes = "(n, n_bins) or (n_bins,)" if allow_1d else "(n, n_bins)"
        raise ValueError(f"rate must have shape {shapes}, got {np.shape(rate)}")
    bad = ~np.isfinite(lam) | (lam < 0)
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(f"rate must be finite and >= 0 ct/s, got {float(lam[i, j])!r} at row {i}, bin {j}")
    return lam


def check_gti(gti: ArrayLike) -> FloatArray:
    """Validate GTIs and return them as a float64 ``(n_gti, 2)`` array.

    Raises ``ValueError`` for a wrong shape, non-finite edges, ``stop <= start``, unsorted or
    overlapping intervals, naming the offending interval.
    """
    arr = np.asarray(gti, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"gti must have shape (n_gti, 2) with n_gti >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("gti edges must be finite")
    bad = np.flatnonzero(arr[:, 1] <= arr[:, 0])
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"gti interval {i} = {arr[i].tolist()} must have stop > start")
    bad = np.flatnonzero(arr[1:, 0] < arr[:-1, 1])
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(f"gti interval {i} = {arr[i].tolist()} overlaps or precedes interval {i - 1}")
    return arr


def gti_mask(times: ArrayLike, gti: ArrayLike) -> NDArray[np.bool_]:
    """True where ``times`` fall inside a GTI (``start <= t < stop``); same shape as ``times``."""
    g = check_gti(gti)
    t = np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(g[:, 0], t, side="right") - 1
    inside = idx >= 0
    inside[inside] = t[inside] < g[idx[inside], 1]
    return inside


def events_from_rate(
    rate: ArrayLike,
    dt: float,
    rng: np.random.Generator | int | None,
    *,
    tstart: float = 0.0,
    gti: ArrayLike | None = None,
) -> list[FloatArray]:
    """Poisson photon arrival times from a piecewise-constant rate, batched.

    In each bin ``[tstart + k dt, tstart + (k + 1) dt)`` the number of photons is
    Poisson(``rate_k dt``) and their times are uniform in the bin: an inhomogeneous Poisson
    process with the binned rate.  Photons outside the GTIs are dropped (the detector was off).

    Parameters
    ----------
    rate : array_like, shape (n, n_bins) or (n_bins,)
        Count rate in ct/s, finite and >= 0.
    dt : float
        Bin width, s.
    rng : Generator or int
    tstart : float
        Start time of the first bin, s.
    gti : array_like, shape (n_gti, 2), optional
        Good time intervals; default: the whole span.

    Returns
    -------
    list of ndarray
        One sorted array of event times per light curve (lengths differ).
    """
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite time step > 0 s, got {dt!r}")
    lam = check_rates(rate, allow_1d=True)
    g = None if gti is None else check_gti(gti)
    gen = np.random.default_rng(rng)
    counts = gen.poisson(lam * dt)
    edges = tstart + dt * np.arange(lam.shape[1])
    out = []
    for row in counts:
        starts = np.repeat(edges, row)
        times = np.sort(starts + dt * gen.random(starts.size))
        if g is not None:
            times = times[gti_mask(times, g)]
        out.append(times)
    return out
