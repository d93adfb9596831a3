"""What a simulated dataset will cost, checked before anything is written.

:func:`dataset_size` estimates the bytes of a dataset on disk (every array of :mod:`xtml.data.store`,
uncompressed: an upper bound, since the spectra are noise and compress little) and the peak memory of
simulating one chunk (the Timmer & Koenig light curves with their red-noise and alias oversampling, the
counts of every module, the FFTs of the spectra).  :func:`check_resources` compares them with the free
space of the disk that will hold the store and with the memory available now, and refuses a dataset that
cannot fit with a :class:`DatasetTooLargeError` that gives the estimate and what is available: asking for
``n = 10**12`` must end with a sentence, not with a machine out of memory or a full disk.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xtml.data.config import SimulationConfig
from xtml.timing import periodogram

__all__ = [
    "DatasetSize",
    "DatasetTooLargeError",
    "available_memory",
    "check_resources",
    "dataset_size",
    "format_bytes",
    "free_disk",
]

#: longest segment whose rebinned frequency grid is computed exactly (beyond: the unrebinned count, an
#: upper bound, so that estimating a huge configuration does not itself need the memory it would refuse)
_EXACT_GRID_BINS = 1 << 22
_BLOCK_VALUES = 2**21  # values per block of the light-curve simulator (xtml.simulate.lightcurves)


class DatasetTooLargeError(ValueError):
    """A dataset that needs more disk space or memory than there is; nothing was written.

    Attributes
    ----------
    size : DatasetSize
        The estimate.
    available : int
        The bytes free on the disk, or of memory, that the estimate exceeds.
    """

    def __init__(self, message: str, size: DatasetSize, available: int) -> None:
        self.size = size
        self.available = available
        super().__init__(message)


@dataclass(frozen=True)
class DatasetSize:
    """Estimated cost of a simulated dataset.

    Attributes
    ----------
    n, chunk_size : int
        Spectra, and spectra per chunk.
    n_freq : int
        Frequencies per spectrum (an upper bound for segments longer than ``2**22`` bins).
    bytes_per_spectrum : int
        Bytes of every stored array for one spectrum.
    store_bytes : int
        Bytes of the whole store, uncompressed.
    chunk_memory : int
        Peak working memory of simulating one chunk, bytes.
    """

    n: int
    chunk_size: int
    n_freq: int
    bytes_per_spectrum: int
    store_bytes: int
    chunk_memory: int


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units up to EiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} EiB"


def _n_freq(config: SimulationConfig) -> int:
    o = config.observation
    if o.segment_bins > _EXACT_GRID_BINS:
        return max(1, ((o.segment_bins - 1) // 2) // o.rebin_linear)
    flat = np.full((1, o.segment_bins), 10, dtype=np.int64)
    return int(o.rebin(periodogram(flat, o.dt, norm=o.norm, segment_bins=o.segment_bins)).n_freq)


def _threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8))  # as xtml.simulate.lightcurves


def dataset_size(config: SimulationConfig, n: int, chunk_size: int) -> DatasetSize:
    """Estimate the disk and memory a dataset of ``n`` spectra in chunks of ``chunk_size`` needs.

    Disk: every array of the store (parameters, labels, splits, groups, rates, live times, the spectra of
    every stored kind, light curves if stored, the ``done`` flags) uncompressed.  Memory, for one chunk:
    the counts of every module, the simulated rates at the simulation step, the Timmer & Koenig blocks
    (``red_noise_factor * alias_factor`` times longer than the kept light curve, a few blocks at once),
    the FFTs of the spectra, and the whole chunk (``chunk_size`` rows, even past ``n``) that Zarr fills
    before encoding it.  Estimates, good to a factor of about two; photon-level detectors (dead
    time, pile-up) also hold their event lists, which are not counted.
    """
    o, det, d = config.observation, config.detector, config.dataset
    n, chunk_size = int(n), int(chunk_size)
    k, per_obs = det.n_modules, d.spectra_per_observation
    n_freq = _n_freq(config)
    item = np.dtype(d.power_dtype).itemsize
    n_spectra_kinds = 1 + (k >= 2) + bool(o.fad)
    per_spectrum = (
        8 * len(config.param_names)  # params
        + 2
        + 1
        + 8  # labels, split, group
        + 8
        + 8
        + 8 * k  # mean_rate, n_clipped, live_time
        + n_spectra_kinds * n_freq * item
        + (4 * k * o.n_bins if d.store_lightcurves else 0)
    )
    n_chunks = -(-n // chunk_size)
    store = n * per_spectrum + n_chunks + 3 * 8 * n_freq
    # one chunk in memory
    s = min(chunk_size, n)
    n_obs = max(1, s // per_obs)
    length = o.n_bins * per_obs  # bins of one observation's light curve
    fine = 1 if det.is_ideal else o.alias_factor
    n_fine = length * o.alias_factor * o.red_noise_factor  # Timmer & Koenig samples per light curve
    rows = max(1, min(256, _BLOCK_VALUES // max(1, n_fine)))
    tk_rows = min(n_obs, _threads() * rows)
    memory = (
        2 * n_obs * k * length * 8  # counts, and the detector's counts before they are copied in
        + n_obs * length * fine * 8  # rates at the simulation step
        + tk_rows * n_fine * 24  # a block: amplitudes, complex Fourier coefficients, inverse FFT
        + s * o.n_bins * (8 + 24)  # summed counts, and the segments' FFTs and powers
        + (4 * s * k * o.n_bins if d.store_lightcurves else 0)
        + chunk_size * per_spectrum  # Zarr fills a whole chunk (chunk_size rows) before encoding it
    )
    return DatasetSize(
        n=n,
        chunk_size=chunk_size,
        n_freq=n_freq,
        bytes_per_spectrum=int(per_spectrum),
        store_bytes=int(store),
        chunk_memory=int(memory),
    )


def available_memory() -> int | None:
    """Memory available to a new allocation now, bytes (Linux ``MemAvailable``; else the free pages), or
    None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def free_disk(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the disk that holds ``path`` (or would: its nearest existing parent), or None."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def check_resources(
    config: SimulationConfig, n: int, chunk_size: int, out: str | os.PathLike[str], *, todo: float = 1.0
) -> DatasetSize:
    """Refuse a dataset that does not fit: :class:`DatasetTooLargeError` with the estimate.

    ``out`` is where the store goes; ``todo`` the fraction of its chunks still to write (a resumed
    dataset needs only the rest).  Returns the estimate (:func:`dataset_size`) when it fits.
    """
    size = dataset_size(config, n, chunk_size)
    memory = available_memory()
    if memory is not None and size.chunk_memory > memory:
        o = config.observation
        per_obs = config.dataset.spectra_per_observation
        one = dataset_size(config, per_obs, per_obs)
        fix = (
            f"use a smaller chunk_size (now {size.chunk_size})"
            if one.chunk_memory <= memory
            else f"one observation alone needs about {format_bytes(one.chunk_memory)}: use shorter light "
            f"curves (segment_bins = {o.segment_bins}, n_segments = {o.n_segments}, red_noise_factor = "
            f"{o.red_noise_factor}, alias_factor = {o.alias_factor})"
        )
        raise DatasetTooLargeError(
            f"simulating one chunk (chunk_size = {size.chunk_size}) needs about "
            f"{format_bytes(size.chunk_memory)} of memory, but only {format_bytes(memory)} is available: "
            f"{fix}; nothing was written",
            size,
            memory,
        )
    need = int(size.store_bytes * min(max(todo, 0.0), 1.0))
    free = free_disk(out)
    if free is not None and need > free:
        raise DatasetTooLargeError(
            f"n = {size.n} spectra need about {format_bytes(need)} on disk ({size.n_freq} frequencies, "
            f"{format_bytes(size.bytes_per_spectrum)} per spectrum), but only {format_bytes(free)} is free "
            f"at {str(out)!r}: ask for fewer spectra (n) or free some space; nothing was written",
            size,
            free,
        )
    return size
