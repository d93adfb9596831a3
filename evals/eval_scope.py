"""Scope gate acceptance figures (issue 7): how often it flags held-out in-distribution data, and how often
it flags inputs unlike the training set (10x the count rate, another segment length, a pulsar, a data gap).

The training set: 5,000 simulated observations (broad zero-centred Lorentzian + QPO, 200-2000 ct/s, four 8 s
segments at 1/128 s, log-rebinned by 5 %); the gate is fitted as every xtml run fits it
(:class:`xtml.critique.scope.ScopeGate`, alpha = 1 %). Each test set has ``XTML_EVAL_N`` observations
(default 2,000). Output: a Markdown table on stdout and ``evals/out/scope/eval.json``.

    python evals/eval_scope.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from xtml.critique.run_scope import score_inputs
from xtml.critique.scope import ScopeGate, ScopeResult, TrainingDomain, gap_reasons, log_spectral_features
from xtml.psd import Lorentzian, PSDModel, ZeroCentredLorentzian
from xtml.simulate import poisson_counts, simulate_rate
from xtml.timing import PowerSpectrum, periodogram, rebin_log

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "evals" / "out" / "scope"
N = int(os.environ.get("XTML_EVAL_N", "2000"))
DT, SEG, N_SEG = 1 / 128, 1024, 4
MODEL = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})


def simulate(
    n: int,
    seed: int,
    *,
    rates: tuple[float, float] = (200.0, 2000.0),
    seg: int = SEG,
    artefact: str = "",
    pulsed: float = 0.3,
) -> tuple[np.ndarray, PowerSpectrum, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = np.column_stack(
        [
            np.exp(rng.uniform(np.log(0.5), np.log(5.0), n)),
            rng.uniform(0.05, 0.25, n),
            np.exp(rng.uniform(np.log(2.0), np.log(20.0), n)),
            np.exp(rng.uniform(np.log(3.0), np.log(20.0), n)),
            rng.uniform(0.05, 0.2, n),
        ]
    )
    rate = np.exp(rng.uniform(np.log(rates[0]), np.log(rates[1]), n))
    r, _ = simulate_rate(MODEL, theta, mean_rate=rate, dt=DT, n_bins=seg * N_SEG, rng=rng)
    if artefact == "pulsar":
        t = np.arange(seg * N_SEG) * DT
        r = r * (1 + pulsed * np.sin(2 * np.pi * 50.0 * t))
    counts = poisson_counts(r, DT, rng)
    if artefact == "gap":
        counts[:, seg + 100 : seg + 100 + 768] = 0
    ps = rebin_log(periodogram(counts, DT, norm="leahy", segment_bins=seg), 0.05)
    return log_spectral_features(ps.power, ps.mean_rate), ps, counts


def main() -> None:
    t0 = time.perf_counter()
    x, ps, _ = simulate(5000, 1)
    domain = TrainingDomain(
        freq=ps.freq,
        m=ps.m,
        segment_length=SEG * DT,
        norm="leahy",
        rate_range=(ps.mean_rate.min(), ps.mean_rate.max()),
    )
    gate = ScopeGate(alpha=0.01).fit(x, domain)
    rows = []

    def add(name: str, flagged: np.ndarray, target: str) -> None:
        rows.append(
            {"test set": name, "n": int(flagged.size), "flagged": float(flagged.mean()), "target": target}
        )

    def full(
        x: np.ndarray, ps: PowerSpectrum, counts: np.ndarray, seg: int = SEG
    ) -> tuple[np.ndarray, ScopeResult]:
        res = score_inputs(
            gate, x, mean_rate=ps.mean_rate, freq=ps.freq, m=ps.m, segment_length=seg * DT, norm="leahy"
        )
        gaps = np.array([bool(g) for g in gap_reasons(counts, DT)])
        return ~res.in_scope | gaps, res

    x, ps, counts = simulate(N, 2)
    flagged, res = full(x, ps, counts)
    add("held-out, in distribution (gate + gap check)", flagged, "< 5 %")
    add("held-out, in distribution (spectral gate alone)", ~res.in_scope, "< 5 %")
    x, ps, counts = simulate(N, 3, rates=(20_000.0, 30_000.0))
    add("count rate 10-15x the top of the training range", full(x, ps, counts)[0], "flagged")
    add("  the same, spectral features alone (no domain check)", ~gate.score(x).in_scope, "")
    x, ps, counts = simulate(min(N, 500), 4, seg=2 * SEG)
    add("segments of 16 s instead of 8 s", full(x, ps, counts, seg=2 * SEG)[0], "flagged")
    for pulsed in (0.1, 0.2, 0.3):
        x, ps, counts = simulate(N, 5, artefact="pulsar", pulsed=pulsed)
        add(f"a 50 Hz pulsar, {int(100 * pulsed)} % pulsed", full(x, ps, counts)[0], "flagged")
    x, ps, counts = simulate(N, 6, artefact="gap")
    flagged, res = full(x, ps, counts)
    add("a 6 s gap left as zeros in one 8 s segment", flagged, "flagged")
    add("  the same, spectral gate alone", ~res.in_scope, "")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "eval.json").write_text(
        json.dumps({"rows": rows, "n_train": 5000, "seconds": time.perf_counter() - t0}, indent=1)
    )
    print("| test set | n | flagged | target |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['test set']} | {r['n']} | {100 * r['flagged']:.1f} % | {r['target']} |")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
