"""``xtml demo``: the field's workflow end to end, in minutes, on the built-in default.

One recorded run folder (kind ``"demo"``) with the runs it makes inside it::

    OUT/
      record.json, config.toml   the demo run's record
      data/                      xtml simulate: QPO / no-QPO spectra, NuSTAR-like detector with dead time
      detect/                    xtml train + evaluate: classifiers against the likelihood-ratio test,
                                 on the same locked test spectra (detect/evaluation/)
      sbi/                       xtml sbi train: a neural posterior of the QPO under dead time, its
                                 calibration (coverage, SBC) on held-out simulations
      matched/                   xtml sbi train --like: a posterior matched to the real RXTE file
      report.html, summary.json  the demo's report; detect/report.html and sbi/report.html in full

The stages: simulate; the classical reference and machine learning on the same test set; simulation-based
inference with its calibration check; the classical dead-time-aware and naive fits on the posterior's
test observations; event files shipped with Stingray (a real RXTE observation and a simulated
XMM-Newton-format file) through both runs, with their scope flags; a run matched to the real RXTE file
(:mod:`xtml.workflows.matched`: its observation block, detector and priors derived from the file), whose
answer is in scope by construction and stands next to the classical fits; diagnostics and scope (the runs' own
reports, whose model cards say whether the training data look like those files); the report, whose "What
did not work" section lists every failed check and lost comparison.  ``quick`` shrinks every size for a
first look.

The detection headline is sized to be resolved (:func:`xtml.learn.comparison.min_negatives`: at least
10 / FPR QPO-free test spectra scored by both the LRT and the models): seven in ten simulated observations
have no QPO, half of them are the locked test set and the LRT scores every one, so the full demo (3,000
observations) puts about 1,050 QPO-free spectra behind a TPR at 1 % FPR; the quick demo (700) has about
245, enough for 5 % but not for 1 %, so it measures at 5 % and says so.  The LRT (~0.12 s per spectrum
on 2 cores) is most of the demo's time.  Every figure of the headline is read from the
evaluation's one record (``detect/evaluation/metrics.json["headline"]``, :mod:`xtml.learn.headline`).
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
from xtml.learn.headline import fmt_interval
from xtml.report import Section, panel_html, table_html, write_report

__all__ = ["DEMO_SECTIONS", "SIZES", "default_config_path", "demo_config_path", "run_demo"]

#: sections of the demo's report.html, in order
DEMO_SECTIONS = (
    "Headline",
    "Data",
    "Reference against machine learning",
    "Simulation-based inference",
    "Classical fits against the posterior",
    "Diagnostics and scope",
    "Real observations",
    "What did not work",
    "Provenance",
)
#: sizes of the full and the quick demo: detection observations (half of them the test set, every one
#: scored by the LRT; 70 % without a QPO, so about 0.35 n QPO-free test spectra: >= 10 / fpr), the
#: false-positive rate of the headline, SBI training, test and recalibration simulations, classical fits,
#: the CNN or not
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "n": 3000,
        "fpr": 0.01,
        "n_train_sbi": 8000,  # recalibrated: passes; 20,000 (sbi_demo.toml) is in band on every check but
        # costs 80 s more than the 5-minute budget allows (evals/eval_npe_calibration.py demo)
        "n_test_sbi": 400,
        "n_cal_sbi": 1000,
        "classical": 40,
        "cnn": 1,
        "n_train_matched": 3000,
        "n_sim_matched": 100,
    },
    "quick": {
        "n": 700,
        "fpr": 0.05,
        "n_train_sbi": 5000,  # recalibrated: as close to calibrated as 8,000 in the study; 2,000 are not
        "n_test_sbi": 200,
        "n_cal_sbi": 1000,
        "classical": 12,
        "cnn": 0,
        "n_train_matched": 1000,
        "n_sim_matched": 0,
    },
}
#: event files shipped with Stingray: a real RXTE/PCA observation (M82 X-1, 99 s at 34 ct/s) and Stingray's
#: simulated XMM-Newton-format file ("Fake X-1", 1,026 s at 1,660 ct/s, with a PRIOR dead-time column)
REAL_FILES = ("xte_gx_test.evt.gz", "xmm_test.fits")
#: the real file a run is matched to (xtml sbi train --like): the only real observation Stingray installs
MATCHED_FILE = "xte_gx_test.evt.gz"

DEMO_TRAIN = """
[task]
kind = "detect"

