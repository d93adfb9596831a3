"""Real observations in: FITS event files read through Stingray, and the averaged spectrum a model expects.

:func:`read_events` reads OGIP event files of any mission Stingray knows (NuSTAR, NICER, RXTE/PCA,
XMM-Newton/EPIC, Chandra, AstroSat, ...) with ``stingray.EventList.read(fmt="ogip")``, which applies the
mission's conventions (event extension, PI column and PI-to-energy calibration, TIMEZERO, GTI extensions).
Header keywords Stingray drops (target, exposure, live time, time system) are read with astropy. Times are
returned as float64 seconds since ``t_ref`` (the start of the first GTI, rounded down to a whole second), so
that no long-double arithmetic leaks into xtml; ``times + t_ref`` is the mission time.

:func:`observation_spectrum` turns an :class:`EventData` or a :class:`~xtml.timing.BinnedLightCurve` into
the averaged spectrum on the grid of a trained model (bin time, segment length, number of segments,
rebinning). Binned light curves are read by :func:`xtml.timing.read_lightcurve`.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from xtml._files import require_file
from xtml.timing.periodogram import (
    _check_dt,
    _segment_bins_from_size,
    _segment_starts,
    first_unsorted,
    periodogram,
    periodogram_from_events,
    segment_counts,
)
from xtml.timing.rebin import rebin_log
from xtml.timing.spectrum import Norm, PowerSpectrum, check_norm

if TYPE_CHECKING:
    from xtml.timing.lightcurve_io import BinnedLightCurve

__all__ = [
    "EventData",
    "NotAnEventListError",
    "observation_spectrum",
    "read_events",
    "spectrum_from_event_file",
]

# Stingray's tolerance at GTI borders, as a fraction of the time resolution (``create_gti_mask(epsilon=)``).
_GTI_BORDER_EPSILON = 1e-3
# warnings.catch_warnings changes process-wide state: one block at a time across threads
_WARNINGS_LOCK = threading.RLock()


def dead_time_detectors(events: EventData) -> int:
    """How many detectors with their own dead time a file sums: NICER's focal-plane modules and RXTE's
    PCUs each have one (``n_detectors``); NuSTAR's four detector chips (DET_ID) share their module's
    (one per file). 1 when the file does not say."""
    if str(events.mission).lower() == "nustar":
        return 1
    return events.n_detectors or 1


class NotAnEventListError(ValueError):
    """The file holds no event list (no EVENTS table with a TIME column, or a binned light curve)."""


@dataclass(frozen=True)
class EventData:
    """Events of one file, inside its GTIs and the requested energy or PI range.

    ``times`` (sorted) and ``gti`` are float64 s since ``t_ref`` (mission time, s: the start of the first
    GTI rounded down to a whole second, so ``0 <= gti[0, 0] < 1``). ``energy`` (keV) and ``pi`` (channel)
    are aligned with ``times``, or None when the file has none. ``time_resolution`` is the clock tick
    (TIMEDEL, s) when the file gives one. ``exposure`` is the total good time (sum of the GTIs, s);
    ``header_exposure`` the EXPOSURE keyword.
    ``live_fraction`` comes from the DEADC or LIVETIME keywords; ``dead_time`` (s) is the mean dead time
    per event estimated from a PRIOR column (NuSTAR) or read from a DEADTIME column (NICER), of the
    detector that recorded the event. ``n_detectors`` counts the detectors with events (NICER's DET_ID,
    RXTE PCA's PCUID), None when the file does not say. ``n_events_read`` counts the events in the file,
    ``n_events_kept`` those left after GTI and energy filtering (``len(times)``).
    """

    path: str
    times: NDArray[np.float64]
    gti: NDArray[np.float64]
    t_ref: float
    mission: str
    energy: NDArray[np.float64] | None = None
    pi: NDArray[np.integer] | None = None
    instrument: str = ""
    telescope: str = ""
    target: str = ""
    timesys: str | None = None
    timeref: str | None = None
    mjdref: float | None = None
    time_resolution: float | None = None
    exposure: float = field(default=float("nan"))
    header_exposure: float | None = None
    live_fraction: float | None = None
    dead_time: float | None = None
    n_detectors: int | None = None
    n_events_read: int = -1
    n_events_kept: int = -1
    energy_range: tuple[float, float] | None = None
    pi_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Defaults that follow from the arrays, for EventData built by hand.
        if not np.isfinite(self.exposure):
            gti = np.asarray(self.gti, dtype=np.float64).reshape(-1, 2)
            object.__setattr__(self, "exposure", float(np.sum(gti[:, 1] - gti[:, 0])))
        if self.n_events_kept < 0:
            object.__setattr__(self, "n_events_kept", len(self.times))
        if self.n_events_read < 0:
            object.__setattr__(self, "n_events_read", len(self.times))


# --- header keywords -------------------------------------------------------------------------------------


def header_value(headers: list[Any], key: str) -> Any:
    """First value of ``key`` in ``headers`` (FITS headers, in order), or None.

    A keyword split into integer and fractional parts (``MJDREFI`` + ``MJDREFF``, ``TIMEZERI`` + ``TIMEZERF``)
    is summed in long double.
    """
    stem = key[:7]  # FITS keywords have at most 8 characters: TIMEZERO -> TIMEZERI + TIMEZERF
    for h in headers:
        if key in h:
            return h[key]
        if stem + "I" in h and stem + "F" in h:
            return np.longdouble(h[stem + "I"]) + np.longdouble(h[stem + "F"])
    return None


def header_float(headers: list[Any], key: str) -> float | None:
    value = header_value(headers, key)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def header_text(headers: list[Any], key: str) -> str:
    value = header_value(headers, key)
    return "" if value is None else str(value).strip()


def open_fits(path: Path, kind: str = "event file") -> Any:
    """``astropy.io.fits.open`` with errors that name the file: unreadable, corrupt or truncated."""
    from astropy.io import fits

    # under the lock: the list of caught warnings is process-wide, and another thread's "truncated"
    # warning would otherwise be blamed on this file
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
        except Exception as err:
            raise ValueError(
                f"{path}: cannot read as a FITS {kind}: not a readable FITS file "
                f"({type(err).__name__}: {err})"
            ) from None
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
    if truncated or _gzip_truncated(path):
        hdul.close()
        reason = truncated[0] if truncated else "the gzip stream ends early"
        raise ValueError(f"{path}: corrupt or truncated FITS file ({reason})")
    return hdul


def _gzip_truncated(path: Path) -> bool:
    """True for a gzip file that ends before its end-of-stream marker (astropy then reads fewer HDUs).

    Decompressing the stream once more is the only check; gzip-compressed event files are small enough.
    """
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return False
    try:
        with gzip.open(path, "rb") as g:
            while g.read(1 << 24):
                pass
    except (EOFError, OSError):
        return True
    return False


# --- events ----------------------------------------------------------------------------------------------


#: Columns that name the detector of each event: NICER's DET_ID (one of 56 focal-plane modules), RXTE PCA's
#: PCUID (one of 5 proportional counters).
_DETECTOR_COLUMNS = ("DET_ID", "PCUID")


@dataclass(frozen=True)
class _Scan:
    """What astropy tells about an event file before Stingray reads it."""

    headers: list[Any]
    n_rows: int
    extra_columns: list[str]
    has_gti: bool
    has_prior: bool
    patch: dict[str, float]  # keywords Stingray needs that the file lacks (TSTART, TSTOP, MJDREF)


def _missing_keywords(hdul: Any, hdu: Any, headers: list[Any], names: dict[str, str]) -> dict[str, float]:
    """TSTART, TSTOP (from the GTIs, else the events) and MJDREF (0) for files without them.

    Stingray's reader needs all three; hand-made or simulated event files often lack them.
    """
    patch: dict[str, float] = {}
    if header_value(headers, "TSTART") is None or header_value(headers, "TSTOP") is None:
        gti = [h for h in hdul[1:] if "GTI" in h.name.upper() and h.data is not None and len(h.data)]
        if gti:
            cols = {c.upper(): c for c in gti[0].columns.names}
            lo, hi = np.min(gti[0].data[cols["START"]]), np.max(gti[0].data[cols["STOP"]])
        else:
            time = hdu.data[names["TIME"]]
            lo, hi = np.min(time), np.max(time)
        patch.update(TSTART=float(lo), TSTOP=float(hi))
    if header_value(headers, "MJDREF") is None:
        patch["MJDREF"] = 0.0
    return patch


def _scan_event_file(path: Path) -> _Scan:
    from astropy.io.fits import BinTableHDU

    with open_fits(path) as hdul:
        tables = [h for h in hdul[1:] if isinstance(h, BinTableHDU)]
        if not tables:
            names = [h.name or type(h).__name__ for h in hdul]
            raise NotAnEventListError(
                f"{path}: no EVENTS table (the file holds no binary-table extension; HDUs: {names})"
            )
        cols = {id(h): {c.upper(): c for c in h.columns.names} for h in tables}
        named = [h for h in tables if h.name.upper() == "EVENTS"]
        with_time = [h for h in tables if "TIME" in cols[id(h)]]
        if named and "TIME" not in cols[id(named[0])]:
            raise NotAnEventListError(
                f"{path}: the EVENTS table has no TIME column (columns: {list(named[0].columns.names)})"
            )
        if not with_time:
            listed = {h.name: list(h.columns.names) for h in tables}
            raise NotAnEventListError(
                f"{path}: no EVENTS table with a TIME column (tables and columns: {listed})"
            )
        hdu = named[0] if named else with_time[0]
        kind = str(hdu.header.get("HDUCLAS1", "")).upper()
        if "LIGHT" in kind or (not named and {"RATE", "COUNTS"} & set(cols[id(hdu)])):
            raise NotAnEventListError(
                f"{path}: HDU {hdu.name!r} is a binned light curve (HDUCLAS1 = {kind!r}), not an EVENTS "
                "table; read it with read_lightcurve"
            )
        headers = [hdu.header.copy(), hdul[0].header.copy()]
        if not any("TELESCOP" in h.header or "MISSION" in h.header for h in hdul):
            raise ValueError(
                f"{path}: no TELESCOP or MISSION keyword in any header; the mission is needed to interpret "
                "the event columns"
            )
        n_rows = int(hdu.header.get("NAXIS2", 0))
        patch = _missing_keywords(hdul, hdu, headers, names=cols[id(hdu)]) if n_rows else {}
        names = cols[id(hdu)]
        extra = []
        if "ENERGY" in names and "PI" in names:
            extra.append(names["PI"])  # Stingray reads the ENERGY column and then skips PI
        if "PRIOR" in names:
            extra.append(names["PRIOR"])
        for key in ("DEADTIME", *_DETECTOR_COLUMNS):  # NICER's per-event dead time; detector identifiers
            if key in names:
                extra.append(names[key])
        has_gti = any("GTI" in h.name.upper() for h in hdul[1:])
    if n_rows == 0:
        raise ValueError(f"{path}: the event file holds no events (its {hdu.name!r} table has 0 rows)")
    return _Scan(headers, n_rows, extra, has_gti, "PRIOR" in names, patch)


def _stingray_events(path: Path, scan: _Scan, rmf_file: str | Path | None) -> Any:
    """``EventList.read(fmt="ogip")``; a file lacking keywords Stingray needs is read from a patched copy."""
    from stingray import EventList

    patched = tempfile.TemporaryDirectory() if scan.patch else contextlib.nullcontext("")
    # one read at a time (_WARNINGS_LOCK): a thread leaving catch_warnings would restore the "error"
    # filter while another is still inside Stingray (a flaky ResourceWarning error)
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True), patched as tmp:
        # Stingray warns about optional keywords and leaves its FITS file open (ResourceWarning).
        warnings.simplefilter("ignore")
        source = path
        if scan.patch:
            from astropy.io import fits

            source = Path(tmp) / "events.fits"
            with fits.open(path) as hdul:
                for h in hdul:
                    h.header.update(scan.patch)
                hdul.writeto(source)
        try:
            return EventList.read(
                str(source),
                fmt="ogip",
                rmf_file=None if rmf_file is None else str(rmf_file),
                additional_columns=list(scan.extra_columns) or None,
            )
        except Exception as err:
            message = f"{path}: Stingray cannot read the events ({type(err).__name__}: {err})"
        finally:
            # close the file Stingray left open while its warning is still ignored; the young generations
            # hold it (a full collection costs 0.3 s per file once torch is loaded)
            gc.collect(1)
    raise ValueError(message)


def _check_range(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with low < high, got {value!r}")
    return lo, hi


def _native(a: Any, dtype: Any = None) -> NDArray[Any] | None:
    if a is None:
        return None
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype=dtype or a.dtype.newbyteorder("="))


def _dead_time(
    times: NDArray[np.float64], prior: NDArray[np.float64], gti: NDArray[np.float64]
) -> tuple[float, int]:
    """Mean dead time per event from the PRIOR column: :math:`\\tau_{i-1} = (t_i - t_{i-1}) - PRIOR_i`.

    PRIOR is the live time preceding each event, so the interval between consecutive events is the dead time
    of the earlier one plus the PRIOR of the later one. Only pairs inside one GTI enter the mean.
    """
    which = np.searchsorted(gti[:, 0], times, side="right") - 1
    same = (which[1:] == which[:-1]) & (which[1:] >= 0)
    dead = np.diff(times) - prior[1:]
    ok = same & np.isfinite(dead) & (dead > -1e-6)
    n = int(np.count_nonzero(ok))
    return (float(np.mean(dead[ok])) if n else float("nan")), n


def _union(gti: NDArray[np.longdouble], notes: list[str]) -> NDArray[np.longdouble]:
    """Sorted GTIs with overlapping or touching intervals merged (OGIP GTIs should not overlap)."""
    out = [list(gti[0])]
    for g0, g1 in gti[1:]:
        if g0 <= out[-1][1]:
            out[-1][1] = max(out[-1][1], g1)
        else:
            out.append([g0, g1])
    if len(out) < len(gti):
        notes.append(f"{len(gti)} overlapping or touching GTIs merged into {len(out)}")
    return np.array(out, dtype=np.longdouble)


def _relative_times(time: NDArray[Any], t_ref: float, timezero: Any) -> NDArray[np.float64]:
    """``time - t_ref`` (long double in, float64 out) for an integer ``t_ref``.

    With no TIMEZERO shift Stingray's long-double times hold the file's float64 values exactly; a float64
    subtraction is then correctly rounded, i.e. the same number as the exact long-double difference rounded
    to float64, computed several times faster.
    """
    times = np.empty(time.shape, dtype=np.float64)
    if time.dtype == np.float64 or (timezero is not None and float(timezero) == 0.0):
        np.subtract(time, t_ref, out=times, dtype=np.float64, casting="same_kind")  # cast, then subtract
    else:
        np.subtract(time, np.longdouble(t_ref), out=times, casting="same_kind")
    return times


def read_events(
    path: str | Path,
    *,
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
    rmf_file: str | Path | None = None,
) -> EventData:
    """Read a FITS event file (OGIP: an event table with ``TIME``, GTI extensions) through Stingray.

    Events are sorted in time, then those outside the GTIs are dropped (Stingray's rule, as in
    ``EventList.apply_gtis``: the time stamp, taken as the centre of a clock tick of ``TIMEDEL``, must lie
    within the GTI, with a tolerance of 1e-3 of a tick), then those outside ``energy_range`` or
    ``pi_range`` (``low <= value < high``, as ``EventList.filter_energy_range``).

    Parameters
    ----------
    path : str or Path
        FITS event file, optionally gzip-compressed.
    energy_range : (float, float), optional
        Energy band, keV. Needs energies: an ENERGY column, a PI column of a mission Stingray can
        calibrate (NuSTAR, NICER, XMM, RXTE, IXPE, ...), or ``rmf_file``.
    pi_range : (float, float), optional
        PI channel band.
    rmf_file : str or Path, optional
        Response matrix used by Stingray to turn PI channels into energies.

    Returns
    -------
    EventData

    Raises
    ------
    ValueError
        Naming the file: missing, not FITS, corrupt or truncated, without an EVENTS table or a TIME column,
        without events, with every event outside the GTIs, an ``energy_range`` without energies in the
        file, or a range that leaves no events.

    Examples
    --------
    >>> import os, stingray
    >>> f = os.path.join(os.path.dirname(stingray.__file__), "tests", "data", "monol_testA.evt")
    >>> ev = read_events(f, energy_range=(3.0, 30.0))
    >>> ev.mission, ev.instrument, ev.exposure, ev.n_events_read > ev.n_events_kept
    ('nustar', 'FPMA', 1025.0, True)
    """
    p = Path(path)
    require_file(p, "event file")
    e_range = _check_range(energy_range, "energy_range")
    c_range = _check_range(pi_range, "pi_range")
    scan = _scan_event_file(p)
    ev = _stingray_events(p, scan, rmf_file)
    notes: list[str] = []

    time = ev.time
    n_read = len(time)
    gti_ld = np.asarray(ev.gti if ev.gti is not None else [[np.min(time), np.max(time)]], dtype=np.longdouble)
    if gti_ld.ndim != 2 or gti_ld.shape[1] != 2 or np.any(gti_ld[:, 1] < gti_ld[:, 0]):
        raise ValueError(f"{p}: invalid GTIs {gti_ld.tolist()!r}")
    gti_ld = _union(gti_ld[np.argsort(gti_ld[:, 0])], notes)
    if not scan.has_gti:
        notes.append("no GTI extension: the GTI is the span of the events (Stingray's default)")
    if scan.patch:
        notes.append(f"header keywords missing, set for Stingray: {scan.patch}")
    # A whole second: times - t_ref is then exact in long double and, below 2**14 s, keeps every bit of the
    # long-double times (~3e-11 s at 4e8 s) in float64, so events fall in exactly the bins Stingray uses.
    t_ref = float(np.floor(gti_ld[0, 0]))
    times = _relative_times(time, t_ref, getattr(ev, "timezero", None))
    gti = np.asarray(gti_ld - np.longdouble(t_ref), dtype=np.float64)
    energy = _native(getattr(ev, "energy", None), np.float64)
    pi = _native(getattr(ev, "pi", None))
    prior = _native(getattr(ev, "prior", None), np.float64) if scan.has_prior else None
    deadtime_col = _native(getattr(ev, "deadtime", None), np.float64)
    detector_ids = _native(
        getattr(ev, "detector_id", None)
    )  # Stingray's own detector column, if it knows one
    if detector_ids is None:
        detector_ids = next(
            (
                ids
                for key in _DETECTOR_COLUMNS
                if (ids := _native(getattr(ev, key.lower(), None))) is not None
            ),
            None,
        )
    columns = {"energy": energy, "pi": pi, "prior": prior}

    k = first_unsorted(times)
    if k >= 0 and not np.all(np.isfinite(times)):
        raise ValueError(f"{p}: {int(np.sum(~np.isfinite(times)))} event times are not finite")
    if k >= 0:
        order = np.argsort(times, kind="stable")
        times = times[order]
        columns = {name: None if v is None else v[order] for name, v in columns.items()}
        notes.append("events were not in time order: sorted")

    dead_time, prior = None, columns.pop("prior")
    if prior is not None:  # all events, in and out of the band and GTIs, cause dead time
        dead_time, n_pairs = _dead_time(times, prior, gti)
        if n_pairs:
            notes.append(
                f"PRIOR column: mean dead time {dead_time * 1e3:.4g} ms per event ({n_pairs} consecutive "
                "pairs); dead time lowers the Leahy white-noise level below 2, frequency-dependently"
            )
        else:
            dead_time = None
    elif deadtime_col is not None and deadtime_col.size and np.all(np.isfinite(deadtime_col)):
        dead_time = float(np.mean(deadtime_col))  # every event read, as every event made its detector dead
        notes.append(
            f"DEADTIME column: mean dead time {dead_time * 1e6:.4g} us per event ({deadtime_col.size} events)"
        )
    elif str(ev.mission).lower() == "nustar":
        notes.append("NuSTAR file without a PRIOR column: the dead time (~2.5 ms per event) is not estimated")
    n_detectors = None if detector_ids is None else int(np.unique(detector_ids).size)

    # GTI filter on the sorted times, with Stingray's border rule (see the docstring).
    tick = float(ev.dt or 0.0)
    lo = times.searchsorted(gti[:, 0] + tick / 2 - _GTI_BORDER_EPSILON * tick, side="left")
    hi = times.searchsorted(gti[:, 1] - tick / 2 + _GTI_BORDER_EPSILON * tick, side="right")
    hi = np.maximum(hi, lo)
    n_in_gti = int(np.sum(hi - lo))
    if n_in_gti == 0:
        raise ValueError(
            f"{p}: all {n_read} events lie outside the GTIs (events from {times[0]:.6g} to {times[-1]:.6g} "
            f"s, GTIs {gti.tolist()!r} s, both after t_ref = {t_ref!r})"
        )
    if n_in_gti < n_read:
        pieces = [slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True) if b > a]
        times = np.concatenate([times[s] for s in pieces])
        columns = {
            name: None if v is None else np.concatenate([v[s] for s in pieces]) for name, v in columns.items()
        }
        notes.append(f"{n_read - n_in_gti} of {n_read} events outside the GTIs dropped")

    mask = None
    if e_range is not None:
        if columns["energy"] is None:
            hint = "use pi_range=(low, high) in PI channels instead" if columns["pi"] is not None else ""
            raise ValueError(
                f"{p}: energy_range = {e_range} needs event energies, but the file has only "
                f"{'PI channels' if columns['pi'] is not None else 'times'} and Stingray has no PI-to-energy "
                f"calibration for mission {ev.mission!r} (pass rmf_file=...); {hint}".rstrip("; ")
            )
        mask = (columns["energy"] >= e_range[0]) & (columns["energy"] < e_range[1])
    if c_range is not None:
        if columns["pi"] is None:
            raise ValueError(f"{p}: pi_range = {c_range} needs a PI (or PHA) column; the file has none")
        in_pi = (columns["pi"] >= c_range[0]) & (columns["pi"] < c_range[1])
        mask = in_pi if mask is None else mask & in_pi
    if mask is not None:
        n_band = int(np.count_nonzero(mask))
        band = " and ".join(
            s for s in (e_range and f"energy_range = {e_range} keV", c_range and f"pi_range = {c_range}") if s
        )
        if n_band == 0:
            raise ValueError(f"{p}: no event in {band} (of {n_in_gti} events inside the GTIs)")
        times = times[mask]
        columns = {name: None if v is None else v[mask] for name, v in columns.items()}
        notes.append(f"{n_in_gti - n_band} of {n_in_gti} events outside {band} dropped")

    headers = scan.headers
    exposure = float(np.sum(gti[:, 1] - gti[:, 0]))
    header_exposure = header_float(headers, "EXPOSURE")
    if header_exposure is not None and abs(header_exposure - exposure) > 0.01 * exposure:
        notes.append(
            f"EXPOSURE keyword {header_exposure:.6g} s differs from the GTI total {exposure:.6g} s "
            "(EXPOSURE is often dead-time corrected, or the file was cut)"
        )
    live_fraction = _live_fraction(headers, exposure, notes)
    mjdref = None if "MJDREF" in scan.patch else header_float(headers, "MJDREF")
    return EventData(
        path=str(p),
        times=times,
        gti=gti,
        t_ref=t_ref,
        mission=str(getattr(ev, "mission", "") or "unknown"),
        energy=columns["energy"],
        pi=columns["pi"],
        instrument=str(getattr(ev, "instr", "") or header_text(headers, "INSTRUME")),
        telescope=header_text(headers, "TELESCOP"),
        target=header_text(headers, "OBJECT"),
        timesys=getattr(ev, "timesys", None) or (header_text(headers, "TIMESYS").lower() or None),
        timeref=getattr(ev, "timeref", None) or (header_text(headers, "TIMEREF").lower() or None),
        mjdref=mjdref if mjdref is None else float(getattr(ev, "mjdref", None) or mjdref),
        time_resolution=tick if tick > 0 else None,
        exposure=exposure,
        header_exposure=header_exposure,
        live_fraction=live_fraction,
        dead_time=dead_time,
        n_detectors=n_detectors,
        n_events_read=n_read,
        n_events_kept=len(times),
        energy_range=e_range,
        pi_range=c_range,
        notes=tuple(notes),
    )


def _live_fraction(headers: list[Any], exposure: float, notes: list[str]) -> float | None:
    """Live fraction from DEADC, else LIVETIME / ONTIME, else LIVETIME / (GTI total); None if unknown."""
    deadc = header_float(headers, "DEADC")
    if deadc is not None and 0 < deadc <= 1:
        notes.append(f"live fraction {deadc:.4g} from the DEADC keyword")
        return deadc
    livetime = header_float(headers, "LIVETIME")
    if livetime is None or livetime <= 0:
        return None
    ontime = header_float(headers, "ONTIME")
    base, name = (ontime, "ONTIME") if ontime is not None and ontime > 0 else (exposure, "the GTI total")
    ratio = livetime / base
    if ratio > 1.0 + 1e-6:
        notes.append(f"LIVETIME {livetime:.6g} s exceeds {name} {base:.6g} s: no live fraction")
        return None
    notes.append(f"live fraction {ratio:.4g} from LIVETIME / {name}")
    return min(ratio, 1.0)


def spectrum_from_event_file(
    path: str | Path, *, dt: float, segment_size: float, norm: Norm = "leahy", rebin_log_f: float = 0.0
) -> PowerSpectrum:
    """Averaged (optionally log-rebinned) power spectrum of an event file over all its segments, as Stingray's
    ``AveragedPowerspectrum.from_events`` makes it (segments with fewer than 2 events skipped).

    ``rebin_log_f`` is the log-rebinning factor, >= 0 (0: none).
    """
    _check_rebin_log(rebin_log_f)
    ev = read_events(path)
    ps = periodogram_from_events(ev.times, gti=ev.gti, dt=dt, segment_size=segment_size, norm=norm)
    return rebin_log(ps, rebin_log_f) if rebin_log_f > 0 else ps


# --- the spectrum of an observation ----------------------------------------------------------------------


def _check_rebin_log(rebin_log_f: float) -> None:
    if not (np.isfinite(rebin_log_f) and rebin_log_f >= 0):
        raise ValueError(f"rebin_log_f must be a finite number >= 0 (0 = no rebinning), got {rebin_log_f!r}")


def _check_n_segments(n_segments: Any) -> int | None:
    if n_segments is None:
        return None
    if isinstance(n_segments, bool) or not isinstance(n_segments, int | np.integer) or n_segments < 1:
        raise ValueError(f"n_segments must be None or an integer >= 1, got {n_segments!r}")
    return int(n_segments)


def _too_short(path: str, gti: NDArray[np.float64], segment_length: float) -> ValueError:
    longest = float(np.max(gti[:, 1] - gti[:, 0])) if gti.size else 0.0
    return ValueError(
        f"{path}: the segment length {segment_length:g} s is longer than every GTI (the longest GTI is "
        f"{longest:.6g} s); use shorter segments or another observation"
    )


def _resolution_warning(tick: float | None, dt: float) -> str | None:
    """A note when ``dt`` is finer than the clock tick, or not a multiple of a coarse one (beats)."""
    if not tick:
        return None
    if dt < tick * (1 - 1e-9):
        return f"dt = {dt:g} s is finer than the time resolution of the events ({tick:g} s)"
    ratio = dt / tick
    if tick > 1e-3 * dt and abs(ratio - round(ratio)) > 1e-6 * ratio:
        return (
            f"dt = {dt:g} s is not a multiple of the time resolution {tick:g} s: the number of clock ticks "
            "per bin alternates, adding spurious periodic power (Stingray rounds dt to a multiple instead)"
        )
    return None


def observation_spectrum(
    source: EventData | BinnedLightCurve,
    *,
    dt: float,
    segment_size: float,
    n_segments: int | None = None,
    norm: Norm = "leahy",
    rebin_log_f: float = 0.0,
) -> tuple[PowerSpectrum, dict[str, Any]]:
    """Averaged periodogram of one observation on the grid of a trained model.

    Segments of length :math:`T_{seg}` = ``segment_size`` (fixed to a whole number of bins of ``dt``, as
    :func:`~xtml.timing.periodogram_from_events` does) are laid from the start of each GTI without gaps;
    only whole segments inside a GTI are used. With ``n_segments`` the first ``n_segments`` of them are
    averaged, else all. Events are binned at ``dt`` exactly as Stingray bins them; a light curve with bins
    finer than ``dt`` is summed by the integer factor ``dt / lc.dt``. The spectrum is
    :func:`~xtml.timing.periodogram` of those counts, the function the training spectra come from: every
    chosen segment is kept, also one with fewer than 2 events, which Stingray's ``AveragedPowerspectrum``
    (and :func:`~xtml.timing.periodogram_from_events`) would skip; a model trained on averages of
    :math:`M` segments needs exactly :math:`M`, and skipping sparse segments would bias the mean.

    Parameters
    ----------
    source : EventData or BinnedLightCurve
        From :func:`read_events` or :func:`~xtml.timing.read_lightcurve`.
    dt : float
        Bin time, s.
    segment_size : float
        Segment length, s.
    n_segments : int, optional
        Number of segments to average (the model's); an error if fewer fit in the GTIs.
    norm : {"leahy", "frac", "abs"}, optional
    rebin_log_f : float, optional
        Logarithmic rebinning factor passed to :func:`~xtml.timing.rebin_log` (0: none).

    Returns
    -------
    spectrum : PowerSpectrum
        One spectrum (``n = 1``).
    notes : dict
        ``segments_used``, ``segments_available``, ``segment_length_s``, ``exposure_analysed_s``,
        ``exposure_total_s`` (the GTI total) and ``mean_rate_cps``; ``warning`` (text) when ``dt`` does
        not suit the time resolution of the events.

    Raises
    ------
    ValueError
        Naming the file: a segment longer than every GTI (with the longest GTI), fewer segments than
        ``n_segments``, a light curve binned coarser than ``dt`` or not at an integer fraction of it.
    """
    from xtml.timing.lightcurve_io import BinnedLightCurve, lightcurve_counts, lightcurve_segment_starts

    norm = check_norm(norm)
    _check_rebin_log(rebin_log_f)
    n_want = _check_n_segments(n_segments)
    if not isinstance(source, EventData | BinnedLightCurve):
        raise ValueError(f"source must be an EventData or a BinnedLightCurve, got {type(source).__name__}")
    segment_length, n_bins = _segment_bins_from_size(segment_size, _check_dt(dt))
    gti = np.asarray(source.gti, dtype=np.float64).reshape(-1, 2)
    if isinstance(source, EventData):
        times = np.ascontiguousarray(source.times, dtype=np.float64)
        if times.ndim != 1 or times.size == 0 or first_unsorted(times) >= 0:
            raise ValueError(f"{source.path}: event times must be a non-empty, finite, sorted 1-D array")
        starts = _segment_starts(gti, segment_length)
        warning = _resolution_warning(source.time_resolution, float(dt))
    else:
        starts, factor = lightcurve_segment_starts(source, float(dt), n_bins)
        warning = None
    available = len(starts)
    if available == 0:
        raise _too_short(source.path, gti, segment_length)
    if n_want is not None and available < n_want:
        raise ValueError(
            f"{source.path}: n_segments = {n_want} segments of {segment_length:g} s need "
            f"{n_want * segment_length:g} s of good time, longer than the {available * segment_length:g} s "
            f"({available} segments) that fit in the GTIs ({float(source.exposure):.6g} s of good time)"
        )
    starts = starts[:n_want]
    if isinstance(source, EventData):
        counts = segment_counts(times, starts, segment_length, n_bins)
    else:
        counts = lightcurve_counts(source, starts, n_bins, factor)
    try:
        # photons counted in bins of dt from a rate in continuous time: a sinc^2 response, all aliases
        ps = periodogram(counts.reshape(1, -1), dt, norm=norm, segment_bins=n_bins, sampling="continuous")
    except ValueError as err:
        raise ValueError(f"{source.path}: {err}") from None
    used = int(ps.n_segments)
    notes = {
        "segments_used": used,
        "segments_available": available,
        "segment_length_s": float(ps.segment_length),
        "exposure_analysed_s": used * float(ps.segment_length),
        "exposure_total_s": float(source.exposure),
        "mean_rate_cps": float(np.atleast_1d(ps.mean_rate)[0]),
    }
    if warning:
        notes["warning"] = warning
    return (rebin_log(ps, rebin_log_f) if rebin_log_f > 0 else ps), notes
