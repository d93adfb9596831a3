"""Detector dead time on event lists: non-paralyzable and paralyzable, constant or distributed.

After recording an event, a detector is blind for a dead time ``tau``.  **Non-paralyzable**
(NuSTAR, ~2.5 ms): events arriving while dead are lost and do not extend the dead interval;
**paralyzable**: every arriving event, recorded or not, restarts the dead interval.  The
detected rate of a constant incident rate ``r`` is ``r / (1 + r tau)`` and ``r exp(-r tau)``
respectively (``xtml.reference.detected_rate``).

For a constant ``tau`` the recorded events are identical to Stingray's
``stingray.filters.filter_for_deadtime`` (tested); the arithmetic is done the same way
(non-paralyzable relative to the first event, paralyzable in absolute time).  For a
distributed dead time the paralyzable detector stays dead until the latest end of any earlier
dead interval (Stingray compares with the previous event only, which is the same for a
constant ``tau``).

The live time before each recorded event is returned, as NuSTAR's ``PRIOR`` column records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.simulate.events import check_gti, gti_mask

__all__ = [
    "DEAD_TIME_KINDS",
    "DeadTime",
    "DeadTimeKind",
    "DeadTimeResult",
    "apply_dead_time",
    "binned_dead_time_moments",
    "check_kind",
    "draw_binned_counts",
]

DeadTimeKind = Literal["nonparalyzable", "paralyzable"]
DEAD_TIME_KINDS: tuple[str, ...] = ("nonparalyzable", "paralyzable")
FloatArray = NDArray[np.float64]


def check_kind(kind: str) -> DeadTimeKind:
    """Return ``kind`` if it is a dead-time kind, else a ``ValueError`` listing the allowed ones."""
    if kind not in DEAD_TIME_KINDS:
        raise ValueError(f"dead-time kind must be one of {', '.join(DEAD_TIME_KINDS)}, got {kind!r}")
    return kind  # type: ignore[return-value]


@dataclass(frozen=True)
class DeadTime:
    """Dead-time model of one detector module.

    Parameters
    ----------
    value : float
        Dead time in s (the mean, if ``sigma`` > 0); >= 0.
    kind : {"nonparalyzable", "paralyzable"}
    sigma : float
        Standard deviation of a Gaussian dead time (truncated at 0), s; 0 for a constant.
    samples : tuple of float, optional
        An empirical distribution (e.g. NuSTAR's measured dead times): each event's dead time
        is drawn from these values with replacement; ``value`` must then be their mean.
    binned : bool
        Record binned counts from the counting statistics of a dead-time detector instead of
        event by event (non-paralyzable only; :func:`binned_dead_time_moments`). For bins much longer
        than the dead time, where the event-level simulation of a bright source costs ~rate x
        exposure per observation (an RXTE light curve of Cyg X-2: 4,000 ct/s, 1 s bins): the counts
        of different bins are then independent and only their mean and variance change.
    """

    value: float
    kind: DeadTimeKind = "nonparalyzable"
    sigma: float = 0.0
    samples: tuple[float, ...] | None = field(default=None)
    binned: bool = False

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if not np.isfinite(self.value) or self.value < 0:
            raise ValueError(f"dead time must be finite and >= 0 s, got {self.value!r}")
        if not np.isfinite(self.sigma) or self.sigma < 0:
            raise ValueError(f"dead-time sigma must be finite and >= 0 s, got {self.sigma!r}")
        if self.samples is not None:
            s = np.asarray(self.samples, dtype=np.float64)
            if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
                raise ValueError("dead-time samples must be a non-empty list of finite values >= 0 s")
            if self.sigma > 0:
                raise ValueError("give either sigma (Gaussian) or samples (empirical), not both")
            if not np.isclose(s.mean(), self.value, rtol=1e-6):
                raise ValueError(f"dead time value {self.value} must equal the mean of samples, {s.mean()}")
            object.__setattr__(self, "samples", tuple(float(x) for x in s))
        if self.binned and self.kind != "nonparalyzable":
            raise ValueError(
                f"binned dead time is defined for the non-paralyzable kind only, got kind {self.kind!r}"
            )

    def _moments(self) -> tuple[float, float]:
        """Mean and variance per event of what :meth:`draw` returns (a Gaussian is clipped at 0)."""
        if self.samples is not None:
            s = np.asarray(self.samples)
            return float(s.mean()), float(s.var())
        if self.sigma == 0:
            return float(self.value), 0.0
        from scipy.stats import norm

        a = self.value / self.sigma
        cdf, pdf = float(norm.cdf(a)), float(norm.pdf(a))
        mean = self.value * cdf + self.sigma * pdf
        second = (self.value**2 + self.sigma**2) * cdf + self.value * self.sigma * pdf
        return mean, second - mean**2

    @property
    def mean(self) -> float:
        """Mean dead time per event, s (``value``, or the mean of the Gaussian clipped at 0)."""
        return self._moments()[0]

    @property
    def variance(self) -> float:
        """Variance of the dead time per event, s^2 (0 for a constant)."""
        return self._moments()[1]

    @classmethod
    def empirical(cls, samples: ArrayLike, kind: DeadTimeKind = "nonparalyzable") -> DeadTime:
        """Dead time drawn from measured values (with replacement)."""
        s = np.asarray(samples, dtype=np.float64)
        return cls(value=float(s.mean()) if s.size else 0.0, kind=kind, samples=tuple(s.tolist()))

    @property
    def is_constant(self) -> bool:
        """True when every event has the same dead time."""
        return self.sigma == 0 and self.samples is None

    def draw(self, n: int, rng: np.random.Generator | int | None) -> FloatArray:
        """Dead times for ``n`` events, shape (n,); ``rng`` is required unless constant."""
        if self.is_constant:
            return np.full(n, float(self.value))
        if rng is None:
            raise ValueError("a distributed dead time needs an rng (a numpy Generator or a seed)")
        gen = np.random.default_rng(rng)
        if self.samples is not None:
            return gen.choice(np.asarray(self.samples), size=n, replace=True)
        return np.maximum(gen.normal(self.value, self.sigma, size=n), 0.0)


@dataclass(frozen=True)
class DeadTimeResult:
    """Events recorded by a detector with dead time.

    Attributes
    ----------
    times : ndarray, shape (n_recorded,)
        Recorded event times (source and background), sorted.
    is_source : ndarray of bool, shape (n_recorded,)
        True for source events, False for background events.
    prior : ndarray, shape (n_recorded,)
        Live time before each recorded event (since the end of the previous dead interval, or
        since the start of the observation for the first event), s: NuSTAR's PRIOR.
    mask : ndarray of bool, shape (n_incident,)
        Which incident events (sources then background, merged in time order) were recorded.
    live_time : float
        Exposure minus the dead time inside it, s.
    exposure : float
        Length of the observation used, s.
    """

    times: FloatArray
    is_source: NDArray[np.bool_]
    prior: FloatArray
    mask: NDArray[np.bool_]
    live_time: float
    exposure: float


@numba.njit(nogil=True, cache=True)
def _dead_time_pass(
    times: FloatArray,
    taus: FloatArray,
    paralyzable: bool,
    start: float,
    keep: NDArray[np.bool_],
    prior: FloatArray,
) -> tuple[float, float]:  # pragma: no cover - compiled
    """Mark recorded events in ``keep`` and fill ``prior``.

    Returns (total dead time, end of the last dead interval).

    ``times`` must be sorted.  Arithmetic mirrors Stingray for a constant dead time.
    """
    n = times.size
    if n == 0:
        return 0.0, start
    dead_total = 0.0
    if paralyzable:
        dead_end = start
        for i in range(n):
            t = times[i]
            if t >= dead_end:
                keep[i] = True
                prior[i] = t - dead_end
                dead_total += taus[i]
                dead_end = t + taus[i]
            else:
                keep[i] = False
                new_end = t + taus[i]
                if new_end > dead_end:
                    dead_total += new_end - dead_end
                    dead_end = new_end
        return dead_total, dead_end
    t0 = times[0]
    dead_end_rel = start - t0
    for i in range(n):
        t_rel = times[i] - t0
        if t_rel >= dead_end_rel:
            keep[i] = True
            prior[i] = t_rel - dead_end_rel
            dead_end_rel = t_rel + taus[i]
            dead_total += taus[i]
        else:
            keep[i] = False
    return dead_total, dead_end_rel + t0


def _check_events(times: ArrayLike, name: str) -> FloatArray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of times, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} must be finite")
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{name} must be sorted: element {i} ({float(t[i])!r}) is earlier than "
            f"element {i - 1} ({float(t[i - 1])!r})"
        )
    return t


def apply_dead_time(
    times: ArrayLike,
    dead_time: DeadTime | float,
    *,
    rng: np.random.Generator | int | None = None,
    background: ArrayLike | None = None,
    gti: ArrayLike | None = None,
) -> DeadTimeResult:
    """Apply dead time to a sorted event list (and background events, which also cause dead time).

    Parameters
    ----------
    times : array_like, shape (n,)
        Sorted source event arrival times, s.
    dead_time : DeadTime or float
        A float means a constant non-paralyzable dead time.
    rng : Generator or int, optional
        Needed for a distributed dead time.
    background : array_like, optional
        Sorted background event times; they are recorded (or lost) like source events and
        make the detector dead too.
    gti : array_like, shape (n_gti, 2), optional
        Good time intervals; events outside them are an error (filter them first).  The
        exposure is the total GTI length, otherwise the span of the events.

    Returns
    -------
    DeadTimeResult
    """
    dt_model = dead_time if isinstance(dead_time, DeadTime) else DeadTime(float(dead_time))
    src = _check_events(times, "times")
    if background is not None:
        bkg = _check_events(background, "background")
        merged = np.concatenate([src, bkg])
        order = np.argsort(merged, kind="stable")
        merged = merged[order]
        is_source = order < src.size
    else:
        merged, is_source = src, np.ones(src.size, dtype=bool)
    if gti is not None:
        g = check_gti(gti)
        inside = gti_mask(merged, g)
        if not inside.all():
            i = int(np.flatnonzero(~inside)[0])
            raise ValueError(
                f"{int((~inside).sum())} event(s) fall outside the GTIs (first at t = {float(merged[i])!r}); "
                "filter events with the GTIs before applying dead time"
            )
        start, exposure = float(g[0, 0]), float(np.sum(g[:, 1] - g[:, 0]))
    elif merged.size:
        start, exposure = float(merged[0]), float(merged[-1] - merged[0])
    else:
        start, exposure = 0.0, 0.0
    taus = dt_model.draw(merged.size, rng)
    keep = np.zeros(merged.size, dtype=bool)
    prior = np.zeros(merged.size)
    dead, dead_end = _dead_time_pass(merged, taus, dt_model.kind == "paralyzable", start, keep, prior)
    dead -= max(0.0, dead_end - (start + exposure))  # the last dead interval may outlast the exposure
    return DeadTimeResult(
        times=merged[keep],
        is_source=is_source[keep],
        prior=prior[keep],
        mask=keep,
        live_time=max(0.0, exposure - dead),
        exposure=exposure,
    )


def binned_dead_time_moments(
    rate: ArrayLike, exposure: float, dead_time: DeadTime
) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of the counts a non-paralyzable detector records in ``exposure`` s.

    The recorded events of a constant incident Poisson rate :math:`r` form a renewal process whose
    intervals are a dead time plus an exponential wait, with mean :math:`\\mu = \\bar\\tau + 1/r` and
    variance :math:`\\sigma^2 = \\mathrm{Var}\\,\\tau + 1/r^2`. For an exposure :math:`T \\gg \\mu` the
    counts have mean :math:`T/\\mu` and variance :math:`T\\sigma^2/\\mu^3` (Feller 1948; Cox 1962,
    *Renewal Theory*, Sect. 3.3), i.e. for a constant dead time

    .. math::

        E[N] = \\frac{rT}{1 + r\\tau}, \\qquad \\mathrm{Var}\\,N = \\frac{rT}{(1 + r\\tau)^3},

    the low-frequency Leahy level :math:`2/(1 + r\\tau)^2` of Zhang et al. (1995).

    Parameters
    ----------
    rate : array_like
        Incident rate, ct/s (>= 0), constant over the exposure.
    exposure : float
        Length of the bin, s (> 0).
    dead_time : DeadTime
        Non-paralyzable.

    Returns
    -------
    mean, variance : ndarray
        Same shape as ``rate``.
    """
    if dead_time.kind != "nonparalyzable":
        raise ValueError(f"the counting moments are for non-paralyzable dead time, got {dead_time.kind!r}")
    if not np.isfinite(exposure) or exposure <= 0:
        raise ValueError(f"exposure must be a finite time > 0 s, got {exposure!r}")
    r = np.asarray(rate, dtype=np.float64)
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError("rates must be finite and >= 0 ct/s")
    tau, var_tau = dead_time.mean, dead_time.variance
    denom = 1.0 + r * tau
    mean = r * exposure / denom
    variance = r * exposure * (1.0 + r * r * var_tau) / denom**3
    return mean, variance


def draw_binned_counts(mean: FloatArray, variance: FloatArray, rng: np.random.Generator) -> NDArray[np.int64]:
    """Integer counts with the given mean and (under-dispersed, ``variance <= mean``) variance.

    A binomial :math:`B(n, p)` with :math:`p = 1 - \\mathrm{Var}/E` and :math:`n = E/p` (rounded, then
    :math:`p = E/n`): non-negative and discrete like real counts, exact in the mean, its variance within
    :math:`p/n` of the target, and Poisson where the dead time vanishes (:math:`p \\to 0`).
    """
    m = np.asarray(mean, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    if np.any(v > m * (1 + 1e-9)):
        raise ValueError("a dead-time detector's counts are under-dispersed: variance must be <= mean")
    p = np.clip(1.0 - v / np.where(m > 0, m, 1.0), 0.0, 1.0)
    out = np.zeros(m.shape, dtype=np.int64)
    poisson = (p < 1e-6) & (m > 0)
    out[poisson] = rng.poisson(m[poisson])
    binom = (p >= 1e-6) & (m > 0)
    n = np.maximum(np.rint(m[binom] / p[binom]), 1.0)
    out[binom] = rng.binomial(n.astype(np.int64), np.minimum(m[binom] / n, 1.0))
    return out
