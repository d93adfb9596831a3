"""``xtml demo``: the field's workflow end to end, in minutes, on the built-in default.

One recorded run folder (kind ``"demo"``) with the runs it makes inside it::

    OUT/
      record.json, config.toml   the demo run's record
      data/                      xtml simulate: QPO / no-QPO spectra, NuSTAR-like detector with dead time
      detect/                    xtml train + evaluate: classifiers against the likelihood-ratio test,
                                 on the same locked test spectra (detect/evaluation/)
      sbi/                       xtml sbi train: a neural posterior of the QPO under dead time, its
                                 calibration (coverage, SBC) on held-out simulations
      report.html, summary.json  the demo's report; detect/report.html and sbi/report.html in full

The stages: simulate; the classical reference and machine learning on the same test set; simulation-based
inference with its calibration check; the classical dead-time-aware and naive fits on the posterior's
test observations; diagnostics and scope (the runs' own reports); event files shipped with Stingray (a
real RXTE observation and a simulated XMM-Newton-format file) through both runs, with their scope flags;
the report, whose "What did not work" section lists every failed check and lost comparison.  ``quick``
shrinks every size for a first look (about 1.5 minutes on 2 cores against about 5 for the full demo).
"""

from __future__ import annotations

import html
import json
import sys
import time
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xtml.data import load_config, open_dataset
from xtml.report import Section, table_html, write_report

__all__ = ["DEMO_SECTIONS", "SIZES", "default_config_path", "demo_config_path", "run_demo"]

#: sections of the demo's report.html, in order
DEMO_SECTIONS = (
    "Summary",
    "Data",
    "Reference against machine learning",
    "Simulation-based inference",
    "Classical fits against the posterior",
    "Diagnostics and scope",
    "Real observations",
    "What did not work",
    "Provenance",
)
#: sizes of the full and the quick demo
SIZES: dict[str, dict[str, int]] = {
    "full": {"n": 4000, "lrt": 200, "n_train_sbi": 8000, "n_test_sbi": 400, "classical": 40, "cnn": 1},
    "quick": {"n": 1000, "lrt": 60, "n_train_sbi": 2000, "n_test_sbi": 200, "classical": 12, "cnn": 0},
}
#: event files shipped with Stingray: a real RXTE/PCA observation (M82 X-1, 99 s at 34 ct/s) and Stingray's
#: simulated XMM-Newton-format file ("Fake X-1", 1,026 s at 1,660 ct/s, with a PRIOR dead-time column)
REAL_FILES = ("xte_gx_test.evt.gz", "xmm_test.fits")

DEMO_TRAIN = """
[task]
kind = "detect"

[split]
fractions = [0.6, 0.15, 0.25]
seed = 1

[cv]
n_splits = 3

[models.logistic]
search = { C = [0.1, 1.0, 10.0] }

[models.random_forest]
params = { n_estimators = 200 }

[models.cnn]
params = { max_epochs = 30, patience = 4 }
cv = false

[reference]
test = "lrt"
null = { broad = "zero_lorentzian" }
alt = { broad = "zero_lorentzian", qpo = "lorentzian" }
max_spectra = 200

[evaluation]
n_boot = 500
"""


def default_config_path() -> Path:
    """Path of the built-in default simulation configuration (``xtml/configs/default.toml``)."""
    return _config("default.toml")


def demo_config_path(name: str = "demo_nustar.toml") -> Path:
    """Path of a configuration of the demo (``demo_nustar.toml`` or ``sbi_demo.toml``)."""
    return _config(name)


def _config(name: str) -> Path:
    return Path(str(resources.files("xtml") / "configs" / name))


def _stage(k: int, text: str) -> float:
    print(f"[{k}/7] {text} ...", flush=True)
    return time.perf_counter()


def _detection(data: Path, run: Path, size: dict[str, int], progress: bool) -> dict[str, Any]:
    """Train the classifiers, evaluate them and the likelihood-ratio test on the locked test set."""
    from xtml.learn import TrainConfig
    from xtml.learn.evaluate import REFERENCE_NAME, evaluate_run
    from xtml.learn.train import train_run

    raw = tomllib.loads(DEMO_TRAIN)
    raw["reference"]["max_spectra"] = size["lrt"]
    if not size["cnn"]:
        del raw["models"]["cnn"]
    train_run(TrainConfig.from_dict(raw), data, run, log=print if progress else None)
    result = evaluate_run(run, plots=True)
    rows = {r["scorer"]: r for r in result["comparison"]["rows"]}
    best = max((n for n in rows if n != REFERENCE_NAME), key=lambda n: rows[n]["tpr_at_fpr"])
    return {
        "best_model": best,
        "tpr_best_ml": rows[best]["tpr_at_fpr"],
        "tpr_reference": rows[REFERENCE_NAME]["tpr_at_fpr"],
        "tpr_at_1pc_fpr": {n: r["tpr_at_fpr"] for n, r in rows.items()},
        "ms_per_spectrum_reference": 1e3 * result["reference"]["time_per_spectrum_s"],
        "ms_per_spectrum_best_ml": 1e3 * result["models"][best]["predict_time_per_spectrum_s"],
        "n_reference": result["reference"]["n_spectra"],
        "table": result["comparison"]["text"],
    }


