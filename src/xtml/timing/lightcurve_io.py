"""Binned light curves in: OGIP FITS light curves (RATE or COUNTS tables) and ASCII columns.

A :class:`BinnedLightCurve` holds only the bins that can enter a power spectrum: inside the file's GTIs (if
any), with a finite value, a full bin width and enough fractional exposure. Its ``gti`` are the runs of
contiguous such bins, so that ``time`` is regular inside each GTI. Counts are counts per bin (a rate column
is multiplied by the bin time, and by ``FRACEXP`` when the file gives it, as xronos ``lcurve`` divides by
it). :func:`xtml.timing.observation_spectrum` makes the spectrum of a light curve on a model's grid.
"""

from __future__ import annotations

import gzip
import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from xtml._files import require_file
from xtml.timing.io import _WARNINGS_LOCK, header_float, header_text, header_value, open_fits

__all__ = ["BinnedLightCurve", "Values", "lightcurve_counts", "lightcurve_segment_starts", "read_lightcurve"]

Values = Literal["auto", "counts", "rate"]
# Tolerance on bin steps and borders, as a fraction of the bin time (Stingray's ``epsilon`` for GTIs).
_STEP_TOLERANCE = 1e-3
_TJD_MJD = 40000.0  # truncated Julian day 0 = MJD 40000 (xronos "TIMEUNIT = 'd'" light curves)
_NOT_VALUES = ("TIME", "TIMEDEL", "XAX_E", "FRACEXP", "FRACTIME", "FRACAREA", "BACKRATIO", "OFFAXIS")


@dataclass(frozen=True)
class BinnedLightCurve:
    """A binned light curve: ``counts`` per bin of ``dt`` s at bin centres ``time`` (s since ``t_ref``).

    ``t_ref`` is the start of the first GTI rounded down to a whole second, in the file's time frame (s
    since ``mjdref``). ``gti`` (s
    since ``t_ref``) are runs of contiguous good bins. ``from_rate`` says the file held count rates (then
    ``counts = rate * dt``, times ``FRACEXP`` if given). ``exposure`` is the GTI total (s).

    ``native_dt`` is set when the file's bins were resampled from a finer native resolution that does not
    divide them (``FRACEXP`` whole multiples of ``native_dt / dt``, some above 1: RXTE light curves made at
    0.02 s from 1/64 s data hold 1 or 2 native bins each). The counts then carry the beat of the two
    samplings at ``beat_freqs`` (Hz); ``clean_dt`` (the least common multiple of ``dt`` and ``native_dt``)
    is the shortest bin time at which every bin holds the same exposure, and spectra of such a light curve
    must use a multiple of it (:func:`lightcurve_segment_starts` refuses others, saying so).
    """

    path: str
    time: NDArray[np.float64]
    counts: NDArray[np.float64]
    dt: float
    gti: NDArray[np.float64]
    t_ref: float
    mission: str
    target: str
    from_rate: bool = False
    counts_err: NDArray[np.float64] | None = None
    telescope: str = ""
    instrument: str = ""
    timesys: str | None = None
    mjdref: float | None = None
    column: str = ""
    exposure: float = field(default=float("nan"))
    notes: tuple[str, ...] = ()
    native_dt: float | None = None
    clean_dt: float | None = None
    beat_freqs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not np.isfinite(self.exposure):
            gti = np.asarray(self.gti, dtype=np.float64).reshape(-1, 2)
            object.__setattr__(self, "exposure", float(np.sum(gti[:, 1] - gti[:, 0])))


