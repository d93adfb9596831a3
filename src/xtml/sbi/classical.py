"""Classical estimates on a simulated dataset's test observations, and the table that compares methods.

Issue 6 compares simulation-based inference with the fits an astronomer would run without machine
learning, on the same test observations.  Every method ends in one :class:`Estimates`: a point estimate,
a standard deviation and central 68 % and 95 % intervals per observation and parameter, the wall time per
observation, and whether the method vouches for the result (``ok``, with a status string).

The classical methods, all on the same exact Whittle likelihood (:func:`xtml.reference.log_likelihood`):

* :func:`naive_mcmc`: emcee posterior with a flat white noise, as if there were no dead time
  (``dead_time = 0``); the class prior on the source, a log-uniform prior on the white level.
* :func:`naive_fit`: the same model, maximum likelihood with Hessian errors.
* :func:`zhang_fit`: maximum likelihood with the dead-time-aware model (Zhang et al. 1995 white noise and
  the dead-time gain on the source, :class:`~xtml.reference.SpectralModel`).
* :func:`fad_fit`: maximum likelihood of the FAD-corrected spectrum (``power_fad``, Bachetti &
  Huppenkothen 2018) with a flat white noise.

The reported parameters are the class's PSD parameters in dataset naming (``"qpo.rms"``, ...) and
``"rate"``, the incident source rate per module.  Fractional rms values are of the source alone: a fit
measures them against the total mean rate, which includes the detector background, so they are scaled by
:math:`r_{tot}/(r_{tot} - b)` (normalisations by its square), with :math:`r_{tot}` the (incident) rate
per module the method believes in and :math:`b` the background rate per module.  The rate follows from
the measured mean rate :math:`\\mu` (all modules, detected) over the observation's duration :math:`T`:

.. math::

    r = \\frac{r_d}{1 - r_d\\tau} - b, \\quad r_d = \\mu / n_{mod}, \\qquad
    \\frac{\\sigma_r}{r + b} = \\sqrt{\\frac{P(0) + 2/\\mu}{2T}},

with :math:`P(0)` the fitted fractional-rms PSD at zero frequency (the red noise and the counting noise of
the mean; the dead-time factors of the detected variance and of the derivative cancel).  A method that
ignores dead time (``naive_*``) uses :math:`\\tau = 0`, i.e. reports the detected rate: that is what
ignoring dead time means.  The inversion holds for a constant rate; dead time is concave in the rate, so a
variable source loses more than its mean rate predicts and the corrected rate is biased low by about
:math:`r_d\\tau\\,\\sigma^2` (second order in :math:`\\sigma`, the total fractional rms; measured -3 % at
500 ct/s and -5.5 % at 1,800 ct/s with rms ~ 0.25-0.3).  That bias is the classical method's, kept on
purpose.

:func:`comparison_table` turns the estimates and the true parameters into rows of bias, fractional bias,
RMSE, 68 %/95 % coverage, mean 68 % width and median seconds per observation, per method, parameter and
rate bin; :func:`to_markdown` prints them.  This module uses numpy and scipy only (no torch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm as _normal
from threadpoolctl import threadpool_limits

from xtml.data import SimDataset
from xtml.psd import JointPrior, LogUniform, PSDModel
from xtml.reference import (
    MCMCResult,
    NoiseKind,
    SpectralModel,
    default_bounds,
    fit_spectra,
    sample_posterior,
)
from xtml.reference.fitcli import dataset_dead_time
from xtml.timing import PowerSpectrum

__all__ = [
    "LEVELS",
    "ComparisonRow",
    "Estimates",
    "class_indices",
    "comparison_table",
    "fad_fit",
    "naive_fit",
    "naive_mcmc",
    "observation_truths",
    "to_markdown",
    "zhang_fit",
]

FloatArray = NDArray[np.float64]
PointFrom = Literal["all", "ok"]
RNGLike = np.random.Generator | int | None

#: Probabilities of the central intervals every method reports.
LEVELS: tuple[float, float] = (0.68, 0.95)


# --------------------------------------------------------------------------------------------- estimates


def _matrix(name: str, value: ArrayLike, shape: tuple[int, int]) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Estimates:
    """Per-observation posterior summaries of one method, for ``n`` observations and ``p`` parameters.

    A column that is NaN throughout is a parameter the method does not estimate ("n/a" in the table).

    Attributes
    ----------
    method : str
        Row label, e.g. ``"zhang_fit"``.
    names : tuple of str, length p
        Parameter names, dataset naming.
    mean : ndarray, shape (n, p)
        Point estimate: posterior mean (samples) or best fit (maximum likelihood).
    std : ndarray, shape (n, p)
        Posterior standard deviation or Hessian error.
    lo68, hi68, lo95, hi95 : ndarray, shape (n, p)
        Central (equal-tailed) intervals of probability 0.68 and 0.95 (:data:`LEVELS`).
    seconds : ndarray, shape (n,)
        Wall time per observation, s.
    ok : ndarray of bool, shape (n,)
        Whether the method vouches for the observation's result (converged chain, fit ``"ok"``).
    status : tuple of str, length n
        ``"ok"`` or the reason it is not.
    """

    method: str
    names: tuple[str, ...]
    mean: FloatArray
    std: FloatArray
    lo68: FloatArray
    hi68: FloatArray
    lo95: FloatArray
    hi95: FloatArray
    seconds: FloatArray
    ok: NDArray[np.bool_]
    status: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        object.__setattr__(self, "names", names)
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.ndim != 2 or mean.shape[1] != len(names):
            raise ValueError(f"mean must have shape (n, {len(names)}) for {names}, got {mean.shape}")
        n = mean.shape[0]
        object.__setattr__(self, "mean", mean)
        for field in ("std", "lo68", "hi68", "lo95", "hi95"):
            object.__setattr__(self, field, _matrix(field, getattr(self, field), mean.shape))
        seconds = np.asarray(self.seconds, dtype=np.float64)
        ok = np.asarray(self.ok)
        if seconds.shape != (n,) or ok.shape != (n,) or ok.dtype != np.bool_:
            raise ValueError(
                f"seconds and ok must have shape ({n},) (ok of bool), got {seconds.shape}, {ok.shape}"
            )
        status = tuple(str(s) for s in self.status)
        if len(status) != n:
            raise ValueError(f"status must have {n} entries, got {len(status)}")
        object.__setattr__(self, "seconds", seconds)
        object.__setattr__(self, "status", status)

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.mean.shape[0])

    def index(self, name: str) -> int:
        """Column of parameter ``name``; ``ValueError`` listing the names otherwise."""
        if name not in self.names:
            raise ValueError(f"{self.method} has no parameter {name!r}; parameters: {', '.join(self.names)}")
        return self.names.index(name)

    @classmethod
    def from_samples(
        cls,
        method: str,
        names: Sequence[str],
        samples: ArrayLike | Sequence[ArrayLike],
        *,
        seconds: ArrayLike | None = None,
        ok: ArrayLike | None = None,
        status: Sequence[str] | None = None,
    ) -> Estimates:
        """Summaries of posterior samples: mean, standard deviation and sample quantiles.

        Parameters
        ----------
        method : str
        names : sequence of str, length p
        samples : array_like, shape (n, n_samples, p), or a sequence of n arrays (n_samples_i, p)
            Posterior draws per observation.  A column that is NaN in every draw of an observation
            (a parameter the method does not estimate) gives NaN summaries; a partly NaN column is an
            error.
        seconds : array_like, shape (n,), optional
            Wall time per observation (default NaN).
        ok, status : optional
            Default: every observation ok.

        Returns
        -------
        Estimates
            Intervals are the empirical quantiles ``(1 -+ level) / 2`` for each level of :data:`LEVELS`.

        Examples
        --------
        >>> draws = np.random.default_rng(0).normal(3.0, 2.0, (1, 100_000, 1))
        >>> est = Estimates.from_samples("demo", ["x"], draws)
        >>> np.round([est.mean[0, 0], est.std[0, 0], est.lo95[0, 0], est.hi95[0, 0]], 1)
        array([ 3. ,  2. , -0.9,  6.9])
        """
        names = tuple(names)
        rows = list(samples)  # an (n, n_samples, p) array or a sequence of (n_samples_i, p) arrays
        n, p = len(rows), len(names)
        q = np.array([(1 - LEVELS[0]) / 2, (1 + LEVELS[0]) / 2, (1 - LEVELS[1]) / 2, (1 + LEVELS[1]) / 2])
        mean, std = np.full((n, p), np.nan), np.full((n, p), np.nan)
        quant = np.full((4, n, p), np.nan)
        for i, row in enumerate(rows):
            x = np.asarray(row, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != p or x.shape[0] < 2:
                raise ValueError(
                    f"samples of observation {i} must have shape (n_samples >= 2, {p}), got {x.shape}"
                )
            finite = np.isfinite(x)
            empty = ~finite.any(axis=0)
            partial = ~finite.all(axis=0) & ~empty
            if partial.any():
                bad = [names[k] for k in np.flatnonzero(partial)]
                raise ValueError(f"samples of observation {i} are partly NaN or inf for {', '.join(bad)}")
            cols = np.flatnonzero(~empty)
            mean[i, cols] = x[:, cols].mean(axis=0)
            std[i, cols] = x[:, cols].std(axis=0, ddof=1)
            quant[:, i, cols] = np.quantile(x[:, cols], q, axis=0)
        return cls(
            method=method,
            names=names,
            mean=mean,
            std=std,
            lo68=quant[0],
            hi68=quant[1],
            lo95=quant[2],
            hi95=quant[3],
            **_bookkeeping(n, seconds, ok, status),
        )

    @classmethod
    def from_gaussian(
        cls,
        method: str,
        names: Sequence[str],
        mean: ArrayLike,
        std: ArrayLike,
        *,
        seconds: ArrayLike | None = None,
        ok: ArrayLike | None = None,
        status: Sequence[str] | None = None,
    ) -> Estimates:
        """Gaussian summaries, e.g. maximum-likelihood fits with Hessian errors.

        The intervals are ``mean +- z std`` with ``z = Phi^-1((1 + level) / 2)`` (0.994 for 68 %, 1.960
        for 95 %).  Arguments as in :meth:`from_samples`, with ``mean`` and ``std`` of shape (n, p).

        Examples
        --------
        >>> est = Estimates.from_gaussian("fit", ["x"], [[1.0]], [[0.5]])
        >>> round(float(est.lo95[0, 0]), 3), round(float(est.hi68[0, 0]), 3)
        (0.02, 1.497)
        """
        names = tuple(names)
        m = np.asarray(mean, dtype=np.float64)
        s = _matrix("std", std, m.shape)
        z68, z95 = (float(_normal.ppf((1 + level) / 2)) for level in LEVELS)
        return cls(
            method=method,
            names=names,
            mean=m,
            std=s,
            lo68=m - z68 * s,
            hi68=m + z68 * s,
            lo95=m - z95 * s,
            hi95=m + z95 * s,
            **_bookkeeping(m.shape[0] if m.ndim else 0, seconds, ok, status),
        )


def _bookkeeping(
    n: int, seconds: ArrayLike | None, ok: ArrayLike | None, status: Sequence[str] | None
) -> dict[str, Any]:
    ok_arr = np.ones(n, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    return {
        "seconds": np.full(n, np.nan) if seconds is None else np.asarray(seconds, dtype=np.float64),
        "ok": ok_arr,
        "status": tuple("ok" if o else "not ok" for o in ok_arr) if status is None else tuple(status),
    }


# --------------------------------------------------------------------------------------------- the dataset


def _class(dataset: SimDataset, class_name: str) -> tuple[int, PSDModel, JointPrior]:
    names = dataset.config.class_names
    if class_name not in names:
        raise ValueError(f"class_name must be one of {', '.join(names)}, got {class_name!r}")
    label = names.index(class_name)
    spec = dataset.config.classes[label]
    return label, spec.model, spec.prior


def class_indices(dataset: SimDataset, class_name: str = "qpo", split: str = "test") -> NDArray[np.int64]:
    """Rows of ``split`` (``"train"``, ``"validation"``, ``"test"``) whose label is ``class_name``."""
    label, _, _ = _class(dataset, class_name)
    rows = dataset.split_indices(split)
    return rows[dataset.array("labels")[rows] == label]


def observation_truths(dataset: SimDataset, indices: ArrayLike, names: Sequence[str]) -> FloatArray:
    """True parameters (n, p) of the rows ``indices``, columns ``names`` of the dataset's ``params``."""
    idx = _indices(dataset, indices)
    cols = []
    for name in names:
        if name not in dataset.param_names:
            raise ValueError(
                f"dataset has no parameter {name!r}; parameters: {', '.join(dataset.param_names)}"
            )
        cols.append(dataset.param_names.index(name))
    return dataset.array("params")[np.ix_(idx, cols)]


