"""Spectral products of observation files, as HENDRICS makes them, saved for xtml and for Stingray.

:func:`pair_products` makes, from the event files of two independent modules observing together (NuSTAR's
FPMA and FPMB), the averaged power spectra of each module and of their sum, the cospectrum, and the
FAD-corrected power and cospectrum (Bachetti & Huppenkothen 2018), on the segments of their common GTIs.
:func:`save_spectrum` writes a spectrum twice: ``.npz`` (xtml's arrays, with the metadata as a JSON string;
read back by :func:`load_spectrum_file` without pickle) and ``.ecsv`` (the astropy table of the Stingray
object, which ``stingray.AveragedPowerspectrum.read(path, fmt="ascii.ecsv")`` reads).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.timing.io import EventData
from xtml.timing.spectrum import PowerSpectrum

__all__ = ["common_gti", "load_spectrum_file", "pair_products", "save_spectrum"]


def common_gti(gtis: Sequence[ArrayLike]) -> NDArray[np.float64]:
    """The intersection of several GTI lists (``(n, 2)`` arrays of start, stop in one time frame): the
    good time that all detectors share, shape ``(k, 2)`` (``k = 0`` when none)."""
    out = np.asarray(gtis[0], dtype=np.float64).reshape(-1, 2)
    for g in gtis[1:]:
        pieces = [
            (max(a0, b0), min(a1, b1))
            for a0, a1 in out
            for b0, b1 in np.asarray(g, dtype=np.float64).reshape(-1, 2)
            if min(a1, b1) > max(a0, b0)
        ]
        out = np.array(pieces, dtype=np.float64).reshape(-1, 2)
    return out


def pair_products(
    a: EventData, b: EventData, *, dt: float, segment_size: float, norm: str = "leahy"
) -> tuple[dict[str, PowerSpectrum], dict[str, Any]]:
    """Power spectra, cospectrum and FAD-corrected spectra of two modules observing together.

    Returns the spectra by name (``power_a``, ``power_b``, ``power_total``, ``cospectrum``, ``fad_power``,
    ``fad_cospectrum``; Leahy unless ``norm``) and notes (segments used, common good time, FAD's compliance
    ``fad_delta``).

    Raises
    ------
    ValueError
        No common good time holding a segment, or a module without events in it.
    """
    from xtml.timing.cross import cospectrum, fad_correct
    from xtml.timing.periodogram import _segment_bins_from_size, _segment_starts, periodogram, segment_counts

    length, n_bins = _segment_bins_from_size(segment_size, float(dt))
    t0 = min(a.t_ref, b.t_ref)
    gti = common_gti([np.asarray(e.gti, dtype=np.float64) + (e.t_ref - t0) for e in (a, b)])
    starts = _segment_starts(gti, length) if gti.size else np.zeros(0)
    if len(starts) == 0:
        longest = float(np.max(gti[:, 1] - gti[:, 0])) if gti.size else 0.0
        raise ValueError(
            f"{a.path} and {b.path}: no segment of {length:g} s fits in their common good time "
            f"(longest common GTI {longest:.6g} s)"
        )
    counts = [
        segment_counts(np.ascontiguousarray(e.times + (e.t_ref - t0)), starts, length, n_bins).ravel()[
            None, :
        ]
        for e in (a, b)
    ]
    for e, c in zip((a, b), counts, strict=True):
        if c.sum() == 0:
            raise ValueError(f"{e.path}: no event in the {len(starts)} common segments")
    products = {
        "power_a": periodogram(counts[0], dt, norm=norm, segment_bins=n_bins, sampling="continuous"),
        "power_b": periodogram(counts[1], dt, norm=norm, segment_bins=n_bins, sampling="continuous"),
        "power_total": periodogram(
            counts[0] + counts[1], dt, norm=norm, segment_bins=n_bins, sampling="continuous"
        ),
        "cospectrum": cospectrum(
            counts[0], counts[1], dt, norm=norm, segment_bins=n_bins, sampling="continuous"
        ),
    }
    fad = fad_correct(counts[0], counts[1], dt, segment_bins=n_bins, norm=norm, sampling="continuous")
    products["fad_power"] = fad.power_total
    products["fad_cospectrum"] = fad.cospectrum
    notes = {
        "segments_used": len(starts),
        "segment_length_s": length,
        "common_good_time_s": float(np.sum(gti[:, 1] - gti[:, 0])),
        "fad_delta": float(fad.fad_delta[0]),
    }
    return products, notes


def save_spectrum(ps: PowerSpectrum, stem: str | Path, meta: dict[str, Any] | None = None) -> list[Path]:
    """Write one spectrum (row 0) as ``STEM.npz`` (xtml) and ``STEM.ecsv`` (Stingray); returns the paths."""
    from xtml.timing.stingray_io import to_stingray

    stem = Path(stem)
    info = {
        "norm": ps.norm,
        "segment_length": ps.segment_length,
        "dt": ps.dt,
        "n_segments": ps.n_segments,
        "sampling": ps.sampling,
        **(meta or {}),
    }
    npz = stem.parent / f"{stem.name}.npz"
    np.savez(
        npz,
        freq=ps.freq,
        power=ps.power[:1],
        m=ps.m,
        df=ps.df,
        mean_rate=ps.mean_rate[:1],
        meta=np.array(json.dumps(info, default=str)),
    )
    ecsv = stem.parent / f"{stem.name}.ecsv"
    to_stingray(ps, 0).to_astropy_table().write(ecsv, format="ascii.ecsv", overwrite=True)
    return [npz, ecsv]


def load_spectrum_file(path: str | Path) -> tuple[PowerSpectrum, dict[str, Any]]:
    """Read a spectrum written by :func:`save_spectrum` (``.npz``, no pickle) and its metadata."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("freq", "power", "m", "df", "mean_rate", "meta")}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{p}: not a spectrum written by xtml spectrum ({err})") from None
    meta = json.loads(str(arrays.pop("meta")))
    ps = PowerSpectrum(
        **arrays,
        norm=meta["norm"],
        segment_length=meta["segment_length"],
        dt=meta["dt"],
        n_segments=meta["n_segments"],
        sampling=meta["sampling"],
    )
    return ps, meta
