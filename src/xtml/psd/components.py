"""Power-spectral shapes of X-ray sources, evaluated for a batch of parameter vectors.

Every component returns a power spectral density in fractional-rms normalisation,
``(rms / mean)^2 / Hz``, single-sided (defined on ``nu > 0``), so that its integral over
``(0, inf)`` is the fractional variance it contributes.  This is the normalisation the
simulator uses to make light curves and the one ``xtml.timing`` calls ``"frac"``.

Parameters arrive as a 2-D array ``(n, n_params)`` in the order given by the component's
``param_names``; frequencies as a 1-D array ``(n_freq,)``; the result is ``(n, n_freq)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BendingPowerLaw",
    "Component",
    "Constant",
    "Lorentzian",
    "PowerLaw",
    "ZeroCentredLorentzian",
    "check_params",
    "params_within_bounds",
    "power_law_band_integral",
]

FloatArray = NDArray[np.float64]
ArrayLike2D = NDArray[np.float64] | list[list[float]] | list[float]


def _in_range(col: FloatArray, bound: tuple[float, float, bool, bool]) -> NDArray[np.bool_]:
    """True where ``col`` lies in the (half-)open or closed interval ``bound`` (False for NaN)."""
    low, high, low_in, high_in = bound
    with np.errstate(invalid="ignore"):
        above = col >= low if low_in else col > low
        below = col <= high if high_in else col < high
    return above & below


def params_within_bounds(
    params: FloatArray, names: tuple[str, ...], bounds: dict[str, tuple[float, float, bool, bool]]
) -> NDArray[np.bool_]:
    """Rows of ``params`` (n, len(names)) whose values are all finite and inside ``bounds``; shape (n,).

    The non-raising twin of :func:`check_params`, for samplers and optimisers.
    """
    ok = np.all(np.isfinite(params), axis=1)
    for k, name in enumerate(names):
        ok &= _in_range(params[:, k], bounds[name])
    return ok


def check_params(
    params: FloatArray,
    names: tuple[str, ...],
    bounds: dict[str, tuple[float, float, bool, bool]],
    *,
    prefix: str = "",
) -> None:
    """Raise ``ValueError`` naming the first parameter outside its allowed range.

    Parameters
    ----------
    params : ndarray, shape (n, len(names))
    names : tuple of str
        Parameter names, in column order.
    bounds : dict
        ``name -> (low, high, low_inclusive, high_inclusive)``.
    prefix : str
        Prepended to the name in messages (e.g. ``"qpo."``).
    """
    for k, name in enumerate(names):
        col = params[:, k]
        bad = ~np.isfinite(col)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"parameter {prefix}{name} must be finite, got {float(col[i])!r} (row {i})")
        low, high, low_in, high_in = bounds[name]
        bad = ~_in_range(col, bounds[name])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            lo_b = "[" if low_in else "("
            hi_b = "]" if high_in else ")"
            raise ValueError(
                f"parameter {prefix}{name} = {float(col[i])!r} (row {i}) is outside the allowed range "
                f"{lo_b}{low}, {high}{hi_b}"
            )


def _as_batch(params: ArrayLike2D, n_params: int, what: str) -> FloatArray:
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2 or arr.shape[1] != n_params:
        raise ValueError(f"{what} parameters must have shape (n, {n_params}), got {np.shape(params)}")
    return arr


_INF = float("inf")
_POSITIVE = (0.0, _INF, False, False)


@dataclass(frozen=True)
class Component:
    """Base class of a PSD component; subclasses define ``param_names``, ``bounds`` and ``_evaluate``."""

    param_names: ClassVar[tuple[str, ...]] = ()
    bounds: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {}
    kind: ClassVar[str] = ""

    def evaluate(self, freq: NDArray[np.float64], params: ArrayLike2D, *, check: bool = True) -> FloatArray:
        """Evaluate the PSD.

        Parameters
        ----------
        freq : ndarray, shape (n_freq,)
            Frequencies in Hz, all > 0.
        params : array_like, shape (n, n_params) or (n_params,)
            Parameter vectors in the order of ``param_names``.
        check : bool
            Validate parameters against ``bounds`` (turn off only in hot loops on checked input).

        Returns
        -------
        ndarray, shape (n, n_freq)
            Power density in (rms/mean)^2 / Hz.
        """
        p = _as_batch(params, len(self.param_names), type(self).__name__)
        if check:
            check_params(p, self.param_names, self.bounds)
        f = np.asarray(freq, dtype=np.float64)
        if f.ndim != 1:
            raise ValueError(f"freq must be 1-D, got shape {f.shape}")
        return self._evaluate(f[np.newaxis, :], [p[:, k, np.newaxis] for k in range(p.shape[1])])

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        raise NotImplementedError

    def variance(self, params: ArrayLike2D, f_low: float = 0.0, f_high: float = _INF) -> FloatArray:
        """Fractional variance (rms^2) in ``[f_low, f_high]``, by numerical integration. Shape (n,)."""
        from scipy.integrate import quad

        p = _as_batch(params, len(self.param_names), type(self).__name__)
        out = np.empty(p.shape[0])
        for i, row in enumerate(p):

            def fun(x: float, row: FloatArray = row) -> float:
                return float(self.evaluate(np.array([x]), row)[0, 0])

            out[i] = quad(fun, f_low, f_high, limit=500, points=None)[0]
        return out


def power_law_band_integral(index: ArrayLike2D, f_low: float, f_high: float) -> FloatArray:
    """``int_{f_low}^{f_high} nu^(-index) d nu`` for an array of indices (same shape as ``index``).

    Exact, and smooth through ``index = 1`` (where it is ``ln(f_high / f_low)``): with
    ``x = (1 - index) ln(f_high / f_low)`` the integral is ``f_low^(1 - index) ln(f_high / f_low)
    expm1(x) / x``.
    """
    a = np.asarray(index, dtype=np.float64)
    span = math.log(f_high / f_low)
    x = (1.0 - a) * span
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    ratio = np.where(small, 1.0 + 0.5 * x, np.expm1(safe) / safe)
    return f_low ** (1.0 - a) * span * ratio


def _check_band(band: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"rms_band must be two frequencies (low, high) in Hz, got {band!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
        raise ValueError(f"rms_band must satisfy 0 < low < high (finite, Hz), got ({lo!r}, {hi!r})")
    return lo, hi


@dataclass(frozen=True)
class PowerLaw(Component):
    """Power law ``P(nu) = norm * nu^(-index)``.

    ``norm`` is the power density at 1 Hz in (rms/mean)^2/Hz.  Its integral diverges at
    ``nu -> 0`` for ``index >= 1``: the variance of a simulated light curve then depends on
    its length, which is the physics of red noise, not a bug.

    With ``rms_band = (f_low, f_high)`` the component is parametrised as observers quote red noise:
    by its fractional ``rms`` over that band (Hz) and its ``index``,

    .. math::

        P(\\nu) = \\frac{r^2\\, \\nu^{-\\alpha}}
        {\\int_{f_\\mathrm{low}}^{f_\\mathrm{high}} \\nu'^{-\\alpha}\\, d\\nu'},

    so that a prior "index 0.8-2.0, rms 0.05-0.3 over 0.1-10 Hz" is one class.  Parameters are then
    ``("rms", "index")``, ``rms`` in (0, 1]; the configuration name is ``"powerlaw_rms:0.1-10"``.
    """

    rms_band: tuple[float, float] | None = None
    kind: ClassVar[str] = "powerlaw"

    def __post_init__(self) -> None:
        if self.rms_band is not None:
            object.__setattr__(self, "rms_band", _check_band(self.rms_band))

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("norm", "index") if self.rms_band is None else ("rms", "index")

    @property
    def bounds(self) -> dict[str, tuple[float, float, bool, bool]]:  # type: ignore[override]
        first = {"norm": _POSITIVE} if self.rms_band is None else {"rms": (0.0, 1.0, False, True)}
        return {**first, "index": (-5.0, 5.0, True, True)}

    def norm_at_1hz(self, params: ArrayLike2D) -> FloatArray:
        """The normalisation at 1 Hz, (rms/mean)^2/Hz, of each parameter row; shape (n,)."""
        p = _as_batch(params, 2, "PowerLaw")
        if self.rms_band is None:
            return p[:, 0].copy()
        return p[:, 0] ** 2 / power_law_band_integral(p[:, 1], *self.rms_band)

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        first, index = cols
        norm = first if self.rms_band is None else first**2 / power_law_band_integral(index, *self.rms_band)
        return norm * f ** (-index)


@dataclass(frozen=True)
class BendingPowerLaw(Component):
    """Bending power law (McHardy et al. 2004 form).

    ``P(nu) = norm * nu^(-alpha_low) / (1 + (nu / f_bend)^(alpha_high - alpha_low))``;
    slope ``alpha_low`` below the bend frequency ``f_bend`` and ``alpha_high`` above it.
    ``norm`` is the low-frequency power-law normalisation at 1 Hz in (rms/mean)^2/Hz.
    """

    param_names: ClassVar[tuple[str, ...]] = ("norm", "f_bend", "alpha_low", "alpha_high")
    bounds: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "norm": _POSITIVE,
        "f_bend": _POSITIVE,
        "alpha_low": (-5.0, 5.0, True, True),
        "alpha_high": (-5.0, 10.0, True, True),
    }
    kind: ClassVar[str] = "bending_powerlaw"

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        norm, f_bend, a_low, a_high = cols
        return norm * f ** (-a_low) / (1.0 + (f / f_bend) ** (a_high - a_low))


def _lorentzian(f: FloatArray, nu0: FloatArray, delta: FloatArray, rms: FloatArray) -> FloatArray:
    """Belloni, Psaltis & van der Klis (2002) Lorentzian normalised to ``rms^2`` over (0, inf)."""
    norm = rms**2 * delta / np.pi / (0.5 + np.arctan(nu0 / delta) / np.pi)  # (n, 1): cheap
    x = f - nu0  # the one (n, n_freq) allocation; the rest is in place
    np.square(x, out=x)
    x += delta**2
    return np.divide(norm, x, out=x)


@dataclass(frozen=True)
class Lorentzian(Component):
    """Lorentzian QPO in the Belloni, Psaltis & van der Klis (2002) convention.

    .. math::

        P(\\nu) = \\frac{r^2 \\Delta}{\\pi} \\frac{1}{\\Delta^2 + (\\nu - \\nu_0)^2}
                  \\left[\\frac{1}{2} + \\frac{1}{\\pi}\\arctan\\frac{\\nu_0}{\\Delta}\\right]^{-1},
        \\qquad \\Delta = \\mathrm{FWHM} / 2 = \\nu_0 / (2Q),

    which integrates to ``r^2`` over ``(0, inf)``: ``rms`` is the fractional rms of the whole
    component.  Parameters: ``nu0`` (centroid, Hz), ``q`` (quality factor ``nu0 / FWHM``) or
    ``fwhm`` (Hz) depending on ``width``, and ``rms`` in (0, 1].
    """

    width: Literal["q", "fwhm"] = "q"
    kind: ClassVar[str] = "lorentzian"

    def __post_init__(self) -> None:
        if self.width not in ("q", "fwhm"):
            raise ValueError(f"Lorentzian width must be 'q' or 'fwhm', got {self.width!r}")

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("nu0", self.width, "rms")

    @property
    def bounds(self) -> dict[str, tuple[float, float, bool, bool]]:  # type: ignore[override]
        return {"nu0": _POSITIVE, self.width: _POSITIVE, "rms": (0.0, 1.0, False, True)}

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        nu0, width, rms = cols
        delta = nu0 / (2.0 * width) if self.width == "q" else 0.5 * width
        return _lorentzian(f, nu0, delta, rms)


@dataclass(frozen=True)
class ZeroCentredLorentzian(Component):
    """Zero-centred Lorentzian (band-limited noise): ``P = r^2 (2/pi) Delta / (Delta^2 + nu^2)``.

    ``nu_max`` is the half width at half maximum ``Delta``, which for a zero-centred
    Lorentzian equals the characteristic frequency ``sqrt(nu0^2 + Delta^2)`` of Belloni et al.
    (2002); the component integrates to ``rms^2`` over ``(0, inf)``.
    """

    param_names: ClassVar[tuple[str, ...]] = ("nu_max", "rms")
    bounds: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "nu_max": _POSITIVE,
        "rms": (0.0, 1.0, False, True),
    }
    kind: ClassVar[str] = "zero_lorentzian"

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        nu_max, rms = cols
        return _lorentzian(f, np.zeros_like(nu_max), nu_max, rms)


@dataclass(frozen=True)
class Constant(Component):
    """Frequency-independent level ``P = level`` in (rms/mean)^2/Hz (e.g. a white-noise floor)."""

    param_names: ClassVar[tuple[str, ...]] = ("level",)
    bounds: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {"level": (0.0, _INF, True, False)}
    kind: ClassVar[str] = "constant"

    def _evaluate(self, f: FloatArray, cols: list[FloatArray]) -> FloatArray:
        (level,) = cols
        return np.broadcast_to(level, (level.shape[0], f.shape[1])).copy()
