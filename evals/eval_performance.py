"""Performance maps of a QPO detector (issue 7): where it works, where it fails, and whether the scope gate
notices when the detector or the exposure differ from the training data.

Data: simulated NuSTAR-like observations (two modules, non-paralyzable dead time 2.5 ms per module), two
classes, "qpo" (broad zero-centred Lorentzian + QPO of rms 1-15 %, centroid 2-30 Hz, Q 3-20) and "noise"
(the broad component alone); incident rates 100-2,000 ct/s per module; four 16 s segments at 1/256 s,
log-rebinned by 3 % (140 bins, 0.0625-126.4 Hz). A training set of ``XTML_EVAL_N_TRAIN`` spectra (default
6,000, seed 11) and six test sets of ``XTML_EVAL_N_TEST`` (default 4,000, seed 12: the same sources in
each): the main one (2.5 ms, 4 segments), dead times of 0, 1 and 5 ms, and 2 and 8 segments.

Model: ``HistGradientBoostingClassifier(max_iter=500, learning_rate=0.05, early_stopping=False)`` (its
defaults stop after 37 trees) on the log of the Leahy powers (floored at 1e-6) and the log of the measured
rate. The threshold is set at 1 % FPR on the main test set's QPO-free spectra and kept fixed.

Output (``evals/out/performance`` or ``XTML_EVAL_DIR``): ``eval.md`` (the Markdown printed), ``eval.json``
(settings, maps as rows, timings, which stores were reused, the scope gate's flag rates) and 12 PNGs.
Stores already in ``DIR/data`` are reused: :func:`xtml.data.simulate_dataset` checks that they hold
exactly the configuration below and only simulates what is missing.

    OMP_WAIT_POLICY=PASSIVE python evals/eval_performance.py
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from xtml.critique.performance import (
    PerformanceMap,
    detection_map,
    plot_performance_map,
    regression_map,
    shift_test,
)
from xtml.critique.run_scope import score_inputs
from xtml.critique.scope import ScopeGate, ScopeResult, TrainingDomain
from xtml.data import SimDataset, SimulationConfig, open_dataset, simulate_dataset
from xtml.learn.inputs import SpectralGrid, spectra_to_X
from xtml.learn.metrics import binary_metrics

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("XTML_EVAL_DIR", str(ROOT / "evals" / "out" / "performance")))
N_TRAIN = int(os.environ.get("XTML_EVAL_N_TRAIN", "6000"))
N_TEST = int(os.environ.get("XTML_EVAL_N_TEST", "4000"))
TRAIN_SEED, TEST_SEED, SHIFT_SEED = 11, 12, 13
FPR_TARGET = 0.01
SEGMENT_LENGTH = 16.0  # s: 4096 bins of 1/256 s
GATE_ALPHA = 0.01
POWER_FLOOR = 1e-6
MAIN_DEAD_TIME_MS, MAIN_SEGMENTS = 2.5, 4
DEAD_TIMES_MS = (0.0, 1.0, 2.5, 5.0)
SEGMENTS = (2, 4, 8)
SHIFT_RANGE = (100.0, 400.0)  # incident rate per module of the narrow shift-test training set, ct/s
SHIFT_HOLDOUT = 0.3  # fraction of the in-range rows the narrow model does not see
RATE_EDGES = (100.0, 200.0, 400.0, 700.0, 1200.0, 2000.0)
RMS_EDGES = (0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.11, 0.15)
NU0_EDGES = (2.0, 3.0, 4.5, 7.0, 10.0, 15.0, 20.0, 30.0)
Q_EDGES = (3.0, 4.0, 5.5, 7.5, 10.0, 14.0, 20.0)
NSIGMA_INNER_EDGES = (0.3, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)  # the outer edges are the extremes of the data
RMS_LABEL = "QPO rms (fractional)"
RATE_LABEL = "incident rate per module [ct/s]"
BOOSTING = {"max_iter": 500, "learning_rate": 0.05, "early_stopping": False, "random_state": 0}

_BROAD = {
    "broad.nu_max": {"dist": "loguniform", "low": 0.5, "high": 10.0},
    "broad.rms": {"dist": "uniform", "low": 0.05, "high": 0.3},
}
BASE_CONFIG: dict[str, Any] = {
    "observation": {
        "dt": 1 / 256,
        "segment_bins": round(SEGMENT_LENGTH * 256),
        "n_segments": MAIN_SEGMENTS,
        "fad": False,
        "red_noise_factor": 2,
        "alias_factor": 2,
        "norm": "leahy",
        "rebin_linear": 1,
        "rebin_log": 0.03,
    },
    "rate": {"dist": "loguniform", "low": 100.0, "high": 2000.0},
    "classes": {
        "qpo": {
            "weight": 1.0,
            "components": {"broad": "zero_lorentzian", "qpo": "lorentzian"},
            "priors": {
                **_BROAD,
                "qpo.nu0": {"dist": "loguniform", "low": 2.0, "high": 30.0},
                "qpo.q": {"dist": "loguniform", "low": 3.0, "high": 20.0},
                "qpo.rms": {"dist": "uniform", "low": 0.01, "high": 0.15},
            },
        },
        "noise": {"weight": 1.0, "components": {"broad": "zero_lorentzian"}, "priors": _BROAD},
    },
    "detector": {"n_modules": 2, "background_rate": 0.0},
    "dataset": {
        "seed": TEST_SEED,
        "chunk_size": 500,
        "store_lightcurves": False,
        "power_dtype": "float32",
        "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
        "spectra_per_observation": 1,
    },
}

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------- data


def simulation_config(dead_time_ms: float, n_segments: int, seed: int) -> SimulationConfig:
    """The configuration of one data set: ``BASE_CONFIG`` with a dead time, a segment count and a seed."""
    raw = copy.deepcopy(BASE_CONFIG)
    raw["observation"]["n_segments"] = n_segments
    raw["dataset"]["seed"] = seed
    if dead_time_ms > 0:  # an ideal detector has no [detector.dead_time] table at all
        raw["detector"]["dead_time"] = {"value": dead_time_ms * 1e-3, "kind": "nonparalyzable", "sigma": 0.0}
    return SimulationConfig.from_dict(raw)


def exposure_label(n_segments: int) -> str:
    """Row label of an exposure, e.g. ``4 x 16 s = 64 s``."""
    return f"{n_segments} x {SEGMENT_LENGTH:g} s = {n_segments * SEGMENT_LENGTH:g} s"


def test_name(dead_time_ms: float, n_segments: int) -> str:
    """Store name of a test set, e.g. ``test_2.5ms_4seg``."""
    return f"test_{dead_time_ms:g}ms_{n_segments}seg"


def _is_complete(path: Path) -> bool:
    try:
        open_dataset(path)
    except ValueError:  # missing, or incomplete (IncompleteDatasetError is a ValueError)
        return False
    return True


@dataclass(frozen=True)
class Sample:
    """One data set as the detector sees it, with the truths the maps are binned by.

    Attributes
    ----------
    X : ndarray, shape (n, n_freq + 1)
        Features: log Leahy powers (floored at ``POWER_FLOOR``), then the log measured rate.
    y : ndarray of int, shape (n,)
        1 = QPO present.
    params : dict of str to ndarray, shape (n,)
        True parameters (NaN where a class has none, e.g. ``qpo.rms`` of a QPO-free spectrum).
    measured_rate : ndarray, shape (n,)
        Measured mean count rate, ct/s, both modules together (after dead time).
    grid : SpectralGrid
        Frequency grid of the powers.
    exposure : float
        Segments x segment length, s.
    """

    X: FloatArray
    y: NDArray[np.int64]
    params: dict[str, FloatArray]
    measured_rate: FloatArray
    grid: SpectralGrid
    exposure: float

    @property
    def incident_rate(self) -> FloatArray:
        """Incident rate per module, ct/s (the simulation's ``rate`` parameter)."""
        return self.params["rate"]


def load_sample(ds: SimDataset) -> Sample:
    """Features, labels and truths of a stored data set."""
    raw, grid = spectra_to_X(ds.spectra())
    X = np.column_stack([np.log(np.maximum(raw[:, :-1], POWER_FLOOR)), np.log(raw[:, -1])])
    params = ds.array("params")
    o = ds.config.observation
    return Sample(
        X=X,
        y=(ds.array("labels") == ds.class_names.index("qpo")).astype(np.int64),
        params={name: params[:, k] for k, name in enumerate(ds.param_names)},
        measured_rate=raw[:, -1],
        grid=grid,
        exposure=o.n_segments * o.segment_length,
    )


def poisson_nsigma(s: Sample) -> FloatArray:
    """Poisson-limited significance of the QPO (NaN for QPO-free rows).

    .. math::

        n_\\sigma = \\tfrac12\\, r_m\\, r_{\\rm rec}^2 \\sqrt{T / (\\nu_0 / Q)}, \\qquad
        r_{\\rm rec} = r_{\\rm QPO}\\, \\frac{r_m / 2}{r_{\\rm in}},

    with :math:`r_m` the measured rate of both modules, :math:`r_{\\rm in}` the incident rate per
    module (so that :math:`(r_m/2)/r_{\\rm in}` is the live fraction), :math:`T` the exposure and
    :math:`\\nu_0/Q` the QPO width.
    """
    p = s.params
    recorded_rms = p["qpo.rms"] * (0.5 * s.measured_rate) / p["rate"]
    return 0.5 * s.measured_rate * recorded_rms**2 * np.sqrt(s.exposure / (p["qpo.nu0"] / p["qpo.q"]))


# --------------------------------------------------------------------------------------------- tables


def pct(x: float) -> str:
    """A fraction as a percentage with three significant digits (no unit)."""
    return f"{100 * x:.3g}"


def pct_ci(pm: PerformanceMap, metric: str, j: int) -> str:
    """``value % [lower, upper]`` of bin ``j`` of a map."""
    return f"{pct(pm.metrics[metric][j])} % [{pct(pm.lower[metric][j])}, {pct(pm.upper[metric][j])}]"


def only(pm: PerformanceMap, metrics: tuple[str, ...]) -> PerformanceMap:
    """The map restricted to some metrics (for a table without columns that are undefined everywhere)."""

    def keep(d: dict[str, Any]) -> dict[str, Any]:
        return {m: d[m] for m in metrics}

    return replace(pm, metrics=keep(pm.metrics), lower=keep(pm.lower), upper=keep(pm.upper), n=keep(pm.n))


def bin_header(edges: FloatArray) -> list[str]:
    """Bin labels ``[a, b)``, the last one closed, as in :meth:`PerformanceMap.to_markdown`."""
    n = edges.size - 1
    return [f"[{edges[j]:.4g}, {edges[j + 1]:.4g}{']' if j == n - 1 else ')'}" for j in range(n)]


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def settings_tables(what: str, results: list[dict[str, Any]], maps: dict[str, PerformanceMap]) -> str:
    """The settings table (with the scope gate's columns) and the FPR and TPR matrices per rate bin."""
    head = [
        what,
        "n",
        "TPR at fixed threshold",
        "FPR at fixed threshold",
        "ROC AUC",
        "TPR at own 1 % FPR",
        "measured rate [ct/s]",
        "gate flags (features + rate)",
        "gate flags (+ grid check)",
    ]
    rows = []
    for r in results:
        lo, hi = r["measured_rate_range"]
        rows.append(
            [
                r["setting"],
                str(r["n"]),
                f"{pct(r['tpr'])} % [{pct(r['tpr_lower'])}, {pct(r['tpr_upper'])}]",
                f"{pct(r['fpr'])} % [{pct(r['fpr_lower'])}, {pct(r['fpr_upper'])}]",
                f"{r['roc_auc']:.3f}",
                f"{pct(r['tpr_own_threshold'])} %",
                f"{lo:.0f}-{hi:.0f}",
                f"{pct(r['gate']['flagged'])} %",
                f"{pct(r['gate']['flagged_with_grid'])} %",
            ]
        )
    parts = [markdown_table(head, rows)]
    for metric in ("fpr", "tpr"):
        edges = next(iter(maps.values())).edges
        matrix = [[label] + [pct_ci(pm, metric, j) for j in range(pm.n_bins)] for label, pm in maps.items()]
        parts.append(f"{metric.upper()} at the fixed threshold per incident-rate bin [ct/s]:")
        parts.append(markdown_table([what, *bin_header(edges)], matrix))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------- scope gate


def gate_summary(plain: ScopeResult, full: ScopeResult) -> dict[str, Any]:
    """Flag rates of the gate without and with the grid check, and what drove them."""

    def share(res: ScopeResult, text: str) -> float:
        return float(np.mean([any(text in why for why in reasons) for reasons in res.reasons]))

    return {
        "flagged": float(np.mean(~plain.in_scope)),
        "flagged_with_grid": float(np.mean(~full.in_scope)),
        "by_rate_range": share(plain, "mean count rate"),
        "by_features": share(plain, "unusual input"),
        "by_grid": share(full, "averaged powers per bin") + share(full, "frequency grid"),
    }


def gate_sentence(results: list[dict[str, Any]], reference: str) -> str:
    """What the scope gate caught among the settings, as one paragraph.

    A setting is broken when the detector's operating point moves: an FPR at the fixed threshold above
    twice the target (false alarms) or a TPR below half that of the in-distribution ``reference``
    setting (missed QPOs).
    """

    def flagged(g: dict[str, Any]) -> str:
        text = f"{pct(g['flagged'])} % from the features and rate"
        if g["flagged_with_grid"] != g["flagged"]:
            text += f" and {pct(g['flagged_with_grid'])} % with the grid check"
        if g["by_rate_range"] > 0:
            text += f" ({pct(g['by_rate_range'])} % have a rate outside the training range)"
        return text

    ref = next(r for r in results if r["setting"] == reference)
    broken, fine = [], []
    for r in results:
        why = [f"FPR {pct(r['fpr'])} %"] if r["fpr"] > 2 * FPR_TARGET else []
        why += [f"TPR {pct(r['tpr'])} %"] if r["tpr"] < 0.5 * ref["tpr"] else []
        if why:
            broken.append(f"{r['setting']} ({' and '.join(why)}): {flagged(r['gate'])}")
        elif r is not ref:
            fine.append(f"{r['setting']}: {flagged(r['gate'])}")
    text = (
        f"Scope gate (alpha = {GATE_ALPHA:g}, fitted on the training features; it flags "
        f"{pct(ref['gate']['flagged'])} % of the in-distribution {reference} set). "
    )
    text += (
        "Where the detector breaks, it flags " + "; ".join(broken) + "."
        if broken
        else "The detector's operating point holds in every setting."
    )
    if fine:
        text += " Where the detector still works, it flags " + "; ".join(fine) + "."
    return text


# --------------------------------------------------------------------------------------------- plots


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_panels(maps: list[tuple[PerformanceMap, str]], path: Path, *, log: bool | None = None) -> None:
    """One panel per (map, metric), side by side; ``log`` as in :func:`plot_performance_map`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(6.1 * len(maps), 4.2), squeeze=False)
    for ax, (pm, metric) in zip(axes[0], maps, strict=True):
        plot_performance_map(pm, metric, ax=ax, log=log)
    _save(fig, path)


def plot_settings(maps: dict[str, PerformanceMap], metric: str, title: str, path: Path) -> None:
    """One metric per rate bin for several settings, dodged along the (log) rate axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(6.1, 4.3))
    edges = next(iter(maps.values())).edges
    for k, (label, pm) in enumerate(maps.items()):
        dodge = 1.03 ** (k - (len(maps) - 1) / 2)
        x = pm.centres(log=True) * dodge
        y, lo, hi = pm.metrics[metric], pm.lower[metric], pm.upper[metric]
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="-o", ms=4, capsize=2, label=label)
    if metric == "fpr":
        ax.axhline(FPR_TARGET, color="0.5", ls=":", lw=1, label=f"target {FPR_TARGET:g}")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(bottom=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(edges))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{e:g}" for e in edges])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("incident rate [ct/s]")
    ax.set_ylabel(f"{metric} at the fixed threshold (68 % CI)")
    ax.set_title(title, fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    _save(fig, path)


# --------------------------------------------------------------------------------------------- main


def classifier() -> Any:
    """The detector (a fresh, unfitted estimator)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**BOOSTING)


def setting_row(
    label: str, s: Sample, score: FloatArray, threshold: float, gate: dict[str, Any]
) -> tuple[dict[str, Any], PerformanceMap]:
    """Settings-table row of one test set (one-bin detection map, AUC, own threshold) and its rate map."""
    rate = s.incident_rate
    one = detection_map(rate, s.y, score, threshold=threshold, edges=[rate.min(), rate.max()])
    own = binary_metrics(s.y, score, threshold=None, fpr_target=FPR_TARGET)
    row = {"setting": label, "n": int(s.y.size)}
    for m in ("tpr", "fpr"):
        row |= {m: float(one.metrics[m][0]), f"{m}_lower": float(one.lower[m][0])}
        row[f"{m}_upper"] = float(one.upper[m][0])
    row |= {
        "roc_auc": own["roc_auc"],
        "tpr_own_threshold": own["tpr_at_fpr"],
        "measured_rate_range": [float(s.measured_rate.min()), float(s.measured_rate.max())],
        "gate": gate,
    }
    per_rate = detection_map(
        rate, s.y, score, threshold=threshold, edges=RATE_EDGES, variable="incident rate [ct/s]"
    )
    return row, per_rate


def main() -> None:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    data = OUT / "data"
    data.mkdir(parents=True, exist_ok=True)

    # ---- data: reuse the stores, simulate only what is missing
    specs = {"train": (MAIN_DEAD_TIME_MS, MAIN_SEGMENTS, TRAIN_SEED, N_TRAIN)}
    tests = [(MAIN_DEAD_TIME_MS, MAIN_SEGMENTS)]
    tests += [(d, MAIN_SEGMENTS) for d in DEAD_TIMES_MS if d != MAIN_DEAD_TIME_MS]
    tests += [(MAIN_DEAD_TIME_MS, k) for k in SEGMENTS if k != MAIN_SEGMENTS]
    specs |= {test_name(d, k): (d, k, TEST_SEED, N_TEST) for d, k in tests}
    samples: dict[str, Sample] = {}
    reused: list[str] = []
    for name, (dead, segments, seed, n) in specs.items():
        path = data / f"{name}_{n}.zarr"
        if _is_complete(path):
            reused.append(name)
        t0 = time.perf_counter()
        simulate_dataset(simulation_config(dead, segments, seed), n, path, progress=False)
        timings[f"simulate {name}"] = time.perf_counter() - t0
        samples[name] = load_sample(open_dataset(path))
    train, main_test = samples["train"], samples[test_name(MAIN_DEAD_TIME_MS, MAIN_SEGMENTS)]

    # ---- the detector and its fixed threshold
    t0 = time.perf_counter()
    clf = classifier().fit(train.X, train.y)
    timings["train classifier"] = time.perf_counter() - t0
    scores = {name: clf.predict_proba(s.X)[:, 1] for name, s in samples.items() if name != "train"}
    main_score = scores[test_name(MAIN_DEAD_TIME_MS, MAIN_SEGMENTS)]
    main = binary_metrics(main_test.y, main_score, threshold=None, fpr_target=FPR_TARGET)
    threshold = float(main["tpr_at_fpr_threshold"])

    md = [
        f"## QPO detector: HistGradientBoostingClassifier, {N_TRAIN} training spectra, test sets of {N_TEST}",
        f"Main test set ({MAIN_DEAD_TIME_MS:g} ms dead time, {MAIN_SEGMENTS} x {SEGMENT_LENGTH:g} s): "
        f"ROC AUC {main['roc_auc']:.3f}, TPR {pct(main['tpr_at_fpr'])} % at "
        f"FPR {100 * main['fpr_at_threshold']:.2f} % (threshold {threshold:.4f}, fixed from here on).",
    ]
    plots: list[str] = []

    # ---- detection maps on the main test set
    p = main_test.params
    nsigma = poisson_nsigma(main_test)
    ns = nsigma[main_test.y == 1]
    detection_specs = {
        "qpo.rms": (p["qpo.rms"], RMS_EDGES, RMS_LABEL, "detection_rms.png"),
        "qpo.nu0": (p["qpo.nu0"], NU0_EDGES, "QPO centroid [Hz]", "detection_centroid.png"),
        "qpo.q": (p["qpo.q"], Q_EDGES, "QPO quality factor Q", "detection_q.png"),
        "rate": (p["rate"], RATE_EDGES, RATE_LABEL, "detection_rate.png"),
        "nsigma": (
            nsigma,
            (ns.min(), *NSIGMA_INNER_EDGES, ns.max()),
            "Poisson-limited QPO significance n_sigma",
            "detection_nsigma.png",
        ),
    }
    detection_maps = {}
    for key, (values, edges, label, png) in detection_specs.items():
        pm = detection_map(values, main_test.y, main_score, threshold=threshold, edges=edges, variable=label)
        pm = replace(pm, nominal={"fpr": FPR_TARGET})  # the threshold was set at this FPR
        detection_maps[key] = pm
        shown = ("tpr", "fpr") if np.isfinite(pm.metrics["fpr"]).any() else ("tpr",)
        md += [f"### Detection rate against {label}", only(pm, shown).to_markdown()]
        # the rate spans a factor of 20, just short of the automatic log scale: ask for it
        plot_panels([(pm, m) for m in shown], OUT / png, log=True if key == "rate" else None)
        plots.append(png)

    # ---- regression of the QPO centroid and rms, QPO rows only
    from sklearn.ensemble import HistGradientBoostingRegressor

    t0 = time.perf_counter()
    regression_maps = {}
    tr_rows, te_rows = train.y == 1, main_test.y == 1
    for key, what, png in (
        ("qpo.nu0", "centroid", "regression_nu0.png"),
        ("qpo.rms", "rms", "regression_rms.png"),
    ):
        reg = HistGradientBoostingRegressor(**BOOSTING)
        reg.fit(train.X[tr_rows], np.log(train.params[key][tr_rows]))
        estimate = np.exp(reg.predict(main_test.X[te_rows]))
        truth = main_test.params[key][te_rows]
        pm = regression_map(
            main_test.params["qpo.rms"][te_rows], truth, estimate, edges=RMS_EDGES, variable=RMS_LABEL
        )
        regression_maps[key] = pm
        md += [
            f"### Regression of the QPO {what} (exp of a boosted tree on its log; QPO rows only) "
            "against the QPO rms",
            pm.to_markdown(),
        ]
        plot_panels([(pm, "rel_bias"), (pm, "rmse")], OUT / png)
        plots.append(png)
    timings["regression"] = time.perf_counter() - t0

    # ---- scope gate, fitted on the training features and domain
    t0 = time.perf_counter()
    domain = TrainingDomain(
        freq=train.grid.freq,
        m=train.grid.m,
        segment_length=SEGMENT_LENGTH,
        norm="leahy",
        rate_range=(float(train.measured_rate.min()), float(train.measured_rate.max())),
    )
    gate = ScopeGate(alpha=GATE_ALPHA).fit(train.X, domain)
    gates = {}
    for name, s in samples.items():
        if name != "train":
            plain = score_inputs(gate, s.X, mean_rate=s.measured_rate)
            full = score_inputs(
                gate,
                s.X,
                mean_rate=s.measured_rate,
                freq=s.grid.freq,
                m=s.grid.m,
                segment_length=SEGMENT_LENGTH,
            )
            gates[name] = gate_summary(plain, full)
    timings["scope gate"] = time.perf_counter() - t0

    # ---- the detector (and the gate) across dead time and exposure
    settings = {
        "deadtime": (
            "dead time per module",
            {f"{d:g} ms": test_name(d, MAIN_SEGMENTS) for d in DEAD_TIMES_MS},
            f"### The model trained at {MAIN_DEAD_TIME_MS:g} ms applied across dead time per module",
            "per dead time",
            f"{MAIN_DEAD_TIME_MS:g} ms",
        ),
        "exposure": (
            "segments (exposure)",
            {exposure_label(k): test_name(MAIN_DEAD_TIME_MS, k) for k in SEGMENTS},
            f"### The model trained at {MAIN_SEGMENTS} x {SEGMENT_LENGTH:g} s applied across segments "
            "(exposure)",
            "per exposure",
            exposure_label(MAIN_SEGMENTS),
        ),
    }
    settings_out: dict[str, Any] = {}
    for key, (what, sets, title, per, reference) in settings.items():
        results, per_rate = [], {}
        for label, name in sets.items():
            row, per_rate[label] = setting_row(label, samples[name], scores[name], threshold, gates[name])
            results.append(row)
        md += [title, settings_tables(what, results, per_rate), gate_sentence(results, reference)]
        for metric in ("fpr", "tpr"):
            png = f"{key}_{metric}.png"
            plot_settings(per_rate, metric, f"{metric.upper()} against rate, {per}", OUT / png)
            plots.append(png)
        settings_out[key] = {
            "settings": results,
            "per_rate": {label: pm.to_rows() for label, pm in per_rate.items()},
        }

    # ---- shift test: narrow rate range against the same number of rows from all rates
    t0 = time.perf_counter()
    X = np.concatenate([train.X, main_test.X])
    y = np.concatenate([train.y, main_test.y])
    rate = np.concatenate([train.incident_rate, main_test.incident_rate])
    kw = {"edges": RATE_EDGES, "metric": "roc_auc", "rng": SHIFT_SEED, "variable": RATE_LABEL}
    narrow = shift_test(classifier(), X, y, rate, train_range=SHIFT_RANGE, holdout=SHIFT_HOLDOUT, **kw)
    in_range = int(np.count_nonzero((rate >= SHIFT_RANGE[0]) & (rate <= SHIFT_RANGE[1])))
    n_fit = in_range - round(SHIFT_HOLDOUT * in_range)  # as shift_test splits them
    prior = BASE_CONFIG["rate"]
    wide = shift_test(
        classifier(),
        X,
        y,
        rate,
        train_range=(prior["low"], prior["high"]),
        holdout=1 - n_fit / rate.size,
        **kw,
    )
    if rate.size - int(wide.count.sum()) != n_fit:  # every row lies within the edges; the others were fitted
        raise RuntimeError(
            f"the all-rates model was fitted on {rate.size - int(wide.count.sum())} rows, not {n_fit}"
        )
    timings["shift test"] = time.perf_counter() - t0
    lo, hi = SHIFT_RANGE
    md += [
        f"### Shift test: trained on {lo:g}-{hi:g} ct/s only ({n_fit} rows; {MAIN_DEAD_TIME_MS:g} ms dead "
        "time, train + main test pooled, rows not fitted are evaluated)",
        narrow.to_markdown(),
        f"The same classifier trained on {n_fit} rows drawn from all rates:",
        wide.to_markdown(),
    ]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.1, 4.3))
    plot_performance_map(
        narrow,
        "roc_auc",
        ax=ax,
        reference=wide,
        log=False,
        label=f"trained on {lo:g}-{hi:g} ct/s",
        reference_label=f"trained on {prior['low']:g}-{prior['high']:g} ct/s",
    )
    _save(fig, OUT / "shift_rate.png")
    plots.append("shift_rate.png")

    # ---- outputs
    wall = time.perf_counter() - t_start
    timings["wall"] = wall
    t_sim = sum(v for k, v in timings.items() if k.startswith("simulate"))
    n_test_spectra = N_TEST * (len(specs) - 1)
    md.append(
        f"Wall time {wall:.0f} s (single thread; simulation {t_sim:.0f} s, {N_TRAIN} + {n_test_spectra} "
        f"spectra; {len(reused)} of {len(specs)} stores reused from an earlier run)."
    )
    text = "\n\n".join(md) + "\n"
    print(text, end="")
    (OUT / "eval.md").write_text(text)
    m_by_segments = {str(k): samples[test_name(MAIN_DEAD_TIME_MS, k)].grid.m for k in SEGMENTS}
    doc = {
        "n_train": N_TRAIN,
        "n_test": N_TEST,
        "fpr_target": FPR_TARGET,
        "stores": list(specs),
        "grid": {
            "n_freq": train.grid.n_freq,
            "freq_range_hz": [float(train.grid.freq[0]), float(train.grid.freq[-1])],
            "m_first_bin": {k: int(m[0]) for k, m in m_by_segments.items()},
            "m_last_bin": {k: int(m[-1]) for k, m in m_by_segments.items()},
        },
        "classifier": {"n_iter": int(clf.n_iter_), "seconds": timings["train classifier"]},
        "main_test": {
            "threshold": threshold,
            "roc_auc": main["roc_auc"],
            "tpr_at_1pct_fpr": main["tpr_at_fpr"],
            "fpr_at_threshold": main["fpr_at_threshold"],
        },
        "detection_maps": {k: pm.to_rows() for k, pm in detection_maps.items()},
        "regression_maps": {k: pm.to_rows() for k, pm in regression_maps.items()},
        **settings_out,
        "scope_gate": {
            "alpha": GATE_ALPHA,
            "features": "the detector's: log Leahy powers (floored at 1e-6), log measured rate",
            "n_fit": int(train.X.shape[0]),
            "n_components": int(gate.components_.shape[0]),
            "rate_range": list(domain.rate_range),
            "rate_margin": domain.rate_margin,
        },
        "shift_test": {
            "train_range": list(SHIFT_RANGE),
            "n_fit": n_fit,
            "narrow": narrow.to_rows(),
            "all_rates": wide.to_rows(),
        },
        "timings_s": timings,
        "stores_reused": reused,
        "plots": plots,
    }
    (OUT / "eval.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main()
