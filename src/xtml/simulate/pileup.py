"""Pile-up in CCD-like detectors: photons within one frame are read out as one event.

A CCD reads its pixels once per frame time ``t_f``.  Two or more photons landing in the same
pile-up region within one frame are indistinguishable from a single photon of the summed
energy: they become **one event** with the summed energy.  That event is **lost** if its
summed energy leaves the energy band, or if its charge pattern is rejected as a bad grade
(grade migration), modelled here as an independent rejection with probability
``1 - (1 - p)^(k - 1)`` for ``k`` photons (``p``: the migration probability per extra photon).
For a Poisson rate ``r`` the fraction of non-empty frames with >= 2 photons is
``(1 - e^-l (1 + l)) / (1 - e^-l)``, ``l = r t_f`` (``xtml.reference.pileup_fraction``).

Photon energies are drawn from a simple spectrum: a power law ``N(E) ~ E^-Gamma`` between two
energies, or a user-given table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["EnergySpectrum", "PileUp", "PileUpResult", "apply_pileup", "pile_frames"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class EnergySpectrum:
    """Photon energy distribution: a power law (``index``) or a table (``energies``, ``weights``).

    Parameters
    ----------
    e_min, e_max : float
        Energy range of the power law, keV (0 < e_min < e_max).
    index : float
        Photon index Gamma of ``N(E) ~ E^-Gamma``.
    energies, weights : tuple of float, optional
        A tabulated spectrum: photons take these energies with probabilities proportional to
        the weights (``index``, ``e_min``, ``e_max`` are then ignored).
    """

    e_min: float = 0.5
    e_max: float = 10.0
    index: float = 2.0
    energies: tuple[float, ...] | None = None
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.energies is None:
            if not (np.isfinite(self.e_min) and np.isfinite(self.e_max) and 0 < self.e_min < self.e_max):
                raise ValueError(
                    f"energy range needs 0 < e_min < e_max, got e_min={self.e_min}, e_max={self.e_max}"
                )
            if not np.isfinite(self.index):
                raise ValueError(f"photon index must be finite, got {self.index!r}")
            return
        e = np.asarray(self.energies, dtype=np.float64)
        w = np.ones_like(e) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if e.ndim != 1 or e.size == 0 or w.shape != e.shape:
            raise ValueError("a tabulated spectrum needs 1-D energies and weights of the same length")
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise ValueError("tabulated energies must be finite and > 0 keV")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("tabulated weights must be finite, >= 0 and not all zero")

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` photon energies in keV, shape (n,)."""
        if self.energies is not None:
            w = (
                np.ones(len(self.energies))
                if self.weights is None
                else np.asarray(self.weights, dtype=np.float64)
            )
            return rng.choice(np.asarray(self.energies, dtype=np.float64), size=n, p=w / w.sum())
        u = rng.random(n)
        g = 1.0 - self.index
        if abs(g) < 1e-12:  # Gamma = 1: log-uniform
            return self.e_min * (self.e_max / self.e_min) ** u
        lo, hi = self.e_min**g, self.e_max**g
        return (lo + u * (hi - lo)) ** (1.0 / g)


@dataclass(frozen=True)
class PileUp:
    """Pile-up settings of a CCD-like detector.

    Parameters
    ----------
    frame_time : float
        Frame (readout) time, s, > 0.
    band : tuple of float
        Energy band (low, high) in keV in which events are kept.
    migration_prob : float
        Probability in [0, 1] that each extra photon in a frame makes the event's pattern
        migrate to a rejected grade.
    spectrum : EnergySpectrum
        Incident photon energies.
    """

    frame_time: float
    band: tuple[float, float] = (0.5, 10.0)
    migration_prob: float = 0.0
    spectrum: EnergySpectrum = EnergySpectrum()

    def __post_init__(self) -> None:
        if not np.isfinite(self.frame_time) or self.frame_time <= 0:
            raise ValueError(f"frame_time must be finite and > 0 s, got {self.frame_time!r}")
        lo, hi = self.band
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"band must be (low, high) keV with 0 <= low < high, got {self.band!r}")
        if not (0.0 <= self.migration_prob <= 1.0):
            raise ValueError(f"migration_prob must be a probability in [0, 1], got {self.migration_prob!r}")


