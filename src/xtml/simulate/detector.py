"""What a detector records of a source rate: photons, background, dead time or pile-up, modules.

:func:`observe` turns a batch of source count rates into the binned counts each detector
module records.  The photon stream of each module is an independent inhomogeneous Poisson
process with the source rate plus a constant background rate (the background also makes the
detector dead); then either

- an **ideal** detector records every photon (Poisson counts, fast path);
- a **dead-time** detector records events as :func:`xtml.simulate.apply_dead_time` does
  (the same compiled core), with photon times uniform within each rate bin; or
- a **pile-up** (CCD-like) detector merges the photons of each frame into one event as
  :func:`xtml.simulate.apply_pileup` does (the same core), the rate being given per frame.

Modules see the same source rate with independent photon noise and independent dead time,
as NuSTAR's FPMA and FPMB do, so cospectra and FAD corrections can be formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.simulate.deadtime import DeadTime, _dead_time_pass, binned_dead_time_moments, draw_binned_counts
from xtml.simulate.events import check_rates
from xtml.simulate.lightcurves import poisson_counts
from xtml.simulate.pileup import PileUp, pile_frames
from xtml.simulate.poisson import poisson_rows

__all__ = ["DetectedCounts", "Detector", "observe"]

FloatArray = NDArray[np.float64]

#: Rate values per block of rows: bounds the memory of the photon draws.
_BLOCK_VALUES = 2**22


@dataclass(frozen=True)
class Detector:
    """A detector: modules, background, and at most one of dead time and pile-up.

    Parameters
    ----------
    n_modules : int
        Identical modules seeing the same source (>= 1).
    dead_time : DeadTime, optional
        Dead time of each module (independent between modules).
    background_rate : float
        Constant background count rate per module, ct/s (>= 0); it is recorded with the
        source and causes dead time.
    pileup : PileUp, optional
        CCD-like frame readout with pile-up.
    """

    n_modules: int = 1
    dead_time: DeadTime | None = None
    background_rate: float = 0.0
    pileup: PileUp | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_modules, bool) or int(self.n_modules) != self.n_modules or self.n_modules < 1:
            raise ValueError(f"n_modules must be an integer >= 1, got {self.n_modules!r}")
        if not np.isfinite(self.background_rate) or self.background_rate < 0:
            raise ValueError(f"background_rate must be finite and >= 0 ct/s, got {self.background_rate!r}")
        if self.dead_time is not None and self.pileup is not None:
            raise ValueError(
                "a detector has either dead time (photon counting) or pile-up (CCD frames), not both"
            )

    @property
    def is_ideal(self) -> bool:
        """True when every photon is recorded."""
        return self.pileup is None and (
            self.dead_time is None or (self.dead_time.is_constant and self.dead_time.value == 0)
        )


@dataclass(frozen=True)
class DetectedCounts:
    """Counts recorded by each module.

    Attributes
    ----------
    counts : ndarray of int64, shape (n, n_modules, n_bins)
    dt : float
        Bin width, s.
    live_time : ndarray, shape (n, n_modules)
        Live time of each module, s (the exposure for an ideal or CCD detector).
    n_incident : ndarray of int64, shape (n, n_modules)
        Photons that reached each module (source and background); for a binned dead time, their
        expected number (rounded), as no photon is drawn.
    """

    counts: NDArray[np.int64]
    dt: float
    live_time: FloatArray
    n_incident: NDArray[np.int64]

    @property
    def exposure(self) -> float:
        """Length of each light curve, s."""
        return self.counts.shape[-1] * self.dt


@numba.njit(nogil=True, parallel=True, cache=True)
def _dead_time_rows(
    k: NDArray[np.int64],
    u: FloatArray,
    taus: FloatArray,
    offsets: NDArray[np.int64],
    dt_fine: float,
    paralyzable: bool,
    bin_factor: int,
    counts_out: NDArray[np.int64],
    live_out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Photon times from per-bin counts and uniforms, dead time, and binning; one row per prange step."""
    n_rows, n_fine = k.shape
    exposure = n_fine * dt_fine
    for r in numba.prange(n_rows):
        start = offsets[r]
        total = offsets[r + 1] - start
        times = np.empty(total)
        bins = np.empty(total, np.int64)
        pos = 0
        for b in range(n_fine):
            kb = k[r, b]
            for e in range(kb):
                x = (b + u[start + pos + e]) * dt_fine
                j = pos + e
                while j > pos and times[j - 1] > x:  # insertion sort within the bin
                    times[j] = times[j - 1]
                    j -= 1
                times[j] = x
                bins[pos + e] = b // bin_factor
            pos += kb
        keep = np.empty(total, np.bool_)
        prior = np.empty(total)
        dead, dead_end = _dead_time_pass(times, taus[start : start + total], paralyzable, 0.0, keep, prior)
        dead -= max(0.0, dead_end - exposure)
        live_out[r] = exposure - dead
        for i in range(total):
            if keep[i]:
                counts_out[r, bins[i]] += 1


