"""Maximum-likelihood fits of power spectra with the exact Whittle likelihood, in batches.

:func:`fit_spectra` maximises :func:`~xtml.reference.likelihood.log_likelihood` (the one likelihood
every xtml method uses) for each row of a :class:`~xtml.timing.PowerSpectrum`, within bounds taken
from a prior's support or given directly, and returns a :class:`FitResult`: best fits, errors and
covariances from the Hessian, maximum log-likelihoods, AIC/BIC and a status per spectrum.

How a fit works
---------------
*Transform.*  Each free parameter :math:`x \\in [a, b]` is optimised as an unconstrained
coordinate :math:`u`:

.. math::

    u = \\operatorname{logit}\\frac{x - a}{b - a} \\ \\text{(finite box)}, \\quad
    u = \\operatorname{logit}\\frac{\\ln x - \\ln a}{\\ln b - \\ln a} \\ \\text{(log box)}, \\quad
    u = \\ln(x - a) \\ \\text{or} \\ \\ln(b - x) \\ \\text{(half-open)}, \\quad
    u = x \\ \\text{(unbounded)}.

The log box is used for ``LogUniform`` priors and for mapping bounds with ``0 < a`` and
``b >= 100 a``; a :class:`~xtml.psd.Fixed` prior (or ``a == b``) holds the parameter at its value.

*Optimiser.*  ``scipy.optimize.minimize(method="trust-exact")``, a trust-region Newton method, on
:math:`-\\log L(u)` with its gradient and Hessian in ``u`` (see ``_Problem``: the
derivatives of the Whittle likelihood with respect to the expected powers, times central
differences of the PSD components).  It stops when the Newton decrement
:math:`g^T H^{-1} g` over the parameters not pressed against a bound is below
:math:`10^{-10}` (the next step would gain less than :math:`10^{-10}` in :math:`\\log L`): a
gradient-norm test depends on the parameters' units and, near the optimum, on the round-off of the
likelihood's large constant terms.  From a data-driven start a fit takes 5-10 iterations; L-BFGS-B
with the same gradients needed about three times more likelihood evaluations and ended on its noisy
function-change test.

*Starts.*  The given or data-driven start (:func:`start_values`) plus ``n_starts - 1`` draws
inside the bounds, uniform in the base coordinate of a finite box (linear or log) and
:math:`u_0 + \\mathcal{N}(0, 1)` elsewhere, all from ``rng`` in the calling process; the highest
converged maximum is kept.

*Errors.*  The Hessian of :math:`-\\log L` in the *original* parameters at the best fit, with
relative steps :math:`h_i = 10^{-4} \\max(|x_i|, 10^{-3} (b_i - a_i))` (same chain rule; the tests
check it against plain central differences of ``log_likelihood``), gives ``cov = H^{-1}`` over the
free parameters and ``errors = sqrt(diag(cov))``.  Fixed parameters have error and covariance 0.
Where the Hessian is not finite or not positive definite, errors and covariance are NaN and
``status`` says so.

*Status.*  ``"ok"``, or the reasons joined by ``"; "``: ``"optimizer failed: <scipy message>"``,
``"at bound: qpo.q, qpo.rms"`` (within :math:`10^{-4}` of a finite box, in its base coordinate, or
within :math:`10^{-4}` times the data-driven start's distance from a half-open bound),
``"hessian not finite"``, ``"hessian not positive definite"``.  ``success`` is ``status == "ok"``.

*Information criteria.*  With :math:`k` free (not fixed) parameters and :math:`N` the number of
frequency **bins** of the spectrum (``n_freq``, not the number of averaged powers
:math:`\\sum_j m_j`), :math:`\\mathrm{AIC} = 2k - 2\\log L_{max}` and
:math:`\\mathrm{BIC} = k \\ln N - 2\\log L_{max}`.

*Parallel.*  Spectra are spread in chunks over ``workers`` processes, BLAS limited to one thread
(``threadpoolctl``: its threads only slow down the many small products).  The fits are
Python-bound, so a process pool scales with the cores where threads share the GIL
(``bench/bench_fit.py`` measures both).  A spectrum's fit depends only on its data and its own
pre-drawn random starts: results are identical for any ``workers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit, logit, ndtri
from threadpoolctl import ThreadpoolController

from xtml.psd import (
    BendingPowerLaw,
    Constant,
    Fixed,
    JointPrior,
    LogUniform,
    Lorentzian,
    PowerLaw,
    ZeroCentredLorentzian,
)
from xtml.psd.model import param_index
from xtml.reference.likelihood import SpectralModel, log_likelihood, whittle_loglike
from xtml.simulate.lightcurves import available_cpus
from xtml.timing import PowerSpectrum

__all__ = ["Bounds", "FitResult", "fit_spectra", "start_values"]

FloatArray = NDArray[np.float64]
Bounds = JointPrior | Mapping[str, tuple[float, float]]
"""Fit bounds: a prior (its supports; ``Fixed`` fixes a parameter) or ``name -> (low, high)``."""

# transform kinds of a free parameter
_LOGIT, _LOGLOGIT, _LOWER, _UPPER, _FREE = range(5)
_U_MAX_EXP = 700.0
_INSIDE = 1e-3  # starts on or beyond a box edge are moved this fraction inside
_AT_BOUND = 1e-4  # a best fit this close to a bound (box fraction) is flagged "at bound"
_STEP = 1e-4  # central-difference step: in u, and relative in x for the error Hessian
_U_EDGE = -np.log(_AT_BOUND)  # |u| beyond which a box parameter is at its bound
_DECREMENT = 1e-10  # stop when g' H^-1 g (twice the gain a Newton step predicts in log L) is below this
_MAX_ITER = 200
#: Pool of ``fit_spectra`` with ``workers > 1``: "process" (default: the fits are Python-bound, so
#: threads share the GIL; ``bench/bench_fit.py`` measures both) or "thread".
_POOL = "process"
_BIG = 1e300  # -log L where the model is invalid: a finite wall the trust region backs off from
# Lorentzian start: half-widths (fraction of the centroid) of the matched-filter windows
_HALF_WIDTHS = np.array([0.015, 0.03, 0.06, 0.12, 0.24, 0.48])
_PEAKS = 2  # candidate windows per half-width, compared by their likelihood
_LORENTZ_FRACTION = 2.0 / np.pi * np.arctan(2.0)  # power of a Lorentzian within +-FWHM of nu0


@dataclass(frozen=True)
class FitResult:
    """Maximum-likelihood fits of ``n`` spectra with ``k`` model parameters.

    Attributes
    ----------
    param_names : tuple of str
        The model's parameter names, in column order.
    params : ndarray, shape (n, k)
        Best-fit parameters (fixed ones at their values).
    errors : ndarray, shape (n, k)
        One-sigma errors ``sqrt(diag(cov))`` from the Hessian of ``-log L`` at the best fit; 0 for
        fixed parameters; NaN (all free parameters of a row) only where the Hessian is not finite or
        not positive definite, as ``status`` says.
    cov : ndarray, shape (n, k, k)
        Inverse Hessian of ``-log L`` in the original parameters (0 in fixed rows/columns).
    loglike : ndarray, shape (n,)
        Maximum exact Whittle log-likelihood.
    aic, bic : ndarray, shape (n,)
        ``2 k_free - 2 loglike`` and ``k_free ln(n_freq) - 2 loglike`` (``n_freq``: frequency bins).
    success : ndarray of bool, shape (n,)
        ``status == "ok"``.
    status : tuple of str, length n
        ``"ok"`` or the reasons (module docstring), e.g. ``"at bound: qpo.rms"``.
    """

    param_names: tuple[str, ...]
    params: FloatArray
    errors: FloatArray
    cov: FloatArray
    loglike: FloatArray
    aic: FloatArray
    bic: FloatArray
    success: NDArray[np.bool_]
    status: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of fitted spectra."""
        return int(self.params.shape[0])

    def index(self, name: str) -> int:
        """Column of parameter ``name``; ``ValueError`` listing the valid names otherwise."""
        return param_index(self.param_names, name)


