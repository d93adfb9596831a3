"""``xtml evaluate``: open the locked test set once, score every model next to the classical reference.

Rule 1 of the field is built in: for QPO detection the likelihood-ratio test (broadband vs broadband +
Lorentzian, exact Whittle likelihood, dead-time aware when the dataset has dead time) is computed on the
same test spectra and becomes a row of the same table and a curve on the same ROC; the table says which is
better at the fixed false-positive rate, with bootstrap intervals (resampling whole observations), and at
what cost per spectrum.  For regression the reference is the maximum-likelihood fit with Hessian errors.

The headline (``metrics.json["headline"]``, :mod:`xtml.learn.headline`) is that comparison on the rows the
LRT scored (all test rows, or a random ``[reference] max_spectra`` of them), computed once and read by
every place that shows it; each model's figures on all test rows are kept apart, labelled as such.  A TPR
at a fixed FPR on too few QPO-free rows, or a difference whose interval includes zero, reads "not
resolved by this test set" (:func:`~xtml.learn.comparison.tpr_resolution`).

The test set is opened once: ``test_opened.json`` in the run folder records when and why; a second
evaluation is refused unless a reason to reopen is given, and every opening stays listed.

The evaluation is a recorded run of its own (:mod:`xtml.runs`, kind ``"evaluate"``) nested in the training
run, ``RUN/evaluation/``: ``metrics.json``, ``summary.txt``, ``test_predictions.npz``, ``importances.json``
and ``plots/``.  Its record has the check ``reference_beaten``: a run whose models do not beat the
classical reference (by a difference the test set resolves) stays listed, marked ``failed-check``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.data import open_dataset
from xtml.learn.calibration import ScoreCalibrator
from xtml.learn.comparison import ComparisonTable, compare_scores
from xtml.learn.config import TrainConfig
from xtml.learn.headline import fmt_interval, fmt_value, headline_lines, headline_record, rows_text, tpr_label
from xtml.learn.metrics import binary_metrics, multiclass_metrics, regression_metrics
from xtml.learn.models import final_estimator, predict_with_std
from xtml.learn.persist import load_model
from xtml.learn.tasks import TaskData, load_task
from xtml.learn.train import json_ready

__all__ = ["EVALUATION_DIR", "EvaluationLockError", "evaluate_run", "evaluation_dir", "reference_scores"]

REFERENCE_NAME = "LRT (reference)"
EVALUATION_DIR = "evaluation"


def evaluation_dir(run_dir: str | Path, *, required: bool = True) -> Path:
    """The evaluation folder of a training run; ``ValueError`` if it has not been evaluated (``required``)."""
    ev = Path(run_dir) / EVALUATION_DIR
    if required and not (ev / "metrics.json").is_file():
        raise ValueError(
            f"{run_dir} has not been evaluated (no {ev / 'metrics.json'}): "
            f"run `xtml evaluate {run_dir}` first"
        )
    return ev


class EvaluationLockError(RuntimeError):
    """The run's test set was already opened; carries the earlier openings."""

    def __init__(self, message: str, openings: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.openings = openings


def _open_test(run: Path, reopen: str | None) -> list[dict[str, Any]]:
    path = run / "test_opened.json"
    openings: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    if openings and not reopen:
        first = openings[0]
        raise EvaluationLockError(
            f"the test set of {run} was already opened on {first['time']} ({first['reason']!r}); results on "
            "it are final. Pass a reason to reopen (xtml evaluate --reopen 'why') and it will be recorded.",
            openings,
        )
    openings.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reason": reopen or "final evaluation",
        }
    )
    path.write_text(json.dumps(openings, indent=1))
    return openings


