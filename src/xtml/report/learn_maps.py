"""The scope gate on a learning run's test set, and its performance maps at the headline's thresholds.

The maps are drawn for the best model and the LRT on the headline's rows, each at its headline operating
threshold, so that summed over the bins they give back the headline figures; they are written to
``performance_maps.json`` (:data:`MAPS_FILE`) with the worst bin of every variable, which the model card
quotes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.report.card import Lesson, fmt
from xtml.report.html import figure_html, table_html
from xtml.report.learn_evidence import REFERENCE, interval_cell

__all__ = ["MAPS_FILE", "PHYSICAL", "detection_maps", "parameters_of", "scope_body"]

PHYSICAL = ("rate", "qpo.rms", "qpo.nu0", "qpo.q")  # variables of the performance maps, when present
#: The performance maps of a detection run's report, with their operating thresholds and worst bins.
MAPS_FILE = "performance_maps.json"


def parameters_of(ds: Any, rows: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
    """The simulated parameters and the mean rate (``"mean_rate"``) of dataset rows ``rows``, by name."""
    params = np.asarray(ds.array("params"))
    order = np.argsort(rows)
    picked = np.empty((rows.size, params.shape[1]))
    picked[order] = params[rows[order]]
    out = {name: picked[:, k] for k, name in enumerate(ds.param_names)}
    out["mean_rate"] = np.asarray(ds.array("mean_rate"))[rows]
    return out


def scope_body(
    run: Path, ds: Any, rows: NDArray[np.int64], lessons: list[Lesson], max_points: int, seed: int
) -> tuple[str, dict[str, Any] | None]:
    """The Scope section: the run's gate applied to every test spectrum (``rows``), its flag rates and
    outliers; appends its lesson.  Returns the HTML and a summary (None without a gate)."""
    from xtml.critique.diag_plots import plot_outliers
    from xtml.critique.run_scope import learn_features, load_run_scope, score_inputs

    loaded = load_run_scope(run)
    if loaded is None:
        lessons.append(Lesson("failed", "no scope gate: predictions on unlike data are not flagged"))
        return "<p class='caveat'>This run has no scope gate (trained before xtml had one).</p>", None
    gate, held = loaded
    ps = ds.spectra(rows)
    result = score_inputs(
        gate, learn_features(np.column_stack([ps.power, ps.mean_rate])), mean_rate=ps.mean_rate
    )
    rate = result.n_out / rows.size
    held_rate = held.get("flag_rate", float("nan"))
    summary = (
        f"the scope gate flags {100 * rate:.1f}% of the {rows.size:,} test spectra it was applied to and "
        f"{100 * held_rate:.1f}% of the {held.get('n_held_out', 0):,} held-out {held.get('held_out', '')} "
        f"(its target false-flag rate is {100 * gate.alpha:g}% per statistic); both are simulated like the "
        "training set, so these are its false flags: real data get their own flag (xtml analyze)"
    )
    d = gate.domain_
    scope_rows = [
        ["principal components", gate.components_.shape[0]],
        ["target false-flag rate (alpha)", gate.alpha],
        [
            f"flagged, held-out {held.get('held_out', '')}",
            f"{100 * held_rate:.1f}% of {held.get('n_held_out')}",
        ],
        [f"flagged, all {rows.size:,} test spectra", f"{100 * rate:.1f}%"],
    ]
    if d is not None:
        scope_rows += [
            ["mean rate range (ct/s)", f"{fmt(d.rate_range[0])}-{fmt(d.rate_range[1])}"],
            ["segment length (s)", fmt(d.segment_length)],
            ["frequency grid", f"{d.freq.size} bins, {fmt(d.freq[0])}-{fmt(d.freq[-1])} Hz"],
        ]
    body = table_html(
        ["scope gate", "value"], scope_rows, caption="The scope gate and the data it was applied to."
    )
    if rate >= 0.05:
        lessons.append(
            Lesson(
                "failed", f"scope gate flags {100 * rate:.1f}% of in-distribution test spectra (target < 5%)"
            )
        )
    else:
        lessons.append(
            Lesson("ok", f"scope gate flags {100 * rate:.1f}% of in-distribution test spectra (target < 5%)")
        )
    rng = np.random.default_rng(seed)
    show = np.sort(rng.choice(rows.size, size=min(max_points, rows.size), replace=False))
    fig = plot_outliers(
        ps.freq,
        ps.power[show],
        ps.m,
        result.score[show],
        k=4,
        names=[f"test row {int(r)}" for r in rows[show]],
    )
    body += figure_html(
        fig,
        "The four test spectra the scope gate finds least like the training set, each with its gate score. "
        "Read: if these look like ordinary spectra, the gate's flags on them are false alarms; a spectrum "
        "with a feature the training set lacks is what the gate is for.",
    )
    return body, {"summary": summary, "flag_rate": rate, "n": int(rows.size), "held_out": held}


def detection_maps(
    run: Path,
    metrics: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
    params: dict[str, NDArray[np.float64]],
    y: NDArray[Any],
    names: list[str],
) -> tuple[list[str], dict[str, Any]]:
    """Performance maps at the headline's operating thresholds, on the headline's rows."""
    from xtml.critique.performance import detection_map, plot_performance_map

    h = metrics["headline"]
    best = h["best_model"]
    subset = arrays["reference/subset"]
    scores = {best: arrays[f"proba/{best}"][subset, 1]}
    if "reference/lrt" in arrays:
        scores[REFERENCE] = arrays["reference/lrt"]
    thresholds = {n: float(h["scorers"][n]["threshold"]) for n in scores}
    positive = (y == names.index("QPO") if "QPO" in names else y == 1)[subset]
    y01 = positive.astype(int)
    out: dict[str, Any] = {
        "rows": h["rows"],
        "level": 0.68,
        "label": h["label"],
        "scorers": {
            n: {
                "threshold": thresholds[n],
                "tpr_overall": float(np.mean(scores[n][positive] >= thresholds[n])),
                "n_positive": int(positive.sum()),
            }
            for n in scores
        },
        "variables": {},
        "worst": [],
    }
    body: list[str] = []
    thr_text = "; ".join(
        f"{n} detects when its {'probability' if n != REFERENCE else 'statistic'} is >= {thresholds[n]:.4g}"
        for n in scores
    )
    for var in PHYSICAL:
        key = "mean_rate" if var == "rate" else var
        if key not in params:
            continue
        values = params[key][subset]
        keep = np.isfinite(values) | ~positive
        maps: dict[str, Any] = {}
        for n, s in scores.items():
            edges = None if not maps else next(iter(maps.values())).edges
            maps[n] = detection_map(
                values[keep], y01[keep], s[keep], threshold=thresholds[n], edges=edges, variable=var
            )
        pm = maps[best]
        ref = maps.get(REFERENCE)
        ax = plot_performance_map(pm, "tpr", reference=ref, label=best, reference_label=REFERENCE)
        ax.set_ylabel("detection rate (TPR, 68% CI)")
        body.append(
            figure_html(
                ax.figure,
                f"Detection rate against {var}: the fraction of spectra with a QPO found in each bin of "
                f"{var}, on {h['rows']}, each scorer at its headline operating threshold (the one that "
                f"gives its {h['label']}: {thr_text}); bars are 68% Wilson intervals, horizontal bars the "
                "bin widths. Read: summed over the bins these give the headline figures; a bin far below "
                "them is a population the detector misses.",
            )
        )
        table_rows = []
        for j in range(pm.n_bins):
            cells: list[Any] = [
                f"{fmt(pm.edges[j])}-{fmt(pm.edges[j + 1])}",
                int(pm.n["tpr"][j]),
                interval_cell(pm.metrics["tpr"][j], pm.lower["tpr"][j], pm.upper["tpr"][j]),
            ]
            if ref is not None:
                cells.append(interval_cell(ref.metrics["tpr"][j], ref.lower["tpr"][j], ref.upper["tpr"][j]))
            table_rows.append(cells)
        header = [var, "spectra with a QPO", f"{best} TPR [68% CI]"] + (
            [f"{REFERENCE} TPR [68% CI]"] if ref is not None else []
        )
        body.append(
            table_html(
                header,
                table_rows,
                caption=f"The detection rates of the figure above, per bin of {var}.",
                numeric=True,
            )
        )
        out["variables"][var] = {n: m.to_rows() for n, m in maps.items()}
        tpr = pm.metrics["tpr"]
        if np.isfinite(tpr).any():
            j = int(np.nanargmin(tpr))
            out["worst"].append(
                {
                    "variable": var,
                    "scorer": best,
                    "low": float(pm.edges[j]),
                    "high": float(pm.edges[j + 1]),
                    "n": int(pm.n["tpr"][j]),
                    "tpr": float(tpr[j]),
                    "tpr_lower": float(pm.lower["tpr"][j]),
                    "tpr_upper": float(pm.upper["tpr"][j]),
                    "reference_tpr": None if ref is None else float(ref.metrics["tpr"][j]),
                }
            )
    (run / MAPS_FILE).write_text(json.dumps(out, indent=1))
    return body, out
