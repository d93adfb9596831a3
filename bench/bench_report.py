"""`xtml report` on a run with 20,000 test spectra (issue 7: under 60 s, HTML under 10 MB).

The run: by default the detection run of ``evals/eval_detection.py`` (``evals/out/detection/run_100000``:
100,000 NuSTAR-like spectra, four models, the LRT on 3,000 of them) if it exists; otherwise the benchmark
builds a lighter one (100,000 simulated spectra of the tests' detection configuration, 70/10/20 split,
logistic regression only, no reference test) into ``bench/out/report_run``. ``XTML_BENCH_REPORT_RUN``
names another evaluated run.

Anchor, measured in the same run: ``xtml.critique.plot_evaluation`` on the same run (the per-run plots that
existed before the report: ROC, PR, reliability, confusion, importances), printed as report time / plots time.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from pathlib import Path

from xtml.critique import plot_evaluation
from xtml.report.run_report import build_report

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, TARGET_MB = 60.0, 10.0

DATA = """
[observation]
dt = 0.0078125
segment_bins = 256
n_segments = 8
rebin_log = 0.05

[rate]
dist = "uniform"
low = 500.0
high = 1000.0

[classes.qpo]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.qpo.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }
"qpo.nu0" = { dist = "loguniform", low = 4.0, high = 20.0 }
"qpo.q" = { dist = "uniform", low = 5.0, high = 10.0 }
"qpo.rms" = { dist = "uniform", low = 0.02, high = 0.2 }

[classes.noise]
components = { broad = "zero_lorentzian" }

[classes.noise.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }

[dataset]
seed = 11
chunk_size = 5000
"""

TRAIN = """
[task]
kind = "detect"
positive = ["qpo"]

[split]
seed = 2

[models.logistic]
cv = false

[reference]
test = "none"
"""


def _light_run() -> Path:
    from xtml.cli import main as xtml
    from xtml.data import SimulationConfig, simulate_dataset
    from xtml.learn.config import TrainConfig
    from xtml.learn.train import train_run

    out = ROOT / "bench" / "out" / "report_run"
    run = out / "run"
    if (run / "evaluation" / "metrics.json").is_file():
        return run
    out.mkdir(parents=True, exist_ok=True)
    data = simulate_dataset(
        SimulationConfig.from_dict(tomllib.loads(DATA)), 100_000, out / "data.zarr", progress=True
    )
    train_run(TrainConfig.from_dict(tomllib.loads(TRAIN)), data, run, overwrite=True, log=None)
    xtml(["evaluate", str(run), "--no-plots"])
    return run


def main() -> dict[str, float]:
    env = os.environ.get("XTML_BENCH_REPORT_RUN")
    default = ROOT / "evals" / "out" / "detection" / "run_100000"
    evaluated = (default / "evaluation" / "metrics.json").is_file()
    run = Path(env) if env else (default if evaluated else _light_run())
    if not (run / "scope.json").is_file():
        from xtml.critique.run_scope import fit_run_scope

        fit_run_scope(run)
    import json

    n_test = json.loads((run / "evaluation" / "metrics.json").read_text())["n_test"]
    t = time.perf_counter()
    plot_evaluation(run)
    t_plots = time.perf_counter() - t
    result = build_report(run)
    mb = result.size / 1e6
    print(f"run {run}: {n_test} test spectra")
    share = result.seconds / TARGET_S
    print(f"xtml report: {result.seconds:.1f} s (target {TARGET_S:.0f} s: {share:.2f} of it)")
    print(f"report.html: {mb:.2f} MB (target {TARGET_MB:.0f} MB)")
    print(f"anchor plot_evaluation: {t_plots:.1f} s; report / plots = {result.seconds / t_plots:.1f}")
    return {"n_test": n_test, "report_s": result.seconds, "report_mb": mb, "plots_s": t_plots}


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
