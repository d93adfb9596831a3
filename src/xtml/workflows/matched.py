"""Runs matched to an observation: ``xtml sbi train --like FILE...``.

A posterior trained on a generic scenario says "out of scope" for most real files, because their time
resolution, exposure, count rate and detector are not the scenario's. A matched run derives the scenario
from the files themselves and trains on it, so that the observation is in scope by construction:

1. **The observation block** (:func:`match_observation`), after data gaps inside the GTIs are cut out of
   them (:func:`xtml.timing.gaps.gti_without_gaps`; the answers cut the same ones): the bin time (a light
   curve's own, or the clean multiple of a resampled one; events: ``dt``, or by default the finest of
   1/256, 1/128, ... 1 s at which half the good time fits in ``max_bins`` bins; never finer than the
   clock), the segment length and count that use the most good time (all files must hold that many whole
   segments; at most ``max_bins`` simulated bins per observation, the cost of a simulation), the energy
   band.
2. **The detector** (:data:`MISSION_DEAD_TIMES`): NuSTAR's dead time from the PRIOR column (else its
   published 2.5 ms), NICER's from the DEADTIME column, RXTE PCA's and XMM EPIC-pn's published values,
   each stated with its reference. Independent detectors summed in one file (NICER's 52 focal-plane
   modules, RXTE's PCUs) act as one detector with the dead time divided by their number (to first order
   in rate x dead time the mean, the variance and the Zhang white-noise level are those of the sum). For a
   light curve, or where an event-level simulation would draw more than ``EVENT_LEVEL_LIMIT`` photons per
   observation, the counts are drawn from their renewal moments (``binned`` dead time,
   :func:`xtml.simulate.deadtime.binned_dead_time_moments`).
   Each segment is simulated as its own light curve, twice its length (``independent_segments``): the
   source model is fitted on the segments' band and is not extrapolated far below it.
3. **The rate prior**: log-uniform from 0.8 to 1.25 times the incident rate per module (the detected
   rate corrected for the dead time) of the files.
4. **The source model and its priors** (:func:`quick_fit`): the user's model, or the better (AIC) of a
   power law (parametrised by its rms over the observation's band) and a zero-centred Lorentzian, with a
   Lorentzian QPO added only when the calibrated likelihood-ratio test requires it; the priors are boxes
   around the dead-time-aware maximum-likelihood fit (five errors, at least a factor of 3 for scales and
   +-50 % for an rms), said so in the output.
5. **Train and check** (:func:`xtml.sbi.run.train_sbi_run`, the gate of issue 13), then **answer**: the
   posterior of each file with its scope check, next to the classical answers for the same spectrum:
   the dead-time-aware (Zhang) fit, the naive fit, the FAD fit where two modules allow one, and the
   calibrated likelihood-ratio test of every Lorentzian (:func:`classical_answers`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EVENT_LEVEL_LIMIT",
    "MISSION_DEAD_TIMES",
    "ClassicalAnswer",
    "DetectorMatch",
    "MatchedAnswer",
    "ObservationMatch",
    "QuickFit",
    "classical_answers",
    "match_observation",
    "matched_sbi_config",
    "observation_spectrum_of",
    "quick_fit",
    "train_matched_sbi",
]

#: Published dead times per event and per detector (non-paralyzable), s, with their reference, used when
#: the file does not give its own (NuSTAR's PRIOR, NICER's DEADTIME columns).
MISSION_DEAD_TIMES: dict[str, tuple[float, str]] = {
    "nustar": (
        2.5e-3,
        "NuSTAR FPMA/FPMB: ~2.5 ms per event (Harrison et al. 2013, ApJ 770, 103; Bachetti et al. 2015, "
        "ApJ 800, 109)",
    ),
    "nicer": (
        2.2e-5,
        "NICER XTI: ~22 us per event per focal-plane module (the typical value of the DEADTIME column of "
        "NICER event files)",
    ),
    "xte": (
        1.0e-5,
        "RXTE PCA: ~10 us per event per PCU (Zhang et al. 1995, ApJ 449, 930; Jahoda et al. 2006, "
        "ApJS 163, 401); the very-large-event dead time is not modelled",
    ),
    "xmm": (
        0.0,
        "XMM-Newton EPIC-pn: frame-store readout with no per-event dead time; in timing mode 99.5 % live "
        "time (XMM-Newton Users Handbook, Table 3), which scales the rate but leaves the power shape: none "
        "modelled",
    ),
}

#: Detectors summed in a file when the file does not list them: RXTE PCA light curves do not say how many
#: PCUs were on (two or three in most observations after 2000, of five).
DEFAULT_DETECTORS: dict[str, tuple[int, str]] = {
    "xte": (2, "the file does not say how many PCUs were on; assumed 2 (give n_detectors)"),
    "nicer": (52, "the file does not list DET_ID; assumed the 52 active focal-plane modules"),
}

#: Photons per simulated observation above which the dead time is simulated on binned counts.
EVENT_LEVEL_LIMIT = 200_000

_DEFAULT_DT = 2.0**-8  # s: events are binned at 1/256 s (Nyquist 128 Hz) unless told otherwise
_MAX_SPECTRUM_BINS = 150  # frequencies after log-rebinning: the size of the SBI input
_MIN_SEGMENTS = 8  # segments averaged where the good time allows: a near-Gaussian periodogram


@dataclass(frozen=True)
class DetectorMatch:
    """The detector a matched run simulates.

    ``dead_time`` is per event of the effective detector (the published or measured dead time divided by
    ``n_detectors``, the independent detectors summed in the file), s; 0 for none. ``binned`` says the
    counts are drawn from their renewal moments instead of photon by photon. ``source`` is where the
    numbers come from, with the reference.
    """

    dead_time: float
    n_detectors: int
    binned: bool
    source: str


@dataclass(frozen=True)
class ObservationMatch:
    """The observation block derived from the files (:func:`match_observation`)."""

    paths: tuple[str, ...]
    mission: str
    target: str
    kind: str  # "events" or "light curve"
    dt: float
    segment_bins: int
    n_segments: int
    segments_available: tuple[int, ...]
    detected_rate: tuple[float, ...]  # per file, ct/s over its good time
    incident_rate: tuple[float, ...]  # per file, ct/s, corrected for the dead time
    exposure: tuple[float, ...]  # per file, s of good time
    detector: DetectorMatch
    energy_range: tuple[float, float] | None = None
    pi_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()
    rebin_log: float = 0.0  # the log-rebinning that leaves at most _MAX_SPECTRUM_BINS frequencies

    @property
    def segment_length(self) -> float:
        """Segment length, s."""
        return self.segment_bins * self.dt

    def text(self) -> str:
        """What was derived, one line each."""
        d = self.detector
        rates = ", ".join(f"{r:.4g}" for r in self.detected_rate)
        inc = ", ".join(f"{r:.4g}" for r in self.incident_rate)
        lines = [
            f"matched to {len(self.paths)} file(s) of {self.mission.upper()} ({self.kind}; target "
            f"{self.target or 'not given'})",
            f"  time resolution {self.dt:g} s (Nyquist {0.5 / self.dt:g} Hz); {self.n_segments} segments of "
            f"{self.segment_length:g} s ({self.n_segments * self.segment_length:g} s of "
            f"{', '.join(f'{e:.0f}' for e in self.exposure)} s of good time; segments available per file: "
            f"{list(self.segments_available)})",
            f"  detected rate {rates} ct/s; incident (dead-time corrected) {inc} ct/s",
            f"  dead time {d.dead_time:.3g} s per event of the effective detector "
            f"({'binned counts' if d.binned else 'event by event'}): {d.source}",
        ]
        if self.energy_range is not None:
            lines.append(f"  energy band {self.energy_range[0]:g}-{self.energy_range[1]:g} keV")
        if self.pi_range is not None:
            lines.append(f"  PI channels {self.pi_range[0]:g} <= PI < {self.pi_range[1]:g}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _sources(
    paths: Sequence[str | Path],
    energy_range: tuple[float, float] | None,
    pi_range: tuple[float, float] | None,
) -> list[Any]:
    from xtml.timing import EventData
    from xtml.timing.gaps import gti_without_gaps
    from xtml.timing.observation import read_observation

    if not paths:
        raise ValueError("give at least one observation file to match")
    sources = [
        gti_without_gaps(read_observation(p, energy_range=energy_range, pi_range=pi_range))[0] for p in paths
    ]
    missions = sorted({str(s.mission).lower() for s in sources})
    if len(missions) > 1:
        raise ValueError(
            f"a matched run is for one mission; the files are of {missions}: match each mission on its own"
        )
    kinds = {isinstance(s, EventData) for s in sources}
    if len(kinds) > 1:
        raise ValueError("give event files or light curves, not both: they are binned differently")
    return sources


def _file_dt(sources: Sequence[Any], dt: float | None) -> float:
    from xtml.timing import EventData

    if isinstance(sources[0], EventData):
        finest = max(float(s.time_resolution or 0.0) for s in sources)
        step = _DEFAULT_DT if dt is None else float(dt)
        if not math.isfinite(step) or step <= 0:
            raise ValueError(f"dt must be a time > 0 s, got {dt!r}")
        if step < finest:
            raise ValueError(f"dt = {step:g} s is finer than the files' time resolution {finest:g} s")
        return step
    native = max(float(s.clean_dt or s.dt) for s in sources)
    if dt is None:
        return native
    step = float(dt)
    ratio = step / native
    if not math.isfinite(ratio) or ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"dt must be a whole multiple of the light curves' bin time {native:g} s, got {dt!r}"
        )
    return step


def _segments_in(gti: np.ndarray, length: float) -> int:
    return int(np.sum(np.floor((gti[:, 1] - gti[:, 0]) / length + 1e-9)))


def _choose_segments(gtis: Sequence[np.ndarray], dt: float, max_bins: int) -> tuple[int, int, list[int]]:
    """Segment bins (a power of 2) and count that analyse the most good time in every file, at most
    ``max_bins`` bins in all; among choices within 90 % of the most, the longest segments (lowest
    frequencies) that still average ``_MIN_SEGMENTS`` (or as many as any such choice does)."""
    longest = min(float(np.max(g[:, 1] - g[:, 0])) for g in gtis)
    options = []
    for k in range(4, 21):
        bins = 2**k
        length = bins * dt
        if length > longest * (1 + 1e-9) or bins > max_bins:
            break
        available = [_segments_in(g, length) for g in gtis]
        n_use = min(min(available), max_bins // bins)
        options.append((n_use * length, bins, n_use, available))
    if not options:
        raise ValueError(
            f"no segment of 16 bins of {dt:g} s fits in every file's good time (the shortest longest-GTI is "
            f"{longest:g} s): use a finer dt"
        )
    best = max(o[0] for o in options)
    most_segments = max(o[2] for o in options if o[0] >= 0.9 * best)
    floor = min(_MIN_SEGMENTS, most_segments)
    chosen = max((o for o in options if o[0] >= 0.9 * best and o[2] >= floor), key=lambda o: o[1])
    return chosen[1], chosen[2], chosen[3]


def _detector(
    sources: Sequence[Any], mission: str, rate: float, dt: float, photons: float, n_detectors: int | None
) -> tuple[DetectorMatch, list[str]]:
    from xtml.data.config import BINNED_DEAD_TIME_MIN_STEPS
    from xtml.timing import EventData
    from xtml.timing.io import dead_time_detectors

    notes = []
    measured = [s.dead_time for s in sources if isinstance(s, EventData) and s.dead_time is not None]
    published, reference = MISSION_DEAD_TIMES.get(mission, (0.0, ""))
    if measured:
        tau = float(np.mean(measured))
        column = "PRIOR" if mission == "nustar" else "DEADTIME"
        source = f"the files' {column} column ({tau * 1e6:.4g} us per event)"
    elif reference:
        tau, source = published, reference
    else:
        tau, source = 0.0, f"no published dead time known to xtml for mission {mission!r}: none modelled"
    counted = [dead_time_detectors(s) for s in sources if isinstance(s, EventData) and s.n_detectors]
    if n_detectors is not None:
        n_det, how = int(n_detectors), f"{int(n_detectors)} detectors (given)"
    elif counted:
        n_det = max(counted)
        how = (
            f"{n_det} detectors with their own dead time and events in the files"
            if n_det > 1
            else "one detector (module) per file"
        )
    elif mission in DEFAULT_DETECTORS and tau > 0:
        n_det, why = DEFAULT_DETECTORS[mission]
        how = f"{n_det} detectors: {why}"
    else:
        n_det, how = 1, "1 detector"
    if n_det < 1:
        raise ValueError(f"n_detectors must be >= 1, got {n_detectors!r}")
    effective = tau / n_det
    if effective > 0:
        source += f"; {how}, summed: {effective:.3g} s per event of the sum"
        if rate * effective >= 1:
            raise ValueError(
                f"a detected rate of {rate:.4g} ct/s with {effective:.3g} s of dead time per event gives "
                "rate x dead time >= 1, which no incident rate produces: check the dead time and n_detectors"
            )
    wanted = effective > 0 and (not isinstance(sources[0], EventData) or photons > EVENT_LEVEL_LIMIT)
    binned = wanted and dt >= BINNED_DEAD_TIME_MIN_STEPS * effective
    if wanted and not binned and photons > EVENT_LEVEL_LIMIT:  # bins too short for the renewal limit
        notes.append(
            f"event-level dead time with ~{photons:.3g} photons per simulated observation (bins of {dt:g} s "
            f"are shorter than {BINNED_DEAD_TIME_MIN_STEPS} dead times): slow to simulate"
        )
    return DetectorMatch(dead_time=effective, n_detectors=n_det, binned=binned, source=source), notes


def match_observation(
    paths: Sequence[str | Path],
    *,
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
    dt: float | None = None,
    max_bins: int = 2**17,
    n_detectors: int | None = None,
) -> ObservationMatch:
    """Derive the observation block and detector of a matched run from observation files.

    Parameters
    ----------
    paths : sequence of path
        Event files or light curves (FITS or ASCII) of one mission; each is one observation to answer.
    energy_range : (float, float), optional
        keV, for event files.
    pi_range : (float, float), optional
        PI channels (``low <= PI < high``), for event files.
    dt : float, optional
        Bin time, s (events: default 1/256 s; light curves: their own, or a whole multiple).
    max_bins : int
        At most this many bins per simulated observation (the simulation cost).
    n_detectors : int, optional
        Independent detectors summed in the files, where they do not say (RXTE PCA light curves).

    Raises
    ------
    ValueError
        Mixed missions or file kinds, a ``dt`` the files cannot give, no segment in the good time, or a
        dead time the rates make impossible.
    """
    from xtml.reference.deadtime import incident_rate
    from xtml.timing import EventData

    if isinstance(max_bins, bool) or int(max_bins) != max_bins or max_bins < 16:
        raise ValueError(f"max_bins must be an integer >= 16, got {max_bins!r}")
    sources = _sources(paths, energy_range, pi_range)
    mission = str(sources[0].mission).lower()
    gtis = [np.asarray(s.gti, dtype=np.float64).reshape(-1, 2) for s in sources]
    step = _file_dt(sources, dt)
    bins, n_use, available = _choose_segments(gtis, step, int(max_bins))
    if dt is None and isinstance(sources[0], EventData):  # coarser bins until half the good time is used
        good = min(float(np.sum(g[:, 1] - g[:, 0])) for g in gtis)
        while n_use * bins * step < 0.5 * good and step < 1.0:
            try:
                coarser = _choose_segments(gtis, 2 * step, int(max_bins))
            except ValueError:
                break
            step *= 2
            bins, n_use, available = coarser
    counts = [float(s.times.size) if isinstance(s, EventData) else float(np.sum(s.counts)) for s in sources]
    exposure = [float(s.exposure) for s in sources]
    detected = [c / e for c, e in zip(counts, exposure, strict=True)]
    photons = max(detected) * n_use * bins * step
    detector, notes = _detector(sources, mission, max(detected), step, photons, n_detectors)
    incident = (
        [float(incident_rate(r, detector.dead_time)) for r in detected]
        if detector.dead_time > 0
        else detected
    )
    notes.append("the background is part of the rate (a source file does not separate it)")
    notes += [n for s in sources for n in s.notes if n.endswith("cut out of the GTIs")]
    for s in sources:
        if getattr(s, "native_dt", None):
            notes.append(
                f"{s.path}: resampled from {s.native_dt:g} s bins; analysed at {step:g} s, a multiple of "
                f"the clean {s.clean_dt:g} s"
            )
    from xtml.timing import observation_spectrum

    first, _ = observation_spectrum(sources[0], dt=step, segment_size=bins * step, n_segments=n_use)
    return ObservationMatch(
        paths=tuple(str(p) for p in paths),
        mission=mission,
        target=str(getattr(sources[0], "target", "") or ""),
        kind="events" if isinstance(sources[0], EventData) else "light curve",
        dt=step,
        segment_bins=bins,
        n_segments=n_use,
        segments_available=tuple(available),
        detected_rate=tuple(detected),
        incident_rate=tuple(incident),
        exposure=tuple(exposure),
        detector=detector,
        energy_range=energy_range,
        pi_range=pi_range,
        notes=tuple(notes),
        rebin_log=_rebin_factor(first),
    )


def observation_spectrum_of(match: ObservationMatch, index: int = 0, rebin_log: float = 0.0) -> Any:
    """The averaged Leahy periodogram of file ``index`` on the matched grid (the first ``n_segments``
    segments), log-rebinned by ``rebin_log``."""
    from xtml.timing import observation_spectrum
    from xtml.timing.gaps import gti_without_gaps
    from xtml.timing.observation import read_observation

    source, _ = gti_without_gaps(
        read_observation(match.paths[index], energy_range=match.energy_range, pi_range=match.pi_range)
    )
    ps, _ = observation_spectrum(
        source,
        dt=match.dt,
        segment_size=match.segment_length,
        n_segments=match.n_segments,
        rebin_log_f=rebin_log,
    )
    return ps


def _rebin_factor(ps: Any) -> float:
    """The smallest log-rebinning factor that leaves at most ``_MAX_SPECTRUM_BINS`` frequencies of ``ps``."""
    from xtml.timing import rebin_log

    if ps.n_freq <= _MAX_SPECTRUM_BINS:
        return 0.0
    for f in (0.01, 0.02, 0.03, 0.05, 0.1, 0.2):
        if rebin_log(ps, f).n_freq <= _MAX_SPECTRUM_BINS:
            return f
    return 0.3


@dataclass(frozen=True)
class QuickFit:
    """The classical fit that sets a matched run's source model and priors (:func:`quick_fit`)."""

    model: str  # components, as `xtml fit --model` takes them
    params: dict[str, float]
    errors: dict[str, float]
    priors: dict[str, dict[str, Any]]
    aic: dict[str, float]  # candidate model -> AIC
    tests: tuple[str, ...]  # the calibrated LRT of each Lorentzian tried, as text
    chosen_by: str

    def text(self) -> str:
        lines = [f"source model {self.model} ({self.chosen_by})"]
        lines += [f"  candidate {m}: AIC {a:.2f}" for m, a in self.aic.items()]
        lines += [f"  {t}" for t in self.tests]
        lines.append(
            "  priors (around the dead-time-aware fit: five errors, at least x/3 for scales, +-50 % rms):"
        )
        for name, p in self.priors.items():
            lines.append(
                f"    {name:<16} {p['dist']:<10} [{p['low']:.4g}, {p['high']:.4g}]   fit "
                f"{self.params[name]:.4g} +- {self.errors[name]:.2g}"
            )
        return "\n".join(lines)