def _sbi(run: Path, size: dict[str, int], progress: bool) -> dict[str, Any]:
    """Train and check the demo's neural posterior; the worst coverage deviation in percentage points."""
    from xtml.sbi.run import train_sbi_run
    from xtml.sbi.scenario import SBIConfig, load_sbi_config

    config = load_sbi_config(demo_config_path("sbi_demo.toml"))
    raw = config.to_dict()
    raw["sbi"]["n_train"], raw["sbi"]["n_test"] = size["n_train_sbi"], size["n_test_sbi"]
    config = SBIConfig.from_dict(raw, source=config.source)
    train_sbi_run(config, run, log=print if progress else None, n_threads=2)
    cal = json.loads((run / "calibration.json").read_text())
    levels = cal["levels"]
    deviations = {
        name: [100 * (c - lv) for c, lv in zip(cov, levels, strict=True)]
        for name, cov in cal["coverage"].items()
    }
    worst = max(abs(d) for devs in deviations.values() for d in devs)
    return {
        "status": cal["status"],
        "reasons": cal["reasons"],
        "n_train": size["n_train_sbi"],
        "n_test": cal["n_test"],
        "levels": levels,
        "coverage": cal["coverage"],
        "coverage_joint_hpd": cal["coverage_joint_hpd"],
        "max_coverage_error_pp": worst,
        "sbc_ks_pvalue": cal["sbc_ks_pvalue"],
        "train_s": cal["seconds"]["train"],
    }


def _classical(run: Path, k: int) -> dict[str, Any]:
    """Dead-time-aware (Zhang) and naive maximum-likelihood fits next to the posterior, same observations."""
    from xtml.sbi import classical as cl
    from xtml.sbi.inputs import dataset_inputs
    from xtml.sbi.run import load_run_posterior

    rp = load_run_posterior(run, allow_uncalibrated=True)
    ds = open_dataset(run / "test.zarr")
    names = tuple(rp.posterior.names)
    idx = np.arange(min(k, ds.n))  # the posterior's held-out observations (all of the QPO class)
    truths = cl.observation_truths(ds, idx, names)
    rates = truths[:, names.index("rate")] if "rate" in names else np.asarray(ds.array("params"))[idx, 0]
    t0 = time.perf_counter()
    samples = rp.posterior.sample(dataset_inputs(ds, rp.inputs, idx), 1000, rng=0)
    per_obs = (time.perf_counter() - t0) / idx.size
    estimates = [cl.Estimates.from_samples("sbi", names, samples, seconds=np.full(idx.size, per_obs))]
    estimates.append(cl.zhang_fit(ds, idx, rng=1))
    estimates.append(cl.naive_fit(ds, idx, rng=1))
    rows = cl.comparison_table(truths, rates, estimates, names)
    return {"n": int(idx.size), "markdown": cl.to_markdown(rows), "rows": [r.to_dict() for r in rows]}


def _real(runs: dict[str, Path]) -> list[dict[str, Any]]:
    """Each real file through each run (one call per file: one mission per batch)."""
    from xtml.analyze import analyze_files, rows_table, stingray_observation

    out = []
    for name in REAL_FILES:
        rows = analyze_files([stingray_observation(name)], list(runs.values()), allow_uncalibrated=True)
        print(rows_table(rows))
        for row, kind in zip(rows, runs, strict=True):
            answer = row.error or row.prediction
            out.append(
                {
                    "file": name,
                    "run": kind,
                    "mission": row.mission,
                    "rate": row.rate,
                    "answer": answer,
                    "in_scope": row.in_scope,
                    "reasons": list(row.reasons),
                    "error": row.error,
                }
            )
    return out


