"""Detector effects: dead time (vs Stingray and the analytic rates), pile-up, background, modules."""

import numpy as np
import pytest
from scipy import stats
from stingray.filters import filter_for_deadtime

from xtml.simulate import (
    DeadTime,
    Detector,
    EnergySpectrum,
    PileUp,
    apply_dead_time,
    apply_pileup,
    observe,
)
from xtml.simulate.deadtime import binned_dead_time_moments, draw_binned_counts
from xtml.simulate.poisson import MAX_MEAN_OPERATIONAL, poisson_rows


def _poisson_events(rate, length, rng, t0=0.0):
    n = rng.poisson(rate * length)
    return np.sort(rng.uniform(t0, t0 + length, n))


@pytest.mark.parametrize("kind", ["nonparalyzable", "paralyzable"])
@pytest.mark.parametrize("t0", [0.0, 3.2e8])  # NuSTAR-like mission times: same rounding as Stingray
def test_dead_time_identical_to_stingray(kind, t0, rng):
    times = _poisson_events(2000.0, 50.0, rng, t0)
    ours = apply_dead_time(times, DeadTime(2.5e-3, kind))
    theirs = filter_for_deadtime(times, 2.5e-3, paralyzable=kind == "paralyzable")
    assert np.array_equal(ours.times, theirs)
    # with background events that also cause dead time
    bkg = _poisson_events(300.0, 50.0, rng, t0)
    ours = apply_dead_time(times, DeadTime(2.5e-3, kind), background=bkg)
    mask = filter_for_deadtime(
        times, 2.5e-3, bkg_ev_list=bkg, paralyzable=kind == "paralyzable", return_all=True
    )[1]
    assert np.array_equal(ours.times, mask.uf_events)
    assert np.array_equal(ours.is_source, mask.is_event)


@pytest.mark.parametrize("kind", ["nonparalyzable", "paralyzable"])
@pytest.mark.parametrize("rate", [10.0, 200.0, 1000.0, 5000.0])
@pytest.mark.parametrize("tau", [1e-4, 2.5e-3])
def test_detected_rate_matches_the_analytic_formula(kind, rate, tau, rng):
    length = max(20.0, 40_000 / rate)
    times = _poisson_events(rate, length, rng)
    res = apply_dead_time(times, DeadTime(tau, kind), gti=[[0.0, length]])
    expect = rate / (1 + rate * tau) if kind == "nonparalyzable" else rate * np.exp(-rate * tau)
    measured = res.times.size / length
    # variance of recorded counts of a renewal process: Poisson bound times the dead-time factor, <= expect
    sigma = np.sqrt(expect * length) / length
    assert abs(measured - expect) < 3 * sigma, (measured, expect, sigma)
    # live time: the recorded events divided by the live time give back the incident rate
    assert res.times.size / res.live_time == pytest.approx(rate, rel=4 / np.sqrt(res.times.size) + 0.01)


def test_prior_is_the_live_time_before_each_event(rng):
    times = _poisson_events(500.0, 20.0, rng)
    res = apply_dead_time(times, 2.5e-3, gti=[[0.0, 20.0]])
    # non-paralyzable: PRIOR = time since the previous recorded event minus the dead time
    np.testing.assert_allclose(res.prior[1:], np.diff(res.times) - 2.5e-3, atol=1e-12)
    assert res.prior[0] == pytest.approx(res.times[0])
    assert np.all(res.prior >= 0)
    assert res.live_time == pytest.approx(20.0 - 2.5e-3 * res.times.size, abs=2.5e-3)
    # exponential waiting times after the dead interval (memoryless Poisson process)
    assert stats.kstest(res.prior[1:], stats.expon(scale=1 / 500).cdf).pvalue > 0.01


