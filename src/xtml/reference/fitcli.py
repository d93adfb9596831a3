"""The library side of ``xtml fit``: load a spectrum, fit a model, report a table, optionally a plot."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from xtml.psd import PSDModel
from xtml.reference.defaults import default_bounds
from xtml.reference.fit import FitResult, fit_spectra
from xtml.reference.likelihood import NoiseKind, SpectralModel
from xtml.timing import PowerSpectrum, observation_spectrum

__all__ = [
    "FitReport",
    "dataset_dead_time",
    "dataset_model",
    "fit_report",
    "load_spectrum",
    "parse_model",
    "rate_text",
]


def parse_model(text: str) -> PSDModel:
    """``"broad=zero_lorentzian,qpo=lorentzian"`` -> PSDModel (names and kinds as in configs)."""
    kinds: dict[str, str] = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"--model needs name=kind pairs separated by commas, got {part!r} in {text!r}")
        name, kind = (s.strip() for s in part.split("=", 1))
        kinds[name] = kind
    return PSDModel.from_kinds(kinds)


def load_spectrum(
    path: str | Path,
    *,
    index: int = 0,
    dt: float = 1 / 256,
    segment_size: float = 16.0,
    rebin_log: float = 0.0,
    array: str = "power",
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
) -> tuple[PowerSpectrum, dict[str, Any]]:
    """One spectrum from an xtml dataset (``DIR.zarr``, row ``index``, ``array``), an event file or a light
    curve (FITS or ASCII, :func:`~xtml.timing.observation.read_observation`).

    A file goes through :func:`~xtml.timing.observation_spectrum`, the function ``xtml analyze``
    uses: all whole segments of ``segment_size`` in its GTIs (an event file's events in ``energy_range``
    and ``pi_range``,
    keV). An event file's dead time, where it states one (a PRIOR column), is in the notes. Returns the
    spectrum and its notes: for a file, the rate in the analysed segments and over all the good time
    (``observation_spectrum``'s notes, with ``file_rate_cps``), so that a rate is never quoted without
    the exposure it is measured over.
    """
    p = Path(path)
    if p.is_dir():
        from xtml.data import open_dataset

        ds = open_dataset(p)
        if not 0 <= index < ds.n:
            raise ValueError(f"--index must be in [0, {ds.n}) for {p}, got {index}")
        ps = ds.spectra(np.array([index]), array=array)
        o = ds.config.observation
        exposure = o.n_segments * o.segment_length
        rate = float(ps.mean_rate[0])
        return ps, {"exposure_analysed_s": exposure, "exposure_total_s": exposure, "mean_rate_cps": rate}
    if array != "power":
        raise ValueError(f"event files give the total power only; --spectrum {array} needs an xtml dataset")
    from xtml.timing import EventData
    from xtml.timing.io import dead_time_detectors
    from xtml.timing.observation import read_observation

    source = read_observation(p, energy_range=energy_range, pi_range=pi_range)
    if isinstance(source, EventData):
        ps, notes = observation_spectrum(source, dt=dt, segment_size=segment_size, rebin_log_f=rebin_log)
        notes["file_rate_cps"] = source.times.size / float(source.exposure)
        if source.dead_time is not None:  # per event of one detector; n of them summed act as one with tau/n
            n_det = dead_time_detectors(source)
            column = "PRIOR" if str(source.mission).lower() == "nustar" else "DEADTIME"
            notes["dead_time_s"] = float(source.dead_time) / n_det
            notes["dead_time_source"] = f"the file's {column} column (mean dead time per event)" + (
                f" over the {n_det} detectors with events, summed" if n_det > 1 else ""
            )
    else:
        ps, notes = observation_spectrum(source, dt=dt, segment_size=segment_size, rebin_log_f=rebin_log)
    return ps, notes


def rate_text(notes: dict[str, Any]) -> str:
    """``"0.9844 ct/s in the 32 s analysed (4 segments of 8 s); 0.8148 ct/s over all 1226 s of good time"``.

    The one way ``xtml fit`` and ``xtml analyze`` quote the rate of a file: the rate of the part analysed
    and, when it is not the whole file, the rate over all the good time, so that two numbers for one file
    say why they differ.
    """
    rate, analysed = notes["mean_rate_cps"], notes["exposure_analysed_s"]
    text = f"{rate:.4g} ct/s in the {analysed:.6g} s analysed"
    if "segments_used" in notes:
        text += f" ({notes['segments_used']} segments of {notes['segment_length_s']:.6g} s)"
    if "file_rate_cps" in notes and notes["exposure_total_s"] > analysed * (1 + 1e-9):
        text += f"; {notes['file_rate_cps']:.4g} ct/s over all {notes['exposure_total_s']:.6g} s of good time"
    return text


@dataclass(frozen=True)
class FitReport:
    """A fit of one spectrum with the bounds used."""

    spectrum: PowerSpectrum
    model: SpectralModel
    bounds: dict[str, tuple[float, float]]
    result: FitResult

    def table(self) -> str:
        """A plain-text table of the best fit, errors and bounds."""
        r = self.result
        lines = [f"{'parameter':<16} {'value':>12} {'error':>12}   bounds"]
        for k, name in enumerate(r.param_names):
            lo, hi = self.bounds[name]
            lines.append(f"{name:<16} {r.params[0, k]:>12.5g} {r.errors[0, k]:>12.3g}   [{lo:.3g}, {hi:.3g}]")
        lines.append(
            f"log L = {r.loglike[0]:.3f}   AIC = {r.aic[0]:.2f}   BIC = {r.bic[0]:.2f}   "
            f"status: {r.status[0]}"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        r = self.result
        return {
            "params": dict(zip(r.param_names, r.params[0].tolist(), strict=True)),
            "errors": dict(zip(r.param_names, r.errors[0].tolist(), strict=True)),
            "loglike": float(r.loglike[0]),
            "aic": float(r.aic[0]),
            "bic": float(r.bic[0]),
            "status": r.status[0],
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "n_freq": int(self.spectrum.n_freq),
            "norm": self.spectrum.norm,
        }

    def plot(self, path: str | Path) -> Path:
        """Save data with errors and the best-fit model to a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from xtml.critique import plot_spectra

        best = replace(self.spectrum, power=self.model.expected(self.result.params, self.spectrum))
        ax = plot_spectra(self.spectrum, [0], expected=best, labels=["data and best fit"])
        out = Path(path)
        ax.figure.savefig(out, dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        return out


def dataset_dead_time(path: str | Path) -> tuple[float, int]:
    """Constant non-paralyzable dead time (s) and module count of the detector of an xtml dataset.

    ``(0.0, n_modules)`` for an ideal or CCD detector and for event files.  A dead time the Zhang model
    cannot describe (paralyzable, or drawn from a distribution) raises ``ValueError``: fit the
    FAD-corrected spectrum instead (``--spectrum power_fad``) or give ``--dead-time``.
    """
    p = Path(path)
    if not p.is_dir():
        return 0.0, 1
    from xtml.data import open_dataset

    det = open_dataset(p).config.detector
    dead = det.dead_time
    if dead is None or det.is_ideal:
        return 0.0, det.n_modules
    if dead.kind != "nonparalyzable" or not dead.is_constant:
        raise ValueError(
            f"the dataset's dead time ({dead}) is not a constant non-paralyzable one, which the Zhang model "
            "needs; fit the FAD-corrected spectrum (--spectrum power_fad) or pass --dead-time explicitly"
        )
    return float(dead.value), det.n_modules


def dataset_model(path: str | Path, psd: PSDModel, *, noise: NoiseKind = "free") -> SpectralModel:
    """The reference model of the spectra of an xtml dataset: ``psd`` seen through its detector.

    The dataset's constant non-paralyzable dead time and modules (:func:`dataset_dead_time`) and its
    background rate; the binning response comes with the spectra (their ``sampling``).  A path that is not
    a dataset (an event file) gives the ideal single-module model.
    """
    dead_time, n_modules = dataset_dead_time(path)
    background = 0.0
    if Path(path).is_dir():
        from xtml.data import open_dataset

        background = float(open_dataset(path).config.detector.background_rate)
    return SpectralModel(
        psd, noise=noise, dead_time=dead_time, n_modules=n_modules, background_rate=background
    )


def fit_report(
    spectrum: PowerSpectrum,
    psd: PSDModel,
    *,
    noise: NoiseKind = "free",
    dead_time: float = 0.0,
    n_modules: int = 1,
    rng: int = 0,
) -> FitReport:
    """Fit ``psd`` (+ white noise) to a one-row spectrum with :func:`default_bounds`.

    With ``dead_time`` > 0 the white noise has Zhang's shape and the source the dead-time gain
    (:class:`~xtml.reference.SpectralModel`), for ``n_modules`` modules summed into the spectrum.
    """
    if spectrum.n != 1:
        raise ValueError(f"fit_report fits one spectrum, got {spectrum.n}")
    model = SpectralModel(psd, noise=noise, dead_time=float(dead_time), n_modules=int(n_modules))
    bounds = default_bounds(model, spectrum)
    return FitReport(spectrum, model, bounds, fit_spectra(spectrum, model, bounds, workers=1, rng=rng))


@dataclass(frozen=True)
class ComponentTest:
    """Whether the data require one Lorentzian of a fit: its calibrated likelihood-ratio test.

    ``lrt`` is twice the gain in log-likelihood of the full model over the model without the component,
    ``p_calibrated`` its posterior-predictive p-value (:func:`~xtml.reference.qpo.calibrate`: spectra
    simulated from the model without the component, both models refitted), ``delta_aic`` the AIC of the
    model without it minus the full model's (positive: the full model is preferred by AIC).
    """

    component: str
    lrt: float
    p_calibrated: float
    n_sim: int
    delta_aic: float
    required: bool
    alpha: float

    def text(self) -> str:
        p = (
            f"< {1 / (self.n_sim + 1):.2g}"
            if self.p_calibrated <= 1 / (self.n_sim + 1)
            else f"= {self.p_calibrated:.3g}"
        )
        verdict = "required by the data" if self.required else "NOT required by the data"
        return (
            f"{self.component}: {verdict} (LRT {self.lrt:.2f}, calibrated p {p} from {self.n_sim} "
            f"simulations without it; delta AIC {self.delta_aic:+.1f}; alpha {self.alpha:g})"
        )


def component_tests(
    report: FitReport, *, n_sim: int = 200, alpha: float = 0.01, rng: int = 0
) -> list[ComponentTest]:
    """The calibrated significance of every Lorentzian of a fit (a QPO or a pulsation, not a broadband
    zero-centred one): the model without it is the null of :func:`~xtml.reference.qpo.calibrate`.

    A Lorentzian that is the model's only component has no null without it and is skipped.
    """
    from xtml.psd import Lorentzian
    from xtml.reference.qpo import calibrate

    model = report.model
    out = []
    for name, comp in model.psd.components:
        if not isinstance(comp, Lorentzian) or len(model.psd.components) < 2:
            continue
        rest = PSDModel(tuple((n, c) for n, c in model.psd.components if n != name))
        null = replace(model, psd=rest)
        null_bounds = {k: v for k, v in report.bounds.items() if k in null.param_names}
        res = calibrate(
            report.spectrum, null, model, null_bounds, report.bounds, n_sim=n_sim, rng=rng, workers=1
        )
        k_removed = len(model.param_names) - len(null.param_names)
        out.append(
            ComponentTest(
                component=name,
                lrt=res.lrt,
                p_calibrated=res.p_lrt,
                n_sim=n_sim,
                delta_aic=res.lrt - 2 * k_removed,
                required=bool(res.p_lrt <= alpha),
                alpha=alpha,
            )
        )
    return out