def _indices(dataset: SimDataset, indices: ArrayLike) -> NDArray[np.int64]:
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty 1-d array of row numbers, got {indices!r}")
    if idx.min() < 0 or idx.max() >= dataset.n:
        raise ValueError(f"indices must lie in [0, {dataset.n}), got min {idx.min()} and max {idx.max()}")
    return idx.astype(np.int64)


@dataclass(frozen=True)
class _Setup:
    """What every runner needs of the dataset: parameter names, the class model and prior, the detector."""

    names: tuple[str, ...]
    psd: PSDModel
    prior: JointPrior
    dead_time: float
    n_modules: int
    background: float
    duration: float


def _setup(dataset: SimDataset, indices: ArrayLike, class_name: str) -> tuple[NDArray[np.int64], _Setup]:
    if not isinstance(dataset, SimDataset):
        raise ValueError(
            f"dataset must be a SimDataset (xtml.data.open_dataset), got {type(dataset).__name__}"
        )
    label, psd, prior = _class(dataset, class_name)
    idx = _indices(dataset, indices)
    labels = dataset.array("labels")[idx]
    if np.any(labels != label):
        bad = idx[labels != label][:5].tolist()
        raise ValueError(f"indices must all be of class {class_name!r}; rows {bad} are not")
    dead = dataset.config.detector.dead_time
    if dead is not None and dead.kind == "nonparalyzable" and not dead.is_constant:
        # a variable dead time: the Zhang model at the mean dead time, as an astronomer would apply it
        dead_time, n_modules = float(dead.value), dataset.config.detector.n_modules
    else:
        dead_time, n_modules = dataset_dead_time(dataset.path)
    o = dataset.config.observation
    return idx, _Setup(
        names=("rate", *psd.param_names),
        psd=psd,
        prior=prior,
        dead_time=dead_time,
        n_modules=n_modules,
        background=float(dataset.config.detector.background_rate),
        duration=o.segment_length * o.n_segments,
    )


