"""Reading a real-size event file and making the averaged spectrum a trained model expects.

A synthetic NICER-like FITS event file (OGIP ``EVENTS`` table with ``TIME`` and ``PI``, a ``GTI`` table with
three good intervals) of 10 million events — 10,000 s of good time at 1,000 ct/s, all inside the GTIs as in a
pipeline-cleaned file — is written once to ``bench/out/`` (gitignored) and reused. Timed on that file, in the
same run:

- xtml: ``read_events`` (Stingray's reader plus header metadata, GTI filtering and float64 times) then
  ``observation_spectrum`` (dt = 1/256 s, 16 s segments, Leahy, log-rebinned with f = 0.02);
- the anchor: Stingray ``EventList.read(fmt="ogip")`` then ``AveragedPowerspectrum.from_events`` with the
  same dt, segment size and normalisation (no rebinning, which only makes xtml's side slower).

The issue's target is xtml at least as fast as Stingray: ratio xtml / Stingray <= 1. Both sides are timed
best of five after a warm-up call (numba compilation in Stingray and file-system caching are not timed).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from _timer import best_of

N_EVENTS = int(os.environ.get("XTML_BENCH_N_EVENTS", 10_000_000))
RATE = 1000.0  # ct/s
MET0 = 2.0e8  # mission time of the first event, s (NICER-like)
DT = 1 / 256
SEGMENT = 16.0
REBIN_F = 0.02
OUT = Path(__file__).resolve().parent / "out"


def nicer_header(gti: np.ndarray) -> dict:
    """The header keywords of a synthetic NICER-like event file with these GTIs (mission time, s)."""
    return {
        "TELESCOP": "NICER",
        "INSTRUME": "XTI",
        "OBJECT": "Bench X-1",
        "TIMESYS": "TT",
        "TIMEREF": "LOCAL",
        "TIMEUNIT": "s",
        "MJDREFI": 56658,
        "MJDREFF": 0.000777592592592593,
        "TIMEZERO": 0.0,
        "TSTART": float(gti[0, 0]),
        "TSTOP": float(gti[-1, 1]),
        "EXPOSURE": float(np.sum(gti[:, 1] - gti[:, 0])),
    }


def event_file(n_events: int = N_EVENTS) -> Path:
    """Path of the cached synthetic event file, written on first use (astropy, OGIP layout)."""
    from astropy.io import fits

    path = OUT / f"events_{n_events}_cleaned.evt"
    if path.is_file():
        return path
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(20261121)
    # A Poisson process in good time, placed in three GTIs separated by gaps of 100 s and 200 s (an Earth
    # occultation, an SAA passage). As in a pipeline-cleaned event file, no event lies outside the GTIs.
    good = np.cumsum(rng.exponential(1.0 / RATE, n_events))
    cut1, cut2, end = 0.3 * good[-1], 0.59 * good[-1], good[-1] + 1e-3
    times = MET0 + good + np.where(good >= cut1, 100.0, 0.0) + np.where(good >= cut2, 200.0, 0.0)
    gti = MET0 + np.array([[0.0, cut1], [cut1 + 100.0, cut2 + 100.0], [cut2 + 300.0, end + 300.0]])
    header = nicer_header(gti)
    events = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", unit="s", array=times),
            fits.Column(name="PI", format="I", array=rng.integers(20, 1200, n_events).astype(np.int16)),
        ],
        name="EVENTS",
    )
    gtis = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", unit="s", array=gti[:, 0]),
            fits.Column(name="STOP", format="D", unit="s", array=gti[:, 1]),
        ],
        name="GTI",
    )
    for hdu in (events, gtis):
        hdu.header.update(header)
    tmp = path.with_suffix(".tmp")
    fits.HDUList([fits.PrimaryHDU(), events, gtis]).writeto(tmp, overwrite=True)
    tmp.rename(path)
    return path


def _xtml(path: Path) -> object:
    from xtml.timing import observation_spectrum, read_events

    events = read_events(path)
    return observation_spectrum(events, dt=DT, segment_size=SEGMENT, norm="leahy", rebin_log_f=REBIN_F)


def _stingray(path: Path) -> object:
    from stingray import AveragedPowerspectrum, EventList

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unclosed files, M < 30 notes
        events = EventList.read(str(path), fmt="ogip")
        return AveragedPowerspectrum.from_events(
            events, dt=DT, segment_size=SEGMENT, norm="leahy", silent=True
        )


def main() -> dict[str, float]:
    path = event_file()
    _xtml(path), _stingray(path)  # warm-up: numba compilation, page cache
    t_x, (ps, notes) = best_of(lambda: _xtml(path), repeat=5)
    t_s, sps = best_of(lambda: _stingray(path), repeat=5)
    ratio = t_x / t_s
    # The same spectrum as Stingray's before rebinning (checked outside the timing).
    from xtml.timing import observation_spectrum, read_events

    raw, _ = observation_spectrum(read_events(path), dt=DT, segment_size=SEGMENT, norm="leahy")
    same = raw.n_segments == sps.m and np.allclose(raw.power[0], sps.power, rtol=1e-10, atol=0)
    print(f"  {N_EVENTS:,} events, {notes['segments_used']} x {SEGMENT:g} s segments, dt = 1/{1 / DT:g} s")
    print(f"      xtml read_events + observation_spectrum         {t_x:6.2f} s")
    print(f"      Stingray EventList.read + AveragedPowerspectrum {t_s:6.2f} s")
    print(f"      ratio xtml / Stingray {ratio:6.2f}   (target <= 1)")
    print(f"      powers equal to Stingray's (rtol 1e-10): {same}; Leahy mean {ps.power.mean():.4f}")
    return {
        "n_events": N_EVENTS,
        "xtml_s": t_x,
        "stingray_s": t_s,
        "ratio_xtml_over_stingray": ratio,
        "same_powers_as_stingray": bool(same),
    }


if __name__ == "__main__":
    main()
