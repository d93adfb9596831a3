"""QPO detection as a classical, calibrated test: likelihood ratio and largest-outlier statistics.

Two statistics compare a broadband *null* model with an *alternative* that adds a QPO (a
Lorentzian) to it, both through the exact Whittle likelihood of :mod:`xtml.reference.likelihood`:

* the likelihood ratio :math:`\\mathrm{LRT} = 2\\,(\\max_\\theta \\log L_{alt} - \\max_\\phi \\log L_{null})`
  (:func:`lrt_statistic`);
* the largest outlier of the data over the null fit, :math:`T_R = \\max_j 2 m_j P_j / S_j`
  (Vaughan 2010; :func:`max_outlier_statistic`), a :math:`\\chi^2_{2m}` variable per bin.

Neither has a textbook distribution when it matters: the LRT is not :math:`\\chi^2` distributed
because the null (QPO rms = 0) lies on the boundary of the alternative's parameter space and the
QPO centroid is undefined under the null (Protassov et al. 2002); the analytic trial-corrected
p-value of :math:`T_R` (:func:`single_bin_significance`) holds only for a known null spectrum
``S``, not a fitted one.  :func:`calibrate` therefore computes posterior-predictive p-values
(Vaughan 2010; Protassov et al. 2002): null parameters drawn from the null fit (or an MCMC
sample), null spectra drawn from the exact sampling distribution of averaged powers,
:math:`P_j \\sim \\mathrm{Gamma}(m_j,\\ S_j / m_j)` (:func:`sample_spectra`), both statistics
recomputed on each simulated spectrum, and

.. math::

    p = \\frac{1 + \\#\\{t_{sim} \\ge t_{obs}\\}}{n_{sim} + 1}.

For ROC curves on a whole test set, :func:`qpo_scores` returns the uncalibrated LRT: a monotone
score whose ranking a shared null calibration would not change.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaincc, gammainccinv

from xtml.psd import Lorentzian
from xtml.reference.fit import Bounds, FitResult, bound_pairs, fit_spectra, start_values
from xtml.reference.likelihood import SpectralModel, log_likelihood
from xtml.timing import PowerSpectrum

__all__ = [
    "QPOFitWarning",
    "QPOTestResult",
    "calibrate",
    "lrt_statistic",
    "max_outlier_statistic",
    "qpo_scores",
    "sample_spectra",
    "single_bin_significance",
]

FloatArray = NDArray[np.float64]

#: LRT values in ``[-LRT_TOLERANCE, 0)`` are optimiser tolerance and are clipped to 0 silently; more
#: negative values (the alternative fit missed the null-equivalent point even after a refit from
#: it) are clipped too, with a :class:`QPOFitWarning`.
LRT_TOLERANCE = 1e-3


class QPOFitWarning(RuntimeWarning):
    """A fit of the QPO test did not behave (e.g. the alternative fit ended below the null's).

    Attributes
    ----------
    rows : ndarray of int
        The spectra concerned.
    values : ndarray of float
        The offending values (e.g. the raw negative LRTs).
    """

    def __init__(self, message: str, rows: NDArray[np.intp], values: FloatArray) -> None:
        super().__init__(message)
        self.rows = rows
        self.values = values


# ----------------------------------------------------------------------------- small helpers


def _bounds_arrays(bounds: Bounds, names: tuple[str, ...], what: str) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bounds, each shape (k,), of the parameters ``names`` (in that order)."""
    pairs = bound_pairs(bounds, names, what)
    lo = np.array([p[0] for p in pairs], dtype=np.float64)
    hi = np.array([p[1] for p in pairs], dtype=np.float64)
    bad = ~(lo <= hi)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}[{names[k]!r}] needs low <= high, got ({lo[k]}, {hi[k]})")
    return lo, hi