def _prior_box(name: str, value: float, error: float, bounds: tuple[float, float]) -> dict[str, Any]:
    lo_b, hi_b = bounds
    err = error if math.isfinite(error) and error > 0 else 0.0
    param = name.rsplit(".", 1)[-1]
    if param == "rms":
        lo, hi, dist = min(value - 5 * err, 0.5 * value), max(value + 5 * err, 1.5 * value), "uniform"
    elif param in ("index", "alpha_low", "alpha_high"):
        half = max(5 * err, 0.5)
        lo, hi, dist = value - half, value + half, "uniform"
    else:  # positive scales: frequencies, quality factors, normalisations
        factor = max(3.0, math.exp(5 * err / value)) if value > 0 else 3.0
        lo, hi, dist = value / factor, value * factor, "loguniform"
    lo, hi = max(lo, lo_b), min(hi, hi_b)
    if not lo < hi:
        lo, hi = lo_b, hi_b
    return {"dist": dist, "low": float(lo), "high": float(hi)}


def quick_fit(
    spectrum: Any,
    detector: DetectorMatch,
    *,
    model: str | None = None,
    n_sim: int = 100,
    alpha: float = 0.01,
    rng: int = 0,
) -> QuickFit:
    """The source model and priors of a matched run from a fit of the observation's spectrum.

    With ``model`` (components as ``xtml fit --model`` takes them) that model is fitted; otherwise the
    better (AIC) of a power law with its rms over the spectrum's band and a zero-centred Lorentzian, plus a
    Lorentzian QPO only if its calibrated likelihood-ratio test (``n_sim`` simulations, level ``alpha``)
    requires it. The fit is dead-time aware (Zhang et al. 1995) with the matched detector.
    """
    from xtml.reference.fitcli import component_tests, fit_report, parse_model

    def fit(text: str) -> Any:
        return fit_report(spectrum, parse_model(text), dead_time=detector.dead_time, rng=rng)

    f_lo, f_hi = float(spectrum.freq[0]), float(spectrum.freq[-1])
    tests: list[str] = []
    aic: dict[str, float] = {}
    if model is not None:
        chosen, report, how = model, fit(model), "given"
        aic[model] = float(report.result.aic[0])
        tests = (
            [t.text() for t in component_tests(report, n_sim=n_sim, alpha=alpha, rng=rng)] if n_sim else []
        )
    else:
        candidates = [f"red=powerlaw_rms:{f_lo:.6g}-{f_hi:.6g}", "broad=zero_lorentzian"]
        reports = {c: fit(c) for c in candidates}
        aic = {c: float(r.result.aic[0]) for c, r in reports.items()}
        chosen = min(aic, key=lambda c: aic[c])
        report, how = reports[chosen], "the continuum with the lower AIC"
        with_qpo = f"{chosen},qpo=lorentzian"
        qpo_report = fit(with_qpo)
        aic[with_qpo] = float(qpo_report.result.aic[0])
        test = component_tests(qpo_report, n_sim=n_sim, alpha=alpha, rng=rng) if n_sim else []
        tests = [t.text() for t in test]
        if test and test[0].required:
            chosen, report = with_qpo, qpo_report
            how += "; the QPO is required by the calibrated LRT"
        elif test:
            how += "; a QPO is not required by the calibrated LRT, so none is simulated"
        else:
            how += "; no QPO tested (n_sim = 0), so none is simulated"
    r = report.result
    params = {n: float(r.params[0, k]) for k, n in enumerate(r.param_names)}
    errors = {n: float(r.errors[0, k]) for k, n in enumerate(r.param_names)}
    source = [n for n in r.param_names if n != "noise.level"]
    priors = {n: _prior_box(n, params[n], errors[n], report.bounds[n]) for n in source}
    return QuickFit(
        model=chosen,
        params={n: params[n] for n in source},
        errors={n: errors[n] for n in source},
        priors=priors,
        aic=aic,
        tests=tuple(tests),
        chosen_by=how,
    )