def _is_fits(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(6)
        except (EOFError, OSError):
            return True  # a broken gzip file: let the FITS reader report it
    return head == b"SIMPLE"


def _finish(
    path: Path,
    time_abs: NDArray[np.longdouble],
    values: NDArray[np.float64],
    errors: NDArray[np.float64] | None,
    dt: float,
    good: NDArray[np.bool_],
    file_gti: NDArray[np.longdouble] | None,
    meta: dict[str, Any],
    notes: list[str],
) -> BinnedLightCurve:
    """Keep the good bins inside the file's GTIs; GTIs = runs of contiguous good bins; times after t_ref."""
    tol = _STEP_TOLERANCE * dt
    if file_gti is not None and file_gti.size:
        file_gti = file_gti[np.argsort(file_gti[:, 0])]
        which = np.searchsorted(file_gti[:, 0], time_abs - dt / 2 + tol, side="right") - 1
        inside = (which >= 0) & (time_abs + dt / 2 - tol <= file_gti[np.maximum(which, 0), 1])
        if np.any(good & ~inside):
            notes.append(f"{int(np.sum(good & ~inside))} bins not wholly inside the file's GTIs dropped")
        good = good & inside
    n_dropped = int(good.size - np.count_nonzero(good))
    idx = np.flatnonzero(good)
    if idx.size == 0:
        where = ""
        if file_gti is not None and file_gti.size:
            longest = float(np.max(file_gti[:, 1] - file_gti[:, 0]))
            if longest < dt - tol:
                covered = float(np.sum(file_gti[:, 1] - file_gti[:, 0]))
                span = float(time_abs.max() - time_abs.min()) + dt
                raise ValueError(
                    f"{path}: every one of the file's {len(file_gti)} GTIs is shorter than a bin (the "
                    f"longest is {longest:.3g} s, the bins {dt:g} s), so no bin lies wholly inside a GTI; "
                    f"together they cover {covered:.6g} s of the {span:.6g} s the bins span. The GTIs are "
                    "finer than the light curve (e.g. an EPIC-pn GTI extension per CCD frame interruption): "
                    "make the light curve from the events with bins shorter than the GTIs, or read the "
                    "event file"
                )
            where = (
                f"; the bins span {float(time_abs.min()):.10g} to {float(time_abs.max()):.10g} s, the GTIs "
                f"{float(file_gti.min()):.10g} to {float(file_gti.max()):.10g} s"
            )
        raise ValueError(
            f"{path}: no usable bin (every bin lacks a finite value, has too little exposure or lies outside "
            f"the GTIs{where})"
        )
    t = time_abs[idx]
    step = np.diff(t)
    if np.any(step < dt - tol):
        k = int(np.flatnonzero(step < dt - tol)[0])
        raise ValueError(
            f"{path}: bin times are not increasing by at least the bin time dt = {dt:g} s "
            f"(bins {idx[k]} and {idx[k + 1]} are {float(step[k]):.6g} s apart)"
        )
    breaks = np.flatnonzero((np.diff(idx) != 1) | (np.abs(step - dt) > tol)) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks, [idx.size]]) - 1
    gti_abs = np.stack([t[first] - dt / 2, t[last] + dt / 2], axis=1)
    t_ref = float(np.floor(gti_abs[0, 0]))  # whole seconds, as read_events
    if n_dropped:
        notes.append(
            f"{n_dropped} of {good.size} bins dropped (no value, partial exposure or outside the GTIs)"
        )
    kept = values[idx]
    if np.any(kept < 0):
        notes.append(
            "negative counts (a background-subtracted light curve?): not usable for a Poisson spectrum"
        )
    return BinnedLightCurve(
        path=str(path),
        time=np.asarray(t - np.longdouble(t_ref), dtype=np.float64),
        counts=np.ascontiguousarray(kept, dtype=np.float64),
        dt=float(dt),
        gti=np.asarray(gti_abs - np.longdouble(t_ref), dtype=np.float64),
        t_ref=t_ref,
        counts_err=None if errors is None else np.ascontiguousarray(errors[idx], dtype=np.float64),
        notes=tuple(notes),
        **meta,
    )