def _shared_columns(null: SpectralModel, alt: SpectralModel) -> NDArray[np.intp]:
    """Columns of the alternative's parameter vector holding the null's parameters, in null order."""
    if null.noise != alt.noise:
        raise ValueError(f"null and alt must have the same noise kind, got {null.noise!r} and {alt.noise!r}")
    missing = [n for n in null.param_names if n not in alt.param_names]
    if missing:
        raise ValueError(
            f"the alternative model must contain every null parameter (nested models); missing in alt: "
            f"{missing}; alt parameters: {', '.join(alt.param_names)}"
        )
    return np.array([alt.param_names.index(n) for n in null.param_names], dtype=np.intp)


def _midpoint(lo: float, hi: float) -> float:
    """Middle of a bound: geometric for positive ranges spanning a decade or more, else arithmetic."""
    if lo > 0 and hi / lo >= 10:
        return float(np.sqrt(lo * hi))
    return 0.5 * (lo + hi)


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


def _alt_start(
    spectra: PowerSpectrum,
    null: SpectralModel,
    alt: SpectralModel,
    null_params: FloatArray,
    alt_lo: FloatArray,
    alt_hi: FloatArray,
    shared: NDArray[np.intp],
    f_range: tuple[float, float] | None,
    *,
    null_equivalent: bool,
) -> FloatArray:
    """Starting points (n, k_alt) for the alternative: the null fit plus a guess of the QPO.

    Shared parameters take the null best fit (clipped into the alternative's bounds).  Each added
    Lorentzian is centred on the largest outlier of the null fit, in units of its noise
    ``sqrt(m) (P / S - 1)``, inside its ``nu0`` bounds (and ``f_range``; several Lorentzians take
    the next outliers), with a width at the middle of its bounds and an rms matching the excess
    power there; other added parameters start at the middle of their bounds.  With
    ``null_equivalent`` every added amplitude (``rms``, ``norm``, ``level``) sits at its lower
    bound instead: the point where the alternative equals the null.
    """
    n = spectra.n
    start = np.empty((n, alt.n_params))
    start[:] = [_midpoint(lo, hi) for lo, hi in zip(alt_lo, alt_hi, strict=True)]
    start[:, shared] = np.clip(null_params, alt_lo[shared], alt_hi[shared])
    s_null = null.expected(null_params, spectra, check=False)
    ratio = np.sqrt(spectra.m) * (spectra.power / s_null - 1.0)  # z-score of each bin, ranks the outliers
    scale = alt.source_scale(spectra)
    null_components = {name for name, _ in null.psd.components}
    taken = np.zeros(ratio.shape, dtype=bool)
    for name, comp in alt.psd.components:
        if name in null_components:
            continue
        cols = {p: alt.param_names.index(f"{name}.{p}") for p in comp.param_names}
        for amp in ("rms", "norm", "level"):
            if amp in cols and null_equivalent:
                start[:, cols[amp]] = alt_lo[cols[amp]]
        if not isinstance(comp, Lorentzian) or null_equivalent:
            continue
        c_nu = cols["nu0"]
        mask = (
            _range_mask(spectra.freq, f_range)
            & (spectra.freq >= alt_lo[c_nu])
            & (spectra.freq <= alt_hi[c_nu])
        )
        if not mask.any():
            continue
        score = np.where(mask & ~taken, ratio, -np.inf)
        j = np.argmax(score, axis=1)
        rows = np.arange(n)
        taken[rows, j] = True
        nu0 = spectra.freq[j]
        start[:, c_nu] = nu0
        width = start[:, cols[comp.width]]
        delta = nu0 / (2.0 * width) if comp.width == "q" else 0.5 * width
        excess = np.maximum(spectra.power[rows, j] - s_null[rows, j], 0.0) / scale
        rms = np.sqrt(excess * np.maximum(np.pi * delta, spectra.df[j]))
        c_rms = cols["rms"]
        floor = alt_lo[c_rms] + 0.01 * (alt_hi[c_rms] - alt_lo[c_rms])
        start[:, c_rms] = np.clip(rms, floor, alt_hi[c_rms])
    return np.clip(start, alt_lo, alt_hi)


# ----------------------------------------------------------------------------- statistics


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
    bins are no longer independent, so the value is approximate: :func:`calibrate` gives the
    simulation-calibrated p-value.

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