def test_distributed_dead_times(rng):
    times = _poisson_events(1000.0, 40.0, rng)
    gauss = DeadTime(2.5e-3, sigma=5e-4)
    a = apply_dead_time(times, gauss, rng=1)
    b = apply_dead_time(times, gauss, rng=1)
    assert np.array_equal(a.times, b.times)
    # mean dead time sets the detected rate to first order
    expect = 1000 / (1 + 1000 * 2.5e-3)
    assert a.times.size / 40.0 == pytest.approx(expect, rel=0.03)
    samples = rng.choice([2.0e-3, 2.5e-3, 3.0e-3], size=50)
    emp = DeadTime.empirical(samples)
    c = apply_dead_time(times, emp, rng=2)
    np.testing.assert_allclose(c.prior[1:] + emp.value, np.diff(c.times), atol=1.1e-3)
    with pytest.raises(ValueError, match="needs an rng"):
        apply_dead_time(times, gauss)
    # paralyzable with distributed dead time: dead until the latest end of any earlier interval
    par = apply_dead_time(times, DeadTime(2.5e-3, "paralyzable", sigma=1e-3), rng=3)
    assert par.times.size < a.times.size


def test_dead_time_errors():
    with pytest.raises(ValueError, match=r"dead time must be finite and >= 0 s, got -0\.001"):
        DeadTime(-1e-3)
    with pytest.raises(
        ValueError, match="dead-time kind must be one of nonparalyzable, paralyzable, got 'para'"
    ):
        DeadTime(1e-3, "para")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"times must be sorted: element 2 \(1\.0\) is earlier than element 1"
    ):
        apply_dead_time([0.0, 2.0, 1.0], 1e-3)
    with pytest.raises(ValueError, match=r"1 event\(s\) fall outside the GTIs \(first at t = 5\.0\)"):
        apply_dead_time([0.5, 1.0, 5.0], 1e-3, gti=[[0.0, 2.0]])
    with pytest.raises(ValueError, match=r"either dead time .* or pile-up"):
        Detector(dead_time=DeadTime(1e-3), pileup=PileUp(1e-3))


def test_pileup_fraction_matches_poisson_and_conserves_energy(rng):
    frame = 2e-3
    for rate in (50.0, 300.0, 1000.0):
        times = _poisson_events(rate, 200.0, rng)
        energies = EnergySpectrum(index=1.7).sample(times.size, rng)
        pile = PileUp(frame_time=frame, band=(0.0, 1e9), migration_prob=0.0)
        res = apply_pileup(times, energies, pile, rng, t_start=0.0)
        lam = rate * frame
        expect = (1 - np.exp(-lam) * (1 + lam)) / (1 - np.exp(-lam))
        n = res.n_photons.size
        frac = np.mean(res.n_photons >= 2)
        assert abs(frac - expect) < 3 * np.sqrt(expect * (1 - expect) / n) + 1e-4, (rate, frac, expect)
        # every photon is in exactly one event, and the event energies are the photon sums
        assert res.n_photons.sum() == times.size
        assert res.energies.sum() == pytest.approx(energies.sum(), rel=1e-12)
        frames = np.floor(times / frame).astype(int)
        sums = np.bincount(frames, weights=energies)
        np.testing.assert_allclose(res.energies, sums[np.round(res.times / frame).astype(int)], rtol=1e-12)


def test_pileup_band_and_grade_migration(rng):
    times = _poisson_events(2000.0, 20.0, rng)  # lambda = 4 per frame: heavily piled
    energies = np.full(times.size, 3.0)
    open_band = apply_pileup(times, energies, PileUp(2e-3, band=(0.0, 100.0)), 1, t_start=0.0)
    cut_band = apply_pileup(times, energies, PileUp(2e-3, band=(0.5, 10.0)), 1, t_start=0.0)
    assert np.all(cut_band.energies <= 10.0)
    assert np.all(cut_band.n_photons <= 3)  # 4 x 3 keV leaves the band
    assert cut_band.times.size < open_band.times.size
    migrate = apply_pileup(
        times, energies, PileUp(2e-3, band=(0.0, 100.0), migration_prob=1.0), 1, t_start=0.0
    )
    assert np.all(migrate.n_photons == 1)  # every piled event was rejected
    half = apply_pileup(times, energies, PileUp(2e-3, band=(0.0, 100.0), migration_prob=0.5), 2, t_start=0.0)
    k = open_band.n_photons
    expect = np.sum(0.5 ** (k - 1))
    assert half.times.size == pytest.approx(expect, abs=4 * np.sqrt(expect))


