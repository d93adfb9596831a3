"""The dataset card of a simulated dataset: a Markdown page that travels with the Zarr store.

Like a model card, a dataset card (Gebru et al. 2021, "Datasheets for datasets") says what the data are,
how they were made and what they are for: the simulator and its version, the observation grid, each class
with its PSD model and priors, the detector, the seeds, the size and splits, and the known limits of the
simulation. :func:`write_dataset_card` puts it in the store as ``DATASET_CARD.md`` (a file the Zarr store
ignores), so that anyone who receives the folder can read it without xtml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CARD_NAME", "dataset_card", "write_dataset_card"]

CARD_NAME = "DATASET_CARD.md"


def _prior_text(spec: dict[str, Any]) -> str:
    dist = spec.get("dist", "?")
    if dist == "fixed":
        return f"fixed at {spec['value']:g}"
    if dist in ("uniform", "loguniform"):
        return f"{dist} in [{spec['low']:g}, {spec['high']:g}]"
    return json.dumps(spec)


def dataset_card(ds: Any) -> str:
    """The Markdown card of an open dataset (:func:`xtml.data.open_dataset`)."""
    config = ds.config.to_dict()
    obs = ds.config.observation
    prov = ds.meta.get("provenance", {})
    labels = np.asarray(ds.array("labels"))
    n_modules = ds.config.detector.n_modules
    rate = np.asarray(ds.array("mean_rate"), dtype=np.float64)
    clipped = (
        float((np.asarray(ds.array("n_clipped")) > 0).mean()) if "n_clipped" in ds.group else float("nan")
    )
    lines = [
        f"# Dataset card: {Path(str(ds.path)).name}",
        "",
        "## What it is",
        "",
        f"{ds.n} simulated X-ray timing observations made by xtml "
        f"{prov.get('versions', {}).get('xtml', '?')} "
        f"(git revision {prov.get('git_revision', '?')}), "
        f"created {prov.get('created_utc', '?')}. "
        f"Each row is an averaged {obs.norm}-normalised power spectrum of "
        f"{obs.n_segments} segment(s) of {obs.segment_length:g} s "
        f"at a bin time of {obs.dt:g} s ({ds.array('freq').size} frequency bins after rebinning), with the "
        "parameters that made it, its class label and its split.",
        "",
        "## How it was made",
        "",
        "Timmer & König (1995) light curves of the PSD model of each class, Poisson photons per detector "
        "module, the detector effects below, then periodograms averaged over segments and rebinned. The "
        "rates are never rescaled to the requested variance. Same configuration and seed, same bytes.",
        "",
        "| class | share | PSD components | priors |",
        "|---|---|---|---|",
    ]
    for k, name in enumerate(ds.class_names):
        spec = config["classes"][name]
        comps = ", ".join(f"{c} = {kind}" for c, kind in spec["components"].items())
        priors = "; ".join(f"{p}: {_prior_text(v)}" for p, v in spec["priors"].items())
        lines.append(f"| {name} | {int((labels == k).sum())} | {comps} | {priors} |")
    lines += [
        "",
        f"Count rates: the parameter `rate` is the source's incident rate **per module**, "
        f"{_prior_text(config.get('rate', {}))} ct/s per module; the spectra's `mean_rate` is the detected "
        f"rate of the light curve they were made from, **total** of the {n_modules} module(s) (background "
        f"included): {rate.min():.4g}-{rate.max():.4g} ct/s total.",
        "",
        f"Detector: `{json.dumps(config.get('detector', {}))}`",
        "",
        f"Observation: `{json.dumps(config.get('observation', {}))}`",
        "",
        "## Seeds and size",
        "",
        f"- dataset seed {ds.meta.get('seed')}, chunk size {ds.meta.get('chunk_size')} (each chunk draws "
        "from "
        "its own stream of the seed, so the dataset does not depend on how it was split into runs)",
        "- splits: " + ", ".join(f"{s} {ds.split_indices(s).size}" for s in ("train", "validation", "test")),
        "",
        "## Intended use",
        "",
        "Training and testing QPO detectors, variability classifiers, parameter regressors and "
        "simulation-based "
        "posteriors for data taken with the observation grid and detector above; checking classical methods "
        "against known truths.",
        "",
        "## Known limits",
        "",
        "- Simulated data: the sources are the PSD models above and nothing else (no pulsations, "
        "instrumental "
        "lines, flares, background variability or gaps unless configured).",
        f"- The linear Timmer & König model can give negative rates; they are clipped to zero "
        f"({100 * clipped:.2f}% of the spectra have clipped bins).",
        "- A model trained on these spectra is valid only on the same grid, detector and parameter ranges: "
        "xtml's scope gate checks it.",
        "",
        "## Provenance",
        "",
        "| package | version |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in prov.get("versions", {}).items()]
    lines += ["", f"Platform: {prov.get('platform', '?')}, Python {prov.get('python', '?')}.", ""]
    return "\n".join(lines)


def write_dataset_card(path: str | Path) -> Path:
    """Write ``DATASET_CARD.md`` into the dataset store at ``path``; returns the card's path."""
    from xtml.data.store import open_dataset

    ds = open_dataset(path)
    out = Path(path) / CARD_NAME
    out.write_text(dataset_card(ds))
    return out