def lrt_statistic(
    spectra: PowerSpectrum,
    null: SpectralModel,
    alt: SpectralModel,
    null_bounds: Bounds,
    alt_bounds: Bounds,
    *,
    null_start: ArrayLike | None = None,
    f_range: tuple[float, float] | None = None,
    n_starts: int = 1,
    workers: int | None = None,
    rng: np.random.Generator | int | None = 0,
) -> tuple[FloatArray, FitResult, FitResult]:
    """Likelihood-ratio statistic of a QPO for each spectrum, with both fits.

    .. math::

        \\mathrm{LRT} = 2 \\big(\\max_{\\theta} \\log L(\\theta; \\text{alt})
                               - \\max_{\\phi} \\log L(\\phi; \\text{null})\\big) \\ge 0,

    with the exact Whittle likelihood.  The null is fitted first (from ``null_start`` or
    :func:`~xtml.reference.fit.fit_spectra`'s data-driven start).  The alternative is then fitted
    from two informed starts, both with the null best fit for the shared parameters: (a) each added
    Lorentzian on the largest outlier of the null fit (``_alt_start``), (b) the matched-filter QPO
    start of :func:`~xtml.reference.fit.start_values`; the better maximum is kept.  Where the
    alternative still ends below the null, it is refitted from the null-equivalent point (added
    amplitudes at their lower bounds), which is itself a point of the alternative.  Negative values
    left over are clipped to 0: silently when above ``-LRT_TOLERANCE`` (optimiser tolerance), with a
    :class:`QPOFitWarning` naming the rows otherwise.  The raw values are
    ``2 * (alt_fit.loglike - null_fit.loglike)``.

    The alternative likelihood of a spectrum without a QPO is multimodal (a narrow Lorentzian can
    sit on any noise spike), so more starts find slightly larger maxima.  That does not bias a
    calibrated test as long as the data and the simulations go through the same procedure, which
    :func:`calibrate` ensures; it only costs a little power.

    Parameters
    ----------
    spectra : PowerSpectrum
        ``n`` spectra.
    null, alt : SpectralModel
        Nested models: every null parameter name is an alternative parameter name (e.g. broadband
        vs broadband + ``Lorentzian``), with the same noise kind.
    null_bounds, alt_bounds : JointPrior or mapping name -> (low, high)
        Fit bounds of each model (as :func:`~xtml.reference.fit.fit_spectra`).
    null_start : array_like, shape (n, k_null) or (k_null,), optional
        Starting point of the null fits (e.g. the parameters the spectra were simulated from).
    f_range : (float, float), optional
        Frequencies (Hz) where start (a) looks for the outlier (default: the ``nu0`` bounds).
    n_starts : int
        ``fit_spectra`` starts per fit: the null gets ``n_starts``, each of the alternative's two
        informed starts gets ``n_starts`` (the informed one plus ``n_starts - 1`` random ones).
    workers : int, optional
        Worker processes of the fits (default: the CPUs available).
    rng : Generator or int
        Seeds the fits' random starts.

    Returns
    -------
    lrt : ndarray, shape (n,)
    null_fit, alt_fit : FitResult

    Examples
    --------
    >>> from xtml.psd import PSDModel, ZeroCentredLorentzian
    >>> null = SpectralModel(PSDModel.from_components({"broad": ZeroCentredLorentzian()}))
    >>> alt = SpectralModel(PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()}))
    >>> nb = {"broad.nu_max": (0.1, 20.0), "broad.rms": (0.02, 0.6), "noise.level": (1.0, 3.0)}
    >>> ab = {**nb, "qpo.nu0": (1.0, 30.0), "qpo.q": (2.0, 20.0), "qpo.rms": (1e-3, 0.5)}
    >>> ps = PowerSpectrum(freq=np.arange(1, 65) / 2, power=np.full((1, 64), 2.0), m=[16] * 64, df=[0.5] * 64,
    ...                    norm="leahy", mean_rate=[200.0], segment_length=2.0, dt=1 / 128, n_segments=16)
    >>> qpo = sample_spectra(alt, [[1.0, 0.2, 8.0, 8.0, 0.15, 2.0]], ps, rng=1)
    >>> lrt, null_fit, alt_fit = lrt_statistic(qpo, null, alt, nb, ab, workers=1)
    >>> bool(lrt[0] > 20), bool(abs(alt_fit.params[0, 2] - 8.0) < 1.0)
    (True, True)
    """
    shared = _shared_columns(null, alt)
    null_lo, null_hi = _bounds_arrays(null_bounds, null.param_names, "null_bounds")
    alt_lo, alt_hi = _bounds_arrays(alt_bounds, alt.param_names, "alt_bounds")
    gen_null, gen_alt, gen_refit = np.random.default_rng(rng).spawn(3)
    if null_start is not None:
        null_start = np.clip(np.asarray(null_start, dtype=np.float64), null_lo, null_hi)
    null_fit = fit_spectra(
        spectra, null, null_bounds, start=null_start, n_starts=n_starts, workers=workers, rng=gen_null
    )
    n = spectra.n
    outlier = _alt_start(
        spectra, null, alt, null_fit.params, alt_lo, alt_hi, shared, f_range, null_equivalent=False
    )
    matched = start_values(spectra, alt, alt_bounds)
    matched[:, shared] = np.clip(null_fit.params, alt_lo[shared], alt_hi[shared])
    # one batched call for both starts: the rows are spread over the workers together
    both = fit_spectra(
        spectra.select(np.tile(np.arange(n), 2)),
        alt,
        alt_bounds,
        start=np.concatenate([outlier, matched]),
        n_starts=n_starts,
        workers=workers,
        rng=gen_alt,
    )
    first, second = np.arange(n), np.arange(n, 2 * n)
    ok = np.array(["optimizer failed" not in s for s in both.status])
    pick_second = (ok[second] & ~ok[first]) | (
        (ok[second] == ok[first]) & (both.loglike[second] > both.loglike[first])
    )
    alt_fit = _take_rows(both, np.where(pick_second, second, first))
    raw = 2.0 * (alt_fit.loglike - null_fit.loglike)
    low = np.flatnonzero(~(raw >= -LRT_TOLERANCE))
    if low.size:
        sub = spectra.select(low)
        eq = _alt_start(
            sub, null, alt, null_fit.params[low], alt_lo, alt_hi, shared, f_range, null_equivalent=True
        )
        refit = fit_spectra(sub, alt, alt_bounds, start=eq, n_starts=1, workers=workers, rng=gen_refit)
        better = refit.loglike > alt_fit.loglike[low]
        alt_fit = _merge_rows(alt_fit, refit, low[better], np.flatnonzero(better))
        # the null-equivalent point itself is a point of the alternative: its likelihood bounds the maximum
        ll_eq = log_likelihood(eq, sub, alt)
        raw[low] = 2.0 * (np.maximum(alt_fit.loglike[low], ll_eq) - null_fit.loglike[low])
    still = np.flatnonzero(~(raw >= -LRT_TOLERANCE))
    if still.size:
        warnings.warn(
            QPOFitWarning(
                f"alternative fit below the null fit for {still.size} of {n} spectra (rows "
                f"{still[:10].tolist()}, LRT {raw[still][:10].round(4).tolist()}); clipped to 0",
                still,
                raw[still],
            ),
            stacklevel=2,
        )
    return np.maximum(np.nan_to_num(raw, nan=0.0), 0.0), null_fit, alt_fit


