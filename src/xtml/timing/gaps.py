"""Data gaps inside good time: stretches without counts that a Poisson light curve would not have.

A telemetry drop-out or an unfiltered passage left inside a GTI distorts the power spectrum like red noise.
:func:`find_gaps` finds them in binned counts (the statistic of the scope gate's gap check,
:func:`xtml.critique.scope.gap_reasons`); :func:`gti_without_gaps` cuts them out of an event file's GTIs,
so that segments are laid only where the detector was recording (HENDRICS users do this by hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Gap", "find_gaps", "gti_without_gaps"]


@dataclass(frozen=True)
class Gap:
    """``n_bins`` empty bins from bin ``start``, at ``rate`` (ct/s) around them; ``log_expected`` is the
    natural log of the expected number of such runs in a Poisson light curve of the same length."""

    start: int
    n_bins: int
    rate: float
    log_expected: float

    def text(self, dt: float, t0: float = 0.0) -> str:
        return (
            f"a gap of {self.n_bins * dt:.3g} s without counts at t = {t0 + self.start * dt:.4g} s (at the "
            f"{self.rate:.4g} ct/s around it, a Poisson light curve has one with probability "
            f"~1e{self.log_expected / math.log(10):.0f})"
        )


def find_gaps(
    counts: ArrayLike, dt: float, *, alpha: float = 1e-6, window: float = 1.0, min_gap: float = 0.25
) -> list[Gap]:
    """Runs of empty bins in one light curve that a Poisson process at the local rate would not have.

    For a light curve of ``n`` bins with ``mu`` counts per bin around a run of ``k`` empty bins (measured
    over ``max(k bins, window)`` on each side), the expected number of such runs is about
    :math:`n\\,e^{-\\mu k}`; a run is a gap when that is below ``alpha`` (computed in logs: no underflow).
    Runs shorter than ``min_gap`` s are ignored (a source with tens of per cent rms dips to zero for tens
    of ms).

    Parameters
    ----------
    counts : array-like of shape (n_bins,)
    dt : float
        Bin time, s (> 0).
    alpha, window, min_gap : float
        As above.
    """
    row = np.asarray(counts)
    if row.ndim != 1:
        raise ValueError(f"counts must be one light curve (1-D), got shape {row.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0; got {dt!r}")
    n = row.size
    empty = np.concatenate([[0], (row == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(empty))
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        k = int(b - a)
        if k * dt < min_gap:
            continue
        # the rate next to the run, not the mean: a source that dips towards zero (strong red noise) has
        # empty stretches with few counts around them, a gap does not
        w = max(k, round(window / dt))
        side = np.concatenate([row[max(0, a - w) : a], row[b : b + w]])
        mu = float(side.sum()) / max(1, side.size)
        log_expected = math.log(n) - mu * k
        if log_expected < math.log(alpha):
            out.append(Gap(start=int(a), n_bins=k, rate=mu / dt, log_expected=log_expected))
    return out


def gti_without_gaps(source: Any, *, dt: float = 1 / 64, **kwargs: Any) -> tuple[Any, list[str]]:
    """An event file's :class:`~xtml.timing.EventData` with its data gaps cut out of the GTIs.

    Each GTI is binned at ``dt`` and its gaps (:func:`find_gaps`, ``kwargs``) removed; returns the new
    EventData (GTIs, exposure) and one note per gap. A binned light curve is returned unchanged (its
    empty bins are already outside its GTIs when the file flags them).
    """
    from xtml.timing.io import EventData

    if not isinstance(source, EventData):
        return source, []
    pieces, notes = [], []
    for a, b in np.asarray(source.gti, dtype=np.float64).reshape(-1, 2):
        n = int(np.floor((b - a) / dt))
        if n < 1:
            pieces.append((a, b))
            continue
        counts = np.histogram(source.times, bins=a + np.arange(n + 1) * dt)[0]
        start = a
        for gap in find_gaps(counts, dt, **kwargs):
            g0, g1 = a + gap.start * dt, a + (gap.start + gap.n_bins) * dt
            if g0 > start:
                pieces.append((start, g0))
            start = g1
            notes.append(f"{gap.text(dt, 0.0)}: cut out of the GTIs")
        pieces.append((start, b))
    if not notes:
        return source, []
    gti: NDArray[np.float64] = np.array([p for p in pieces if p[1] > p[0]], dtype=np.float64).reshape(-1, 2)
    exposure = float(np.sum(gti[:, 1] - gti[:, 0]))
    return replace(source, gti=gti, exposure=exposure, notes=(*source.notes, *notes)), notes