def _value_column(path: Path, hdu: Any, names: dict[str, str], column: str | None) -> str:
    if column is not None:
        if column.upper() not in names:
            raise ValueError(
                f"{path}: no column {column!r} in HDU {hdu.name!r} (columns: {list(names.values())})"
            )
        return names[column.upper()]
    for cand in ("COUNTS", "RATE", "RATE1"):
        if cand in names:
            return names[cand]
    rest = [
        c
        for u, c in names.items()
        if u not in _NOT_VALUES and not u.startswith("ERR") and not u.endswith(("_ERR", "_ERROR"))
    ]
    if len(rest) == 1:
        return rest[0]
    raise ValueError(
        f"{path}: cannot tell which column of HDU {hdu.name!r} holds the light curve (columns: "
        f"{list(names.values())}); pass column=..."
    )


def _read_fits(
    path: Path, column: str | None, band: int, dt_arg: float | None, values: Values, min_fracexp: float
) -> BinnedLightCurve:
    from astropy.io.fits import BinTableHDU

    notes: list[str] = []
    with open_fits(path, "light curve") as hdul:
        tables = [h for h in hdul[1:] if isinstance(h, BinTableHDU)]
        if not tables:
            raise ValueError(f"{path}: no light-curve table (the file holds no binary-table extension)")
        hdu = next((h for h in tables if h.name.upper() == "RATE"), None)
        if hdu is None:
            light = [h for h in tables if "LIGHT" in str(h.header.get("HDUCLAS1", "")).upper()]
            hdu = (light or tables)[0]
        if hdu.name.upper() == "EVENTS" or str(hdu.header.get("HDUCLAS1", "")).upper() == "EVENTS":
            raise ValueError(f"{path}: HDU {hdu.name!r} is an event list, not a light curve; use read_events")
        names = {c.upper(): c for c in hdu.columns.names}
        col = _value_column(path, hdu, names, column)
        data = hdu.data
        headers = [hdu.header.copy(), hdul[0].header.copy()]
        unit = str(hdu.columns[col].unit or "").strip().lower()
        raw = np.array(data[col], dtype=np.float64)
        get = {u: np.array(data[c], dtype=np.float64) for u, c in names.items() if u in _NOT_VALUES}
        err_col = next(
            (
                names[c]
                for c in (f"{col.upper()}_ERR", col.upper().replace("RATE", "ERROR"), "ERROR")
                if c in names and c != col.upper() and (c != "ERROR" or col.upper().startswith("RATE"))
            ),
            None,
        )
        err = None if err_col is None else np.array(data[err_col], dtype=np.float64)
        time_unit = str(hdu.columns[names["TIME"]].unit or "s").strip().lower() if "TIME" in names else "s"
        gti_hdu = next((h for h in tables if "GTI" in h.name.upper()), None)
        file_gti = None
        g = {} if gti_hdu is None else {c.upper(): c for c in gti_hdu.columns.names}
        if "START" in g and "STOP" in g:
            file_gti = np.stack(
                [
                    np.asarray(gti_hdu.data[g["START"]], np.longdouble),
                    np.asarray(gti_hdu.data[g["STOP"]], np.longdouble),
                ],
                axis=1,
            ).reshape(-1, 2)

    if raw.ndim == 2:
        if not 0 <= band < raw.shape[1]:
            raise ValueError(
                f"{path}: band = {band} is out of range; column {col!r} has {raw.shape[1]} bands"
            )
        n_bands = raw.shape[1]
        raw = raw[:, band]
        err = None if err is None or err.ndim != 2 else err[:, band]
        lo, hi = header_float(headers, f"E_MIN{band + 1}"), header_float(headers, f"E_MAX{band + 1}")
        energies = f" ({lo:g}-{hi:g} keV)" if lo is not None and hi is not None else ""
        notes.append(f"column {col!r} holds {n_bands} bands: band {band}{energies} read")
    elif raw.ndim != 1:
        raise ValueError(
            f"{path}: column {col!r} has shape {raw.shape}; expected one value (or one per band) per bin"
        )
    kind = values
    if kind == "auto":
        if col.upper().startswith("RATE") or "/s" in unit or "s-1" in unit or "s**-1" in unit:
            kind = "rate"
        else:
            kind = "counts"
            if not (col.upper().startswith("COUNT") or unit.startswith(("count", "ct"))):
                notes.append(
                    f"column {col!r} ({f'unit {unit!r}' if unit else 'no unit'}) taken as counts per bin; "
                    "pass values='rate' for rates"
                )

    hdr = headers  # the light-curve extension's header, then the primary header
    scale = 86400.0 if header_text(hdr, "TIMEUNIT").lower() == "d" else 1.0
    file_dt = header_float(hdr[:1], "TIMEDEL")
    file_dt = None if file_dt is None else file_dt * scale
    n = raw.size
    if file_dt is None and "TIMEDEL" in get:
        file_dt = float(np.median(get["TIMEDEL"]))
    if file_dt is None and "TIME" in get and n > 1:
        file_dt = float(np.median(np.diff(get["TIME"]))) * (86400.0 if time_unit == "d" else 1.0)
        notes.append(f"no TIMEDEL keyword: the bin time is the median TIME step, {file_dt:g} s")
    if dt_arg is not None and file_dt is not None and abs(dt_arg - file_dt) > 1e-6 * file_dt:
        raise ValueError(f"{path}: dt = {dt_arg:g} s was given but the file's bins are {file_dt:g} s")
    dt = file_dt if file_dt is not None else dt_arg
    if dt is None or not dt > 0:
        raise ValueError(
            f"{path}: no TIME column and no TIMEDEL keyword; pass dt= (the bin time, s) to read column "
            f"{col!r} as a regularly sampled series"
        )

    mjdref = header_float(hdr, "MJDREF")
    timezero = header_value(hdr[:1], "TIMEZERO")
    offset = np.longdouble(0.0 if timezero is None else timezero) * scale
    if scale != 1.0 and timezero is not None and float(timezero) > 0:
        # xronos writes TIMEZERO in truncated Julian days when TIMEUNIT = 'd' (and MJDREF in the input).
        origin = header_value(hdr, "MJDREF") if mjdref is not None else _TJD_MJD
        offset = (np.longdouble(timezero) + np.longdouble(_TJD_MJD) - np.longdouble(origin)) * 86400
        notes.append(
            "TIMEUNIT = 'd': TIMEZERO read as truncated Julian days (MJD - 40000), the xronos convention"
        )
        mjdref = float(origin)
    if "TIME" in get:
        time_abs = np.asarray(get["TIME"], np.longdouble) * (86400 if time_unit == "d" else 1) + offset
        pixr = header_float(hdr[:1], "TIMEPIXR")
        if pixr is not None:
            time_abs = time_abs + (0.5 - pixr) * dt  # to bin centres
    else:
        time_abs = (np.arange(n, dtype=np.longdouble) + 0.5) * np.longdouble(dt)
        notes.append(f"no TIME column: {n} consecutive bins of dt = {dt:g} s from t = 0")

    good = np.isfinite(raw)
    frac_name = "FRACTIME" if "FRACTIME" in get else "FRACEXP" if "FRACEXP" in get else None
    resampled: dict[str, Any] = {}
    if frac_name is not None:
        frac = get[frac_name] if get[frac_name].ndim == 1 else get[frac_name][:, band]
        resampled = _native_resolution(frac, good, float(dt))
        if resampled:
            whole = resampled.pop("whole")
            if np.any(good & ~whole):
                notes.append(
                    f"{int(np.sum(good & ~whole))} bins whose {frac_name} is not a whole number of native "
                    "bins dropped"
                )
            good &= whole
            notes.append(_resampled_note(frac_name, frac[good], float(dt), resampled))
        else:
            low = ~(frac >= min_fracexp)
            if np.any(good & low):
                notes.append(f"{int(np.sum(good & low))} bins with {frac_name} < {min_fracexp:g} dropped")
            good &= ~low
            over = good & (frac > 1 + _STEP_TOLERANCE)
            if np.any(over):
                notes.append(
                    f"{int(np.sum(over))} bins with {frac_name} > 1 (up to {float(np.max(frac[over])):.6g}): "
                    "more exposure than the bin width, not a whole number of a finer native bin; kept, "
                    "but check how the file was binned"
                )
    if "TIMEDEL" in get and get["TIMEDEL"].ndim == 1:
        partial = np.abs(get["TIMEDEL"] * scale - dt) > _STEP_TOLERANCE * dt
        if np.any(good & partial):
            notes.append(f"{int(np.sum(good & partial))} bins shorter than dt = {dt:g} s dropped")
        good &= ~partial
    counts, factor = raw, 1.0
    if kind == "rate":
        fracexp = get.get("FRACEXP")
        factor = dt if fracexp is None else dt * (fracexp if fracexp.ndim == 1 else fracexp[:, band])
        counts = raw * factor
        notes.append(f"counts = {col} x dt" + (" x FRACEXP" if fracexp is not None else ""))
    meta = {
        "mission": (header_text(hdr, "MISSION") or header_text(hdr, "TELESCOP")).lower() or "unknown",
        "target": header_text(hdr, "OBJECT"),
        "from_rate": kind == "rate",
        "telescope": header_text(hdr, "TELESCOP"),
        "instrument": header_text(hdr, "INSTRUME"),
        "timesys": header_text(hdr, "TIMESYS").lower() or None,
        "mjdref": mjdref,
        "column": col,
    }
    err = None if err is None else err * factor
    return _finish(path, time_abs, counts, err, float(dt), good, file_gti, {**meta, **resampled}, notes)


