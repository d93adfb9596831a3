"""The parameter space of a fit: bounds checked against a model, and the unconstrained coordinates.

:func:`bound_pairs` reads fit bounds (:data:`Bounds`: a prior's supports or ``name -> (low, high)``)
for a model's parameters; ``_space`` checks them and chooses each free parameter's transform to
the unconstrained coordinate ``u`` the optimiser works in; ``_Space`` holds the bounds and maps
between parameter vectors and ``u``:

.. math::

    u = \\operatorname{logit}\\frac{x - a}{b - a} \\ \\text{(finite box)}, \\quad
    u = \\operatorname{logit}\\frac{\\ln x - \\ln a}{\\ln b - \\ln a} \\ \\text{(log box)}, \\quad
    u = \\ln(x - a) \\ \\text{or} \\ \\ln(b - x) \\ \\text{(half-open)}, \\quad
    u = x \\ \\text{(unbounded)}.

Also here, shared by the starts (:mod:`xtml.reference.starts`), the optimiser
(:mod:`xtml.reference.optimise`) and :func:`~xtml.reference.fit.fit_spectra`: the slices of each
PSD component's parameters in the parameter vector (``_component_slices``) and the check of the
spectra every fit starts with (``_check_spectra``).  The module docstring of
:mod:`xtml.reference.fit` describes a whole fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from xtml.psd import Fixed, JointPrior, LogUniform
from xtml.reference.likelihood import SpectralModel
from xtml.timing import PowerSpectrum

__all__ = ["Bounds", "bound_pairs"]

FloatArray = NDArray[np.float64]
Bounds = JointPrior | Mapping[str, tuple[float, float]]
"""Fit bounds: a prior (its supports; ``Fixed`` fixes a parameter) or ``name -> (low, high)``."""

# transform kinds of a free parameter
_LOGIT, _LOGLOGIT, _LOWER, _UPPER, _FREE = range(5)
_U_MAX_EXP = 700.0
_INSIDE = 1e-3  # starts on or beyond a box edge are moved this fraction inside


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


def _component_slices(model: SpectralModel) -> list[tuple[Any, slice]]:
    """Each PSD component with the slice of its parameters in the model's parameter vector."""
    out, start = [], 0
    for _, comp in model.psd.components:
        out.append((comp, slice(start, start + len(comp.param_names))))
        start += len(comp.param_names)
    return out


def _check_spectra(spectra: PowerSpectrum) -> None:
    """``ValueError`` unless ``spectra`` is a :class:`~xtml.timing.PowerSpectrum` with every power > 0."""
    if not isinstance(spectra, PowerSpectrum):
        raise ValueError(f"spectra must be a xtml.timing.PowerSpectrum, got {type(spectra).__name__}")
    bad = ~np.all(spectra.power > 0, axis=1)
    if bad.any():
        raise ValueError(
            "the Whittle likelihood needs powers > 0; rows "
            f"{np.flatnonzero(bad)[:10].tolist()} hold powers <= 0"
        )
