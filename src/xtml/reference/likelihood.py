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
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from xtml.psd import PSDModel
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


@dataclass(frozen=True)
class SpectralModel:
    """The expected power of a spectrum: a source PSD scaled to the spectrum's norm, plus white noise.

    .. math::

        S_j = c\\,P_{src}(\\nu_j;\\theta) + W, \\qquad
        c = \\{\\mu \\ (\\text{leahy}),\\ 1 \\ (\\text{frac}),\\ \\mu^2 \\ (\\text{abs})\\},

    with ``mu`` the spectrum's mean count rate and ``W`` either the Poisson level of the norm
    (``noise="poisson"``: 2, 2/mu or 2 mu) or a free parameter ``noise.level`` in the spectrum's
    units (``noise="free"``: what a fit of real data usually needs, e.g. with dead time or
    background).  The model is evaluated at the bin-centre frequencies.

    Parameters
    ----------
    psd : PSDModel
        Source PSD in (rms/mean)^2/Hz.
    noise : {"poisson", "free"}
    """

    psd: PSDModel
    noise: NoiseKind = "free"

    def __post_init__(self) -> None:
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.noise!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """The PSD's parameters, then ``noise.level`` if the noise level is free."""
        return self.psd.param_names + (("noise.level",) if self.noise == "free" else ())

    @property
    def n_params(self) -> int:
        """Length of a parameter vector."""
        return len(self.param_names)

    def expected(self, theta: ArrayLike, spectrum: PowerSpectrum, *, check: bool = True) -> FloatArray:
        """Expected powers, shape (n, n_freq), for ``theta`` (n, n_params) and ``spectrum`` (n or 1 rows).

        Parameters outside the PSD's allowed ranges raise ``ValueError`` when ``check`` (the
        default); optimisers and samplers pass ``check=False`` and get ``-inf`` likelihoods instead
        through non-positive or non-finite expectations.
        """
        t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if t.shape[1] != self.n_params:
            raise ValueError(
                f"theta must have shape (n, {self.n_params}) for {self.param_names}; got {t.shape}"
            )
        if spectrum.n not in (1, t.shape[0]):
            raise ValueError(
                f"spectrum has {spectrum.n} rows; need 1 or one per parameter vector, {t.shape[0]}"
            )
        k = self.psd.n_params
        src = self.psd.evaluate(spectrum.freq, t[:, :k], check=check)
        rate = spectrum.mean_rate[:, None]
        scale = {"leahy": rate, "frac": np.ones_like(rate), "abs": rate**2}[spectrum.norm]
        if self.noise == "poisson":
            white = poisson_level(spectrum.norm, spectrum.mean_rate)[:, None]
        else:
            white = t[:, k:]
        return src * scale + white


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
