"""The evidence of a learning run's report: the headline panel, the reference table, training (CV and
learning curves) and the model card's answers to the four questions of when to be cautious about ML.

Every figure comes from the run's own files and is printed with the formatters of
:mod:`xtml.learn.headline`, so it reads the same here as in ``summary.txt`` and the demo.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xtml.learn.headline import fmt_interval, fmt_value
from xtml.report.card import CAUTION_QUESTIONS, Lesson, fmt, scope_answer
from xtml.report.html import Markup, figure_html, table_html

__all__ = [
    "REFERENCE",
    "best_model",
    "detection_panel",
    "interval_cell",
    "other_panel",
    "questions",
    "reference_body",
    "sentence",
    "training_body",
    "worst_text",
]

REFERENCE = "LRT (reference)"


def best_model(metrics: dict[str, Any]) -> str:
    """The headline's best model; for tasks without a headline, the first model."""
    if "headline" in metrics:
        return str(metrics["headline"]["best_model"])
    return next(iter(metrics["models"]))


def interval_cell(value: Any, low: Any, high: Any) -> Markup:
    """``0.312`` over ``[0.281, 0.344]`` in one table cell (keeps wide tables narrow)."""
    text = fmt_interval(value, low, high)
    if " [" not in text:
        return Markup(html.escape(text))
    v, ci = text.split(" [", 1)
    return Markup(f"{html.escape(v)}<br>[{html.escape(ci)}")


# ------------------------------------------------------------------------------------------ headline


def detection_panel(
    metrics: dict[str, Any], record: dict[str, Any], scope: dict[str, Any] | None
) -> list[tuple[str, Any]]:
    """The headline panel of a detection run: question, answer, reference, calibration, scope, data."""
    h = metrics["headline"]
    best, label = h["best_model"], h["label"]
    s = h["scorers"][best]
    models = ", ".join(metrics["models"])
    items: list[tuple[str, Any]] = [
        (
            "What was asked",
            f"Do the machine-learning models ({models}) find QPOs better than the classical likelihood-ratio "
            f"test (LRT)? Measured as the {label}: the fraction of spectra with a QPO that are detected when "
            f"{100 * h['fpr_target']:g}% of QPO-free spectra raise a false alarm.",
        ),
        (
            "The answer",
            f"{best}: {label} {fmt_interval(s['tpr_at_fpr'], s['tpr_at_fpr_low'], s['tpr_at_fpr_high'])} "
            f"({100 * h['level']:g}% interval) on {h['rows']} ({h['n_positive']:,} with a QPO, "
            f"{h['n_negative']:,} without). "
            + ("Resolved: " if h["resolved"] else "NOT resolved by this test set: ")
            + h["resolution"]
            + ".",
        ),
    ]
    if h["reference"] is not None:
        r = h["scorers"][h["reference"]]
        items.append(
            (
                "ML against the reference",
                f"LRT {label} {fmt_interval(r['tpr_at_fpr'], r['tpr_at_fpr_low'], r['tpr_at_fpr_high'])} on "
                f"the same rows. Verdict: {h['verdict']}.",
            )
        )
    else:
        items.append(("ML against the reference", "No classical reference was run for this evaluation."))
    items.append(
        (
            "Calibration",
            f"Brier score of {best}'s calibrated probabilities "
            f"{fmt_interval(s['brier'], s['brier_low'], s['brier_high'])} on the same rows (0 is perfect, "
            "0.25 a coin toss on balanced classes); the reliability diagram below shows where it is off."
            + (" The LRT statistic is not a probability: Brier n/a." if h["reference"] is not None else ""),
        )
    )
    if scope is not None:
        items.append(("Scope", sentence(scope["summary"]) + "."))
    curve = record["models"].get(best, {}).get("learning_curve")
    if curve:
        items.append(("Enough training data?", f"{best}: {curve['verdict']}."))
    return items


