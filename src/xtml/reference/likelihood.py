"""The likelihood of a power spectrum: exact Whittle for averaged spectra, and the model it compares with.

An averaged periodogram power with ``m`` independent powers per bin (M segments x K frequencies)
is, around its expectation ``S``, Gamma-distributed with shape ``m`` and scale ``S / m``
(``S/(2m) chi^2_{2m}``), so the exact log-likelihood of a spectrum is

.. math::

    \\log L = \\sum_j \\Big[ m_j \\log m_j - \\log\\Gamma(m_j) + (m_j - 1)\\log P_j - m_j \\log S_j
              - m_j P_j / S_j \\Big],

which for ``m = 1`` is the familiar Whittle ``-sum(log S + P / S)``.  Keeping the ``m``-dependent
terms matters: dropping or doubling them (as Stingray 2.3's ``PSDLogLikelihood`` does for
``m != 1``) leaves the best fit alone but breaks likelihood ratios and posterior widths.

:class:`SpectralModel` turns a source PSD (fractional-rms units, ``xtml.psd``) into the expected
power of a given :class:`~xtml.timing.PowerSpectrum` in its own normalisation, plus a white-noise
level; :func:`log_likelihood` is the one function of (parameters, spectrum, model) that maximum
likelihood fits, QPO tests, MCMC and simulation-based inference all use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from xtml.psd import PSDModel
from xtml.reference.binning import ModelGrid, model_grid
from xtml.reference.deadtime import _grid_power, zhang_coefficients, zhang_leahy_at
from xtml.timing import PowerSpectrum, poisson_level

__all__ = ["NOISE_KINDS", "NoiseKind", "SpectralModel", "log_likelihood", "whittle_loglike"]

FloatArray = NDArray[np.float64]
NoiseKind = Literal["poisson", "free"]
NOISE_KINDS: tuple[str, ...] = ("poisson", "free")


def whittle_loglike(power: ArrayLike, expected: ArrayLike, m: ArrayLike) -> FloatArray:
    """Exact log-likelihood of averaged powers, summed over frequency.

    Parameters
    ----------
    power : array_like, shape (n, n_freq)
        Observed powers (> 0).
    expected : array_like, shape (n, n_freq)
        Model expectation ``S`` (> 0); broadcast against ``power``.
    m : array_like, shape (n_freq,) or scalar
        Independent powers averaged per bin (>= 1).

    Returns
    -------
    ndarray, shape (n,)
        ``sum_j [m log m - lgamma(m) + (m - 1) log P - m log S - m P / S]``; ``-inf`` where a model
        power is not positive (so optimisers and samplers step away), never NaN.
    """
    p = np.atleast_2d(np.asarray(power, dtype=np.float64))
    s = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    mm = np.asarray(m, dtype=np.float64)
    if np.any(mm < 1):
        raise ValueError(f"m must be >= 1 in every bin, got min {float(mm.min())}")
    if np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(
            "observed powers must be finite and > 0 (the Whittle likelihood needs positive powers)"
        )
    bad = ~(s > 0) | ~np.isfinite(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = mm * np.log(mm) - gammaln(mm) + (mm - 1) * np.log(p) - mm * np.log(s) - mm * p / s
    out = terms.sum(axis=-1)
    out[bad.any(axis=-1) if bad.ndim == 2 else np.zeros(out.shape, dtype=bool)] = -np.inf
    return out


@lru_cache(maxsize=512)
def _zhang_fourier(rate: float, dead_time: float, bin_time: float, n_bins: int) -> FloatArray:
    """Zhang's Leahy white noise at Fourier indices 0 .. n_bins // 2 (detected per-module rate), cached."""
    b = zhang_coefficients(rate, dead_time, bin_time, rate_is_incident=False)
    out = _grid_power(n_bins, b)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class SpectralModel:
    """The expected power of a spectrum: a source PSD scaled to the spectrum's norm, plus white noise.

    .. math::

        S_j = c\\,G\\,\\langle P_{src}(\\nu;\\theta) \\rangle_j + W\\,w_j, \\qquad
        c = \\{\\mu \\ (\\text{leahy}),\\ 1 \\ (\\text{frac}),\\ \\mu^2 \\ (\\text{abs})\\},

    with ``mu`` the spectrum's mean count rate and ``W`` either the Poisson level of the norm
    (``noise="poisson"``: 2, 2/mu or 2 mu) or a free parameter ``noise.level`` in the spectrum's
    units (``noise="free"``: what a fit of real data usually needs, e.g. with background).
    :math:`\\langle\\cdot\\rangle_j` is the mean over the Fourier frequencies inside bin ``j``
    (the bin centre with ``bin_average=False``) of the source PSD seen through the binning response of
    the spectrum's light curves: at each Fourier frequency the response-weighted sum over its aliased
    images (:mod:`xtml.reference.binning`, chosen by the spectrum's
    :attr:`~xtml.timing.PowerSpectrum.sampling`: none for a rate sampled on the grid of ``dt``, the
    simulator's fine grid for ``alias_factor > 1``, :math:`\\mathrm{sinc}^2` for real photons).  This one
    function is the expectation that the simulator's spectra average to, and that fits, QPO tests, MCMC
    and the classical baselines of the simulation-based inference use.

    A constant ``background_rate`` :math:`b` per module (incident, not variable) dilutes the source:
    :math:`G` gains the factor :math:`(1 - b / r_{in})^2` with :math:`r_{in}` the incident rate per
    module (the detected one without dead time), so the fitted rms is the *source's* fractional rms.

    Without dead time :math:`G = 1` and :math:`w_j = 1`.  With a non-paralyzable ``dead_time``
    :math:`\\tau` per module (``n_modules`` independent modules summed into the spectrum, each detecting
    :math:`r_d = \\mu / n_{mod}`) the model is dead-time aware, as an expert would fit NuSTAR data
    without machine learning:

    * the white noise has the shape of Zhang et al. (1995): :math:`w_j = \\langle P_Z(\\nu) \\rangle_j / 2`
      with :math:`P_Z` the Leahy spectrum of dead-time-affected Poisson noise at the detected rate
      (:func:`xtml.reference.zhang_leahy_for_spectrum`), so ``W = 2`` (Leahy) is the exact Zhang model
      and a free ``W`` rescales it;
    * the source variability is suppressed by the dead-time gain
      :math:`G = (\\partial \\ln r_d / \\partial \\ln r)^2 = (1 - r_d \\tau)^2` (small-signal limit of
      :math:`r_d = r / (1 + r\\tau)`), so the fitted rms is the *incident* fractional rms.  This holds for
      :math:`\\nu \\ll 1/\\tau` (400 Hz for NuSTAR) and variability that is not too strong; beyond that
      dead time also mixes frequencies, which only simulation-based inference captures.

    Parameters
    ----------
    psd : PSDModel
        Source PSD in (rms/mean)^2/Hz.
    noise : {"poisson", "free"}
    dead_time : float, optional
        Non-paralyzable dead time per module, s (default 0: an ideal detector).
    n_modules : int, optional
        Independent detector modules summed into the spectrum (NuSTAR: 2), >= 1.
    bin_average : bool, optional
        Average the model over the Fourier frequencies of each bin (default) rather than evaluating it
        at the bin centre.
    background_rate : float, optional
        Constant background count rate per module included in the spectrum's mean rate, ct/s (default 0).
    """

    psd: PSDModel
    noise: NoiseKind = "free"
    dead_time: float = 0.0
    n_modules: int = 1
    bin_average: bool = True
    background_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.noise!r}")
        tau = self.dead_time
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not (np.isfinite(tau) and tau >= 0):
            raise ValueError(f"dead_time must be a finite number >= 0 (s), got {tau!r}")
        n_mod = self.n_modules
        if isinstance(n_mod, bool) or not isinstance(n_mod, int | np.integer) or n_mod < 1:
            raise ValueError(f"n_modules must be an integer >= 1, got {n_mod!r}")
        if not isinstance(self.bin_average, bool):
            raise ValueError(f"bin_average must be True or False, got {self.bin_average!r}")
        bkg = self.background_rate
        if isinstance(bkg, bool) or not isinstance(bkg, int | float) or not (np.isfinite(bkg) and bkg >= 0):
            raise ValueError(f"background_rate must be a finite number >= 0 (ct/s per module), got {bkg!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """The PSD's parameters, then ``noise.level`` if the noise level is free."""
        return self.psd.param_names + (("noise.level",) if self.noise == "free" else ())

    @property
    def n_params(self) -> int:
        """Length of a parameter vector."""
        return len(self.param_names)

    def grid(self, spectrum: PowerSpectrum) -> ModelGrid:
        """Where the source PSD is evaluated for ``spectrum`` (:func:`~xtml.reference.binning.model_grid`)."""
        return model_grid(spectrum, average=self.bin_average)

    def _module_rate(self, spectrum: PowerSpectrum) -> FloatArray:
        rate = spectrum.mean_rate / self.n_modules
        too_fast = rate * self.dead_time >= 1.0
        if np.any(too_fast):
            bad = float(rate[np.argmax(too_fast)])
            raise ValueError(
                f"detected rate per module {bad:.6g} ct/s is impossible with a non-paralyzable dead time of "
                f"{self.dead_time} s (must be < 1 / dead_time = {1.0 / self.dead_time:.6g} ct/s)"
            )
        return rate

    def source_scale(self, spectrum: PowerSpectrum) -> FloatArray:
        """Factor :math:`c\\,G` (n,) turning the source PSD (frac units) into the spectrum's norm."""
        rate = spectrum.mean_rate
        scale = {"leahy": rate, "frac": np.ones_like(rate), "abs": rate**2}[spectrum.norm]
        if self.dead_time > 0:
            scale = scale * (1.0 - self._module_rate(spectrum) * self.dead_time) ** 2
        if self.background_rate > 0:
            detected = self._module_rate(spectrum)
            incident = detected / (1.0 - detected * self.dead_time)
            source = 1.0 - self.background_rate / incident
            if np.any(source <= 0):
                bad = float(incident[np.argmax(source <= 0)])
                raise ValueError(
                    f"background_rate {self.background_rate:g} ct/s per module is not below the incident "
                    f"rate per module {bad:.6g} ct/s of the spectrum: no source is left"
                )
            scale = scale * source**2
        return scale

    def white_shape(self, spectrum: PowerSpectrum, grid: ModelGrid | None = None) -> FloatArray:
        """Shape :math:`w_j` of the white noise, (n, n_freq) with dead time, else (1, n_freq) of ones."""
        if self.dead_time <= 0:
            return np.ones((1, spectrum.n_freq))
        grid = self.grid(spectrum) if grid is None else grid
        rates = self._module_rate(spectrum)
        n_bins = round(spectrum.segment_length / spectrum.dt)
        out = np.empty((spectrum.n, spectrum.n_freq))
        for i, rate in enumerate(rates):
            if grid.index is not None and n_bins >= 2 * int(grid.index.max()) + 1:
                values = _zhang_fourier(float(rate), float(self.dead_time), float(spectrum.dt), n_bins)
                out[i] = grid.average(values[grid.index])
            else:  # bins that are not Fourier frequencies: the smooth interpolation at the centres
                out[i] = zhang_leahy_at(
                    grid.freq, n_bins, float(rate), self.dead_time, spectrum.dt, rate_is_incident=False
                )
        return out / 2.0

    def white_level(self, theta: FloatArray, spectrum: PowerSpectrum) -> FloatArray:
        """The level ``W`` (n, 1): the Poisson level of the norm, or the free parameter."""
        if self.noise == "poisson":
            return poisson_level(spectrum.norm, spectrum.mean_rate)[:, None]
        return theta[:, self.psd.n_params :]

    def source(self, theta: ArrayLike, spectrum: PowerSpectrum, *, check: bool = True) -> FloatArray:
        """Expected source power :math:`c G \\langle P_{src} \\rangle_j`, (n, n_freq), no white noise."""
        t = self._theta(theta, spectrum)
        grid = self.grid(spectrum)
        src = grid.source_average(self.psd.evaluate(grid.source_freq, t[:, : self.psd.n_params], check=check))
        return src * self.source_scale(spectrum)[:, None]

    def _theta(self, theta: ArrayLike, spectrum: PowerSpectrum) -> FloatArray:
        t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if t.shape[1] != self.n_params:
            raise ValueError(
                f"theta must have shape (n, {self.n_params}) for {self.param_names}; got {t.shape}"
            )
        if spectrum.n not in (1, t.shape[0]):
            raise ValueError(
                f"spectrum has {spectrum.n} rows; need 1 or one per parameter vector, {t.shape[0]}"
            )
        return t

    def expected(self, theta: ArrayLike, spectrum: PowerSpectrum, *, check: bool = True) -> FloatArray:
        """Expected powers, shape (n, n_freq), for ``theta`` (n, n_params) and ``spectrum`` (n or 1 rows).

        Parameters outside the PSD's allowed ranges raise ``ValueError`` when ``check`` (the
        default); optimisers and samplers pass ``check=False`` and get ``-inf`` likelihoods instead
        through non-positive or non-finite expectations.
        """
        t = self._theta(theta, spectrum)
        white = self.white_level(t, spectrum) * self.white_shape(spectrum)
        return self.source(t, spectrum, check=check) + white


def log_likelihood(theta: ArrayLike, spectrum: PowerSpectrum, model: SpectralModel) -> FloatArray:
    """Exact Whittle log-likelihood of ``spectrum`` under ``model`` at ``theta``, shape (n,).

    ``theta`` is (n, n_params) and the spectrum has n rows or one (shared by every vector, as for
    MCMC walkers).  Invalid parameters give ``-inf``, never NaN.
    """
    t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    finite = np.all(np.isfinite(t), axis=1)
    out = np.full(t.shape[0], -np.inf)
    if not finite.any():
        return out
    with np.errstate(all="ignore"):
        spec = spectrum if spectrum.n == 1 else spectrum.select(np.flatnonzero(finite))
        expected = model.expected(t[finite], spec, check=False)
    out[finite] = whittle_loglike(spec.power, expected, spectrum.m)
    return out
