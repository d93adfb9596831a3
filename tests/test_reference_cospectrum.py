"""The cospectrum likelihood: the averaged-Laplace density vs exact forms, Monte Carlo and simulated data."""

from functools import partial

import numpy as np
import pytest
from scipy import integrate, signal, special, stats

from xtml.psd import JointPrior, Lorentzian, PSDModel, Uniform
from xtml.reference import (
    EXACT_MAX_M,
    SpectralModel,
    cospectrum_loglike,
    exp_difference_logpdf,
    laplace_mean_logpdf,
    log_likelihood_cospectrum,
    sample_posterior,
)
from xtml.simulate import Detector, observe, simulate_rate
from xtml.timing import cospectrum

QPO = PSDModel.from_components({"qpo": Lorentzian()})


def _brief_sum_density(x, m, b):
    """The closed form of the density of a sum of m iid Laplace(0, b), written out literally."""
    k = np.arange(m)
    coef = special.factorial(m - 1 + k) / (special.factorial(k) * special.factorial(m - 1 - k))
    poly = (coef * np.abs(x)[:, None] ** (m - 1 - k) * b**k / 2.0**k).sum(axis=1)
    return np.exp(-np.abs(x) / b) / (special.factorial(m - 1) * (2 * b) ** m) * poly


def _bessel_sum_logpdf(x, m, b):
    """Variance-gamma form of the same density.

    |x|^(m-1/2) K_(m-1/2)(|x|/b) / (sqrt(pi) Gamma(m) 2^(m-1/2) b^(m+1/2)).
    """
    z = np.abs(x) / b
    return (
        (m - 0.5) * np.log(np.abs(x))
        + np.log(special.kve(m - 0.5, z))
        - z
        - 0.5 * np.log(np.pi)
        - special.gammaln(m)
        - (m - 0.5) * np.log(2.0)
        - (m + 0.5) * np.log(b)
    )


@pytest.mark.parametrize("scale", [1.0, 0.01, 37.0])
def test_m1_is_scipy_laplace(scale, rng):
    x = np.concatenate([[0.0, -1e-12, 1e-12], rng.laplace(0, 3 * scale, 500)])
    np.testing.assert_allclose(
        laplace_mean_logpdf(x, 1, scale), stats.laplace(scale=scale).logpdf(x), rtol=0, atol=1e-10
    )
    # and a difference of exponentials with different means, exactly
    a, c = 2.0 * scale, 0.5 * scale
    expect = np.where(x >= 0, -x / a, x / c) - np.log(a + c)
    np.testing.assert_allclose(exp_difference_logpdf(x, 1, a, c), expect, rtol=0, atol=1e-10)


