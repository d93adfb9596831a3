"""The likelihood-ratio statistic of a QPO: null and alternative fits of each spectrum.

:func:`lrt_statistic` fits a broadband *null* model and an *alternative* that adds a QPO (a
Lorentzian) to it, both with :func:`~xtml.reference.fit.fit_spectra`, and returns
:math:`\\mathrm{LRT} = 2\\,(\\max_\\theta \\log L_{alt} - \\max_\\phi \\log L_{null})` with both fits.
The alternative starts from the null fit plus a guess of the QPO (``_alt_start``); an alternative
that ends below the null is refitted, and what is left is clipped to 0 (with a
:class:`QPOFitWarning` beyond ``LRT_TOLERANCE``).  The LRT has no textbook distribution:
:func:`~xtml.reference.qpo.calibrate` calibrates it.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.psd import Lorentzian
from xtml.reference.fit import FitResult, fit_spectra
from xtml.reference.likelihood import SpectralModel, log_likelihood
from xtml.reference.qpo_stats import _range_mask
from xtml.reference.space import Bounds, bound_pairs
from xtml.reference.starts import start_values
from xtml.timing import PowerSpectrum

__all__ = ["QPOFitWarning", "lrt_statistic"]

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
    start of :func:`~xtml.reference.starts.start_values`; the better maximum is kept.  Where the
    alternative still ends below the null, it is refitted from the null-equivalent point (added
    amplitudes at their lower bounds), which is itself a point of the alternative.  Negative values
    left over are clipped to 0: silently when above ``-LRT_TOLERANCE`` (optimiser tolerance), with a
    :class:`QPOFitWarning` naming the rows otherwise.  The raw values are
    ``2 * (alt_fit.loglike - null_fit.loglike)``.

    The alternative likelihood of a spectrum without a QPO is multimodal (a narrow Lorentzian can
    sit on any noise spike), so more starts find slightly larger maxima.  That does not bias a
    calibrated test as long as the data and the simulations go through the same procedure, which
    :func:`~xtml.reference.qpo.calibrate` ensures; it only costs a little power.

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
    >>> from xtml.reference.qpo_stats import sample_spectra
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
