"""Linear and logarithmic rebinning: bookkeeping of m, agreement with Stingray, chi-squared statistics."""

import itertools

import numpy as np
import pytest
from scipy import stats
from stingray import AveragedPowerspectrum, Lightcurve, Powerspectrum

from xtml.timing import PowerSpectrum, log_bin_edges, periodogram, rebin_linear, rebin_log


def _lightcurve(counts, dt):
    time = (np.arange(counts.size) + 0.5) * dt
    return Lightcurve(time, counts, dt=dt, skip_checks=True)


def test_rebin_linear_bookkeeping(rng):
    ps = periodogram(rng.poisson(4.0, size=(3, 4 * 1000)), 0.01, segment_bins=1000)  # n_freq = 499
    out = rebin_linear(ps, 7)
    assert out.n_freq == 499 // 7 == 71
    np.testing.assert_array_equal(out.m, 4 * 7)
    np.testing.assert_allclose(out.df, 7 * ps.df[0], rtol=1e-14)
    np.testing.assert_allclose(out.freq, ps.freq[: 71 * 7].reshape(71, 7).mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(out.power, ps.power[:, : 71 * 7].reshape(3, 71, 7).mean(axis=2), rtol=1e-13)
    np.testing.assert_array_equal(out.mean_rate, ps.mean_rate)
    assert out.n_segments == 4
    assert out.norm == ps.norm
    assert rebin_linear(ps, 1) is ps
    # Rebinning twice is rebinning once by the product.
    twice = rebin_linear(rebin_linear(ps, 2), 3)
    once = rebin_linear(ps, 6)
    np.testing.assert_allclose(twice.power, once.power, rtol=1e-13)
    np.testing.assert_array_equal(twice.m, once.m)


@pytest.mark.parametrize("factor", [2, 5])
def test_rebin_linear_matches_stingray_rebin(rng, factor):
    dt, segment_bins = 0.01, 1024
    counts = rng.poisson(9.0, size=8 * segment_bins)
    theirs = AveragedPowerspectrum(_lightcurve(counts, dt), segment_bins * dt, norm="frac", silent=True)
    theirs = theirs.rebin(f=factor)
    ours = rebin_linear(periodogram(counts, dt, norm="frac", segment_bins=segment_bins), factor)
    n_freq = ours.n_freq  # Stingray keeps the trailing incomplete bin, we drop it
    np.testing.assert_allclose(ours.freq, theirs.freq[:n_freq], rtol=1e-13)
    np.testing.assert_allclose(ours.power[0], theirs.power[:n_freq], rtol=1e-12)
    np.testing.assert_array_equal(ours.m, np.broadcast_to(theirs.m, theirs.freq.shape)[:n_freq])
    np.testing.assert_allclose(ours.df, theirs.df, rtol=1e-14)


@pytest.mark.parametrize("factor", [0, -2, 500, 2.0, True, "2"])
def test_rebin_linear_bad_factor(rng, factor):
    ps = periodogram(rng.poisson(4.0, size=1000), 0.01)  # n_freq = 499
    with pytest.raises(ValueError, match=r"factor must be an integer in \[1, n_freq = 499\]"):
        rebin_linear(ps, factor)


@pytest.mark.parametrize("f", [0.01, 0.1, 0.5, 2.0])
@pytest.mark.parametrize("n_seg", [1, 6])
def test_rebin_log_matches_stingray(rng, f, n_seg):
    dt, segment_bins = 1 / 256, 2048
    counts = rng.poisson(9.0, size=n_seg * segment_bins)
    lc = _lightcurve(counts, dt)
    if n_seg == 1:
        theirs = Powerspectrum(lc, norm="leahy").rebin_log(f)
    else:
        theirs = AveragedPowerspectrum(lc, segment_bins * dt, norm="leahy", silent=True).rebin_log(f)
    ours = rebin_log(periodogram(counts, dt, segment_bins=segment_bins), f)
    assert not np.any(np.isnan(theirs.power))
    np.testing.assert_allclose(ours.freq, theirs.freq, rtol=1e-13)
    np.testing.assert_allclose(ours.power[0], theirs.power, rtol=1e-12)
    np.testing.assert_array_equal(ours.m, theirs.m)  # m = M * (number of Fourier frequencies in the bin)
    np.testing.assert_array_equal(ours.m // n_seg, theirs.k)
    np.testing.assert_allclose(ours.df, theirs.k * theirs.df, rtol=1e-12)
    assert ours.m.sum() == n_seg * 1023


def test_rebin_log_m_counts_the_fourier_frequencies_in_each_bin(rng):
    n_seg = 4
    ps = periodogram(rng.poisson(9.0, size=(2, n_seg * 4096)), 0.001, segment_bins=4096)
    out = rebin_log(ps, 0.02)
    # Independent count of the Fourier frequencies j df in each bin [e_k, e_k+1) of Stingray's edges.
    df = ps.df[0]
    edges = log_bin_edges(ps.freq[0], df, 0.02, ps.freq[-1])
    j = np.arange(1, ps.n_freq + 1)
    k = np.array([np.count_nonzero((j * df >= lo) & (j * df < hi)) for lo, hi in itertools.pairwise(edges)])
    np.testing.assert_array_equal(out.m, n_seg * k[k > 0])
    # The first bins hold a single frequency each; there m = M and the powers are unchanged.
    assert np.all(k[:7] == 1)
    np.testing.assert_array_equal(out.m[:7], n_seg)
    np.testing.assert_allclose(out.freq[:7], ps.freq[:7], rtol=1e-15)
    np.testing.assert_allclose(out.power[:, :7], ps.power[:, :7], rtol=1e-15)
    # Single and double bins alternate at first, the last bins hold many frequencies.
    assert set(k[:40]) == {1, 2}
    assert k[-2] > 30
    assert out.m.sum() == ps.m.sum()


def test_log_bin_edges():
    edges = log_bin_edges(1.0, 1.0, 0.5, 10.0)
    np.testing.assert_allclose(edges[:4], [0.5, 1.5, 3.0, 5.25])
    np.testing.assert_allclose(np.diff(edges)[1:] / np.diff(edges)[:-1], 1.5)
    assert edges[-2] <= 10.0 < edges[-1]


def test_log_rebinned_poisson_powers_follow_their_own_chi2(rng):
    """Each log bin against (2 / 2m) chi^2_{2m} with its own m: the chi^2 CDF values are uniform."""
    n_seg, segment_bins = 4, 2048
    counts = rng.poisson(6.0, size=(40, n_seg * segment_bins))
    ps = rebin_log(periodogram(counts, 0.002, segment_bins=segment_bins), 0.03)
    assert ps.m.min() == n_seg
    assert ps.m.max() > 20 * n_seg
    u = stats.chi2.cdf(ps.power * ps.m, 2 * ps.m).ravel()
    assert stats.kstest(u, "uniform").pvalue > 0.01
    # The frequency scale also matters: wrong m for the wide bins would show up in their spread.
    wide = ps.m >= 16 * n_seg
    z = (ps.power[:, wide] - 2.0) / (2.0 / np.sqrt(ps.m[wide]))
    assert abs(z.std() - 1.0) < 0.1


@pytest.mark.parametrize("f", [0.0, -0.1, np.nan, np.inf, "x"])
def test_rebin_log_bad_f(rng, f):
    ps = periodogram(rng.poisson(4.0, size=1000), 0.01)
    with pytest.raises(ValueError, match="f must be a finite number > 0"):
        rebin_log(ps, f)


def test_rebin_log_needs_uniform_df(rng):
    ps = rebin_log(periodogram(rng.poisson(4.0, size=4000), 0.01), 0.1)
    with pytest.raises(ValueError, match="rebin_log needs uniform bin widths df"):
        rebin_log(ps, 0.1)


def test_rebin_weights_by_m():
    ps = PowerSpectrum(freq=[1.0, 2.0], power=[[1.0, 4.0]], m=[1, 3], df=[1.0, 1.0], norm="leahy",
                       mean_rate=[1.0], segment_length=1.0, dt=0.25, n_segments=1)  # fmt: skip
    out = rebin_linear(ps, 2)
    np.testing.assert_allclose(out.power, [[(1.0 + 3 * 4.0) / 4]])
    np.testing.assert_allclose(out.freq, [(1.0 + 3 * 2.0) / 4])
    np.testing.assert_array_equal(out.m, [4])