def _native_resolution(frac: NDArray[np.float64], good: NDArray[np.bool_], dt: float) -> dict[str, Any]:
    """``native_dt``, ``clean_dt``, ``beat_freqs`` and the mask ``whole`` when the bins are resampled.

    Resampled: among the finite, positive fractional exposures of the good bins, some exceed 1 and (at least
    99 % of) all are whole multiples of the smallest, ``q``; the native bin time is ``q dt``. Empty otherwise.
    """
    f = frac[good & np.isfinite(frac) & (frac > 0)]
    if f.size < 2 or not np.max(f) > 1 + _STEP_TOLERANCE:
        return {}
    q = float(np.min(f))
    ratio = frac / q
    whole = np.isfinite(ratio) & (np.abs(ratio - np.round(ratio)) < 1e-3) & (np.round(ratio) >= 1)
    if np.mean(whole[good & np.isfinite(frac) & (frac > 0)]) < 0.99:
        return {}
    native = Fraction(q * dt).limit_denominator(1_000_000)
    step = Fraction(dt).limit_denominator(1_000_000)
    clean = Fraction(
        math.lcm(native.numerator * step.denominator, step.numerator * native.denominator),
        native.denominator * step.denominator,
    )
    # the exposure pattern repeats every clean_dt: its spectrum has lines at multiples of 1 / clean_dt;
    # the strongest two below the Nyquist frequency are where the counts beat
    period = round(float(clean / step))
    beats: tuple[float, ...] = ()
    if 2 <= period <= 100_000:
        run = np.flatnonzero(good & whole)
        pattern = np.round(ratio[run[: 64 * period]]).astype(np.float64)
        if pattern.size >= 4 * period:
            power = np.abs(np.fft.rfft(pattern - pattern.mean())) ** 2
            freq = np.fft.rfftfreq(pattern.size, dt)
            top = np.argsort(power[1:])[::-1][:2] + 1
            beats = tuple(sorted(float(round(freq[k], 6)) for k in top if power[k] > 1e-6 * power.sum()))
    return {"native_dt": float(native), "clean_dt": float(clean), "beat_freqs": beats, "whole": whole}