@pytest.mark.parametrize("m", [2, 3, 5, 10])
def test_the_closed_form_of_the_sum_is_right(m, rng):
    """The brief's formula, the Bessel form and numerical convolution of m Laplace densities agree."""
    b = 1.7
    s = rng.uniform(-8, 8, 200) * np.sqrt(m) * b
    brief = np.log(_brief_sum_density(s, m, b))
    np.testing.assert_allclose(brief, _bessel_sum_logpdf(s, m, b), rtol=0, atol=1e-10)
    # ours is the density of the mean: f_mean(x) = m f_sum(m x)
    np.testing.assert_allclose(laplace_mean_logpdf(s / m, m, b) - np.log(m), brief, rtol=0, atol=1e-10)
    if m <= 3:
        grid = np.linspace(-60, 60, 24001)
        h = grid[1] - grid[0]
        one = stats.laplace(scale=b).pdf(grid)
        conv = one
        for _ in range(m - 1):
            conv = signal.fftconvolve(conv, one, mode="same") * h
        np.testing.assert_allclose(np.interp(s, grid, conv), np.exp(brief), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("m", [2, 30, 100, 101, 150, 400])
def test_against_the_bessel_form_both_sides_of_the_switch(m, rng):
    x = rng.normal(0, 4 * np.sqrt(2 / m), 300)
    tol = 1e-9 if m <= EXACT_MAX_M else 3e-7  # the saddle point's error is ~0.1 / m^3
    with np.errstate(over="ignore", divide="ignore"):
        ref = _bessel_sum_logpdf(m * x, m, 1.0) + np.log(m)
    ok = np.isfinite(ref)  # K_nu(z) overflows for large nu and small z: compare where it does not
    assert ok.sum() >= 150
    np.testing.assert_allclose(laplace_mean_logpdf(x[ok], m), ref[ok], rtol=0, atol=tol)


@pytest.mark.parametrize("m", [1, 7, EXACT_MAX_M, EXACT_MAX_M + 1, 1000])
@pytest.mark.parametrize(("a", "c"), [(1.0, 1.0), (0.3, 2.0)])
def test_density_integrates_to_one(m, a, c):
    mean, sd = a - c, np.sqrt((a * a + c * c) / m)
    lo, hi = mean - 40 * sd, mean + 60 * sd
    total, _ = integrate.quad(
        lambda v: np.exp(exp_difference_logpdf(v, m, a, c)), lo, hi, points=[0.0, mean], limit=400
    )
    assert total == pytest.approx(1.0, abs=1e-8 if m <= EXACT_MAX_M else 1e-6)
    first = integrate.quad(
        lambda v: v * np.exp(exp_difference_logpdf(v, m, a, c)), lo, hi, points=[0.0, mean], limit=400
    )[0]
    assert first == pytest.approx(mean, abs=1e-6 * max(1.0, abs(mean)))


def _cdf_on_grid(m, a, c):
    sd = np.sqrt((a * a + c * c) / m)
    grid = np.linspace(a - c - 30 * sd, a - c + 40 * sd, 40001)
    pdf = np.exp(exp_difference_logpdf(grid, m, a, c))
    cdf = integrate.cumulative_trapezoid(pdf, grid, initial=0.0)
    return lambda v: np.interp(v, grid, cdf / cdf[-1])


@pytest.mark.parametrize(("m", "a", "c"), [(3, 1.0, 1.0), (40, 1.0, 1.0), (250, 1.0, 1.0), (5, 3.0, 1.0)])
def test_matches_monte_carlo_means(m, a, c, rng):
    n = 20000
    draws = (rng.exponential(a, (n, m)) - rng.exponential(c, (n, m))).mean(axis=1)
    assert stats.kstest(draws, _cdf_on_grid(m, a, c)).pvalue > 1e-3
    # the Gaussian with the same variance is rejected for small m (the test has power)
    if m == 3:
        gauss = stats.norm(a - c, np.sqrt((a * a + c * c) / m)).cdf
        assert stats.kstest(draws, gauss).pvalue < 1e-3


def test_bad_input():
    with pytest.raises(ValueError, match="m must"):
        laplace_mean_logpdf(0.0, 0)
    with pytest.raises(ValueError, match="m must"):
        laplace_mean_logpdf(0.0, 2.5)
    with pytest.raises(ValueError, match="x must be finite"):
        laplace_mean_logpdf(np.nan, 2)
    with pytest.raises(ValueError, match="scale"):
        cospectrum_loglike([[0.1, 0.2]], [[0.0, 0.0]], 1, scale=0.0)
    with pytest.raises(ValueError, match="kind"):
        cospectrum_loglike([[0.1, 0.2]], [[0.0, 0.0]], 1, kind="gaussian")
    # bad model values give -inf, not NaN
    assert exp_difference_logpdf(0.3, 3, -1.0, 1.0) == -np.inf
    out = cospectrum_loglike([[0.1, 0.2], [0.1, 0.2]], [[0.0, np.nan], [-5.0, 0.0]], 2, kind="signal")
    np.testing.assert_array_equal(out, [-np.inf, -np.inf])
    assert np.isfinite(cospectrum_loglike([[0.1, 0.2]], [[-5.0, 0.0]], 2, kind="laplace")[0])


def _two_modules(truth, n, rate, rng, *, n_bins=1024, dt=1 / 128, segment_bins=None):
    source, _ = simulate_rate(
        QPO, np.tile(truth, (n, 1)), mean_rate=rate, dt=dt, n_bins=n_bins, rng=rng, threads=1
    )
    counts = observe(source, dt, Detector(n_modules=2), rng).counts
    return cospectrum(counts[:, 0], counts[:, 1], dt, segment_bins=segment_bins)


def test_signal_model_describes_simulated_cospectra(rng):
    """Strong QPO: the variance per power is (b + E)^2 + b^2 (kind="signal"), not 2 b^2 (kind="laplace")."""
    truth = np.array([8.0, 8.0, 0.2])
    cs = _two_modules(truth, 400, 400.0, rng)
    model = SpectralModel(QPO, noise="poisson")
    expected = model.expected(truth[None], cs.select(0))[0] - 2.0
    strong = expected > 4.0
    assert strong.sum() >= 4
    np.testing.assert_allclose(cs.power[:, strong].mean(axis=0), expected[strong], rtol=0.15)
    variance = cs.power[:, strong].var(axis=0)
    ratio = variance / ((1 + expected[strong]) ** 2 + 1)  # each ratio scatters by ~0.15 (400 draws)
    assert ratio.mean() == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(ratio, 1.0, atol=0.5)
    assert np.all(variance > 5 * 2.0)  # the Laplace model's variance is 2
    noise = expected < 0.01
    assert cs.power[:, noise].var() == pytest.approx(2.0, rel=0.03)  # Laplace(1) where no signal
    # the signal model gives the data a higher likelihood than the Laplace one
    theta = np.tile(truth, (50, 1))
    ll = {
        k: log_likelihood_cospectrum(theta, cs.select(slice(0, 50)), model, kind=k)
        for k in ("laplace", "signal")
    }
    assert np.all(ll["signal"] > ll["laplace"])


def test_pure_noise_both_kinds_agree_and_norms_convert(rng):
    counts = rng.poisson(3.0, (2, 2, 8192))
    cs = cospectrum(counts[:, 0], counts[:, 1], 0.01, segment_bins=512)
    zero = np.zeros_like(cs.power)
    laplace = cospectrum_loglike(cs.power, zero, cs.m)
    np.testing.assert_allclose(laplace, cospectrum_loglike(cs.power, zero, cs.m, kind="signal"), rtol=1e-12)
    # in frac and abs, the scale converts with the norm; the log-likelihood changes by the Jacobian only
    model = SpectralModel(QPO, noise="poisson")
    theta = np.array([[5.0, 4.0, 0.05], [6.0, 4.0, 0.1]])
    diffs = []
    for norm in ("leahy", "frac", "abs"):
        ll = log_likelihood_cospectrum(theta, cs.select(0).to_norm(norm), model)
        diffs.append(ll[0] - ll[1])
    np.testing.assert_allclose(diffs, diffs[0], rtol=1e-9)


def test_model_checks(rng):
    counts = rng.poisson(3.0, (2, 4096))
    cs = cospectrum(counts[0], counts[1], 0.01, segment_bins=512)
    with pytest.raises(ValueError, match="no white-noise level"):
        log_likelihood_cospectrum([[5.0, 4.0, 0.1, 2.0]], cs, SpectralModel(QPO, noise="free"))
    model = SpectralModel(QPO, noise="poisson")
    with pytest.raises(ValueError, match="theta must have shape"):
        log_likelihood_cospectrum([[5.0, 4.0]], cs, model)
    ll = log_likelihood_cospectrum(
        [[5.0, -4.0, 0.1], [np.nan, 4.0, 0.1], [5.0, 4.0, 1.5], [5.0, 4.0, 0.1]], cs, model
    )
    assert np.all(np.isneginf(ll[:3]))
    assert np.isfinite(ll[3])


@pytest.mark.parametrize("kind", ["laplace", "signal"])
def test_likelihood_peaks_at_the_qpo_amplitude(kind, rng):
    """Weak QPO in one two-module observation: the cospectrum likelihood peaks near the true rms."""
    truth = np.array([8.0, 8.0, 0.08])  # peak source power ~0.6 in Leahy units: Laplace is fair
    cs = _two_modules(truth, 1, 300.0, rng, n_bins=64 * 1024, segment_bins=1024)
    model = SpectralModel(QPO, noise="poisson")
    grid = np.linspace(0.02, 0.16, 141)
    ll = log_likelihood_cospectrum(
        np.column_stack([np.full(141, 8.0), np.full(141, 8.0), grid]), cs, model, kind=kind
    )
    # the 2-sigma profile interval (Delta log L = 2) contains the truth
    inside = grid[ll > ll.max() - 2.0]
    assert inside.min() <= 0.08 <= inside.max()
    assert inside.max() - inside.min() < 0.05


def test_mcmc_on_a_cospectrum_recovers_a_strong_qpo(rng):
    """Strong QPO, signal noise model, through the same sampler: the truth lies in the 95 % intervals."""
    truth = np.array([6.0, 6.0, 0.15])  # peak source power ~4 (Leahy): the Laplace model would be too narrow
    cs = _two_modules(truth, 1, 300.0, rng, n_bins=32 * 256, dt=1 / 64, segment_bins=256)
    model = SpectralModel(QPO, noise="poisson")
    prior = JointPrior(
        {"qpo.nu0": Uniform(2.0, 12.0), "qpo.q": Uniform(2.0, 30.0), "qpo.rms": Uniform(0.01, 0.5)}
    )
    result = sample_posterior(
        cs, model, prior, start=truth, rng=3, loglike=partial(log_likelihood_cospectrum, kind="signal")
    )
    assert result.converged, result.status
    low, high = result.interval(0.95).T
    assert np.all((low <= truth) & (truth <= high)), (low, high)