def _failed_checks(out: Path) -> list[str]:
    """The failed checks of the demo's runs, one line each (their details are in the runs' lessons)."""
    from xtml.runs import list_runs

    return [
        f"{record.kind} run {Path(record.path).relative_to(out)}: check {check.name} FAILED"
        for record in list_runs(out)
        if record.path != out
        for check in record.failed_checks
    ]


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    n: int | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo into the run folder ``out`` (module docstring); returns its summary (``summary.json``).

    ``n`` overrides the number of simulated detection observations, ``seed`` the dataset seed.  A
    previous demo in ``out`` is replaced.
    """
    import matplotlib

    matplotlib.use("Agg")
    from xtml.data.simrun import simulate_run
    from xtml.report.run_report import build_report
    from xtml.runs import run_folder

    size = dict(SIZES["quick" if quick else "full"])
    if n is not None:
        size["n"] = n
    config = load_config(demo_config_path())
    seed = config.dataset.seed if seed is None else seed
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    command = ["xtml", "demo", "--out", str(out), *(["--quick"] if quick else [])]
    with run_folder(
        out, "demo", command=command, config={"quick": quick, **size}, seeds={"dataset": seed}, overwrite=True
    ) as demo:
        t = _stage(
            1, f"simulating {size['n']} NuSTAR-like observations with dead time ({demo_config_path().name})"
        )
        data = simulate_run(config, size["n"], out / "data", seed=seed, progress=progress)
        timings["simulate"] = time.perf_counter() - t
        t = _stage(2, "the likelihood-ratio test and machine learning on the same locked test spectra")
        detection = _detection(data, out / "detect", size, progress)
        timings["detection"] = time.perf_counter() - t
        t = _stage(
            3, f"simulation-based inference: {size['n_train_sbi']} simulations, posterior, calibration"
        )
        sbi = _sbi(out / "sbi", size, progress)
        timings["sbi"] = time.perf_counter() - t
        t = _stage(
            4, f"classical fits (dead-time aware and naive) on {size['classical']} of the same observations"
        )
        classical = _classical(out / "sbi", size["classical"])
        timings["classical"] = time.perf_counter() - t
        t = _stage(5, "diagnostics and scope: the report of each run")
        reports = {kind: build_report(out / kind) for kind in ("detect", "sbi")}
        timings["reports"] = time.perf_counter() - t
        t = _stage(6, "event files shipped with Stingray (real RXTE, simulated XMM) through both runs")
        real = _real({"detect": out / "detect", "sbi": out / "sbi"})
        timings["real"] = time.perf_counter() - t
        _stage(7, "writing the demo report")
        lessons = _failed_checks(out) + [
            f"{kind}: {text}" for kind, r in reports.items() for _k, text in r.lessons
        ]
        summary = {
            "quick": quick,
            "sizes": size,
            "seed": seed,
            "detection": {k: v for k, v in detection.items() if k != "table"},
            "sbi": sbi,
            "classical_n": classical["n"],
            "real": real,
            "lessons": lessons,
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }
        report = _write_report(out, summary, detection, sbi, classical, real, reports, lessons)
        summary["seconds"]["total"] = round(time.perf_counter() - t0, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        demo.add_metrics(
            {
                "tpr_at_1pc_fpr": detection["tpr_at_1pc_fpr"],
                "sbi_max_coverage_error_pp": sbi["max_coverage_error_pp"],
                "sbi_calibration": sbi["status"],
                "real_in_scope": {f"{r['file']}:{r['run']}": r["in_scope"] for r in real},
            }
        )
    _final_lines(report, detection, sbi, real, summary["seconds"]["total"])
    return summary


def _final_lines(
    report: Path, detection: dict[str, Any], sbi: dict[str, Any], real: list[dict[str, Any]], total: float
) -> None:
    print(
        f"\nreport: {report}  (runs {report.parent / 'detect'} and {report.parent / 'sbi'}; "
        f"total {total:.0f} s)"
    )
    print(
        f"1. QPO detection power at 1% false alarms: likelihood-ratio test {detection['tpr_reference']:.2f}, "
        f"best ML ({detection['best_model']}) {detection['tpr_best_ml']:.2f}"
    )
    print(
        f"2. SBI coverage error: at most {sbi['max_coverage_error_pp']:.1f} pp from the nominal 50/68/95% "
        f"over {len(sbi['coverage'])} parameters ({sbi['n_test']} held-out simulations); calibration "
        f"{sbi['status'].upper()}"
    )
    flags = ", ".join(
        f"{r['file']} via {r['run']}: {'in scope' if r['in_scope'] else 'OUT OF SCOPE'}"
        for r in real
        if not r["error"]
    )
    print(f"3. scope of the real files: {flags}")
    sys.stdout.flush()


def _write_report(
    out: Path,
    summary: dict[str, Any],
    detection: dict[str, Any],
    sbi: dict[str, Any],
    classical: dict[str, Any],
    real: list[dict[str, Any]],
    reports: dict[str, Any],
    lessons: list[str],
) -> Path:
    from xtml.report import image_html

    ds = open_dataset(out / "data")
    labels = np.asarray(ds.array("labels"))
    o, det = ds.config.observation, ds.config.detector
    esc = html.escape
    summary_rows = [
        [
            "QPO detection power at 1% FPR",
            f"LRT {detection['tpr_reference']:.2f}; best ML "
            f"({esc(detection['best_model'])}) {detection['tpr_best_ml']:.2f}",
        ],
        ["SBI coverage error", f"{sbi['max_coverage_error_pp']:.1f} pp (calibration {sbi['status']})"],
        ["real files in scope", ", ".join(f"{r['file']}/{r['run']}: {r['in_scope']}" for r in real)],
        ["time", ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items())],
    ]
    data_rows = [
        ["observations", ds.n],
        [
            "classes",
            ", ".join(f"{name}: {int((labels == k).sum())}" for k, name in enumerate(ds.class_names)),
        ],
        ["observation", f"{o.n_segments} x {o.segment_bins} bins of {o.dt * 1e3:.3f} ms, {o.norm} norm"],
        [
            "detector",
            f"{det.n_modules} modules, dead time {det.dead_time}, background {det.background_rate} ct/s",
        ],
        ["dataset card", esc(str(ds.path / "DATASET_CARD.md"))],
    ]
    detect_html = (
        f"<p>Best ML model {esc(detection['best_model'])}: {detection['ms_per_spectrum_best_ml']:.3f} ms per "
        f"spectrum; the likelihood-ratio test: {detection['ms_per_spectrum_reference']:.1f} ms per spectrum "
        f"({detection['n_reference']} test spectra).</p><pre>{esc(detection['table'])}</pre>"
        + "".join(
            image_html(out / "detect" / "evaluation" / "plots" / p, p)
            for p in ("roc.png", "reliability.png")
            if (out / "detect" / "evaluation" / "plots" / p).is_file()
        )
    )
    cov_rows = [
        [name, *[f"{100 * c:.1f}%" for c in cov], f"{sbi['sbc_ks_pvalue'][name]:.2f}"]
        for name, cov in sbi["coverage"].items()
    ]
    sbi_html = (
        f"<p>{sbi['n_train']} training simulations, {sbi['n_test']} held-out ones; calibration "
        f"<b>{esc(sbi['status'])}</b>"
        + (f": {esc('; '.join(sbi['reasons']))}" if sbi["reasons"] else "")
        + "</p>"
        + table_html(
            ["parameter", *[f"coverage at {100 * lv:g}%" for lv in sbi["levels"]], "SBC KS p"], cov_rows
        )
    )
    classical_html = (
        f"<p>The posterior, the dead-time-aware fit (Zhang et al. 1995) and the naive fit that ignores dead "
        f"time on the same {classical['n']} held-out observations.</p><pre>{esc(classical['markdown'])}</pre>"
    )
    diag_html = "".join(
        f"<p>{kind}: <a href='{kind}/report.html'>{esc(str(r.html))}</a> (diagnostics, embeddings, outliers, "
        "scope gate, performance maps, model card)</p>"
        for kind, r in reports.items()
    )
    real_html = table_html(
        ["file", "run", "mission", "rate (ct/s)", "answer", "scope"],
        [
            [
                r["file"],
                r["run"],
                r["mission"],
                "" if r["rate"] is None or not np.isfinite(r["rate"]) else f"{r['rate']:.0f}",
                esc(str(r["answer"])),
                "error"
                if r["error"]
                else ("in scope" if r["in_scope"] else "OUT OF SCOPE: " + esc("; ".join(r["reasons"]))),
            ]
            for r in real
        ],
    )
    lessons_html = (
        "<ul>" + "".join(f"<li>{esc(t)}</li>" for t in lessons) + "</ul>"
        if lessons
        else ("<p>Every check passed and no comparison was lost.</p>")
    )
    record = json.loads((out / "data" / "record.json").read_text())
    prov_rows = [[k, v] for k, v in record["versions"].items()] + [
        ["git revision", record["git_revision"]],
        ["platform", record["platform"]],
    ]
    sections = [
        Section("Summary", table_html(["what", "result"], summary_rows)),
        Section("Data", table_html(["item", "value"], data_rows)),
        Section("Reference against machine learning", detect_html),
        Section("Simulation-based inference", sbi_html),
        Section("Classical fits against the posterior", classical_html),
        Section("Diagnostics and scope", diag_html),
        Section("Real observations", real_html),
        Section("What did not work", lessons_html),
        Section("Provenance", table_html(["item", "value"], prov_rows)),
    ]
    assert tuple(s.title for s in sections) == DEMO_SECTIONS
    return write_report(
        out / "report.html", "xtml demo: QPOs under dead time, from simulation to a real file", sections
    )
