"""``xtml demo``: the loop as far as it exists, on the built-in default configuration.

Simulates a small QPO / no-QPO dataset, checks the simulated spectra against their exact
expectation (an honesty check of the simulator that every user can see), plots examples and
writes ``report.html`` and ``summary.json`` into the run folder.
"""

from __future__ import annotations

import html
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xtml.data import SPLIT_NAMES, load_config, open_dataset, simulate_dataset
from xtml.data.expect import expected_spectra
from xtml.report import Section, figure_html, table_html, write_report

__all__ = ["default_config_path", "run_demo"]


def default_config_path() -> Path:
    """Path of the built-in default configuration (``xtml/configs/default.toml``)."""
    return Path(str(resources.files("xtml") / "configs" / "default.toml"))


def _ratio_stats(power: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    r = power / expected
    mean = r.mean(axis=0)
    err = r.std(axis=0, ddof=1) / np.sqrt(r.shape[0])
    return mean, err, float(np.max(np.abs(mean - 1) / err))


def run_demo(out: Path, *, n: int = 2000, seed: int = 20261121, progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out`` and return its summary (also written to ``summary.json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xtml.critique import plot_ratio, plot_spectra

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(default_config_path())
    print(f"[1/3] simulating {n} observations from {default_config_path().name} ...", flush=True)
    path = simulate_dataset(config, n, out / "dataset.zarr", seed=seed, progress=progress)
    t_sim = time.perf_counter() - t0
    ds = open_dataset(path)
    labels = ds.array("labels")
    params = ds.array("params")
    ps = ds.spectra()
    print("[2/3] comparing every simulated spectrum with its exact expectation ...", flush=True)
    expected = expected_spectra(ds.config, labels, params, ps.mean_rate)
    ratios, worst = {}, {}
    for c, name in enumerate(ds.class_names):
        rows = labels == c
        mean, err, z = _ratio_stats(ps.power[rows], expected.power[rows])
        ratios[name] = (mean, err)
        worst[name] = z

    print("[3/3] plotting and writing the report ...", flush=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    qpo_rows = np.flatnonzero(labels == 0)
    noise_rows = np.flatnonzero(labels != 0)
    # the strongest and a typical QPO (by rms x sqrt(rate)), and one noise-only spectrum
    names = ds.param_names
    strength = params[qpo_rows, names.index("qpo.rms")] * np.sqrt(params[qpo_rows, 0])
    picks = [int(qpo_rows[np.argmax(strength)]), int(qpo_rows[np.argsort(strength)[strength.size // 2]])]
    picks.append(int(noise_rows[0]))

    def describe(i: int) -> str:
        base = f"{ds.class_names[labels[i]]}, {params[i, 0]:.0f} ct/s"
        if labels[i] == 0:
            nu0, q, rms = (params[i, names.index(k)] for k in ("qpo.nu0", "qpo.q", "qpo.rms"))
            base += f", QPO {nu0:.1f} Hz, Q={q:.1f}, rms={100 * rms:.1f}%"
        return base

    plot_spectra(ps, picks, expected=expected, labels=[describe(i) for i in picks], ax=axes[0])
    axes[0].set_title("simulated spectra (points) and their expectation (lines)")
    plot_ratio(ps.freq, ratios, ax=axes[1])
    axes[1].set_title("mean data / expectation, all spectra of each class")
    fig_html = figure_html(fig, "Left: examples. Right: the simulator checked against its exact expectation.")

    o = ds.config.observation
    n_clipped = ds.array("n_clipped")
    split = ds.array("split")
    elapsed = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "n": ds.n,
        "seed": seed,
        "classes": {name: int((labels == c).sum()) for c, name in enumerate(ds.class_names)},
        "splits": {s: int((split == k).sum()) for k, s in enumerate(SPLIT_NAMES)},
        "n_freq": int(ps.n_freq),
        "simulator_check_max_abs_z": {k: round(v, 2) for k, v in worst.items()},
        "fraction_with_clipped_bins": float((n_clipped > 0).mean()),
        "seconds_simulation": round(t_sim, 1),
        "seconds_total": round(elapsed, 1),
        "dataset": str(path),
    }
    rows = [
        ["observations", ds.n],
        ["classes", ", ".join(f"{k}: {v}" for k, v in summary["classes"].items())],
        ["splits", ", ".join(f"{k}: {v}" for k, v in summary["splits"].items())],
        [
            "light curve",
            f"{o.n_segments} x {o.segment_bins} bins of {o.dt * 1e3:.3f} ms, "
            f"{ds.config.detector.n_modules} module(s)",
        ],
        [
            "spectrum",
            f"{ps.n_freq} log-rebinned frequencies, {ps.freq[0]:.2f}-{ps.freq[-1]:.1f} Hz, {o.norm} norm",
        ],
        [
            "simulator check",
            ", ".join(f"{k}: max |z| = {v:.1f} over {ps.n_freq} bins" for k, v in worst.items()),
        ],
        ["spectra with clipped (negative-rate) bins", f"{100 * summary['fraction_with_clipped_bins']:.2f}%"],
        ["time", f"simulation {t_sim:.1f} s, total {elapsed:.1f} s"],
    ]
    prov = ds.meta["provenance"]
    prov_rows = [[k, v] for k, v in prov["versions"].items()] + [
        ["git revision", prov["git_revision"]],
        ["platform", prov["platform"]],
    ]
    caveats = (
        '<div class="caveat"><ul>'
        "<li>The expectation includes binning and aliasing but not the red-noise leak "
        f"(red_noise_factor = {o.red_noise_factor}); the lowest bins may sit slightly above it.</li>"
        "<li>Detector effects (dead time, pile-up), classical fits, machine learning and simulation-based "
        "inference are not part of this version yet: this report shows simulated data only.</li>"
        "<li>Light curves use the linear Timmer &amp; Koenig model; bins where the rate went negative are "
        "clipped to zero and counted above.</li></ul></div>"
    )
    sections = [
        Section("Summary", table_html(["what", "value"], rows)),
        Section("Spectra", fig_html),
        Section("What is not here, and known limits", caveats),
        Section(
            "Configuration",
            f"<pre>{html.escape(json.dumps(ds.config.to_dict(), indent=1))}</pre>",
        ),
        Section("Provenance", table_html(["item", "value"], prov_rows)),
    ]
    report = write_report(out / "report.html", "xtml demo: QPO or no QPO", sections)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"report: {report}")
    print(f"dataset: {path} ({ds.n} spectra, {ps.n_freq} frequencies)")
    print(
        "simulator check (max |z| of mean data/expectation): "
        + ", ".join(f"{k} {v:.1f}" for k, v in worst.items())
    )
    print(f"total time: {elapsed:.1f} s")
    return summary
