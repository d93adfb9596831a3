"""Periodograms of light curves and event lists: white-noise statistics, Stingray agreement, rms, errors."""

import importlib

import numpy as np
import pytest
from scipy import stats
from stingray import AveragedPowerspectrum, EventList, Lightcurve, Powerspectrum

from xtml.timing import periodogram, periodogram_from_events, poisson_level, rebin_linear

NORMS = ("leahy", "frac", "abs")
periodogram_module = importlib.import_module("xtml.timing.periodogram")


def _lightcurve(counts, dt):
    time = (np.arange(counts.size) + 0.5) * dt
    return Lightcurve(time, counts, dt=dt, skip_checks=True)


# --- white noise: exact chi-squared distribution --------------------------------------------------


@pytest.mark.parametrize(("n_seg", "k"), [(1, 1), (4, 1), (1, 8), (8, 4), (3, 3)])
def test_poisson_noise_follows_scaled_chi2(rng, n_seg, k):
    """Leahy powers of pure Poisson noise averaged over M segments and K bins: (2 / 2MK) chi^2_{2MK}."""
    segment_bins = 2048
    counts = rng.poisson(5.0, size=(12, n_seg * segment_bins))
    ps = rebin_linear(periodogram(counts, 0.001, segment_bins=segment_bins), k)
    assert ps.n_segments == n_seg
    np.testing.assert_array_equal(ps.m, n_seg * k)
    dof = 2 * n_seg * k
    powers = ps.power.ravel()
    assert stats.kstest(powers * dof / 2, stats.chi2(dof).cdf).pvalue > 0.01
    # Mean 2 within 4 standard errors (variance of a power is 4 / (M K)).
    assert abs(powers.mean() - 2.0) < 4 * np.sqrt(4.0 / (n_seg * k) / powers.size)


def test_poisson_noise_frac_level(rng):
    counts = rng.poisson(2.0, size=(20, 8 * 512))
    ps = periodogram(counts, 0.004, norm="frac", segment_bins=512)
    ratio = ps.power.mean(axis=1) / ps.poisson_level()
    # Each row averages 255 bins with m = 8: standard error 1 / sqrt(8 * 255) = 2.2 %.
    np.testing.assert_allclose(ratio, 1.0, atol=4 / np.sqrt(8 * 255))
    np.testing.assert_allclose(
        ps.poisson_level(), poisson_level("frac", counts.sum(axis=1) / (8 * 512 * 0.004))
    )


# --- agreement with Stingray on the same input ----------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", [4096, 3001])
def test_single_periodogram_matches_stingray(rng, norm, n_bins):
    dt = 0.01
    counts = rng.poisson(40.0, size=n_bins)
    ours = periodogram(counts, dt, norm=norm)
    theirs = Powerspectrum(_lightcurve(counts, dt), norm=norm)
    np.testing.assert_array_equal(ours.freq, theirs.freq)  # zero and Nyquist frequencies excluded
    np.testing.assert_allclose(ours.power[0], theirs.power, rtol=1e-10)
    np.testing.assert_array_equal(ours.m, theirs.m)
    np.testing.assert_allclose(ours.df, theirs.df, rtol=1e-15)
    np.testing.assert_allclose(ours.mean_rate * ours.segment_length, theirs.nphots, rtol=1e-14)
    assert ours.n_segments == 1


@pytest.mark.parametrize("norm", NORMS)
def test_averaged_periodogram_matches_stingray(rng, norm):
    """Segments of 1000 bins from 10,777 bins: M = 10, the trailing 777 bins are dropped (as Stingray)."""
    dt = 0.005
    counts = rng.poisson(12.0, size=10_777).astype(np.float64)
    ours = periodogram(counts, dt, norm=norm, segment_bins=1000)
    theirs = AveragedPowerspectrum(_lightcurve(counts, dt), 1000 * dt, norm=norm, silent=True)
    assert ours.n_segments == theirs.m == 10
    np.testing.assert_array_equal(ours.freq, theirs.freq)
    np.testing.assert_allclose(ours.power[0], theirs.power, rtol=1e-10)
    np.testing.assert_array_equal(ours.m, theirs.m)
    # Stingray's mean rate: mean counts per segment (nphots) over the segment length.
    np.testing.assert_allclose(ours.mean_rate, theirs.nphots / theirs.segment_size, rtol=1e-14)
    np.testing.assert_allclose(ours.mean_rate, counts[:10_000].sum() / (10_000 * dt), rtol=1e-14)


