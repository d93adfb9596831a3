"""A second event-level generator of the demo's physics that shares no code with :mod:`xtml.simulate`.

Used by ``tests/test_sbi_independent.py`` (issue 19, item 4) to check that a posterior trained on xtml's
simulator keeps its coverage on observations it was not made from. Everything here is written from the
definitions, with numpy and Stingray only:

* the source's fractional variability is a Timmer & Koenig (1995) realisation of the one-sided PSD (a
  zero-centred Lorentzian plus a Lorentzian QPO, each normalised to its fractional rms over (0, inf)),
  made on a grid ``FINE`` times finer than the analysis bin and ``LEAK`` times longer than the kept
  exposure (the kept window starts at a random time);
* each module's photons are drawn in continuous time: Poisson counts per fine bin of the rate
  ``r (1 + delta(t))`` (clipped at 0), each placed uniformly inside its bin, plus a constant background
  drawn as a homogeneous Poisson process;
* dead time is applied per module by Stingray's ``filter_for_deadtime`` (non-paralysable, background
  events included);
* the power spectrum is Stingray's ``AveragedPowerspectrum.from_events`` of the summed events of the
  modules, segment by segment, Leahy-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from stingray import AveragedPowerspectrum, EventList
from stingray.filters import filter_for_deadtime

FINE = 16  # fine-grid bins per analysis bin
LEAK = 2  # the TK realisation is this many times longer than the kept exposure


@dataclass(frozen=True)
class DemoPhysics:
    """The physics of ``configs/sbi_demo.toml``, restated (not read from xtml)."""

    dt: float = 1 / 256
    segment_size: float = 8.0
    n_segments: int = 4
    n_modules: int = 2
    background: float = 1.0  # ct/s per module
    dead_time: float = 0.0025  # s, non-paralysable

    @property
    def exposure(self) -> float:
        return self.segment_size * self.n_segments


def lorentzian_psd(f: np.ndarray, nu0: float, delta: float, rms: float) -> np.ndarray:
    """One-sided Lorentzian of half width ``delta`` at ``nu0`` integrating to ``rms**2`` over (0, inf)."""
    shape = (delta / np.pi) / ((f - nu0) ** 2 + delta**2)
    return rms**2 * shape / (0.5 + np.arctan(nu0 / delta) / np.pi)


def demo_psd(f: np.ndarray, theta: dict[str, float]) -> np.ndarray:
    """Zero-centred Lorentzian (``broad.nu_max``: its half width) plus the QPO (``qpo.q`` = nu0 / FWHM)."""
    broad = lorentzian_psd(f, 0.0, theta["broad.nu_max"], theta["broad.rms"])
    qpo = lorentzian_psd(f, theta["qpo.nu0"], theta["qpo.nu0"] / (2 * theta["qpo.q"]), theta["qpo.rms"])
    return broad + qpo


def tk_relative(n: int, step: float, psd, rng: np.random.Generator) -> np.ndarray:
    """Timmer & Koenig: a zero-mean relative light curve of ``n`` bins of ``step`` s with one-sided PSD
    ``psd(f)`` ((rms/mean)^2 / Hz), so that its variance is the PSD's integral up to Nyquist."""
    f = np.fft.rfftfreq(n, step)[1:]
    sigma = np.sqrt(n * psd(f) / (4 * step))
    spec = np.zeros(n // 2 + 1, dtype=complex)
    spec[1:] = sigma * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    if n % 2 == 0:
        spec[-1] = 0.0  # the Nyquist term (real, and of negligible power here) is left out
    return np.fft.irfft(spec, n)


def module_events(rate: np.ndarray, step: float, background: float, rng: np.random.Generator) -> np.ndarray:
    """Photon times in continuous time: Poisson counts of the piecewise-constant ``rate`` (ct/s) per bin
    placed uniformly inside their bins, merged with a homogeneous background of ``background`` ct/s."""
    counts = rng.poisson(np.clip(rate, 0, None) * step)
    starts = np.repeat(np.arange(rate.size) * step, counts)
    src = starts + rng.uniform(0, step, starts.size)
    total = rate.size * step
    bkg = rng.uniform(0, total, rng.poisson(background * total))
    return np.sort(np.concatenate([src, bkg]))


def observe(
    theta: dict[str, float],
    rate: float,
    rng: np.random.Generator,
    phys: DemoPhysics = DemoPhysics(),
    fine: int = FINE,
):
    """One observation: the Stingray ``AveragedPowerspectrum`` of the summed dead-time-filtered events of
    the modules over the kept exposure, for incident source rate ``rate`` ct/s per module; the rate is
    resolved on bins ``fine`` times shorter than the analysis bin."""
    step = phys.dt / fine
    n_keep = round(phys.exposure / step)
    n_all = LEAK * n_keep
    delta = tk_relative(n_all, step, lambda f: demo_psd(f, theta), rng)
    start = int(rng.integers(0, n_all - n_keep + 1))
    lam = rate * (1 + delta[start : start + n_keep])
    events = []
    for _ in range(phys.n_modules):
        times = module_events(lam, step, phys.background, rng)
        events.append(filter_for_deadtime(times, phys.dead_time, paralyzable=False))
    gti = np.array([[0.0, phys.exposure]])
    events = EventList(np.sort(np.concatenate(events)), gti=gti)
    return AveragedPowerspectrum.from_events(
        events, dt=phys.dt, segment_size=phys.segment_size, gti=gti, norm="leahy", silent=True
    )