@dataclass(frozen=True)
class _Space:
    """Bounds of the model's parameters and the map between free parameters and ``u``."""

    names: tuple[str, ...]
    lo: FloatArray  # (k,)
    hi: FloatArray  # (k,)
    fixed: NDArray[np.bool_]  # (k,)
    kind: NDArray[np.int64]  # (k,), transform kind (meaningless where fixed)

    @cached_property
    def free(self) -> NDArray[np.intp]:
        return np.flatnonzero(~self.fixed)

    @cached_property
    def _plan(self) -> list[tuple[int, NDArray[np.intp], NDArray[np.intp], FloatArray, FloatArray]]:
        """Per transform kind present: (kind, positions in u, columns in x, lo, hi)."""
        f = self.free
        out = []
        for kind in (_LOGIT, _LOGLOGIT, _LOWER, _UPPER, _FREE):
            pos = np.flatnonzero(self.kind[f] == kind)
            if pos.size:
                out.append((kind, pos, f[pos], self.lo[f[pos]], self.hi[f[pos]]))
        return out

    def to_x(self, u: FloatArray) -> FloatArray:
        """Parameter vectors (r, k) from free coordinates ``u`` (r, k_free)."""
        x = np.repeat(self.lo[np.newaxis], u.shape[0], axis=0)
        for kind, pos, cols, lo, hi in self._plan:
            v = u[:, pos]
            if kind == _LOGIT:
                x[:, cols] = lo + (hi - lo) * expit(v)
            elif kind == _LOGLOGIT:
                x[:, cols] = np.minimum(np.maximum(lo * (hi / lo) ** expit(v), lo), hi)
            elif kind == _LOWER:
                x[:, cols] = lo + np.exp(np.minimum(v, _U_MAX_EXP))
            elif kind == _UPPER:
                x[:, cols] = hi - np.exp(np.minimum(v, _U_MAX_EXP))
            else:
                x[:, cols] = v
        return x

    def fraction(self, x: FloatArray) -> FloatArray:
        """Position in each finite box, 0 at ``lo`` and 1 at ``hi`` (log scale for log-logit), (r, k)."""
        with np.errstate(all="ignore"):
            lin = (x - self.lo) / (self.hi - self.lo)
            logs = np.log(x / self.lo) / np.log(self.hi / self.lo)
        return np.where(self.kind == _LOGLOGIT, logs, lin)

    def to_u(self, x: FloatArray) -> FloatArray:
        """Free coordinates (r, k_free) of parameter vectors ``x`` (r, k) strictly inside the bounds."""
        out = np.empty((x.shape[0], self.free.size))
        t = self.fraction(x)
        for j, col in enumerate(self.free):
            kind = self.kind[col]
            if kind in (_LOGIT, _LOGLOGIT):
                out[:, j] = logit(t[:, col])
            elif kind == _LOWER:
                out[:, j] = np.log(x[:, col] - self.lo[col])
            elif kind == _UPPER:
                out[:, j] = np.log(self.hi[col] - x[:, col])
            else:
                out[:, j] = x[:, col]
        return out

    def inside(self, x: FloatArray, ref: FloatArray | None = None) -> FloatArray:
        """``x`` (r, k) clipped into the bounds and moved ``_INSIDE`` away from every edge.

        Fixed parameters are set to their values.  On half-open bounds the margin is
        ``_INSIDE`` times the distance of ``ref`` (default ``x``) from the bound, or of 1.
        """
        x = np.clip(np.array(x, dtype=np.float64), self.lo, self.hi)
        ref = x if ref is None else ref
        box = (self.kind == _LOGIT) | (self.kind == _LOGLOGIT)
        with np.errstate(all="ignore"):  # inf and NaN appear only in columns that np.where drops
            t = np.clip(self.fraction(x), _INSIDE, 1.0 - _INSIDE)
            lin = self.lo + (self.hi - self.lo) * t
            logs = np.exp(np.log(self.lo) + np.log(self.hi / self.lo) * t)
            boxed = np.where(self.kind == _LOGLOGIT, logs, lin)
            low_gap = _INSIDE * np.where(ref - self.lo > 0, ref - self.lo, 1.0)
            high_gap = _INSIDE * np.where(self.hi - ref > 0, self.hi - ref, 1.0)
            out = np.where(box, boxed, x)
            out = np.where(self.kind == _LOWER, np.maximum(x, self.lo + low_gap), out)
            out = np.where(self.kind == _UPPER, np.minimum(x, self.hi - high_gap), out)
        return np.where(self.fixed, self.lo, out)