def _components(model: str) -> dict[str, str]:
    return dict((s.strip() for s in part.split("=", 1)) for part in model.split(","))  # type: ignore[misc]


def _simulation_tables(match: ObservationMatch) -> dict[str, Any]:
    """The ``[observation]``, ``[rate]`` and ``[detector]`` tables of a run matched to ``match``."""
    d = match.detector
    detector: dict[str, Any] = {"n_modules": 1, "background_rate": 0.0}
    if d.dead_time > 0:
        detector["dead_time"] = {"value": d.dead_time, "kind": "nonparalyzable", "binned": d.binned}
    rates = np.asarray(match.incident_rate)
    return {
        "observation": {
            "dt": match.dt,
            "segment_bins": match.segment_bins,
            "n_segments": match.n_segments,
            "norm": "leahy",
            "rebin_log": match.rebin_log,
            "red_noise_factor": 2,
            # a light curve's bins integrate the power above the Nyquist frequency
            "alias_factor": 4 if match.kind == "light curve" else 1,
            # each segment its own light curve (twice its length): the fitted power law is not extrapolated
            # far below the band that constrains it (a steep one would take the rate of a 10,000 s light
            # curve to zero)
            "independent_segments": True,
        },
        "rate": {"dist": "loguniform", "low": 0.8 * float(rates.min()), "high": 1.25 * float(rates.max())},
        "detector": detector,
    }