[split]
fractions = [0.4, 0.1, 0.5]    # half the observations are the test set: the headline needs negatives
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
max_spectra = 100000           # every test spectrum: the headline stands on all of them

[evaluation]
n_boot = 500
fpr = 0.01

[learning_curve]
fractions = [0.125, 0.25, 0.5, 1.0]
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
    print(f"[{k}/8] {text} ...", flush=True)
    return time.perf_counter()


def _detection(data: Path, run: Path, size: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Train the classifiers, evaluate them and the likelihood-ratio test on the locked test set.

    Returns the evaluation's headline record (``headline``) and what the demo prints from it; nothing
    here recomputes a figure.
    """
    from xtml.learn import TrainConfig
    from xtml.learn.evaluate import REFERENCE_NAME, evaluate_run
    from xtml.learn.train import json_ready, load_train_record, train_run, train_tables_text

    raw = tomllib.loads(DEMO_TRAIN)
    raw["evaluation"]["fpr"] = size["fpr"]
    if not size["cnn"]:
        del raw["models"]["cnn"]
    train_run(TrainConfig.from_dict(raw), data, run, log=print if progress else None)
    if progress:
        print("\n".join(train_tables_text(load_train_record(run)["models"])))
    result = json_ready(evaluate_run(run, plots=True))
    h = result["headline"]
    best = h["best_model"]
    return {
        "headline": h,
        "best_model": best,
        "tpr_best_ml": h["scorers"][best]["tpr_at_fpr"],
        "tpr_reference": h["scorers"][REFERENCE_NAME]["tpr_at_fpr"],
        "tpr_at_fpr": {n: s["tpr_at_fpr"] for n, s in h["scorers"].items()},
        "ms_per_spectrum_reference": 1e3 * result["reference"]["time_per_spectrum_s"],
        "ms_per_spectrum_best_ml": 1e3 * result["models"][best]["predict_time_per_spectrum_s"],
        "n_reference": result["reference"]["n_spectra"],
    }


def detection_line(h: dict[str, Any], *, verdict: bool = True) -> str:
    """The demo's detection answer in one line, from a headline record (``xtml.learn.headline``)."""
    from xtml.learn.evaluate import REFERENCE_NAME

    best, ref = h["best_model"], h["scorers"][REFERENCE_NAME]
    ml = h["scorers"][best]
    lrt = fmt_interval(ref["tpr_at_fpr"], ref["tpr_at_fpr_low"], ref["tpr_at_fpr_high"])
    return (
        f"QPO detection at {100 * h['fpr_target']:g}% false alarms ({h['label']}, {100 * h['level']:g}% "
        f"intervals) on {h['rows']} ({h['n_positive']:,} with a QPO, {h['n_negative']:,} without"
        + ("" if h["resolved"] else "; NOT resolved: " + h["resolution"])
        + f"): likelihood-ratio test {lrt}"
        f", best ML ({best}) {fmt_interval(ml['tpr_at_fpr'], ml['tpr_at_fpr_low'], ml['tpr_at_fpr_high'])}"
        + (f"; verdict: {h['verdict']}" if verdict else "")
    )


def _sbi(run: Path, size: dict[str, int], progress: bool) -> dict[str, Any]:
    """Train and check the demo's neural posterior; the worst coverage deviation in percentage points."""
    from xtml.sbi.run import train_sbi_run
    from xtml.sbi.scenario import SBIConfig, load_sbi_config

    config = load_sbi_config(demo_config_path("sbi_demo.toml"))
    raw = config.to_dict()
    raw["sbi"]["n_train"], raw["sbi"]["n_test"] = size["n_train_sbi"], size["n_test_sbi"]
    raw["sbi"]["n_calibration"] = size["n_cal_sbi"]
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
        "n_calibration": (cal.get("recalibration") or {}).get("n", 0),
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


def _real(runs: dict[str, Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each real file through each run (one call per file, its table printed): the demo's summary of
    each answer, and the rows of ``xtml analyze`` (for the runs' model cards)."""
    from xtml.analyze import analyze_files, rows_table, stingray_observation

    out, applied = [], []
    for name in REAL_FILES:
        rows = analyze_files([stingray_observation(name)], list(runs.values()), allow_uncalibrated=True)
        print(rows_table(rows))
        applied += [row.to_dict() for row in rows]
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
    return out, applied


def _matched(run: Path, size: dict[str, Any]) -> dict[str, Any]:
    """A run matched to the real RXTE file (:func:`xtml.workflows.matched.train_matched_sbi`): its answer
    in scope by construction, next to the classical answers; or plainly why there is none."""
    from xtml.analyze import stingray_observation
    from xtml.workflows.matched import train_matched_sbi

    try:
        answer = train_matched_sbi(
            [stingray_observation(MATCHED_FILE)],
            run,
            n_train=size["n_train_matched"],
            n_test=200,
            n_calibration=200,
            n_sim=size["n_sim_matched"],
            log=None,
            overwrite=True,
        )
    except ValueError as err:
        print(f"no answer from a run matched to {MATCHED_FILE}: {err}")
        return {"file": MATCHED_FILE, "error": str(err)}
    print(answer.text())
    (row,) = answer.rows
    return {
        "file": MATCHED_FILE,
        "error": row.error,
        "in_scope": bool(row.error is None and row.in_scope),
        "calibrated": answer.calibrated,
        "model": answer.fit.model,
        "chosen_by": answer.fit.chosen_by,
        "observation": answer.match.text(),
        "answer": row.prediction,
        "classical": [c.text() for c in answer.classical[0]],
        "reasons": list(row.reasons),
    }


def _failed_checks(out: Path) -> list[str]:
    """The failed checks of the demo's runs, one line each with its detail."""
    from xtml.runs import list_runs

    return [
        f"{record.kind} run {Path(record.path).relative_to(out)}: check {check.name} FAILED"
        + (f": {check.detail}" if check.detail else "")
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

    size: dict[str, Any] = dict(SIZES["quick" if quick else "full"])
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
        t = _stage(5, "event files shipped with Stingray (real RXTE, simulated XMM) through both runs")
        real, applied = _real({"detect": out / "detect", "sbi": out / "sbi"})
        timings["real"] = time.perf_counter() - t
        t = _stage(6, f"a run matched to the real RXTE file {MATCHED_FILE} (xtml sbi train --like)")
        matched = _matched(out / "matched", size)
        timings["matched"] = time.perf_counter() - t
        t = _stage(7, "diagnostics and scope: the report of each run (with the files it was applied to)")
        reports = {kind: build_report(out / kind, applied=applied) for kind in ("detect", "sbi")}
        timings["reports"] = time.perf_counter() - t
        _stage(8, "writing the demo report")
        checks = _failed_checks(out)
        lessons = checks + [  # the failed findings of the runs' reports not already told by a failed check
            f"{kind}: {text}"
            for kind, r in reports.items()
            for k, text in r.lessons
            if k == "failed" and not any(text.split(": ", 1)[-1] in c for c in checks)
        ]
        summary = {
            "quick": quick,
            "sizes": size,
            "seed": seed,
            "detection": detection,
            "sbi": sbi,
            "classical_n": classical["n"],
            "real": real,
            "matched": matched,
            "lessons": lessons,
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }
        report = _write_report(out, summary, detection, sbi, classical, real, reports, lessons)
        summary["seconds"]["total"] = round(time.perf_counter() - t0, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        demo.add_metrics(
            {
                "fpr_target": size["fpr"],
                "tpr_at_fpr": detection["tpr_at_fpr"],
                "headline_resolved": detection["headline"]["resolved"],
                "sbi_max_coverage_error_pp": sbi["max_coverage_error_pp"],
                "sbi_calibration": sbi["status"],
                "real_in_scope": {f"{r['file']}:{r['run']}": r["in_scope"] for r in real},
                "matched_in_scope": matched.get("in_scope", False),
            }
        )
    _final_lines(report, detection, sbi, real, summary["seconds"]["total"])
    print(f"4. {matched_line(matched)}")
    return summary


def matched_line(m: dict[str, Any]) -> str:
    """The demo's one line on the run matched to a real file."""
    if m.get("error"):
        return f"no answer from a run matched to {m['file']}: {m['error']}"
    scope = "in scope" if m["in_scope"] else "OUT OF SCOPE (" + "; ".join(m["reasons"]) + ")"
    cal = "calibrated" if m["calibrated"] else "calibration FAILED"
    return f"run matched to the real file {m['file']} ({m['model']}; {cal}): {scope}: {m['answer']}"


def _final_lines(
    report: Path, detection: dict[str, Any], sbi: dict[str, Any], real: list[dict[str, Any]], total: float
) -> None:
    print(
        f"\nreport: {report}  (runs {report.parent / 'detect'} and {report.parent / 'sbi'}; "
        f"total {total:.0f} s)"
    )
    print(f"1. {detection_line(detection['headline'])}")
    if detection["headline"]["fpr_target"] != SIZES["full"]["fpr"]:
        print(
            f"   (the quick demo's {detection['headline']['n_negative']:,} QPO-free test spectra resolve a "
            f"{100 * detection['headline']['fpr_target']:g}% false-alarm rate, not "
            f"{100 * SIZES['full']['fpr']:g}%: `xtml demo` measures at {100 * SIZES['full']['fpr']:g}%)"
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


def _fit_figure(out: Path) -> str:
    """The first held-out SBI observation with its dead-time-aware and naive fits and their residuals."""
    from xtml.critique.plots import plot_fit
    from xtml.psd import PSDModel
    from xtml.reference.fitcli import dataset_dead_time, fit_report
    from xtml.report import figure_html

    test = out / "sbi" / "test.zarr"
    ps = open_dataset(test).spectra(np.array([0])).to_norm("leahy")
    psd = PSDModel.from_kinds({"broad": "zero_lorentzian", "qpo": "lorentzian"})
    dead_time, n_modules = dataset_dead_time(test)
    fits = {
        f"dead-time-aware fit (Zhang, {1e3 * dead_time:g} ms x {n_modules})": fit_report(
            ps, psd, dead_time=dead_time, n_modules=n_modules
        ),
        "naive fit (flat white noise)": fit_report(ps, psd),
    }
    models = {name: f.model.expected(f.result.params, ps)[0] for name, f in fits.items()}
    ax = plot_fit(ps, models, label="held-out observation 0 (data)")
    m = np.broadcast_to(ps.m, ps.power[0].shape)
    msr = {
        name: float(np.mean(((ps.power[0] - mod) * np.sqrt(m) / mod) ** 2)) for name, mod in models.items()
    }
    return figure_html(
        ax.figure,
        "One held-out observation of the posterior's test set (black points, 1-sigma errors P/sqrt(m)) with "
        "two maximum-likelihood fits of the same QPO model: one with the dead-time-aware white noise and "
        "gain (solid), one with a flat white noise (dashed); below, each fit's residuals (data - model) / "
        "sigma. Read: residuals that scatter around 0 within +-2 mean the model describes the spectrum; a "
        "trend with frequency is a model that does not. Mean squared residual over the "
        f"{ps.n_freq} bins (about 1 for a right model): "
        + ", ".join(f"{name.split(' (')[0]} {v:.2f}" for name, v in msr.items())
        + ".",
    )


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
    from xtml.learn.evaluate import REFERENCE_NAME
    from xtml.report import image_html
    from xtml.report.learn_evidence import reference_body

    ds = open_dataset(out / "data")
    labels = np.asarray(ds.array("labels"))
    o, det = ds.config.observation, ds.config.detector
    esc = html.escape
    h = detection["headline"]
    best = h["best_model"]
    ml, ref = h["scorers"][best], h["scorers"][REFERENCE_NAME]
    in_scope = [r for r in real if not r["error"]]
    scope = "; ".join(
        f"{r['file']} through the {r['run']} run: {'in scope' if r['in_scope'] else 'OUT OF SCOPE'}"
        for r in in_scope
    )
    panel = [
        (
            "What was asked",
            "Under a NuSTAR-like detector (two modules, 2.5 ms dead time): do classifiers find QPOs better "
            "than the classical likelihood-ratio test (LRT) on the same test spectra? Does a neural "
            "posterior measure the QPO with calibrated uncertainties, next to the classical fits? Are real "
            "event files in the trained models' scope?",
        ),
        ("The answer (detection)", detection_line(h, verdict=False) + "."),
        (
            "ML against the reference",
            f"LRT {h['label']} "
            f"{fmt_interval(ref['tpr_at_fpr'], ref['tpr_at_fpr_low'], ref['tpr_at_fpr_high'])}, {best} "
            f"{fmt_interval(ml['tpr_at_fpr'], ml['tpr_at_fpr_low'], ml['tpr_at_fpr_high'])}: {h['verdict']}.",
        ),
        (
            "Calibration",
            f"Neural posterior: calibration {sbi['status'].upper()}, marginal coverage within "
            f"{sbi['max_coverage_error_pp']:.1f} pp of nominal at 50/68/95% over {len(sbi['coverage'])} "
            f"parameters ({sbi['n_test']} held-out simulations). Detection: Brier score of {best}'s "
            f"probabilities {fmt_interval(ml['brier'], ml['brier_low'], ml['brier_high'])} on the same "
            "rows (the LRT statistic is not a probability: n/a).",
        ),
        ("Scope", (scope or "no real file could be read") + "."),
        ("Time", ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items())),
    ]
    data_rows = [
        ["observations", f"{ds.n:,}"],
        [
            "classes",
            ", ".join(f"{name}: {int((labels == k).sum()):,}" for k, name in enumerate(ds.class_names)),
        ],
        ["observation", f"{o.n_segments} x {o.segment_bins} bins of {o.dt * 1e3:.3f} ms, {o.norm} norm"],
        [
            "detector",
            f"{det.n_modules} modules, dead time {det.dead_time.value * 1e3:g} ms ({det.dead_time.kind}), "
            f"background {det.background_rate} ct/s per module",
        ],
        ["dataset card", str(ds.path / "DATASET_CARD.md")],
    ]
    metrics = json.loads((out / "detect" / "evaluation" / "metrics.json").read_text())
    plots = out / "detect" / "evaluation" / "plots"
    detect_html = (
        f"<p>The LRT costs {detection['ms_per_spectrum_reference']:.1f} ms per spectrum, {esc(best)} "
        f"{detection['ms_per_spectrum_best_ml']:.3f} ms. The tables are those of the detection run's report "
        "(<a href='detect/report.html'>detect/report.html</a>), read from the same record.</p>"
        + reference_body(metrics, [])
    )
    if (plots / "roc.png").is_file():
        detect_html += image_html(
            plots / "roc.png",
            f"ROC curves of every scorer on {h['rows']}: true-positive against false-positive rate (log "
            f"axis); the dotted line marks the {100 * h['fpr_target']:g}% false-positive rate of the "
            "headline and each dot a scorer's operating point there. Read: higher is better; the AUCs in "
            "the legend are the table's.",
        )
    if (plots / "reliability.png").is_file():
        detect_html += image_html(
            plots / "reliability.png",
            f"Reliability of the models' calibrated probabilities on all {metrics['n_test']:,} test spectra: "
            "observed fraction with a QPO against the predicted probability. Read: on the dotted diagonal a "
            "probability means what it says; below it the model is overconfident.",
        )
    cov_rows = [
        [name, *[f"{100 * c:.1f}%" for c in cov], f"{sbi['sbc_ks_pvalue'][name]:.2f}"]
        for name, cov in sbi["coverage"].items()
    ]
    sbi_html = (
        f"<p>{sbi['n_train']:,} training simulations; the posterior recalibrated on "
        f"{sbi.get('n_calibration', 0):,} other held-out simulations and checked on {sbi['n_test']:,} "
        "more; calibration "
        f"<b>{esc(sbi['status'])}</b>"
        + (f": {esc('; '.join(sbi['reasons']))}" if sbi["reasons"] else "")
        + "</p>"
        + table_html(
            ["parameter", *[f"coverage at {100 * lv:g}%" for lv in sbi["levels"]], "SBC KS p"],
            cov_rows,
            caption=f"Expected coverage of the posterior on the {sbi['n_test']:,} held-out simulations "
            "(nominal: the column's level) and the p-value of a uniformity test of the SBC ranks.",
        )
    )
    percent = {"frac_bias", "coverage68", "coverage95"}
    keys = ("n", "n_not_ok", "bias", "frac_bias", "rmse", "coverage68", "coverage95", "width68", "seconds")

    def cell(key: str, value: Any) -> Any:
        if value is None or not isinstance(value, float):
            return value  # None: "n/a" (the method gives no such figure); counts as they are
        return f"{100 * value:.1f}%" if key in percent else f"{value:.3g}"

    classical_rows = [
        [
            r["parameter"],
            "all" if r["rate_bin"] == "all" else f"{r['rate_bin'][0]:.0f}-{r['rate_bin'][1]:.0f}",
            r["method"],
            *(cell(k, r[k]) for k in keys),
        ]
        for r in classical["rows"]
    ]
    classical_html = (
        f"<p>The posterior, the dead-time-aware fit (Zhang et al. 1995) and the naive fit that ignores dead "
        f"time on the same {classical['n']} held-out observations.</p>"
        + table_html(
            ["parameter", "rate bin (ct/s per module, incident)", "method", "n", "not ok", "bias",
             "frac. bias", "RMSE", "cov. 68%", "cov. 95%", "width 68%", "s/obs"],
            classical_rows,
            caption=f"Accuracy and calibration of each method on the same {classical['n']} observations "
            "(coverage: fraction of truths inside the 68% / 95% interval; n/a where a method gives none).",
            numeric=True,
        )
        + _fit_figure(out)
    )  # fmt: skip
    diag_html = "".join(
        f"<p>{kind}: <a href='{kind}/report.html'>{esc(str(r.html))}</a> (diagnostics, embeddings, outliers, "
        "scope gate, performance maps, model card)</p>"
        for kind, r in reports.items()
    )
    real_html = table_html(
        ["file", "run", "mission", "rate (ct/s in the file, analysed segments)", "answer", "scope"],
        [
            [
                r["file"],
                r["run"],
                r["mission"],
                None if r["rate"] is None or not np.isfinite(r["rate"]) else f"{r['rate']:.0f}",
                str(r["answer"]),
                "error"
                if r["error"]
                else ("in scope" if r["in_scope"] else "OUT OF SCOPE: " + "; ".join(r["reasons"])),
            ]
            for r in real
        ],
        caption="Event files shipped with Stingray through both trained runs, each answer with its scope "
        "flag.",
    )
    m = summary["matched"]
    real_html += (
        "<p><b>A run matched to the real file</b> (<code>xtml sbi train --like</code>): "
        f"{esc(matched_line(m))}</p>"
    )
    if not m.get("error"):
        real_html += (
            f"<pre>{esc(m['observation'])}\nsource model: {esc(m['model'])} ({esc(m['chosen_by'])})\n"
            + esc("\n".join(m["classical"]))
            + "</pre>"
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
        Section("Headline", panel_html(panel)),
        Section("Data", table_html(["item", "value"], data_rows, caption="The simulated detection data.")),
        Section("Reference against machine learning", detect_html),
        Section("Simulation-based inference", sbi_html),
        Section("Classical fits against the posterior", classical_html),
        Section("Diagnostics and scope", diag_html),
        Section("Real observations", real_html),
        Section("What did not work", lessons_html),
        Section(
            "Provenance", table_html(["item", "value"], prov_rows, caption="Package versions and platform.")
        ),
    ]
    assert tuple(s.title for s in sections) == DEMO_SECTIONS
    return write_report(
        out / "report.html", "xtml demo: QPOs under dead time, from simulation to a real file", sections
    )