def _per_module_rate(mean_rate: float, setup: _Setup, aware: bool) -> float:
    """Total (source + background) rate per module the method believes in: incident or detected."""
    r_d = mean_rate / setup.n_modules
    return r_d / (1.0 - r_d * setup.dead_time) if aware else r_d


def _rate(point: FloatArray, mean_rate: float, setup: _Setup, aware: bool) -> tuple[float, float, float]:
    """Source rate per module, its error and the background factor of the rms (module docstring).

    ``point`` is the fitted PSD parameters (k_src,) as measured against the total mean rate.
    """
    r_tot = _per_module_rate(mean_rate, setup, aware)
    with np.errstate(all="ignore"):
        p0 = float(setup.psd.evaluate(np.zeros(1), point[None, :], check=False)[0, 0])
    rel = math.sqrt(max(p0, 0.0) + 2.0 / mean_rate) / math.sqrt(2.0 * setup.duration)
    return r_tot - setup.background, r_tot * rel, r_tot / (r_tot - setup.background)


def _of_source(theta: FloatArray, factor: float, psd: PSDModel) -> FloatArray:
    """PSD columns (last axis) of the total-rate fractional PSD rescaled to the source alone.

    A fractional rms scales with the mean it is measured against, a PSD normalisation with its square.
    """
    out = np.array(theta, dtype=np.float64)
    for k, name in enumerate(psd.param_names):
        if name.endswith(".rms"):
            out[..., k] *= factor
        elif name.endswith((".norm", ".level")):
            out[..., k] *= factor**2
    return out