_ROW_FIELDS = ("params", "errors", "cov", "loglike", "aic", "bic", "success")


def _take_rows(fit: FitResult, rows: NDArray[np.intp]) -> FitResult:
    """The fits of ``rows``, in that order."""
    changes = {f: np.asarray(getattr(fit, f))[rows] for f in _ROW_FIELDS}
    return replace(fit, **changes, status=tuple(fit.status[r] for r in rows))


def _merge_rows(
    fit: FitResult, other: FitResult, rows: NDArray[np.intp], from_rows: NDArray[np.intp]
) -> FitResult:
    """``fit`` with ``rows`` replaced by ``other``'s ``from_rows``."""
    if rows.size == 0:
        return fit
    changes = {}
    for field in _ROW_FIELDS:
        arr = np.array(getattr(fit, field), copy=True)
        arr[rows] = np.asarray(getattr(other, field))[from_rows]
        changes[field] = arr
    status = list(fit.status)
    for r, f in zip(rows, from_rows, strict=True):
        status[r] = other.status[f]
    return replace(fit, **changes, status=tuple(status))


def qpo_scores(
    spectra: PowerSpectrum,
    null: SpectralModel,
    alt: SpectralModel,
    null_bounds: Bounds,
    alt_bounds: Bounds,
    *,
    f_range: tuple[float, float] | None = None,
    n_starts: int = 1,
    workers: int | None = None,
    rng: np.random.Generator | int | None = 0,
) -> FloatArray:
    """Uncalibrated QPO score of each spectrum: the LRT of :func:`lrt_statistic`, shape (n,).

    A monotone measure of evidence for ROC curves over a test set: where all spectra share one null
    distribution, calibration is a monotone map of the LRT and leaves the ROC curve unchanged.
    The arguments are those of :func:`lrt_statistic`.
    """
    return lrt_statistic(
        spectra,
        null,
        alt,
        null_bounds,
        alt_bounds,
        f_range=f_range,
        n_starts=n_starts,
        workers=workers,
        rng=rng,
    )[0]