def _resampled_note(frac_name: str, frac: NDArray[np.float64], dt: float, r: dict[str, Any]) -> str:
    counts = sorted({int(v) for v in np.round(frac * dt / r["native_dt"])})
    beats = ", ".join(f"{b:g}" for b in r["beat_freqs"]) or "multiples of 1 / clean_dt"
    return (
        f"{frac_name} takes the values {', '.join(f'{v:g}' for v in sorted(set(np.round(frac, 6))))}: the "
        f"{dt:g} s bins hold {' or '.join(map(str, counts))} native bins of {r['native_dt']:g} s (the file "
        f"was rebinned from that resolution; {frac_name} > 1 is a bin holding more than its width). The bins "
        f"are kept whole (not dropped as partial exposure), but their counts beat at {beats} Hz; only bin "
        f"times that are multiples of {r['clean_dt']:g} s hold equal exposure"
    )


def _read_ascii(path: Path, dt_arg: float | None, values: Values) -> BinnedLightCurve:
    try:
        # an empty file (or comments only) is reported below with the row count, not as numpy's warning
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            table = np.loadtxt(path, ndmin=2, comments=("#", "!"), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: neither a FITS file nor numeric text columns (time, counts[, error]): {err}"
        ) from None
    if table.shape[1] not in (2, 3) or table.shape[0] < 3:
        raise ValueError(
            f"{path}: expected 2 or 3 numeric columns (time, counts[, error]) and at least 3 rows; got "
            f"{table.shape[0]} rows of {table.shape[1]} columns"
        )
    time, raw = table[:, 0], table[:, 1]
    err = table[:, 2] if table.shape[1] == 3 else None
    dt = float(np.median(np.diff(time))) if dt_arg is None else dt_arg
    if not dt > 0:
        raise ValueError(f"{path}: times must increase; the median step is {dt!r} s")
    notes = [
        f"ASCII columns: time (bin centre, s), {'rate (ct/s)' if values == 'rate' else 'counts per bin'}"
    ]
    if values == "auto":
        notes[0] += " (Stingray's convention; pass values='rate' for count rates)"
    factor = dt if values == "rate" else 1.0
    meta = {"mission": "unknown", "target": "", "from_rate": values == "rate", "column": "2"}
    return _finish(
        path,
        np.asarray(time, np.longdouble),
        raw * factor,
        None if err is None else err * factor,
        dt,
        np.isfinite(raw),
        None,
        meta,
        notes,
    )


