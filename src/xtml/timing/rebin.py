"""Linear and logarithmic rebinning of power spectra, keeping track of the number of averaged powers.

A rebinned bin :math:`b` merges the input bins :math:`i \\in b`; with :math:`m_i` powers averaged in input
bin :math:`i`,

.. math::

    m_b = \\sum_{i \\in b} m_i, \\qquad
    P_b = \\frac{\\sum_{i \\in b} m_i P_i}{m_b}, \\qquad
    f_b = \\frac{\\sum_{i \\in b} m_i f_i}{m_b}, \\qquad
    \\Delta f_b = \\sum_{i \\in b} \\Delta f_i .

For a spectrum straight from a periodogram (:math:`m_i = M`) these are the plain means of the powers and
of the Fourier frequencies in the bin, as in Stingray, and :math:`m_b = M K_b` with :math:`K_b` Fourier
frequencies in the bin; white Leahy powers then follow :math:`(2 / 2 m_b)\\,\\chi^2_{2 m_b}`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from xtml.timing.spectrum import PowerSpectrum

__all__ = ["log_bin_edges", "rebin_linear", "rebin_log"]


def _merge(ps: PowerSpectrum, starts: NDArray[np.intp], stop: int) -> PowerSpectrum:
    """Merge the input bins ``[starts[k], starts[k + 1])`` (the last one ends at ``stop``)."""
    m = ps.m[:stop]
    m_new = np.add.reduceat(m, starts)
    weight = m / m_new.repeat(np.diff(np.append(starts, stop)))
    return replace(
        ps,
        freq=np.add.reduceat(ps.freq[:stop] * weight, starts),
        power=np.add.reduceat(ps.power[:, :stop] * weight, starts, axis=1),
        m=m_new,
        df=np.add.reduceat(ps.df[:stop], starts),
    )


def rebin_linear(ps: PowerSpectrum, factor: int) -> PowerSpectrum:
    """Average groups of ``factor`` adjacent frequency bins.

    Parameters
    ----------
    ps : PowerSpectrum
        Input spectra, shape (n, n_freq).
    factor : int
        Number of adjacent bins merged, ``1 <= factor <= n_freq``. A trailing group of fewer than ``factor``
        bins is dropped.

    Returns
    -------
    PowerSpectrum
        Shape (n, n_freq // factor), with ``m`` multiplied by ``factor`` (summed over the merged bins),
        ``df`` summed and ``freq`` the mean of the merged frequencies (module docstring).

    Raises
    ------
    ValueError
        If ``factor`` is not an integer in ``[1, n_freq]``.

    Examples
    --------
    >>> ps = PowerSpectrum(freq=[1.0, 2.0, 3.0, 4.0, 5.0], power=[[1.0, 3.0, 2.0, 4.0, 9.0]], m=[2] * 5,
    ...                    df=[1.0] * 5, norm="leahy", mean_rate=[10.0], segment_length=1.0, dt=0.1,
    ...                    n_segments=2)
    >>> out = rebin_linear(ps, 2)
    >>> out.freq, out.power, out.m
    (array([1.5, 3.5]), array([[2., 3.]]), array([4, 4]))
    """
    if isinstance(factor, bool) or not isinstance(factor, int | np.integer):
        raise ValueError(f"factor must be an integer in [1, n_freq = {ps.n_freq}], got {factor!r}")
    if not 1 <= factor <= ps.n_freq:
        raise ValueError(f"factor must be an integer in [1, n_freq = {ps.n_freq}], got {factor}")
    if factor == 1:
        return ps
    n_new = ps.n_freq // factor
    return _merge(ps, np.arange(0, n_new * factor, factor), n_new * factor)


def log_bin_edges(freq0: float, df: float, f: float, freq_max: float) -> NDArray[np.float64]:
    """Bin edges of Stingray's logarithmic rebinning (``stingray.utils.rebin_data_log``).

    .. math::

        e_0 = f_0 / 2, \\quad e_1 = e_0 + \\Delta f, \\quad
        e_{k+1} = e_k + (1 + f)(e_k - e_{k-1}) \\quad \\text{while } e_k \\le f_{max},

    so each bin is :math:`1 + f` times wider than the previous one. The recursion is evaluated in the same
    order as Stingray, so the edges (and which frequencies fall in which bin) agree to the last bit.

    Parameters
    ----------
    freq0 : float
        First frequency of the spectrum :math:`f_0`, Hz.
    df : float
        Frequency resolution :math:`\\Delta f` of the input spectrum, Hz (width of the first bin).
    f : float
        Fractional increase of the bin width, > 0.
    freq_max : float
        Last frequency of the spectrum, Hz; the last edge is the first one above it.

    Returns
    -------
    ndarray of float64, shape (n_bins + 1,)
        Increasing bin edges, Hz; bin ``k`` is ``[edges[k], edges[k + 1])``.
    """
    edges = [freq0 * 0.5, freq0 * 0.5 + df]
    width = df
    while edges[-1] <= freq_max:
        edges.append(edges[-1] + width * (1.0 + f))
        width = edges[-1] - edges[-2]
    return np.asarray(edges, dtype=np.float64)


def rebin_log(ps: PowerSpectrum, f: float) -> PowerSpectrum:
    """Logarithmic rebinning with Stingray's bin edges (``Powerspectrum.rebin_log(f)``).

    Bin edges come from :func:`log_bin_edges` with the first frequency, the (uniform) bin width ``df`` and
    the last frequency of ``ps``; each frequency goes to the bin ``[e_k, e_{k+1})`` containing it. Bins
    containing no frequency (which Stingray reports as NaN) are dropped. The first bins typically hold a
    single frequency each, so ``m`` varies along the output: ``m_b = M K_b``.

    Parameters
    ----------
    ps : PowerSpectrum
        Input spectra with uniform bin widths ``df`` (a periodogram, possibly linearly rebinned).
    f : float
        Fractional increase of the bin width from one bin to the next, finite and > 0.

    Returns
    -------
    PowerSpectrum
        The rebinned spectra (module docstring); ``df`` is :math:`K_b \\Delta f`, the frequency range covered
        by the merged bins, not the distance between the edges.

    Raises
    ------
    ValueError
        If ``f`` is not finite and > 0, or the bin widths of ``ps`` are not uniform.

    Examples
    --------
    >>> ps = PowerSpectrum(freq=np.arange(1.0, 101.0), power=np.full((1, 100), 2.0), m=[1] * 100,
    ...                    df=[1.0] * 100, norm="leahy", mean_rate=[10.0], segment_length=1.0, dt=0.005,
    ...                    n_segments=1)
    >>> out = rebin_log(ps, 0.1)
    >>> out.m[:6], int(out.m.sum())
    (array([1, 1, 1, 2, 1, 2]), 100)
    """
    try:
        step = float(f)
    except (TypeError, ValueError):
        raise ValueError(f"f must be a finite number > 0, got {f!r}") from None
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"f must be a finite number > 0, got {f!r}")
    df = ps.df[0]
    if not np.allclose(ps.df, df, rtol=1e-9, atol=0.0):
        raise ValueError(
            f"rebin_log needs uniform bin widths df (a linearly binned spectrum); ps.df ranges from "
            f"{ps.df.min()} to {ps.df.max()} Hz"
        )
    edges = log_bin_edges(float(ps.freq[0]), float(df), step, float(ps.freq[-1]))
    which = np.searchsorted(edges, ps.freq, side="right") - 1
    starts = np.flatnonzero(np.diff(which, prepend=-1))
    return _merge(ps, starts, ps.n_freq)