# ----------------------------------------------------------------------------- calibration


@dataclass(frozen=True, eq=False)
class QPOTestResult:
    """A calibrated QPO test of one spectrum (:func:`calibrate`).

    Attributes
    ----------
    lrt : float
        Observed likelihood-ratio statistic.
    t_r : float
        Observed largest outlier (:func:`max_outlier_statistic`) over the null fit.
    t_r_freq : float
        Frequency of that bin, Hz.
    p_lrt, p_tr : float
        Posterior-predictive p-values :math:`(1 + \\#\\{sim \\ge obs\\}) / (n_{sim} + 1)`; never below
        :math:`1 / (n_{sim} + 1)`.
    p_single_bin : float
        Analytic trial-corrected p-value of ``t_r`` (:func:`single_bin_significance` with the
        null fit taken as the truth; approximate).
    n_sim : int
        Simulated null spectra.
    param_names : tuple of str
        The null's parameters.
    null_params : ndarray, shape (k_null,)
        Null best fit of the observed spectrum.
    alt_params : ndarray, shape (k_alt,)
        Alternative best fit (the QPO parameters, if one is there).
    score : float
        The LRT itself (not ``-log10 p``, which saturates at ``log10(n_sim + 1)``): monotone in the
        evidence and identical to :func:`qpo_scores`, so calibrated and uncalibrated ROC curves
        agree.
    lrt_sim, t_r_sim : ndarray, shape (n_sim,)
        The statistics of the simulated null spectra.
    n_failed : int
        Simulations where the optimiser of a null or alternative fit failed (kept in the calibration;
        "at bound", the rule for the alternative's QPO without a QPO, is not a failure).
    status : str
        ``"ok"`` or notes joined by ``"; "``: a failed fit of the observed spectrum, a null
        covariance that was not usable, draws outside the model's domain, simulations whose
        optimiser failed or whose LRT had to be clipped (a :class:`QPOFitWarning` of the observed
        spectrum itself is raised, not noted).
    """

    lrt: float
    t_r: float
    t_r_freq: float
    p_lrt: float
    p_tr: float
    p_single_bin: float
    n_sim: int
    param_names: tuple[str, ...]
    null_params: FloatArray
    alt_params: FloatArray
    score: float
    lrt_sim: FloatArray
    t_r_sim: FloatArray
    n_failed: int
    status: str