def other_panel(
    metrics: dict[str, Any], scope: dict[str, Any] | None, task: str, names: list[str]
) -> list[tuple[str, Any]]:
    """The headline panel of a state-classification or regression run."""
    what = "the variability state" if task == "state" else "the parameters " + ", ".join(names)
    items: list[tuple[str, Any]] = [("What was asked", f"Predict {what} from the power spectrum.")]
    answers = []
    for name, m in metrics["models"].items():
        t = m.get("test", {})
        if "accuracy" in t:
            answers.append(f"{name}: accuracy {fmt_value(t['accuracy'])}")
        elif "rmse" in t:
            answers.append(f"{name}: RMSE {' / '.join(fmt(v) for v in np.atleast_1d(t['rmse']))}")
    items.append(("The answer", f"On all {metrics['n_test']:,} test spectra: " + "; ".join(answers) + "."))
    ref = metrics.get("reference")
    if ref is not None and ref.get("test") == "fit":
        items.append(
            (
                "ML against the reference",
                f"Maximum-likelihood fits of {ref['n_spectra']:,} test spectra: RMSE "
                + " / ".join(fmt(v) for v in np.atleast_1d(ref["metrics"]["rmse"]))
                + "; the table below compares every model on the same spectra.",
            )
        )
    else:
        items.append(("ML against the reference", "No classical reference applies to this task here."))
    calibration = []
    for name, m in metrics["models"].items():
        t = m.get("test", {})
        if "log_loss" in t:
            calibration.append(f"{name}: log loss {fmt_value(t['log_loss'])}")
        elif "coverage_68" in t:
            cover = " / ".join(fmt(v) for v in np.atleast_1d(t["coverage_68"]))
            calibration.append(f"{name}: 68% intervals cover {cover} of the truths (nominal 0.683)")
    items.append(("Calibration", ("; ".join(calibration) or "n/a") + "."))
    if scope is not None:
        items.append(("Scope", sentence(scope["summary"]) + "."))
    return items


# ------------------------------------------------------------------------------------------ sections