def reference_scores(
    td: TaskData, rows: NDArray[np.int64], config: TrainConfig, dataset: Path
) -> tuple[NDArray[np.float64], float]:
    """The likelihood-ratio statistic of the reference test on task rows ``rows``, and s per spectrum."""
    from xtml.psd import PSDModel
    from xtml.reference import default_bounds, qpo_scores
    from xtml.reference.fitcli import dataset_model

    ref = config.reference
    null = dataset_model(dataset, PSDModel.from_kinds(dict(ref.null)))
    alt = dataset_model(dataset, PSDModel.from_kinds(dict(ref.alt)))
    spectra = td.spectra.select(rows).to_norm("leahy")  # one white-noise level (~2) for every rate
    alt_bounds = default_bounds(alt, spectra.select(0))
    null_bounds = {k: v for k, v in alt_bounds.items() if k in null.param_names}
    t0 = time.perf_counter()
    scores = qpo_scores(spectra, null, alt, null_bounds, alt_bounds, workers=ref.workers, rng=config.seed)
    return scores, (time.perf_counter() - t0) / len(rows)


def reference_fits(
    td: TaskData, rows: NDArray[np.int64], config: TrainConfig, dataset: Path
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], float]:
    """Maximum-likelihood fits of ``[reference] alt`` to task rows ``rows``: the targets and their errors.

    Returns predictions and 1-sigma Hessian errors (n, k) in the task's units (``log10`` targets get
    ``err / (x ln 10)``), whether each fit gave finite targets and errors, and seconds per spectrum.
    """
    from xtml.psd import PSDModel
    from xtml.reference import default_bounds, fit_spectra
    from xtml.reference.fitcli import dataset_model

    model = dataset_model(dataset, PSDModel.from_kinds(dict(config.reference.alt)))
    missing = [t for t in td.names if t not in model.param_names]
    if missing:
        raise ValueError(
            f"[reference] alt has no parameter(s) {missing} to compare with the regression targets"
        )
    spectra = td.spectra.select(rows).to_norm("leahy")  # one white-noise level (~2) for every rate
    t0 = time.perf_counter()
    fit = fit_spectra(
        spectra, model, default_bounds(model, spectra.select(0)), workers=config.reference.workers
    )
    per = (time.perf_counter() - t0) / len(rows)
    cols = [model.param_names.index(t) for t in td.names]
    value, err = fit.params[:, cols], fit.errors[:, cols]
    # a fit counts if its targets have finite values and errors (another parameter may sit at a bound,
    # e.g. the width of a barely resolved QPO)
    ok = np.all(np.isfinite(value) & np.isfinite(err) & (err > 0), axis=1)
    if td.log_targets:  # a fit at a non-positive value has no log10: it counts as failed
        ok &= np.all(value > 0, axis=1)
        safe = np.where(value > 0, value, 1.0)
        value, err = np.log10(safe), err / (safe * np.log(10.0))
    return value, err, ok, per


def _importances(model: Any) -> tuple[list[str], NDArray[np.float64]] | None:
    est = final_estimator(model)
    try:
        names = list(model[:-1].get_feature_names_out())
    except (AttributeError, ValueError):
        return None
    if hasattr(est, "feature_importances_"):
        return names, np.asarray(est.feature_importances_)
    if hasattr(est, "coef_"):
        coef = np.atleast_2d(est.coef_)
        return names, np.abs(coef).mean(axis=0)
    return None