def _draw_null_params(
    fit: FitResult,
    lo: FloatArray,
    hi: FloatArray,
    n_sim: int,
    samples: ArrayLike | None,
    gen: np.random.Generator,
    notes: list[str],
) -> FloatArray:
    """``n_sim`` null parameter vectors: from ``samples`` or the fit's Gaussian, clipped into bounds."""
    k = lo.size
    if samples is not None:
        chain = np.asarray(samples, dtype=np.float64)
        if chain.ndim != 2 or chain.shape[1] != k or chain.shape[0] < 1:
            raise ValueError(f"samples must have shape (n_samples, {k}), got {chain.shape}")
        return chain[gen.integers(0, chain.shape[0], n_sim)]
    mean = fit.params[0]
    cov = np.asarray(fit.cov[0], dtype=np.float64)
    if not np.all(np.isfinite(cov)):
        err = np.nan_to_num(np.asarray(fit.errors[0], dtype=np.float64), nan=0.0, posinf=0.0)
        cov = np.diag(err**2)
        notes.append(
            "null covariance not finite: independent errors used"
            if err.any()
            else "null covariance not finite: parametric bootstrap at the best fit"
        )
    cov = 0.5 * (cov + cov.T)
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))  # robust to a slightly non-positive Hessian inverse
    draws = mean + gen.standard_normal((n_sim, k)) @ root.T
    return np.clip(draws, lo, hi)


