"""QPO detection: exact distributions of the statistics, calibrated p-values, detection rates."""

import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from scipy import optimize, stats

from xtml.psd import Lorentzian, PSDModel, ZeroCentredLorentzian
from xtml.reference import (
    QPOFitWarning,
    SpectralModel,
    calibrate,
    lrt_statistic,
    max_outlier_statistic,
    qpo_scores,
    sample_spectra,
    single_bin_significance,
)
from xtml.timing import PowerSpectrum, rebin_log

NULL = SpectralModel(PSDModel.from_components({"broad": ZeroCentredLorentzian()}), noise="free")
ALT = SpectralModel(
    PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()}), noise="free"
)
NULL_BOUNDS = {"broad.nu_max": (0.1, 20.0), "broad.rms": (0.02, 0.6), "noise.level": (1.0, 3.0)}
ALT_BOUNDS = {**NULL_BOUNDS, "qpo.nu0": (1.0, 30.0), "qpo.q": (2.0, 20.0), "qpo.rms": (1e-3, 0.5)}
THETA_NULL = np.array([1.0, 0.25, 2.0])  # 1 Hz break, 25 % rms, Poisson level 2


def template(n_seg=8, seg_bins=512, dt=1 / 64, rebin=0.06, rate=200.0):
    """A Leahy spectrum grid (freq, m, df) of M averaged segments, log-rebinned; powers are placeholders."""
    n_freq = (seg_bins - 1) // 2
    df = 1 / (seg_bins * dt)
    ps = PowerSpectrum(
        freq=df * np.arange(1, n_freq + 1),
        power=np.full((1, n_freq), 2.0),
        m=np.full(n_freq, n_seg),
        df=np.full(n_freq, df),
        norm="leahy",
        mean_rate=[rate],
        segment_length=seg_bins * dt,
        dt=dt,
        n_segments=n_seg,
    )
    return rebin_log(ps, rebin) if rebin else ps


def with_qpo(theta_null, nu0=8.0, q=8.0, rms=0.1):
    """Alternative parameter vectors: the null's (broad.nu_max, broad.rms, noise.level) plus a QPO."""
    t = np.atleast_2d(theta_null)
    return np.column_stack([t[:, :2], np.broadcast_to([nu0, q, rms], (t.shape[0], 3)), t[:, 2:]])


# ----------------------------------------------------------------------------- exact distributions


def test_sampled_spectra_follow_gamma_m_s_over_m(rng):
    tpl = template()
    assert tpl.m.min() < tpl.m.max()  # varying m after log rebinning
    theta = np.tile(THETA_NULL, (3000, 1))
    sims = sample_spectra(NULL, theta, tpl, rng)
    s = NULL.expected(THETA_NULL, tpl)[0]
    # pooled over every bin through the CDF of Gamma(m, S/m): uniform
    u = stats.gamma.cdf(sims.power, tpl.m, scale=s / tpl.m)
    assert stats.kstest(u.ravel()[::7], "uniform").pvalue > 0.01
    # bin by bin: 2 m P / S ~ chi2(2m), mean S and variance S^2 / m
    for j in (0, tpl.n_freq // 2, tpl.n_freq - 1):
        assert (
            stats.kstest(2 * tpl.m[j] * sims.power[:, j] / s[j], "chi2", args=(2 * tpl.m[j],)).pvalue > 0.01
        )
    np.testing.assert_allclose(sims.power.mean(axis=0) / s, 1.0, atol=5 * np.sqrt(1 / tpl.m / 3000).max())
    np.testing.assert_allclose(sims.power.var(axis=0) * tpl.m / s**2, 1.0, rtol=0.15)
    assert sims.n == 3000
    assert sims.norm == tpl.norm
    assert np.array_equal(sims.freq, tpl.freq)


@pytest.mark.parametrize("m", [1, 5])
def test_single_bin_significance_matches_brute_force(m, rng):
    """S known: the largest of n_trials chi2(2m) variables exceeds T as often as the formula says."""
    n_trials, n_sim = 60, 40_000
    t_max = rng.chisquare(2 * m, size=(n_sim, n_trials)).max(axis=1)
    for t in np.quantile(t_max, [0.5, 0.9, 0.99]):
        p = single_bin_significance(t, m, n_trials)
        frac = np.mean(t_max >= t)
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / n_sim) + 1e-4
    # m = 1, one trial: p = exp(-T/2)
    assert single_bin_significance(6.0, 1, 1) == pytest.approx(np.exp(-3.0))
    with pytest.raises(ValueError, match="n_trials"):
        single_bin_significance(3.0, 1, 0)


