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

__all__ = ["DEAD_TIME_KINDS", "DeadTime", "DeadTimeKind", "DeadTimeResult", "apply_dead_time", "check_kind"]

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
    """

    value: float
    kind: DeadTimeKind = "nonparalyzable"
    sigma: float = 0.0
    samples: tuple[float, ...] | None = field(default=None)

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