def test_batch_equals_rows_and_is_dtype_independent(rng, monkeypatch):
    # Small FFT blocks, so that the batch spans several blocks.
    monkeypatch.setattr(periodogram_module, "_BLOCK_BYTES", 1 << 14)
    counts = rng.poisson(3.0, size=(37, 3 * 300 + 11))
    batch = periodogram(counts, 0.1, norm="frac", segment_bins=300)
    for i in (0, 17, 36):
        row = periodogram(counts[i], 0.1, norm="frac", segment_bins=300)
        np.testing.assert_allclose(batch.power[i], row.power[0], rtol=1e-13)
        assert batch.mean_rate[i] == row.mean_rate[0]
    for dtype in (np.uint8, np.int16, np.float32, np.float64):
        other = periodogram(counts.astype(dtype), 0.1, norm="frac", segment_bins=300)
        np.testing.assert_allclose(other.power, batch.power, rtol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_events_match_stingray_from_events(rng, norm):
    """Several GTIs (one too short for a segment), an empty stretch (segments with < 2 events are skipped),
    a large time offset, and a segment_size that is not a multiple of dt (rounded down, as Stingray)."""
    t0 = 3.0e8
    gti = t0 + np.array([[3.3, 400.0], [410.2, 415.0], [420.0, 1000.7]])
    times = np.sort(rng.uniform(t0, t0 + 1001.0, 60_000))
    in_gti = np.any((times[:, None] >= gti[:, 0]) & (times[:, None] < gti[:, 1]), axis=1)
    empty = (times > t0 + 500.0) & (times < t0 + 560.0)
    times = times[in_gti & ~empty]
    dt, segment_size = 0.007, 9.3
    ours = periodogram_from_events(times, gti=gti, dt=dt, segment_size=segment_size, norm=norm)
    events = EventList(times, gti=gti)
    theirs = AveragedPowerspectrum.from_events(
        events, dt=dt, segment_size=segment_size, norm=norm, silent=True
    )
    assert ours.n_segments == theirs.m
    assert ours.segment_length == pytest.approx(theirs.segment_size, rel=1e-15)
    np.testing.assert_array_equal(ours.freq, theirs.freq)
    np.testing.assert_allclose(ours.power[0], theirs.power, rtol=1e-10)
    np.testing.assert_allclose(ours.mean_rate * ours.segment_length, theirs.nphots, rtol=1e-14)
    # 95 + 62 segments fit in the long GTIs; the empty stretch removes whole segments.
    assert ours.n_segments < (400.0 - 3.3) // 9.296 + (1000.7 - 420.0) // 9.296


def test_events_batch(rng):
    gti = np.array([[0.0, 64.0]])
    files = [np.sort(rng.uniform(0.0, 64.0, n)) for n in (5000, 8000, 3000)]
    batch = periodogram_from_events(files, gti=gti, dt=1 / 64, segment_size=8.0, norm="frac")
    assert batch.n == 3
    assert batch.n_segments == 8
    for i, times in enumerate(files):
        one = periodogram_from_events(times, gti=gti, dt=1 / 64, segment_size=8.0, norm="frac")
        np.testing.assert_allclose(batch.power[i], one.power[0], rtol=1e-13)
        np.testing.assert_allclose(batch.mean_rate[i], len(times) / 64.0, rtol=1e-13)
    # One GTI array per file.
    per_file = periodogram_from_events(files, gti=[gti, gti, gti], dt=1 / 64, segment_size=8.0, norm="frac")
    np.testing.assert_array_equal(per_file.power, batch.power)


def test_events_batch_with_unequal_segments_fails(rng):
    files = [np.sort(rng.uniform(0.0, 64.0, 4000)) for _ in range(2)]
    gtis = [np.array([[0.0, 64.0]]), np.array([[0.0, 32.0]])]
    with pytest.raises(ValueError, match=r"file 0 gives M = 8, file 1 gives M = 4"):
        periodogram_from_events(files, gti=gtis, dt=1 / 64, segment_size=8.0)
    with pytest.raises(ValueError, match="got 1 GTI arrays for 2 event lists"):
        periodogram_from_events(files, gti=gtis[:1], dt=1 / 64, segment_size=8.0)


# --- fractional rms normalisation -----------------------------------------------------------------


def test_frac_norm_integrates_to_fractional_variance(rng):
    """Rate R (1 + A sin(2 pi f0 t)) sampled per bin: fractional rms A / sqrt(2).

    The integrated frac power minus the Poisson level over the bins around f0 recovers rms^2 within its error
    (Stingray's error: sqrt(sum (P_j / sqrt(m_j) df_j)^2)).
    """
    dt, segment_bins, n_seg = 1 / 128, 256, 128
    segment_length = segment_bins * dt
    f0 = 10 / segment_length  # a Fourier frequency of every segment: 5 Hz
    amplitude = 0.2
    t = (np.arange(n_seg * segment_bins) + 0.5) * dt
    rate = 400.0 * (1 + amplitude * np.sin(2 * np.pi * f0 * t))
    counts = rng.poisson(rate * dt, size=(4, t.size))
    ps = periodogram(counts, dt, norm="frac", segment_bins=segment_bins)
    band = np.abs(ps.freq - f0) < 5.5 * ps.df
    noise = ps.poisson_level()[:, None]
    integral = np.sum((ps.power[:, band] - noise) * ps.df[band], axis=1)
    error = np.sqrt(np.sum((ps.power[:, band] / np.sqrt(ps.m[band]) * ps.df[band]) ** 2, axis=1))
    rms2 = amplitude**2 / 2
    assert np.all(error < 0.12 * rms2)  # the error of the signal bin is rms^2 / sqrt(M) = 0.09 rms^2
    assert np.all(np.abs(integral - rms2) < 3 * error)
    # And the whole band from zero to Nyquist holds nothing else.
    total = np.sum((ps.power - noise) * ps.df, axis=1)
    assert np.all(np.abs(total - rms2) < 3 * np.sqrt(np.sum((ps.power / np.sqrt(ps.m) * ps.df) ** 2, axis=1)))


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, r"dt must be a finite number > 0 \(s\), got 0.0"),
        ({"dt": -1.0}, "dt must be a finite number > 0"),
        ({"dt": np.nan}, "dt must be a finite number > 0"),
        ({"dt": "fast"}, "dt must be a finite number > 0"),
        ({"norm": "rms"}, r"norm must be one of \['leahy', 'frac', 'abs'\], got 'rms'"),
        ({"segment_bins": 2}, r"segment_bins must be in \[3, n_bins = 64\], got 2"),
        ({"segment_bins": 65}, r"segment_bins must be in \[3, n_bins = 64\], got 65"),
        ({"segment_bins": 8.0}, "segment_bins must be an integer"),
    ],
)
def test_periodogram_bad_parameters(kwargs, match):
    args = {"counts": np.ones((2, 64)), "dt": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        periodogram(args.pop("counts"), args.pop("dt"), **args)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        (np.ones(2), r"n_bins >= 3 .* got n_bins = 2"),
        (np.ones((2, 1)), r"n_bins >= 3 .* got n_bins = 1"),
        (np.ones((2, 3, 4)), r"counts must have shape \(n, n_bins\) or \(n_bins,\)"),
        (np.ones((0, 8)), r"counts must have shape"),
        (np.array([[1, 2, -1, 4], [1, 1, 1, 1]]), r"counts must be >= 0; rows \[0\]"),
        (np.array([[1.0, 2.0, 1.0, 4.0], [1.0, np.nan, 1.0, 1.0]]), r"counts must be finite; rows \[1\]"),
        (np.array([[1.0, 2.0, 1.0, np.inf], [1.0, 1.0, 1.0, 1.0]]), r"counts must be finite; rows \[0\]"),
        (np.array([[1.0, 2.0, 1.0, 4.0], [0.0, 0.0, 0.0, 0.0]]), r"rows \[1\] have zero total counts"),
        (np.ones(8, dtype=complex), "counts must be a real numeric array"),
        (np.ones(8, dtype=bool), "counts must be a real numeric array"),
    ],
)
def test_periodogram_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        periodogram(counts, 0.1)


