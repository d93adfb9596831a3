"""Timmer & Koenig simulator: exact expectations, natural scatter, determinism, Poisson photons, GTIs."""

import numpy as np
import pytest
from scipy import stats

from xtml.psd import Lorentzian, PowerLaw, PSDModel, ZeroCentredLorentzian
from xtml.simulate import (
    check_gti,
    events_from_rate,
    gti_mask,
    poisson_counts,
    simulate_lightcurves,
    simulate_rate,
    tk_frequencies,
)

QPO_MODEL = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
QPO_THETA = np.array([1.0, 0.2, 8.0, 8.0, 0.12])
PL_MODEL = PSDModel.from_components({"red": PowerLaw()})


def _frac_periodogram(x, dt):
    """Fractional-rms periodogram of rows of x (Fourier frequencies 1..N/2-1), for test use only."""
    n_bins = x.shape[1]
    f = np.fft.rfft(x, axis=1)[:, 1 : n_bins // 2]
    mean = x.mean(axis=1, keepdims=True)
    return 2 * dt * np.abs(f) ** 2 / (n_bins * mean**2)


def _band_ratio_z(ratio, n_bands):
    """z-scores of the band-averaged ratio (mean over realisations and bins) around 1."""
    z = []
    for band in np.array_split(np.arange(ratio.shape[1]), n_bands):
        r = ratio[:, band].mean(axis=1)  # one value per realisation
        z.append((r.mean() - 1) / (r.std(ddof=1) / np.sqrt(r.size)))
    return np.array(z)


def test_same_seed_same_bytes_whatever_the_threads():
    theta = np.tile(QPO_THETA, (300, 1))  # more rows than one block
    kw = {"mean_rate": 300.0, "dt": 1 / 64, "n_bins": 4096}
    a = simulate_lightcurves(QPO_MODEL, theta, rng=7, threads=1, **kw)
    b = simulate_lightcurves(QPO_MODEL, theta, rng=7, threads=2, **kw)
    c = simulate_lightcurves(QPO_MODEL, theta, rng=8, threads=2, **kw)
    assert a.counts.tobytes() == b.counts.tobytes()
    assert a.rate.tobytes() == b.rate.tobytes()
    assert not np.array_equal(a.counts, c.counts)
    # rows of one call are different realisations, not copies
    assert not np.array_equal(a.rate[0], a.rate[1])


def test_mean_periodogram_matches_model_per_band(rng):
    """Noise-free rates: E[frac periodogram] = S(nu_j) exactly at the Fourier frequencies."""
    dt, n_bins, n = 1 / 128, 2048, 400
    quiet_qpo = np.array([1.0, 0.1, 8.0, 8.0, 0.08])  # total rms 0.13: no negative excursions
    for model, theta in ((QPO_MODEL, quiet_qpo), (PL_MODEL, np.array([1e-3, 1.7]))):
        rate, clipped = simulate_rate(
            model, np.tile(theta, (n, 1)), mean_rate=1000.0, dt=dt, n_bins=n_bins, rng=rng
        )
        assert clipped.sum() == 0
        p = 2 * dt * np.abs(np.fft.rfft(rate / 1000.0 - 1, axis=1)[:, 1 : n_bins // 2]) ** 2 / n_bins
        s = model.evaluate(tk_frequencies(n_bins, dt)[:-1], theta)[0]
        z = _band_ratio_z(p / s, 16)
        assert np.all(np.abs(z) < 3), z


def test_poisson_counts_add_the_white_noise_level(rng):
    """With photons: E[P_frac] = S + 2 / mean_rate (Poisson level), within 3 sigma per band."""
    dt, n_bins, n, rate = 1 / 128, 2048, 300, 400.0
    lc = simulate_lightcurves(
        QPO_MODEL, np.tile(QPO_THETA, (n, 1)), mean_rate=rate, dt=dt, n_bins=n_bins, rng=rng
    )
    p = _frac_periodogram(lc.counts.astype(float), dt)
    s = QPO_MODEL.evaluate(tk_frequencies(n_bins, dt)[:-1], QPO_THETA)[0] + 2 / rate
    z = _band_ratio_z(p / s, 16)
    assert np.all(np.abs(z) < 3), z


def test_qpo_rms_recovered_within_its_error(rng):
    """Integrated frac power minus Poisson level over the QPO band = the Lorentzian's rms^2 there."""
    dt, n_bins, n, rate = 1 / 128, 4096, 200, 500.0
    model = PSDModel.from_components({"qpo": Lorentzian()})
    theta = np.array([10.0, 10.0, 0.1])
    lc = simulate_lightcurves(model, np.tile(theta, (n, 1)), mean_rate=rate, dt=dt, n_bins=n_bins, rng=rng)
    freq = tk_frequencies(n_bins, dt)[:-1]
    df = freq[1] - freq[0]
    band = (freq > 7.0) & (freq < 13.0)
    mean_rate = lc.counts.mean(axis=1) / dt
    p = _frac_periodogram(lc.counts.astype(float), dt) - 2 / mean_rate[:, None]
    rms2 = (p[:, band] * df).sum(axis=1)  # one estimate per realisation
    expect = Lorentzian().variance(theta, 7.0 - df / 2, 13.0 - df / 2)[0]  # bins cover [f - df/2, f + df/2]
    err = rms2.std(ddof=1) / np.sqrt(n)
    assert abs(rms2.mean() - expect) < 3 * err, (rms2.mean(), expect, err)
    assert np.sqrt(rms2.mean()) == pytest.approx(0.1, rel=0.1)


def test_realisation_variance_scatters_as_the_process_predicts(rng):
    """Sample variance of a TK realisation: mean sum(S df), variance sum((S df)^2); never forced."""
    dt, n_bins, n = 1 / 64, 512, 3000
    theta = np.array([0.3, 0.25])  # band-limited noise: few frequencies dominate -> large scatter
    model = PSDModel.from_components({"broad": ZeroCentredLorentzian()})
    rate, _ = simulate_rate(model, np.tile(theta, (n, 1)), mean_rate=1.0, dt=dt, n_bins=n_bins, rng=rng)
    s2 = rate.var(axis=1)
    df = 1 / (n_bins * dt)
    s = model.evaluate(tk_frequencies(n_bins, dt), theta)[0] * df
    s[-1] /= 2  # the Nyquist term: a single real amplitude
    mean_pred = s.sum()
    var_pred = (s[:-1] ** 2).sum() + 2 * s[-1] ** 2
    assert s2.mean() == pytest.approx(mean_pred, rel=4 * np.sqrt(var_pred / n) / mean_pred)
    # the variance of the sample variance: relative error of a variance estimate from n draws
    # of a (non-Gaussian) sum of exponentials, generous 6 sigma
    rel_err = np.sqrt(2 / n) * 3
    assert s2.var(ddof=1) == pytest.approx(var_pred, rel=rel_err)
    assert s2.std() / s2.mean() > 0.3  # really scattered: realisations were not rescaled


def test_oversampling_reproduces_aliasing_and_binning_exactly(rng):
    """alias_factor: E[P_j] = sum over images of |H|^2 S, H the response of averaging a fine samples."""
    dt, n_bins, a, n = 1 / 32, 256, 4, 600
    theta = np.array([1e-3, 1.0])
    rate, _ = simulate_rate(
        PL_MODEL, np.tile(theta, (n, 1)), mean_rate=1.0, dt=dt, n_bins=n_bins, alias_factor=a, rng=rng
    )
    p = 2 * dt * np.abs(np.fft.rfft(rate - 1, axis=1)[:, 1 : n_bins // 2]) ** 2 / n_bins
    fine_dt, n_fine = dt / a, n_bins * a
    fine_f = tk_frequencies(n_fine, fine_dt)
    s_fine = PL_MODEL.evaluate(fine_f, theta)[0]
    s_fine[-1] *= 2  # Nyquist amplitude has twice the variance of one quadrature
    expect = np.zeros(n_bins // 2 - 1)
    for j in range(1, n_bins // 2):
        for k in range(a):
            for idx in (j + k * n_bins, k * n_bins - j):  # positive image and mirrored negative image
                if 1 <= idx <= n_fine // 2:
                    nu = idx / (n_fine * fine_dt)
                    h = np.abs(np.exp(-2j * np.pi * nu * fine_dt * np.arange(a)).mean()) ** 2
                    expect[j - 1] += h * s_fine[idx - 1]
    z = _band_ratio_z(p / expect, 8)
    assert np.all(np.abs(z) < 3), z
    # and it is not the naive model near Nyquist (binning suppresses, aliases add power there)
    naive = PL_MODEL.evaluate(tk_frequencies(n_bins, dt)[:-1], theta)[0]
    assert abs(expect[-1] / naive[-1] - 1) > 0.05


def test_red_noise_leak_adds_low_frequency_power(rng):
    dt, n_bins, n = 1 / 16, 128, 400
    theta = np.tile([1e-3, 2.0], (n, 1))
    short, _ = simulate_rate(PL_MODEL, theta, mean_rate=1.0, dt=dt, n_bins=n_bins, rng=rng)
    long, _ = simulate_rate(
        PL_MODEL, theta, mean_rate=1.0, dt=dt, n_bins=n_bins, red_noise_factor=16, rng=rng
    )
    # power below 1/T leaks in: the kept segment varies more than a periodic realisation would
    assert long.var(axis=1).mean() > 1.5 * short.var(axis=1).mean()


def test_poisson_counts_and_two_modules(rng):
    rate = np.full((2, 20000), 50.0)
    rate[1] *= 1 + 0.5 * np.sin(np.arange(20000) / 30)
    counts = poisson_counts(rate, 0.1, rng, n_modules=2)
    assert counts.shape == (2, 2, 20000)
    lam = rate * 0.1
    resid = (counts - lam[:, None, :]) / np.sqrt(lam[:, None, :])
    assert resid.mean() == pytest.approx(0, abs=0.02)
    assert resid.var() == pytest.approx(1, abs=0.03)
    # modules share the source signal but their photon noise is independent
    assert np.corrcoef(counts[1, 0], counts[1, 1])[0, 1] > 0.3
    assert abs(np.corrcoef(resid[1, 0], resid[1, 1])[0, 1]) < 0.03
    single = poisson_counts(rate, 0.1, 3)
    assert single.shape == (2, 20000)
    # chi-square test of the count distribution against Poisson(5)
    k = np.bincount(single[0], minlength=25)[:15]
    expect = stats.poisson(5.0).pmf(np.arange(15)) * single.shape[1]
    chi2 = ((k - expect) ** 2 / expect).sum()
    assert stats.chi2(14).sf(chi2) > 0.001


def test_events_from_rate_are_poisson_and_respect_gtis(rng):
    rate = np.full(1000, 20.0)
    (times,) = events_from_rate(rate, 0.5, rng, tstart=100.0)
    assert np.all(np.diff(times) >= 0)
    assert times.min() >= 100.0
    assert times.max() < 600.0
    assert times.size == pytest.approx(10000, abs=4 * 100)
    # arrival times of a homogeneous process: uniform within the span
    assert stats.kstest((times - 100.0) / 500.0, "uniform").pvalue > 0.01
    gti = [[100.0, 200.0], [300.0, 450.0]]
    (cut,) = events_from_rate(rate, 0.5, 5, tstart=100.0, gti=gti)
    assert np.all(gti_mask(cut, gti))
    assert cut.size == pytest.approx(20 * 250, abs=5 * np.sqrt(20 * 250))
    batch = events_from_rate(np.full((3, 100), 10.0), 1.0, 1)
    assert len(batch) == 3
    assert len({b.size for b in batch}) > 1


def test_gti_validation():
    assert check_gti([[0, 1], [2, 3]]).shape == (2, 2)
    with pytest.raises(ValueError, match=r"interval 1 = \[3.0, 2.0\] must have stop > start"):
        check_gti([[0, 1], [3, 2]])
    with pytest.raises(ValueError, match="overlaps"):
        check_gti([[0, 2], [1, 3]])
    with pytest.raises(ValueError, match=r"shape \(n_gti, 2\)"):
        check_gti([0, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_rate": 0.0}, r"mean_rate must be finite and > 0 ct/s, got 0\.0"),
        ({"mean_rate": -5.0}, r"mean_rate .* got -5\.0"),
        ({"mean_rate": np.nan}, "mean_rate must be finite"),
        ({"n_bins": 1}, r"n_bins must be an integer >= 2, got 1"),
        ({"dt": 0.0}, r"dt must be a finite time step > 0 s, got 0\.0"),
        ({"dt": np.inf}, "dt must be a finite"),
        ({"params": [1.0, 0.2, 8.0, 8.0, 1.5]}, r"qpo\.rms = 1\.5 .*\(0\.0, 1\.0\]"),
        ({"params": [1.0, 0.2, 8.0, 0.0, 0.1]}, r"qpo\.q = 0\.0"),
        ({"params": [1.0, 0.2, 40.0, 8.0, 0.1]}, r"qpo\.nu0 = 40\.0 .*Nyquist frequency 32\.0"),
        ({"params": [1.0, 0.2, np.nan, 8.0, 0.1]}, r"qpo\.nu0 must be finite"),
        ({"red_noise_factor": 0}, "red_noise_factor must be an integer >= 1"),
        ({"alias_factor": 1.5}, "alias_factor must be an integer >= 1"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    args = {"params": QPO_THETA, "mean_rate": 100.0, "dt": 1 / 64, "n_bins": 256, "rng": 1}
    args.update(kwargs)
    params = args.pop("params")
    with pytest.raises(ValueError, match=match):
        simulate_lightcurves(QPO_MODEL, params, **args)


def test_bad_rates_for_photons():
    with pytest.raises(ValueError, match=r"rate must be finite and >= 0 ct/s, got -1\.0 at row 0, bin 1"):
        poisson_counts([[1.0, -1.0]], 1.0, 1)
    with pytest.raises(ValueError, match=r"rate must be finite and >= 0 ct/s, got nan"):
        events_from_rate([1.0, np.nan], 1.0, 1)


def test_power_law_given_by_its_band_rms_has_that_rms_in_the_light_curves(rng):
    """A prior stated as observers quote it: rms 0.1 over 1-16 Hz (a flat power law, index 0.5: no
    leak, no clipping). The periodograms of the simulated light curves, Poisson level removed, integrate
    to 0.1^2 over that band (mean of 200, within 3 sigma)."""
    dt, n_bins, n, rate = 1 / 64, 2048, 200, 800.0
    model = PSDModel.from_kinds({"red": "powerlaw_rms:1-16"})
    theta = np.array([0.1, 0.5])
    lc = simulate_lightcurves(model, np.tile(theta, (n, 1)), mean_rate=rate, dt=dt, n_bins=n_bins, rng=rng)
    freq = tk_frequencies(n_bins, dt)[:-1]
    df = freq[1] - freq[0]
    band = (freq - df / 2 >= 1.0) & (freq + df / 2 <= 16.0)  # whole bins inside the band
    p = _frac_periodogram(lc.counts.astype(float), dt) - 2 / (lc.counts.mean(axis=1) / dt)[:, None]
    rms2 = (p[:, band] * df).sum(axis=1)
    expect = model.components[0][1].variance(theta, freq[band][0] - df / 2, freq[band][-1] + df / 2)[0]
    assert expect == pytest.approx(0.01, rel=0.01)  # whole bins cover 1.016-15.98 Hz of the band
    err = rms2.std(ddof=1) / np.sqrt(n)
    assert abs(rms2.mean() - expect) < 3 * err, (rms2.mean(), expect, err)


def test_default_threads_follow_omp_num_threads(monkeypatch):
    """Torch models (the CNN, the neural posteriors) take OMP_NUM_THREADS as their default, as numpy does."""
    from xtml.learn.cnn import CNNClassifier
    from xtml.simulate.lightcurves import available_cpus, default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1
    assert CNNClassifier()._threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert default_threads() == available_cpus()  # never more than the CPUs available
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert default_threads() == available_cpus()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == available_cpus()
