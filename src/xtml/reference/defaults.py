"""Default parameter bounds for fitting a spectrum when the user gives no prior.

Wide, physically motivated boxes derived from the spectrum itself (its frequency range and its
white-noise level), so that `xtml fit` works on any spectrum without hand tuning.  Science
work should state its own priors (`configs/`); these are the fallback and are printed with
every fit.
"""

from __future__ import annotations

import numpy as np

from xtml.psd import BendingPowerLaw, Constant, Lorentzian, PowerLaw, ZeroCentredLorentzian
from xtml.reference.likelihood import SpectralModel
from xtml.timing import PowerSpectrum

__all__ = ["default_bounds"]


def default_bounds(model: SpectralModel, spectrum: PowerSpectrum) -> dict[str, tuple[float, float]]:
    """Bounds ``name -> (low, high)`` for every parameter of ``model``, from ``spectrum``'s grid.

    Frequencies (centroids, widths, bends) span the observed range (from half the lowest to the
    highest frequency); fractional rms 1e-3 .. 1; quality factors 0.5 .. 200; power-law
    normalisations 1e-8 .. 1e2 (rms/mean)^2/Hz at 1 Hz (or band rms 1e-3 .. 1) and indices -1 .. 4; a
    free white-noise level 0.1 .. 10 times the spectrum's Poisson level.
    """
    f_lo = float(spectrum.freq[0]) / 2
    f_hi = float(spectrum.freq[-1])
    per_kind: dict[type, dict[str, tuple[float, float]]] = {
        Lorentzian: {"nu0": (f_lo, f_hi), "q": (0.5, 200.0), "fwhm": (f_lo / 10, f_hi), "rms": (1e-3, 1.0)},
        ZeroCentredLorentzian: {"nu_max": (f_lo / 10, f_hi), "rms": (1e-3, 1.0)},
        PowerLaw: {"norm": (1e-8, 1e2), "rms": (1e-3, 1.0), "index": (-1.0, 4.0)},
        BendingPowerLaw: {
            "norm": (1e-8, 1e2),
            "f_bend": (f_lo, f_hi),
            "alpha_low": (-1.0, 3.0),
            "alpha_high": (0.0, 6.0),
        },
        Constant: {"level": (1e-8, 1e2)},
    }
    out: dict[str, tuple[float, float]] = {}
    for name, comp in model.psd.components:
        table = per_kind.get(type(comp))
        if table is None:
            raise ValueError(
                f"no default bounds for component {name!r} of kind {type(comp).__name__} (defaults exist for "
                f"{', '.join(k.__name__ for k in per_kind)}): give the bounds of its parameters "
                f"{list(comp.param_names)} explicitly"
            )
        for p in comp.param_names:
            out[f"{name}.{p}"] = table[p]
    if model.noise == "free":
        level = float(np.median(spectrum.poisson_level()))
        out["noise.level"] = (0.1 * level, 10.0 * level)
    return out
