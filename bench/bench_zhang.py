"""Zhang et al. (1995) dead-time power spectrum: ``xtml.reference.zhang_leahy`` vs Stingray.

Anchor: Stingray ``stingray.deadtime.model.pds_model_zhang(N, rate, td, tb)``, measured in the same run, for a
NuSTAR-like case (500 ct/s incident, 2.5 ms non-paralyzable dead time, 1/512 s bins, limit_k = 60) at
N = 32,768 bins (16,384 frequencies) and a smaller N. Stingray's function is numba-compiled on its first call:
it is called once on N = 16 before timing, so the compile time is excluded. Stingray recomputes every B_k at
every frequency (O(N K^2 tb/td)); xtml computes the K coefficients once and sums the series with one FFT.
The largest relative difference between the two power arrays is printed too (target: < 1e-8).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from _timer import best_of
from xtml.reference import zhang_leahy

RATE, DEAD_TIME, BIN_TIME, LIMIT_K = 500.0, 2.5e-3, 1 / 512, 60
SIZES = [int(n) for n in os.environ.get("XTML_BENCH_ZHANG_N", "4096,32768").split(",")]


def main() -> dict[str, float]:
    from stingray.deadtime.model import pds_model_zhang

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        pds_model_zhang(16, RATE, DEAD_TIME, BIN_TIME, LIMIT_K)  # numba compilation, excluded below
        t_compile = time.perf_counter() - t
    zhang_leahy(16, RATE, DEAD_TIME, BIN_TIME, limit_k=LIMIT_K)  # symmetry: first call outside the timing

    res: dict[str, float] = {"stingray_first_call_s": t_compile}
    setup = f"{RATE:g} ct/s, td = {DEAD_TIME:g} s, tb = 1/{round(1 / BIN_TIME)} s, limit_k = {LIMIT_K}"
    print(f"Zhang dead-time PDS: {setup}")
    print("anchor: Stingray pds_model_zhang (numba; first-call compile excluded)")
    print(f"  Stingray first call (compile, N = 16)  {t_compile:9.3f} s")
    for n in SIZES:
        t_x, (f_x, p_x) = best_of(lambda n=n: zhang_leahy(n, RATE, DEAD_TIME, BIN_TIME, limit_k=LIMIT_K), 5)
        t_s, (f_s, p_s) = best_of(lambda n=n: pds_model_zhang(n, RATE, DEAD_TIME, BIN_TIME, LIMIT_K), 1)
        assert np.array_equal(f_x, f_s)
        max_rel = float(np.max(np.abs(p_x - p_s) / np.abs(p_s)))
        res |= {
            f"n{n}_xtml_s": t_x,
            f"n{n}_stingray_s": t_s,
            f"n{n}_speedup": t_s / t_x,
            f"n{n}_max_rel_diff": max_rel,
        }
        print(f"  N = {n:6d}  xtml zhang_leahy          {t_x:9.4f} s")
        print(f"  N = {n:6d}  Stingray pds_model_zhang  {t_s:9.4f} s")
        print(f"  N = {n:6d}  speed-up                  {t_s / t_x:9.0f} x")
        print(f"  N = {n:6d}  max relative difference   {max_rel:9.1e}   (target < 1e-8)")
    return res


if __name__ == "__main__":
    main()
