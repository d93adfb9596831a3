"""Report sections of an evaluated learning run (``xtml train`` then ``xtml evaluate``).

Every figure on the page is read from the run's own files, and printed with the formatters of
:mod:`xtml.learn.headline`: the headline (``evaluation/metrics.json["headline"]``, the record that
``summary.txt``, ``xtml evaluate`` and the demo print) with the rows it stands on; the cross-validation and
the learning curves from ``train.json``; the scope gate from ``scope.json``, applied here to every test
spectrum.  The performance maps are drawn at each scorer's headline operating threshold on the headline's
rows (so that, summed over bins, they give back the headline figure) and written to
``performance_maps.json``, whose worst bins the model card quotes.  The model card answers the four
questions of :data:`~xtml.report.card.CAUTION_QUESTIONS` from this evidence.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.learn.headline import fmt_interval
from xtml.report.card import Lesson, ModelCard, fmt
from xtml.report.html import Section, figure_html, panel_html, table_html
from xtml.report.learn_evidence import (
    REFERENCE,
    best_model,
    detection_panel,
    other_panel,
    questions,
    reference_body,
    training_body,
)
from xtml.report.learn_maps import MAPS_FILE, detection_maps, parameters_of, scope_body

__all__ = ["MAPS_FILE", "learn_sections"]


def _band_importance(
    run: Path,
    ds: Any,
    metrics: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
    *,
    max_points: int,
    seed: int,
) -> str:
    """Permutation importance of frequency bands for the best model, as an embedded figure."""
    from sklearn.metrics import r2_score, roc_auc_score

    from xtml.critique.importance import band_groups, grouped_permutation_importance
    from xtml.critique.learn_plots import plot_importances
    from xtml.learn.inputs import spectra_to_X
    from xtml.learn.persist import load_model

    best = best_model(metrics)
    rng = np.random.default_rng(seed)
    rows = arrays["rows"]
    pick = np.sort(rng.choice(rows.size, size=min(max_points, rows.size), replace=False))
    X, grid = spectra_to_X(ds.spectra(rows[pick]))  # the task's input matrix (xtml.learn.tasks.load_task)
    y = arrays["y"][pick]
    model = load_model(run / "models" / best)
    if metrics["task"] == "detect":

        def score(x: NDArray[np.float64]) -> float:
            return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))

        what = "ROC-AUC"
    elif metrics["task"] == "state":

        def score(x: NDArray[np.float64]) -> float:
            return float(np.mean(model.predict(x) == y))

        what = "accuracy"
    else:

        def score(x: NDArray[np.float64]) -> float:
            return float(r2_score(y, model.predict(x)))

        what = "R^2"
    groups, names = band_groups(grid.freq)
    imp = grouped_permutation_importance(score, X, groups, names=names, n_repeats=2, rng=seed)
    ax = plot_importances(list(imp.names), imp.mean, title=f"{best}: drop of {what} when a band is permuted")
    return figure_html(
        ax.figure,
        f"Which frequency bands {best} relies on: the drop of its {what} on {pick.size:,} test spectra when "
        f"the powers of one band are shuffled between spectra (baseline {what} {imp.baseline:.3f}). Read: a "
        "long bar is a band the model needs; a band near zero it ignores; a band where QPOs cannot be "
        "(e.g. below the prior's centroid range) with a long bar hints at a shortcut.",
    )


# ------------------------------------------------------------------------------------------ headline


def learn_sections(
    run: Path,
    *,
    max_points: int = 2000,
    seed: int = 0,
    applied: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[Section], ModelCard, list[Lesson]]:
    """Sections, model card and lessons of an evaluated learning run (module docstring); ``applied`` are the
    rows of ``xtml analyze`` for files the run answered (the model card's scope question)."""
    import matplotlib.pyplot as plt

    from xtml.critique.diag_plots import plot_embedding
    from xtml.critique.learn_plots import (
        plot_confusion,
        plot_importances,
        plot_pr,
        plot_reliability,
        plot_roc,
    )
    from xtml.critique.performance import plot_performance_map, regression_map
    from xtml.critique.run_scope import load_run_scope
    from xtml.data import open_dataset
    from xtml.learn.evaluate import evaluation_dir
    from xtml.learn.train import load_train_record

    ev = evaluation_dir(run)
    record = load_train_record(run)
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((ev / "metrics.json").read_text())
    with np.load(ev / "test_predictions.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    ds = open_dataset(record["dataset"]["path"])
    y, rows = arrays["y"], arrays["rows"]
    task = metrics["task"]
    names = metrics["names"]
    best = best_model(metrics)
    head = metrics.get("headline")
    lessons: list[Lesson] = []
    sections: list[Section] = []

    # what was asked
    models = config["models"]
    asked = [
        f"<p>Task <b>{html.escape(task)}</b> on classes/targets {html.escape(', '.join(names))}: "
        f"{len(models)} model(s), each compared on the same held-out spectra with the classical reference "
        f"(<code>{html.escape(str(config['reference'].get('test')))}</code>).</p>",
        table_html(
            ["model", "kind", "input", "hyper-parameter search", "cross-validated", "learning curve"],
            [
                [n, m["kind"], m["input"], json.dumps(m.get("search", {})), "yes" if m.get("cv") else "no",
                 "yes" if record["models"].get(n, {}).get("learning_curve") else "no"]
                for n, m in models.items()
            ],
            caption="The models, simplest first.",
        ),
    ]  # fmt: skip
    sections.append(Section("What was asked", "\n".join(asked)))

    # data and provenance
    prov = ds.meta.get("provenance", {})
    split = record["split"]
    data_rows = [
        ["dataset", record["dataset"]["path"]],
        ["simulations", record["dataset"]["n"]],
        ["dataset seed", record["dataset"]["seed"]],
        [
            "split (train / validation / locked test)",
            f"{split['train']} / {split['validation']} / {split['test']}",
        ],
        ["test set opened", f"{len(metrics.get('openings', []))} time(s)"],
        ["xtml git revision (data)", prov.get("git_revision", "?")],
        ["created", record.get("created", "?")],
    ]
    versions = record.get("versions", {})
    body = table_html(["item", "value"], data_rows, caption="The data and where it came from.")
    body += "<p>Package versions: " + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>"
    body += (
        "<details><summary>simulation configuration (JSON)</summary><pre>"
        + html.escape(json.dumps(ds.meta["config"], indent=1))
        + "</pre></details>"
    )
    sections.append(Section("Data and provenance", body))

    sections.append(Section("Reference vs ML", reference_body(metrics, lessons)))
    sections.append(Section("Training", training_body(record, best)))

    # diagnostics
    figs: list[str] = []
    fpr = metrics.get("fpr_target", 0.01)
    if task == "detect":
        subset = arrays["reference/subset"]
        scores = {k[6:]: v[subset, 1] for k, v in arrays.items() if k.startswith("proba/")}
        if "reference/lrt" in arrays:
            scores[REFERENCE] = arrays["reference/lrt"]
        points = {n: (s["fpr_at_threshold"], s["tpr_at_fpr"]) for n, s in head["scorers"].items()}
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
        plot_roc(y[subset], scores, fpr_target=fpr, operating=points, ax=axes[0])
        plot_pr(y[subset], scores, ax=axes[1])
        figs.append(
            figure_html(
                fig,
                f"ROC (left) and precision-recall (right) curves of every scorer on {head['rows']}. Read: "
                f"higher is better; the dotted line marks the {100 * fpr:g}% false-positive rate of the "
                "headline and each dot a scorer's operating point there (its headline TPR; an FPR of 0 sits "
                "on the left edge); the AUCs in the legend are the table's.",
            )
        )
        probs = {k[6:]: v[:, 1] for k, v in arrays.items() if k.startswith("proba/")}
        ax = plot_reliability(y, probs)
        figs.append(
            figure_html(
                ax.figure,
                f"Reliability of the calibrated probabilities on all {y.size:,} test spectra: the observed "
                "fraction with a QPO against the predicted probability, in ten bins of equal counts. Read: "
                "on the dotted diagonal a probability means what it says; below it the model is "
                "overconfident.",
            )
        )
    if task in ("detect", "state"):
        n_models = len(metrics["models"])
        fig, axes = plt.subplots(1, n_models, figsize=(3.6 * n_models, 3.4), squeeze=False)
        for ax, (name, m) in zip(axes[0], metrics["models"].items(), strict=True):
            plot_confusion(m["test"]["confusion_matrix"], names, title=name, ax=ax)
        at = "at probability 0.5" if task == "detect" else "of the most probable class"
        figs.append(
            figure_html(
                fig,
                f"Confusion matrices on all {y.size:,} test spectra, predictions {at} (not the headline's "
                "operating threshold). Read: rows are the true class, columns the prediction; each cell has "
                "the count and the fraction of its row.",
            )
        )
    figs.append(_band_importance(run, ds, metrics, arrays, max_points=min(max_points, 1000), seed=seed))
    importances = (
        json.loads((ev / "importances.json").read_text()) if (ev / "importances.json").is_file() else {}
    )
    for name, imp in list(importances.items())[:2]:
        ax = plot_importances(imp["names"], imp["values"], title=f"{name}: feature importance")
        figs.append(
            figure_html(
                ax.figure,
                f"The features {name} weighs most (impurity importance for trees, mean |coefficient| of the "
                "scaled features for linear models). Read: large bars are what the model uses; compare with "
                "the band importances above.",
            )
        )
    rng = np.random.default_rng(seed)
    show = np.sort(rng.choice(rows.size, size=min(max_points, rows.size), replace=False))
    ps = ds.spectra(rows[show])
    feats = np.column_stack([np.log(ps.power), np.log10(ps.mean_rate)])
    label = np.array([names[int(v)] for v in y[show]]) if task != "regress" else None
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4))
    plot_embedding(feats, color=label, method="pca", ax=axes[0], random_state=seed)
    axes[0].set_title("PCA of log-power and log rate")
    plot_embedding(
        feats,
        color=np.log10(ps.mean_rate),
        color_name="log10 rate",
        method="tsne",
        ax=axes[1],
        random_state=seed,
        max_points=min(max_points, 1500),
    )
    axes[1].set_title("t-SNE, coloured by log10 mean rate")
    figs.append(
        figure_html(
            fig,
            f"Two-dimensional embeddings of {show.size:,} test spectra (log-power and log rate): PCA "
            "coloured by class (left) and t-SNE coloured by count rate (right). Read: classes that overlap "
            "here are hard to tell apart from the spectrum alone; a colour gradient shows what dominates the "
            "spectra's variance.",
        )
    )
    scope_html, scope = scope_body(run, ds, rows, lessons, max_points, seed)
    sections.append(Section("Diagnostics", "\n".join(figs)))
    sections.append(Section("Scope", scope_html))

    # performance maps
    params = parameters_of(ds, rows)
    pm_body: list[str] = []
    maps = None
    if task == "detect":
        pm_body, maps = detection_maps(run, metrics, arrays, params, y, names)
    elif task == "regress":
        truth = y.reshape(len(y), -1)
        mean, std = arrays[f"pred/{best}"], arrays[f"std/{best}"]
        for j, target in enumerate(names):
            pmap = regression_map(
                params["mean_rate"], truth[:, j], mean[:, j], std[:, j], variable="mean rate (ct/s)"
            )
            ax = plot_performance_map(pmap, "rmse", label=best)
            pm_body.append(
                figure_html(
                    ax.figure,
                    f"RMSE of {best} for {target} against the mean count rate, on all {y.shape[0]:,} test "
                    "spectra (68% intervals). Read: the error of an estimate depends on where the source "
                    "sits; a rising curve means faint sources are measured worse.",
                )
            )
    else:
        pm_body.append("<p>Performance maps are drawn for detection and regression tasks.</p>")
    sections.append(Section("Performance maps", "\n".join(pm_body)))

    # headline panel, first
    items = (
        detection_panel(metrics, record, scope)
        if head is not None
        else other_panel(metrics, scope, task, names)
    )
    sections.insert(0, Section("Headline", panel_html(items)))

    # model card
    loaded = load_run_scope(run)
    d = loaded[0].domain_ if loaded is not None else None
    domain = {}
    if d is not None:
        domain = {
            ("rate (ct/s per module, incident source)" if k == "rate" else k): f"{fmt(a)}-{fmt(b)}"
            for k, (a, b) in d.parameters.items()
        }
        lo, hi = d.rate_range
        domain |= {
            f"mean rate of the spectra (ct/s, {d.rate_label})": f"{fmt(lo)}-{fmt(hi)}",
            "segment length (s)": fmt(d.segment_length),
            "frequency bins": f"{d.freq.size}, {fmt(d.freq[0])}-{fmt(d.freq[-1])} Hz",
            "detector": json.dumps(d.detector.get("detector", {})),
        }
    card_metrics: list[tuple[str, str]] = []
    if head is not None:
        pct = f"{100 * head['level']:g}%"
        for name, s in head["scorers"].items():
            card_metrics.append(
                (
                    f"{name}: {head['label']} [{pct} CI]",
                    fmt_interval(s["tpr_at_fpr"], s["tpr_at_fpr_low"], s["tpr_at_fpr_high"])
                    + f" on {head['rows']}"
                    + ("" if head["resolved"] else " (NOT resolved by this test set)"),
                )
            )
    else:
        for name, m in metrics["models"].items():
            t = m.get("test", {})
            key = "accuracy" if "accuracy" in t else "rmse"
            if key in t:
                value = " / ".join(fmt(v) for v in np.atleast_1d(t[key]))
                card_metrics.append((f"{name}: {key}", f"{value} on all {metrics['n_test']:,} test spectra"))
    limits = tuple(x.text for x in lessons if x.kind != "ok")
    card = ModelCard(
        title=f"{run.name}: {task} ({', '.join(names)})",
        intended_use=(
            f"{task} on averaged, log-rebinned power spectra made on exactly the training grid, from data "
            f"like the training simulations; the model with the best headline figure: {best}."
        ),
        not_for=(
            "spectra on another frequency grid, segment length or normalisation",
            "count rates outside the training range",
            "sources with features the simulator does not make (pulsations, instrumental lines, gaps)",
        ),
        training_domain=domain,
        metrics=card_metrics,
        questions=questions(metrics, record, scope, maps, applied),
        limits=limits,
        provenance={
            "dataset": record["dataset"]["path"],
            "dataset seed": str(record["dataset"]["seed"]),
            "xtml git revision": str(prov.get("git_revision", "?")),
            **{k: str(v) for k, v in versions.items()},
        },
    )
    return sections, card, lessons