def test_energy_spectra(rng):
    e = EnergySpectrum(e_min=1.0, e_max=10.0, index=2.0).sample(50_000, rng)
    # N(E) ~ E^-2 on [1, 10]: CDF (1 - 1/E) / (1 - 1/10)
    assert stats.kstest(e, lambda x: (1 - 1 / x) / 0.9).pvalue > 0.01
    table = EnergySpectrum(energies=(1.0, 6.4), weights=(3.0, 1.0)).sample(20_000, rng)
    assert np.mean(table == 6.4) == pytest.approx(0.25, abs=0.015)
    with pytest.raises(ValueError, match=r"frame_time must be finite and > 0 s, got 0\.0"):
        PileUp(0.0)
    with pytest.raises(ValueError, match=r"migration_prob must be a probability in \[0, 1\], got 1\.5"):
        PileUp(1e-3, migration_prob=1.5)
    with pytest.raises(ValueError, match="0 < e_min < e_max"):
        EnergySpectrum(e_min=5.0, e_max=1.0)


def test_observe_two_modules_with_dead_time(rng):
    dt, n_bins = 1 / 512, 512 * 20
    rate = np.full((4, n_bins), 800.0)
    det = Detector(n_modules=2, dead_time=DeadTime(2.5e-3), background_rate=50.0)
    obs = observe(rate, dt, det, rng, bin_factor=2)
    assert obs.counts.shape == (4, 2, n_bins // 2)
    assert obs.dt == pytest.approx(2 * dt)
    incident = 850.0
    expect = incident / (1 + incident * 2.5e-3)
    measured = obs.counts.sum(axis=2) / obs.exposure
    assert np.all(np.abs(measured - expect) < 4 * np.sqrt(expect / obs.exposure))
    # recorded events / live time estimates the incident rate (the live time is the sum of the
    # exponential waiting times between dead intervals: relative error 1 / sqrt(N))
    n_rec = obs.counts.sum(axis=2)
    assert np.all(np.abs(n_rec / obs.live_time / incident - 1) < 4 / np.sqrt(n_rec))
    # the two modules are independent: different photons
    assert not np.array_equal(obs.counts[:, 0], obs.counts[:, 1])
    again = observe(rate, dt, det, np.random.default_rng(20261121), bin_factor=2)
    assert np.array_equal(again.counts, obs.counts)


def test_observe_matches_event_level_dead_time():
    """The batched simulator and apply_dead_time share one core: same photons, same records."""
    dt = 1 / 256
    rate = np.full((1, 256 * 10), 1000.0)
    det = Detector(dead_time=DeadTime(2.5e-3))
    obs = observe(rate, dt, det, 5)
    # regenerate the same photons as observe does, then filter them with Stingray
    gen = np.random.default_rng(5).spawn(1)[0]
    k = poisson_rows(rate * dt, gen).reshape(-1)
    u = gen.random(int(k.sum()))
    times = np.sort(np.repeat(np.arange(k.size), k) * dt + u * dt)
    kept = filter_for_deadtime(times, 2.5e-3)
    np.testing.assert_array_equal(obs.counts[0, 0], np.histogram(kept, bins=np.arange(k.size + 1) * dt)[0])


def test_observe_ideal_and_pileup(rng):
    rate = np.full((3, 10_000), 100.0)
    ideal = observe(rate, 1e-3, Detector(background_rate=10.0), rng)
    assert ideal.counts.sum(axis=2).mean() == pytest.approx(110 * 10, rel=0.05)
    frame = 2e-3
    pile = Detector(pileup=PileUp(frame, band=(0.0, 1e9)))
    obs = observe(np.full((3, 5000), 1000.0), frame, pile, rng)
    lam = 1000 * frame
    expect = (1 - np.exp(-lam)) / frame  # one event per non-empty frame
    assert obs.counts.sum(axis=2).mean() / obs.exposure == pytest.approx(expect, rel=0.03)
    assert obs.counts.max() == 1
    with pytest.raises(ValueError, match=r"per frame: dt = 0\.001 s but frame_time = 0\.002 s"):
        observe(np.full((1, 10), 1000.0), 1e-3, pile, rng)


@pytest.mark.parametrize("mean", [0.02, 0.9, 3.0, MAX_MEAN_OPERATIONAL, 25.0])
def test_poisson_rows_is_poisson(mean, rng):
    """Both samplers (operational time below MAX_MEAN_OPERATIONAL, numpy above): chi-square vs the pmf."""
    lam = np.full((16, 4096), mean)
    lam[:, ::2] *= 0.5  # bins with two different means in every row
    k = poisson_rows(lam, rng)
    for sel, mu in ((slice(0, None, 2), 0.5 * mean), (slice(1, None, 2), mean)):
        counts = np.bincount(k[:, sel].ravel())
        expect = stats.poisson(mu).pmf(np.arange(counts.size)) * k[:, sel].size
        keep = expect > 5
        chi2 = ((counts[keep] - expect[keep]) ** 2 / expect[keep]).sum()
        assert stats.chi2(keep.sum() - 1).sf(chi2) > 1e-3, (mu, chi2)
    # neighbouring bins are independent
    a, b = k[:, 1:-1:2].ravel(), k[:, 2::2].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(a.size)
    assert np.array_equal(
        poisson_rows(lam, np.random.default_rng(1)), poisson_rows(lam, np.random.default_rng(1))
    )


@pytest.mark.parametrize("sigma", [0.0, 1e-3])
def test_binned_dead_time_matches_the_event_level_detector(sigma):
    """Bins much longer than the dead time: the counts a binned dead time draws have the mean, variance and
    flat Leahy level 2 Var/E of the event-by-event simulation and of the renewal limit, at r tau = 2."""
    rate, tau, dt = 800.0, 2.5e-3, 0.5
    lam = np.full((300, 128), rate)
    out = {}
    for binned in (False, True):
        det = Detector(dead_time=DeadTime(tau, sigma=sigma, binned=binned))
        c = observe(lam, dt, det, rng=np.random.default_rng(3)).counts[:, 0, :].astype(float)
        power = 2 * np.abs(np.fft.rfft(c, axis=1)[:, 1:-1]) ** 2 / c.sum(axis=1, keepdims=True)
        out[binned] = (c.mean(), c.var(), power.mean())
    mean, var = binned_dead_time_moments(rate, dt, DeadTime(tau, sigma=sigma))
    n = lam.size
    for binned in (False, True):
        m, v, p = out[binned]
        assert m == pytest.approx(mean, abs=4 * np.sqrt(var / n)), binned
        assert v == pytest.approx(var, rel=4 * np.sqrt(2 / n)), binned
        assert p == pytest.approx(2 * var / mean, rel=4 * np.sqrt(1 / (300 * 63))), binned
    if sigma == 0:  # Zhang et al. (1995): the Leahy level below 2 at frequencies << 1 / tau
        assert 2 * var / mean == pytest.approx(2 / (1 + rate * tau) ** 2)
    assert out[True][1] == pytest.approx(out[False][1], rel=6 * np.sqrt(2 / n))


def test_binned_counts_are_discrete_and_reach_poisson(rng):
    """No dead time: the binned draw is Poisson (chi-square on the counts); under-dispersed draws keep the
    mean and variance; tiny means give zeros, never negatives."""
    c = draw_binned_counts(np.full(4000, 3.0), np.full(4000, 3.0), rng)
    observed = np.bincount(np.minimum(c, 8), minlength=9)
    expected = stats.poisson(3).pmf(np.arange(9)) * c.size
    expected[8] = stats.poisson(3).sf(7) * c.size
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    d = draw_binned_counts(np.full(20000, 50.0), np.full(20000, 10.0), rng)
    assert d.mean() == pytest.approx(50.0, abs=4 * np.sqrt(10 / d.size))
    assert d.var() == pytest.approx(10.0, rel=0.05)
    assert np.all(draw_binned_counts(np.full(100, 0.01), np.full(100, 0.009), rng) >= 0)
    with pytest.raises(ValueError, match="variance must be <= mean"):
        draw_binned_counts(np.array([2.0]), np.array([3.0]), rng)
    with pytest.raises(ValueError, match="non-paralyzable kind only"):
        DeadTime(1e-5, kind="paralyzable", binned=True)