def reference_body(metrics: dict[str, Any], lessons: list[Lesson]) -> str:
    h = metrics.get("headline")
    if h is not None:
        pct = f"{100 * h['level']:g}%"
        rows = [
            [
                name,
                s["kind"],
                interval_cell(s["tpr_at_fpr"], s["tpr_at_fpr_low"], s["tpr_at_fpr_high"]),
                interval_cell(s["roc_auc"], s["roc_auc_low"], s["roc_auc_high"]),
                interval_cell(s["brier"], s["brier_low"], s["brier_high"]),
                f"{s['threshold']:.4g}",
                fmt_value(s["fpr_at_threshold"]),
            ]
            for name, s in h["scorers"].items()
        ]
        body = table_html(
            ["scorer", "kind", f"{h['label']} [{pct} CI]", f"ROC-AUC [{pct} CI]", f"Brier [{pct} CI]",
             "operating threshold", "FPR at it"],
            rows,
            caption=(
                f"The headline, on {h['rows']} ({h['n_positive']:,} with a QPO, "
                f"{h['n_negative']:,} without); bootstrap intervals resampling whole observations. "
                + ("Resolved: " if h["resolved"] else "NOT resolved by this test set: ")
                + h["resolution"]
                + ". Brier is n/a for the LRT: its statistic is not a probability."
            ),
            numeric=True,
        )  # fmt: skip
        verdicts = metrics["comparison"]["verdict"].splitlines()
        body += "<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>"
        for v in verdicts:
            kind = "failed" if " is worse than " in v else ("ok" if " is better than " in v else "tie")
            lessons.append(Lesson(kind, v))
        metric_names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "tpr_at_fpr": h["label"], "f1": "F1"}
        keys = ("roc_auc", "pr_auc", "tpr_at_fpr", "precision", "recall", "f1", "brier")
        body += table_html(
            ["scorer", *(metric_names.get(k, k) for k in keys)],
            [
                [r["scorer"], *(interval_cell(r[k], r[f"{k}_low"], r[f"{k}_high"]) for k in keys)]
                for r in metrics["comparison"]["rows"]
            ],
            caption=(
                f"Every metric on the same {h['n_rows']:,} rows, {pct} intervals; precision, recall and "
                "F1 at each scorer's operating threshold (recall there is the TPR)."
            ),
            numeric=True,
        )
        n_test = metrics["n_test"]
        if h["n_rows"] != n_test:
            first = next(iter(metrics["models"].values()))["test"]
            every = []
            for name, m in metrics["models"].items():
                t = m["test"]
                every.append(
                    [
                        name,
                        interval_cell(t["tpr_at_fpr"], t["tpr_at_fpr_low"], t["tpr_at_fpr_high"]),
                        "yes" if t["tpr_resolved"] else "no",
                        interval_cell(t["roc_auc"], t["roc_auc_low"], t["roc_auc_high"]),
                        fmt_value(t["brier"]),
                    ]
                )
            body += table_html(
                ["model", f"{h['label']} [{pct} CI]", "resolved?", f"ROC-AUC [{pct} CI]", "Brier"],
                every,
                caption=(
                    f"Each ML model on all {n_test:,} test spectra ({first['n_positive']:,} with a QPO, "
                    f"{first['n_negative']:,} without; the LRT scored {h['n_rows']:,} of them, so these are "
                    f"not the headline figures). {sentence(first['resolution'])}."
                ),
                numeric=True,
            )
        ref = metrics.get("reference")
        if ref is not None:
            costs = [[REFERENCE, f"{1e3 * ref['time_per_spectrum_s']:.3g}"]]
            costs += [
                [n, f"{1e3 * m['predict_time_per_spectrum_s']:.3g}"] for n, m in metrics["models"].items()
            ]
            body += table_html(["scorer", "ms per spectrum"], costs, caption="Cost of scoring one spectrum.")
        return body
    if "reference" in metrics and "metrics" in metrics["reference"]:
        ref = metrics["reference"]
        keys = [k for k in ("rmse", "r2", "coverage_68") if k in ref["metrics"]]
        table_rows = [["classical fit"] + [fmt(np.mean(ref["metrics"][k])) for k in keys]]
        for name, m in ref["models_on_same_spectra"].items():
            table_rows.append([name] + [fmt(np.mean(m[k])) for k in keys])
            better = np.mean(m["rmse"]) < np.mean(ref["metrics"]["rmse"])
            lessons.append(
                Lesson(
                    "ok" if better else "failed",
                    f"{name}: mean RMSE {fmt(np.mean(m['rmse']))} against "
                    f"{fmt(np.mean(ref['metrics']['rmse']))} "
                    f"for the classical fit on the same {ref['n_spectra']} spectra",
                )
            )
        return table_html(
            ["method"] + [f"{k} (mean over targets)" for k in keys],
            table_rows,
            caption=(
                f"On the {ref['n_spectra'] - ref['n_failed']:,} test spectra where the maximum-likelihood "
                f"fit succeeded ({ref['n_failed']:,} of {ref['n_spectra']:,} failed and are left out)."
            ),
        )
    return "<p class='caveat'>No classical reference was run for this task.</p>"


def training_body(record: dict[str, Any], best: str) -> str:
    import matplotlib.pyplot as plt

    from xtml.critique.learn_plots import plot_learning_curve
    from xtml.learn.learning_curve import LearningCurve
    from xtml.learn.train import curve_table, cv_table

    models = record["models"]
    cv = next((m["cv"] for m in models.values() if m.get("cv")), None)
    where = f" on {cv['rows']}" if cv and "rows" in cv else ""
    body = table_html(
        *cv_table(models),
        caption=(
            f"Cross-validation{where}: mean and standard deviation over the folds (a spread, not a "
            "confidence interval) and every fold's score; hyper-parameters tuned by grouped CV inside the "
            "training rows."
        ),
    )
    title, header, rows = curve_table(models)
    if rows:
        curves = {
            n: LearningCurve.from_dict(m["learning_curve"])
            for n, m in models.items()
            if m.get("learning_curve")
        }
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        for name, curve in curves.items():
            plot_learning_curve(curve, label=name, ax=ax)
        first = next(iter(curves.values()))
        judged = first.judged()[0]
        note = (
            ""
            if first.judged_on == first.metric
            else f" The {first.label} is not resolved by these rows ({first.n_negative:,} QPO-free), so the "
            "curve shows the ROC-AUC."
        )
        body += figure_html(
            fig,
            f"Learning curves: the {judged} of each model on {first.rows} (never the test set) when it is "
            f"trained on nested subsets of its training rows, same hyper-parameters; bars are "
            f"{100 * first.level:g}% bootstrap intervals.{note} Read: a curve still rising at the right end "
            "means more training data would help; a flat end means the model, not the data, limits it.",
        )  # fmt: skip
        body += table_html(header, rows, caption=sentence(title) + ".", numeric=True)
        body += "<ul>" + "".join(
            f"<li>{html.escape(n)}: {html.escape(c.verdict)}</li>" for n, c in curves.items()
        ) + "</ul>"  # fmt: skip
    return body