def read_lightcurve(
    path: str | Path,
    *,
    column: str | None = None,
    band: int = 0,
    dt: float | None = None,
    values: Values = "auto",
    min_fracexp: float = 0.9,
) -> BinnedLightCurve:
    """Read a binned light curve: an OGIP FITS light curve or ASCII columns (time, counts[, error]).

    FITS: the ``RATE`` extension (or the first light-curve table) with ``TIME`` (bin centres; ``TIMEZERO``
    and ``TIMEPIXR`` applied) and ``COUNTS``, ``RATE`` or ``RATE1``; the bin time from ``TIMEDEL`` (or
    the median time step); a GTI extension if present. Bins with fractional exposure (``FRACTIME``, else
    ``FRACEXP``) below ``min_fracexp``, or shorter than the bin time, are dropped. ASCII: two or three
    whitespace-separated columns, ``#`` comments, values taken as counts per bin unless ``values="rate"``.

    Parameters
    ----------
    path : str or Path
    column : str, optional
        Column with the light curve (default: COUNTS, RATE, RATE1, or the only data column).
    band : int, optional
        Band index for columns with one value per energy band (eROSITA); its energies are noted.
    dt : float, optional
        Bin time, s, for files that do not state it (a single column of values, no TIME or TIMEDEL); if the
        file states one, ``dt`` must agree.
    values : {"auto", "counts", "rate"}, optional
        What the column holds; "auto" decides from the column name and unit (FITS) or takes counts (ASCII).
    min_fracexp : float, optional
        Smallest fractional exposure of a usable bin (Stingray's ``lcurve_from_fits`` uses 0.9 too).

    Returns
    -------
    BinnedLightCurve

    Raises
    ------
    ValueError
        Naming the file: missing, corrupt or truncated, no light-curve table or column, no bin time, no
        usable bin, or bad arguments.

    Examples
    --------
    >>> import os, stingray
    >>> lc = read_lightcurve(os.path.join(os.path.dirname(stingray.__file__), "datasets", "lc_sample.txt"))
    >>> lc.dt, lc.counts.size, lc.gti.shape
    (0.125, 22143, (1, 2))
    """
    p = Path(path)
    require_file(p, "light-curve file")
    if values not in get_args(Values):
        raise ValueError(f"values must be one of {get_args(Values)}, got {values!r}")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be None or a finite number > 0 (s), got {dt!r}")
    if isinstance(band, bool) or not isinstance(band, int | np.integer) or band < 0:
        raise ValueError(f"band must be an integer >= 0, got {band!r}")
    if not 0 <= min_fracexp <= 1:
        raise ValueError(f"min_fracexp must be in [0, 1], got {min_fracexp!r}")
    if _is_fits(p):
        return _read_fits(p, column, int(band), dt, values, float(min_fracexp))
    if column is not None:
        raise ValueError(f"{p}: column= applies to FITS files; this is an ASCII file")
    return _read_ascii(p, dt, values)


