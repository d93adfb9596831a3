"""What the telescope records: batched Timmer & Koenig light curves, Poisson photons, GTIs,
and detector effects (dead time, pile-up, background, several modules)."""

from xtml.simulate.deadtime import DEAD_TIME_KINDS, DeadTime, DeadTimeKind, DeadTimeResult, apply_dead_time
from xtml.simulate.detector import DetectedCounts, Detector, observe
from xtml.simulate.events import check_gti, check_rates, events_from_rate, gti_mask
from xtml.simulate.lightcurves import (
    LightCurves,
    poisson_counts,
    simulate_lightcurves,
    simulate_rate,
    tk_frequencies,
)
from xtml.simulate.pileup import EnergySpectrum, PileUp, PileUpResult, apply_pileup, pile_frames

__all__ = [
    "DEAD_TIME_KINDS",
    "DeadTime",
    "DeadTimeKind",
    "DeadTimeResult",
    "DetectedCounts",
    "Detector",
    "EnergySpectrum",
    "LightCurves",
    "PileUp",
    "PileUpResult",
    "apply_dead_time",
    "apply_pileup",
    "check_gti",
    "check_rates",
    "events_from_rate",
    "gti_mask",
    "observe",
    "pile_frames",
    "poisson_counts",
    "simulate_lightcurves",
    "simulate_rate",
    "tk_frequencies",
]