def test_max_outlier_statistic_is_exactly_calibrated_for_known_s(rng):
    """Known S: T_R (on the chi2(2 m_min) scale when m varies) has the analytic p-value, uniform under H0."""
    for tpl in (template(rebin=0), template()):
        sims = sample_spectra(NULL, np.tile(THETA_NULL, (4000, 1)), tpl, rng)
        s = NULL.expected(THETA_NULL, tpl)
        t, idx = max_outlier_statistic(sims, s)
        if np.all(tpl.m == tpl.m[0]):  # Vaughan's T_R exactly
            np.testing.assert_allclose(t, (2 * tpl.m * sims.power / s).max(axis=1))
        p = single_bin_significance(t, tpl.m.min(), tpl.n_freq)
        assert stats.kstest(p, "uniform").pvalue > 0.01
        assert idx.min() >= 0
        assert idx.max() < tpl.n_freq
    # f_range restricts the search and the index refers to the full grid
    t, idx = max_outlier_statistic(sims, s, f_range=(2.0, 10.0))
    assert np.all((tpl.freq[idx] >= 2.0) & (tpl.freq[idx] <= 10.0))
    with pytest.raises(ValueError, match="f_range"):
        max_outlier_statistic(sims, s, f_range=(100.0, 200.0))


def test_t_r_detection_rate_matches_the_analytic_power(rng):
    """S known, QPO power in one bin: detection rate at 1 % false alarms = 1 - F(t S/(S+Q)) F(t)^(N-1)."""
    tpl = template(rebin=0)
    m, n_trials = float(tpl.m[0]), tpl.n_freq
    t_crit = optimize.brentq(lambda t: single_bin_significance(t, m, n_trials) - 0.01, 1.0, 500.0)
    s = NULL.expected(THETA_NULL, tpl)
    j = 100
    for boost in (0.0, 1.0, 2.0):  # extra power Q_j = boost * S_j in bin j
        expected = s.copy()
        expected[0, j] *= 1 + boost
        power = rng.gamma(m, expected / m, size=(20_000, tpl.n_freq))
        t, _ = max_outlier_statistic(replace(tpl, power=power, mean_rate=np.full(20_000, 200.0)), s)
        rate = np.mean(t >= t_crit)
        chi = stats.chi2(2 * m)
        analytic = 1 - chi.cdf(t_crit / (1 + boost)) * chi.cdf(t_crit) ** (n_trials - 1)
        assert abs(rate - analytic) < 4 * np.sqrt(analytic * (1 - analytic) / 20_000) + 1e-3
        if boost == 0:
            assert analytic == pytest.approx(0.01, rel=1e-6)


# ----------------------------------------------------------------------------- the likelihood ratio


def test_lrt_is_non_negative_and_large_for_a_strong_qpo(rng):
    tpl = template()
    theta = np.tile(THETA_NULL, (12, 1))
    strong = with_qpo(theta[:4], nu0=8.0, q=8.0, rms=0.25)
    spectra = sample_spectra(NULL, theta, tpl, rng)
    qpos = sample_spectra(ALT, strong, tpl, rng)
    lrt, null_fit, alt_fit = lrt_statistic(spectra, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, rng=rng)
    assert lrt.shape == (12,)
    assert np.all(lrt >= 0)
    assert null_fit.params.shape == (12, 3)
    assert alt_fit.params.shape == (12, 6)
    assert np.all(lrt < 40)  # no QPO: modest values (the null spread is ~ a few to ~15)
    lrt_q, _, alt_q = lrt_statistic(qpos, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, rng=rng)
    assert np.all(lrt_q > 100)
    np.testing.assert_allclose(alt_q.params[:, 2], 8.0, rtol=0.1)  # the centroid is found
    np.testing.assert_array_equal(qpo_scores(qpos, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, rng=rng) > 100, True)
    with pytest.raises(ValueError, match="nested"):
        lrt_statistic(spectra, ALT, NULL, ALT_BOUNDS, NULL_BOUNDS)
    with pytest.raises(ValueError, match="missing"):
        lrt_statistic(spectra, NULL, ALT, NULL_BOUNDS, NULL_BOUNDS)


