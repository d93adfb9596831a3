"""The likelihood of a cospectrum: averaged Laplace (and difference-of-exponential) powers.

The cospectrum of two independent detectors (:func:`xtml.timing.cospectrum`) has no white-noise
level: the counting noise of the two detectors is uncorrelated.  Its powers are not chi-squared,
so the Whittle likelihood does not apply.  With complex Gaussian Fourier amplitudes
:math:`A = S + N_a`, :math:`B = S + N_b` (a shared source amplitude ``S`` and independent noise),

.. math::

    \\mathrm{Re}(A^* B) = \\tfrac14 \\left(|A + B|^2 - |A - B|^2\\right),

and ``A + B`` and ``A - B`` are independent complex Gaussians, so a single cospectral power is the
**difference of two exponential variables**.  In Leahy normalisation, for identical ideal detectors
with Poisson noise and a Gaussian (Timmer & Koenig) source of expected cospectral power ``E``,

.. math::

    C = X_+ - X_-, \\qquad X_+ \\sim \\mathrm{Exp}(\\text{mean } b + E), \\quad
    X_- \\sim \\mathrm{Exp}(\\text{mean } b), \\qquad b = 1,

with mean ``E`` and variance :math:`(b + E)^2 + b^2`.  For pure noise (``E = 0``) this is the
Laplace distribution of scale ``b = 1`` (variance 2) of Huppenkothen & Bachetti (2018, ApJS 236,
13).  The average of ``m`` independent powers (``m = M K``: segments times adjacent frequencies) is
the mean of ``m`` such variables.  Two noise models are offered (``kind``):

* ``"laplace"`` (Huppenkothen & Bachetti 2018): ``C - E`` is the mean of ``m`` Laplace(0, b)
  variables, whatever the source power.  Right for weak signals (``E << b``); where the source
  power is comparable to the noise it underestimates the variance, :math:`2 b^2` instead of
  :math:`(b + E)^2 + b^2` per power, and the posterior is too narrow.
* ``"signal"``: ``C`` is the mean of ``m`` variables :math:`X_+ - X_-` as above: exact for a
  Gaussian source seen by two identical detectors with Poisson noise (equal rates, no dead time).

Scale ``b`` in the spectrum's normalisation: half the Poisson level of a single detector's
periodogram at the cospectrum's (geometric-mean) rate :math:`\\mu`, i.e. ``1`` (Leahy),
``1 / mu`` (frac) or ``mu`` (abs).  Dead time lowers it (pass ``scale``).

The density of the mean :math:`\\bar x` of ``m`` differences, from the convolution of two Erlang
densities (``s = m x``, :math:`\\lambda = 1/\\theta_+ + 1/\\theta_-`, :math:`u = |s| \\lambda`,
:math:`\\theta = \\theta_+` for ``s >= 0`` and :math:`\\theta_-` otherwise):

.. math::

    f_m(\\bar x) = m\\,\\frac{e^{-|s| / \\theta}}{\\Gamma(m)\\,(\\theta_+ \\theta_-)^m\\,\\lambda^{2m-1}}
    \\sum_{j=0}^{m-1} \\frac{(m-1+j)!}{j!\\,(m-1-j)!}\\,u^{m-1-j}.

For :math:`\\theta_+ = \\theta_- = b` this is the closed form of the sum of ``m`` Laplace(0, b)
variables, :math:`e^{-|s|/b} / ((m-1)!\\,(2b)^m) \\sum_k \\frac{(m-1+k)!}{k!\\,(m-1-k)!} |s|^{m-1-k}
b^k / 2^k`, a variance-gamma density (checked in the tests against the Bessel-function form,
numerical convolution and Monte Carlo).  The polynomial is evaluated by Horner's rule with
normalised coefficients (all terms positive, no cancellation) for ``m <= EXACT_MAX_M``; above,
by the saddle-point approximation (Daniels 1954) with its corrections to order :math:`1/m^2`,

.. math::

    f(s) \\approx \\frac{e^{K(\\hat t) - \\hat t s}}{\\sqrt{2\\pi K''(\\hat t)}}
    \\Big(1 + \\frac{\\lambda_4}{8} - \\frac{5 \\lambda_3^2}{24} + O(m^{-2})\\Big), \\qquad
    K(t) = -m \\log(1 - \\theta_+ t) - m \\log(1 + \\theta_- t),

(:math:`\\lambda_n = K^{(n)} / K''^{n/2}` at the saddle point :math:`K'(\\hat t) = s`; the
:math:`m^{-2}` term is ``_saddle``'s ``second``).  Its error in the log density is about
:math:`0.1 / m^3`: 1e-7 at ``m = 100``, where the switch is (the tests measure it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from xtml.reference.likelihood import SpectralModel
from xtml.timing import PowerSpectrum

__all__ = [
    "COSPECTRUM_KINDS",
    "EXACT_MAX_M",
    "CospectrumKind",
    "cospectrum_loglike",
    "exp_difference_logpdf",
    "laplace_mean_logpdf",
    "log_likelihood_cospectrum",
]

FloatArray = NDArray[np.float64]
CospectrumKind = Literal["laplace", "signal"]
COSPECTRUM_KINDS: tuple[str, ...] = ("laplace", "signal")

#: Largest ``m`` evaluated with the exact finite sum; above, the corrected saddle-point approximation.
EXACT_MAX_M = 100


def _check_kind(kind: object) -> CospectrumKind:
    if kind not in COSPECTRUM_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COSPECTRUM_KINDS)}, got {kind!r}")
    return cast(CospectrumKind, kind)


def _check_m(m: ArrayLike) -> NDArray[np.int64]:
    mm = np.asarray(m)
    if mm.dtype.kind not in "iuf" or not np.all(np.isfinite(mm)) or np.any(mm != np.rint(mm)):
        raise ValueError(f"m must hold integers >= 1 (powers averaged per bin), got {mm!r}")
    if np.any(mm < 1):
        raise ValueError(f"m must be >= 1 in every bin, got min {float(mm.min())}")
    return mm.astype(np.int64)


@lru_cache(maxsize=256)
def _coefficients(m: int) -> tuple[FloatArray, float]:
    """Normalised coefficients ``w_j = c_j / max(c)`` of the polynomial, ``c_j = (m-1+j)!/(j!(m-1-j)!)``."""
    j = np.arange(m)
    log_c = gammaln(m + j) - gammaln(j + 1) - gammaln(m - j)
    top = float(log_c.max())
    w = np.exp(log_c - top)
    w.flags.writeable = False
    return w, top


def _log_poly(u: FloatArray, m: int) -> FloatArray:
    """``log sum_j c_j u^(m-1-j)`` for ``u >= 0`` by Horner's rule (all terms positive).

    The normalised coefficients are <= 1 and the constant one is 1 (the largest), so Horner in ``u``
    cannot overflow while ``u^(m-1)`` stays below ~1e260; beyond, those elements use ``1/u``.
    """
    w, top = _coefficients(m)
    u_safe = np.exp(600.0 / (m - 1))
    if u.size == 0 or u.max() <= u_safe:  # the usual case: one pass, no masks
        acc = np.full_like(u, w[0])
        for wj in w[1:]:
            acc *= u
            acc += wj
        return np.log(acc) + top
    out = np.empty_like(u)
    small = u <= 1.0
    out[small] = _log_poly(u[small], m) - top
    v = 1.0 / u[~small]
    acc = np.full_like(v, w[-1])
    for wj in w[-2::-1]:
        acc *= v
        acc += wj
    out[~small] = -(m - 1) * np.log(v) + np.log(acc)
    return out + top


def _exact(x: FloatArray, m: int, a: FloatArray, c: FloatArray, same: bool) -> FloatArray:
    """Exact log density of the mean of ``m`` iid ``Exp(a) - Exp(c)`` (means; ``same``: ``a is c``)."""
    lam = 1.0 / a + 1.0 / c
    const = np.log(m) - m * np.log(a * c) - gammaln(m) - (2 * m - 1) * np.log(lam)
    s_abs = m * np.abs(x)
    out = const - s_abs / (a if same else np.where(x >= 0, a, c))
    if m > 1:
        out += _log_poly(s_abs * lam, m)
    return out


def _saddle(x: FloatArray, m: int, a: FloatArray, c: FloatArray, same: bool) -> FloatArray:
    """Saddle-point log density, corrected to order 1/m^2, of the mean of ``m`` ``Exp(a) - Exp(c)``."""
    del same  # one formula for both
    # K'(t) / m = a / (1 - a t) - c / (1 + c t) = x: a quadratic whose root in (-1/c, 1/a) is, stably,
    b_q = 2.0 * a * c + x * (a - c)
    disc = np.sqrt(4.0 * (a * c) ** 2 + (x * (a + c)) ** 2)
    t = 2.0 * (x - a + c) / (b_q + disc)
    ap, cq = a / (1.0 - a * t), c / (1.0 + c * t)  # a / p and c / q, p = 1 - a t, q = 1 + c t
    ap2, cq2 = ap * ap, cq * cq
    ap3, cq3 = ap2 * ap, cq2 * cq
    k2 = ap2 + cq2  # per-variable cumulants of the tilted density: K^(n)(t) = m k_n
    inv2 = 1.0 / k2
    inv3 = inv2 * inv2 * inv2
    l3sq = 4.0 * (ap3 - cq3) ** 2 * inv3  # standardised cumulants, l_n = k_n / k2^(n/2)
    l4 = 6.0 * (ap2 * ap2 + cq2 * cq2) * inv2 * inv2
    l35 = 48.0 * (ap3 - cq3) * (ap3 * ap2 - cq3 * cq2) * inv2 * inv3  # l3 * l5
    l6 = 120.0 * (ap3 * ap3 + cq3 * cq3) * inv3
    first = l4 / 8.0 - 5.0 * l3sq / 24.0
    second = 385.0 / 1152.0 * l3sq * l3sq - 35.0 / 64.0 * l3sq * l4 + 35.0 / 384.0 * l4 * l4
    second += 7.0 / 48.0 * l35 - l6 / 48.0
    log_fs = m * (np.log(ap * cq / (a * c)) - t * x) - 0.5 * np.log(2.0 * np.pi * m * k2)
    return np.log(m) + log_fs + np.log1p(first / m + second / (m * m))


def _logpdf(x: ArrayLike, m: ArrayLike, a: ArrayLike, c: ArrayLike, same: bool) -> FloatArray:
    xx = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xx)):
        raise ValueError("x must be finite")
    mm = _check_m(m)
    aa = np.asarray(a, dtype=np.float64)
    cc = aa if same else np.asarray(c, dtype=np.float64)
    good = np.isfinite(aa) & (aa > 0) & np.isfinite(cc) & (cc > 0)
    values = np.unique(mm)
    if values.size == 1 and np.all(good):  # one m, valid scales: no masks, scales stay small
        mv = int(values[0])
        fn = _exact if mv <= EXACT_MAX_M else _saddle
        shape = np.broadcast_shapes(xx.shape, mm.shape, aa.shape, cc.shape)
        return np.broadcast_to(fn(xx, mv, aa, cc, same), shape).copy()
    xx, mm, aa, cc, good = np.broadcast_arrays(xx, mm, aa, cc, good)
    out = np.full(xx.shape, -np.inf)
    for mv in values:
        sel = good & (mm == mv)
        if sel.any():
            fn = _exact if mv <= EXACT_MAX_M else _saddle
            out[sel] = fn(xx[sel], int(mv), aa[sel], cc[sel], same)
    return out


def exp_difference_logpdf(
    x: ArrayLike, m: ArrayLike, scale_pos: ArrayLike, scale_neg: ArrayLike
) -> FloatArray:
    """Log density of the mean of ``m`` iid differences ``Exp(scale_pos) - Exp(scale_neg)``.

    Exact (module docstring) for ``m <= EXACT_MAX_M``, the corrected saddle-point approximation
    above.  With ``scale_pos == scale_neg == b`` it is the mean of ``m`` Laplace(0, b) variables.

    Parameters
    ----------
    x : array_like
        Values (finite).
    m : array_like of int
        Number of averaged variables (>= 1); broadcast against ``x``.
    scale_pos, scale_neg : array_like
        Means :math:`\\theta_+`, :math:`\\theta_-` of the two exponentials (> 0); broadcast.

    Returns
    -------
    ndarray
        Log density, the broadcast shape of the inputs; ``-inf`` where a scale is not finite and
        > 0 (so samplers step away), never NaN.

    Examples
    --------
    >>> from scipy import stats
    >>> x = np.array([-3.0, 0.0, 1.5])
    >>> bool(np.allclose(exp_difference_logpdf(x, 1, 2.0, 2.0), stats.laplace(scale=2.0).logpdf(x)))
    True
    """
    return _logpdf(x, m, scale_pos, scale_neg, same=False)


def laplace_mean_logpdf(x: ArrayLike, m: ArrayLike, scale: ArrayLike = 1.0) -> FloatArray:
    """Log density of the mean of ``m`` iid Laplace(0, ``scale``) variables (variance ``2 scale^2 / m``).

    The white-noise distribution of an averaged cospectrum (Leahy: ``scale = 1``); see
    :func:`exp_difference_logpdf`.

    Examples
    --------
    >>> from scipy import stats
    >>> bool(np.isclose(laplace_mean_logpdf(0.7, 1), stats.laplace.logpdf(0.7)))
    True
    """
    return _logpdf(x, m, scale, scale, same=True)


def cospectrum_loglike(
    cospectrum: ArrayLike,
    expected: ArrayLike,
    m: ArrayLike,
    scale: ArrayLike = 1.0,
    *,
    kind: CospectrumKind = "laplace",
) -> FloatArray:
    """Log-likelihood of averaged cospectral powers, summed over frequency.

    .. math::

        \\log L = \\sum_j \\log f_{m_j}(C_j - E_j;\\ b, b) \\quad (\\text{laplace}), \\qquad
        \\log L = \\sum_j \\log f_{m_j}(C_j;\\ b + E_j, b) \\quad (\\text{signal}),

    with :math:`f_m(\\cdot; \\theta_+, \\theta_-)` the density of the mean of ``m`` differences
    of exponentials (module docstring, :func:`exp_difference_logpdf`).

    Parameters
    ----------
    cospectrum : array_like, shape (n, n_freq)
        Observed cospectral powers (finite; may be negative).
    expected : array_like, shape (n, n_freq)
        Model expectation ``E`` (the source's cospectral power, no white noise); broadcast.
    m : array_like of int, shape (n_freq,) or scalar
        Independent powers averaged per bin (>= 1).
    scale : array_like, optional
        Noise scale ``b`` in the spectrum's normalisation (> 0): 1 for Leahy, ``1 / mu`` for frac,
        ``mu`` for abs (``mu`` the geometric-mean rate); broadcast against (n, n_freq).
    kind : {"laplace", "signal"}
        Noise model (module docstring).

    Returns
    -------
    ndarray, shape (n,)
        ``-inf`` for rows whose expectation is not finite (or, for ``"signal"``, has
        ``b + E <= 0``), never NaN.
    """
    kind = _check_kind(kind)
    cs = np.atleast_2d(np.asarray(cospectrum, dtype=np.float64))
    if not np.all(np.isfinite(cs)):
        raise ValueError("cospectrum powers must be finite")
    e = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    b = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(b) & (b > 0)):
        raise ValueError(f"scale must be finite and > 0 (the noise scale in the spectrum's norm), got {b!r}")
    mm = _check_m(m)
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "laplace":
            finite = np.isfinite(e)
            x = np.where(finite, cs - np.where(finite, e, 0.0), 0.0)
            logpdf = laplace_mean_logpdf(x, mm, b)
        else:
            pos = b + e
            finite = np.isfinite(pos)
            x, pos = np.broadcast_arrays(cs, np.where(finite, pos, -1.0))
            logpdf = exp_difference_logpdf(x, mm, pos, b)
    logpdf = np.where(finite, logpdf, -np.inf)
    return logpdf.sum(axis=-1)


def log_likelihood_cospectrum(
    theta: ArrayLike,
    cospectrum: PowerSpectrum,
    model: SpectralModel,
    *,
    kind: CospectrumKind = "laplace",
    scale: ArrayLike | None = None,
) -> FloatArray:
    """Log-likelihood of a cospectrum under ``model`` at ``theta``, shape (n,).

    The expectation is the source part of :meth:`SpectralModel.expected`, ``c P_src(nu)`` with
    ``c`` = mu (Leahy), 1 (frac), mu^2 (abs) at the cospectrum's geometric-mean rate: a cospectrum
    has no white noise.  ``model`` must have ``noise="poisson"`` so that ``theta`` holds only the
    PSD's parameters (a free noise level would be a parameter the data cannot see); its Poisson
    level is subtracted from the expectation.  Same calling convention as
    :func:`xtml.reference.log_likelihood`, so fits and samplers take either.

    Parameters
    ----------
    theta : array_like, shape (n, n_params)
    cospectrum : PowerSpectrum
        ``n`` rows or one (shared by every parameter vector).
    model : SpectralModel
        With ``noise="poisson"``.
    kind : {"laplace", "signal"}
        Noise model (module docstring); ``"laplace"`` as Huppenkothen & Bachetti (2018).
    scale : array_like, optional
        Noise scale ``b`` in the spectrum's norm; default half the Poisson level, i.e. 1 (Leahy),
        ``1 / mu`` (frac), ``mu`` (abs): ideal detectors.

    Returns
    -------
    ndarray, shape (n,)
        ``-inf`` for parameters outside the PSD's allowed ranges, never NaN.
    """
    kind = _check_kind(kind)
    if model.noise != "poisson":
        raise ValueError(
            f"a cospectrum has no white-noise level: use SpectralModel(psd, noise='poisson') (whose level "
            f"is subtracted), got noise={model.noise!r} with parameter 'noise.level'"
        )
    t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if t.ndim != 2 or t.shape[1] != model.n_params:
        raise ValueError(
            f"theta must have shape (n, {model.n_params}) for {model.param_names}; got {t.shape}"
        )
    if cospectrum.n not in (1, t.shape[0]):
        raise ValueError(
            f"cospectrum has {cospectrum.n} rows; need 1 or one per parameter vector, {t.shape[0]}"
        )
    ok = model.psd.within_bounds(t)
    out = np.full(t.shape[0], -np.inf)
    if not ok.any():
        return out
    spec = cospectrum if cospectrum.n == 1 else cospectrum.select(np.flatnonzero(ok))
    with np.errstate(all="ignore"):
        expected = model.source(t[ok], spec, check=False)
    b = spec.poisson_level()[:, None] / 2.0 if scale is None else scale
    out[ok] = cospectrum_loglike(spec.power, expected, spec.m, b, kind=kind)
    return out