# --------------------------------------------------------------------------------------------- runners


def _seeds(rng: RNGLike, n: int) -> NDArray[np.int64]:
    return np.random.default_rng(rng).integers(2**31, size=n)


def _ml(
    method: str,
    dataset: SimDataset,
    indices: ArrayLike,
    class_name: str,
    array: str,
    model_of: Callable[[_Setup], SpectralModel],
    aware: bool,
    bounds: Mapping[str, tuple[float, float]] | None,
    n_starts: int,
    rng: RNGLike,
) -> Estimates:
    idx, setup = _setup(dataset, indices, class_name)
    model = model_of(setup)
    spectra = dataset.spectra(idx, array=array)
    seeds = _seeds(rng, idx.size)
    n, p = idx.size, len(setup.names)
    mean, std = np.full((n, p), np.nan), np.full((n, p), np.nan)
    seconds, ok, status = np.zeros(n), np.zeros(n, dtype=bool), []
    k_src = setup.psd.n_params
    with threadpool_limits(limits=1):
        for i in range(n):
            t0 = time.perf_counter()
            one = spectra.select(i)
            box = dict(bounds) if bounds is not None else default_bounds(model, one)
            try:
                fit = fit_spectra(one, model, box, n_starts=n_starts, workers=1, rng=int(seeds[i]))
            except ValueError as err:  # e.g. an impossible detected rate: record, never drop
                status.append(f"failed: {err}")
                seconds[i] = time.perf_counter() - t0
                continue
            best = fit.params[0, :k_src]
            mean[i, 0], std[i, 0], factor = _rate(best, float(one.mean_rate[0]), setup, aware)
            mean[i, 1:] = _of_source(best, factor, setup.psd)
            std[i, 1:] = _of_source(fit.errors[0, :k_src], factor, setup.psd)
            ok[i] = bool(fit.success[0]) and bool(np.all(np.isfinite(std[i])))
            status.append(fit.status[0])
            seconds[i] = time.perf_counter() - t0
    return Estimates.from_gaussian(method, setup.names, mean, std, seconds=seconds, ok=ok, status=status)