def test_alternative_below_the_null_is_refitted_or_clipped_with_a_warning(rng, monkeypatch):
    import xtml.reference.qpo_lrt as qpo_module

    tpl = template()
    spectra = sample_spectra(NULL, np.tile(THETA_NULL, (6, 1)), tpl, rng)
    lrt, null_fit, _ = lrt_statistic(spectra, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, workers=1, rng=1)
    # an alternative optimiser that fails badly: the refit from the null-equivalent point repairs it
    real_fit = qpo_module.fit_spectra

    def failing_fit(spectra, model, bounds, **kwargs):
        fit = real_fit(spectra, model, bounds, **kwargs)
        if model is ALT and spectra.n == 12:  # the batched call with the two informed starts
            fit = replace(fit, loglike=fit.loglike - 100.0)
        return fit

    monkeypatch.setattr(qpo_module, "fit_spectra", failing_fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QPOFitWarning)
        repaired, null_again, alt_fit = lrt_statistic(
            spectra, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, workers=1, rng=1
        )
    np.testing.assert_allclose(null_again.loglike, null_fit.loglike)
    assert np.all(repaired >= 0)
    assert np.all(repaired <= lrt + 1e-3)
    np.testing.assert_allclose(2 * (alt_fit.loglike - null_fit.loglike)[repaired > 0], repaired[repaired > 0])
    monkeypatch.undo()
    # an alternative that cannot reach the null (QPO rms >= 0.3): LRT clipped to 0, with a warning naming rows
    no_null = {**ALT_BOUNDS, "qpo.rms": (0.3, 0.5)}
    with pytest.warns(QPOFitWarning, match="below the null") as record:
        clipped, _, _ = lrt_statistic(spectra, NULL, ALT, NULL_BOUNDS, no_null, workers=1)
    np.testing.assert_array_equal(clipped, 0.0)
    assert record[0].message.rows.tolist() == list(range(6))
    assert np.all(record[0].message.values < 0)


def _efficient_sigma(tpl, theta_alt, col, free):
    """sd of the MLE of parameter ``col`` with the other ``free`` ones profiled out (exact Fisher matrix)."""
    s = ALT.expected(theta_alt, tpl)[0]
    grads = []
    for k in free:
        h = 1e-6 * max(abs(theta_alt[k]), 1e-3)
        up, down = theta_alt.copy(), theta_alt.copy()
        up[k] += h
        down[k] -= h
        grads.append((ALT.expected(up, tpl)[0] - ALT.expected(down, tpl)[0]) / (2 * h))
    g = np.array(grads)
    fisher = (g * tpl.m / s**2) @ g.T
    i = list(free).index(col)
    return np.sqrt(np.linalg.inv(fisher)[i, i])


