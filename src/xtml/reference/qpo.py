"""QPO detection as a classical, calibrated test: likelihood ratio and largest-outlier statistics.

Two statistics compare a broadband *null* model with an *alternative* that adds a QPO (a
Lorentzian) to it, both through the exact Whittle likelihood of :mod:`xtml.reference.likelihood`:

* the likelihood ratio :math:`\\mathrm{LRT} = 2\\,(\\max_\\theta \\log L_{alt} - \\max_\\phi \\log L_{null})`
  (:func:`~xtml.reference.qpo_lrt.lrt_statistic`);
* the largest outlier of the data over the null fit, :math:`T_R = \\max_j 2 m_j P_j / S_j`
  (Vaughan 2010; :func:`~xtml.reference.qpo_stats.max_outlier_statistic`), a :math:`\\chi^2_{2m}`
  variable per bin.

Neither has a textbook distribution when it matters: the LRT is not :math:`\\chi^2` distributed
because the null (QPO rms = 0) lies on the boundary of the alternative's parameter space and the
QPO centroid is undefined under the null (Protassov et al. 2002); the analytic trial-corrected
p-value of :math:`T_R` (:func:`~xtml.reference.qpo_stats.single_bin_significance`) holds only for a
known null spectrum ``S``, not a fitted one.  :func:`calibrate` therefore computes
posterior-predictive p-values (Vaughan 2010; Protassov et al. 2002): null parameters drawn from the
null fit (or an MCMC sample), null spectra drawn from the exact sampling distribution of averaged
powers, :math:`P_j \\sim \\mathrm{Gamma}(m_j,\\ S_j / m_j)`
(:func:`~xtml.reference.qpo_stats.sample_spectra`), both statistics recomputed on each simulated
spectrum, and

.. math::

    p = \\frac{1 + \\#\\{t_{sim} \\ge t_{obs}\\}}{n_{sim} + 1}.

For ROC curves on a whole test set, :func:`qpo_scores` returns the uncalibrated LRT: a monotone
score whose ranking a shared null calibration would not change.

This module holds the calibrated test (:func:`calibrate`, :class:`QPOTestResult`) and
:func:`qpo_scores`; the statistics are in :mod:`xtml.reference.qpo_stats` and
:mod:`xtml.reference.qpo_lrt`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.reference.fit import FitResult
from xtml.reference.likelihood import SpectralModel
from xtml.reference.qpo_lrt import QPOFitWarning, _bounds_arrays, lrt_statistic
from xtml.reference.qpo_stats import (
    _range_mask,
    max_outlier_statistic,
    sample_spectra,
    single_bin_significance,
)
from xtml.reference.space import Bounds
from xtml.timing import PowerSpectrum

__all__ = ["QPOTestResult", "calibrate", "qpo_scores"]

FloatArray = NDArray[np.float64]


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
    The arguments are those of :func:`~xtml.reference.qpo_lrt.lrt_statistic`.
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
        Observed largest outlier (:func:`~xtml.reference.qpo_stats.max_outlier_statistic`) over the null fit.
    t_r_freq : float
        Frequency of that bin, Hz.
    p_lrt, p_tr : float
        Posterior-predictive p-values :math:`(1 + \\#\\{sim \\ge obs\\}) / (n_{sim} + 1)`; never below
        :math:`1 / (n_{sim} + 1)`.
    p_single_bin : float
        Analytic trial-corrected p-value of ``t_r``
        (:func:`~xtml.reference.qpo_stats.single_bin_significance` with the null fit taken as the
        truth; approximate).
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
        optimiser failed or whose LRT had to be clipped (a
        :class:`~xtml.reference.qpo_lrt.QPOFitWarning` of the observed spectrum itself is raised,
        not noted).
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

    1. Fit the null and the alternative to ``spectrum``
       (:func:`~xtml.reference.qpo_lrt.lrt_statistic`) and compute :math:`T_R` over the null fit
       (:func:`~xtml.reference.qpo_stats.max_outlier_statistic`).
    2. Draw ``n_sim`` null parameter vectors: from ``samples`` (an MCMC sample of the null
       posterior) if given, else from the Gaussian approximation of the null fit
       (``params``, ``cov``), clipped into ``null_bounds``.
    3. Simulate one null spectrum per vector from the exact sampling distribution of averaged powers,
       :math:`P_j \\sim \\mathrm{Gamma}(m_j, S_j / m_j)`
       (:func:`~xtml.reference.qpo_stats.sample_spectra`).
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
        As in :func:`~xtml.reference.qpo_lrt.lrt_statistic`.
    n_sim : int
        Simulated null spectra (>= 1); the smallest p-value is ``1 / (n_sim + 1)``.
    rng : Generator or int
        Random source of the draws, the simulated powers and the fits' starts.
    samples : array_like, shape (n_samples, k_null), optional
        Posterior sample of the null parameters (e.g. from emcee); rows are drawn with replacement.
    f_range : (float, float), optional
        Search range (Hz) of :math:`T_R` and of the QPO start; default: every bin.
    n_starts : int
        Starts per fit (see :func:`~xtml.reference.qpo_lrt.lrt_statistic`); the same for the data
        and the simulations. The default of 1 (two informed starts for the alternative) keeps 1,000
        simulations of a ~300-bin spectrum under a minute on two cores.
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
