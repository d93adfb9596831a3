"""``xtml analyze`` at archive speed: 100 event files of 10^5 events through one trained run.

One hundred NICER-like FITS event files (OGIP ``EVENTS`` with ``TIME``, ``PI``; one 1,000 s GTI; 100 ct/s:
10^5 events each) are written once to ``bench/out/analyze_files/`` (gitignored), and a small run matched to
the first (:func:`xtml.workflows.matched.train_matched_sbi`, 500 simulations: its speed, not its calibration,
is measured) to ``bench/out/analyze_run/``. Then, each in a fresh Python process (imports and numba
compilation counted, as a user's call pays them):

- xtml: ``analyze_files`` on the first file alone, and on all 100 (the run loaded once per call); the
  per-file cost after loading is ``(T_100 - T_1) / 99``;
- the anchor: Stingray ``EventList.read(fmt="ogip")`` then ``AveragedPowerspectrum.from_events`` (the
  run's dt and segment size, Leahy) of the same files, timed the same way;
- a missing file: ``xtml analyze`` wall time until it says so (the library is not loaded first).

Targets (issue 20): per-file cost after loading <= 0.5 s for a 10^5-event file; the ratio against Stingray
is printed, measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_events import nicer_header

OUT = Path(__file__).resolve().parent / "out"
FILES = OUT / "analyze_files"
RUN = OUT / "analyze_run"
N_FILES = 100
N_EVENTS = 100_000
EXPOSURE = 1000.0


def _write(path: Path, rng: np.random.Generator) -> None:
    from astropy.io import fits

    met0 = 2.0e8
    times = met0 + np.sort(rng.uniform(0.0, EXPOSURE, N_EVENTS))
    header = nicer_header(np.array([[met0, met0 + EXPOSURE]]))
    events = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", unit="s", array=times),
            fits.Column(name="PI", format="I", array=rng.integers(20, 1200, N_EVENTS).astype(np.int16)),
        ],
        name="EVENTS",
    )
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", unit="s", array=[met0]),
            fits.Column(name="STOP", format="D", unit="s", array=[met0 + EXPOSURE]),
        ],
        name="GTI",
    )
    for hdu in (events, gti):
        hdu.header.update(header)
    fits.HDUList([fits.PrimaryHDU(), events, gti]).writeto(path, overwrite=True)


def files() -> list[Path]:
    """The cached event files, written on first use."""
    FILES.mkdir(parents=True, exist_ok=True)
    paths = [FILES / f"obs{k:03d}.evt" for k in range(N_FILES)]
    rng = np.random.default_rng(20261207)
    for p in paths:
        if not p.is_file():
            _write(p, rng)
    return paths


def run() -> Path:
    """The run matched to the first file (trained once)."""
    from xtml.runs import load_record
    from xtml.workflows.matched import train_matched_sbi

    if (RUN / "record.json").is_file() and load_record(RUN).status in ("complete", "failed-check"):
        return RUN
    train_matched_sbi(
        [files()[0]], RUN, n_train=500, n_test=100, n_calibration=100, n_sim=0, log=None, overwrite=True
    )
    return RUN


_XTML = """
import json, sys, time
t0 = time.perf_counter()
from xtml.analyze import analyze_files
rows = analyze_files(sys.argv[2:], [sys.argv[1]], allow_uncalibrated=True)
assert all(r.error is None for r in rows), [r.error for r in rows if r.error]
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

_STINGRAY = """
import json, sys, time, warnings
t0 = time.perf_counter()
warnings.simplefilter("ignore")
from stingray import AveragedPowerspectrum, EventList
dt, segment = float(sys.argv[1]), float(sys.argv[2])
for path in sys.argv[3:]:
    ev = EventList.read(path, fmt="ogip")
    AveragedPowerspectrum.from_events(ev, segment_size=segment, dt=dt, norm="leahy", silent=True)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def _seconds(code: str, *args: str) -> float:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> dict:
    from xtml.data.config import SimulationConfig

    paths = [str(p) for p in files()]
    r = run()
    o = SimulationConfig.from_dict(
        {
            k: v
            for k, v in json.loads((r / "config.json").read_text()).items()
            if k not in ("sbi", "npe", "validation")
        }
    ).observation
    one = _seconds(_XTML, str(r), paths[0])
    many = _seconds(_XTML, str(r), *paths)
    per_file = (many - one) / (len(paths) - 1)
    s_one = _seconds(_STINGRAY, str(o.dt), str(o.segment_length), paths[0])
    s_many = _seconds(_STINGRAY, str(o.dt), str(o.segment_length), *paths)
    s_per_file = (s_many - s_one) / (len(paths) - 1)
    t = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "xtml"), "analyze", str(FILES / "missing.evt"), "--run", str(r)],
        capture_output=True,
        check=False,
    )
    missing = time.perf_counter() - t
    print(
        f"xtml analyze, {len(paths)} files of {N_EVENTS:,} events (dt {o.dt:g} s, {o.n_segments} x "
        f"{o.segment_length:g} s): 1 file {one:.2f} s, {len(paths)} files {many:.1f} s -> {per_file:.3f} s "
        "per file after loading (target <= 0.5 s)"
    )
    print(
        f"Stingray EventList.read + AveragedPowerspectrum: 1 file {s_one:.2f} s, {len(paths)} files "
        f"{s_many:.1f} s -> {s_per_file:.3f} s per file; xtml / Stingray per file = "
        f"{per_file / s_per_file:.2f}"
    )
    print(f"a missing file reported in {missing:.2f} s (xtml analyze, wall)")
    return {
        "files": len(paths),
        "events_per_file": N_EVENTS,
        "xtml_one_s": one,
        "xtml_all_s": many,
        "xtml_per_file_s": per_file,
        "stingray_one_s": s_one,
        "stingray_all_s": s_many,
        "stingray_per_file_s": s_per_file,
        "ratio_per_file": per_file / s_per_file,
        "missing_file_s": missing,
    }


if __name__ == "__main__":
    main()
