r"""A bijection between a prior box and :math:`\mathbb{R}^d`, so that posterior samples never leave the box.

Each inferred parameter :math:`\theta_j` has a lower and an upper bound (the support of its uniform or
log-uniform prior) and a scale :math:`g_j` (the identity, or :math:`\log` for a log-uniform prior). The map

.. math::

    s_j = \frac{g_j(\theta_j) - g_j(a_j)}{g_j(b_j) - g_j(a_j)} \in [0, 1], \qquad
    z_j = \operatorname{logit}(s_j) = \log s_j - \log(1 - s_j)

sends the box :math:`\prod_j [a_j, b_j]` onto :math:`\mathbb{R}^d`, and a uniform or log-uniform prior onto a
standard logistic distribution in each coordinate. A density estimated in ``z`` becomes a density in
``theta`` through the (diagonal) Jacobian

.. math::

    \log\left|\det \frac{\partial z}{\partial \theta}\right| = \sum_j \left[-\log s_j - \log(1 - s_j)
    - \log\bigl(g_j(b_j) - g_j(a_j)\bigr) - [\text{log scale}]\,\log\theta_j\right],

and any ``z`` maps back inside the box: no rejection sampling is needed.

>>> import numpy as np
>>> from xtml.psd import JointPrior, LogUniform, Uniform
>>> box = BoxTransform.from_prior(JointPrior({"nu0": LogUniform(1.0, 20.0), "rms": Uniform(0.05, 0.2)}))
>>> theta = np.array([[4.0, 0.1]])
>>> bool(np.allclose(box.to_box(box.to_unbounded(theta)), theta))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from xtml.psd.priors import Fixed, JointPrior, LogUniform, Uniform

if TYPE_CHECKING:  # torch is optional: only the *_torch methods need it
    import torch

__all__ = ["BoxTransform"]

FloatArray = NDArray[np.float64]
EPS = 1e-12  # s is clipped to [EPS, 1 - EPS] so that parameters exactly on a bound map to finite z


@dataclass(frozen=True, eq=False)
class BoxTransform:
    """Logit map of a product of intervals (linear or logarithmic scale) onto unbounded space.

    Parameters
    ----------
    names : sequence of str
        Parameter names, in column order.
    low, high : array-like of shape (n_params,)
        Finite bounds, ``low < high`` (and ``low > 0`` where ``log`` is true).
    log : array-like of bool, shape (n_params,)
        True for a parameter whose scale is logarithmic (log-uniform prior).

    Notes
    -----
    Arrays of parameters have shape (n, n_params) (a single vector of shape (n_params,) is accepted and
    treated as one row). All methods are vectorised and apply the map of the module docstring; the numpy
    methods compute in float64, the ``*_torch`` methods in the dtype of their input.
    """

    names: tuple[str, ...]
    low: FloatArray
    high: FloatArray
    log: NDArray[np.bool_]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        low = np.array(self.low, dtype=np.float64).reshape(-1)
        high = np.array(self.high, dtype=np.float64).reshape(-1)
        log = np.array(self.log, dtype=bool).reshape(-1)
        d = len(names)
        if d == 0:
            raise ValueError("BoxTransform needs at least one parameter; got an empty list of names")
        if len(set(names)) != d:
            raise ValueError(f"BoxTransform parameter names must be unique; got {names}")
        for label, arr in (("low", low), ("high", high), ("log", log)):
            if arr.shape != (d,):
                raise ValueError(
                    f"BoxTransform {label} must have {d} entries (one per name); got {arr.shape}"
                )
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(f"BoxTransform needs finite bounds with low < high; got low={low}, high={high}")
        if np.any(log & (low <= 0)):
            bad = [n for n, lg, lo in zip(names, log, low, strict=True) if lg and lo <= 0]
            raise ValueError(f"BoxTransform log-scaled parameters need low > 0; not so for {bad}")
        for arr in (low, high, log):
            arr.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", log)
        g_low, g_high = np.where(log, np.log(np.where(log, low, 1.0)), low), np.where(log, np.log(high), high)
        object.__setattr__(self, "_g_low", g_low)
        object.__setattr__(self, "_g_width", g_high - g_low)

    @property
    def n_params(self) -> int:
        """Number of parameters ``d``."""
        return len(self.names)

    @classmethod
    def from_prior(cls, prior: JointPrior, names: Sequence[str] | None = None) -> BoxTransform:
        """The box of the inferred parameters of ``prior``.

        Parameters
        ----------
        prior : JointPrior
            Product prior of :class:`~xtml.psd.Uniform` (linear scale), :class:`~xtml.psd.LogUniform`
            (log scale) and :class:`~xtml.psd.Fixed` parameters.
        names : sequence of str, optional
            Parameters to infer, in column order. Default: every parameter of ``prior`` that is not
            :class:`~xtml.psd.Fixed` (fixed parameters are not inferred), in the prior's order.

        Returns
        -------
        BoxTransform
        """
        if not isinstance(prior, JointPrior):
            raise ValueError(f"prior must be an xtml.psd.JointPrior; got {type(prior).__name__}")
        if names is None:
            names = [n for n, p in prior.priors.items() if not isinstance(p, Fixed)]
        names = list(names)
        unknown = [n for n in names if n not in prior.priors]
        if unknown:
            raise ValueError(f"names {unknown} are not in the prior; valid: {', '.join(prior.names)}")
        low, high, log = [], [], []
        for n in names:
            p = prior.priors[n]
            if isinstance(p, Fixed):
                raise ValueError(
                    f"parameter {n!r} has a Fixed prior ({p.value}): fixed parameters are not inferred"
                )
            if not isinstance(p, Uniform | LogUniform):
                raise ValueError(
                    f"parameter {n!r}: only Uniform and LogUniform priors define a box; got {p!r}"
                )
            low.append(p.low)
            high.append(p.high)
            log.append(isinstance(p, LogUniform))
        return cls(tuple(names), np.array(low), np.array(high), np.array(log))

    def to_config(self) -> dict[str, Any]:
        """JSON-ready form ``{"names": [...], "low": [...], "high": [...], "log": [...]}``."""
        return {
            "names": list(self.names),
            "low": [float(v) for v in self.low],
            "high": [float(v) for v in self.high],
            "log": [bool(v) for v in self.log],
        }

    @classmethod
    def from_config(cls, spec: Mapping[str, Any]) -> BoxTransform:
        """Inverse of :meth:`to_config`."""
        return cls(tuple(spec["names"]), np.array(spec["low"]), np.array(spec["high"]), np.array(spec["log"]))

    def contains(self, theta: ArrayLike) -> NDArray[np.bool_]:
        """Whether each row of ``theta`` (n, n_params) lies in the closed box, shape (n,)."""
        t = self._rows(theta)
        return np.all((t >= self.low) & (t <= self.high), axis=1)

    def _rows(self, theta: ArrayLike) -> FloatArray:
        t = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if t.ndim != 2 or t.shape[1] != self.n_params:
            raise ValueError(f"parameters must have shape (n, {self.n_params}); got {np.shape(theta)}")
        return t

    def _unit(self, theta: FloatArray) -> FloatArray:
        """``s`` of the module docstring, clipped to [EPS, 1 - EPS]."""
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(self.log, np.log(np.where(self.log, theta, 1.0)), theta)
        return np.clip((g - self._g_low) / self._g_width, EPS, 1.0 - EPS)

    def to_unbounded(self, theta: ArrayLike) -> FloatArray:
        """``z = logit(s(theta))``, shape (n, n_params); rows outside the box are clipped onto it first."""
        s = self._unit(self._rows(theta))
        return np.log(s) - np.log1p(-s)

    def to_box(self, z: ArrayLike) -> FloatArray:
        """Inverse map ``theta(z)``, shape (n, n_params), always inside the closed box."""
        u = self._rows(z)
        s = expit(u)  # sigmoid: exact 0 or 1 for extreme z, without floating-point warnings
        g = self._g_low + s * self._g_width
        theta = np.where(self.log, np.exp(np.where(self.log, g, 0.0)), g)
        return np.clip(theta, self.low, self.high)  # rounding of exp(log b) may step just outside

    def log_det_jacobian(self, theta: ArrayLike) -> FloatArray:
        r""":math:`\log|\det \partial z / \partial \theta|` at each row of ``theta``, shape (n,)."""
        t = self._rows(theta)
        s = self._unit(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_theta = np.where(self.log, np.log(np.where(self.log, t, 1.0)), 0.0)
        terms = -np.log(s) - np.log1p(-s) - np.log(self._g_width) - log_theta
        return terms.sum(axis=1)

    # torch versions (differentiable; same maths, in the input's dtype and device)

    def _torch_consts(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        import torch

        def as_t(a: np.ndarray) -> torch.Tensor:  # a copy: the box's arrays are read-only
            return torch.tensor(np.array(a), dtype=like.dtype, device=like.device)

        log = torch.as_tensor(self.log.copy(), device=like.device)
        return as_t(self._g_low), as_t(self._g_width), log, as_t(self.low), as_t(self.high)

    @staticmethod
    def _eps_torch(like: torch.Tensor) -> float:
        """Clipping margin of ``s`` in the dtype of ``like`` (1 - EPS rounds to 1 in float32)."""
        import torch

        return max(EPS, float(torch.finfo(like.dtype).eps))

    def to_unbounded_torch(self, theta: torch.Tensor) -> torch.Tensor:
        """Torch version of :meth:`to_unbounded` (last axis = parameters)."""
        import torch

        g_low, width, log, _, _ = self._torch_consts(theta)
        g = torch.where(log, torch.log(torch.where(log, theta, torch.ones_like(theta))), theta)
        eps = self._eps_torch(theta)
        return torch.logit(((g - g_low) / width).clamp(eps, 1.0 - eps))

    def to_box_torch(self, z: torch.Tensor) -> torch.Tensor:
        """Torch version of :meth:`to_box` (last axis = parameters)."""
        import torch

        g_low, width, log, low, high = self._torch_consts(z)
        g = g_low + torch.sigmoid(z) * width
        theta = torch.where(log, torch.exp(torch.where(log, g, torch.zeros_like(g))), g)
        return torch.minimum(torch.maximum(theta, low), high)

    def log_det_jacobian_torch(self, theta: torch.Tensor) -> torch.Tensor:
        """Torch version of :meth:`log_det_jacobian` (sums over the last axis)."""
        import torch

        g_low, width, log, _, _ = self._torch_consts(theta)
        ones = torch.ones_like(theta)
        log_theta = torch.where(log, torch.log(torch.where(log, theta, ones)), torch.zeros_like(theta))
        g = torch.where(log, log_theta, theta)
        eps = self._eps_torch(theta)
        s = ((g - g_low) / width).clamp(eps, 1.0 - eps)
        return (-torch.log(s) - torch.log1p(-s) - torch.log(width) - log_theta).sum(dim=-1)
