"""Composite PSD models: named components summed, with one ordered parameter vector.

>>> import numpy as np
>>> from xtml.psd import PSDModel, Lorentzian, ZeroCentredLorentzian
>>> model = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
>>> model.param_names
('broad.nu_max', 'broad.rms', 'qpo.nu0', 'qpo.q', 'qpo.rms')
>>> model.evaluate(np.array([1.0, 5.0]), [[2.0, 0.2, 5.0, 10.0, 0.1]]).shape
(1, 2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.psd.components import (
    ArrayLike2D,
    BendingPowerLaw,
    Component,
    Constant,
    FloatArray,
    Lorentzian,
    PowerLaw,
    ZeroCentredLorentzian,
    check_params,
    params_within_bounds,
)

__all__ = ["COMPONENT_KINDS", "PSDModel", "make_component", "param_index"]


def _lorentzian_fwhm() -> Component:
    return Lorentzian(width="fwhm")


#: Component kinds as named in configuration files.
COMPONENT_KINDS: dict[str, Any] = {
    "powerlaw": PowerLaw,
    "bending_powerlaw": BendingPowerLaw,
    "lorentzian": Lorentzian,
    "lorentzian_fwhm": _lorentzian_fwhm,
    "zero_lorentzian": ZeroCentredLorentzian,
    "constant": Constant,
}


def make_component(kind: str) -> Component:
    """Build a component from its configuration name (see ``COMPONENT_KINDS``).

    ``"powerlaw_rms:LOW-HIGH"`` is a :class:`PowerLaw` parametrised by its fractional rms over
    LOW-HIGH Hz (e.g. ``"powerlaw_rms:0.1-10"``).
    """
    if isinstance(kind, str) and kind.startswith("powerlaw_rms"):
        band = kind[len("powerlaw_rms") :]
        try:
            if not band.startswith(":"):
                raise ValueError
            lo, hi = (float(v) for v in re.split(r"(?<![eE])-", band[1:]))
        except ValueError:
            raise ValueError(
                f"PSD component kind {kind!r}: give the band of the rms in Hz as 'powerlaw_rms:LOW-HIGH', "
                "e.g. 'powerlaw_rms:0.1-10'"
            ) from None
        return PowerLaw(rms_band=(lo, hi))
    try:
        factory = COMPONENT_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown PSD component kind {kind!r}; valid kinds: {', '.join(sorted(COMPONENT_KINDS))}, "
            "powerlaw_rms:LOW-HIGH"
        ) from None
    return factory()


def param_index(names: tuple[str, ...], name: str) -> int:
    """Position of ``name`` in ``names``; ``ValueError`` listing the valid names otherwise."""
    try:
        return names.index(name)
    except ValueError:
        raise ValueError(f"unknown parameter {name!r}; valid parameters: {', '.join(names)}") from None


@dataclass(frozen=True)
class PSDModel:
    """A sum of named components; parameters are ``"<component>.<param>"`` in component order.

    Parameters
    ----------
    components : tuple of (name, Component)
        Names must be unique identifiers without dots.
    """

    components: tuple[tuple[str, Component], ...]

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a PSDModel needs at least one component")
        seen: set[str] = set()
        for name, comp in self.components:
            if not name or "." in name or not name.replace("_", "a").isalnum():
                raise ValueError(
                    f"component name {name!r} must be a non-empty identifier without dots "
                    "(letters, digits, underscores)"
                )
            if name in seen:
                raise ValueError(f"component name {name!r} is used twice")
            if not isinstance(comp, Component):
                raise ValueError(
                    f"component {name!r} must be a xtml.psd Component, got {type(comp).__name__}"
                )
            seen.add(name)

    @classmethod
    def from_components(cls, components: Mapping[str, Component]) -> PSDModel:
        """Build from an ordered mapping ``name -> Component``."""
        return cls(tuple(components.items()))

    @classmethod
    def from_kinds(cls, kinds: Mapping[str, str]) -> PSDModel:
        """Build from an ordered mapping ``name -> kind`` (configuration form)."""
        return cls(tuple((name, make_component(kind)) for name, kind in kinds.items()))

    def to_kinds(self) -> dict[str, str]:
        """Inverse of :meth:`from_kinds`."""
        out = {}
        for name, comp in self.components:
            kind = comp.kind
            if isinstance(comp, Lorentzian) and comp.width == "fwhm":
                kind = "lorentzian_fwhm"
            if isinstance(comp, PowerLaw) and comp.rms_band is not None:
                kind = f"powerlaw_rms:{comp.rms_band[0]!r}-{comp.rms_band[1]!r}"
            out[name] = kind
        return out

    @property
    def param_names(self) -> tuple[str, ...]:
        """Ordered parameter names ``"<component>.<param>"``."""
        return tuple(f"{name}.{p}" for name, comp in self.components for p in comp.param_names)

    @property
    def n_params(self) -> int:
        """Length of the parameter vector."""
        return len(self.param_names)

    def index(self, name: str) -> int:
        """Column of parameter ``name``; ``ValueError`` listing the valid names otherwise."""
        return param_index(self.param_names, name)

    def within_bounds(self, params: ArrayLike2D) -> NDArray[np.bool_]:
        """Rows of ``params`` (n, n_params) inside every allowed range, shape (n,); never raises."""
        arr = self.as_batch(params)
        ok = np.ones(arr.shape[0], dtype=bool)
        for _, comp, sl in self._slices():
            ok &= params_within_bounds(arr[:, sl], comp.param_names, comp.bounds)
        return ok

    def _slices(self) -> list[tuple[str, Component, slice]]:
        out, start = [], 0
        for name, comp in self.components:
            k = len(comp.param_names)
            out.append((name, comp, slice(start, start + k)))
            start += k
        return out

    def as_batch(self, params: ArrayLike2D) -> FloatArray:
        """Return params as a float64 array of shape (n, n_params), checking the shape."""
        arr = np.asarray(params, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[np.newaxis, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_params:
            raise ValueError(
                f"parameters must have shape (n, {self.n_params}) for {self.param_names}, "
                f"got {np.shape(params)}"
            )
        return arr

    def check(self, params: ArrayLike2D, *, nyquist: float | None = None) -> FloatArray:
        """Validate a batch of parameters; return it as (n, n_params) float64.

        Raises ``ValueError`` naming the parameter, the row and the allowed range.  With
        ``nyquist`` given, QPO centroids must lie below the Nyquist frequency.
        """
        arr = self.as_batch(params)
        for name, comp, sl in self._slices():
            check_params(arr[:, sl], comp.param_names, comp.bounds, prefix=f"{name}.")
            if nyquist is not None and isinstance(comp, Lorentzian):
                nu0 = arr[:, sl][:, 0]
                bad = nu0 >= nyquist
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise ValueError(
                        f"parameter {name}.nu0 = {float(nu0[i])!r} (row {i}) is at or above the Nyquist "
                        f"frequency {nyquist} Hz; allowed range (0, {nyquist})"
                    )
        return arr

    def evaluate(self, freq: NDArray[np.float64], params: ArrayLike2D, *, check: bool = True) -> FloatArray:
        """Total PSD, shape (n, n_freq), in (rms/mean)^2/Hz."""
        arr = self.check(params) if check else self.as_batch(params)
        f = np.asarray(freq, dtype=np.float64)
        total = None
        for _, comp, sl in self._slices():
            part = comp.evaluate(f, arr[:, sl], check=False)
            if total is None:
                total = np.array(part, dtype=np.float64)  # own the buffer (a component may broadcast)
            else:
                total += part
        return total

    def evaluate_components(
        self, freq: NDArray[np.float64], params: ArrayLike2D, *, check: bool = True
    ) -> dict[str, FloatArray]:
        """Each component's PSD, ``name -> (n, n_freq)``, for plots and diagnostics."""
        arr = self.check(params) if check else self.as_batch(params)
        f = np.asarray(freq, dtype=np.float64)
        return {name: comp.evaluate(f, arr[:, sl], check=False) for name, comp, sl in self._slices()}
