"""``xtml sbi infer``: posterior samples and a summary table for one observation (the CLI adds the corner
plot, :func:`xtml.critique.plot_posterior_corner`).

The observation is a row of an xtml dataset (``DIR.zarr``, ``index``), or one or more FITS event files of
the modules of one observation (their events are summed, on the GTIs common to all files). The spectrum
is made exactly as in training: the trained bin time, segment length, number of segments and rebinning
(the first ``n_segments`` segments that fit in the GTIs are used; the rest of the exposure is reported,
not silently dropped) and checked against the trained grid (:class:`~xtml.sbi.inputs.InputSpec`).
Event files give the total power only: a posterior trained on the cospectrum or FAD channels needs a
dataset.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.data.config import SimulationConfig
from xtml.sbi.inputs import InputSpec, spectrum_inputs
from xtml.sbi.run import RunPosterior, load_run_posterior

__all__ = ["Inference", "infer", "observation_inputs"]

EDGE = 0.01  # a posterior median this close to a prior bound (fraction of the box) is flagged


@dataclass(frozen=True)
class Inference:
    """Posterior of one observation.

    Attributes
    ----------
    names : tuple of str
    samples : ndarray of shape (n_samples, n_params)
    source : str
        What was analysed.
    calibrated : bool
        Whether the run's posterior may be used: calibrated, or conservative (then ``notes`` says how much
        wider than needed its regions are).
    notes : tuple of str
        Warnings (unused exposure, medians at a prior bound, an uncalibrated or conservative posterior).
    seconds : float
        Sampling wall time.
    inputs : ndarray of shape (1, n_features)
        What the posterior saw (for the scope gate of :mod:`xtml.critique.run_scope`).
    mean_rate : float
        Measured mean count rate of the observation, ct/s (NaN if unknown).
    """

    names: tuple[str, ...]
    samples: NDArray[np.float64]
    source: str
    calibrated: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    inputs: NDArray[np.float64] = field(default_factory=lambda: np.zeros((1, 0)))
    mean_rate: float = float("nan")

    def summary(self) -> list[dict[str, float | str]]:
        """Per parameter: mean, std, median, central 68 % and 95 % intervals."""
        q = np.quantile(self.samples, [0.025, 0.16, 0.5, 0.84, 0.975], axis=0)
        return [
            {
                "parameter": n,
                "mean": float(self.samples[:, k].mean()),
                "std": float(self.samples[:, k].std(ddof=1)),
                "median": float(q[2, k]),
                "lo68": float(q[1, k]),
                "hi68": float(q[3, k]),
                "lo95": float(q[0, k]),
                "hi95": float(q[4, k]),
            }
            for k, n in enumerate(self.names)
        ]

    def table(self) -> str:
        """The summary as aligned text."""
        lines = [f"{'parameter':<14} {'median':>10} {'68% interval':>23} {'95% interval':>23}"]
        for r in self.summary():
            lines.append(
                f"{r['parameter']:<14} {r['median']:>10.4g} [{r['lo68']:>10.4g}, {r['hi68']:>10.4g}] "
                f"[{r['lo95']:>10.4g}, {r['hi95']:>10.4g}]"
            )
        return "\n".join(lines)


def _simulation(run: RunPosterior) -> SimulationConfig:
    raw = {k: v for k, v in run.config.items() if k not in ("sbi", "npe", "validation")}
    return SimulationConfig.from_dict(raw)


def _first_segments(gti: NDArray[np.float64], length: float, n: int) -> tuple[NDArray[np.float64], int]:
    starts = [a + k * length for a, b in gti for k in range(int(np.floor((b - a) / length + 1e-9)))]
    return np.array([[s, s + length] for s in starts[:n]]).reshape(-1, 2), len(starts)


def _events_spectrum(paths: Sequence[Path], sim: SimulationConfig) -> tuple[Any, list[str]]:
    from xtml.timing import read_events
    from xtml.timing.periodogram import periodogram_from_events
    from xtml.timing.products import common_gti

    o = sim.observation
    events = [read_events(p) for p in paths]
    if len({e.mission for e in events}) > 1:
        raise ValueError(
            f"event files of one observation must come from one mission; got {[e.mission for e in events]}"
        )
    gti = common_gti([e.gti + e.t_ref for e in events])
    segments, available = _first_segments(gti, o.segment_length, o.n_segments)
    names = ", ".join(str(p) for p in paths)
    if available < o.n_segments:
        raise ValueError(
            f"{names}: {available} segments of {o.segment_length:g} s fit in the common GTIs (longest GTI "
            f"{float(np.max(gti[:, 1] - gti[:, 0])) if gti.size else 0.0:.1f} s); the posterior was trained "
            f"on exactly {o.n_segments} segments"
        )
    t0 = segments[0, 0]
    times = np.sort(np.concatenate([e.times + e.t_ref for e in events])) - t0
    ps = periodogram_from_events(
        times, gti=segments - t0, dt=o.dt, segment_size=o.segment_length, norm=o.norm
    )
    notes = []
    if available > o.n_segments:
        notes.append(
            f"used the first {o.n_segments} of {available} segments of {o.segment_length:g} s "
            f"({(available - o.n_segments) * o.segment_length:.0f} s of good time not analysed)"
        )
    if ps.n_segments != o.n_segments:
        raise ValueError(
            f"{names}: only {ps.n_segments} of the {o.n_segments} segments hold events; the posterior needs "
            f"{o.n_segments}"
        )
    return o.rebin(ps), notes


def observation_inputs(
    run: RunPosterior, sources: Sequence[str | Path], *, index: int = 0
) -> tuple[NDArray[np.float64], str, list[str], float]:
    """Input row (1, n_features) of one observation, a description, notes and the mean rate (ct/s)."""
    paths = [Path(s) for s in sources]
    if not paths:
        raise ValueError("give a dataset (DIR.zarr) or the event files of one observation")
    spec: InputSpec = run.inputs
    if paths[0].is_dir():
        if len(paths) > 1:
            raise ValueError(f"give one dataset at a time; got {len(paths)} paths")
        from xtml.data import open_dataset

        ds = open_dataset(paths[0])
        if not 0 <= index < ds.n:
            raise ValueError(f"--index must be in [0, {ds.n}) for {paths[0]}; got {index}")
        missing = [c for c in spec.channels if c not in ds.group]
        if missing:
            raise ValueError(f"dataset {paths[0]} has no {missing} array, which the posterior needs")
        spectra = {c: ds.spectra(np.array([index]), array=c) for c in spec.channels}
        what = f"{paths[0]} row {index}"
        rate = float(spectra[spec.channels[0]].mean_rate[0])
        return spectrum_inputs(spectra, spec, what=what), what, [], rate
    other = [c for c in spec.channels if c != "power"]
    if other:
        raise ValueError(
            f"this posterior also needs the channels {other}, which xtml makes only for datasets; event "
            "files give the total power"
        )
    ps, notes = _events_spectrum(paths, _simulation(run))
    what = ", ".join(str(p) for p in paths)
    rate = float(np.atleast_1d(ps.mean_rate)[0])
    return spectrum_inputs({"power": ps}, spec, what=what), what, notes, rate


def infer(
    run_dir: str | Path,
    sources: Sequence[str | Path],
    *,
    index: int = 0,
    n_samples: int = 10_000,
    seed: int = 0,
    allow_uncalibrated: bool = False,
) -> Inference:
    """Posterior samples for one observation from a trained run (see the module docstring).

    ``n_samples`` is an integer >= 2 (the summary has quantiles and a spread).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    run = load_run_posterior(run_dir, allow_uncalibrated=allow_uncalibrated)
    x, what, notes, rate = observation_inputs(run, sources, index=index)
    post = run.posterior
    t0 = time.perf_counter()
    samples = post.sample(x, n_samples, rng=seed)[0]
    seconds = time.perf_counter() - t0
    med = np.median(samples, axis=0)
    box = post.box
    width = box.high - box.low
    for k, name in enumerate(post.names):
        if med[k] - box.low[k] < EDGE * width[k] or box.high[k] - med[k] < EDGE * width[k]:
            notes.append(
                f"{name}: the posterior piles up at the prior bound [{box.low[k]:g}, {box.high[k]:g}]: the "
                "observation may lie outside the training domain"
            )
    if not run.usable:
        notes.insert(
            0, "UNCALIBRATED POSTERIOR: it failed its calibration checks; do not trust these numbers"
        )
    elif not run.passed:
        notes.insert(0, run.conservative_text())
    return Inference(
        names=post.names,
        samples=samples,
        source=what,
        calibrated=run.usable,
        notes=tuple(notes),
        seconds=seconds,
        inputs=x,
        mean_rate=rate,
    )