def _naive_model(setup: _Setup) -> SpectralModel:
    return SpectralModel(setup.psd, noise="free")


def naive_fit(
    dataset: SimDataset,
    indices: ArrayLike,
    *,
    class_name: str = "qpo",
    bounds: Mapping[str, tuple[float, float]] | None = None,
    n_starts: int = 4,
    rng: RNGLike = 0,
) -> Estimates:
    """Maximum-likelihood fits with a flat white noise, ignoring dead time; Hessian errors.

    Parameters
    ----------
    dataset : SimDataset
    indices : array_like of int, shape (n,)
        Rows to fit, all of class ``class_name``.
    class_name : str
        The class whose PSD model is fitted (its parameters are reported).
    bounds : mapping name -> (low, high), optional
        Fit box for the model's parameters (``noise.level`` included); default
        :func:`~xtml.reference.default_bounds` of each spectrum (wide, independent of the prior).
    n_starts : int
        Starts per fit (:func:`~xtml.reference.fit_spectra`).
    rng : Generator, int or None
        Source of the random starts.

    Returns
    -------
    Estimates
        ``"rate"`` is the detected rate per module minus the background (module docstring); ``ok`` is
        the fit's ``status == "ok"`` (``"at bound: ..."`` is not ok) with finite errors.
    """
    return _ml("naive_fit", dataset, indices, class_name, "power", _naive_model, False, bounds, n_starts, rng)


def zhang_fit(
    dataset: SimDataset,
    indices: ArrayLike,
    *,
    class_name: str = "qpo",
    noise: NoiseKind = "free",
    bounds: Mapping[str, tuple[float, float]] | None = None,
    n_starts: int = 4,
    rng: RNGLike = 0,
) -> Estimates:
    """Maximum-likelihood fits with the dead-time-aware model; Hessian errors.

    The white noise has the Zhang et al. (1995) shape at the detected rate per module, the source the
    dead-time gain :math:`(1 - r_d\\tau)^2` (:class:`~xtml.reference.SpectralModel` with the dataset's dead
    time and module count, :func:`~xtml.reference.fitcli.dataset_dead_time`); ``noise="free"`` lets the
    level of Zhang's shape float, ``"poisson"`` fixes it.  ``"rate"`` is the dead-time-corrected incident
    source rate per module.  Other arguments as in :func:`naive_fit`.
    """

    def model_of(setup: _Setup) -> SpectralModel:
        return SpectralModel(setup.psd, noise=noise, dead_time=setup.dead_time, n_modules=setup.n_modules)

    return _ml("zhang_fit", dataset, indices, class_name, "power", model_of, True, bounds, n_starts, rng)


def fad_fit(
    dataset: SimDataset,
    indices: ArrayLike,
    *,
    class_name: str = "qpo",
    bounds: Mapping[str, tuple[float, float]] | None = None,
    n_starts: int = 4,
    rng: RNGLike = 0,
) -> Estimates:
    """Maximum-likelihood fits of the FAD-corrected spectrum (``power_fad``) with a flat white noise.

    FAD (Bachetti & Huppenkothen 2018) flattens the dead-time-distorted white noise and restores the
    incident fractional rms without a model of the dead time.  ``"rate"`` is the live-time-corrected
    rate, which for a constant non-paralyzable dead time is the incident rate of :func:`zhang_fit`.
    Other arguments as in :func:`naive_fit`.
    """
    return _ml(
        "fad_fit", dataset, indices, class_name, "power_fad", _naive_model, True, bounds, n_starts, rng
    )


