"""Calibration of a posterior over many simulated observations: SBC, expected coverage, TARP.

A posterior estimator is tested on ``n_obs`` held-out simulations :math:`(\\theta^*_i, x_i)` drawn from
the prior predictive.  For each one it returns ``n_samples`` independent draws
:math:`\\theta_{ij} \\sim q(\\theta \\mid x_i)`; the inputs here are

* ``samples`` of shape ``(n_obs, n_samples, n_params)`` and ``truths`` of shape ``(n_obs, n_params)``;
* optionally the posterior log-density at the samples ``(n_obs, n_samples)`` and at the truth ``(n_obs,)``.

If :math:`q` is the true posterior, the position of :math:`\\theta^*_i` within its own posterior draws is
uniform over observations (Cook et al. 2006; Talts et al. 2018).  All three diagnostics test that:

* :func:`sbc_ranks` / :func:`sbc_uniformity`: simulation-based calibration, the rank of each truth
  coordinate among the samples, tested against the discrete uniform;
* :func:`expected_coverage`: how often the central (equal-tailed) marginal credible interval, and the
  joint highest-posterior-density region, at credibility :math:`\\alpha` contain the truth (should be
  :math:`\\alpha`);
* :func:`tarp`: tests of accuracy with random points (Lemos et al. 2023), a joint coverage test that needs
  no densities.

:func:`check_calibration` runs SBC and coverage, applies thresholds and returns a
:class:`CalibrationReport` with ``passed`` and the ``reasons``; a posterior that fails must not be used
silently (:meth:`CalibrationReport.raise_if_failed`).

**What each test can miss.**  Uniform ranks are necessary, not sufficient: a posterior equal to the prior
passes SBC and coverage for every observation (it is calibrated, just uninformative), so calibration is
judged together with accuracy.  TARP with references drawn over the whole parameter box sees, when the
posterior is narrow compared with the box, the rank of the truth along a random direction *with a random
sign*: a posterior shifted the same way for every observation is seen only at second order in the shift,
while SBC sees it at first order (see :func:`tarp`; the test suite has the example).  Use TARP as a
joint complement to SBC, never instead of it.

The draws must be independent: thin MCMC chains to their autocorrelation time first, or the ranks are
not uniform even for an exact posterior.

References
----------
Cook, Gelman & Rubin 2006, J. Comput. Graph. Stat. 15, 675.
Talts, Betancourt, Simpson, Vehtari & Gelman 2018, arXiv:1804.06788.
Hermans, Delaunoy, Rozet, Wehenkel, Begy & Louppe 2022, TMLR, arXiv:2110.06581.
Lemos, Coogan, Hezaveh & Perreault-Levasseur 2023, ICML, arXiv:2302.03026.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "COVERAGE_LEVELS",
    "DEFAULT_CHECK_LEVELS",
    "CalibrationError",
    "CalibrationReport",
    "CoverageResult",
    "SBCResult",
    "TARPResult",
    "calibration_report",
    "check_calibration",
    "expected_coverage",
    "sbc_ranks",
    "sbc_uniformity",
    "tarp",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
RNGLike = np.random.Generator | int | None

#: Credibility levels at which :func:`check_calibration` checks coverage (issue 6).
DEFAULT_CHECK_LEVELS: tuple[float, ...] = (0.5, 0.68, 0.95)
#: Default levels of :func:`expected_coverage`: 0.05, 0.10, ..., 0.95 (read-only).
COVERAGE_LEVELS: FloatArray = np.linspace(0.05, 0.95, 19)
COVERAGE_LEVELS.flags.writeable = False


# ----------------------------------------------------------------------------- input checks


def _check_samples(samples: ArrayLike, truths: ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truths, dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(f"samples must have shape (n_obs, n_samples, n_params), got shape {s.shape}")
    if t.shape != (s.shape[0], s.shape[2]):
        raise ValueError(
            f"truths must have shape (n_obs, n_params) = {(s.shape[0], s.shape[2])} to match samples "
            f"{s.shape}, got {t.shape}"
        )
    if s.shape[0] < 1 or s.shape[1] < 1 or s.shape[2] < 1:
        raise ValueError(f"samples must have at least one observation, sample and parameter, got {s.shape}")
    if not (np.isfinite(s).all() and np.isfinite(t).all()):
        raise ValueError("samples and truths must be finite (a NaN or inf was found)")
    return s, t


def _position(n_below: IntArray, n_tied: IntArray, n_samples: int) -> FloatArray:
    """Mid-rank position in (0, 1): ``(n_below + n_tied / 2 + 1/2) / (n_samples + 1)``.

    For an exact posterior and no ties, ``n_below`` is uniform on ``0..L`` and this position is the
    centre of one of ``L + 1`` equal cells of (0, 1), so ``P(position <= a) = a`` up to ``1 / (L + 1)``.
    """
    return (n_below + 0.5 * n_tied + 0.5) / (n_samples + 1)


def _check_levels(levels: ArrayLike, name: str = "levels") -> FloatArray:
    lv = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if lv.ndim != 1 or lv.size == 0 or not np.all((lv > 0) & (lv < 1)):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of credibility levels in (0, 1), got {lv}")
    return lv


# ----------------------------------------------------------------------------- SBC


@dataclass(frozen=True)
class SBCResult:
    """Uniformity tests of SBC ranks, one entry per parameter.

    Attributes
    ----------
    ks_statistic, ks_pvalue : ndarray, shape (n_params,)
        One-sample Kolmogorov-Smirnov test of the jittered normalised ranks
        :math:`u = (r + V) / (L + 1)`, :math:`V \\sim U(0, 1)`, against :math:`U(0, 1)`.
    chi2_statistic, chi2_pvalue : ndarray, shape (n_params,)
        Pearson :math:`\\chi^2` test of the rank histogram against equal counts, ``n_bins - 1`` degrees
        of freedom.
    counts : ndarray of int, shape (n_params, n_bins)
        Rank histogram (for plotting; expected ``n_obs / n_bins`` per bin).
    bin_edges : ndarray, shape (n_bins + 1,)
        Bin edges in rank units, from 0 to ``L + 1``.
    z_mean, z_std : ndarray, shape (n_params,)
        Mean and standard deviation of the probit ranks :math:`z = \\Phi^{-1}(u)`, 0 and 1 if calibrated.
        If the true posterior is :math:`N(\\mu, \\sigma^2)` and the estimate :math:`N(\\mu + b\\sigma,
        (w\\sigma)^2)`, then :math:`z = (Z - b)/w`: ``z_mean`` :math:`= -b/w` (positive: the truths lie
        above the draws, the posterior is biased low) and ``z_std`` :math:`= 1/w` (above 1: too narrow,
        over-confident; the U-shaped rank histogram).  A plain-words reading, not a test.
    n_samples : int
        Posterior draws per observation ``L``; ranks run over ``0..L``.
    """

    ks_statistic: FloatArray
    ks_pvalue: FloatArray
    chi2_statistic: FloatArray
    chi2_pvalue: FloatArray
    counts: IntArray
    bin_edges: FloatArray
    z_mean: FloatArray
    z_std: FloatArray
    n_samples: int

    @property
    def n_obs(self) -> int:
        """Number of observations (ranks per parameter)."""
        return int(self.counts[0].sum())


def sbc_ranks(samples: ArrayLike, truths: ArrayLike, *, rng: RNGLike) -> IntArray:
    """Rank of each true parameter among its posterior draws (Talts et al. 2018).

    .. math::

        r_{ik} = \\#\\{j : \\theta_{ijk} < \\theta^*_{ik}\\} + T_{ik},
        \\qquad T_{ik} \\sim \\mathcal{U}\\{0, \\dots, \\#\\{j : \\theta_{ijk} = \\theta^*_{ik}\\}\\},

    i.e. ties are broken at random, so that :math:`r_{ik}` is uniform on :math:`0, \\dots, L` for an
    exact posterior with :math:`L` independent draws, even for discrete parameters.

    Parameters
    ----------
    samples : array_like, shape (n_obs, n_samples, n_params)
        Independent posterior draws for each observation.
    truths : array_like, shape (n_obs, n_params)
        The parameters that generated each observation.
    rng : numpy.random.Generator, int or None
        Random state for the tie breaking.

    Returns
    -------
    ndarray of int64, shape (n_obs, n_params)
        Ranks in ``0..n_samples``.
    """
    s, t = _check_samples(samples, truths)
    gen = np.random.default_rng(rng)
    below = (s < t[:, None, :]).sum(axis=1)
    tied = (s == t[:, None, :]).sum(axis=1)
    return (below + gen.integers(0, tied + 1)).astype(np.int64)


def sbc_uniformity(ranks: ArrayLike, n_samples: int, *, rng: RNGLike, n_bins: int | None = None) -> SBCResult:
    """Test SBC ranks for uniformity on ``0..n_samples``, per parameter.

    The ranks are discrete; the Kolmogorov-Smirnov test is applied to the jittered normalised ranks

    .. math::

        u_{ik} = \\frac{r_{ik} + V_{ik}}{L + 1}, \\qquad V_{ik} \\sim \\mathcal{U}(0, 1),

    which are *exactly* :math:`\\mathcal{U}(0, 1)` when the ranks are uniform on :math:`0..L`, so the
    continuous KS p-value is exact (not conservative) whatever ``L``.  The histogram uses ``n_bins``
    equal bins of :math:`u`, which are equiprobable for any ``L``; when ``n_bins`` divides ``L + 1`` they
    are exactly the usual rank bins of Talts et al. (the jitter never moves a rank across a bin edge).

    Parameters
    ----------
    ranks : array_like of int, shape (n_obs, n_params)
        Output of :func:`sbc_ranks`.
    n_samples : int
        Posterior draws per observation ``L``.
    rng : numpy.random.Generator, int or None
        Random state for the jitter :math:`V`.
    n_bins : int, optional
        Histogram bins; default ``n_obs // 20`` clipped to 2..50 (about 20 expected counts per bin, so
        that the :math:`\\chi^2` approximation holds), never more than ``L + 1``.

    Returns
    -------
    SBCResult
    """
    r = np.asarray(ranks)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"ranks must have shape (n_obs >= 2, n_params), got {r.shape}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not np.array_equal(r, np.round(r)) or r.min() < 0 or r.max() > n_samples:
        raise ValueError(f"ranks must be integers in 0..n_samples = 0..{n_samples}")
    n_obs, n_params = r.shape
    if n_bins is None:
        n_bins = int(np.clip(n_obs // 20, 2, 50))
    n_bins = min(int(n_bins), n_samples + 1)
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    gen = np.random.default_rng(rng)
    u = (r + gen.random(r.shape)) / (n_samples + 1)
    ks = [stats.ks_1samp(u[:, k], stats.uniform.cdf) for k in range(n_params)]
    cells = np.minimum((u * n_bins).astype(np.int64), n_bins - 1)
    counts = np.stack([np.bincount(cells[:, k], minlength=n_bins) for k in range(n_params)])
    chi2 = stats.chisquare(counts, axis=1)
    z = stats.norm.ppf(np.clip(u, 0.5 / (n_samples + 1), 1 - 0.5 / (n_samples + 1)))
    return SBCResult(
        ks_statistic=np.array([k.statistic for k in ks], dtype=np.float64),
        ks_pvalue=np.array([k.pvalue for k in ks], dtype=np.float64),
        chi2_statistic=np.asarray(chi2.statistic, dtype=np.float64),
        chi2_pvalue=np.asarray(chi2.pvalue, dtype=np.float64),
        counts=counts,
        bin_edges=np.linspace(0.0, n_samples + 1.0, n_bins + 1),
        z_mean=z.mean(axis=0),
        z_std=z.std(axis=0),
        n_samples=int(n_samples),
    )


# ----------------------------------------------------------------------------- expected coverage


def _coverage_at(
    marginal_alpha: FloatArray, joint_alpha: FloatArray | None, levels: FloatArray
) -> tuple[FloatArray, FloatArray | None]:
    """Fractions of observations whose smallest credible level containing the truth is <= each level."""
    marginal = (marginal_alpha[None, :, :] <= levels[:, None, None]).mean(axis=1)
    joint = None if joint_alpha is None else (joint_alpha[None, :] <= levels[:, None]).mean(axis=1)
    return marginal, joint


@dataclass(frozen=True)
class CoverageResult:
    """Empirical coverage of credible regions against their nominal credibility.

    Attributes
    ----------
    levels : ndarray, shape (n_levels,)
        Nominal credibility levels :math:`\\alpha`.
    marginal : ndarray, shape (n_levels, n_params)
        Fraction of observations whose true parameter lies in the central marginal interval.
    joint : ndarray, shape (n_levels,) or None
        Fraction whose truth lies in the joint HPD region (only with log-densities).
    standard_error : ndarray, shape (n_levels,)
        Binomial scatter of a calibrated posterior's coverage, :math:`\\sqrt{\\alpha(1-\\alpha)/n_{obs}}`.
    marginal_alpha : ndarray, shape (n_obs, n_params)
        Smallest central credibility containing each truth, :math:`|2 F_i(\\theta^*_i) - 1|`;
        coverage at any level is ``mean(marginal_alpha <= level)``.
    joint_alpha : ndarray, shape (n_obs,) or None
        Smallest HPD credibility containing each truth.
    n_samples : int
        Posterior draws per observation ``L``; coverage is resolved to about :math:`1/(L+1)`.
    """

    levels: FloatArray
    marginal: FloatArray
    joint: FloatArray | None
    standard_error: FloatArray
    marginal_alpha: FloatArray
    joint_alpha: FloatArray | None
    n_samples: int

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return int(self.marginal_alpha.shape[0])

    def coverage_at(self, levels: ArrayLike) -> tuple[FloatArray, FloatArray | None]:
        """Marginal ``(n_levels, n_params)`` and joint ``(n_levels,)`` (or None) coverage at any levels."""
        return _coverage_at(self.marginal_alpha, self.joint_alpha, _check_levels(levels))

    def max_deviation(self, levels: ArrayLike = DEFAULT_CHECK_LEVELS) -> FloatArray:
        """Largest ``|coverage - level|`` over ``levels``, per parameter, in percentage points."""
        lv = _check_levels(levels)
        marginal, _ = self.coverage_at(lv)
        return 100.0 * np.abs(marginal - lv[:, None]).max(axis=0)

    def max_joint_deviation(self, levels: ArrayLike = DEFAULT_CHECK_LEVELS) -> float:
        """Largest ``|joint coverage - level|`` over ``levels``, in percentage points."""
        lv = _check_levels(levels)
        _, joint = self.coverage_at(lv)
        if joint is None:
            raise ValueError("no joint coverage: pass log_prob_samples and log_prob_truth")
        return float(100.0 * np.abs(joint - lv).max())


def expected_coverage(
    samples: ArrayLike,
    truths: ArrayLike,
    levels: ArrayLike = COVERAGE_LEVELS,
    *,
    log_prob_samples: ArrayLike | None = None,
    log_prob_truth: ArrayLike | None = None,
) -> CoverageResult:
    """Coverage of central marginal intervals and, with densities, of joint HPD regions.

    With :math:`F_{ik}` the empirical CDF of the draws of parameter :math:`k` for observation
    :math:`i`, evaluated at the truth's mid-rank position :math:`(n_< + n_= / 2 + 1/2) / (L + 1)`
    (ties split; uniform over :math:`L + 1` equal cells for an exact posterior), the truth lies in the central
    (equal-tailed) interval of credibility :math:`\\alpha` iff

    .. math::

        \\alpha_{ik} = |2 F_{ik}(\\theta^*_{ik}) - 1| \\le \\alpha,

    and in the highest-posterior-density region of credibility :math:`\\alpha` iff the fraction of
    draws more probable than the truth is at most :math:`\\alpha` (Hermans et al. 2022, the "expected
    coverage" of ``sbi``):

    .. math::

        \\alpha_i = \\frac{1}{L}\\#\\{j : \\log q(\\theta_{ij} \\mid x_i) > \\log q(\\theta^*_i \\mid x_i)\\}
        \\le \\alpha

    (with the same mid-rank convention).  Only the ordering of the log-densities within an observation
    matters, so an unnormalised log-density is fine.  The coverage at :math:`\\alpha` is the fraction of
    observations covered; a calibrated posterior gives
    :math:`\\alpha \\pm \\sqrt{\\alpha(1-\\alpha)/n_{obs}}`. Coverage below :math:`\\alpha` is an
    over-confident posterior, above it a conservative one.

    Parameters
    ----------
    samples : array_like, shape (n_obs, n_samples, n_params)
        Independent posterior draws.
    truths : array_like, shape (n_obs, n_params)
        True parameters.
    levels : array_like, shape (n_levels,)
        Credibility levels in (0, 1).
    log_prob_samples : array_like, shape (n_obs, n_samples), optional
        :math:`\\log q(\\theta_{ij} \\mid x_i)` of each draw under its own observation's posterior.
    log_prob_truth : array_like, shape (n_obs,), optional
        :math:`\\log q(\\theta^*_i \\mid x_i)`.  Give both or neither.

    Returns
    -------
    CoverageResult
    """
    s, t = _check_samples(samples, truths)
    lv = _check_levels(levels)
    n_obs, n_samples, _ = s.shape
    below = (s < t[:, None, :]).sum(axis=1)
    tied = (s == t[:, None, :]).sum(axis=1)
    marginal_alpha = np.abs(2.0 * _position(below, tied, n_samples) - 1.0)
    joint_alpha = None
    if (log_prob_samples is None) != (log_prob_truth is None):
        raise ValueError("give both log_prob_samples and log_prob_truth, or neither")
    if log_prob_samples is not None:
        lps = np.asarray(log_prob_samples, dtype=np.float64)
        lpt = np.asarray(log_prob_truth, dtype=np.float64)
        if lps.shape != (n_obs, n_samples) or lpt.shape != (n_obs,):
            raise ValueError(
                f"log_prob_samples must have shape {(n_obs, n_samples)} and log_prob_truth {(n_obs,)}, "
                f"got {lps.shape} and {lpt.shape}"
            )
        if np.isnan(lps).any() or np.isnan(lpt).any():
            raise ValueError("log_prob_samples and log_prob_truth must not contain NaN")
        above = (lps > lpt[:, None]).sum(axis=1)
        tied_lp = (lps == lpt[:, None]).sum(axis=1)
        joint_alpha = _position(above, tied_lp, n_samples)
    marginal, joint = _coverage_at(marginal_alpha, joint_alpha, lv)
    return CoverageResult(
        levels=lv,
        marginal=marginal,
        joint=joint,
        standard_error=np.sqrt(lv * (1.0 - lv) / n_obs),
        marginal_alpha=marginal_alpha,
        joint_alpha=joint_alpha,
        n_samples=int(n_samples),
    )


# ----------------------------------------------------------------------------- TARP


@dataclass(frozen=True)
class TARPResult:
    """Expected coverage probability of TARP regions.

    Attributes
    ----------
    alpha : ndarray, shape (n_alpha,)
        Credibility levels from 0 to 1.
    ecp : ndarray, shape (n_alpha,)
        Expected coverage probability at each level; the diagonal ``ecp == alpha`` if calibrated.
    atc : float
        Signed area between the curve and the diagonal, :math:`\\int_0^1 (\\mathrm{ECP} - \\alpha)\\,
        d\\alpha = 1/2 - \\bar f`.
    max_distance : float
        :math:`\\sup_\\alpha |\\mathrm{ECP}(\\alpha) - \\alpha|` (the KS statistic of the credibilities).
    ks_pvalue : float
        KS test of the first reference set's credibilities against :math:`U(0, 1)`.
    credibility : ndarray, shape (n_obs, n_refs)
        TARP credibility :math:`f_i` of each truth for each reference point.
    """

    alpha: FloatArray
    ecp: FloatArray
    atc: float
    max_distance: float
    ks_pvalue: float
    credibility: FloatArray


def tarp(
    samples: ArrayLike,
    truths: ArrayLike,
    *,
    rng: RNGLike,
    n_refs: int = 1,
    normalise: bool = True,
    bounds: ArrayLike | None = None,
    n_alpha: int = 101,
) -> TARPResult:
    """Tests of accuracy with random points (Lemos et al. 2023).

    For each observation draw a reference point :math:`\\theta^r_i` uniformly over the parameter box and
    take the ball around it that reaches the truth; its posterior mass is the TARP credibility

    .. math::

        f_i = \\frac{1}{L}\\#\\{j : \\lVert\\theta_{ij} - \\theta^r_i\\rVert
        < \\lVert\\theta^*_i - \\theta^r_i\\rVert\\},
        \\qquad \\mathrm{ECP}(\\alpha) = \\frac{1}{n_{obs}}\\#\\{i : f_i \\le \\alpha\\},

    (ties split, mid-rank as in :func:`expected_coverage`).  For the true posterior :math:`f_i` is
    uniform and :math:`\\mathrm{ECP}(\\alpha) = \\alpha` for *any* reference distribution; Lemos et al.
    show the converse only when it holds for *all* reference distributions.

    .. warning::

        With references uniform over a box much wider than the posterior, the ball is nearly a
        half-space, and :math:`f_i` is the rank of the truth along the direction to
        :math:`\\theta^r_i`, which points either way at random: TARP sees the mixture of the rank
        distribution :math:`g(u)` and its mirror :math:`g(1 - u)`.  Any distortion antisymmetric about
        :math:`u = 1/2`, i.e. a posterior skewed or shifted the *same way* for every observation, cancels:
        a shift shows up only at second order in its size (SBC sees it at first order), and a skew
        that gives the ranks a density :math:`2u` (SBC KS distance 0.25) left the TARP curve within
        0.02-0.05 of the diagonal in our tests.  Symmetric distortions (too narrow, too wide) are seen.
        TARP passing is not evidence against a bias; check :func:`sbc_uniformity` as well.

    Parameters
    ----------
    samples : array_like, shape (n_obs, n_samples, n_params)
        Independent posterior draws.
    truths : array_like, shape (n_obs, n_params)
        True parameters.
    rng : numpy.random.Generator, int or None
        Random state for the reference points.
    n_refs : int
        Independent reference points per observation.  1 is the method of Lemos et al.; more average
        the ECP over reference sets (same expectation, less scatter from the references).
    normalise : bool
        Rescale every parameter to [0, 1] over the box before measuring distances, so that parameters
        in different units weigh alike (as the ``tarp`` package does).
    bounds : array_like, shape (2, n_params), optional
        Lower and upper edges of the box (e.g. the prior's support); default the range of ``truths``.
    n_alpha : int
        Points of the ECP curve on [0, 1].

    Returns
    -------
    TARPResult
    """
    s, t = _check_samples(samples, truths)
    n_obs, n_samples, n_params = s.shape
    if int(n_refs) != n_refs or n_refs < 1:
        raise ValueError(f"n_refs must be a positive integer, got {n_refs!r}")
    if int(n_alpha) != n_alpha or n_alpha < 2:
        raise ValueError(f"n_alpha must be an integer >= 2, got {n_alpha!r}")
    if bounds is None:
        lo, hi = t.min(axis=0), t.max(axis=0)
    else:
        box = np.asarray(bounds, dtype=np.float64)
        if box.shape != (2, n_params):
            raise ValueError(f"bounds must have shape (2, n_params) = {(2, n_params)}, got {box.shape}")
        lo, hi = box
    if not np.all(hi > lo):
        raise ValueError(f"the parameter box must have upper > lower edges, got lower {lo} and upper {hi}")
    if normalise:
        s = (s - lo) / (hi - lo)
        t = (t - lo) / (hi - lo)
        lo, hi = np.zeros(n_params), np.ones(n_params)
    gen = np.random.default_rng(rng)
    credibility = np.empty((n_obs, int(n_refs)))
    for m in range(int(n_refs)):
        ref = lo + (hi - lo) * gen.random((n_obs, n_params))
        d_samples = ((s - ref[:, None, :]) ** 2).sum(axis=2)
        d_truth = ((t - ref) ** 2).sum(axis=1)[:, None]
        credibility[:, m] = _position(
            (d_samples < d_truth).sum(axis=1), (d_samples == d_truth).sum(axis=1), n_samples
        )
    alpha = np.linspace(0.0, 1.0, int(n_alpha))
    ecp = (credibility.ravel()[None, :] <= alpha[:, None]).mean(axis=1)
    return TARPResult(
        alpha=alpha,
        ecp=ecp,
        atc=float(0.5 - credibility.mean()),
        max_distance=float(stats.ks_1samp(credibility.ravel(), stats.uniform.cdf).statistic),
        ks_pvalue=float(stats.ks_1samp(credibility[:, 0], stats.uniform.cdf).pvalue),
        credibility=credibility,
    )


# ----------------------------------------------------------------------------- calibration report


@dataclass(frozen=True)
class CalibrationReport:
    """Verdict of :func:`check_calibration`.

    Two kinds of failure are told apart, as the SBI literature on trustworthy posteriors argues (Hermans et
    al. 2022): a *conservative* posterior (coverage above nominal, SBC ranks too concentrated in the
    middle: usable, with intervals wider than needed) and an *overconfident or biased* one (coverage below
    nominal, SBC ranks piling at the edges or shifted: not usable).

    Attributes
    ----------
    passed : bool
        True only if every check passed (``verdict == "passed"``).
    verdict : {"passed", "conservative", "failed"}
        ``"conservative"`` when every failed check errs on the wide side; ``"failed"`` when any check finds
        the posterior overconfident, biased, or wrong in a way that is neither.
    wider_by : dict of str to float
        For each parameter and the joint region (``"joint HPD"``), how much wider than needed the credible
        regions are, as a fraction (0.12: 12 % wider; negative: narrower), from the coverage at the
        checked levels through a Gaussian: the median over levels of
        :math:`\\Phi^{-1}((1 + c)/2) / \\Phi^{-1}((1 + \\alpha)/2) - 1` for a marginal and
        :math:`\\sqrt{\\chi^2_d{}^{-1}(c) / \\chi^2_d{}^{-1}(\\alpha)} - 1` for the joint region of ``d``
        parameters.
    reasons : tuple of str
        One sentence per failed check, naming the parameter and the numbers.
    notes : tuple of str
        Caveats that do not fail the check (e.g. too few observations to resolve the tolerance).
    names : tuple of str
        Parameter names used in the messages.
    sbc : SBCResult
    coverage : CoverageResult
    thresholds : dict
        The thresholds applied.
    """

    passed: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    names: tuple[str, ...]
    sbc: SBCResult
    coverage: CoverageResult
    thresholds: dict[str, float] = field(default_factory=dict)
    verdict: str = "passed"
    wider_by: dict[str, float] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether the posterior may be used: calibrated, or conservative (said with its width)."""
        return self.verdict in ("passed", "conservative")

    def conservative_text(self) -> str:
        """``"its credible regions are wider than needed: qpo.nu0 by ~12 %, the joint region by ~9 %"``."""
        wide = [
            f"{'the joint region' if name == 'joint HPD' else name} by ~{100 * w:.0f} %"
            for name, w in self.wider_by.items()
            if w > 0.005
        ]
        return "its credible regions are wider than needed" + (": " + ", ".join(wide) if wide else "")

    def __str__(self) -> str:
        head = {
            "passed": "calibration PASSED",
            "conservative": f"calibration CONSERVATIVE (usable; {self.conservative_text()})",
        }.get(self.verdict, "calibration FAILED")
        lines = [f"{head} ({self.coverage.n_obs} observations, {self.sbc.n_samples} draws each)"]
        lines += [f"  - {r}" for r in self.reasons] + [f"  (note) {n}" for n in self.notes]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`CalibrationError` carrying this report if the posterior failed."""
        if not self.passed:
            raise CalibrationError(self)


class CalibrationError(RuntimeError):
    """A posterior failed its calibration checks; ``report`` holds the full :class:`CalibrationReport`."""

    def __init__(self, report: CalibrationReport) -> None:
        super().__init__(str(report))
        self.report = report


def _sbc_shape(z_mean: float, z_std: float, n_obs: int) -> str:
    """Plain-words reading of the probit-rank moments (see :class:`SBCResult`), 3-sigma changes only."""
    words = [f"z mean {z_mean:+.2f}, z std {z_std:.2f}"]
    if abs(z_mean) > 3 / np.sqrt(n_obs):
        words.append(
            "truths above the draws: biased low" if z_mean > 0 else "truths below the draws: biased high"
        )
    if abs(z_std - 1) > 3 / np.sqrt(2 * n_obs):
        words.append("too narrow (over-confident)" if z_std > 1 else "too wide (under-confident)")
    return "; ".join(words)


def _wider_by(cov: FloatArray, levels: FloatArray, dim: int | None) -> float:
    """How much wider than needed credible regions are, from their coverage (:class:`CalibrationReport`)."""
    c = np.clip(cov, 1e-6, 1 - 1e-6)
    if dim is None:
        ratio = stats.norm.ppf((1 + c) / 2) / stats.norm.ppf((1 + levels) / 2)
    else:
        ratio = np.sqrt(stats.chi2.ppf(c, dim) / stats.chi2.ppf(levels, dim))
    return float(np.median(ratio) - 1.0)


def calibration_report(
    sbc: SBCResult,
    coverage: CoverageResult,
    *,
    names: Sequence[str] | None = None,
    levels: Sequence[float] = DEFAULT_CHECK_LEVELS,
    coverage_tolerance: float = 0.02,
    coverage_z: float = 3.0,
    sbc_alpha: float = 0.01,
    chi2_alpha: float | None = None,
) -> CalibrationReport:
    """Apply the calibration thresholds to SBC and coverage results (see :func:`check_calibration`)."""
    n_params = sbc.ks_pvalue.size
    if coverage.marginal_alpha.shape[1] != n_params or coverage.n_obs != sbc.n_obs:
        raise ValueError(
            f"sbc ({sbc.n_obs} observations, {n_params} parameters) and coverage ({coverage.n_obs}, "
            f"{coverage.marginal_alpha.shape[1]}) must come from the same samples"
        )
    labels = tuple(names) if names is not None else tuple(f"theta[{k}]" for k in range(n_params))
    if len(labels) != n_params:
        raise ValueError(f"names must have one entry per parameter ({n_params}), got {len(labels)}")
    if not 0 < coverage_tolerance < 1 or coverage_z < 0 or not 0 < sbc_alpha < 1:
        raise ValueError(
            "need 0 < coverage_tolerance < 1, coverage_z >= 0 and 0 < sbc_alpha < 1, got "
            f"{coverage_tolerance}, {coverage_z}, {sbc_alpha}"
        )
    lv = _check_levels(levels, "levels")
    reasons: list[str] = []
    notes: list[str] = []
    wide_only = True  # every failed check errs on the conservative side
    for k, name in enumerate(labels):
        if sbc.ks_pvalue[k] <= sbc_alpha:
            shape = _sbc_shape(float(sbc.z_mean[k]), float(sbc.z_std[k]), sbc.n_obs)
            reasons.append(
                f"{name}: SBC ranks not uniform (KS p = {sbc.ks_pvalue[k]:.2g} <= {sbc_alpha}; {shape})"
            )
            wide_only &= shape.endswith("too wide (under-confident)") and "biased" not in shape
        if chi2_alpha is not None and sbc.chi2_pvalue[k] <= chi2_alpha:
            reasons.append(
                f"{name}: SBC rank histogram not flat (chi2 p = {sbc.chi2_pvalue[k]:.2g} <= {chi2_alpha})"
            )
            wide_only &= bool(sbc.z_std[k] < 1)
    se = np.sqrt(lv * (1 - lv) / coverage.n_obs)
    allowed = np.maximum(coverage_tolerance, coverage_z * se) + 1 / (coverage.n_samples + 1)
    marginal, joint = coverage.coverage_at(lv)
    rows = [(name, marginal[:, k]) for k, name in enumerate(labels)]
    if joint is not None:
        rows.append(("joint HPD", joint))
    wider_by = {name: _wider_by(cov, lv, None if name != "joint HPD" else n_params) for name, cov in rows}
    for name, cov in rows:
        bad = np.abs(cov - lv) > allowed
        if bad.any():
            pairs = ", ".join(f"{c:.1%} at {a:.0%}" for c, a in zip(cov[bad], lv[bad], strict=True))
            side = "above nominal: too wide" if np.all(cov[bad] > lv[bad]) else "below nominal: too narrow"
            reasons.append(f"{name}: coverage {pairs} (allowed +-{100 * allowed[bad].max():.1f} pp; {side})")
            wide_only &= bool(np.all(cov[bad] > lv[bad]))
    if np.any(coverage_z * se > coverage_tolerance):
        notes.append(
            f"with {coverage.n_obs} observations the binomial scatter allows up to "
            f"+-{100 * allowed.max():.1f} pp, wider than the +-{100 * coverage_tolerance:.0f} pp tolerance: "
            f"about {int(np.ceil((coverage_z / coverage_tolerance) ** 2 * 0.25))} observations resolve it"
        )
    verdict = "passed" if not reasons else "conservative" if wide_only else "failed"
    return CalibrationReport(
        passed=not reasons,
        verdict=verdict,
        wider_by=wider_by,
        reasons=tuple(reasons),
        notes=tuple(notes),
        names=labels,
        sbc=sbc,
        coverage=coverage,
        thresholds={
            "coverage_tolerance": coverage_tolerance,
            "coverage_z": coverage_z,
            "sbc_alpha": sbc_alpha,
            **({"chi2_alpha": chi2_alpha} if chi2_alpha is not None else {}),
        },
    )


def check_calibration(
    samples: ArrayLike,
    truths: ArrayLike,
    *,
    rng: RNGLike,
    names: Sequence[str] | None = None,
    log_prob_samples: ArrayLike | None = None,
    log_prob_truth: ArrayLike | None = None,
    levels: Sequence[float] = DEFAULT_CHECK_LEVELS,
    coverage_tolerance: float = 0.02,
    coverage_z: float = 3.0,
    sbc_alpha: float = 0.01,
    chi2_alpha: float | None = None,
) -> CalibrationReport:
    """Run SBC and expected coverage on held-out simulations and judge them against thresholds.

    A check fails, with a reason naming the parameter, if

    * the SBC ranks of a parameter fail the KS uniformity test, :math:`p \\le` ``sbc_alpha``
      (default 0.01, per parameter; optionally also the :math:`\\chi^2` histogram test);
    * the coverage of a parameter's central interval, or of the joint HPD region when log-densities are
      given, misses a level in ``levels`` (default 50, 68, 95 %) by more than

      .. math::

          \\max\\left(\\epsilon, \\; z \\sqrt{\\alpha(1-\\alpha)/n_{obs}}\\right) + \\frac{1}{L + 1},

      with :math:`\\epsilon` = ``coverage_tolerance`` (default 2 percentage points) and :math:`z` =
      ``coverage_z`` (default 3).  The binomial term keeps an exact posterior from failing by chance
      when ``n_obs`` is too small to resolve :math:`\\epsilon`; a note then says how many observations
      would (:math:`\\approx z^2 / (4 \\epsilon^2)`, 5625 for the defaults).  The last term is the
      resolution of a credible interval made of :math:`L` draws (an exact posterior's 95 % interval
      from 300 draws covers 94.7 %).

    The thresholds are per check, so an exact posterior still fails now and then: with ``n_params``
    parameters the SBC tests alone fail with probability :math:`1 - (1 - \\text{sbc\\_alpha})^{n_{params}}`,
    and each coverage check at :math:`z = 3` with about 0.3 %.  For 2 parameters plus the joint region
    (2 SBC tests, 9 coverage checks), ``n_obs = 1000`` and ``L = 300``, 4 % of exact posteriors
    failed in 400 simulated trials (two thirds of them by SBC).  Raise ``coverage_z`` or lower
    ``sbc_alpha`` to trade power for fewer false alarms, and read the numbers in the reasons, not only
    ``passed``.

    Parameters
    ----------
    samples, truths, log_prob_samples, log_prob_truth
        As for :func:`expected_coverage`.
    rng : numpy.random.Generator, int or None
        Random state for the SBC tie breaking and jitter.
    names : sequence of str, optional
        Parameter names for the messages.
    levels, coverage_tolerance, coverage_z, sbc_alpha, chi2_alpha
        Thresholds (above).

    Returns
    -------
    CalibrationReport
        ``passed``, ``reasons`` and the underlying results; call ``raise_if_failed()`` to stop a pipeline.

    Examples
    --------
    The conjugate model: prior :math:`N(0, 1)`, one measurement with noise 0.5, exact posterior.

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(size=(1000, 1))
    >>> x = theta + 0.5 * rng.normal(size=theta.shape)
    >>> mean, sd = x / 1.25, 0.5 / np.sqrt(1.25)
    >>> exact = mean[:, None, :] + sd * rng.normal(size=(1000, 200, 1))
    >>> check_calibration(exact, theta, rng=1, names=["rms"]).passed
    True
    >>> narrow = mean[:, None, :] + 0.7 * sd * rng.normal(size=(1000, 200, 1))
    >>> report = check_calibration(narrow, theta, rng=1, names=["rms"])
    >>> report.passed, report.reasons[0][:29]
    (False, 'rms: SBC ranks not uniform (K')
    """
    gen = np.random.default_rng(rng)
    s, t = _check_samples(samples, truths)
    sbc = sbc_uniformity(sbc_ranks(s, t, rng=gen), s.shape[1], rng=gen)
    coverage = expected_coverage(
        s, t, levels, log_prob_samples=log_prob_samples, log_prob_truth=log_prob_truth
    )
    return calibration_report(
        sbc,
        coverage,
        names=names,
        levels=levels,
        coverage_tolerance=coverage_tolerance,
        coverage_z=coverage_z,
        sbc_alpha=sbc_alpha,
        chi2_alpha=chi2_alpha,
    )
