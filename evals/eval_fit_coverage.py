"""Coverage of the Hessian error bars of :func:`xtml.reference.fit_spectra` on simulated QPO spectra.

``N`` spectra of one source (power law + Lorentzian QPO, Poisson noise at 500 ct/s) are simulated and
fitted by maximum likelihood; the fraction of the intervals ``best fit +- z * error`` (z = 1 and 1.96)
that contain the truth is reported per parameter, with the pulls ``(fit - truth) / error`` (mean ~0,
std ~1 when the errors are right).  Binomial scatter of a coverage rate at N = 500: +-2.1 % (68 %) and
+-0.9 % (95 %).  Targets: 68 +- 4 % and 95 +- 2.5 %.

The spectra: 64 independent Timmer & Koenig segments of 16 s at dt = 1/64 s averaged into one Leahy
spectrum (m = 64) and log-rebinned by 1 % per bin (182 bins).  Independent, periodic segments make the
expected periodogram the model at the Fourier frequencies exactly, and narrow log bins keep the model,
evaluated at the bin centres, equal to the bin averages (0.12 Hz bins at the QPO, FWHM 0.75 Hz): the
check is of the fit and its errors, not of the simulation.  Hessian (Wald) intervals are asymptotic;
with relative errors of a few per cent, as here, they should reach the nominal coverage.

Environment: ``XTML_EVAL_N`` (default 500), ``XTML_EVAL_WORKERS`` (default: the CPUs available),
``XTML_EVAL_SEED`` (default 20261121).

Run: ``python evals/eval_fit_coverage.py``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np

from xtml.psd import JointPrior, LogUniform, Lorentzian, PowerLaw, PSDModel, Uniform
from xtml.reference import SpectralModel, fit_spectra
from xtml.simulate import simulate_lightcurves
from xtml.timing import PowerSpectrum, periodogram, rebin_log

PSD = PSDModel.from_components({"red": PowerLaw(), "qpo": Lorentzian()})
MODEL = SpectralModel(PSD, noise="free")
TRUTH = np.array([2e-3, 1.2, 6.0, 8.0, 0.1, 2.0])  # the Leahy Poisson level is 2
PRIOR = JointPrior(
    {
        "red.norm": LogUniform(1e-5, 1e-1),
        "red.index": Uniform(0.0, 3.0),
        "qpo.nu0": LogUniform(1.0, 20.0),
        "qpo.q": LogUniform(1.0, 50.0),
        "qpo.rms": LogUniform(1e-3, 0.5),
        "noise.level": Uniform(1.0, 3.0),
    }
)
RATE, DT, SEGMENT_BINS, N_SEGMENTS, LOG_STEP = 500.0, 1 / 64, 1024, 64, 0.01
LEVELS = ((0.683, 1.0), (0.954, 1.96))
TARGETS = {0.683: 0.04, 0.954: 0.025}


def simulate(n: int, rng: np.random.Generator) -> PowerSpectrum:
    """``n`` averaged, log-rebinned Leahy spectra, each of ``N_SEGMENTS`` independent segments."""
    out = []
    for gen in rng.spawn(-(-n // 50)):  # blocks of 50 spectra keep the memory small
        m = min(50, n - 50 * len(out))
        lc = simulate_lightcurves(
            PSD, np.tile(TRUTH[:5], (m * N_SEGMENTS, 1)), mean_rate=RATE, dt=DT, n_bins=SEGMENT_BINS, rng=gen
        )
        out.append(periodogram(lc.counts.reshape(m, -1), DT, segment_bins=SEGMENT_BINS))
    power = np.concatenate([p.power for p in out])
    rate = np.concatenate([p.mean_rate for p in out])
    return rebin_log(replace(out[0], power=power, mean_rate=rate), LOG_STEP)


def main() -> dict[str, Any]:
    n = int(os.environ.get("XTML_EVAL_N", 500))
    workers = os.environ.get("XTML_EVAL_WORKERS")
    seed = int(os.environ.get("XTML_EVAL_SEED", 20261121))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    spectra = simulate(n, rng)
    t_sim = time.perf_counter() - t0
    fit = fit_spectra(spectra, MODEL, PRIOR, workers=None if workers is None else int(workers), rng=rng)
    t_fit = time.perf_counter() - t0 - t_sim
    ok = fit.success
    pull = (fit.params - TRUTH)[ok] / fit.errors[ok]
    rows: dict[str, dict[str, float]] = {}
    for k, name in enumerate(MODEL.param_names):
        rows[name] = {
            "truth": float(TRUTH[k]),
            "rel_error": float(np.median(fit.errors[ok, k]) / TRUTH[k]),
            "pull_mean": float(pull[:, k].mean()),
            "pull_std": float(pull[:, k].std()),
            **{f"cover_{level:.3f}": float(np.mean(np.abs(pull[:, k]) < z)) for level, z in LEVELS},
        }
    within = all(
        abs(row[f"cover_{level:.3f}"] - level) <= TARGETS[level]
        for row in rows.values()
        for level, _ in LEVELS
    )
    print(
        f"Hessian-error coverage of fit_spectra: {n} spectra x {spectra.n_freq} bins (m = {N_SEGMENTS}..), "
        f"{int(ok.sum())} with status ok; simulate {t_sim:.1f} s, fit {t_fit:.1f} s"
    )
    header = ("parameter", "truth", "rel err", "pull mean", "pull std", "68 %", "95 %")
    print("  {:<12} {:>8} {:>8} {:>10} {:>9} {:>7} {:>7}".format(*header))
    for name, row in rows.items():
        print(
            f"  {name:<12} {row['truth']:8.4g} {row['rel_error']:8.1%} {row['pull_mean']:10.3f} "
            f"{row['pull_std']:9.3f} {row['cover_0.683']:7.1%} {row['cover_0.954']:7.1%}"
        )
    se68, se95 = (np.sqrt(level * (1 - level) / max(int(ok.sum()), 1)) for level, _ in LEVELS)
    print(f"  binomial scatter of a rate: +-{se68:.1%} (68 %), +-{se95:.1%} (95 %)")
    print(f"  targets 68 +- 4 % and 95 +- 2.5 % for every parameter: {'met' if within else 'NOT met'}")
    not_ok = sorted({s for s in fit.status if s != "ok"})
    if not_ok:
        print(f"  statuses other than ok: {not_ok[:5]}")
    return {
        "n_spectra": n,
        "n_ok": int(ok.sum()),
        "n_freq": spectra.n_freq,
        "seed": seed,
        "fit_seconds": t_fit,
        "parameters": rows,
        "targets_met": within,
    }


if __name__ == "__main__":
    main()