def _inside(x: FloatArray, prior: JointPrior) -> FloatArray:
    """``x`` moved 0.1 % of each prior box inside the box (an MCMC start must have a finite posterior)."""
    lo = np.array([p.support[0] for p in prior.priors.values()])
    hi = np.array([p.support[1] for p in prior.priors.values()])
    margin = 1e-3 * (hi - lo)
    return np.clip(x, lo + margin, hi - margin)


def naive_mcmc(
    dataset: SimDataset,
    indices: ArrayLike,
    *,
    class_name: str = "qpo",
    n_walkers: int = 32,
    n_steps: int = 1000,
    max_steps: int = 10000,
    min_ess: int = 400,
    start_from_fit: bool = True,
    rng: RNGLike = 0,
) -> Estimates:
    """Whittle posteriors with a flat white noise (dead time ignored), sampled with emcee.

    What a careful user who does not know about dead time would do: the class prior on the source
    parameters, a log-uniform prior over 0.1-10 times the Poisson level on the free white level, and
    :func:`~xtml.reference.sample_posterior` until converged or ``max_steps``.  Chains that did not
    converge are kept and marked not ok (their status says why); an observation whose sampler could
    not start is kept as NaN with status ``"failed: ..."``.

    Parameters
    ----------
    dataset, indices, class_name
        As in :func:`naive_fit`.
    n_walkers, n_steps, max_steps, min_ess
        Passed to :func:`~xtml.reference.sample_posterior`.
    start_from_fit : bool
        Start the walkers around the naive maximum-likelihood fit (moved inside the prior), which
        shortens the burn-in; its time counts in ``seconds``.  Otherwise start from prior draws.
    rng : Generator, int or None
        Source of all randomness (starts, moves, the Gaussian draws of the rate).

    Returns
    -------
    Estimates
        Sample summaries; ``"rate"`` as in :func:`naive_fit`, drawn from its Gaussian error.
    """
    idx, setup = _setup(dataset, indices, class_name)
    model = _naive_model(setup)
    spectra = dataset.spectra(idx)
    gen = np.random.default_rng(rng)
    seeds = gen.integers(2**31, size=(idx.size, 2))
    n = idx.size
    rows: list[FloatArray] = []
    seconds, ok, status = np.zeros(n), np.zeros(n, dtype=bool), []
    k_src = setup.psd.n_params
    with threadpool_limits(limits=1):
        for i in range(n):
            t0 = time.perf_counter()
            one = spectra.select(i)
            level = float(one.poisson_level()[0])
            prior = JointPrior({**setup.prior.priors, "noise.level": LogUniform(0.1 * level, 10.0 * level)})
            prior = JointPrior({name: prior.priors[name] for name in model.param_names})
            try:
                start = None
                if start_from_fit:
                    fit = fit_spectra(one, model, default_bounds(model, one), workers=1, rng=int(seeds[i, 0]))
                    start = _inside(fit.params[0], prior)
                result = _sample(
                    one, model, prior, start, n_walkers, n_steps, max_steps, min_ess, int(seeds[i, 1])
                )
            except ValueError as err:  # kept as a NaN row, never dropped
                rows.append(np.full((2, len(setup.names)), np.nan))
                status.append(f"failed: {err}")
                seconds[i] = time.perf_counter() - t0
                continue
            draws = result.samples[:, :k_src]
            rate, rate_err, factor = _rate(np.median(draws, axis=0), float(one.mean_rate[0]), setup, False)
            rate_draws = gen.normal(rate, rate_err, size=(draws.shape[0], 1))
            rows.append(np.hstack([rate_draws, _of_source(draws, factor, setup.psd)]))
            ok[i] = bool(result.converged)
            status.append(result.status)
            seconds[i] = time.perf_counter() - t0
    return Estimates.from_samples("naive_mcmc", setup.names, rows, seconds=seconds, ok=ok, status=status)


def _sample(
    spectrum: PowerSpectrum,
    model: SpectralModel,
    prior: JointPrior,
    start: FloatArray | None,
    n_walkers: int,
    n_steps: int,
    max_steps: int,
    min_ess: int,
    seed: int,
) -> MCMCResult:
    kwargs = {
        "n_walkers": n_walkers,
        "n_steps": n_steps,
        "max_steps": max_steps,
        "min_ess": min_ess,
        "rng": seed,
    }
    try:
        return sample_posterior(spectrum, model, prior, start=start, **kwargs)
    except ValueError:
        if start is None:
            raise
    # the fit's point had no finite posterior: start from prior draws instead
    return sample_posterior(spectrum, model, prior, start=None, **kwargs)


