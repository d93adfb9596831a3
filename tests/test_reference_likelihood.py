"""The Whittle likelihood: exact for averaged spectra, against scipy's densities and Stingray's."""

import numpy as np
import pytest
from scipy import stats

from xtml.psd import Lorentzian, PowerLaw, PSDModel
from xtml.reference import SpectralModel, log_likelihood, whittle_loglike
from xtml.timing import PowerSpectrum, periodogram, rebin_log


@pytest.mark.parametrize("m", [1, 10, "array"])
def test_whittle_equals_the_gamma_density(m, rng):
    n_freq = 300
    mm = rng.integers(1, 40, n_freq) if m == "array" else np.full(n_freq, m)
    s = rng.uniform(0.5, 20, (3, n_freq))
    p = rng.gamma(mm, s / mm)
    ours = whittle_loglike(p, s, mm)
    expect = stats.gamma(a=mm, scale=s / mm).logpdf(p).sum(axis=1)
    np.testing.assert_allclose(ours, expect, rtol=1e-10)
    # and as a scaled chi-squared with 2m degrees of freedom: P = S/(2m) X, X ~ chi2(2m)
    chi = (stats.chi2(2 * mm).logpdf(2 * mm * p / s) + np.log(2 * mm / s)).sum(axis=1)
    np.testing.assert_allclose(ours, chi, rtol=1e-10)


def test_stingray_psdloglikelihood_is_off_for_m_above_one(rng):
    """Stingray 2.3's PSDLogLikelihood: right for m = 1, not for m = 10 (likelihood differences are off)."""
    from astropy.modeling.models import Const1D
    from stingray.modeling import PSDLogLikelihood

    freq = np.linspace(0.1, 10, 200)
    for m in (1, 10):
        p = rng.gamma(m, 2.0 / m, freq.size)
        model = Const1D()
        ll = PSDLogLikelihood(freq, p, model, m=m)
        # the difference between two parameter values is what fits, ratios and posteriors use
        ours = whittle_loglike(p, np.full((2, freq.size), [[2.0], [2.5]]), m)
        theirs = np.array([ll([2.0]), ll([2.5])])
        if m == 1:
            assert theirs[0] - theirs[1] == pytest.approx(ours[0] - ours[1], rel=1e-10)
        else:
            assert not np.isclose(theirs[0] - theirs[1], ours[0] - ours[1], rtol=1e-3)
            exact = stats.gamma(a=m, scale=np.array([[2.0], [2.5]]) / m).logpdf(p).sum(axis=1)
            assert ours[0] - ours[1] == pytest.approx(exact[0] - exact[1], rel=1e-10)


def test_log_likelihood_peaks_at_the_truth(rng):
    """Leahy spectrum of a QPO light curve: the likelihood is highest near the true parameters."""
    psd = PSDModel.from_components({"qpo": Lorentzian()})
    model = SpectralModel(psd, noise="poisson")
    truth = np.array([8.0, 8.0, 0.15])
    from xtml.simulate import simulate_lightcurves

    lc = simulate_lightcurves(psd, truth, mean_rate=800.0, dt=1 / 128, n_bins=64 * 1024, rng=rng)
    ps = rebin_log(periodogram(lc.counts, lc.dt, segment_bins=1024), 0.02)
    assert ps.m.max() > ps.m.min()  # array m after log rebinning
    grid = np.linspace(6.0, 10.0, 81)
    thetas = np.column_stack([grid, np.full(81, 8.0), np.full(81, 0.15)])
    ll = log_likelihood(thetas, ps, model)
    assert abs(grid[np.argmax(ll)] - 8.0) < 0.3
    # invalid parameters give -inf, not NaN and not an exception
    bad = log_likelihood(np.array([[8.0, -1.0, 0.15], [np.nan, 8.0, 0.1]]), ps, model)
    assert np.all(np.isneginf(bad))
    free = SpectralModel(psd, noise="free")
    assert free.param_names[-1] == "noise.level"
    assert log_likelihood([[8.0, 8.0, 0.15, 2.0]], ps, free)[0] == pytest.approx(ll[40])


def test_spectral_model_norms_agree(rng):
    """The same light curve in leahy, frac and abs: the likelihood differs only by the Jacobian constant."""
    psd = PSDModel.from_components({"red": PowerLaw()})
    model = SpectralModel(psd, noise="poisson")
    counts = rng.poisson(50.0, (1, 8192))
    ps = periodogram(counts, 0.01, segment_bins=512)
    theta = np.array([[1e-3, 1.5], [2e-3, 1.0]])
    diffs = []
    for norm in ("leahy", "frac", "abs"):
        ll = log_likelihood(theta, ps.to_norm(norm), model)
        diffs.append(ll[0] - ll[1])
    np.testing.assert_allclose(diffs, diffs[0], rtol=1e-9)
    with pytest.raises(ValueError, match="noise must be one of poisson, free"):
        SpectralModel(psd, noise="zhang")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="m must be >= 1"):
        whittle_loglike(np.ones((1, 3)), np.ones((1, 3)), 0)
    assert isinstance(ps, PowerSpectrum)