def matched_sbi_config(
    match: ObservationMatch,
    fit: QuickFit,
    *,
    n_train: int = 20_000,
    n_test: int = 1_000,
    n_calibration: int = 1_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The SBI scenario (a TOML-ready dict, :func:`xtml.sbi.scenario.SBIConfig.from_dict`) of a matched
    run: the matched observation and detector, the fit's model and priors, the rate prior around the
    files' incident rates, and the NPE and validation of ``configs/sbi_nustar.toml``."""
    return {
        **_simulation_tables(match),
        "classes": {"matched": {"components": _components(fit.model), "priors": fit.priors}},
        "dataset": {"seed": seed, "chunk_size": 500},
        "sbi": {
            "n_train": n_train,
            "n_test": n_test,
            "n_calibration": n_calibration,
            "class": "matched",
            "parameters": [*fit.priors, "rate"],
            "channels": ["power"],
            "scalars": ["log_mean_rate"],
        },
        "npe": {
            "flow": "nsf",
            "embedding": "mlp",
            "embedding_hidden": [128, 128],
            "embedding_dim": 32,
            "n_ensemble": 1,
            "patience": 10,
        },
        "validation": {"n_samples": 1000, "coverage_tolerance": 0.02, "sbc_alpha": 0.01},
    }


@dataclass(frozen=True)
class ClassicalAnswer:
    """One classical estimate for one file: a fit's parameters and errors, or why there is none."""

    method: str
    params: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    status: str = ""
    note: str = ""

    def text(self) -> str:
        if not self.params:
            return f"{self.method}: {self.note}"
        values = "; ".join(f"{n} {v:.4g} +- {self.errors[n]:.2g}" for n, v in self.params.items())
        return f"{self.method} ({self.status}): {values}" + (f" [{self.note}]" if self.note else "")


def classical_answers(
    spectrum: Any, fit: QuickFit, detector: DetectorMatch, *, n_sim: int = 100, alpha: float = 0.01
) -> list[ClassicalAnswer]:
    """The classical answers for one spectrum with the matched model: the dead-time-aware (Zhang) fit, the
    naive fit (flat white noise, no dead time), the FAD fit (needs two modules: said so) and the
    calibrated likelihood-ratio test of every Lorentzian of the model (of a Lorentzian QPO added to it when
    it has none: is one required?)."""
    from xtml.psd import Lorentzian
    from xtml.reference.fitcli import component_tests, fit_report, parse_model

    psd = parse_model(fit.model)
    out = []
    zhang = None
    for method, tau in (("Zhang (dead-time-aware) fit", detector.dead_time), ("naive fit", 0.0)):
        report = fit_report(spectrum, psd, dead_time=tau)
        r = report.result
        names = [n for n in r.param_names if n != "noise.level"]
        k = [r.param_names.index(n) for n in names]
        out.append(
            ClassicalAnswer(
                method=method,
                params=dict(zip(names, r.params[0, k].tolist(), strict=True)),
                errors=dict(zip(names, r.errors[0, k].tolist(), strict=True)),
                status=str(r.status[0]),
                note="" if tau > 0 or method != "naive fit" else "ignores the dead time",
            )
        )
        zhang = report if zhang is None else zhang
    out.append(
        ClassicalAnswer(
            method="FAD fit",
            note="not available: the FAD needs two independent modules observing together (NuSTAR FPMA/FPMB)",
        )
    )
    if n_sim:
        tested = zhang
        if not any(isinstance(c, Lorentzian) for _, c in psd.components):  # is a QPO missing from the model?
            tested = fit_report(
                spectrum, parse_model(f"{fit.model},qpo=lorentzian"), dead_time=detector.dead_time
            )
        tests = component_tests(tested, n_sim=n_sim, alpha=alpha)
        out += [ClassicalAnswer(method="likelihood-ratio test", note=t.text()) for t in tests]
    return out


def _file_lines(
    rows: Sequence[Any], classical: Sequence[Sequence[ClassicalAnswer]], answer: Callable[[Any, str], str]
) -> list[str]:
    """Per file: its answer (``answer(row, scope text)``) with the scope flag, then the classical answers."""
    lines = []
    for row, answers in zip(rows, classical, strict=True):
        lines.append(f"{row.path}:")
        if row.error is not None:
            lines.append(f"  error: {row.error}")
            continue
        scope = "in scope" if row.in_scope else "OUT OF SCOPE: " + "; ".join(row.reasons)
        lines.append(f"  {answer(row, f'{scope}, scope p = {row.scope_p:.2g}')}")
        lines += [f"  {c.text()}" for c in answers]
    return lines


@dataclass(frozen=True)
class MatchedAnswer:
    """What ``xtml sbi train --like`` found: the derivation, the run, and per file the answers."""

    match: ObservationMatch
    fit: QuickFit
    run: str
    calibrated: bool
    rows: tuple[Any, ...]  # xtml.analyze.AnalysisRow per file
    classical: tuple[tuple[ClassicalAnswer, ...], ...]

    def text(self, derivation: bool = True) -> str:
        """The answers per file; with ``derivation`` first what was derived from the files."""
        lines = [self.match.text(), self.fit.text()] if derivation else []
        lines.append(
            f"run {self.run}: calibration "
            + ("passed" if self.calibrated else "FAILED (the posterior must not be used; answers marked)")
        )
        lines += _file_lines(
            self.rows, self.classical, lambda r, scope: f"SBI posterior ({scope}): {r.prediction}"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": asdict(self.match),
            "fit": asdict(self.fit),
            "run": self.run,
            "calibrated": self.calibrated,
            "answers": [
                {"sbi": row.to_dict(), "classical": [asdict(c) for c in classical]}
                for row, classical in zip(self.rows, self.classical, strict=True)
            ],
        }


def train_matched_sbi(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    model: str | None = None,
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
    dt: float | None = None,
    n_detectors: int | None = None,
    n_train: int = 20_000,
    n_test: int = 1_000,
    n_calibration: int = 1_000,
    n_sim: int = 100,
    seed: int = 0,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    n_threads: int | None = None,
    command: Sequence[str] | None = None,
) -> MatchedAnswer:
    """Derive a scenario from the files, train and check its posterior into ``out``, and answer for every
    file next to the classical answers (module docstring). The derivation is saved as ``matched.json``
    beside the run's record; an uncalibrated posterior still answers, marked as such."""
    from xtml.analyze import analyze_files
    from xtml.runs import load_record
    from xtml.sbi.run import train_sbi_run
    from xtml.sbi.scenario import SBIConfig

    say = log or (lambda _: None)
    match = match_observation(
        paths, energy_range=energy_range, pi_range=pi_range, dt=dt, n_detectors=n_detectors
    )
    say(match.text())
    spectrum = observation_spectrum_of(match, 0, rebin_log=match.rebin_log)
    fit = quick_fit(spectrum, match.detector, model=model, n_sim=n_sim)
    say(fit.text())
    raw = matched_sbi_config(
        match, fit, n_train=n_train, n_test=n_test, n_calibration=n_calibration, seed=seed
    )
    config = SBIConfig.from_dict(raw)
    run = train_sbi_run(config, out, overwrite=overwrite, log=log, n_threads=n_threads, command=command)
    (Path(run) / "matched.json").write_text(
        json.dumps({"match": asdict(match), "fit": asdict(fit)}, indent=1, default=float)
    )
    calibrated = load_record(run).status == "complete"
    rows = analyze_files(
        list(match.paths),
        [run],
        energy_range=energy_range,
        n_samples=2000,
        seed=seed,
        allow_uncalibrated=not calibrated,
        exclude_gaps=True,
        pi_range=pi_range,
    )
    classical = []
    rebin = raw["observation"]["rebin_log"]
    for k in range(len(match.paths)):
        ps = observation_spectrum_of(match, k, rebin_log=rebin)
        classical.append(tuple(classical_answers(ps, fit, match.detector, n_sim=n_sim)))
    return MatchedAnswer(
        match=match,
        fit=fit,
        run=str(run),
        calibrated=calibrated,
        rows=tuple(rows),
        classical=tuple(classical),
    )


#: The training of a matched detection run: the demo's protocol without the CNN (xtml.demo.DEMO_TRAIN), the
#: likelihood-ratio test on every test spectrum with the matched continuum as its null.
MATCHED_TRAIN = {
    "task": {"kind": "detect"},
    "split": {"fractions": [0.5, 0.1, 0.4], "seed": 1},
    "cv": {"n_splits": 3},
    "models": {
        "logistic": {"search": {"C": [0.1, 1.0, 10.0]}},
        "random_forest": {"params": {"n_estimators": 200}},
    },
    "evaluation": {"n_boot": 500, "fpr": 0.01},
}


def _continuum(fit: QuickFit) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The fit's components and priors without a QPO: what a no-QPO observation of this source looks like."""
    components = {k: v for k, v in _components(fit.model).items() if k != "qpo"}
    priors = {n: p for n, p in fit.priors.items() if n.split(".", 1)[0] in components}
    return components, priors


def matched_detection_config(
    match: ObservationMatch, fit: QuickFit, *, seed: int = 0, qpo_weight: float = 0.5
) -> dict[str, Any]:
    """The simulation (a TOML-ready dict, :meth:`xtml.data.SimulationConfig.from_dict`) of a matched
    detection run: the matched observation and detector; a ``noise`` class (the fit's continuum and its
    priors) and a ``qpo`` class (the same continuum plus a Lorentzian QPO anywhere between 8 / T_seg and
    half the Nyquist frequency, Q 2-20, its rms log-uniform from a tenth to three times the continuum's
    fitted rms, within 0.2-30 %), ``qpo_weight`` of the observations with a QPO."""
    components, priors = _continuum(fit)
    f_lo, f_hi = 8.0 / match.segment_length, 0.25 / match.dt
    # QPO strengths relative to the source's own variability: a tenth to three times its continuum rms
    c = math.sqrt(sum(v**2 for n, v in fit.params.items() if n.endswith(".rms") and not n.startswith("qpo.")))
    qpo = {
        "qpo.nu0": {"dist": "loguniform", "low": f_lo, "high": f_hi},
        "qpo.q": {"dist": "loguniform", "low": 2.0, "high": 20.0},
        "qpo.rms": {"dist": "loguniform", "low": max(2e-3, 0.1 * c), "high": min(0.3, max(0.05, 3 * c))},
    }
    return {
        **_simulation_tables(match),
        "classes": {
            "noise": {"weight": 1 - qpo_weight, "components": components, "priors": priors},
            "qpo": {
                "weight": qpo_weight,
                "components": {**components, "qpo": "lorentzian"},
                "priors": {**priors, **qpo},
            },
        },
        "dataset": {"seed": seed, "chunk_size": 250},
    }


@dataclass(frozen=True)
class MatchedDetection:
    """What ``xtml train --like`` found: the derivation, the run, the headline, and per file the answer."""

    match: ObservationMatch
    fit: QuickFit
    run: str
    headline: str
    rows: tuple[Any, ...]
    classical: tuple[tuple[ClassicalAnswer, ...], ...]

    def text(self, derivation: bool = True) -> str:
        lines = [self.match.text(), self.fit.text()] if derivation else []
        lines.append(f"run {self.run}: {self.headline}")
        lines += _file_lines(
            self.rows, self.classical, lambda r, scope: f"{r.model}: {r.prediction} ({scope})"
        )
        return "\n".join(lines)


def train_matched_detection(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    n: int = 4000,
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
    dt: float | None = None,
    n_detectors: int | None = None,
    n_sim: int = 100,
    seed: int = 0,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
) -> MatchedDetection:
    """Derive a QPO-detection scenario from the files, simulate ``n`` observations into ``OUT/data``,
    train and evaluate the classifiers against the likelihood-ratio test into ``OUT/detect``, and answer
    for every file next to its calibrated LRT (module docstring; the continuum and priors: :func:`quick_fit`).
    """
    from xtml.analyze import analyze_files
    from xtml.data import SimulationConfig
    from xtml.data.simrun import simulate_run
    from xtml.learn import TrainConfig
    from xtml.learn.evaluate import evaluate_run
    from xtml.learn.headline import fmt_interval
    from xtml.learn.train import json_ready, train_run

    say = log or (lambda _: None)
    out = Path(out)
    match = match_observation(
        paths, energy_range=energy_range, pi_range=pi_range, dt=dt, n_detectors=n_detectors
    )
    say(match.text())
    rebin = match.rebin_log
    fit = quick_fit(observation_spectrum_of(match, 0, rebin_log=rebin), match.detector, n_sim=n_sim)
    say(fit.text())
    config = SimulationConfig.from_dict(matched_detection_config(match, fit, seed=seed))
    data = simulate_run(config, n, out / "data", seed=seed, overwrite=overwrite, progress=log is not None)
    components, _ = _continuum(fit)
    train = dict(MATCHED_TRAIN)
    train["reference"] = {
        "test": "lrt",
        "null": components,
        "alt": {**components, "qpo": "lorentzian"},
        "max_spectra": n,  # every test spectrum
    }
    run = train_run(TrainConfig.from_dict(train), data, out / "detect", overwrite=overwrite, log=log)
    h = json_ready(evaluate_run(run, plots=False))["headline"]
    best = h["scorers"][h["best_model"]]
    headline = (
        f"{h['best_model']} {h['label']} "
        f"{fmt_interval(best['tpr_at_fpr'], best['tpr_at_fpr_low'], best['tpr_at_fpr_high'])}; {h['verdict']}"
    )
    rows = analyze_files(
        list(match.paths), [run], energy_range=energy_range, pi_range=pi_range, exclude_gaps=True
    )
    classical = []
    for k in range(len(match.paths)):
        ps = observation_spectrum_of(match, k, rebin_log=rebin)
        answers = classical_answers(
            ps,
            replace(fit, model=",".join(f"{a}={b}" for a, b in components.items())),
            match.detector,
            n_sim=n_sim,
        )
        classical.append(tuple(a for a in answers if a.method == "likelihood-ratio test"))
    return MatchedDetection(
        match=match, fit=fit, run=str(run), headline=headline, rows=tuple(rows), classical=tuple(classical)
    )
