"""Dead time: event filtering against Stingray, and a batch of NuSTAR-like observations.

Anchors, measured in the same run:
- ``stingray.filters.filter_for_deadtime`` (numba-compiled for non-paralyzable dead time) on the same
  10 million events; both sides warmed up first so compilation is not timed.
- The issue 3 budget: 1,000 NuSTAR-like observations (two modules, 500 ct/s, 2.5 ms non-paralyzable dead
  time, 10 x 16 s segments, averaged spectra, cospectra and FAD out, written to Zarr) in under 120 s.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from _timer import best_of
from xtml.data import load_config, simulate_dataset
from xtml.psd import Fixed
from xtml.simulate import DeadTime, apply_dead_time

N_EVENTS = int(os.environ.get("XTML_BENCH_N_EVENTS", 10_000_000))
N_OBS = int(os.environ.get("XTML_BENCH_N_OBS", 1000))


def bench_filter() -> dict[str, float]:
    from stingray.filters import filter_for_deadtime

    rng = np.random.default_rng(0)
    length = N_EVENTS / 2000.0
    times = np.sort(rng.uniform(3e8, 3e8 + length, N_EVENTS))  # 2000 ct/s, NuSTAR-like mission times
    res = {}
    for kind in ("nonparalyzable", "paralyzable"):
        par = kind == "paralyzable"
        model = DeadTime(2.5e-3, kind)
        apply_dead_time(times[:1000], model)
        filter_for_deadtime(times[:1000], 2.5e-3, paralyzable=par)
        t_x = best_of(lambda model=model: apply_dead_time(times, model))[0]
        t_s = best_of(lambda par=par: filter_for_deadtime(times, 2.5e-3, paralyzable=par))[0]
        res[f"{kind}_xtml_s"] = t_x
        res[f"{kind}_stingray_s"] = t_s
        res[f"{kind}_speedup_vs_stingray"] = t_s / t_x
        print(f"  dead time on {N_EVENTS:,} events, {kind:15s} xtml {t_x:6.2f} s   Stingray {t_s:6.2f} s")
        print(f"      ratio Stingray / xtml {t_s / t_x:6.2f}   (target >= 1)")
    return res


def _nustar_config():
    path = Path(str(resources.files("xtml") / "configs" / "nustar_deadtime.toml"))
    config = load_config(path)
    return replace(config, rate=Fixed(500.0), dataset=replace(config.dataset, chunk_size=50))


def bench_batch() -> dict[str, float]:
    config = _nustar_config()
    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset(config, 4, Path(tmp) / "warm.zarr", progress=False)  # compile the kernels
        t = time.perf_counter()
        simulate_dataset(config, N_OBS, Path(tmp) / "batch.zarr", progress=False)
        t_batch = time.perf_counter() - t
    scaled = t_batch / N_OBS * 1000
    print(f"  {N_OBS} NuSTAR-like observations (2 modules, 500 ct/s, 2.5 ms, 10 x 16 s): {t_batch:6.1f} s")
    print("      (TK source with QPO, photons, dead time, Leahy + cospectrum + FAD, Zarr)")
    print(f"      per 1,000 observations / 120 s budget {scaled / 120:6.2f}   (target < 1)")
    return {"batch_s": t_batch, "batch_n": N_OBS, "per_1000_ratio_to_120s": scaled / 120}


def bench_binned() -> dict[str, float]:
    """Binned dead time (renewal moments) against the event-by-event detector on the same rates: 10 light
    curves of 1,024 bins of 1 s at 4,000 ct/s with 5 us of dead time (an RXTE PCA light curve of Cyg X-2)."""
    from xtml.simulate import Detector, observe

    rate = np.full((10, 1024), 4000.0)  # 4e7 photons: the event-level side holds them in memory
    out = {}
    for binned in (False, True):
        det = Detector(dead_time=DeadTime(5e-6, binned=binned))
        observe(rate[:2], 1.0, det, rng=0)  # compile
        out[binned], _ = best_of(lambda det=det: observe(rate, 1.0, det, rng=1), repeat=3 if binned else 1)
    ratio = out[False] / out[True]
    print(
        f"  binned dead time, 10 x 1,024 s at 4,000 ct/s: event by event {out[False]:6.2f} s, binned "
        f"{out[True]:6.3f} s: {ratio:.0f}x faster"
    )
    return {"binned_event_s": out[False], "binned_s": out[True], "binned_speedup": ratio}


def main() -> dict[str, float]:
    res = bench_filter()
    res.update(bench_batch())
    res.update(bench_binned())
    return res


if __name__ == "__main__":
    main()