def evaluate_run(
    run_dir: str | Path,
    *,
    reopen: str | None = None,
    plots: bool = False,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Evaluate every model of a training run on its locked test set (module docstring).

    Writes the evaluation run ``RUN/evaluation/`` (:func:`evaluation_dir`): the metrics, also returned,
    in ``metrics.json`` with ``summary.txt``; the test predictions and scores in ``test_predictions.npz``,
    feature importances in ``importances.json`` and, with ``plots``, the diagnostic plots of
    :func:`xtml.critique.learn_plots.plot_evaluation`.  Raises :class:`EvaluationLockError` on a second
    evaluation without ``reopen``, and ``ValueError`` for a folder that is not a finished training run.
    """
    from xtml.data.simrun import api_command
    from xtml.learn.train import load_train_record
    from xtml.runs import load_record, run_folder

    run = Path(run_dir)
    train_record = load_record(run)
    if train_record.status not in ("complete", "failed-check"):
        raise ValueError(
            f"the training run {run} did not finish (status {train_record.status}); train it again"
        )
    record = load_train_record(run)
    from xtml.runs import check_files

    check_files(run, ["models/", "split.npz", "config.json", "train.json"])
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    dataset = Path(record["dataset"]["path"])
    ds = open_dataset(dataset)
    openings = _open_test(run, reopen)
    cmd = command or api_command("learn.evaluate_run", run=run, reopen=reopen)
    with run_folder(
        run / EVALUATION_DIR,
        "evaluate",
        command=cmd,
        config={"train_run_id": train_record.run_id, "reopen": reopen, "plots": plots},
        seeds={"reference_subset_and_bootstrap": config.seed},
        inputs={"train_run": run, "data": ds.path},
        overwrite=True,  # the test-set lock above already allowed this opening
    ) as writer:
        out = _evaluate(run, writer.path, record, config, ds, openings)
        writer.add_metrics({k: v for k, v in json_ready(out).items() if k != "openings"})
        passed, detail = _reference_check(out)
        if passed is not None:
            writer.add_check("reference_beaten", passed, detail)
        if plots:
            from xtml.critique import plot_evaluation

            out["plots"] = plot_evaluation(run)
    return out


def _reference_check(out: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether a model beat the classical reference, with the verdicts (None: no reference was run).

    For detection the rule of the headline: a model beats the LRT only where the test set resolves its
    higher TPR at the fixed FPR (enough QPO-free rows, an interval of the paired difference above 0).
    """
    head = out.get("headline")
    if head is not None and head["reference"] is not None:
        tpr = [d for d in head["differences"] if d["metric"] == "tpr_at_fpr"]
        better = [d["verdict"] for d in tpr if d["resolved"] and d["difference"] > 0]
        return bool(head["reference_beaten"]), "; ".join(better or [d["verdict"] for d in tpr])
    ref = out.get("reference")
    if ref is not None and ref.get("test") == "fit":
        ref_rmse = np.asarray(ref["metrics"]["rmse"], dtype=float)
        detail, passed = [], False
        for name, m in ref["models_on_same_spectra"].items():
            rmse = np.asarray(m["rmse"], dtype=float)
            wins = bool(np.all(rmse < ref_rmse))
            passed |= wins
            detail.append(f"{name} RMSE {np.round(rmse, 4).tolist()} vs fit {np.round(ref_rmse, 4).tolist()}")
        return passed, "; ".join(detail)
    return None, ""


def _evaluate(
    run: Path,
    ev: Path,
    record: dict[str, Any],
    config: TrainConfig,
    ds: Any,
    openings: list[dict[str, Any]],
) -> dict[str, Any]:
    dataset = Path(ds.path)
    td = load_task(ds, config.task)
    with np.load(run / "split.npz", allow_pickle=False) as split:
        used = np.union1d(split["train"], split["validation"])
    test = np.flatnonzero(~np.isin(td.rows, used))
    y = td.y[test]
    out: dict[str, Any] = {"task": config.task.kind, "names": list(td.names), "n_test": len(test)}
    out |= {"openings": openings, "models": {}, "log_targets": td.log_targets}
    arrays: dict[str, NDArray[Any]] = {"y": y, "rows": td.rows[test]}
    importances: dict[str, Any] = {}
    for name in record["models"]:
        model = load_model(run / "models" / name)
        extra = json.loads((run / "models" / name / "extra.json").read_text())
        t0 = time.perf_counter()
        if td.is_classification:
            cal = ScoreCalibrator.from_dict(extra["calibration"])
            arrays[f"proba/{name}"] = cal.transform(model.predict_proba(td.X[test]))
        else:
            arrays[f"pred/{name}"], arrays[f"std/{name}"] = predict_with_std(
                model,
                td.X[test],
                np.asarray(extra["residual_std"]),
                np.asarray(extra.get("spread_scale", 1.0)),
            )
        per = (time.perf_counter() - t0) / len(test)
        out["models"][name] = {
            "predict_time_per_spectrum_s": per,
            "fit_time_s": record["models"][name]["fit_time_s"],
        }
        imp = _importances(model)
        if imp is not None:
            importances[name] = {"names": imp[0], "values": imp[1].tolist()}
    if td.is_classification and len(td.names) == 2:
        _detection(out, arrays, td, test, y, config, dataset)
    elif td.is_classification:
        for name in record["models"]:
            p = arrays[f"proba/{name}"]
            out["models"][name]["test"] = multiclass_metrics(y, p, labels=list(range(len(td.names))))
            out["models"][name]["test"]["rows"] = rows_text(len(test))
    else:
        for name in record["models"]:
            mean, std = arrays[f"pred/{name}"], arrays[f"std/{name}"]
            out["models"][name]["test"] = regression_metrics(
                y, mean if y.ndim > 1 else mean[:, 0], std if y.ndim > 1 else std[:, 0]
            ) | {"rows": rows_text(len(test))}
        if config.reference.test == "fit":
            gen = np.random.default_rng(config.seed)
            k = min(config.reference.max_spectra, len(test))
            subset = np.sort(gen.choice(len(test), size=k, replace=False))
            value, err, ok, per = reference_fits(td, test[subset], config, dataset)
            good = ok & np.all(np.isfinite(err), axis=1)
            truth = y.reshape(len(y), -1)[subset]
            ref = {"test": "fit", "n_spectra": k, "n_failed": int((~good).sum()), "time_per_spectrum_s": per}
            fitted = f"all {k:,}" if k == len(test) else f"a random {k:,} of the {len(test):,}"
            ref["rows"] = f"the {int(good.sum()):,} of {fitted} test spectra where the fit succeeded"
            ref["metrics"] = regression_metrics(truth[good], value[good], err[good])
            ref["models_on_same_spectra"] = {
                name: regression_metrics(
                    truth[good], arrays[f"pred/{name}"][subset][good], arrays[f"std/{name}"][subset][good]
                )
                for name in record["models"]
            }
            out["reference"] = ref
            arrays["reference/subset"], arrays["reference/pred"], arrays["reference/std"] = subset, value, err
    np.savez(ev / "test_predictions.npz", **arrays)
    (ev / "importances.json").write_text(json.dumps(importances, indent=1))
    (ev / "metrics.json").write_text(json.dumps(json_ready(out), indent=1))
    (ev / "summary.txt").write_text(summary_text(out, td))
    return out


def _detection(
    out: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
    td: TaskData,
    test: NDArray[np.int64],
    y: NDArray[Any],
    config: TrainConfig,
    dataset: Path,
) -> None:
    """The detection figures of ``_evaluate``: the headline comparison (with the LRT on its rows) and
    each model's figures on all test rows, both with intervals and the rows they were computed on."""
    ev = config.evaluation
    scores = {n[6:]: v[:, 1] for n, v in arrays.items() if n.startswith("proba/")}
    models = list(scores)
    groups = td.groups[test]

    def compare(
        rows: NDArray[np.intp], by: dict[str, NDArray[Any]], reference: str | None
    ) -> ComparisonTable:
        return compare_scores(
            y[rows],
            by,
            reference=reference,
            fpr_target=ev.fpr,
            n_boot=ev.n_boot,
            level=ev.level,
            groups=groups[rows],
            rng=config.seed,
        )

    subset = np.arange(len(test))
    head_scores = dict(scores)
    reference = None
    if config.reference.test == "lrt":
        gen = np.random.default_rng(config.seed)
        k = min(config.reference.max_spectra, len(test))
        subset = np.sort(gen.choice(len(test), size=k, replace=False))
        lrt, per = reference_scores(td, test[subset], config, dataset)
        head_scores = {name: s[subset] for name, s in scores.items()} | {REFERENCE_NAME: lrt}
        out["reference"] = {"test": "lrt", "n_spectra": k, "time_per_spectrum_s": per}
        arrays["reference/lrt"] = lrt
        reference = REFERENCE_NAME
    arrays["reference/subset"] = subset
    rows = rows_text(subset.size, subset_of=len(test))
    table = compare(subset, head_scores, reference)
    # every model on all test rows: the headline's own figures when the headline rows are all of them
    every = table if subset.size == len(test) else compare(np.arange(len(test)), scores, None)
    for name in models:
        m = binary_metrics(y, scores[name], fpr_target=ev.fpr)
        m |= {
            "rows": rows_text(len(test)),
            "tpr_resolved": every.tpr_resolved,
            "resolution": every.resolution,
        }
        for metric in ("tpr_at_fpr", "roc_auc"):
            e = every.get(name, metric)
            m |= {f"{metric}_low": e.low, f"{metric}_high": e.high}
        out["models"][name]["test"] = m
    out["comparison"] = {"rows": table.rows(), "verdict": table.verdict, "text": table.to_text(), "on": rows}
    out["headline"] = headline_record(table, rows=rows, models=models, reference=reference)
    out["fpr_target"] = ev.fpr


def summary_text(out: dict[str, Any], td: TaskData) -> str:
    """A plain-text summary: the headline with the rows it stands on, the comparison table and
    verdicts on the same rows, then every model's figures on all test rows."""
    lines = [f"test set: {out['n_test']:,} spectra (opened {len(out['openings'])} time(s))"]
    if not td.is_classification:
        lines.append("regression targets: " + ", ".join(td.names) + (" (log10)" if td.log_targets else ""))
    if "headline" in out:
        lines += headline_lines(out["headline"])
        lines.append(f"every metric on the same rows ({out['comparison']['on']}):")
        lines.append(out["comparison"]["text"])
    lines.append(
        f"each model on all {out['n_test']:,} test spectra"
        + (" (ML models only)" if "headline" in out and out["headline"]["reference"] else "")
        + ":"
    )
    for name, m in out["models"].items():
        test = m.get("test", {})
        if "tpr_at_fpr" in test:
            label = tpr_label(test["fpr_target"])
            tpr = fmt_interval(test["tpr_at_fpr"], test["tpr_at_fpr_low"], test["tpr_at_fpr_high"])
            auc = fmt_interval(test["roc_auc"], test["roc_auc_low"], test["roc_auc_high"])
            resolved = "" if test["tpr_resolved"] else f" (NOT resolved: {test['resolution']})"
            figures = f"{label} {tpr}{resolved}, ROC-AUC {auc}, Brier {fmt_value(test['brier'])}"
        else:
            keys = ("accuracy", "macro_f1", "rmse", "r2", "coverage_68")
            shown = {k: np.atleast_1d(np.asarray(test[k], dtype=float)) for k in keys if k in test}
            figures = ", ".join(
                f"{k} {'/'.join(f'{x:.4g}' for x in v)}" for k, v in shown.items() if v.size <= 8
            )
        fit_s, predict_ms = m["fit_time_s"], m["predict_time_per_spectrum_s"] * 1e3
        lines.append(f"  {name}: {figures}; fit {fit_s:.3g} s, predict {predict_ms:.3g} ms/spectrum")
    if "reference" in out and out["reference"]["test"] == "fit":
        ref = out["reference"]
        lines.append(
            f"reference (maximum-likelihood fits, {ref['n_spectra']} spectra, {ref['n_failed']} failed "
            f"and left out; {ref['time_per_spectrum_s'] * 1e3:.3g} ms/spectrum), on {ref['rows']}:"
        )
        keys = ("rmse", "r2", "coverage_68", "coverage_95")
        for name, m in {"reference fit": ref["metrics"], **ref["models_on_same_spectra"]}.items():
            shown = {k: np.atleast_1d(np.asarray(m[k], dtype=float)) for k in keys}
            lines.append(
                f"  {name}: " + ", ".join(f"{k} {'/'.join(f'{x:.4g}' for x in v)}" for k, v in shown.items())
            )
    elif "reference" in out:
        per = out["reference"]["time_per_spectrum_s"]
        n_ref = out["reference"]["n_spectra"]
        lines.append(f"reference (likelihood-ratio test): {per * 1e3:.3g} ms/spectrum on {n_ref} spectra")
    return "\n".join(lines) + "\n"
