"""Report sections of an SBI run (``xtml sbi train``), with the classical comparison when it was made."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtml.report.card import CAUTION_QUESTIONS, Lesson, ModelCard, fmt, scope_answer
from xtml.report.html import Section, figure_html, panel_html, table_html

__all__ = ["sbi_sections"]

MAP_PARAMETERS = ("qpo.rms", "qpo.nu0")  # parameters whose coverage is mapped against the rate and themselves


def _bin(rate_bin: Any) -> str:
    """A rate bin of a comparison row as text."""
    if isinstance(rate_bin, str):
        return rate_bin
    return f"{fmt(rate_bin[0])}-{fmt(rate_bin[1])} ct/s"


def _classical(run: Path) -> dict[str, Any] | None:
    """The classical comparison of ``evals/eval_sbi.py`` (eval.json), if it was run on this run."""
    path = run / "eval.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("classical")


def sbi_sections(
    run: Path,
    *,
    max_points: int = 2000,
    seed: int = 0,
    applied: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[Section], ModelCard, list[Lesson]]:
    """Sections, model card and lessons of an SBI run; ``applied`` as in
    :func:`~xtml.report.learn_report.learn_sections`."""
    import matplotlib.pyplot as plt

    from xtml.critique.diag_plots import plot_coverage, plot_embedding, plot_outliers, plot_sbc_ranks
    from xtml.critique.performance import plot_performance_map, posterior_map
    from xtml.critique.run_scope import load_run_scope
    from xtml.data import open_dataset
    from xtml.sbi.inputs import InputSpec, dataset_inputs

    config = json.loads((run / "config.json").read_text())
    cal = json.loads((run / "calibration.json").read_text())
    record = json.loads((run / "sbi.json").read_text()) if (run / "sbi.json").is_file() else {}
    with np.load(run / "test_posteriors.npz", allow_pickle=False) as f:
        tp = {k: f[k] for k in f.files}
    names = [str(n) for n in tp["names"]]
    sbi = config["sbi"]
    sections: list[Section] = []
    lessons: list[Lesson] = []

    det = config.get("detector", {})
    asked = (
        f"<p>Neural posterior estimation of {html.escape(', '.join(names))} for the class "
        f"<b>{html.escape(sbi['class'])}</b>, from the inputs "
        f"{html.escape(', '.join(sbi['channels'] + sbi['scalars']))}; "
        f"trained on {record.get('n_train', sbi['n_train'])} simulations, checked on "
        f"{record.get('n_test', sbi['n_test'])} held-out ones"
        + (
            f", after a recalibration of its base on {cal['recalibration']['n']} other held-out simulations "
            f"({html.escape(str(cal['recalibration'].get('covariance', 'diagonal')))} covariance; "
            "fitted on them, judged on the test set)"
            if cal.get("recalibration")
            else ""
        )
        + ".</p>"
        f"<p>Detector: <code>{html.escape(json.dumps(det))}</code></p>"
        f"<p>Network: <code>{html.escape(json.dumps(config.get('npe', {})))}</code></p>"
    )
    sections.append(Section("What was asked", asked))

    versions = record.get("versions", {})
    prov_rows = [
        ["training set", record.get("datasets", {}).get("train", "train.zarr")],
        ["test set", record.get("datasets", {}).get("test", "test.zarr")],
        ["recalibration set", record.get("datasets", {}).get("calibration", "none")],
        ["dataset seed", config.get("dataset", {}).get("seed", "?")],
        ["training time (s)", fmt(cal["seconds"]["train"])],
        ["platform", record.get("platform", "?")],
    ]
    body = table_html(["item", "value"], prov_rows)
    body += "<p>Package versions: " + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>"
    body += (
        "<details><summary>scenario configuration</summary><pre>"
        + html.escape(json.dumps(config, indent=1))
        + "</pre></details>"
    )
    sections.append(Section("Data and provenance", body))

    # reference vs SBI
    classical = _classical(run)
    ref_body = ""
    if classical is not None:
        rows = classical["rows"]
        ref_body += (
            f"<p>The first {classical['n']} test observations, analysed by every method "
            "(evals/eval_sbi.py).</p>"
        )
        hdr = [
            "method",
            "parameter",
            "rate bin (ct/s)",
            "n",
            "failed fits",
            "fractional bias",
            "RMSE",
            "68% cov.",
            "95% cov.",
            "s/obs",
        ]
        ref_body += table_html(
            hdr,
            [
                [
                    r["method"],
                    r["parameter"],
                    _bin(r["rate_bin"]),
                    r["n"],
                    r.get("n_not_ok", 0),
                    fmt(r["frac_bias"]),
                    fmt(r["rmse"]),
                    fmt(r["coverage68"]),
                    fmt(r["coverage95"]),
                    fmt(r["seconds"]),
                ]
                for r in rows
                if r["parameter"] in MAP_PARAMETERS
            ],
        )
        by = {}
        for r in rows:
            by.setdefault((r["parameter"], _bin(r["rate_bin"])), {})[r["method"]] = r
        for (param, rbin), methods in by.items():
            if "sbi" not in methods or param not in MAP_PARAMETERS:
                continue
            s_bias = abs(methods["sbi"]["frac_bias"])
            for other, r in methods.items():
                if other == "sbi" or r["frac_bias"] is None:
                    continue
                if abs(r["frac_bias"]) <= s_bias:
                    lessons.append(
                        Lesson(
                            "tie",
                            f"{param}, rates {rbin}: {other} has fractional bias {fmt(r['frac_bias'])}, "
                            f"no worse than SBI's {fmt(methods['sbi']['frac_bias'])}",
                        )
                    )
    else:
        ref_body += (
            "<p class='caveat'>The classical comparison (naive Whittle, Zhang- and FAD-corrected fits, "
            "MCMC) was not run on this run; <code>python evals/eval_sbi.py SCENARIO</code> makes it. "
            "Below: SBI alone.</p>"
        )
    acc = cal.get("accuracy", [])
    ref_body += "<h3>SBI accuracy on the full test set</h3>" + table_html(
        [
            "parameter",
            "rate bin",
            "n",
            "bias",
            "fractional bias",
            "RMSE",
            "68% width",
            "68% cov.",
            "95% cov.",
        ],
        [
            [
                a["parameter"],
                _bin(a["rate_bin"]),
                a["n"],
                fmt(a["bias"]),
                fmt(a["frac_bias"]),
                fmt(a["rmse"]),
                fmt(a.get("width68", 2 * a.get("mean_std", float("nan")))),
                fmt(a["coverage68"]),
                fmt(a["coverage95"]),
            ]
            for a in acc
        ],
    )
    sections.append(Section("Reference vs ML", ref_body))

    # calibration
    cov_rows = [[n] + [fmt(v) for v in cal["coverage"][n]] + [fmt(cal["sbc_ks_pvalue"][n])] for n in names]
    if cal.get("coverage_joint_hpd"):
        cov_rows.append(["joint (HPD)"] + [fmt(v) for v in cal["coverage_joint_hpd"]] + ["-"])
    cal_body = (
        f"<p>Verdict: <b>{html.escape(cal['status'].upper())}</b>"
        + (
            " — usable: the credible regions cover at least their level, but are wider than needed ("
            + html.escape(
                ", ".join(
                    f"{'joint region' if k == 'joint HPD' else k} by ~{100 * w:.0f}%"
                    for k, w in cal.get("wider_by", {}).items()
                    if w > 0.005
                )
            )
            + ")"
            if cal["status"] == "conservative"
            else ""
        )
        + "</p>"
        + (
            "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in cal["reasons"]) + "</ul>"
            if cal["reasons"]
            else ""
        )
        + (
            "<p class='caveat'>" + "<br>".join(html.escape(n) for n in cal.get("notes", [])) + "</p>"
            if cal.get("notes")
            else ""
        )
        + table_html(
            ["parameter"] + [f"coverage at {int(100 * lv)}%" for lv in cal["levels"]] + ["SBC KS p"], cov_rows
        )
        + f"<p>TARP: KS p = {fmt(cal['tarp'].get('ks_pvalue'))}, "
        f"max distance {fmt(cal['tarp'].get('max_distance'))}</p>"
    )
    for r in cal["reasons"]:
        lessons.append(Lesson("failed", f"calibration: {r}"))
    tol = cal["thresholds"].get("coverage_tolerance", 0.02)
    for n in names:
        dev = max(abs(c - lv) for c, lv in zip(cal["coverage"][n], cal["levels"], strict=True))
        lessons.append(
            Lesson(
                "ok" if dev <= tol else "failed",
                f"{n}: marginal coverage off nominal by at most {100 * dev:.2f} pp (target "
                f"{100 * tol:g} pp) on {cal['n_test']} test observations",
            )
        )
        p = cal["sbc_ks_pvalue"][n]
        if p < cal["thresholds"].get("sbc_alpha", 0.01):
            lessons.append(Lesson("failed", f"{n}: SBC ranks not uniform (KS p = {fmt(p)})"))
    if "coverage" in tp:
        ax = plot_coverage(
            tp["coverage_levels"],
            {n: tp["coverage"][:, k] for k, n in enumerate(names)},
            n_test=int(tp["truths"].shape[0]),
        )
        cal_body += figure_html(
            ax.figure,
            f"Expected coverage: the fraction of the {cal['n_test']:,} held-out simulations whose true value "
            "lies in the posterior's credible interval, against the interval's credibility (band: 95% "
            "binomial scatter). Read: on the diagonal the intervals mean what they say; below it the "
            "posterior is overconfident (too narrow), above it too cautious.",
        )
    else:
        ax = plot_coverage(
            np.array(cal["levels"]), {n: np.array(cal["coverage"][n]) for n in names}, n_test=cal["n_test"]
        )
        cal_body += figure_html(
            ax.figure,
            "Expected coverage at 50/68/95% credibility (this run stored no finer curve). Read: on the "
            "diagonal the intervals mean what they say; below it the posterior is overconfident.",
        )
    if "sbc_ranks" in tp:
        fig = plot_sbc_ranks(tp["sbc_ranks"], int(tp["n_samples"]), names=names)
        cal_body += figure_html(
            fig,
            "Simulation-based calibration: histograms of the rank of each true value among posterior draws "
            "(band: 99% of a uniform histogram). Read: flat is calibrated; a U shape is an overconfident "
            "posterior, a hump an underconfident one, a slope a bias.",
        )
    else:
        cal_body += (
            "<p class='caveat'>This run stored no SBC ranks (trained before the report existed): "
            "histogram not drawn.</p>"
        )
    sections.append(Section("Calibration", cal_body))

    # diagnostics: inputs, scope, a corner plot
    spec = InputSpec.from_dict(json.loads((run / "posterior" / "inputs.json").read_text()))
    test_ds = open_dataset(run / "test.zarr")
    labels = np.asarray(test_ds.array("labels"))
    rows = np.flatnonzero(labels == test_ds.class_names.index(sbi["class"]))
    rng = np.random.default_rng(seed)
    show = np.sort(rng.choice(rows.size, size=min(max_points, rows.size), replace=False))
    x = dataset_inputs(test_ds, spec, rows[show])
    diag = []
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4))
    plot_embedding(
        x,
        color=np.log10(tp["rates"][show]),
        color_name="log10 incident rate",
        method="pca",
        ax=axes[0],
        random_state=seed,
    )
    k_rms = names.index("qpo.rms") if "qpo.rms" in names else 0
    plot_embedding(
        x,
        color=tp["truths"][show, k_rms],
        color_name=names[k_rms],
        method="tsne",
        ax=axes[1],
        random_state=seed,
        max_points=min(max_points, 1500),
    )
    diag.append(
        figure_html(
            fig,
            f"Two-dimensional embeddings of the inputs of {show.size:,} test observations: PCA coloured by "
            "the incident rate (left), t-SNE coloured by a parameter (right). Read: a smooth colour gradient "
            "means the inputs carry that quantity; mixed colours mean they hardly do.",
        )
    )
    corner = _corner(run, x[:1], tp["truths"][show[0]], names, seed)
    if corner is not None:
        diag.append(corner)
    scope_body = ""
    loaded = load_run_scope(run)
    if loaded is None:
        scope_body = "<p class='caveat'>This run has no scope gate (trained before xtml had one).</p>"
        lessons.append(
            Lesson("failed", "no scope gate: observations unlike the training data are not flagged")
        )
    else:
        gate, held = loaded
        result = gate.score(x)
        flagged = result.n_out / show.size
        scope_body += table_html(
            ["scope gate", "value"],
            [
                ["principal components", gate.components_.shape[0]],
                ["target false-flag rate", gate.alpha],
                [
                    f"flagged, held-out {held.get('held_out', '')}",
                    f"{100 * held.get('flag_rate', float('nan')):.1f}% of {held.get('n_held_out')}",
                ],
                [
                    "training mean rate of the spectra (ct/s"
                    + ("" if gate.domain_ is None else f", {gate.domain_.rate_label}")
                    + ")",
                    "-"
                    if gate.domain_ is None
                    else f"{fmt(gate.domain_.rate_range[0])}-{fmt(gate.domain_.rate_range[1])}",
                ],
            ],
        )
        lessons.append(
            Lesson(
                "ok" if flagged < 0.05 else "failed",
                f"scope gate flags {100 * flagged:.1f}% of in-distribution test observations (target < 5%)",
            )
        )
        ps = test_ds.spectra(rows[show])
        fig = plot_outliers(
            ps.freq, ps.power, ps.m, result.score, k=4, names=[f"test row {int(r)}" for r in rows[show]]
        )
        scope_body += figure_html(
            fig,
            "The four test spectra the scope gate finds least like the training set, with their scores. "
            "Read: ordinary-looking spectra here are the gate's false alarms; a feature the training set "
            "lacks is what the gate is for.",
        )
    sections.append(Section("Diagnostics", "\n".join(diag)))
    sections.append(Section("Scope", scope_body))
    if loaded is None:
        scope_text = "this run has no scope gate: observations unlike the training data are not flagged"
    else:
        scope_text = (
            f"the scope gate flags {100 * flagged:.1f}% of the {show.size:,} test observations it was "
            f"applied to and {100 * held.get('flag_rate', float('nan')):.1f}% of the "
            f"{held.get('n_held_out', 0):,} "
            f"held-out {held.get('held_out', '')} (target false-flag rate {100 * gate.alpha:g}% per "
            "statistic); both are simulated like the training set, so these are its false flags: real data "
            "get their own flag (xtml sbi infer, xtml analyze)"
        )

    # performance maps from the stored quantiles
    pm = []
    worst_bins: list[str] = []
    maps = posterior_map(
        tp["rates"],
        tp["truths"],
        tp["quantiles"],
        tp["quantile_levels"],
        names=names,
        variable="incident rate (ct/s)",
    )
    for p in MAP_PARAMETERS:
        if p not in maps:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
        plot_performance_map(maps[p], "coverage_68", ax=axes[0], label=p)
        plot_performance_map(maps[p], "rel_bias", ax=axes[1], label=p)
        pm.append(
            figure_html(
                fig,
                f"{p}: 68% coverage (left) and relative bias of the posterior median (right) per bin of the "
                "incident rate, on the held-out simulations (68% intervals). Read: coverage should sit at "
                "the dotted 0.68 and the bias at 0 in every bin; a bin far off is a rate where the "
                "posterior cannot be trusted.",
            )
        )
        k = names.index(p)
        own = posterior_map(
            tp["truths"][:, k],
            tp["truths"],
            tp["quantiles"],
            tp["quantile_levels"],
            names=names,
            variable=f"true {p}",
        )
        ax = plot_performance_map(own[p], "coverage_68", label=p)
        pm.append(
            figure_html(
                ax.figure,
                f"{p}: 68% coverage per bin of its own true value (68% intervals). Read: coverage below the "
                "dotted 0.68 at the edges of the prior means the posterior is overconfident there.",
            )
        )
        worst = np.nanmax(np.abs(maps[p].metrics["coverage_68"] - 0.68))
        j = int(np.nanargmax(np.abs(maps[p].metrics["coverage_68"] - 0.68)))
        worst_bins.append(
            f"{p}: 68% coverage {fmt(maps[p].metrics['coverage_68'][j])} at incident rates "
            f"{fmt(maps[p].edges[j])}-{fmt(maps[p].edges[j + 1])} ct/s ({int(maps[p].count[j])} observations)"
        )
        if worst > 0.1:
            lessons.append(
                Lesson("failed", f"{p}: 68% coverage off by {100 * worst:.0f} pp in the worst rate bin")
            )
    sections.append(Section("Performance maps", "\n".join(pm)))

    d = loaded[0].domain_ if loaded is not None else None
    domain = {} if d is None else {k: f"{fmt(a)}-{fmt(b)}" for k, (a, b) in d.parameters.items()}
    if d is not None:
        domain |= {
            "mean rate (ct/s)": f"{fmt(d.rate_range[0])}-{fmt(d.rate_range[1])}",
            "segment length (s)": fmt(d.segment_length),
            "frequency bins": f"{d.freq.size}, {fmt(d.freq[0])}-{fmt(d.freq[-1])} Hz",
        }
    domain["detector"] = json.dumps(det)
    dev = max(abs(c - lv) for n in names for c, lv in zip(cal["coverage"][n], cal["levels"], strict=True))
    overall = [a for a in acc if a["rate_bin"] == "all"]
    answer = (
        f"calibration {cal['status'].upper()}: marginal coverage within {100 * dev:.1f} pp of nominal at "
        f"{', '.join(f'{100 * lv:g}%' for lv in cal['levels'])} on {cal['n_test']:,} held-out simulations; "
        + "; ".join(
            f"{a['parameter']}: RMSE {fmt(a['rmse'])}, 68% coverage {fmt(a['coverage68'])}" for a in overall
        )
    )
    reference_text = (
        f"the classical fits (naive, dead-time-aware, MCMC) on the first {classical['n']} test observations: "
        "see 'Reference vs ML'"
        if classical is not None
        else "the classical comparison (naive and dead-time-aware fits, MCMC) was not run on this run: "
        "evals/eval_sbi.py makes it; until then nothing here shows the posterior beats a fit"
    )
    panel = [
        (
            "What was asked",
            f"The posterior of {', '.join(names)} for one observation of the class '{sbi['class']}', by "
            f"neural posterior estimation from {record.get('n_train', sbi['n_train']):,} simulations.",
        ),
        ("The answer", answer + "."),
        ("ML against the reference", reference_text[:1].upper() + reference_text[1:] + "."),
        (
            "Calibration",
            f"{cal['status'].upper()}"
            + (": " + "; ".join(cal["reasons"]) if cal["reasons"] else ": every check passed")
            + ".",
        ),
        ("Scope", scope_text[:1].upper() + scope_text[1:] + "."),
    ]
    sections.insert(0, Section("Headline", panel_html(panel)))
    questions = (
        (
            "Not answered by this run alone: "
            + reference_text
            + ". Where a dead-time-aware fit is as accurate and as well calibrated, use it."
        ),
        (
            f"No learning curve is computed for SBI runs; with {record.get('n_train', sbi['n_train']):,} "
            f"training simulations the calibration check reads {cal['status'].upper()}."
        ),
        scope_answer(None if loaded is None else scope_text, applied),
        (
            "Where the posterior is off matters for any population built from it; the worst bins of the "
            "performance maps: " + "; ".join(worst_bins) + "."
            if worst_bins
            else "Not answered: no performance map was drawn."
        ),
    )
    card = ModelCard(
        title=f"{run.name}: neural posterior of {', '.join(names)}",
        intended_use=(
            f"Posterior of {', '.join(names)} for one observation of the class '{sbi['class']}' made on the "
            f"training grid (segments of {fmt(spec.segment_length)} s, {spec.n_freq} bins), by a detector "
            "like the simulated one."
        ),
        not_for=(
            "a detector with other dead time or pile-up settings",
            "spectra on another grid or another number of segments",
            "sources outside the prior ranges below",
        ),
        training_domain=domain,
        metrics=[
            (
                f"{a['parameter']} (all rates): 68% / 95% coverage",
                f"{fmt(a['coverage68'])} / {fmt(a['coverage95'])}",
            )
            for a in acc
            if a["rate_bin"] == "all"
        ]
        + [("calibration verdict", cal["status"])],
        questions=list(zip(CAUTION_QUESTIONS, questions, strict=True)),
        limits=tuple(x.text for x in lessons if x.kind != "ok"),
        provenance={
            "dataset seed": str(config.get("dataset", {}).get("seed", "?")),
            **{k: str(v) for k, v in versions.items()},
        },
    )
    return sections, card, lessons


def _corner(run: Path, x: np.ndarray, truth: np.ndarray, names: list[str], seed: int) -> str | None:
    """Corner plot of one test observation (needs torch; None without it)."""
    try:
        from xtml.sbi.run import load_run_posterior
    except ImportError:  # pragma: no cover - optional dependency
        return None
    from xtml.critique.diag_plots import plot_posterior_corner

    post = load_run_posterior(run, allow_uncalibrated=True).posterior
    samples = post.sample(x, 5000, rng=seed)[0]
    fig = plot_posterior_corner(samples, names, truths=truth)
    return figure_html(
        fig,
        "The posterior of one test observation (5,000 draws): one- and two-dimensional marginals, the true "
        "values marked. Read: the truth should sit inside the bulk; correlated parameters show as tilted "
        "contours.",
    )
