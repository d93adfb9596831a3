"""The maximum-likelihood fit of one spectrum: exact derivatives, trust-region Newton, Hessian errors.

``_Problem`` is the exact Whittle log-likelihood of one spectrum with its analytic gradient and
Hessian (chain rule through the expected powers) in the optimiser's coordinates ``u`` or in the
original parameters; ``_optimise`` runs ``scipy.optimize.minimize(method="trust-exact")`` from one
start and stops on the Newton decrement; ``_fit_one`` fits one spectrum from its starts and
returns the best fit, its errors and covariance (``_covariance``) and its status; ``_one_blas_thread``
limits BLAS to one thread around the many small products.  The module docstring of
:mod:`xtml.reference.fit` describes the optimiser, the errors and the status.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import logit, ndtri
from threadpoolctl import ThreadpoolController

from xtml.reference.likelihood import SpectralModel, log_likelihood, whittle_loglike
from xtml.reference.space import (
    _FREE,
    _INSIDE,
    _LOGIT,
    _LOGLOGIT,
    _LOWER,
    _UPPER,
    _component_slices,
    _Space,
)
from xtml.timing import PowerSpectrum

__all__: list[str] = []  # the fit of one spectrum; the public entry point is xtml.reference.fit

FloatArray = NDArray[np.float64]
_AT_BOUND = 1e-4  # a best fit this close to a bound (box fraction) is flagged "at bound"
_STEP = 1e-4  # central-difference step: in u, and relative in x for the error Hessian
_U_EDGE = -np.log(_AT_BOUND)  # |u| beyond which a box parameter is at its bound
_DECREMENT = 1e-10  # stop when g' H^-1 g (twice the gain a Newton step predicts in log L) is below this
_MAX_ITER = 200
_BIG = 1e300  # -log L where the model is invalid: a finite wall the trust region backs off from


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
            c_rows = self.grid.source_average(comp.evaluate(self.grid.source_freq, rows, check=False))
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