# --------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ComparisonRow:
    """One method, one parameter, one rate bin of :func:`comparison_table`.

    Point-estimate metrics (``bias``, ``frac_bias``, ``rmse``) use every observation with a finite
    estimate, ok or not, so that failures cannot hide a bias (``point_from = "all"``), or the ok ones
    only (``"ok"``); interval metrics (``coverage68``, ``coverage95``, ``width68``) always use the ok
    ones only.  NaN means "n/a" (not estimated, or no observations).

    Attributes
    ----------
    method, parameter : str
    rate_bin : (float, float) or None
        ``[low, high)`` of the binning rate (the last bin includes ``high``); None for all rates.
    n : int
        Observations in the bin.
    n_not_ok : int
        Of those, how many the method did not vouch for.
    point_from : {"all", "ok"}
        Which observations the point-estimate metrics use.
    bias, frac_bias, rmse : float
        ``mean(est - truth)``, ``mean((est - truth) / truth)``, ``sqrt(mean((est - truth)^2))``.
    coverage68, coverage95 : float
        Fraction of ok observations whose truth lies in the 68 % (95 %) interval.
    width68 : float
        Mean width of the 68 % interval over the ok observations.
    seconds : float
        Median wall time per observation, s.
    """

    method: str
    parameter: str
    rate_bin: tuple[float, float] | None
    n: int
    n_not_ok: int
    point_from: PointFrom
    bias: float
    frac_bias: float
    rmse: float
    coverage68: float
    coverage95: float
    width68: float
    seconds: float

    @property
    def bin_label(self) -> str:
        """``"all"`` or ``"[low, high)"``."""
        if self.rate_bin is None:
            return "all"
        return f"[{self.rate_bin[0]:g}, {self.rate_bin[1]:g})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None, ``rate_bin`` -> [low, high] or ``"all"``)."""
        out: dict[str, Any] = {"method": self.method, "parameter": self.parameter}
        out["rate_bin"] = "all" if self.rate_bin is None else [float(v) for v in self.rate_bin]
        out["n"], out["n_not_ok"], out["point_from"] = int(self.n), int(self.n_not_ok), self.point_from
        for key in ("bias", "frac_bias", "rmse", "coverage68", "coverage95", "width68", "seconds"):
            value = float(getattr(self, key))
            out[key] = value if math.isfinite(value) else None
        return out


def _mean(x: FloatArray) -> float:
    return float(x.mean()) if x.size else math.nan


def _row(
    est: Estimates,
    name: str,
    truth: FloatArray,
    sel: NDArray[np.bool_],
    rate_bin: tuple[float, float] | None,
    point_from: PointFrom,
) -> ComparisonRow:
    n = int(sel.sum())
    seconds = est.seconds[sel]
    seconds = seconds[np.isfinite(seconds)]
    common = {
        "method": est.method,
        "parameter": name,
        "rate_bin": rate_bin,
        "n": n,
        "n_not_ok": int((~est.ok[sel]).sum()),
        "point_from": point_from,
        "seconds": float(np.median(seconds)) if seconds.size else math.nan,
    }
    if name not in est.names:
        nan = math.nan
        return ComparisonRow(
            **common, bias=nan, frac_bias=nan, rmse=nan, coverage68=nan, coverage95=nan, width68=nan
        )
    k = est.index(name)
    t = truth[sel]
    m, lo68, hi68, lo95, hi95 = (a[sel, k] for a in (est.mean, est.lo68, est.hi68, est.lo95, est.hi95))
    point = np.isfinite(m) & np.isfinite(t) & (est.ok[sel] if point_from == "ok" else True)
    err = m[point] - t[point]
    nonzero = t[point] != 0
    interval = est.ok[sel] & np.isfinite(t) & np.isfinite(lo68) & np.isfinite(hi68)
    interval95 = est.ok[sel] & np.isfinite(t) & np.isfinite(lo95) & np.isfinite(hi95)
    return ComparisonRow(
        **common,
        bias=_mean(err),
        frac_bias=_mean(err[nonzero] / t[point][nonzero]),
        rmse=math.sqrt(_mean(err**2)) if err.size else math.nan,
        coverage68=_mean(((lo68 <= t) & (t <= hi68))[interval].astype(float)),
        coverage95=_mean(((lo95 <= t) & (t <= hi95))[interval95].astype(float)),
        width68=_mean((hi68 - lo68)[interval]),
    )


