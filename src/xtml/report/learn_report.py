"""Report sections of an evaluated learning run (``xtml train`` then ``xtml evaluate``)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.report.card import Lesson, ModelCard, fmt
from xtml.report.html import Section, figure_html, table_html

__all__ = ["learn_sections"]

PHYSICAL = ("rate", "qpo.rms", "qpo.nu0", "qpo.q")  # variables of the performance maps, when present


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _test_params(ds: Any, rows: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
    params = np.asarray(ds.array("params"))
    order = np.argsort(rows)
    picked = np.empty((rows.size, params.shape[1]))
    picked[order] = params[rows[order]]
    out = {name: picked[:, k] for k, name in enumerate(ds.param_names)}
    out["mean_rate"] = np.asarray(ds.array("mean_rate"))[rows]
    return out


def _best_model(metrics: dict[str, Any]) -> str:
    rows = metrics.get("comparison", {}).get("rows", [])
    ml = [r for r in rows if r["scorer"] in metrics["models"]]
    if ml:
        return max(ml, key=lambda r: r.get("tpr_at_fpr", 0.0))["scorer"]
    return next(iter(metrics["models"]))


def _band_importance(
    run: Path,
    ds: Any,
    config: dict[str, Any],
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

    best = _best_model(metrics)
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
        f"Permutation importance of frequency bands for {best} on {pick.size} test spectra "
        f"(baseline {what} {imp.baseline:.3f}; bands permuted as a whole)",
    )


def learn_sections(
    run: Path, *, max_points: int = 2000, seed: int = 0
) -> tuple[list[Section], ModelCard, list[Lesson]]:
    """Sections, model card and lessons of an evaluated learning run."""
    import matplotlib.pyplot as plt

    from xtml.critique.diag_plots import plot_embedding, plot_outliers
    from xtml.critique.learn_plots import (
        plot_confusion,
        plot_importances,
        plot_pr,
        plot_reliability,
        plot_roc,
    )
    from xtml.critique.performance import detection_map, plot_performance_map, regression_map
    from xtml.critique.run_scope import learn_features, load_run_scope, score_inputs
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
    sections: list[Section] = []
    lessons: list[Lesson] = []

    # what was asked
    models = config["models"]
    asked = [
        f"<p>Task <b>{html.escape(task)}</b> on classes/targets {html.escape(', '.join(names))}: "
        f"{len(models)} model(s), each compared on the same held-out spectra with the classical reference "
        f"(<code>{html.escape(str(config['reference'].get('test')))}</code>).</p>",
        table_html(
            ["model", "kind", "input", "hyper-parameter search", "cross-validated"],
            [
                [n, m["kind"], m["input"], json.dumps(m.get("search", {})), m.get("cv", False)]
                for n, m in models.items()
            ],
        ),
    ]
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
    body = table_html(["item", "value"], data_rows)
    body += "<p>Package versions: " + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>"
    body += (
        "<details><summary>simulation configuration</summary>"
        + _pre(json.dumps(ds.meta["config"], indent=1))
        + "</details>"
    )
    sections.append(Section("Data and provenance", body))

    # reference vs ML
    comp = metrics.get("comparison")
    ref_body = ""
    if comp:
        hdr = [
            "scorer",
            "ROC-AUC",
            "95% CI",
            f"TPR at {100 * metrics.get('fpr_target', 0.01):g}% FPR",
            "95% CI",
            "Brier",
        ]
        table_rows = [
            [
                r["scorer"],
                fmt(r["roc_auc"]),
                f"{fmt(r['roc_auc_low'])}-{fmt(r['roc_auc_high'])}",
                fmt(r["tpr_at_fpr"]),
                f"{fmt(r['tpr_at_fpr_low'])}-{fmt(r['tpr_at_fpr_high'])}",
                fmt(r.get("brier")),
            ]
            for r in comp["rows"]
        ]
        ref_body += table_html(hdr, table_rows)
        verdict = comp["verdict"].splitlines() if isinstance(comp["verdict"], str) else comp["verdict"]
        ref_body += "<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdict) + "</ul>"
        for v in verdict:
            kind = "failed" if " is worse than " in v else ("ok" if " is better than " in v else "tie")
            lessons.append(Lesson(kind, v))
    elif "reference" in metrics and "metrics" in metrics["reference"]:
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
        ref_body += table_html(["method"] + [f"{k} (mean over targets)" for k in keys], table_rows)
    else:
        ref_body = "<p class='caveat'>No classical reference was run for this task.</p>"
    sections.append(Section("Reference vs ML", ref_body))

    # diagnostics
    figs: list[str] = []
    if task == "detect":
        subset = arrays["reference/subset"]
        scores = {k[6:]: v[subset, 1] for k, v in arrays.items() if k.startswith("proba/")}
        if "reference/lrt" in arrays:
            scores["LRT (reference)"] = arrays["reference/lrt"]
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
        plot_roc(y[subset], scores, fpr_target=metrics.get("fpr_target", 0.01), ax=axes[0])
        plot_pr(y[subset], scores, ax=axes[1])
        figs.append(
            figure_html(
                fig,
                f"ROC and precision-recall curves on the {subset.size} test spectra that the reference "
                "also scored",
            )
        )
        probs = {k[6:]: v[:, 1] for k, v in arrays.items() if k.startswith("proba/")}
        ax = plot_reliability(y, probs)
        figs.append(figure_html(ax.figure, "Reliability of the calibrated probabilities (test set)"))
    if task in ("detect", "state"):
        n_models = len(metrics["models"])
        fig, axes = plt.subplots(1, n_models, figsize=(3.6 * n_models, 3.4), squeeze=False)
        for ax, (name, m) in zip(axes[0], metrics["models"].items(), strict=True):
            plot_confusion(m["test"]["confusion_matrix"], names, title=name, ax=ax)
        figs.append(figure_html(fig, "Confusion matrices (test set, rows: true class)"))
    figs.append(
        _band_importance(run, ds, config, metrics, arrays, max_points=min(max_points, 1000), seed=seed)
    )
    importances = (
        json.loads((run / "importances.json").read_text()) if (run / "importances.json").is_file() else {}
    )
    for name, imp in list(importances.items())[:2]:
        ax = plot_importances(imp["names"], imp["values"], title=f"{name}: permutation/feature importance")
        figs.append(figure_html(ax.figure, f"Feature importance of {name}"))

    # scope on the test set, embeddings and outliers
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
    figs.append(figure_html(fig, f"Embeddings of {show.size} test spectra"))
    scope_body = ""
    loaded = load_run_scope(run)
    if loaded is None:
        scope_body = "<p class='caveat'>This run has no scope gate (trained before xtml had one).</p>"
        lessons.append(Lesson("failed", "no scope gate: predictions on unlike data are not flagged"))
    else:
        gate, held = loaded
        X = np.column_stack([ps.power, ps.mean_rate])
        result = score_inputs(gate, learn_features(X), mean_rate=ps.mean_rate)
        rate_out = result.n_out / show.size
        d = gate.domain_
        scope_rows = [
            ["principal components", gate.components_.shape[0]],
            ["target false-flag rate (alpha)", gate.alpha],
            [
                f"flagged, held-out {held.get('held_out', '')}",
                f"{100 * held.get('flag_rate', float('nan')):.1f}% of {held.get('n_held_out')}",
            ],
            [f"flagged, {show.size} test spectra", f"{100 * rate_out:.1f}%"],
        ]
        if d is not None:
            scope_rows += [
                ["mean rate range (ct/s)", f"{fmt(d.rate_range[0])}-{fmt(d.rate_range[1])}"],
                ["segment length (s)", fmt(d.segment_length)],
                ["frequency grid", f"{d.freq.size} bins, {fmt(d.freq[0])}-{fmt(d.freq[-1])} Hz"],
            ]
        scope_body = table_html(["scope gate", "value"], scope_rows)
        lessons.append(
            Lesson(
                "ok" if rate_out < 0.05 else "failed",
                f"scope gate flags {100 * rate_out:.1f}% of in-distribution test spectra (target < 5%)",
            )
        )
        fig = plot_outliers(
            ps.freq, ps.power, ps.m, result.score, k=4, names=[f"test row {int(r)}" for r in rows[show]]
        )
        scope_body += figure_html(
            fig, "The four test spectra the scope gate finds least like the training set"
        )
    sections.append(Section("Diagnostics", "\n".join(figs)))
    sections.append(Section("Scope", scope_body))

    # performance maps
    params = _test_params(ds, rows)
    pm_body: list[str] = []
    best = _best_model(metrics)
    if task == "detect":
        score = arrays[f"proba/{best}"][:, 1]
        positive = y == names.index("QPO") if "QPO" in names else y == 1
        y01 = positive.astype(int)
        for var in PHYSICAL:
            key = "mean_rate" if var == "rate" else var
            if key not in params:
                continue
            values = params[key]
            ok = np.isfinite(values) | ~positive
            pmap = detection_map(
                values[ok], y01[ok], score[ok], fpr_target=metrics.get("fpr_target", 0.01), variable=var
            )
            ref_map = None
            if "reference/lrt" in arrays:
                sub = arrays["reference/subset"]
                vv, yy = values[sub], y01[sub]
                keep = np.isfinite(vv) | (yy == 0)
                ref_map = detection_map(
                    vv[keep],
                    yy[keep],
                    arrays["reference/lrt"][keep],
                    fpr_target=metrics.get("fpr_target", 0.01),
                    edges=pmap.edges,
                    variable=var,
                )
            ax = plot_performance_map(
                pmap, "tpr", reference=ref_map, label=best, reference_label="LRT (reference)"
            )
            pm_body.append(
                figure_html(
                    ax.figure,
                    f"Detection rate of {best} against {var}, one global threshold at the target "
                    "false-positive rate",
                )
            )
            pm_body.append(
                table_html(
                    ["bin", "n", "TPR", "lower", "upper"],
                    [
                        [
                            f"{fmt(pmap.edges[i])}-{fmt(pmap.edges[i + 1])}",
                            int(pmap.count[i]),
                            fmt(pmap.metrics["tpr"][i]),
                            fmt(pmap.lower["tpr"][i]),
                            fmt(pmap.upper["tpr"][i]),
                        ]
                        for i in range(pmap.n_bins)
                    ],
                )
            )
    elif task == "regress":
        truth = y.reshape(len(y), -1)
        mean, std = arrays[f"pred/{best}"], arrays[f"std/{best}"]
        rate = params["mean_rate"]
        for j, target in enumerate(names):
            pmap = regression_map(rate, truth[:, j], mean[:, j], std[:, j], variable="mean rate (ct/s)")
            ax = plot_performance_map(pmap, "rmse", label=best)
            pm_body.append(figure_html(ax.figure, f"RMSE of {best} for {target} against the mean count rate"))
    else:
        pm_body.append("<p>Performance maps are drawn for detection and regression tasks.</p>")
    sections.append(Section("Performance maps", "\n".join(pm_body)))

    # model card
    d = loaded[0].domain_ if loaded is not None else None
    domain = {}
    if d is not None:
        domain = {k: f"{fmt(a)}-{fmt(b)}" for k, (a, b) in d.parameters.items()}
        domain |= {
            "mean rate (ct/s)": f"{fmt(d.rate_range[0])}-{fmt(d.rate_range[1])}",
            "segment length (s)": fmt(d.segment_length),
            "frequency bins": f"{d.freq.size}, {fmt(d.freq[0])}-{fmt(d.freq[-1])} Hz",
            "detector": json.dumps(d.detector.get("detector", {})),
        }
    card_metrics: list[tuple[str, str]] = []
    for r in (comp or {}).get("rows", []):
        card_metrics.append(
            (
                f"{r['scorer']}: TPR at {100 * metrics.get('fpr_target', 0.01):g}% FPR",
                f"{fmt(r['tpr_at_fpr'])} ({fmt(r['tpr_at_fpr_low'])}-{fmt(r['tpr_at_fpr_high'])})",
            )
        )
    limits = tuple(x.text for x in lessons if x.kind != "ok")
    card = ModelCard(
        title=f"{run.name}: {task} ({', '.join(names)})",
        intended_use=(
            f"{task} on averaged, log-rebinned power spectra made on exactly the training grid, from data "
            f"like the training simulations; best model here: {best}."
        ),
        not_for=(
            "spectra on another frequency grid, segment length or normalisation",
            "count rates outside the training range",
            "sources with features the simulator does not make (pulsations, instrumental lines, gaps)",
        ),
        training_domain=domain,
        metrics=card_metrics,
        limits=limits,
        provenance={
            "dataset": record["dataset"]["path"],
            "dataset seed": str(record["dataset"]["seed"]),
            "xtml git revision": str(prov.get("git_revision", "?")),
            **{k: str(v) for k, v in versions.items()},
        },
    )
    return sections, card, lessons