def calibrate(
    spectrum: PowerSpectrum,
    null: SpectralModel,
    alt: SpectralModel,
    null_bounds: Bounds,
    alt_bounds: Bounds,
    *,
    n_sim: int = 1000,
    rng: np.random.Generator | int | None,
    samples: ArrayLike | None = None,
    f_range: tuple[float, float] | None = None,
    n_starts: int = 1,
    workers: int | None = None,
) -> QPOTestResult:
    """Posterior-predictive calibration of the LRT and :math:`T_R` for one observed spectrum.

    1. Fit the null and the alternative to ``spectrum`` (:func:`lrt_statistic`) and compute
       :math:`T_R` over the null fit (:func:`max_outlier_statistic`).
    2. Draw ``n_sim`` null parameter vectors: from ``samples`` (an MCMC sample of the null
       posterior) if given, else from the Gaussian approximation of the null fit
       (``params``, ``cov``), clipped into ``null_bounds``.
    3. Simulate one null spectrum per vector from the exact sampling distribution of averaged powers,
       :math:`P_j \\sim \\mathrm{Gamma}(m_j, S_j / m_j)` (:func:`sample_spectra`).
    4. Refit null and alternative to each simulated spectrum and recompute both statistics (the
       same procedure as on the data, including the refitted ``S`` in :math:`T_R`).
    5. :math:`p = (1 + \\#\\{t_{sim} \\ge t_{obs}\\}) / (n_{sim} + 1)` for each statistic.

    This is the calibration of Protassov et al. (2002) and Vaughan (2010): the LRT of a QPO has no
    :math:`\\chi^2` distribution (the null, rms = 0, lies on the boundary), and the analytic
    :math:`T_R` p-value assumes a known ``S``.

    Parameters
    ----------
    spectrum : PowerSpectrum
        One observed spectrum (``n = 1``).
    null, alt, null_bounds, alt_bounds
        As in :func:`lrt_statistic`.
    n_sim : int
        Simulated null spectra (>= 1); the smallest p-value is ``1 / (n_sim + 1)``.
    rng : Generator or int
        Random source of the draws, the simulated powers and the fits' starts.
    samples : array_like, shape (n_samples, k_null), optional
        Posterior sample of the null parameters (e.g. from emcee); rows are drawn with replacement.
    f_range : (float, float), optional
        Search range (Hz) of :math:`T_R` and of the QPO start; default: every bin.
    n_starts : int
        Starts per fit (see :func:`lrt_statistic`); the same for the data and the simulations. The
        default of 1 (two informed starts for the alternative) keeps 1,000 simulations of a
        ~300-bin spectrum under a minute on two cores.
    workers : int, optional
        Worker processes of the fits (default: the CPUs available).

    Returns
    -------
    QPOTestResult
    """
    if spectrum.n != 1:
        raise ValueError(f"calibrate takes one spectrum (n = 1), got n = {spectrum.n}; use select(i)")
    if isinstance(n_sim, bool) or int(n_sim) != n_sim or n_sim < 1:
        raise ValueError(f"n_sim must be an integer >= 1, got {n_sim!r}")
    n_sim = int(n_sim)
    gen_obs, gen_draw, gen_pow, gen_fit = np.random.default_rng(rng).spawn(4)
    null_lo, null_hi = _bounds_arrays(null_bounds, null.param_names, "null_bounds")
    notes: list[str] = []

    lrt_obs, null_fit, alt_fit = lrt_statistic(
        spectrum,
        null,
        alt,
        null_bounds,
        alt_bounds,
        f_range=f_range,
        n_starts=n_starts,
        workers=workers,
        rng=gen_obs,
    )
    if not null_fit.success[0]:
        notes.append(f"null fit of the spectrum: {null_fit.status[0]}")
    if "optimizer failed" in alt_fit.status[0]:  # "at bound" is the rule without a QPO, not a failure
        notes.append(f"alternative fit of the spectrum: {alt_fit.status[0]}")
    mask = _range_mask(spectrum.freq, f_range)
    s_obs = null.expected(null_fit.params, spectrum, check=False)
    t_obs, j_obs = max_outlier_statistic(spectrum, s_obs, f_range=f_range)
    m_ref = float(spectrum.m[mask].min())
    p_single = float(single_bin_significance(t_obs[0], m_ref, int(mask.sum())))

    theta = _draw_null_params(null_fit, null_lo, null_hi, n_sim, samples, gen_draw, notes)
    with np.errstate(all="ignore"):
        s_sim = null.expected(theta, spectrum, check=False)
    bad = ~np.all(np.isfinite(s_sim) & (s_sim > 0), axis=1)
    if bad.any():  # a draw outside the model's domain: simulate at the best fit instead
        theta[bad] = null_fit.params[0]
        notes.append(f"{int(bad.sum())} parameter draws outside the model's domain replaced by the best fit")
    sims = sample_spectra(null, theta, spectrum, gen_pow)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QPOFitWarning)
        lrt_sim, null_sim, alt_sim = lrt_statistic(
            sims,
            null,
            alt,
            null_bounds,
            alt_bounds,
            null_start=theta,
            f_range=f_range,
            n_starts=n_starts,
            workers=workers,
            rng=gen_fit,
        )
    for w in caught:
        if isinstance(w.message, QPOFitWarning):
            notes.append(f"simulations: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    t_sim, _ = max_outlier_statistic(sims, null.expected(null_sim.params, sims, check=False), f_range=f_range)
    failed = [
        ("optimizer failed" in a) or ("optimizer failed" in b)
        for a, b in zip(null_sim.status, alt_sim.status, strict=True)
    ]
    n_failed = int(np.count_nonzero(failed))
    if n_failed:
        notes.append(f"{n_failed} of {n_sim} simulations with a failed optimisation (kept)")

    p_lrt = (1 + np.count_nonzero(lrt_sim >= lrt_obs[0])) / (n_sim + 1)
    p_tr = (1 + np.count_nonzero(t_sim >= t_obs[0])) / (n_sim + 1)
    return QPOTestResult(
        lrt=float(lrt_obs[0]),
        t_r=float(t_obs[0]),
        t_r_freq=float(spectrum.freq[j_obs[0]]),
        p_lrt=float(p_lrt),
        p_tr=float(p_tr),
        p_single_bin=p_single,
        n_sim=n_sim,
        param_names=null.param_names,
        null_params=null_fit.params[0].copy(),
        alt_params=alt_fit.params[0].copy(),
        score=float(lrt_obs[0]),
        lrt_sim=lrt_sim,
        t_r_sim=t_sim,
        n_failed=n_failed,
        status="; ".join(notes) if notes else "ok",
    )