def observe(
    rate: ArrayLike,
    dt: float,
    detector: Detector,
    rng: np.random.Generator | int | None,
    *,
    bin_factor: int = 1,
) -> DetectedCounts:
    """Record a batch of source rates with a detector.

    Parameters
    ----------
    rate : array_like, shape (n, n_fine)
        Source count rate per module, ct/s, piecewise constant on bins of ``dt``.
    dt : float
        Rate bin width, s.  For pile-up it must equal the frame time.
    detector : Detector
    rng : Generator or int
    bin_factor : int
        Output bins hold ``bin_factor`` rate bins (``n_fine`` must be a multiple of it).

    Returns
    -------
    DetectedCounts
        Counts of shape (n, n_modules, n_fine // bin_factor) with bins of ``dt * bin_factor``.
    """
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite time step > 0 s, got {dt!r}")
    if isinstance(bin_factor, bool) or int(bin_factor) != bin_factor or bin_factor < 1:
        raise ValueError(f"bin_factor must be an integer >= 1, got {bin_factor!r}")
    lam = check_rates(rate)
    n, n_fine = lam.shape
    if n_fine % bin_factor:
        raise ValueError(
            f"the number of rate bins ({n_fine}) must be a multiple of bin_factor ({bin_factor})"
        )
    n_out = n_fine // bin_factor
    n_mod = detector.n_modules
    gen = np.random.default_rng(rng)
    total_rate = lam + detector.background_rate
    exposure = n_fine * dt
    if detector.is_ideal:
        coarse = total_rate.reshape(n, n_out, bin_factor).mean(axis=2) if bin_factor > 1 else total_rate
        counts = poisson_counts(coarse, dt * bin_factor, gen, n_modules=n_mod)
        counts = counts.reshape(n, n_mod, n_out)
        return DetectedCounts(
            counts=counts,
            dt=dt * bin_factor,
            live_time=np.full((n, n_mod), exposure),
            n_incident=counts.sum(axis=2),
        )
    if detector.dead_time is not None and detector.dead_time.binned:
        return _binned_dead_time(total_rate, dt, detector.dead_time, n_mod, gen, bin_factor)
    counts = np.zeros((n, n_mod, n_out), dtype=np.int64)
    live = np.empty((n, n_mod))
    incident = np.empty((n, n_mod), dtype=np.int64)
    rows = max(1, _BLOCK_VALUES // (n_mod * n_fine))
    starts = range(0, n, rows)
    for start, block_rng in zip(starts, gen.spawn(len(starts)), strict=True):
        stop = min(n, start + rows)
        k = poisson_rows(np.repeat(total_rate[start:stop] * dt, n_mod, axis=0), block_rng)  # (row, module)
        incident[start:stop] = k.sum(axis=1).reshape(stop - start, n_mod)
        out = counts[start:stop].reshape(-1, n_out)
        if detector.pileup is not None:
            live[start:stop] = exposure
            _pile_rows(k, detector.pileup, dt, bin_factor, block_rng, out)
        elif (dead_time := detector.dead_time) is not None:
            offsets = np.concatenate([[0], np.cumsum(k.sum(axis=1))]).astype(np.int64)
            u = block_rng.random(int(offsets[-1]))
            taus = dead_time.draw(int(offsets[-1]), block_rng)
            live_block = np.empty(k.shape[0])
            _dead_time_rows(
                k, u, taus, offsets, dt, dead_time.kind == "paralyzable", bin_factor, out, live_block
            )
            live[start:stop] = live_block.reshape(stop - start, n_mod)
        counts[start:stop] = out.reshape(stop - start, n_mod, n_out)
    return DetectedCounts(counts=counts, dt=dt * bin_factor, live_time=live, n_incident=incident)


def _binned_dead_time(
    total_rate: FloatArray, dt: float, dead: DeadTime, n_mod: int, gen: np.random.Generator, bin_factor: int
) -> DetectedCounts:
    """Counts of a binned dead-time detector (:class:`~xtml.simulate.DeadTime` ``binned``): per output bin,
    the mean and variance of the recorded counts summed over its rate bins, drawn per module."""
    n, n_fine = total_rate.shape
    n_out = n_fine // bin_factor
    mean, var = binned_dead_time_moments(total_rate, dt, dead)
    if bin_factor > 1:
        mean = mean.reshape(n, n_out, bin_factor).sum(axis=2)
        var = var.reshape(n, n_out, bin_factor).sum(axis=2)
    counts = draw_binned_counts(
        np.repeat(mean[:, None, :], n_mod, axis=1), np.repeat(var[:, None, :], n_mod, axis=1), gen
    )
    exposure = n_fine * dt
    incident = np.rint(np.repeat(total_rate.sum(axis=1, keepdims=True) * dt, n_mod, axis=1)).astype(np.int64)
    live = exposure - counts.sum(axis=2) * dead.mean
    return DetectedCounts(counts=counts, dt=dt * bin_factor, live_time=live, n_incident=incident)


def _pile_rows(
    k: NDArray[np.int64],
    pileup: PileUp,
    dt: float,
    bin_factor: int,
    rng: np.random.Generator,
    out: NDArray[np.int64],
) -> None:
    if not np.isclose(dt, pileup.frame_time, rtol=1e-9, atol=0):
        raise ValueError(
            f"with pile-up the rate must be given per frame: dt = {dt} s "
            f"but frame_time = {pileup.frame_time} s"
        )
    flat = k.reshape(-1)
    energies = pileup.spectrum.sample(int(flat.sum()), rng)
    kept, _ = pile_frames(flat, energies, pileup, rng)
    events = kept.reshape(k.shape).astype(np.int64)
    out[:] = events.reshape(k.shape[0], -1, bin_factor).sum(axis=2)
