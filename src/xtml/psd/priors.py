"""Priors over model parameters: uniform, log-uniform and fixed, joined into a product prior.

>>> import numpy as np
>>> from xtml.psd import JointPrior, LogUniform, Uniform
>>> prior = JointPrior({"qpo.nu0": LogUniform(1.0, 20.0), "qpo.rms": Uniform(0.05, 0.2)})
>>> theta = prior.sample(3, rng=np.random.default_rng(1))
>>> theta.shape
(3, 2)
>>> bool(np.all(np.isfinite(prior.log_prob(theta))))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Fixed", "JointPrior", "LogUniform", "Prior1D", "Uniform", "prior_from_config"]

FloatArray = NDArray[np.float64]


def _check_finite(**values: float) -> None:
    for name, v in values.items():
        if not np.isfinite(v):
            raise ValueError(f"prior {name} must be finite, got {v!r}")


@dataclass(frozen=True)
class Prior1D:
    """Base of one-dimensional priors: ``sample(n, rng)`` and ``log_prob(x)``."""

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` values, shape (n,)."""
        raise NotImplementedError

    def log_prob(self, x: FloatArray) -> FloatArray:
        """Log density at ``x`` (``-inf`` outside the support), same shape as ``x``."""
        raise NotImplementedError

    @property
    def support(self) -> tuple[float, float]:
        """Closed interval holding all the prior mass."""
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """The configuration-file form of this prior."""
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Prior1D):
    """Uniform on ``[low, high]``: density ``1 / (high - low)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_finite(low=self.low, high=self.high)
        if not self.high > self.low:
            raise ValueError(f"Uniform prior needs low < high, got low={self.low}, high={self.high}")

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        return rng.uniform(self.low, self.high, size=n)

    def log_prob(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        inside = (x >= self.low) & (x <= self.high)
        return np.where(inside, -np.log(self.high - self.low), -np.inf)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_config(self) -> dict[str, Any]:
        return {"dist": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(Prior1D):
    """Log-uniform (Jeffreys) on ``[low, high]``, ``0 < low < high``: density ``1 / (x ln(high/low))``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_finite(low=self.low, high=self.high)
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform prior needs 0 < low < high, got low={self.low}, high={self.high}")

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), size=n))

    def log_prob(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        inside = (x >= self.low) & (x <= self.high)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = -np.log(x) - np.log(np.log(self.high / self.low))
        return np.where(inside, lp, -np.inf)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_config(self) -> dict[str, Any]:
        return {"dist": "loguniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Fixed(Prior1D):
    """A parameter held at ``value`` (a point mass; ``log_prob`` is 0 there, ``-inf`` elsewhere)."""

    value: float

    def __post_init__(self) -> None:
        _check_finite(value=self.value)

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        return np.full(n, float(self.value))

    def log_prob(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        return np.where(x == self.value, 0.0, -np.inf)

    @property
    def support(self) -> tuple[float, float]:
        return (self.value, self.value)

    def to_config(self) -> dict[str, Any]:
        return {"dist": "fixed", "value": self.value}


_DISTS: dict[str, tuple[type[Prior1D], tuple[str, ...]]] = {
    "uniform": (Uniform, ("low", "high")),
    "loguniform": (LogUniform, ("low", "high")),
    "fixed": (Fixed, ("value",)),
}


def prior_from_config(name: str, spec: Mapping[str, Any] | float) -> Prior1D:
    """Build a 1-D prior from its configuration form.

    ``{dist = "uniform", low = 1, high = 2}``, ``{dist = "loguniform", ...}``,
    ``{dist = "fixed", value = 3}`` or a bare number (fixed).
    """
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Fixed(float(spec))
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"prior for {name!r} must be a table like {{dist = 'uniform', low = 0, high = 1}} or a number"
        )
    dist = spec.get("dist")
    if dist not in _DISTS:
        raise ValueError(f"prior for {name!r}: unknown dist {dist!r}; valid: {', '.join(_DISTS)}")
    cls, keys = _DISTS[dist]
    extra = set(spec) - {"dist", *keys}
    missing = [k for k in keys if k not in spec]
    if extra or missing:
        raise ValueError(
            f"prior for {name!r} ({dist}) takes keys {', '.join(keys)}; "
            f"unknown: {sorted(extra) or 'none'}, missing: {missing or 'none'}"
        )
    try:
        return cls(**{k: float(spec[k]) for k in keys})
    except ValueError as err:
        raise ValueError(f"prior for {name!r}: {err}") from None


@dataclass(frozen=True)
class JointPrior:
    """Independent product of 1-D priors over named parameters (in insertion order).

    Parameters
    ----------
    priors : mapping of name -> Prior1D
    """

    priors: Mapping[str, Prior1D]

    def __post_init__(self) -> None:
        for name, p in self.priors.items():
            if not isinstance(p, Prior1D):
                raise ValueError(f"prior for {name!r} must be a Prior1D, got {type(p).__name__}")
        object.__setattr__(self, "priors", dict(self.priors))

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in column order."""
        return tuple(self.priors)

    def require(self, names: Sequence[str]) -> None:
        """Check that this prior covers exactly ``names``; ``ValueError`` listing the differences."""
        missing = [n for n in names if n not in self.priors]
        extra = [n for n in self.priors if n not in names]
        if missing or extra:
            raise ValueError(
                f"prior does not match the parameters; missing: {missing or 'none'}; "
                f"unknown: {extra or 'none'}; valid parameters: {', '.join(names)}"
            )

    def sample(self, n: int, rng: np.random.Generator | int | None) -> FloatArray:
        """Draw ``n`` parameter vectors, shape (n, n_params), columns in ``names`` order."""
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        gen = np.random.default_rng(rng)
        out = np.empty((int(n), len(self.priors)))
        for k, p in enumerate(self.priors.values()):
            out[:, k] = p.sample(int(n), gen)
        return out

    def log_prob(self, theta: FloatArray) -> FloatArray:
        """Joint log density, shape (n,), for ``theta`` of shape (n, n_params)."""
        arr = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if arr.shape[1] != len(self.priors):
            raise ValueError(f"theta must have shape (n, {len(self.priors)}), got {arr.shape}")
        return np.sum([p.log_prob(arr[:, k]) for k, p in enumerate(self.priors.values())], axis=0)

    def to_config(self) -> dict[str, dict[str, Any]]:
        """Configuration form ``name -> {dist = ..., ...}``."""
        return {name: p.to_config() for name, p in self.priors.items()}

    @classmethod
    def from_config(cls, spec: Mapping[str, Any]) -> JointPrior:
        """Inverse of :meth:`to_config`."""
        return cls({name: prior_from_config(name, s) for name, s in spec.items()})
