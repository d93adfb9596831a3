"""Conversion between :class:`~xtml.timing.PowerSpectrum` and Stingray power spectra.

Stingray is imported inside the functions, so importing :mod:`xtml.timing` does not import it.

Stingray's bookkeeping, mirrored here: ``n`` is the number of bins per segment, ``m`` the number of averaged
powers per bin (scalar, or an array after rebinning), ``k`` the number of Fourier frequencies merged by
``rebin_log`` (the bin width of a log-rebinned spectrum is ``k * df`` with ``df`` the original
resolution), ``nphots`` the mean counts per segment and ``mean`` the mean counts per bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.timing.spectrum import PowerSpectrum, Sampling, check_norm, check_sampling

__all__ = ["from_stingray", "to_stingray"]


def _scalar_if_uniform(values: NDArray) -> Any:
    return values[0].item() if np.all(values == values[0]) else values.copy()


def _unnormalise(power: NDArray[np.float64], norm: str, n_ph: float, n_bins: int, dt: float) -> NDArray:
    """Unnormalised powers, the inverse of Stingray's ``normalize_periodograms``."""
    if norm == "leahy":
        return power * (n_ph / 2.0)
    if norm == "frac":
        return power * (n_ph**2 / n_bins / (2.0 * dt))
    return power * (n_bins * dt / 2.0)


def to_stingray(ps: PowerSpectrum, index: int = 0) -> Any:
    """One spectrum of a batch as a Stingray power spectrum.

    Parameters
    ----------
    ps : PowerSpectrum
        Input spectra.
    index : int, optional
        Row of the batch to convert.

    Returns
    -------
    stingray.AveragedPowerspectrum or stingray.Powerspectrum
        ``AveragedPowerspectrum`` if ``ps.n_segments > 1``, else ``Powerspectrum``, with ``freq``, ``power``,
        ``unnorm_power``, ``power_err = power / sqrt(m)``, ``norm``, ``m``, ``k``, ``df``, ``n``, ``dt``,
        ``nphots``, ``mean``, ``segment_size`` and ``err_dist = "poisson"`` set as Stingray sets them, so
        that methods such as ``rebin_log``, ``classical_significances`` and ``compute_rms`` work. The GTI is
        a nominal ``[[0, M * segment_length]]`` (the event times are not kept), and ``lc1`` is not set.

    Raises
    ------
    ValueError
        If ``index`` is out of range.
    """
    import stingray

    one = ps.select(index)
    n_bins = round(one.segment_length / one.dt)
    n_ph = float(one.mean_rate[0] * one.segment_length)
    power = np.array(one.power[0])
    m = np.array(one.m)
    if np.allclose(one.df, one.df[0], rtol=1e-9, atol=0.0):
        # Unbinned or linearly rebinned: Stingray's ``rebin`` sets df to the new width and keeps k = 1.
        df, k = float(one.df[0]), 1
    else:
        # Log-rebinned: Stingray keeps the original resolution in df and the merged count in k.
        df, k = 1.0 / one.segment_length, _scalar_if_uniform(np.rint(one.df * one.segment_length).astype(int))

    spec = stingray.AveragedPowerspectrum() if one.n_segments > 1 else stingray.Powerspectrum()
    spec.freq = np.array(one.freq)
    spec.power = power
    spec.unnorm_power = _unnormalise(power, one.norm, n_ph, n_bins, one.dt)
    spec.power_err = power / np.sqrt(m)
    spec.unnorm_power_err = spec.unnorm_power / np.sqrt(m)
    spec.norm = one.norm
    spec.m = _scalar_if_uniform(m)
    spec.k = k
    spec.df = df
    spec.n = n_bins
    spec.dt = one.dt
    spec.nphots = spec.nphots1 = n_ph
    spec.mean = n_ph / n_bins
    spec.variance = None
    spec.segment_size = one.segment_length
    spec.err_dist = "poisson"
    spec.gti = np.array([[0.0, one.n_segments * one.segment_length]])
    return spec


def from_stingray(obj: Any, *, sampling: Sampling = "continuous") -> PowerSpectrum:
    """A Stingray power spectrum as a :class:`~xtml.timing.PowerSpectrum` with ``n = 1``.

    Parameters
    ----------
    obj : stingray.Powerspectrum or stingray.AveragedPowerspectrum
        A power spectrum in ``"leahy"``, ``"frac"`` or ``"abs"`` normalisation, possibly rebinned with
        ``rebin`` or ``rebin_log``.
    sampling : int or "continuous", optional
        How the light curve's bins sampled the source (:attr:`~xtml.timing.PowerSpectrum.sampling`); Stingray
        does not record it.  Default ``"continuous"``: a spectrum of real events or of a mission's light
        curve; pass the ``alias_factor`` for a simulated light curve.

    Returns
    -------
    PowerSpectrum
        ``m`` broadcast to every bin; ``df = k * obj.df`` (the width of each bin);
        ``mean_rate = nphots / (n dt)``; ``segment_length = obj.segment_size`` (or ``n dt``);
        ``n_segments = m / (k * round(df * segment_length))``, the number of averaged segments.

    Raises
    ------
    ValueError
        If ``obj`` is not a real-valued power spectrum in a supported normalisation (convert it first with
        ``obj.to_norm("leahy")``), or lacks the attributes above.
    """
    missing = [
        name
        for name in ("freq", "power", "norm", "m", "df", "n", "dt", "nphots")
        if getattr(obj, name, None) is None
    ]
    if missing:
        raise ValueError(f"obj must be a computed Stingray power spectrum; it lacks {missing}")
    norm = check_norm(str(obj.norm).lower(), name="obj.norm")
    power = np.asarray(obj.power)
    if np.iscomplexobj(power):
        raise ValueError("obj.power must be real (a power spectrum, not a cross spectrum)")
    freq = np.asarray(obj.freq, dtype=np.float64)
    dt = float(obj.dt)
    n_bins = int(obj.n)
    segment_length = float(getattr(obj, "segment_size", None) or n_bins * dt)
    m = np.broadcast_to(np.rint(np.asarray(obj.m, dtype=np.float64)), freq.shape).astype(np.int64)
    k = np.broadcast_to(np.asarray(getattr(obj, "k", 1), dtype=np.float64), freq.shape)
    df0 = float(obj.df)
    linear_factor = round(df0 * segment_length)
    n_segments = int(np.rint(m[0] / (k[0] * max(linear_factor, 1))))
    return PowerSpectrum(
        freq=freq,
        power=power.reshape(1, -1).astype(np.float64),
        m=m,
        df=df0 * k,
        norm=norm,
        mean_rate=np.array([float(obj.nphots) / (n_bins * dt)]),
        segment_length=segment_length,
        dt=dt,
        n_segments=max(n_segments, 1),
        sampling=check_sampling(sampling),
    )