def sentence(text: str) -> str:
    """``text`` with its first letter in upper case (the rest untouched, unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def worst_text(maps: dict[str, Any]) -> str:
    """The model card's answer on downstream biases: the worst bins of the performance maps."""
    worst = sorted(maps["worst"], key=lambda w: w["tpr"])
    if not worst:
        return "Not answered: no performance map could be drawn."
    parts = []
    for w in worst[:2]:
        overall = maps["scorers"][w["scorer"]]["tpr_overall"]
        ref = "" if w["reference_tpr"] is None else f"; the LRT {fmt_value(w['reference_tpr'])} there"
        below = (
            f"clearly below its {fmt_value(overall)} overall"
            if w["tpr_upper"] < overall
            else f"not resolved against its {fmt_value(overall)} overall (only {w['n']:,} QPOs in the bin)"
        )
        parts.append(
            f"{w['scorer']} detects {fmt_value(w['tpr'])} [{fmt_value(w['tpr_lower'])}, "
            f"{fmt_value(w['tpr_upper'])}] (68% CI) of the {w['n']:,} QPOs with {w['variable']} in "
            f"{fmt(w['low'])}-{fmt(w['high'])}, {below}{ref}"
        )
    return (
        f"Detection depends on the source: at the headline threshold, on {maps['rows']}, "
        + "; ".join(parts)
        + ". A sample selected by this detector under-represents the sources in its worst bins; correct for "
        "the detection rate per bin (the performance maps) before counting or comparing populations."
    )


def questions(
    metrics: dict[str, Any],
    record: dict[str, Any],
    scope: dict[str, Any] | None,
    maps: dict[str, Any] | None,
    applied: Sequence[Mapping[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    best = best_model(metrics)
    h = metrics.get("headline")
    if h is not None and h["reference"] is not None:
        d = next(x for x in h["differences"] if x["scorer"] == best and x["metric"] == "tpr_at_fpr")
        r = h["scorers"][h["reference"]]
        lrt = f"the LRT reaches {fmt_interval(r['tpr_at_fpr'], r['tpr_at_fpr_low'], r['tpr_at_fpr_high'])}"
        if d["resolved"] and d["difference"] < 0:
            q1 = f"Yes: {lrt} and beats {best}: {d['verdict']}. Statistics does the job here; use the LRT."
        elif d["resolved"]:
            q1 = f"Not only: {d['verdict']} ({lrt}). The ML model adds detections the LRT misses."
        else:
            q1 = (
                f"{sentence(d['verdict'])} ({lrt}). Until a test set tells them apart, the LRT does the job "
                "without a training set."
            )
    elif metrics.get("reference", {}).get("test") == "fit":
        q1 = (
            "Compare the models with the maximum-likelihood fits in 'Reference vs ML': where the fit is as "
            "good, use it."
        )
    else:
        q1 = "Not answered: no classical reference was run for this task."
    curve = record["models"].get(best, {}).get("learning_curve")
    with_curve = [n for n, m in record["models"].items() if m.get("learning_curve")]
    if curve:
        q2 = f"{best}'s learning curve: {curve['verdict']}."
    elif with_curve:
        other = record["models"][with_curve[0]]["learning_curve"]["verdict"]
        q2 = f"No learning curve for {best}; {with_curve[0]}'s: {other}."
    else:
        q2 = "Not answered: no learning curve was computed (learning_curve = false for every model)."
    q3 = scope_answer(None if scope is None else scope["summary"], applied)
    q4 = (
        worst_text(maps)
        if maps is not None
        else "Not answered: performance maps are drawn for detection runs."
    )
    return list(zip(CAUTION_QUESTIONS, (q1, q2, q3, q4), strict=True))