def lightcurve_segment_starts(lc: BinnedLightCurve, dt: float, n_bins: int) -> tuple[NDArray[np.intp], int]:
    """Index of the first file bin of every whole segment of ``n_bins`` bins of ``dt`` in the GTIs, and ``k``.

    The light curve's bins are summed by the integer factor ``k = dt / lc.dt``; segments of ``n_bins * k``
    file bins start at each GTI start and follow each other without gaps.
    """
    ratio = dt / lc.dt
    if ratio < 1 - 1e-9:
        raise ValueError(
            f"{lc.path}: the light curve is binned at {lc.dt:g} s, coarser than the requested dt = {dt:g} s; "
            "a spectrum at dt needs bins of at most dt"
        )
    k = round(ratio)
    if abs(ratio - k) > 1e-6 * ratio:
        raise ValueError(
            f"{lc.path}: dt = {dt:g} s is not an integer multiple of the light curve's bin time {lc.dt:g} s "
            f"(ratio {ratio:.6g})"
        )
    if lc.clean_dt is not None:
        c = dt / lc.clean_dt
        if abs(c - round(c)) > 1e-6 * max(c, 1.0) or round(c) < 1:
            beats = ", ".join(f"{b:g}" for b in lc.beat_freqs)
            raise ValueError(
                f"{lc.path}: the {lc.dt:g} s bins were resampled from native {lc.native_dt:g} s bins and "
                f"hold unequal exposure; a spectrum at dt = {dt:g} s would show their beat"
                + (f" (spikes at {beats} Hz)" if beats else "")
                + f" instead of the source. Use a bin time that is a multiple of {lc.clean_dt:g} s "
                f"(dt = {lc.clean_dt:g} s: Nyquist {0.5 / lc.clean_dt:g} Hz)"
            )
    fine = n_bins * k
    gti = np.asarray(lc.gti, dtype=np.float64).reshape(-1, 2)
    lo, hi = lc.time.searchsorted(gti[:, 0]), lc.time.searchsorted(gti[:, 1])
    starts = [np.arange(a, a + (b - a) // fine * fine, fine) for a, b in zip(lo, hi, strict=True)]
    return np.concatenate(starts).astype(np.intp), k


def lightcurve_counts(
    lc: BinnedLightCurve, starts: NDArray[np.intp], n_bins: int, k: int
) -> NDArray[np.float64]:
    """Counts (M, n_bins) at the coarser bin time: sums of ``k`` file bins from each start index."""
    counts = lc.counts[np.add.outer(np.asarray(starts), np.arange(n_bins * k))]
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(
            f"{lc.path}: the light curve has negative or non-finite counts in the analysed segments "
            "(background-subtracted?); a Poisson power spectrum needs the detected counts"
        )
    return counts.reshape(len(starts), n_bins, k).sum(axis=2)