@dataclass(frozen=True)
class PileUpResult:
    """Events read out of a piled-up detector.

    Attributes
    ----------
    times : ndarray, shape (n_events,)
        Frame start time of each event, s.
    energies : ndarray, shape (n_events,)
        Event energy (the sum of its photons), keV.
    n_photons : ndarray of int64, shape (n_events,)
        Photons merged into each event (1 = not piled).
    n_frames_hit : int
        Non-empty frames before grade and band selection.
    n_photons_in : int
        Incident photons.
    """

    times: FloatArray
    energies: FloatArray
    n_photons: NDArray[np.int64]
    n_frames_hit: int
    n_photons_in: int


def pile_frames(
    k: NDArray[np.int64], energies: FloatArray, pileup: PileUp, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], FloatArray]:
    """The core: one candidate event per non-empty frame, then grade and band selection.

    Parameters
    ----------
    k : ndarray of int, shape (n_frames,)
        Photons per frame (frames with ``k = 0`` give no event).
    energies : ndarray, shape (k.sum(),)
        Photon energies grouped by frame, in frame order.
    pileup : PileUp
    rng : Generator

    Returns
    -------
    kept : ndarray of bool, shape (n_frames,)
        Frames that produce a recorded event.
    event_energy : ndarray, shape (n_frames,)
        Summed energy per frame (0 for empty frames).
    """
    k = np.asarray(k)
    if energies.size != int(k.sum()):
        raise ValueError(f"need one energy per photon: {int(k.sum())} photons, {energies.size} energies")
    hit = k > 0
    event_energy = np.zeros(k.size)
    starts = np.concatenate([[0], np.cumsum(k[hit])[:-1]]).astype(np.int64)
    if energies.size:
        event_energy[hit] = np.add.reduceat(energies, starts)
    p_reject = 1.0 - (1.0 - pileup.migration_prob) ** np.maximum(k - 1, 0)
    graded = rng.random(k.size) >= p_reject
    lo, hi = pileup.band
    in_band = (event_energy >= lo) & (event_energy <= hi)
    return hit & graded & in_band, event_energy


def apply_pileup(
    times: ArrayLike,
    energies: ArrayLike,
    pileup: PileUp,
    rng: np.random.Generator | int | None,
    *,
    t_start: float | None = None,
) -> PileUpResult:
    """Pile up a sorted photon list: photons in the same frame become one event.

    Parameters
    ----------
    times : array_like, shape (n,)
        Sorted photon arrival times, s.
    energies : array_like, shape (n,)
        Photon energies, keV (> 0).
    pileup : PileUp
    rng : Generator or int
        For the grade-migration draws.
    t_start : float, optional
        Start of the first frame (default: the first photon time).
    """
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(energies, dtype=np.float64)
    if t.ndim != 1 or e.shape != t.shape:
        raise ValueError(f"times and energies must be 1-D of equal length, got {t.shape} and {e.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(e))):
        raise ValueError("times and energies must be finite")
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"times must be sorted: element {i} ({float(t[i])!r}) is earlier than element {i - 1}"
        )
    if np.any(e <= 0):
        raise ValueError("photon energies must be > 0 keV")
    gen = np.random.default_rng(rng)
    if t.size == 0:
        empty = np.zeros(0)
        return PileUpResult(empty, empty, np.zeros(0, dtype=np.int64), 0, 0)
    t0 = float(t[0]) if t_start is None else float(t_start)
    if t[0] < t0:
        raise ValueError(f"t_start {t0} is after the first photon at {t[0]}")
    frame = np.floor((t - t0) / pileup.frame_time).astype(np.int64)
    first = np.concatenate([[True], frame[1:] != frame[:-1]])
    frames = frame[first]
    k = np.diff(np.concatenate([np.flatnonzero(first), [t.size]]))
    kept, energy = pile_frames(k, e, pileup, gen)
    return PileUpResult(
        times=t0 + frames[kept] * pileup.frame_time,
        energies=energy[kept],
        n_photons=k[kept],
        n_frames_hit=int(frames.size),
        n_photons_in=int(t.size),
    )
