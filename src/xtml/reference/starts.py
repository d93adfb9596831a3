"""Data-driven starting values of a fit: the white-noise level, broadband components and QPOs.

:func:`start_values` guesses each spectrum's parameters from its data (its docstring gives the
rules): the white-noise level from the highest frequencies (``_noise_guess``), broadband
components from the source excess in log-spaced frequency groups (``_log_groups``,
``_broadband_guess``), Lorentzians with a matched filter over the broadband model
(``_lorentzian_candidates``), and, with Lorentzians in the model, a maximum-likelihood fit of the
continuum first (``_guess_row``).  ``_raw_starts`` is the same for every row of a batch, before the
starts are moved inside the bounds; :func:`~xtml.reference.fit.fit_spectra` starts from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.psd import BendingPowerLaw, Constant, Lorentzian, PowerLaw, ZeroCentredLorentzian
from xtml.psd.components import power_law_band_integral
from xtml.reference.likelihood import SpectralModel, log_likelihood
from xtml.reference.optimise import _one_blas_thread, _optimise, _Problem
from xtml.reference.space import Bounds, _check_spectra, _component_slices, _Space, _space
from xtml.timing import PowerSpectrum

__all__ = ["start_values"]

FloatArray = NDArray[np.float64]
# Lorentzian start: half-widths (fraction of the centroid) of the matched-filter windows
_HALF_WIDTHS = np.array([0.015, 0.03, 0.06, 0.12, 0.24, 0.48])
_PEAKS = 2  # candidate windows per half-width, compared by their likelihood
_LORENTZ_FRACTION = 2.0 / np.pi * np.arctan(2.0)  # power of a Lorentzian within +-FWHM of nu0


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
        if isinstance(comp, PowerLaw) and comp.rms_band is not None:  # the band rms of that power law
            rms = math.sqrt(norm * float(power_law_band_integral(index, *comp.rms_band)))
            return [min(max(rms, 1e-3), 1.0), index]
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
    basin of the maximum; :func:`~xtml.reference.fit.fit_spectra` adds random starts.

    Parameters
    ----------
    spectra : PowerSpectrum
        ``n`` spectra on one frequency grid, any normalisation.
    model : SpectralModel
    bounds : JointPrior or mapping name -> (low, high)
        As in :func:`~xtml.reference.fit.fit_spectra`.

    Returns
    -------
    ndarray, shape (n, model.n_params)
    """
    space = _space(model, bounds)
    _check_spectra(spectra)
    with _one_blas_thread():
        return space.inside(_raw_starts(spectra, model, space))
