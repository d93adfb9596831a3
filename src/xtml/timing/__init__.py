"""Spectral-timing products: power spectra of light curves and event lists, batched on the first axis.

Note that the names ``periodogram`` and ``xtml.timing.periodogram`` refer to the function; the module is
reachable as ``importlib.import_module("xtml.timing.periodogram")`` if ever needed.
"""

from xtml.timing.cross import FADResult, cospectrum, fad_correct
from xtml.timing.io import (
    EventData,
    NotAnEventListError,
    observation_spectrum,
    read_events,
    spectrum_from_event_file,
)
from xtml.timing.lightcurve_io import BinnedLightCurve, read_lightcurve
from xtml.timing.periodogram import periodogram, periodogram_from_events
from xtml.timing.rebin import log_bin_edges, rebin_linear, rebin_log
from xtml.timing.spectrum import Norm, PowerSpectrum, Sampling, check_norm, check_sampling, poisson_level
from xtml.timing.stingray_io import from_stingray, to_stingray

__all__ = [
    "BinnedLightCurve",
    "EventData",
    "FADResult",
    "Norm",
    "NotAnEventListError",
    "PowerSpectrum",
    "Sampling",
    "check_norm",
    "check_sampling",
    "cospectrum",
    "fad_correct",
    "from_stingray",
    "log_bin_edges",
    "observation_spectrum",
    "periodogram",
    "periodogram_from_events",
    "poisson_level",
    "read_events",
    "read_lightcurve",
    "rebin_linear",
    "rebin_log",
    "spectrum_from_event_file",
    "to_stingray",
]
