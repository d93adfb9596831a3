"""Maximum-likelihood fits of power spectra with the exact Whittle likelihood, in batches.

:func:`fit_spectra` maximises :func:`~xtml.reference.likelihood.log_likelihood` (the one likelihood
every xtml method uses) for each row of a :class:`~xtml.timing.PowerSpectrum`, within bounds taken
from a prior's support or given directly, and returns a :class:`FitResult`: best fits, errors and
covariances from the Hessian, maximum log-likelihoods, AIC/BIC and a status per spectrum.

This module checks the arguments and spreads the spectra over worker processes; the parts live
in :mod:`xtml.reference.space` (bounds and transforms), :mod:`xtml.reference.starts` (data-driven
starts) and :mod:`xtml.reference.optimise` (the fit of one spectrum).

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
:math:`-\\log L(u)` with its gradient and Hessian in ``u`` (see ``_Problem`` in
:mod:`xtml.reference.optimise`: the derivatives of the Whittle likelihood with respect to the
expected powers, times central differences of the PSD components).  It stops when the Newton
decrement :math:`g^T H^{-1} g` over the parameters not pressed against a bound is below
:math:`10^{-10}` (the next step would gain less than :math:`10^{-10}` in :math:`\\log L`): a
gradient-norm test depends on the parameters' units and, near the optimum, on the round-off of the
likelihood's large constant terms.  From a data-driven start a fit takes 5-10 iterations; L-BFGS-B
with the same gradients needed about three times more likelihood evaluations and ended on its noisy
function-change test.

*Starts.*  The given or data-driven start (:func:`~xtml.reference.starts.start_values`) plus
``n_starts - 1`` draws inside the bounds, uniform in the base coordinate of a finite box (linear
or log) and :math:`u_0 + \\mathcal{N}(0, 1)` elsewhere, all from ``rng`` in the calling process;
the highest converged maximum is kept.

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

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.psd.model import param_index
from xtml.reference.likelihood import SpectralModel
from xtml.reference.optimise import _fit_one, _one_blas_thread
from xtml.reference.space import Bounds, _check_spectra, _Space, _space
from xtml.reference.starts import _raw_starts
from xtml.simulate.lightcurves import available_cpus
from xtml.timing import PowerSpectrum

__all__ = ["FitResult", "fit_spectra"]

FloatArray = NDArray[np.float64]
#: Pool of ``fit_spectra`` with ``workers > 1``: "process" (default: the fits are Python-bound, so
#: threads share the GIL; ``bench/bench_fit.py`` measures both) or "thread".
_POOL = "process"


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