def test_lrt_at_the_boundary_and_its_detection_rate_match_the_asymptotic_theory(rng):
    """Known-frequency QPO (nu0, Q fixed): LRT ~ 1/2 chi2_0 + 1/2 chi2_1 under H0 (Chernoff; not chi2_1),
    and P(detect) = Phi(delta - sqrt(c)) with delta = A / sigma_A, A = rms^2 (Fisher information)."""
    tpl = template()
    bounds = {**ALT_BOUNDS, "qpo.nu0": (8.0, 8.0), "qpo.q": (8.0, 8.0), "qpo.rms": (1e-4, 0.5)}
    n = 100
    c = stats.chi2.isf(2 * 0.01, 1)  # 1 % false alarms under the 50:50 mixture
    theta_null = np.tile(THETA_NULL, (n, 1))
    lrt0 = qpo_scores(sample_spectra(NULL, theta_null, tpl, rng), NULL, ALT, NULL_BOUNDS, bounds, rng=rng)
    # half the LRTs are (numerically) zero, the other half follow chi2_1
    assert abs(np.mean(lrt0 < 1e-3) - 0.5) < 4 * np.sqrt(0.25 / n)
    assert stats.kstest(lrt0[lrt0 >= 1e-3], "chi2", args=(1,)).pvalue > 0.01
    # local alternatives: A = delta sigma_A(A), sigma_A = 2 rms sigma_rms from the Fisher matrix at the truth
    rates = []
    for delta in (np.sqrt(c) - 1, np.sqrt(c) + 1):
        rms = 0.03
        for _ in range(4):  # fixed point of rms^2 = delta * sigma_A(rms)
            rms = np.sqrt(
                delta * 2 * rms * _efficient_sigma(tpl, with_qpo(THETA_NULL, rms=rms)[0], 4, (0, 1, 4, 5))
            )
        spectra = sample_spectra(ALT, with_qpo(theta_null, rms=rms), tpl, rng)
        lrt = qpo_scores(spectra, NULL, ALT, NULL_BOUNDS, bounds, rng=rng)
        rates.append(np.mean(lrt > c))
        expected = stats.norm.cdf(delta - np.sqrt(c))
        assert abs(rates[-1] - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert np.mean(lrt0 > c) < rates[0] < rates[1]


# ----------------------------------------------------------------------------- calibration


def _calibrated_p_values(args):
    spectrum, n_sim, gen = args
    res = calibrate(spectrum, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, n_sim=n_sim, rng=gen, workers=1)
    return res.p_lrt, res.p_tr


def test_calibrated_p_values_are_uniform_under_the_null(rng):
    """Null spectra with fitted broadband: posterior-predictive p-values of LRT and T_R are uniform.

    Each spectrum is calibrated with few simulations; the randomised p-value p - U / (n_sim + 1) is
    exactly uniform when the observed statistic is exchangeable with the simulated ones.  (A longer
    run, 200 spectra x 19 simulations, gave KS p = 0.15 (LRT) and 0.17 (T_R).)"""
    tpl = template(rebin=0.1)
    n, n_sim = 60, 4
    obs = sample_spectra(NULL, np.tile(THETA_NULL, (n, 1)), tpl, rng)
    tasks = [(obs.select(i), n_sim, g) for i, g in enumerate(rng.spawn(n))]
    # spectra over two processes, one worker each: a pool per calibrate would cost more than its 15 small fits
    with ProcessPoolExecutor(max_workers=2) as pool:
        p_lrt, p_tr = np.array(list(pool.map(_calibrated_p_values, tasks, chunksize=10))).T
    u = rng.uniform(size=(2, n)) / (n_sim + 1)
    assert stats.kstest(p_lrt - u[0], "uniform").pvalue > 0.01
    assert stats.kstest(p_tr - u[1], "uniform").pvalue > 0.01


def test_calibrate_detects_a_qpo_and_reports(rng):
    tpl = template()
    obs = sample_spectra(ALT, with_qpo(THETA_NULL, rms=0.15), tpl, rng)
    res = calibrate(obs, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, n_sim=20, rng=rng)
    assert res.p_lrt == pytest.approx(1 / 21)
    assert res.p_tr == pytest.approx(1 / 21)
    assert res.p_single_bin < 0.01
    assert res.score == res.lrt > 30
    assert res.lrt_sim.shape == res.t_r_sim.shape == (20,)
    assert res.n_sim == 20
    assert abs(res.t_r_freq - 8.0) < 2.0
    assert res.null_params.shape == (3,)
    assert res.alt_params.shape == (6,)
    assert res.param_names == NULL.param_names
    assert isinstance(res.status, str)
    # an MCMC-like sample of the null parameters instead of the Gaussian approximation
    sample = THETA_NULL * (1 + 0.01 * rng.standard_normal((50, 3)))
    res2 = calibrate(obs, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, n_sim=5, rng=rng, samples=sample)
    assert res2.n_sim == 5
    with pytest.raises(ValueError, match="one spectrum"):
        calibrate(
            sample_spectra(NULL, np.tile(THETA_NULL, (2, 1)), tpl, rng),
            NULL,
            ALT,
            NULL_BOUNDS,
            ALT_BOUNDS,
            rng=1,
        )
    with pytest.raises(ValueError, match="samples"):
        calibrate(obs, NULL, ALT, NULL_BOUNDS, ALT_BOUNDS, n_sim=5, rng=1, samples=np.ones((4, 2)))
