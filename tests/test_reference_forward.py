"""One forward model: the reference's expected periodogram is what simulated spectra average to.

``SpectralModel.expected`` includes the binning response and the aliasing of the light curves the spectrum
was made from (``PowerSpectrum.sampling``, :mod:`xtml.reference.binning`).  These tests average >= 2,000
simulated periodograms and compare them with it band by band, the top fifth of the frequencies (where the
response and the aliases matter most) included: for the simulator's fine grid (``alias_factor`` 1, 2, 4) and
for spectra of simulated event lists (photons counted in bins: the continuous ``sinc^2`` response).  The
source is strong at the Nyquist frequency, so that a reference without the response fails the same test
(checked too: the test can fail).
"""

import numpy as np
import pytest

from xtml.psd import JointPrior, Lorentzian, PSDModel, Uniform, ZeroCentredLorentzian
from xtml.reference import SpectralModel
from xtml.simulate import simulate_lightcurves, simulate_rate
from xtml.simulate.events import events_from_rate
from xtml.timing import PowerSpectrum, periodogram, periodogram_from_events

PSD = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
N_SPECTRA = 2000
N_BANDS = 5


def _theta(n: int, nyquist: float, rng: np.random.Generator) -> np.ndarray:
    """Broad noise reaching the Nyquist frequency and a QPO in its upper half, moderate rms (no clipping)."""
    prior = JointPrior(
        {
            "broad.nu_max": Uniform(0.3 * nyquist, 1.0 * nyquist),
            "broad.rms": Uniform(0.15, 0.22),
            "qpo.nu0": Uniform(0.55 * nyquist, 0.9 * nyquist),
            "qpo.q": Uniform(3.0, 8.0),
            "qpo.rms": Uniform(0.05, 0.1),
        }
    )
    return prior.sample(n, rng=rng)


def _band_z(power: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """z-score of mean(P / E) - 1 in each fifth of the frequencies, from per-spectrum band means."""
    ratio = power / expected
    bands = np.array_split(np.arange(ratio.shape[1]), N_BANDS)
    per = np.stack([ratio[:, b].mean(axis=1) for b in bands], axis=1)  # (n, n_bands), independent rows
    return (per.mean(axis=0) - 1.0) / (per.std(axis=0, ddof=1) / np.sqrt(per.shape[0]))


def _no_response(ps: PowerSpectrum) -> PowerSpectrum:
    """The same spectra labelled as point samples of the rate: the reference without a binning response."""
    from dataclasses import replace

    return replace(ps, sampling=1)


@pytest.mark.parametrize("alias_factor", [1, 2, 4])
def test_simulated_periodograms_average_to_the_reference(alias_factor):
    rng = np.random.default_rng(20261207 + alias_factor)
    dt, n_bins, rate = 1 / 128, 256, 4000.0
    theta = _theta(N_SPECTRA, 0.5 / dt, rng)
    lc = simulate_lightcurves(
        PSD, theta, mean_rate=rate, dt=dt, n_bins=n_bins, alias_factor=alias_factor, rng=rng
    )
    # the Gaussian process stayed positive (but for a handful of samples): the linear model holds
    assert lc.n_clipped.sum() < 1e-5 * lc.counts.size * alias_factor
    ps = periodogram(lc.counts, dt, sampling=alias_factor)
    model = SpectralModel(PSD, noise="poisson")
    expected = model.expected(theta, ps)
    z = _band_z(ps.power, expected)
    assert np.all(np.abs(z) < 3), z
    if alias_factor > 1:  # the response matters: without it the top fifth is far off
        naive = model.expected(theta, _no_response(ps))
        assert abs(_band_z(ps.power, naive)[-1]) > 10


def test_spectra_of_simulated_event_lists_average_to_the_continuous_response():
    """Photons from a rate on a grid 32x finer than the bins, counted in bins: the sinc^2 response."""
    rng = np.random.default_rng(20261208)
    dt, n_bins, rate, fine = 1 / 16, 128, 2000.0, 32
    theta = _theta(N_SPECTRA, 0.5 / dt, rng)
    rate_fine, clipped = simulate_rate(
        PSD, theta, mean_rate=rate, dt=dt / fine, n_bins=n_bins * fine, rng=rng
    )
    assert clipped.sum() < 1e-5 * rate_fine.size
    t_obs = n_bins * dt
    power = []
    spectra = None
    for start in range(0, N_SPECTRA, 250):
        events = events_from_rate(rate_fine[start : start + 250], dt / fine, rng)
        spectra = periodogram_from_events(events, gti=[[0.0, t_obs]], dt=dt, segment_size=t_obs)
        power.append(spectra)
    assert spectra is not None
    assert spectra.sampling == "continuous"
    ps = PowerSpectrum(
        freq=spectra.freq,
        power=np.concatenate([p.power for p in power]),
        m=spectra.m,
        df=spectra.df,
        norm="leahy",
        mean_rate=np.concatenate([p.mean_rate for p in power]),
        segment_length=spectra.segment_length,
        dt=dt,
        n_segments=1,
        sampling="continuous",
    )
    model = SpectralModel(PSD, noise="poisson")
    z = _band_z(ps.power, model.expected(theta, ps))
    assert np.all(np.abs(z) < 3), z
    assert abs(_band_z(ps.power, model.expected(theta, _no_response(ps)))[-1]) > 10
