"""Simulation configurations: a TOML file, checked strictly, resolved into frozen dataclasses.

A configuration names the observation (bin width, segments, detector modules), the prior on
the mean count rate, one or more classes (each a PSD model and a prior over its parameters),
and how the dataset is stored.  Unknown keys are errors that list the valid ones: a typo must
never silently fall back to a default.  See ``configs/*.toml`` for commented examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from xtml._files import read_toml
from xtml.psd import JointPrior, Prior1D, PSDModel, prior_from_config
from xtml.simulate import DeadTime, Detector, EnergySpectrum, PileUp
from xtml.timing import PowerSpectrum, rebin_linear, rebin_log

__all__ = [
    "ClassSpec",
    "DatasetSpec",
    "ObservationSpec",
    "SimulationConfig",
    "load_config",
]

Norm = Literal["leahy", "frac", "abs"]
_NORMS = ("leahy", "frac", "abs")
_SPLITS = ("train", "validation", "test")


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; valid keys: {', '.join(allowed)}")


def _get_int(table: Mapping[str, Any], key: str, default: int, minimum: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"[{where}] {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _get_bool(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"[{where}] {key} must be true or false, got {value!r}")
    return value


def _get_float(table: Mapping[str, Any], key: str, default: float | None, where: str) -> float:
    if key not in table and default is None:
        raise ValueError(f"[{where}] {key} is required")
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"[{where}] {key} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ObservationSpec:
    """How the source is observed and turned into a spectrum.

    Attributes
    ----------
    dt : float
        Bin width, s (Nyquist frequency ``1 / (2 dt)``).
    segment_bins : int
        Bins per segment; the spectrum has ``(segment_bins - 1) // 2`` Fourier frequencies
        (Nyquist excluded) before rebinning.
    n_segments : int
        Segments averaged per spectrum (M); the light curve has ``n_segments * segment_bins`` bins.
    fad : bool
        With two detector modules, also store the FAD dead-time-corrected total power
        (Bachetti & Huppenkothen 2018).
    red_noise_factor, alias_factor : int
        Oversampling in duration and time resolution (see ``xtml.simulate.simulate_rate``).
    independent_segments : bool
        Simulate each of the ``n_segments`` segments as its own light curve (``red_noise_factor`` times
        the segment, the first segment's worth kept) instead of cutting them from one light curve of the
        whole observation (the default, as a real observation is). With ``red_noise_factor = 1`` each
        segment is then a periodic Timmer & Koenig realisation, whose periodogram is exactly the
        exponential law of the PSD: the exact Whittle likelihood holds (SBI scenario (a), where MCMC is
        the reference). Contiguous segments of one process leak power between frequencies (the Fejér
        window of a segment), which no Whittle likelihood models.
    norm : {"leahy", "frac", "abs"}
    rebin_linear : int
        Average this many adjacent frequencies (1 = none).
    rebin_log : float
        Logarithmic rebinning factor f (0 = none), applied after linear rebinning.
    """

    dt: float
    segment_bins: int
    n_segments: int = 1
    fad: bool = False
    red_noise_factor: int = 1
    alias_factor: int = 1
    norm: Norm = "leahy"
    rebin_linear: int = 1
    rebin_log: float = 0.0
    independent_segments: bool = False

    @property
    def n_bins(self) -> int:
        """Bins per simulated light curve."""
        return self.segment_bins * self.n_segments

    @property
    def segment_length(self) -> float:
        """Segment duration, s."""
        return self.segment_bins * self.dt

    def rebin(self, ps: PowerSpectrum) -> PowerSpectrum:
        """Apply this observation's linear, then logarithmic, rebinning to a spectrum."""
        if self.rebin_linear > 1:
            ps = rebin_linear(ps, self.rebin_linear)
        if self.rebin_log > 0:
            ps = rebin_log(ps, self.rebin_log)
        return ps


@dataclass(frozen=True)
class ClassSpec:
    """One class of sources: a PSD model, a prior over its parameters, and a sampling weight."""

    name: str
    model: PSDModel
    prior: JointPrior
    weight: float


@dataclass(frozen=True)
class DatasetSpec:
    """How the dataset is generated and stored."""

    seed: int
    chunk_size: int = 1000
    store_lightcurves: bool = False
    power_dtype: Literal["float32", "float64"] = "float32"
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    spectra_per_observation: int = 1


@dataclass(frozen=True)
class SimulationConfig:
    """A resolved, validated simulation configuration."""

    observation: ObservationSpec
    rate: Prior1D
    classes: tuple[ClassSpec, ...]
    dataset: DatasetSpec
    detector: Detector = field(default_factory=Detector)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names; a label is the index into this tuple."""
        return tuple(c.name for c in self.classes)

    @property
    def param_names(self) -> tuple[str, ...]:
        """``"rate"`` then the union of the classes' parameters, in first-seen order."""
        names = ["rate"]
        for c in self.classes:
            names += [p for p in c.model.param_names if p not in names]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        """The canonical configuration (every default filled in), as TOML-ready data."""
        o = self.observation
        d = self.dataset
        return {
            "observation": {
                "dt": o.dt,
                "segment_bins": o.segment_bins,
                "n_segments": o.n_segments,
                "fad": o.fad,
                "red_noise_factor": o.red_noise_factor,
                "alias_factor": o.alias_factor,
                "norm": o.norm,
                "rebin_linear": o.rebin_linear,
                "rebin_log": o.rebin_log,
                # written only when set: configurations (and their hashes) from before it are unchanged
                **({"independent_segments": True} if o.independent_segments else {}),
            },
            "rate": self.rate.to_config(),
            "classes": {
                c.name: {
                    "weight": c.weight,
                    "components": c.model.to_kinds(),
                    "priors": c.prior.to_config(),
                }
                for c in self.classes
            },
            "detector": detector_to_dict(self.detector),
            "dataset": {
                "seed": d.seed,
                "chunk_size": d.chunk_size,
                "store_lightcurves": d.store_lightcurves,
                "power_dtype": d.power_dtype,
                "split": dict(zip(_SPLITS, d.split, strict=True)),
                "spectra_per_observation": d.spectra_per_observation,
            },
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SimulationConfig:
        """Validate a configuration mapping (as read from TOML) and resolve it."""
        _check_keys(raw, ("observation", "rate", "classes", "detector", "dataset"), "top level")
        for key in ("observation", "rate", "classes"):
            if key not in raw:
                raise ValueError(f"configuration needs a [{key}] table")
        obs = _observation(raw["observation"])
        rate = prior_from_config("rate", raw["rate"])
        low, _ = rate.support
        if low <= 0:
            raise ValueError(f"[rate] prior must stay above 0 ct/s, got support {rate.support}")
        classes = _classes(raw["classes"], obs)
        dataset = _dataset(raw.get("dataset", {}))
        detector = detector_from_dict(raw.get("detector", {}))
        _check_detector(detector, obs)
        return cls(observation=obs, rate=rate, classes=classes, dataset=dataset, detector=detector)


def _observation(t: Mapping[str, Any]) -> ObservationSpec:
    w = "observation"
    _check_keys(t, tuple(ObservationSpec.__dataclass_fields__), w)
    dt = _get_float(t, "dt", None, w)
    if dt <= 0:
        raise ValueError(f"[observation] dt must be > 0 s, got {dt}")
    norm = t.get("norm", "leahy")
    if norm not in _NORMS:
        raise ValueError(f"[observation] norm must be one of {', '.join(_NORMS)}, got {norm!r}")
    rebin_log = _get_float(t, "rebin_log", 0.0, w)
    if rebin_log < 0:
        raise ValueError(f"[observation] rebin_log must be >= 0 (0 = no log rebinning), got {rebin_log}")
    if "segment_bins" not in t:
        raise ValueError("[observation] segment_bins is required")
    segment_bins = _get_int(t, "segment_bins", 0, 4, w)
    linear = _get_int(t, "rebin_linear", 1, 1, w)
    n_fourier = (segment_bins - 1) // 2  # Nyquist excluded
    if linear > n_fourier:
        raise ValueError(
            f"[observation] rebin_linear = {linear} is more than the {n_fourier} Fourier frequencies of "
            f"segment_bins = {segment_bins}: it must be an integer in [1, {n_fourier}]"
        )
    return ObservationSpec(
        dt=dt,
        segment_bins=segment_bins,
        n_segments=_get_int(t, "n_segments", 1, 1, w),
        fad=_get_bool(t, "fad", False, w),
        red_noise_factor=_get_int(t, "red_noise_factor", 1, 1, w),
        alias_factor=_get_int(t, "alias_factor", 1, 1, w),
        norm=norm,
        rebin_linear=linear,
        rebin_log=rebin_log,
        independent_segments=_get_bool(t, "independent_segments", False, w),
    )


def _classes(t: Mapping[str, Any], obs: ObservationSpec) -> tuple[ClassSpec, ...]:
    if not isinstance(t, Mapping) or not t:
        raise ValueError("[classes] needs at least one class table, e.g. [classes.qpo]")
    out = []
    nyquist = 0.5 / obs.dt
    for name, spec in t.items():
        where = f"classes.{name}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"[{where}] must be a table")
        _check_keys(spec, ("components", "priors", "weight"), where)
        if "components" not in spec or "priors" not in spec:
            raise ValueError(f"[{where}] needs 'components' and 'priors'")
        try:
            model = PSDModel.from_kinds(spec["components"])
            prior = JointPrior.from_config(spec["priors"])
            prior.require(model.param_names)
        except ValueError as err:
            raise ValueError(f"[{where}] {err}") from None
        for pname, p in prior.priors.items():
            if pname.endswith(".nu0") and p.support[1] >= nyquist:
                raise ValueError(
                    f"[{where}] prior on {pname} reaches {p.support[1]} Hz, at or above the Nyquist "
                    f"frequency {nyquist} Hz of dt = {obs.dt} s"
                )
        # check the prior's whole box against the component bounds
        lows = np.array([[p.support[0] for p in prior.priors.values()]])
        highs = np.array([[p.support[1] for p in prior.priors.values()]])
        try:
            model.check(lows)
            model.check(highs)
        except ValueError as err:
            raise ValueError(f"[{where}] prior range not allowed: {err}") from None
        _check_rate_variability(where, model, prior, obs)
        weight = _get_float(spec, "weight", 1.0, where)
        if weight <= 0:
            raise ValueError(f"[{where}] weight must be > 0, got {weight}")
        out.append(ClassSpec(name=str(name), model=model, prior=prior, weight=weight))
    return tuple(out)


#: A class is refused when more than this fraction of its prior draws give the Gaussian rate of Timmer &
#: Koenig a fractional rms above ``MAX_RATE_RMS``.
MAX_FRACTION_OVER = 0.05
#: Fractional rms of the simulated rate above which it is negative (and clipped to 0 by the simulator)
#: 16 % of the time or more: the light curve no longer has the PSD that was asked for.
MAX_RATE_RMS = 1.0


def rate_rms(model: PSDModel, theta: np.ndarray, obs: ObservationSpec, n_freq: int = 1024) -> np.ndarray:
    """Fractional rms of the simulated rate for parameter rows ``theta`` (``model.param_names`` order).

    The PSD integrated over what the simulator draws: from ``1 / T`` (``T`` the simulated light curve,
    ``red_noise_factor`` times a segment or the whole observation) to the Nyquist frequency of the fine
    grid (``dt / alias_factor``), on a logarithmic grid of ``n_freq`` points.  Shape (n,).
    """
    bins = obs.segment_bins if obs.independent_segments else obs.n_bins
    length = bins * obs.dt * obs.red_noise_factor
    f_lo, f_hi = 1.0 / length, 0.5 * obs.alias_factor / obs.dt
    f = np.geomspace(f_lo, f_hi, n_freq)
    power = model.evaluate(f, theta, check=False) * f  # per ln(nu)
    var = np.sum(0.5 * (power[:, 1:] + power[:, :-1]) * np.diff(np.log(f)), axis=1)
    return np.sqrt(np.maximum(var, 0.0))


def _check_rate_variability(where: str, model: PSDModel, prior: JointPrior, obs: ObservationSpec) -> None:
    """Refuse a prior whose light curves would mostly be clipped at zero rate, saying so in its terms."""
    from scipy import stats

    names = list(prior.priors)
    theta = prior.sample(512, 0)[:, [names.index(n) for n in model.param_names]]
    rms = rate_rms(model, theta, obs)
    over = rms > MAX_RATE_RMS
    if over.mean() <= MAX_FRACTION_OVER:
        return
    free = [k for k in range(theta.shape[1]) if np.ptp(theta[:, k]) > 0]
    rho = {k: stats.spearmanr(theta[:, k], rms).statistic for k in free}
    k = max(rho, key=lambda j: abs(rho[j]))
    name = model.param_names[k]
    order = np.argsort(theta[:, k] if rho[k] > 0 else -theta[:, k])
    # the widest prior range on the driving parameter that keeps the draws within the limit
    bad_so_far = np.cumsum(over[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(bad_so_far <= MAX_FRACTION_OVER / 2)  # half: a margin for the 512 draws
    worst = int(np.argmax(rms))
    row = ", ".join(f"{n} = {v:.3g}" for n, v in zip(model.param_names, theta[worst], strict=True))
    hint = ""
    if ok.size:
        limit = float(theta[order[ok[-1]], k])
        hint = (
            f"; an {'upper' if rho[k] > 0 else 'lower'} bound of about {limit:.3g} on {name} brings it "
            f"under {100 * MAX_FRACTION_OVER:.0f} % of the draws"
        )
    bins = obs.segment_bins if obs.independent_segments else obs.n_bins
    f_lo = 1.0 / (bins * obs.dt * obs.red_noise_factor)
    raise ValueError(
        f"[{where}] the prior implies a rate curve that is negative much of the time: in "
        f"{100 * over.mean():.0f} % of its draws the fractional rms of the rate over {f_lo:.3g}-"
        f"{0.5 * obs.alias_factor / obs.dt:.3g} Hz exceeds {MAX_RATE_RMS:g} (a Gaussian rate is then "
        "below 0, and clipped to 0, at least 16 % of the time; the light curves would not have the PSD of "
        f"the prior). Median rms {np.median(rms):.2g}, largest {rms[worst]:.2g} at {row}. It rises most "
        f"with {name} (Spearman {rho[k]:+.2f}){hint}"
    )


def _dataset(t: Mapping[str, Any]) -> DatasetSpec:
    w = "dataset"
    _check_keys(t, tuple(DatasetSpec.__dataclass_fields__), w)
    power_dtype = t.get("power_dtype", "float32")
    if power_dtype not in ("float32", "float64"):
        raise ValueError(f"[dataset] power_dtype must be 'float32' or 'float64', got {power_dtype!r}")
    store_lc = _get_bool(t, "store_lightcurves", False, w)
    split_t = t.get("split", {"train": 0.7, "validation": 0.15, "test": 0.15})
    if not isinstance(split_t, Mapping):
        raise ValueError("[dataset] split must be a table {train = ..., validation = ..., test = ...}")
    _check_keys(split_t, _SPLITS, "dataset.split")
    split = tuple(_get_float(split_t, k, 0.0, "dataset.split") for k in _SPLITS)
    if any(s < 0 for s in split) or not np.isclose(sum(split), 1.0):
        raise ValueError(f"[dataset.split] fractions must be >= 0 and sum to 1, got {split}")
    return DatasetSpec(
        seed=_get_int(t, "seed", 0, 0, w),
        chunk_size=_get_int(t, "chunk_size", 1000, 1, w),
        store_lightcurves=store_lc,
        power_dtype=power_dtype,
        split=split,  # type: ignore[arg-type]
        spectra_per_observation=_get_int(t, "spectra_per_observation", 1, 1, w),
    )


def load_config(path: str | Path) -> SimulationConfig:
    """Read and validate a TOML configuration file (or the ``config.toml`` of an ``xtml simulate`` run).

    Errors name the file and the offending key; a missing file says where it looked.
    """
    p = Path(path)
    raw = read_toml(p, "configuration file")
    if set(raw) == {"n", "seed", "chunk_size", "simulation"} and isinstance(raw["simulation"], dict):
        raw = raw["simulation"]  # the config.toml of an `xtml simulate` run: its [simulation] table
    try:
        return SimulationConfig.from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from None


#: A binned dead time (counts drawn from their renewal moments) needs simulation steps this many dead times
#: long: shorter bins correlate through the dead time, which only the event-level simulation follows.
BINNED_DEAD_TIME_MIN_STEPS = 100


def _check_detector(det: Detector, obs: ObservationSpec) -> None:
    if obs.fad and det.n_modules != 2:
        raise ValueError(f"[observation] fad = true needs [detector] n_modules = 2, got {det.n_modules}")
    dead = det.dead_time
    if dead is not None and dead.binned:
        step = obs.dt / obs.alias_factor
        if step < BINNED_DEAD_TIME_MIN_STEPS * dead.mean:
            raise ValueError(
                f"[detector.dead_time] binned = true needs simulation steps (dt / alias_factor = {step:g} s) "
                f">= {BINNED_DEAD_TIME_MIN_STEPS} dead times ({BINNED_DEAD_TIME_MIN_STEPS * dead.mean:g} s); "
                "use the event-level dead time (binned = false) for finer bins"
            )
    if det.pileup is not None:
        fine = obs.dt / obs.alias_factor
        if not np.isclose(fine, det.pileup.frame_time, rtol=1e-9, atol=0):
            raise ValueError(
                f"[detector.pileup] frame_time = {det.pileup.frame_time} s must equal the simulation step "
                f"dt / alias_factor = {fine} s (photons are counted per frame)"
            )


def detector_from_dict(t: Mapping[str, Any]) -> Detector:
    """Build a :class:`~xtml.simulate.Detector` from its ``[detector]`` table."""
    w = "detector"
    _check_keys(t, ("n_modules", "background_rate", "dead_time", "pileup"), w)
    dead = None
    if "dead_time" in t:
        d = t["dead_time"]
        wd = "detector.dead_time"
        if not isinstance(d, Mapping):
            raise ValueError(f"[{wd}] must be a table like {{value = 2.5e-3, kind = 'nonparalyzable'}}")
        _check_keys(d, ("value", "kind", "sigma", "samples", "binned"), wd)
        samples = d.get("samples")
        binned = _get_bool(d, "binned", False, wd)
        try:
            if samples is not None:
                dead = DeadTime.empirical(samples, kind=d.get("kind", "nonparalyzable"))
                if "value" in d and not np.isclose(float(d["value"]), dead.value, rtol=1e-6):
                    raise ValueError(f"value {d['value']} differs from the mean of samples {dead.value}")
                if binned:
                    dead = DeadTime(dead.value, dead.kind, samples=dead.samples, binned=True)
            else:
                dead = DeadTime(
                    value=_get_float(d, "value", None, wd),
                    kind=d.get("kind", "nonparalyzable"),
                    sigma=_get_float(d, "sigma", 0.0, wd),
                    binned=binned,
                )
        except ValueError as err:
            raise ValueError(f"[{wd}] {err}") from None
    pile = None
    if "pileup" in t:
        p = t["pileup"]
        wp = "detector.pileup"
        if not isinstance(p, Mapping):
            raise ValueError(f"[{wp}] must be a table like {{frame_time = 2.5e-3, band = [0.5, 10.0]}}")
        _check_keys(p, ("frame_time", "band", "migration_prob", "spectrum"), wp)
        spec_t = p.get("spectrum", {})
        _check_keys(spec_t, ("index", "e_min", "e_max", "energies", "weights"), f"{wp}.spectrum")
        band = p.get("band", [0.5, 10.0])
        if not isinstance(band, list | tuple) or len(band) != 2:
            raise ValueError(f"[{wp}] band must be [low, high] in keV, got {band!r}")
        try:
            spectrum = EnergySpectrum(
                e_min=float(spec_t.get("e_min", 0.5)),
                e_max=float(spec_t.get("e_max", 10.0)),
                index=float(spec_t.get("index", 2.0)),
                energies=tuple(map(float, spec_t["energies"])) if "energies" in spec_t else None,
                weights=tuple(map(float, spec_t["weights"])) if "weights" in spec_t else None,
            )
            pile = PileUp(
                frame_time=_get_float(p, "frame_time", None, wp),
                band=(float(band[0]), float(band[1])),
                migration_prob=_get_float(p, "migration_prob", 0.0, wp),
                spectrum=spectrum,
            )
        except ValueError as err:
            raise ValueError(f"[{wp}] {err}") from None
    try:
        return Detector(
            n_modules=_get_int(t, "n_modules", 1, 1, w),
            dead_time=dead,
            background_rate=_get_float(t, "background_rate", 0.0, w),
            pileup=pile,
        )
    except ValueError as err:
        raise ValueError(f"[{w}] {err}") from None


def detector_to_dict(det: Detector) -> dict[str, Any]:
    """The ``[detector]`` table of a Detector (the inverse of :func:`detector_from_dict`)."""
    out: dict[str, Any] = {"n_modules": det.n_modules, "background_rate": det.background_rate}
    if det.dead_time is not None:
        d = det.dead_time
        dead: dict[str, Any] = {"value": d.value, "kind": d.kind}
        if d.samples is not None:
            dead["samples"] = list(d.samples)
        else:
            dead["sigma"] = d.sigma
        if d.binned:
            dead["binned"] = True
        out["dead_time"] = dead
    if det.pileup is not None:
        p = det.pileup
        s = p.spectrum
        spectrum: dict[str, Any] = (
            {"energies": list(s.energies), **({"weights": list(s.weights)} if s.weights is not None else {})}
            if s.energies is not None
            else {"index": s.index, "e_min": s.e_min, "e_max": s.e_max}
        )
        out["pileup"] = {
            "frame_time": p.frame_time,
            "band": list(p.band),
            "migration_prob": p.migration_prob,
            "spectrum": spectrum,
        }
    return out
