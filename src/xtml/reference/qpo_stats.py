"""Statistics of QPO detection with exact sampling distributions: simulated spectra and outliers.

* :func:`sample_spectra` draws spectra from the exact sampling distribution of averaged powers,
  :math:`P_j \\sim \\mathrm{Gamma}(m_j,\\ S_j / m_j)`, around a model;
* :func:`max_outlier_statistic` is the largest outlier of the data over a model,
  :math:`T_R = \\max_j 2 m_j P_j / S_j` (Vaughan 2010), a :math:`\\chi^2_{2m}` variable per bin;
* :func:`single_bin_significance` is its analytic trial-corrected p-value for a known ``S``.

The likelihood-ratio statistic is in :mod:`xtml.reference.qpo_lrt`, the calibrated test in
:mod:`xtml.reference.qpo`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaincc, gammainccinv

from xtml.reference.likelihood import SpectralModel
from xtml.timing import PowerSpectrum

__all__ = ["max_outlier_statistic", "sample_spectra", "single_bin_significance"]

FloatArray = NDArray[np.float64]


def _range_mask(freq: FloatArray, f_range: tuple[float, float] | None) -> NDArray[np.bool_]:
    if f_range is None:
        return np.ones(freq.shape, dtype=bool)
    try:
        f_lo, f_hi = (float(v) for v in f_range)
    except (TypeError, ValueError):
        raise ValueError(f"f_range must be a pair (low, high) in Hz, got {f_range!r}") from None
    mask = (freq >= f_lo) & (freq <= f_hi)
    if not mask.any():
        raise ValueError(
            f"f_range = ({f_lo}, {f_hi}) Hz holds no frequency bin; the spectrum covers "
            f"[{freq[0]:.6g}, {freq[-1]:.6g}] Hz"
        )
    return mask


def sample_spectra(
    model: SpectralModel, theta: ArrayLike, spectrum: PowerSpectrum, rng: np.random.Generator | int | None
) -> PowerSpectrum:
    """Spectra drawn from the exact sampling distribution of averaged powers around a model.

    .. math::

        P_j \\sim \\mathrm{Gamma}\\big(m_j,\\ S_j / m_j\\big) = \\frac{S_j}{2 m_j}\\,\\chi^2_{2 m_j},
        \\qquad S = \\text{model.expected}(\\theta, \\text{spectrum}),

    which is what a light curve with that PSD gives after averaging ``m_j`` independent periodogram
    powers (no light curves needed).

    Parameters
    ----------
    model : SpectralModel
    theta : array_like, shape (n, model.n_params)
        One parameter vector per simulated spectrum.
    spectrum : PowerSpectrum
        Template (frequencies, ``m``, norm, mean rate) with 1 or ``n`` rows.
    rng : Generator or int

    Returns
    -------
    PowerSpectrum
        ``n`` spectra on the grid of ``spectrum``.

    Examples
    --------
    >>> from xtml.psd import Constant, PSDModel
    >>> ps = PowerSpectrum(freq=[1.0, 2.0], power=[[2.0, 2.0]], m=[1, 50], df=[1.0, 1.0], norm="leahy",
    ...                    mean_rate=[100.0], segment_length=1.0, dt=0.1, n_segments=1)
    >>> model = SpectralModel(PSDModel.from_components({"white": Constant()}), noise="poisson")
    >>> sample_spectra(model, np.zeros((4, 1)), ps, rng=1).power.shape
    (4, 2)
    """
    gen = np.random.default_rng(rng)
    s = model.expected(theta, spectrum)
    if not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError("the model's expected powers must be finite and > 0 for every theta")
    power = gen.gamma(spectrum.m.astype(np.float64), s / spectrum.m)
    rate = np.broadcast_to(spectrum.mean_rate, (s.shape[0],)).copy()
    return replace(spectrum, power=power, mean_rate=rate)


def max_outlier_statistic(
    spectra: PowerSpectrum, expected: ArrayLike, *, f_range: tuple[float, float] | None = None
) -> tuple[FloatArray, NDArray[np.intp]]:
    """Vaughan's (2010) largest-outlier statistic of each spectrum, with its bin.

    .. math::

        T_R = \\max_{j \\in \\text{f\\_range}} x_j, \\qquad x_j = \\frac{2 m_j P_j}{S_j}
        \\sim \\chi^2_{2 m_j} \\ \\text{(if } S \\text{ is the truth)},

    i.e. :math:`2 I_j / S_j` for a single periodogram (``m = 1``).  When ``m`` varies over the
    search range (log-rebinned spectra), the raw maximum would always pick the bins with most
    degrees of freedom, so each :math:`x_j` is first mapped to the :math:`\\chi^2_{2 m_*}` value
    with the same tail probability, :math:`m_* = \\min_j m_j` over the range; the statistic is the
    largest of those (the bin with the smallest tail probability).  For uniform ``m`` this is
    exactly :math:`\\max_j 2 m P_j / S_j`, and in both cases, for a known ``S``,
    :func:`single_bin_significance` ``(T_R, m_*, n_bins)`` is its exact p-value.  A bin whose tail
    probability underflows (below ~1e-308) gives ``inf``.

    Parameters
    ----------
    spectra : PowerSpectrum
        ``n`` spectra.
    expected : array_like, shape (n, n_freq) or (1, n_freq)
        The null model's expected powers ``S`` (e.g. ``null.expected(fit.params, spectra)``).
    f_range : (float, float), optional
        Search range in Hz (inclusive); default: every bin.

    Returns
    -------
    t_r : ndarray, shape (n,)
    index : ndarray of int, shape (n,)
        Bin of the maximum, an index into ``spectra.freq``.

    Examples
    --------
    >>> ps = PowerSpectrum(freq=[1.0, 2.0, 3.0], power=[[2.0, 9.0, 1.0]], m=[1, 1, 1], df=[1.0] * 3,
    ...                    norm="leahy", mean_rate=[100.0], segment_length=1.0, dt=0.1, n_segments=1)
    >>> max_outlier_statistic(ps, np.full((1, 3), 2.0))
    (array([9.]), array([1]))
    """
    s = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    if s.shape[1] != spectra.n_freq or s.shape[0] not in (1, spectra.n):
        raise ValueError(
            f"expected must have shape ({spectra.n}, {spectra.n_freq}) or (1, {spectra.n_freq}), "
            f"got {s.shape}"
        )
    if not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError("expected powers must be finite and > 0")
    mask = _range_mask(spectra.freq, f_range)
    cols = np.flatnonzero(mask)
    m = spectra.m[cols].astype(np.float64)
    x = 2.0 * m * spectra.power[:, cols] / s[:, cols]
    if np.all(m == m[0]):
        k = np.argmax(x, axis=1)
        return x[np.arange(spectra.n), k], cols[k]
    # different dof: rank by tail probability, report on the chi2_{2 m_*} scale
    sf = gammaincc(m, 0.5 * x)
    k = np.argmin(sf, axis=1)
    rows = np.arange(spectra.n)
    m_ref = m.min()
    t = np.where(m[k] == m_ref, x[rows, k], 2.0 * gammainccinv(m_ref, sf[rows, k]))
    return t, cols[k]


def single_bin_significance(t: ArrayLike, m: ArrayLike, n_trials: ArrayLike) -> FloatArray:
    """Trial-corrected p-value of the largest of ``n_trials`` independent :math:`\\chi^2_{2m}` variables.

    .. math::

        p = 1 - \\big(1 - \\mathrm{sf}_{\\chi^2_{2m}}(T)\\big)^{n_{trials}}
          = -\\mathrm{expm1}\\big(n_{trials} \\log(1 - \\mathrm{sf})\\big)

    (Vaughan 2010, eq. 16, for ``m = 1``).  Exact when ``S`` in :func:`max_outlier_statistic` is the
    true spectrum; with a fitted ``S`` (the usual case) the fit absorbs part of the outlier and the
    bins are no longer independent, so the value is approximate:
    :func:`~xtml.reference.qpo.calibrate` gives the simulation-calibrated p-value.

    Parameters
    ----------
    t : array_like
        Statistic :math:`T_R` (>= 0).
    m : array_like
        Powers averaged per bin (>= 1): the variable is :math:`\\chi^2_{2m}`.
    n_trials : array_like
        Number of independent bins searched (>= 1).

    Returns
    -------
    ndarray
        p-values, broadcast shape of the inputs.

    Examples
    --------
    >>> round(float(single_bin_significance(2 * np.log(1000.0), 1, 1)), 6)
    0.001
    """
    tt = np.asarray(t, dtype=np.float64)
    mm = np.asarray(m, dtype=np.float64)
    nn = np.asarray(n_trials, dtype=np.float64)
    if np.any(np.isnan(tt)) or np.any(tt < 0):
        raise ValueError(f"t must be >= 0, got {t!r}")
    if np.any(~np.isfinite(mm)) or np.any(mm < 1):
        raise ValueError(f"m must be finite and >= 1, got {m!r}")
    if np.any(~np.isfinite(nn)) or np.any(nn < 1):
        raise ValueError(f"n_trials must be finite and >= 1, got {n_trials!r}")
    sf = gammaincc(mm, 0.5 * tt)
    with np.errstate(divide="ignore"):
        return -np.expm1(nn * np.log1p(-sf))
