"""Periodicity search: a pulsation found in its bin, the calibrated p-value against the exact law."""

import numpy as np
import pytest
from scipy import stats

from xtml.reference.search import periodicity_search
from xtml.timing import periodogram


def _spectrum(rate, seconds, dt, segment, rng, f_pulse=None, pulsed=0.0):
    """Leahy spectrum of Poisson counts of a constant rate, optionally sinusoidally pulsed."""
    n = round(seconds / dt)
    t = (np.arange(n) + 0.5) * dt
    lam = rate * dt * (1 + (pulsed * np.sin(2 * np.pi * f_pulse * t) if f_pulse else np.zeros(n)))
    counts = rng.poisson(lam)
    return periodogram(counts[None], dt, norm="leahy", segment_bins=round(segment / dt))


def test_a_weak_pulsation_is_found_in_its_bin_and_is_significant():
    """50 ct/s for 2,048 s, 8 % pulsed at 3.3 Hz: expected Leahy excess N a^2 / 2 ~ 330 in one segment."""
    ps = _spectrum(50.0, 2048.0, 1 / 64, 256.0, np.random.default_rng(1), f_pulse=3.3, pulsed=0.08)
    res = periodicity_search(ps, n_sim=200, rng=0)
    assert abs(res.freq - 3.3) <= res.freq_resolution / 2
    assert res.significant
    assert res.at_floor  # no simulation of the continuum reaches it
    assert res.p_analytic < 1e-10
    assert res.n_trials == ps.n_freq
    assert "a significant periodicity" in res.summary()


def test_without_a_signal_the_calibrated_p_value_follows_the_exact_law():
    """White Poisson noise: the continuum is flat and well determined by 255 bins of 4 powers, so the
    calibrated p equals the analytic trial-corrected p of the largest chi2_8 outlier; over 8 noise spectra
    both p-values agree to the Monte-Carlo error of 100 simulations, and they are uniform."""
    gen = np.random.default_rng(7)
    p_cal, p_an = [], []
    for _ in range(8):
        ps = _spectrum(80.0, 256.0, 1 / 8, 64.0, gen)
        res = periodicity_search(ps, n_sim=100, rng=gen)
        p_cal.append(res.p_calibrated)
        p_an.append(res.p_analytic)
    p_cal, p_an = np.array(p_cal), np.array(p_an)
    mc = 3 * np.sqrt(p_an * (1 - p_an) / 100) + 1 / 101
    assert np.all(np.abs(p_cal - p_an) < mc + 0.03), np.c_[p_cal, p_an]
    assert stats.kstest(p_cal, "uniform").pvalue > 0.001


def test_search_range_and_bad_input():
    ps = _spectrum(50.0, 512.0, 1 / 64, 128.0, np.random.default_rng(3), f_pulse=3.3, pulsed=0.2)
    res = periodicity_search(ps, f_range=(5.0, 20.0), n_sim=20, rng=0)
    assert 5.0 <= res.freq <= 20.0  # the pulsation at 3.3 Hz is outside the range searched
    assert res.n_trials == int(np.sum((ps.freq >= 5.0) & (ps.freq <= 20.0)))
    with pytest.raises(ValueError, match="holds no frequency bin"):
        periodicity_search(ps, f_range=(100.0, 200.0), rng=0)
    with pytest.raises(ValueError, match="n_sim must be an integer >= 1"):
        periodicity_search(ps, n_sim=0, rng=0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        periodicity_search(ps, alpha=1.5, rng=0)
