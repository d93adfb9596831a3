"""Event files in: FITS event lists read through Stingray, into arrays and PowerSpectrum objects.

A first, minimal reader (mission-specific handling — energy filters, dead-time columns, time
systems — belongs to the real-data work): times are returned as float64 seconds since the start
of the first GTI, so that no long-double arithmetic leaks into xtml.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xtml.timing.periodogram import periodogram_from_events
from xtml.timing.rebin import rebin_log
from xtml.timing.spectrum import Norm, PowerSpectrum

__all__ = ["EventData", "read_events", "spectrum_from_event_file"]


@dataclass(frozen=True)
class EventData:
    """Events of one file: ``times`` and ``gti`` in s since ``t_ref``, the first GTI start (mission time)."""

    path: str
    times: NDArray[np.float64]
    gti: NDArray[np.float64]
    t_ref: float
    mission: str


def read_events(path: str | Path) -> EventData:
    """Read a FITS event file (OGIP ``EVENTS`` extension with ``TIME`` and a GTI extension).

    Raises ``ValueError`` naming the file if it cannot be read or holds no events.
    """
    from stingray import EventList

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"event file {str(p)!r} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Stingray warns about missing optional header keywords
            ev = EventList.read(str(p), fmt="ogip")
    except Exception as err:
        raise ValueError(f"{p}: cannot read as a FITS event file ({type(err).__name__}: {err})") from None
    if ev.time is None or len(ev.time) == 0:
        raise ValueError(f"{p}: the event file holds no events")
    gti = np.asarray(ev.gti, dtype=np.longdouble)
    t_ref = gti[0, 0]
    times = np.asarray(np.asarray(ev.time, dtype=np.longdouble) - t_ref, dtype=np.float64)
    return EventData(
        path=str(p),
        times=np.sort(times),
        gti=np.asarray(gti - t_ref, dtype=np.float64),
        t_ref=float(t_ref),
        mission=str(getattr(ev, "mission", "") or "unknown"),
    )


def spectrum_from_event_file(
    path: str | Path, *, dt: float, segment_size: float, norm: Norm = "leahy", rebin_log_f: float = 0.0
) -> PowerSpectrum:
    """Averaged (and optionally log-rebinned) power spectrum of an event file."""
    ev = read_events(path)
    ps = periodogram_from_events(ev.times, gti=ev.gti, dt=dt, segment_size=segment_size, norm=norm)
    return rebin_log(ps, rebin_log_f) if rebin_log_f > 0 else ps