def comparison_table(
    truths: ArrayLike,
    rates: ArrayLike,
    estimates: Sequence[Estimates],
    names: Sequence[str],
    *,
    rate_bins: ArrayLike | None = None,
    point_from: PointFrom = "all",
) -> list[ComparisonRow]:
    """Bias, RMSE, coverage, width and time of each method, per parameter and rate bin.

    Parameters
    ----------
    truths : array_like, shape (n, p)
        True parameters of the ``n`` observations, columns ``names``.
    rates : array_like, shape (n,)
        The rate that bins the observations (e.g. the true incident rate per module).
    estimates : sequence of Estimates
        One per method, each for the same ``n`` observations in the same order; a parameter of
        ``names`` that an Estimates lacks (or has all NaN) shows as n/a.
    names : sequence of str, length p
    rate_bins : array_like, optional
        Increasing bin edges; each bin is ``[edge_i, edge_i+1)``, the last closed.  Default: no bins.
    point_from : {"all", "ok"}
        Observations of the bias, fractional bias and RMSE: every finite estimate (default, failures
        cannot hide a bias) or the ok ones (what a user who discards failed fits would quote).
        Coverage and width always use the ok ones.

    Returns
    -------
    list of ComparisonRow
        For each parameter, each bin and then all rates, each method (in the given order).

    Examples
    --------
    >>> truth = np.zeros((4, 1))
    >>> est = Estimates.from_gaussian("m", ["x"], [[0.5], [-0.5], [0.5], [3.0]], np.ones((4, 1)))
    >>> row = comparison_table(truth, [1, 1, 2, 2], [est], ["x"])[0]
    >>> row.n, row.bias, row.coverage68, row.bin_label
    (4, 0.875, 0.75, 'all')
    """
    if point_from not in ("all", "ok"):
        raise ValueError(f"point_from must be 'all' or 'ok', got {point_from!r}")
    names = tuple(names)
    t = np.asarray(truths, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(names):
        raise ValueError(f"truths must have shape (n, {len(names)}) for {names}, got {t.shape}")
    n = t.shape[0]
    r = np.asarray(rates, dtype=np.float64)
    if r.shape != (n,):
        raise ValueError(f"rates must have shape ({n},), got {r.shape}")
    for est in estimates:
        if not isinstance(est, Estimates) or est.n != n:
            what = est.n if isinstance(est, Estimates) else type(est).__name__
            raise ValueError(f"every estimate must be an Estimates of {n} observations, got {what}")
    bins: list[tuple[tuple[float, float] | None, NDArray[np.bool_]]] = []
    if rate_bins is not None:
        edges = np.asarray(rate_bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
            raise ValueError(f"rate_bins must be at least two finite increasing edges, got {rate_bins!r}")
        for j, (lo, hi) in enumerate(pairwise(edges)):
            upper = r <= hi if j == edges.size - 2 else r < hi
            bins.append(((float(lo), float(hi)), (r >= lo) & upper))
    bins.append((None, np.ones(n, dtype=bool)))
    return [
        _row(est, name, t[:, k], sel, rate_bin, point_from)
        for k, name in enumerate(names)
        for rate_bin, sel in bins
        for est in estimates
    ]


def _fmt(value: float, percent: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def to_markdown(rows: Sequence[ComparisonRow]) -> str:
    """A Markdown table of :func:`comparison_table` rows (fractions in per cent, NaN as "n/a")."""
    head = (
        "| parameter | rate bin | method | n | not ok | bias | frac. bias | RMSE | cov. 68% | cov. 95% "
        "| width 68% | s/obs |"
    )
    lines = [head, "|" + "---|" * 12]
    for row in rows:
        cells = [
            row.parameter,
            row.bin_label,
            row.method,
            str(row.n),
            str(row.n_not_ok),
            _fmt(row.bias),
            _fmt(row.frac_bias, percent=True),
            _fmt(row.rmse),
            _fmt(row.coverage68, percent=True),
            _fmt(row.coverage95, percent=True),
            _fmt(row.width68),
            _fmt(row.seconds),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
