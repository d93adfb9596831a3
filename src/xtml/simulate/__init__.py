"""What the telescope records: batched Timmer & Koenig light curves, Poisson photons, GTIs.

Detector effects (dead time, pile-up, background) join this room in later work.
"""

from xtml.simulate.events import check_gti, events_from_rate, gti_mask
from xtml.simulate.lightcurves import (
    LightCurves,
    poisson_counts,
    simulate_lightcurves,
    simulate_rate,
    tk_frequencies,
)

__all__ = [
    "LightCurves",
    "check_gti",
    "events_from_rate",
    "gti_mask",
    "poisson_counts",
    "simulate_lightcurves",
    "simulate_rate",
    "tk_frequencies",
]