def bound_pairs(bounds: Bounds, names: tuple[str, ...], what: str = "bounds") -> list[tuple[float, float]]:
    """``(low, high)`` of each of ``names``, from a prior's supports or a mapping (``ValueError`` if not)."""
    if isinstance(bounds, JointPrior):
        bounds.require(names)
        return [bounds.priors[name].support for name in names]
    if not isinstance(bounds, Mapping):
        raise ValueError(f"{what} must be a JointPrior or a mapping name -> (low, high), got {bounds!r}")
    missing = [n for n in names if n not in bounds]
    extra = [n for n in bounds if n not in names]
    if missing or extra:
        raise ValueError(
            f"{what} do not match the model's parameters; missing: {missing or 'none'}; "
            f"unknown: {extra or 'none'}; valid parameters: {', '.join(names)}"
        )
    pairs = []
    for name in names:
        try:
            lo, hi = (float(v) for v in bounds[name])
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{name!r}] must be a pair (low, high), got {bounds[name]!r}") from None
        pairs.append((lo, hi))
    return pairs


def _space(model: SpectralModel, bounds: Bounds) -> _Space:
    """Check ``bounds`` against the model's parameters and choose each parameter's transform."""
    names = model.param_names
    log_box = np.zeros(len(names), dtype=bool)
    pairs = bound_pairs(bounds, names)
    if isinstance(bounds, JointPrior):
        log_box = np.array([isinstance(bounds.priors[name], LogUniform) for name in names])
        fixed = np.array([isinstance(bounds.priors[name], Fixed) for name in names])
    else:
        fixed = np.array([lo == hi for lo, hi in pairs])
    lo = np.array([p[0] for p in pairs], dtype=np.float64)
    hi = np.array([p[1] for p in pairs], dtype=np.float64)
    for k, name in enumerate(names):
        if np.isnan(lo[k]) or np.isnan(hi[k]) or not lo[k] <= hi[k] or lo[k] == np.inf or hi[k] == -np.inf:
            raise ValueError(f"bounds of {name} must satisfy low <= high (not NaN), got ({lo[k]}, {hi[k]})")
    finite = np.isfinite(lo) & np.isfinite(hi)
    if not isinstance(bounds, JointPrior):
        log_box = finite & (lo > 0) & (hi >= 100.0 * lo)
    kind = np.select(
        [finite & log_box & (lo > 0), finite, np.isfinite(lo), np.isfinite(hi)],
        [_LOGLOGIT, _LOGIT, _LOWER, _UPPER],
        default=_FREE,
    )
    fixed = fixed | (lo == hi)
    return _Space(names=names, lo=lo, hi=hi, fixed=fixed, kind=kind.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# data-driven starts


def _component_slices(model: SpectralModel) -> list[tuple[Any, slice]]:
    """Each PSD component with the slice of its parameters in the model's parameter vector."""
    out, start = [], 0
    for _, comp in model.psd.components:
        out.append((comp, slice(start, start + len(comp.param_names))))
        start += len(comp.param_names)
    return out


def _noise_guess(power: FloatArray, m: FloatArray) -> FloatArray:
    """White-noise level, (n,): the lowest of four m-weighted means over the top half of the powers.

    The top half (by number of averaged powers, i.e. the highest frequencies) is cut into four
    groups of equal weight; the lowest group mean is the least contaminated by the source.
    """
    cm = np.cumsum(m)
    total = cm[-1]
    edges = np.searchsorted(cm, total * np.array([0.5, 0.625, 0.75, 0.875]), side="left")
    edges = np.unique(np.minimum(edges, m.size - 1))
    sums = np.add.reduceat(power * m, edges, axis=1)
    weights = np.add.reduceat(m, edges)
    return (sums / weights).min(axis=1)


def _log_groups(freq: FloatArray, n_groups: int = 20) -> NDArray[np.intp]:
    """Start indices of up to ``n_groups`` log-spaced, non-empty frequency groups."""
    edges = np.geomspace(freq[0], freq[-1] * (1 + 1e-12), min(n_groups, freq.size) + 1)
    which = np.searchsorted(edges, freq, side="right") - 1
    return np.flatnonzero(np.diff(which, prepend=-1))


def _theil_sen(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Theil-Sen line: the median of the pairwise slopes, and the median intercept."""
    i, j = np.triu_indices(x.size, 1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def _broadband_guess(
    comp: Any, fg: FloatArray, eg: FloatArray, sg: FloatArray, wg: FloatArray, share: float
) -> list[float]:
    """Start parameters of one broadband component from grouped source excess ``eg`` (frac units).

    ``sg`` are the one-sigma errors of ``eg``, ``wg`` the groups' widths in Hz; amplitudes are
    divided by ``share`` (the number of broadband components).
    """
    sig = eg > 2.0 * sg
    fs, es = fg[sig], eg[sig]
    if isinstance(comp, PowerLaw | BendingPowerLaw):
        if fs.size >= 3:
            slope, icpt = _theil_sen(np.log(fs), np.log(es))
            index, norm = -float(slope), float(np.exp(icpt))
        elif fs.size:
            index = 1.0
            norm = float(np.median(es * fs**index))
        else:
            index, norm = 1.0, float(max(sg[0], 1e-300) * fg[0])
        norm /= share
        if isinstance(comp, PowerLaw):
            return [norm, index]
        f_bend = float(np.sqrt(fs[0] * fs[-1])) if fs.size >= 2 else float(np.sqrt(fg[0] * fg[-1]))
        low, high = fs < f_bend, fs >= f_bend
        a_low, a_high = index, index + 1.0
        if low.sum() >= 3 and high.sum() >= 3:
            s_lo, i_lo = _theil_sen(np.log(fs[low]), np.log(es[low]))
            s_hi = _theil_sen(np.log(fs[high]), np.log(es[high]))[0]
            a_low, norm = -float(s_lo), float(np.exp(i_lo)) / share
            a_high = max(-float(s_hi), a_low + 0.5)
        return [norm, f_bend, a_low, a_high]
    if isinstance(comp, ZeroCentredLorentzian):
        use = sig if sig.any() else np.ones_like(sig)
        nu_max = float(fg[use][np.argmax((fg * eg)[use])])
        var = float(np.sum(np.maximum(eg, 0.0) * wg))
        return [nu_max, float(np.sqrt(max(var, 1e-12) / share))]
    if isinstance(comp, Constant):
        return [float(max(eg[-1], sg[-1])) / share]
    raise ValueError(f"no start rule for component {type(comp).__name__}")


def _lorentzian_candidates(
    comp: Lorentzian,
    freq: FloatArray,
    df: FloatArray,
    m: FloatArray,
    power: FloatArray,
    model_power: FloatArray,
    scale: float,
    nu0_range: tuple[float, float],
    width_range: tuple[float, float],
    windows: list[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> list[list[float]]:
    """Candidate (centroid, width, rms) of a Lorentzian: the largest smoothed excesses over ``model_power``.

    A matched filter: for windows ``|nu - nu_c| <= h nu_c`` (half-widths ``h`` in ``_HALF_WIDTHS``;
    ``windows[w]`` holds the first and one-past-last bin of each centre's window for ``h[w]``),
    ``Z = sum m (P / M - 1) / sqrt(sum m)``, the excess in units of its noise.  For each ``h`` the
    ``_PEAKS`` highest non-overlapping windows give candidates: ``nu0`` the m-weighted centroid of the
    positive excess in the window, ``FWHM = 2 h nu0`` (``Q = 1 / 2h``), and ``rms^2`` the excess power
    within ``+-FWHM`` of ``nu0`` over the fraction of a Lorentzian's power there (``2 arctan(2) / pi``).
    """
    excess = m * (power / model_power - 1.0)
    cm = np.concatenate([[0.0], np.cumsum(m)])
    ce = np.concatenate([[0.0], np.cumsum(excess)])
    centres = (freq >= nu0_range[0]) & (freq <= nu0_range[1])
    if not centres.any():
        centres = np.zeros(freq.size, dtype=bool)
        centres[np.argmin(np.abs(np.log(freq / np.clip(freq, *nu0_range))))] = True
    quality = 1.0 / (2.0 * _HALF_WIDTHS)
    if comp.width == "q":
        widths_ok = (quality >= width_range[0]) & (quality <= width_range[1])
    else:
        widths_ok = np.ones(_HALF_WIDTHS.size, dtype=bool)
    if not widths_ok.any():
        widths_ok[np.argmin(np.abs(np.log(quality / np.sqrt(width_range[0] * width_range[1]))))] = True
    out = []
    for w in np.flatnonzero(widths_ok):
        h = float(_HALF_WIDTHS[w])
        lo, hi = windows[w]
        z = (ce[hi] - ce[lo]) / np.sqrt(cm[hi] - cm[lo])
        z[~centres] = -np.inf
        for _ in range(_PEAKS):
            j = int(np.argmax(z))
            if not np.isfinite(z[j]):
                break
            a, b = lo[j], hi[j]
            z[max(0, 2 * a - j) : 2 * b - j] = -np.inf  # the next peak must not overlap this window
            pos = np.maximum(excess[a:b], 0.0)
            nu0 = float(np.sum(freq[a:b] * pos) / np.sum(pos)) if pos.sum() > 0 else float(freq[j])
            fwhm = 2.0 * h * nu0
            near = np.abs(freq - nu0) <= fwhm
            if not near.any():
                near[np.argmin(np.abs(freq - nu0))] = True
            var = float(np.sum((power - model_power)[near] * df[near])) / scale / _LORENTZ_FRACTION
            out.append([nu0, 1.0 / (2.0 * h) if comp.width == "q" else fwhm, float(np.sqrt(max(var, 1e-12)))])
    return out


def _guess_row(
    model: SpectralModel,
    space: _Space,
    row: PowerSpectrum,
    white: float,
    groups: NDArray[np.intp],
    windows: list[tuple[NDArray[np.intp], NDArray[np.intp]]],
    refine: bool,
) -> FloatArray:
    """Data-driven start of one spectrum ``row`` (n = 1), shape (k,), within the closed bounds."""
    freq, df, m, power = row.freq, row.df, row.m.astype(np.float64), row.power[0]
    scale = float(model.source_scale(row)[0])
    shape = model.white_shape(row)[0]  # the white noise is white * shape (dead time bends it)
    n_psd = model.psd.n_params
    theta = np.clip(np.where(np.isfinite(space.lo), space.lo, 0.0), space.lo, space.hi)
    theta[n_psd:] = white  # the free noise level, if any
    parts = _component_slices(model)
    broad = [(comp, sl) for comp, sl in parts if not isinstance(comp, Lorentzian)]
    peaked = [(comp, sl) for comp, sl in parts if isinstance(comp, Lorentzian)]
    wg = np.add.reduceat(df, groups)
    mg = np.add.reduceat(m, groups)
    fg = np.add.reduceat(freq * m, groups) / mg

    def place_peaks(theta: FloatArray, base: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Each Lorentzian in turn: the likeliest candidate over ``base`` and the peaks placed so far."""
        lorentz = np.zeros_like(power)
        for comp, sl in peaked:
            i0, iw = sl.start, sl.start + 1  # nu0, then q or fwhm
            cands = _lorentzian_candidates(
                comp,
                freq,
                df,
                m,
                power,
                np.maximum(base + lorentz, 1e-300),
                scale,
                (space.lo[i0], space.hi[i0]),
                (space.lo[iw], space.hi[iw]),
                windows,
            )
            rows = np.repeat(theta[np.newaxis], len(cands), axis=0)
            rows[:, sl] = np.clip(cands, space.lo[sl], space.hi[sl])
            theta = rows[int(np.argmax(log_likelihood(rows, row, model)))]
            lorentz = lorentz + scale * comp.evaluate(freq, theta[np.newaxis, sl], check=False)[0]
        return theta, lorentz

    lorentz = np.zeros_like(power)  # the peaked components, in the spectrum's units
    for _ in range(2):  # broadband on the excess without the peaks, then the peaks over it; twice
        pg = np.add.reduceat((power - white * shape - lorentz) * m, groups) / mg
        tot = np.add.reduceat(power * m, groups) / mg
        eg, sg = pg / scale, tot / np.sqrt(mg) / scale
        base = white * shape
        for comp, sl in broad:
            guess = _broadband_guess(comp, fg, eg, sg, wg, float(len(broad)))
            theta[sl] = np.clip(guess, space.lo[sl], space.hi[sl])
            base += scale * comp.evaluate(freq, theta[np.newaxis, sl], check=False)[0]
        theta, lorentz = place_peaks(theta, base)
    if not (refine and peaked):
        return theta
    # The continuum first: fit the broadband components and the noise by maximum likelihood with the
    # peaks switched off (rms at its lowest allowed value), then place the peaks over that fit.
    rms_cols = np.array([sl.start + 2 for _, sl in peaked])
    off = theta.copy()
    off[rms_cols] = np.maximum(space.lo[rms_cols], 0.0)
    hold = space.fixed.copy()
    for _, sl in peaked:
        hold[sl] = True
    if hold.all():
        return theta
    sub = _Space(
        names=space.names,
        lo=np.where(hold, off, space.lo),
        hi=np.where(hold, off, space.hi),
        fixed=hold,
        kind=space.kind,
    )
    u0 = sub.to_u(sub.inside(off[np.newaxis]))[0]
    u_fit, _, _ = _optimise(_Problem(row, model, sub), u0, u0)
    continuum = sub.to_x(u_fit[np.newaxis])[0]
    base = model.expected(continuum[np.newaxis], row, check=False)[0]
    refined, _ = place_peaks(np.where(hold & ~space.fixed, theta, continuum), base)
    lls = log_likelihood(np.stack([theta, refined]), row, model)
    return refined if lls[1] >= lls[0] else theta


def _raw_starts(
    spectra: PowerSpectrum, model: SpectralModel, space: _Space, refine: bool = True
) -> FloatArray:
    """Data-driven starts of every spectrum, (n, k), inside the closed bounds (see :func:`start_values`)."""
    m = spectra.m.astype(np.float64)
    if model.noise == "free":  # the level W of W * shape: guess on the flattened powers
        white = _noise_guess(spectra.power / model.white_shape(spectra), m)
    else:
        white = spectra.poisson_level()
    groups = _log_groups(spectra.freq)
    freq = spectra.freq
    windows = [
        (
            np.searchsorted(freq, freq * (1.0 - h), side="left"),
            np.searchsorted(freq, freq * (1.0 + h), side="right"),
        )
        for h in _HALF_WIDTHS
    ]
    out = np.empty((spectra.n, model.n_params))
    with np.errstate(all="ignore"):
        for i in range(spectra.n):
            out[i] = _guess_row(model, space, spectra.select(i), float(white[i]), groups, windows, refine)
    bad = ~np.isfinite(out)
    if bad.any():  # a degenerate spectrum: fall back to the middle of the bounds
        mid = space.inside(np.where(np.isfinite(space.lo), space.lo, 0.0)[np.newaxis])[0]
        out[bad] = np.broadcast_to(mid, out.shape)[bad]
    return out


def start_values(spectra: PowerSpectrum, model: SpectralModel, bounds: Bounds) -> FloatArray:
    """Data-driven starting parameters for each spectrum, inside the bounds, shape (n, k).

    * white noise (``noise="free"``): the top half of the powers (highest frequencies) is cut into
      four groups of equal weight (number of averaged powers); the level is the lowest group mean,
      the one least contaminated by the source;
    * broadband components, from the source excess ``(P - W) / c`` averaged in ~20 log-spaced
      frequency groups, using the groups 2 sigma above zero: a power law's index from the
      Theil-Sen (median pairwise) slope in log-log, robust to a QPO in a few groups, and its
      normalisation from the intercept; a bending power law from the slopes below and above the
      geometric middle of that range; a zero-centred Lorentzian from the peak of ``nu P(nu)`` and
      the integrated excess; with several broadband components the amplitudes are shared;
    * Lorentzians, one after the other over the broadband model (and the Lorentzians already
      placed): windows ``|nu - nu_c| <= h nu_c`` with the largest excess in units of its noise,
      ``Z = sum m (P / M - 1) / sqrt(sum m)``, the two highest non-overlapping ones for each ``h``
      in 0.015 ... 0.48 and centroids allowed by the bounds, each give a candidate ``nu0`` and
      width (``Q = 1 / 2h``), with ``rms^2`` the excess power within ``+-FWHM`` of ``nu0`` divided
      by ``2 arctan(2) / pi``; the candidate with the highest likelihood is kept;
    * the broadband and Lorentzian steps are run twice, the second time with the broadband fitted
      to the excess minus the Lorentzians;
    * with Lorentzians in the model, the continuum first: the broadband components and the noise
      are fitted by maximum likelihood with the Lorentzians switched off (rms at its lowest
      allowed value), the Lorentzians are placed over that fit as above, and the likelier of this
      and the heuristic start is kept.  (On 200 spectra without a QPO fitted with one, a problem
      with many local maxima, the 4-start fits short of the best of 12 starts went from 50 to 14.)

    Every value is then clipped into the bounds and moved 0.1% of the box away from its edges
    (fixed parameters at their values).  No tuning per model: these starts only need to be in the
    basin of the maximum; :func:`fit_spectra` adds random starts.

    Parameters
    ----------
    spectra : PowerSpectrum
        ``n`` spectra on one frequency grid, any normalisation.
    model : SpectralModel
    bounds : JointPrior or mapping name -> (low, high)
        As in :func:`fit_spectra`.

    Returns
    -------
    ndarray, shape (n, model.n_params)
    """
    space = _space(model, bounds)
    _check_spectra(spectra)
    with _one_blas_thread():
        return space.inside(_raw_starts(spectra, model, space))


# ---------------------------------------------------------------------------------------------
# one fit


class _Problem:
    """Exact log-likelihood of one spectrum with its gradient and Hessian, in any diagonal coordinates.

    The value is :func:`whittle_loglike` at ``S = model.expected(x)``, as in :func:`log_likelihood`.
    Its derivatives follow from the chain rule through the expected powers,

    .. math::

        \\frac{\\partial \\log L}{\\partial v_a} = \\sum_j A_j \\frac{\\partial S_j}{\\partial v_a}, \\quad
        \\frac{\\partial^2 \\log L}{\\partial v_a \\partial v_b} = \\sum_j \\Big[B_j
            \\frac{\\partial S_j}{\\partial v_a}\\frac{\\partial S_j}{\\partial v_b}
            + A_j \\frac{\\partial^2 S_j}{\\partial v_a \\partial v_b}\\Big], \\quad
        A_j = \\frac{m_j (P_j - S_j)}{S_j^2}, \\ B_j = \\frac{m_j (S_j - 2 P_j)}{S_j^3},

    the derivatives of the Whittle log-likelihood with respect to ``S``, with ``dS/dv`` and
    ``d^2S/dv^2`` from central differences (forward for the mixed terms) of each PSD component
    alone: ``S`` is a sum of components and a coordinate moves only its own parameter, so second
    derivatives across components vanish.  This costs a few component evaluations instead of
    ``2k^2 + 1`` likelihood evaluations, and avoids the cancellation of the likelihood's large
    constant terms in finite differences.  The tests check the resulting errors against plain
    central differences of ``log_likelihood``.
    """

    def __init__(self, spectrum: PowerSpectrum, model: SpectralModel, space: _Space) -> None:
        self.spectrum, self.model, self.space = spectrum, model, space
        self.power = spectrum.power[0]
        self.m = spectrum.m.astype(np.float64)
        self.scale = float(model.source_scale(spectrum)[0])
        self.grid = model.grid(spectrum)
        self.shape = model.white_shape(spectrum, self.grid)[0]
        free = space.free
        # Per PSD component with free parameters, the rows to evaluate: the centre, each free
        # parameter moved up and down, and each pair moved up together (forward cross difference).
        # ``moves`` lists (row, column in the component, free position, +1 up / -1 down).
        self.plans: list[tuple[Any, slice, NDArray[np.intp], int, tuple[NDArray[np.intp], ...]]] = []
        for comp, sl in _component_slices(model):
            pos = np.flatnonzero((free >= sl.start) & (free < sl.stop))
            if not pos.size:
                continue
            kc = pos.size
            cols = free[pos] - sl.start
            moves = [(1 + i, cols[i], pos[i], 1) for i in range(kc)]
            moves += [(1 + kc + i, cols[i], pos[i], -1) for i in range(kc)]
            pairs = [(i, j) for i in range(kc) for j in range(i + 1, kc)]
            for p, (i, j) in enumerate(pairs):
                moves += [(1 + 2 * kc + p, cols[i], pos[i], 1), (1 + 2 * kc + p, cols[j], pos[j], 1)]
            arr = np.array(moves, dtype=np.intp).T
            self.plans.append((comp, sl, pos, 1 + 2 * kc + len(pairs), tuple(arr)))
        n_psd = model.psd.n_params
        self.noise = np.flatnonzero(free >= n_psd)
        self.cache: dict[bytes, tuple[float, FloatArray, FloatArray]] = {}

    def loglike(self, x: FloatArray) -> float:
        """``log_likelihood`` at one parameter vector (k,)."""
        return float(log_likelihood(x[np.newaxis], self.spectrum, self.model)[0])

    def derivatives(
        self, x: FloatArray, xp: FloatArray, xm: FloatArray, h: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """``log L``, gradient (k_free,) and Hessian (k_free, k_free) in coordinates ``v``.

        ``x = x(v)``; ``xp``, ``xm`` are ``x(v + h)`` and ``x(v - h)`` (every coordinate moved at
        once: the map is diagonal, so column ``i`` of ``xp`` is ``x`` with ``v_i + h_i``).
        """
        with np.errstate(all="ignore"):  # extreme parameters: non-finite values are handled below
            return self._derivatives(x, xp, xm, h)

    def _derivatives(
        self, x: FloatArray, xp: FloatArray, xm: FloatArray, h: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        free = self.space.free
        k = free.size
        s = self.model.expected(x[np.newaxis], self.spectrum, check=False)[0]
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            return -np.inf, np.zeros(k), np.zeros((k, k))
        ll = float(whittle_loglike(self.power, s[np.newaxis], self.m)[0])
        a = self.m * (self.power - s) / s**2
        b = self.m * (s - 2.0 * self.power) / s**3
        d1 = np.empty((k, s.size))
        second = np.zeros((k, k))  # sum_j A_j d2S_j / dv_a dv_b
        up, down = xp[free], xm[free]
        for comp, sl, pos, n_rows, (row, col, src, sign) in self.plans:
            rows = np.repeat(x[sl][np.newaxis], n_rows, axis=0)
            rows[row, col] = np.where(sign > 0, up[src], down[src])
            c_rows = self.grid.average(comp.evaluate(self.grid.freq, rows, check=False))
            c_rows *= self.scale
            kc = pos.size
            hp = h[pos]
            d1[pos] = (c_rows[1 : 1 + kc] - c_rows[1 + kc : 1 + 2 * kc]) / (2.0 * hp[:, np.newaxis])
            ca = c_rows @ a
            second[pos, pos] = (ca[1 : 1 + kc] - 2.0 * ca[0] + ca[1 + kc : 1 + 2 * kc]) / hp**2
            p = 1 + 2 * kc
            for i in range(kc):
                for j in range(i + 1, kc):
                    val = (ca[p] - ca[1 + i] - ca[1 + j] + ca[0]) / (hp[i] * hp[j])
                    second[pos[i], pos[j]] = second[pos[j], pos[i]] = val
                    p += 1
        for j in self.noise:  # S = ... + W w: dS/dv = W'(v) w in every bin
            col = free[j]
            d1[j] = (xp[col] - xm[col]) / (2.0 * h[j]) * self.shape
            second[j, j] = (xp[col] - 2.0 * x[col] + xm[col]) / h[j] ** 2 * (a @ self.shape)
        d1[~np.isfinite(d1)] = 0.0
        grad = d1 @ a
        hess = (d1 * b) @ d1.T + second
        return ll, grad, hess

    def in_u(self, u: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        """``-log L``, its gradient and Hessian in the optimiser's coordinates ``u``, cached."""
        key = u.tobytes()
        if key not in self.cache:
            if len(self.cache) > 8:
                self.cache.clear()
            h = _STEP * np.maximum(1.0, np.abs(u))
            x, xp, xm = self.space.to_x(np.stack([u, u + h, u - h]))
            ll, grad, hess = self.derivatives(x, xp, xm, h)
            if not np.isfinite(ll):  # an invalid model: a finite wall the trust region backs off from
                self.cache[key] = (_BIG, np.zeros(u.size), np.eye(u.size))
            else:  # a derivative lost to overflow (extreme parameters) counts as flat
                self.cache[key] = (-ll, -np.nan_to_num(grad), -np.nan_to_num(hess))
        return self.cache[key]

    def in_x(self, x: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        """``log L``, gradient and Hessian in the free original parameters, relative steps."""
        free = self.space.free
        width = np.where(np.isfinite(self.space.hi - self.space.lo), self.space.hi - self.space.lo, 1.0)
        h = _STEP * np.maximum(np.abs(x[free]), 1e-3 * width[free])
        xp, xm = x.copy(), x.copy()
        xp[free] += h
        xm[free] -= h
        return self.derivatives(x, xp, xm, h)


def _covariance(hess: FloatArray) -> tuple[FloatArray | None, str]:
    """Inverse of the Hessian of ``-log L``, or ``None`` and the reason."""
    if not np.all(np.isfinite(hess)):
        return None, "hessian not finite"
    d = np.diag(hess)
    if np.any(d <= 0):
        return None, "hessian not positive definite"
    s = 1.0 / np.sqrt(d)
    try:
        chol = np.linalg.cholesky(hess * s[:, np.newaxis] * s[np.newaxis, :])
    except np.linalg.LinAlgError:
        return None, "hessian not positive definite"
    inv_chol = np.linalg.inv(chol)
    cov = (inv_chol.T @ inv_chol) * s[:, np.newaxis] * s[np.newaxis, :]
    if not np.all(np.isfinite(cov)):
        return None, "hessian not positive definite"
    return cov, ""


def _interior(space: _Space, u: FloatArray, u_ref: FloatArray) -> NDArray[np.bool_]:
    """Free coordinates not pushed against a bound (their derivatives there vanish)."""
    kinds = space.kind[space.free]
    box = (kinds == _LOGIT) | (kinds == _LOGLOGIT)
    half = (kinds == _LOWER) | (kinds == _UPPER)
    return np.where(box, np.abs(u) < _U_EDGE, np.where(half, u > u_ref - _U_EDGE, True))


def _decrement(problem: _Problem, u: FloatArray, u_ref: FloatArray) -> float:
    """Newton decrement ``g' H^-1 g`` over the interior coordinates (inf if ``H`` is not PD there)."""
    _, grad, hess = problem.in_u(u)
    inner = _interior(problem.space, u, u_ref)
    g, hh = grad[inner], hess[np.ix_(inner, inner)]
    if g.size == 0:
        return 0.0
    try:
        chol = np.linalg.cholesky(hh)
    except np.linalg.LinAlgError:
        return np.inf
    y = np.linalg.solve(chol, g)
    return float(y @ y)


def _optimise(problem: _Problem, u0: FloatArray, u_ref: FloatArray) -> tuple[FloatArray, bool, str]:
    """Trust-region Newton from ``u0``; stop once the predicted gain in ``log L`` is negligible."""

    def stop(intermediate_result: Any) -> None:
        if _decrement(problem, intermediate_result.x, u_ref) < _DECREMENT:
            raise StopIteration

    try:
        res = minimize(
            lambda u: problem.in_u(u)[0],
            u0,
            jac=lambda u: problem.in_u(u)[1],
            hess=lambda u: problem.in_u(u)[2],
            method="trust-exact",
            callback=stop,
            options={"maxiter": _MAX_ITER, "gtol": 1e-12},
        )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:  # a start that breaks the solver
        return u0, False, f"{type(err).__name__}: {err}"
    ok = bool(res.success) or _decrement(problem, res.x, u_ref) < 1e3 * _DECREMENT
    return res.x, ok, str(res.message)


def _fit_one(
    spectrum: PowerSpectrum,
    model: SpectralModel,
    space: _Space,
    start: FloatArray,
    ref_x: FloatArray,
    extra: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, float, str]:
    """Fit one spectrum from ``start`` (k,) and the random draws ``extra`` (n_starts - 1, k_free).

    ``extra`` holds uniform variates in (0, 1): on finite boxes they place the start uniformly in
    the base coordinate, elsewhere they are turned into ``u_start + N(0, 1)`` (times
    ``max(|x_start|, 1)`` for unbounded parameters).  ``ref_x`` is the data-driven start, the scale
    of half-open bounds.
    """
    free = space.free
    k = space.lo.size
    u0 = space.to_u(start[np.newaxis])[0]
    u_ref = space.to_u(ref_x[np.newaxis])[0]
    kinds = space.kind[free]
    box = (kinds == _LOGIT) | (kinds == _LOGLOGIT)
    spread = np.where(kinds == _FREE, np.maximum(np.abs(u0), 1.0), 1.0)  # ln-scale coordinates: 1
    starts = [u0]
    for row in extra:
        starts.append(np.where(box, logit(_INSIDE + (1.0 - 2.0 * _INSIDE) * row), u0 + spread * ndtri(row)))
    problem = _Problem(spectrum, model, space)
    if free.size == 0:  # everything fixed: nothing to fit
        return start.copy(), np.zeros(k), np.zeros((k, k)), problem.loglike(start), "ok"
    runs = []  # (log L, converged, u, message) per start
    for u in starts:
        if problem.in_u(u)[0] >= _BIG:  # the model is invalid here
            continue
        u_opt, ok, message = _optimise(problem, u, u_ref)
        runs.append((problem.loglike(space.to_x(u_opt[np.newaxis])[0]), ok, u_opt, message))
    if not runs:
        ll = problem.loglike(start)
        message = "optimizer failed: the model is invalid at every start"
        return start.copy(), np.full(k, np.nan), np.full((k, k), np.nan), ll, message
    best_ll, ok, u_opt, message = max(runs, key=lambda r: (r[0], r[1]))  # highest maximum wins
    if not ok:  # the highest point did not converge: go on from there once
        u_more, ok_more, message_more = _optimise(problem, u_opt, u_ref)
        ll_more = problem.loglike(space.to_x(u_more[np.newaxis])[0])
        if ll_more >= best_ll:
            best_ll, ok, u_opt, message = ll_more, ok_more, u_more, message_more
    x = space.to_x(u_opt[np.newaxis])[0]
    issues = [] if ok else [f"optimizer failed: {message}"]
    edge = ~_interior(space, u_opt, u_ref)
    if edge.any():
        issues.append("at bound: " + ", ".join(space.names[c] for c in free[edge]))
    cov = np.zeros((k, k))
    errors = np.zeros(k)
    sub, why = _covariance(-problem.in_x(x)[2])
    if sub is None:
        issues.append(why)
        cov[np.ix_(free, free)] = np.nan
        errors[free] = np.nan
    else:
        cov[np.ix_(free, free)] = sub
        errors[free] = np.sqrt(np.diag(sub))
    return x, errors, cov, best_ll, "; ".join(issues) or "ok"


@cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded by numpy and scipy, found once (a fresh scan costs milliseconds)."""
    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """Context limiting BLAS to one thread: its threads only slow down the many small products."""
    return _blas().limit(limits=1)


def _fit_chunk(
    spectra: PowerSpectrum,
    model: SpectralModel,
    space: _Space,
    start: FloatArray | None,
    extra: FloatArray,
    limit_blas: bool,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, list[str]]:
    """Fit the rows of ``spectra`` (in a worker process, or here for one worker or threads)."""
    with _one_blas_thread() if limit_blas else nullcontext():
        guess = space.inside(_raw_starts(spectra, model, space, refine=start is None))
        starts = guess if start is None else space.inside(start, ref=guess)
        out = [
            _fit_one(spectra.select(i), model, space, starts[i], guess[i], extra[i]) for i in range(spectra.n)
        ]
    params, errors, cov, ll, status = zip(*out, strict=True)
    return np.array(params), np.array(errors), np.array(cov), np.array(ll), list(status)


# ---------------------------------------------------------------------------------------------
# the public entry point


def _check_spectra(spectra: PowerSpectrum) -> None:
    if not isinstance(spectra, PowerSpectrum):
        raise ValueError(f"spectra must be a xtml.timing.PowerSpectrum, got {type(spectra).__name__}")
    bad = ~np.all(spectra.power > 0, axis=1)
    if bad.any():
        raise ValueError(
            "the Whittle likelihood needs powers > 0; rows "
            f"{np.flatnonzero(bad)[:10].tolist()} hold powers <= 0"
        )


def _check_start(start: ArrayLike, space: _Space, n: int) -> FloatArray:
    k = space.lo.size
    x = np.asarray(start, dtype=np.float64)
    if x.ndim == 1:
        x = np.broadcast_to(x, (n, x.size))
    if x.shape != (n, k):
        raise ValueError(
            f"start must have shape ({k},) or ({n}, {k}) for {space.names}, got {np.shape(start)}"
        )
    for col, name in enumerate(space.names):
        lo, hi = space.lo[col], space.hi[col]
        bad = ~(x[:, col] >= lo) | ~(x[:, col] <= hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"the fixed value {lo}" if space.fixed[col] else f"its bounds [{lo}, {hi}]"
            raise ValueError(f"start of {name} = {float(x[i, col])!r} (row {i}) is outside {where}")
    return np.array(x)


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return available_cpus()
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be None or an integer >= 1, got {workers!r}")
    return int(workers)


def fit_spectra(
    spectra: PowerSpectrum,
    model: SpectralModel,
    bounds: Bounds,
    *,
    start: ArrayLike | None = None,
    n_starts: int = 4,
    workers: int | None = None,
    rng: np.random.Generator | int | None = 0,
) -> FitResult:
    """Maximum-likelihood fit of every spectrum with the exact Whittle likelihood.

    Maximises :func:`~xtml.reference.likelihood.log_likelihood` over the parameters of ``model``
    within ``bounds``, for each row of ``spectra`` (see the module docstring for the transforms,
    starts, Hessian errors and status).

    Parameters
    ----------
    spectra : PowerSpectrum
        ``n`` spectra on one frequency grid (any normalisation; averaged and rebinned spectra use
        their ``m``).
    model : SpectralModel
        Source PSD plus white noise; ``k = model.n_params`` parameters.
    bounds : JointPrior or mapping name -> (low, high)
        One entry per model parameter: a prior's support (``Fixed`` fixes the parameter; a
        ``LogUniform`` box is searched in log) or a closed interval (``low == high`` fixes it;
        infinite ends allowed).
    start : array_like, shape (k,) or (n, k), optional
        Starting parameters, inside the bounds (points on an edge are moved 0.1% of the box
        inside); default: :func:`start_values`.
    n_starts : int
        Starts per spectrum: the given or data-driven one plus ``n_starts - 1`` random ones.
    workers : int, optional
        Worker processes (default: the CPUs available); results do not depend on it.  Where
        processes are spawned rather than forked (macOS, Windows), call from an
        ``if __name__ == "__main__":`` block, as for any process pool.
    rng : Generator, int or None
        Source of the random starts (drawn here, before the work is spread).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        If the bounds do not match the model's parameters, a start is outside its bounds, or an
        argument is malformed; the message names the parameter or argument.

    Examples
    --------
    >>> from xtml.psd import PSDModel, PowerLaw
    >>> from xtml.timing import periodogram
    >>> model = SpectralModel(PSDModel.from_components({"red": PowerLaw()}), noise="free")
    >>> counts = np.random.default_rng(1).poisson(100.0, (2, 4096))
    >>> ps = periodogram(counts, 0.01, segment_bins=512)
    >>> bounds = {"red.norm": (1e-8, 1.0), "red.index": (-1.0, 3.0), "noise.level": (0.5, 5.0)}
    >>> fit = fit_spectra(ps, model, bounds, workers=1)
    >>> fit.params.shape, bool(abs(fit.params[0, 2] - 2.0) < 0.1)
    ((2, 3), True)
    """
    _check_spectra(spectra)
    if not isinstance(model, SpectralModel):
        raise ValueError(f"model must be a xtml.reference.SpectralModel, got {type(model).__name__}")
    space = _space(model, bounds)
    if isinstance(n_starts, bool) or not isinstance(n_starts, int | np.integer) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1, got {n_starts!r}")
    n_workers = _check_workers(workers)
    n, k = spectra.n, model.n_params
    x0 = None if start is None else _check_start(start, space, n)
    gen = np.random.default_rng(rng)
    extra = gen.uniform(size=(n, int(n_starts) - 1, space.free.size))

    # chunks of rows, several per worker to balance the load; a chunk's results depend only on its rows
    n_chunks = min(n, 8 * n_workers) if n_workers > 1 else 1
    edges = np.linspace(0, n, n_chunks + 1).astype(int)
    processes = n_workers > 1 and n_chunks > 1 and _POOL == "process"
    tasks = [
        (spectra.select(slice(a, b)), model, space, None if x0 is None else x0[a:b], extra[a:b], processes)
        for a, b in pairwise(edges)
        if b > a
    ]
    if n_workers == 1 or len(tasks) == 1:
        with _one_blas_thread():
            parts = [_fit_chunk(*t) for t in tasks]
    elif processes:  # each worker process limits its own BLAS threads
        with ProcessPoolExecutor(max_workers=min(n_workers, len(tasks))) as pool:
            parts = list(pool.map(_fit_chunk, *zip(*tasks, strict=True)))
    else:  # threads share the process-wide BLAS setting: limit it once, here
        with _one_blas_thread(), ThreadPoolExecutor(max_workers=min(n_workers, len(tasks))) as pool:
            parts = list(pool.map(_fit_chunk, *zip(*tasks, strict=True)))
    params = np.concatenate([p[0] for p in parts])
    errors = np.concatenate([p[1] for p in parts])
    cov = np.concatenate([p[2] for p in parts])
    loglike = np.concatenate([p[3] for p in parts])
    status = tuple(s for p in parts for s in p[4])
    n_free = int(space.free.size)
    return FitResult(
        param_names=model.param_names,
        params=params.reshape(n, k),
        errors=errors.reshape(n, k),
        cov=cov.reshape(n, k, k),
        loglike=loglike,
        aic=2.0 * n_free - 2.0 * loglike,
        bic=n_free * np.log(spectra.n_freq) - 2.0 * loglike,
        success=np.array([s == "ok" for s in status], dtype=bool),
        status=status,
    )