def test_periodogram_inf_in_dropped_remainder_is_an_error():
    counts = np.ones((1, 10))
    counts[0, -1] = np.inf
    with pytest.raises(ValueError, match=r"counts must be finite; rows \[0\]"):
        periodogram(counts, 0.1, segment_bins=3)


def test_events_bad_input(rng):
    times = np.sort(rng.uniform(0.0, 20.0, 500))
    gti = [[0.0, 20.0]]
    good = {"gti": gti, "dt": 0.01, "segment_size": 5.0}
    cases = [
        ({"times": np.array([])}, "times of file 0 is empty: no events"),
        ({"times": times[::-1]}, r"times of file 0 must be sorted in increasing order; times\[0\]"),
        ({"times": np.append(times, np.nan)}, "times of file 0 must be finite"),
        ({"segment_size": 25.0}, "segment_size = 25.0 s fits in no GTI of file 0; the longest GTI is 20.0 s"),
        ({"gti": [[0.0, 20.0], [10.0, 30.0]]}, "gti of file 0 must be sorted and non-overlapping"),
        ({"gti": [[5.0, 1.0]]}, "gti of file 0 must be finite with start < stop"),
        ({"gti": [0.0, 20.0]}, r"gti of file 0 must have shape \(n_gti, 2\)"),
        ({"dt": 0.0}, "dt must be a finite number > 0"),
        ({"segment_size": -1.0}, "segment_size must be a finite number > 0"),
        ({"segment_size": 0.02}, "segment_size must hold at least 3 bins"),
        ({"norm": "none"}, "norm must be one of"),
    ]  # fmt: skip
    for change, match in cases:
        kwargs = {"times": times} | good | change
        with pytest.raises(ValueError, match=match):
            periodogram_from_events(kwargs.pop("times"), **kwargs)
    sparse = np.array([0.5, 7.0, 13.0])  # one event per 5 s segment: none has the 2 Stingray requires
    with pytest.raises(ValueError, match="no segment of file 0 holds at least 2 events"):
        periodogram_from_events(sparse, **good)
    with pytest.raises(ValueError, match="times of file 1 is empty"):
        periodogram_from_events([times, np.array([])], **good)
