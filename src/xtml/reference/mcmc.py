"""Bayesian fits of one power spectrum with emcee, on the same likelihood and priors as every other fit.

The log posterior of a spectrum ``P`` under a :class:`~xtml.reference.SpectralModel` is

.. math::

    \\log p(\\theta \\mid P) = \\log \\pi(\\theta) + \\log L(\\theta; P) + \\text{const},

with the prior :math:`\\pi` a :class:`~xtml.psd.JointPrior` and :math:`L` the exact Whittle likelihood
(:func:`xtml.reference.log_likelihood`; or the cospectrum likelihood
:func:`xtml.reference.log_likelihood_cospectrum`), evaluated for all walkers at once
(``emcee.EnsembleSampler(..., vectorize=True)``).

Convergence is enforced, not assumed.  After ``n_steps`` steps the integrated autocorrelation time
:math:`\\tau_k` of every parameter is estimated (``emcee.autocorr.integrated_time``, Sokal's window),
and the chain is extended (up to ``max_steps``) until

.. math::

    n_{steps} > 50 \\max_k \\tau_k \\quad\\text{and}\\quad
    \\mathrm{ESS}_k = n_{walkers} (n_{steps} - n_{burn}) / \\tau_k \\ge \\text{min\\_ess} \\ \\forall k.

The first :math:`n_{burn} = \\lceil 5 \\max_k \\tau_k \\rceil` steps are discarded and the rest
thinned by :math:`\\max(1, \\lfloor \\min_k \\tau_k / 2 \\rfloor)`.  A chain that never meets the
criterion is returned with ``converged=False`` and a ``status`` naming the parameters and numbers;
:meth:`MCMCResult.raise_if_not_converged` turns it into a :class:`NotConvergedError` carrying them.

The autocorrelation time does not see a walker left behind in a negligible local mode (common
when starting from prior draws: a QPO walker at the wrong frequency).  A walker whose mean log
posterior over the second half of the chain is more than ``STUCK_NATS`` below the best walker's
is moved to a point visited by the others and the chain restarted (the run so far is discarded as
warm-up, at most ``MAX_RESTARTS`` times); stuck walkers in the final chain make it not converged.
Parameters with a :class:`~xtml.psd.Fixed` prior are not sampled (a point mass cannot be explored
by an ensemble); their columns hold the fixed value, ``tau = 0`` and ``ess = inf``.

Everything random derives from ``rng``: the starting ball (or prior draws) from a
``numpy.random.Generator`` and emcee's own ``RandomState`` seeded from it, so the same seed gives
the same samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import emcee
import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.psd import Fixed, JointPrior
from xtml.reference.likelihood import SpectralModel, log_likelihood
from xtml.timing import PowerSpectrum

__all__ = ["LogLikelihood", "MCMCResult", "NotConvergedError", "sample_posterior"]

FloatArray = NDArray[np.float64]
LogLikelihood = Callable[[ArrayLike, PowerSpectrum, SpectralModel], FloatArray]
"""Signature of a vectorised log-likelihood: (theta (n, k), spectrum, model) -> (n,)."""

#: Chain length in autocorrelation times required for convergence (emcee's recommendation).
TAU_FACTOR = 50
#: Burn-in, in (maximum) autocorrelation times.
BURN_FACTOR = 5
#: Relative size of the starting ball around ``start`` (with an absolute floor for zero values).
_BALL = 1e-4
#: A walker whose mean log posterior (second half of the chain) is this far below the best
#: walker's is stuck in a negligible local mode.
STUCK_NATS = 10.0
#: Restarts of stuck walkers (each discards the chain so far as warm-up) before giving up.
MAX_RESTARTS = 3
_START_ATTEMPTS = 100


class NotConvergedError(RuntimeError):
    """An MCMC chain that did not meet the convergence criterion.

    Attributes
    ----------
    tau : ndarray, shape (k,)
        Integrated autocorrelation times, steps.
    ess : ndarray, shape (k,)
        Effective sample sizes.
    n_steps : int
        Steps per walker that were run.
    """

    def __init__(self, tau: FloatArray, ess: FloatArray, n_steps: int, msg: str) -> None:
        super().__init__(msg)
        self.tau = tau
        self.ess = ess
        self.n_steps = n_steps


def _readonly(a: ArrayLike) -> FloatArray:
    out = np.array(a, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class MCMCResult:
    """Posterior samples of one spectrum, with the convergence diagnostics that vouch for them.

    Attributes
    ----------
    param_names : tuple of str
        Column names of ``samples`` (the model's parameters).
    samples : ndarray, shape (n_samples, k)
        Burn-in removed, thinned, flattened over walkers (step-major).
    log_prob : ndarray, shape (n_samples,)
        Log posterior (up to a constant) of each sample.
    tau : ndarray, shape (k,)
        Integrated autocorrelation time per parameter, steps (0 for fixed parameters; NaN if it
        could not be estimated, e.g. stuck walkers).
    ess : ndarray, shape (k,)
        Effective sample size ``n_walkers (n_steps - burn) / tau`` (inf for fixed parameters).
    acceptance : float
        Mean acceptance fraction of the walkers.
    converged : bool
        ``n_steps > 50 max(tau)`` and ``ess >= min_ess`` for every parameter.
    status : str
        ``"ok"``, or why the chain did not converge (parameter, tau, chain length, ESS).
    n_steps : int
        Steps per walker of the returned chain (including its burn-in).
    n_warmup : int
        Steps of discarded warm-up chains run before it (0 unless stuck walkers were restarted).
    n_walkers : int
    burn : int
        Steps discarded at the start.
    thin : int
        Thinning of the kept steps.
    """

    param_names: tuple[str, ...]
    samples: FloatArray
    log_prob: FloatArray
    tau: FloatArray
    ess: FloatArray
    acceptance: float
    converged: bool
    status: str
    n_steps: int
    n_warmup: int
    n_walkers: int
    burn: int
    thin: int

    @property
    def n_samples(self) -> int:
        """Number of returned samples."""
        return int(self.samples.shape[0])

    @property
    def mean(self) -> FloatArray:
        """Posterior mean per parameter, shape (k,)."""
        return self.samples.mean(axis=0)

    def quantiles(self, q: ArrayLike) -> FloatArray:
        """Posterior quantiles: shape (k,) for a scalar ``q``, (len(q), k) for a sequence; ``q`` in [0, 1]."""
        qq = np.asarray(q, dtype=np.float64)
        if not np.all((qq >= 0) & (qq <= 1)):
            raise ValueError(f"q must lie in [0, 1], got {q!r}")
        return np.quantile(self.samples, qq, axis=0)

    def interval(self, level: float = 0.68) -> FloatArray:
        """Equal-tailed credible interval of probability ``level`` in (0, 1), shape (k, 2): (low, high)."""
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        return self.quantiles([(1 - level) / 2, (1 + level) / 2]).T

    def raise_if_not_converged(self) -> MCMCResult:
        """Return ``self`` if converged, else raise :class:`NotConvergedError` with the diagnostics."""
        if not self.converged:
            raise NotConvergedError(self.tau, self.ess, self.n_steps, self.status)
        return self


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _diagnose(
    chain: FloatArray, names: tuple[str, ...], min_ess: int, max_steps: int
) -> tuple[FloatArray, FloatArray, int, int, bool, str]:
    """tau, ESS, burn-in, thinning, convergence and status of a chain (n_steps, n_walkers, k_free)."""
    n_steps, n_walkers, _ = chain.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.asarray(emcee.autocorr.integrated_time(chain, tol=0), dtype=np.float64)
    if not np.all(np.isfinite(tau)):
        bad = [n for n, t in zip(names, tau, strict=True) if not np.isfinite(t)]
        status = (
            f"not converged after {n_steps} steps: the autocorrelation time of {', '.join(bad)} could not be "
            "estimated (walkers stuck: no accepted move?)"
        )
        burn = n_steps // 2
        return tau, np.zeros_like(tau), burn, 1, False, status
    tau_max = float(tau.max())
    burn = min(int(np.ceil(BURN_FACTOR * tau_max)), n_steps // 2)
    thin = max(1, int(0.5 * float(tau.min())))
    ess = n_walkers * (n_steps - burn) / tau
    short = [k for k in range(tau.size) if not n_steps > TAU_FACTOR * tau[k]]
    few = [k for k in range(tau.size) if ess[k] < min_ess]
    if not short and not few:
        return tau, ess, burn, thin, True, "ok"
    problems = [
        f"{names[k]} has tau = {tau[k]:.1f} steps, so {TAU_FACTOR} tau = {TAU_FACTOR * tau[k]:.0f} steps "
        f">= the {n_steps} run"
        for k in short
    ]
    problems += [f"{names[k]} has ESS = {ess[k]:.0f} < min_ess = {min_ess}" for k in few if k not in short]
    status = f"not converged after {n_steps} steps (max_steps = {max_steps}): " + "; ".join(problems)
    return tau, ess, burn, thin, False, status


def _stuck_walkers(log_prob: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
    """Walkers (and their deficits, nats) whose mean log posterior is > STUCK_NATS below the best walker's.

    In a well-mixed ensemble the walkers' means over many autocorrelation times agree within about a
    nat; ten nats mean a walker has spent the chain in a region of negligible posterior mass (or the
    others have, and the best walker found the mode).
    """
    means = log_prob.mean(axis=0)
    with np.errstate(invalid="ignore"):
        deficit = np.max(means) - means
    stuck = np.flatnonzero(~(deficit <= STUCK_NATS))
    return stuck, deficit[stuck]


def _steps_needed(tau: FloatArray, n_walkers: int, min_ess: int) -> int:
    """Chain length that would satisfy the criterion if ``tau`` were right (with a 10 % margin)."""
    tau_max = float(tau.max())
    by_length = TAU_FACTOR * tau_max
    by_ess = BURN_FACTOR * tau_max + min_ess * tau_max / n_walkers
    return int(np.ceil(1.1 * max(by_length, by_ess)))


def sample_posterior(
    spectrum: PowerSpectrum,
    model: SpectralModel,
    prior: JointPrior,
    *,
    start: ArrayLike | None = None,
    n_walkers: int = 32,
    n_steps: int = 2000,
    max_steps: int = 20000,
    min_ess: int = 400,
    rng: np.random.Generator | int | None = 0,
    progress: bool = False,
    loglike: LogLikelihood = log_likelihood,
) -> MCMCResult:
    """Sample the posterior of ``model``'s parameters given one spectrum, with emcee, until converged.

    Parameters
    ----------
    spectrum : PowerSpectrum
        One spectrum (``n = 1``).
    model : SpectralModel
        Expected power as a function of the parameters ``model.param_names``.
    prior : JointPrior
        Over exactly ``model.param_names`` (any order; ``ValueError`` listing the differences).
    start : array_like, shape (k,), optional
        Centre of a small ball (relative size 1e-4) in which the walkers start, e.g. a maximum
        likelihood fit; must have a finite posterior.  Default: draws from the prior (redrawn where
        the likelihood is not finite).
    n_walkers : int
        Ensemble size, at least twice the number of free parameters.
    n_steps : int
        Steps run before the first convergence check.
    max_steps : int
        Most steps per walker (>= ``n_steps``); the chain is extended until converged or this long.
    min_ess : int
        Required effective sample size of every parameter.
    rng : Generator, int or None
        Source of all randomness (starting points and emcee's moves); the same seed gives the same
        samples.
    progress : bool
        Show emcee's progress bar.
    loglike : callable
        ``loglike(theta (n, k), spectrum, model) -> (n,)``; default the exact Whittle likelihood.
        Pass :func:`xtml.reference.log_likelihood_cospectrum` for a cospectrum.

    Returns
    -------
    MCMCResult
        Check ``converged`` (or call :meth:`MCMCResult.raise_if_not_converged`).

    Raises
    ------
    ValueError
        For a spectrum with several rows, a prior that does not match the parameters, bad sizes,
        or a start (or prior) giving no finite posterior.

    Examples
    --------
    >>> from xtml.psd import PSDModel, Constant, Fixed, LogUniform
    >>> from xtml.reference import SpectralModel
    >>> from xtml.timing import PowerSpectrum
    >>> rng = np.random.default_rng(1)
    >>> power = rng.gamma(4, 2.0 / 4, (1, 100))  # white Leahy noise, m = 4
    >>> ps = PowerSpectrum(freq=np.arange(1.0, 101.0), power=power, m=np.full(100, 4), df=np.ones(100),
    ...                    norm="leahy", mean_rate=[100.0], segment_length=1.0, dt=0.005, n_segments=4)
    >>> model = SpectralModel(PSDModel.from_components({"floor": Constant()}), noise="free")
    >>> prior = JointPrior({"floor.level": Fixed(0.0), "noise.level": LogUniform(0.5, 8.0)})
    >>> result = sample_posterior(ps, model, prior, n_walkers=8, min_ess=200, rng=2)
    >>> result.converged, result.param_names
    (True, ('floor.level', 'noise.level'))
    >>> bool(abs(result.mean[1] - 2.0) < 0.2)
    True
    """
    if not isinstance(spectrum, PowerSpectrum) or spectrum.n != 1:
        raise ValueError(
            f"spectrum must be one PowerSpectrum row (n = 1), got "
            f"{spectrum.n if isinstance(spectrum, PowerSpectrum) else type(spectrum).__name__}"
        )
    names = model.param_names
    prior.require(names)
    prior = JointPrior({name: prior.priors[name] for name in names})  # columns in the model's order
    n_steps = _check_int("n_steps", n_steps, 1)
    max_steps = _check_int("max_steps", max_steps, n_steps)
    min_ess = _check_int("min_ess", min_ess, 1)
    fixed = np.array([isinstance(prior.priors[n], Fixed) for n in names])
    free = np.flatnonzero(~fixed)
    if free.size == 0:
        raise ValueError(f"every parameter has a Fixed prior; nothing to sample in {names}")
    k_free = int(free.size)
    n_walkers = _check_int("n_walkers", n_walkers, 2 * k_free)
    template = np.array(
        [p.value if isinstance(p, Fixed) else np.nan for p in prior.priors.values()], dtype=np.float64
    )
    gen = np.random.default_rng(rng)

    def full(x: FloatArray) -> FloatArray:
        theta = np.repeat(template[None, :], x.shape[0], axis=0)
        theta[:, free] = x
        return theta

    def log_post(x: FloatArray) -> FloatArray:
        theta = full(np.atleast_2d(x))
        lp = prior.log_prob(theta)
        ok = np.isfinite(lp)
        if ok.any():
            ll = loglike(theta[ok], spectrum, model)
            lp[ok] += np.where(np.isnan(ll), -np.inf, ll)
        return lp

    p0 = _initial(start, template, free, n_walkers, prior, log_post, gen, names)
    sampler = emcee.EnsembleSampler(n_walkers, k_free, log_post, vectorize=True)
    sampler.random_state = np.random.RandomState(int(gen.integers(2**32))).get_state()
    state = sampler.run_mcmc(p0, n_steps, progress=progress)
    free_names = tuple(names[k] for k in free)
    n_warmup = restarts = 0
    while True:
        chain, lp = sampler.get_chain(), sampler.get_log_prob()
        done = chain.shape[0]
        stuck, deficit = _stuck_walkers(lp[done // 2 :])
        if stuck.size and restarts < MAX_RESTARTS:
            # Walkers left behind in a negligible local mode: move them to points of the other walkers
            # (second half of the chain) and start the chain afresh; the run so far is warm-up.
            good = np.setdiff1d(np.arange(n_walkers), stuck)
            coords = state.coords.copy()
            coords[stuck] = chain[gen.integers(done // 2, done, stuck.size), gen.choice(good, stuck.size)]
            n_warmup += done
            restarts += 1
            sampler.reset()
            state = sampler.run_mcmc(coords, n_steps, progress=progress)
            continue
        tau_f, ess_f, burn, thin, converged, status = _diagnose(chain, free_names, min_ess, max_steps)
        if stuck.size:
            converged = False
            status = (
                f"not converged after {done} steps (max_steps = {max_steps}): walkers {stuck.tolist()} are "
                f"stuck, their mean log posterior {np.round(deficit, 1).tolist()} below the best walker's "
                f"(> {STUCK_NATS}) after {restarts} restarts"
                + ("" if status == "ok" else "; " + status.split(": ", 1)[1])
            )
        if converged or stuck.size or done >= max_steps or not np.all(np.isfinite(tau_f)):
            break
        extra = max(_steps_needed(tau_f, n_walkers, min_ess) - done, done // 4, 1)
        state = sampler.run_mcmc(state, min(extra, max_steps - done), progress=progress)
    samples = full(sampler.get_chain(discard=burn, thin=thin, flat=True))
    tau = np.zeros(len(names))
    ess = np.full(len(names), np.inf)
    tau[free], ess[free] = tau_f, ess_f
    return MCMCResult(
        param_names=names,
        samples=_readonly(samples),
        log_prob=_readonly(sampler.get_log_prob(discard=burn, thin=thin, flat=True)),
        tau=_readonly(tau),
        ess=_readonly(ess),
        acceptance=float(np.mean(sampler.acceptance_fraction)),
        converged=converged,
        status=status,
        n_steps=int(done),
        n_warmup=int(n_warmup),
        n_walkers=n_walkers,
        burn=burn,
        thin=thin,
    )


def _initial(
    start: ArrayLike | None,
    template: FloatArray,
    free: NDArray[np.intp],
    n_walkers: int,
    prior: JointPrior,
    log_post: Callable[[FloatArray], FloatArray],
    gen: np.random.Generator,
    names: tuple[str, ...],
) -> FloatArray:
    """Starting points (n_walkers, k_free) with finite posterior: a ball around ``start``, or prior draws."""
    if start is not None:
        centre = np.asarray(start, dtype=np.float64)
        if centre.shape != template.shape:
            raise ValueError(f"start must have shape ({template.size},) for {names}, got {centre.shape}")
        centre = centre[free]
        at_start = log_post(centre[None, :])[0]
        if not np.isfinite(at_start):
            raise ValueError(
                f"start = {dict(zip(names, np.asarray(start, dtype=float).tolist(), strict=True))} has log "
                f"posterior {at_start}; it must lie inside the prior with a finite likelihood"
            )
        width = _BALL * np.where(centre != 0, np.abs(centre), 1.0)

        def draw(n: int) -> FloatArray:
            return centre + width * gen.standard_normal((n, centre.size))

    else:

        def draw(n: int) -> FloatArray:
            return prior.sample(n, gen)[:, free]

    p0 = draw(n_walkers)
    for _ in range(_START_ATTEMPTS):
        bad = ~np.isfinite(log_post(p0))
        if not bad.any():
            return p0
        p0[bad] = draw(int(bad.sum()))
    raise ValueError(
        f"could not find {n_walkers} starting points with a finite posterior in {_START_ATTEMPTS} attempts "
        f"({int(bad.sum())} still bad); give a start inside the prior with a finite likelihood"
    )
