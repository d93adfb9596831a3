"""Two-detector products: cospectra and FAD-corrected spectra vs Stingray, dead-time science, bad input."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from stingray import AveragedCrossspectrum, Lightcurve
from stingray.deadtime.fad import FAD
from stingray.filters import filter_for_deadtime

from xtml.timing import FADResult, PowerSpectrum, cospectrum, fad_correct, periodogram

NORMS = ("leahy", "frac", "abs")
# Stingray's FAD output keys and our FADResult fields.
FAD_KINDS = (("pds1", "power_a"), ("pds2", "power_b"), ("ptot", "power_total"), ("cs", "cospectrum"))


def _lightcurve(counts, dt):
    time = (np.arange(counts.size) + 0.5) * dt
    return Lightcurve(time, counts, dt=dt, skip_checks=True)


@contextmanager
def _ignore_fad_compliance() -> Iterator[None]:
    """Silence only Stingray's FAD compliance warning: a diagnostic, compared separately via ``fad_delta``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*-+ FAD correction", category=UserWarning)
        yield


def _assert_close(actual, desired, rtol):
    """Agreement to ``rtol``; the tiny ``atol`` (1e-13 of the typical power) only spares cospectral powers
    that happen to lie within ~1e-3 of zero, where the cancellation in Re(F_a* F_b) rounds differently."""
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=1e-13 * np.median(np.abs(desired)))


@pytest.fixture
def pair(rng):
    """Two observations of two detectors at different rates: 32 segments of 255 bins and a remainder."""
    dt, segment_bins = 0.01, 255
    shape = (2, 32 * segment_bins + 40)
    return rng.poisson(3.0, size=shape), rng.poisson(4.5, size=shape).astype(np.float64), dt, segment_bins


# --- agreement with Stingray ------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_cospectrum_matches_stingray(pair, norm):
    counts_a, counts_b, dt, segment_bins = pair
    cs = cospectrum(counts_a, counts_b, dt, norm=norm, segment_bins=segment_bins)
    assert isinstance(cs, PowerSpectrum)
    assert (cs.n, cs.n_segments, cs.norm) == (2, 32, norm)
    np.testing.assert_array_equal(cs.m, 32)
    for i in range(2):
        with warnings.catch_warnings():
            # Stingray's phase-lag error divides by the estimated coherence, which can be exactly 0.
            warnings.filterwarnings("ignore", message="divide by zero", category=RuntimeWarning)
            ref = AveragedCrossspectrum(
                _lightcurve(counts_a[i], dt),
                _lightcurve(counts_b[i], dt),
                segment_bins * dt,
                norm=norm,
                silent=True,
            )
        assert ref.m == cs.n_segments
        np.testing.assert_array_equal(cs.freq, ref.freq)
        _assert_close(cs.power[i], ref.power.real, rtol=1e-10)
        # mean_rate is the geometric mean rate that Stingray's normalisation uses.
        np.testing.assert_allclose(cs.mean_rate[i], ref.nphots / (segment_bins * dt), rtol=1e-13)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("smoothing_length", [None, 7.5])
def test_fad_matches_stingray(pair, norm, smoothing_length):
    counts_a, counts_b, dt, segment_bins = pair
    fad = fad_correct(
        counts_a, counts_b, dt, segment_bins=segment_bins, norm=norm, smoothing_length=smoothing_length
    )
    assert isinstance(fad, FADResult)
    assert fad.n == 2
    for i in range(2):
        lc_a, lc_b = _lightcurve(counts_a[i], dt), _lightcurve(counts_b[i], dt)
        with _ignore_fad_compliance():
            table = FAD(lc_a, lc_b, segment_bins * dt, norm=norm, smoothing_length=smoothing_length)
        expected_sigma = 3 * segment_bins * dt if smoothing_length is None else smoothing_length
        assert table.meta["smoothing_length"] == pytest.approx(expected_sigma, rel=1e-12)
        np.testing.assert_allclose(fad.fad_delta[i], table.meta["fad_delta"], rtol=1e-8)
        with _ignore_fad_compliance():
            ref = FAD(
                lc_a,
                lc_b,
                segment_bins * dt,
                norm=norm,
                smoothing_length=smoothing_length,
                return_objects=True,
            )
        for kind, field in FAD_KINDS:
            ours = getattr(fad, field)
            assert (ours.norm, ours.n_segments) == (norm, ref[kind].m)
            np.testing.assert_array_equal(ours.freq, ref[kind].freq)
            _assert_close(ours.power[i], np.real(ref[kind].power), rtol=1e-10)
        nph_a, nph_b = table.meta["nph1"], table.meta["nph2"]
        rates = np.array([nph_a, nph_b, nph_a + nph_b, np.sqrt(nph_a * nph_b)]) / (segment_bins * dt)
        np.testing.assert_allclose([getattr(fad, f).mean_rate[i] for _, f in FAD_KINDS], rates, rtol=1e-13)


# --- invariants -------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
def test_cospectrum_of_a_light_curve_with_itself_is_its_periodogram(rng, norm):
    counts = rng.poisson(2.0, size=(3, 10 * 128 + 5))
    cs = cospectrum(counts, counts, 0.05, norm=norm, segment_bins=128)
    ps = periodogram(counts, 0.05, norm=norm, segment_bins=128)
    np.testing.assert_allclose(cs.power, ps.power, rtol=1e-12)
    np.testing.assert_allclose(cs.mean_rate, ps.mean_rate, rtol=1e-14)
    np.testing.assert_array_equal(cs.freq, ps.freq)


def test_cospectrum_is_symmetric_and_one_dimensional_input_is_one_row(rng):
    a, b = rng.poisson(4.0, size=(2, 4096))
    ab = cospectrum(a, b, 0.01, segment_bins=256)
    np.testing.assert_allclose(ab.power, cospectrum(b, a, 0.01, segment_bins=256).power, rtol=1e-12)
    assert ab.n == 1
    whole = cospectrum(a, b, 0.01)  # default: one segment
    assert (whole.n_segments, whole.n_freq) == (1, 2047)


def test_fad_of_a_batch_equals_fad_of_each_row(rng):
    a, b = rng.poisson(3.0, size=(2, 3, 40 * 200))
    batch = fad_correct(a, b, 0.02, segment_bins=200, norm="frac")
    for i in range(3):
        row = fad_correct(a[i], b[i], 0.02, segment_bins=200, norm="frac")
        for field in ("power_a", "power_b", "power_total", "cospectrum"):
            np.testing.assert_allclose(
                getattr(batch, field).power[i], getattr(row, field).power[0], rtol=1e-12
            )


# --- science: two NuSTAR-like modules with independent non-paralyzable dead time -------------------

RATE, DEAD_TIME, DT, SEGMENT_BINS, N_SEGMENTS = 500.0, 2.5e-3, 1 / 512, 4096, 50


@pytest.fixture(scope="module")
def deadtime_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two observations (rows) of white noise at 500 ct/s incident per module, 50 segments of 8 s, each module
    filtered independently for 2.5 ms non-paralyzable dead time (detected rate ~222 ct/s)."""
    rng = np.random.default_rng(20261121)
    span = N_SEGMENTS * SEGMENT_BINS * DT
    counts = np.empty((2, 2, N_SEGMENTS * SEGMENT_BINS), dtype=np.int64)  # (module, observation, bin)
    for module in range(2):
        for obs in range(2):
            times = np.sort(rng.uniform(0.0, span, rng.poisson(RATE * span)))
            detected = filter_for_deadtime(times, DEAD_TIME)
            counts[module, obs] = np.histogram(detected, bins=counts.shape[2], range=(0.0, span))[0]
    return counts[0], counts[1]


def test_cospectrum_of_dead_time_noise_has_zero_mean(deadtime_pair):
    """Bachetti et al. (2015): no white-noise level in the cospectrum of independent modules.

    A cospectral power averaged over M segments has variance P_a P_b / (2M) (Laplace; 2 / M without dead
    time), with P_a, P_b the modules' own Leahy powers, measured here by their periodograms."""
    a, b = deadtime_pair
    cs = cospectrum(a, b, DT, segment_bins=SEGMENT_BINS)
    pa, pb = (periodogram(x, DT, segment_bins=SEGMENT_BINS) for x in (a, b))
    band = cs.freq > 50.0
    n_powers = band.sum()
    sigma = np.sqrt(np.sum(pa.power[:, band] * pb.power[:, band] / 2, axis=1) / cs.n_segments) / n_powers
    z = cs.power[:, band].mean(axis=1) / sigma
    assert np.all(np.abs(z) < 3), z
    # The same band of a module's periodogram is far from its Poisson level: dead time matters there.
    z_pds = (pa.power[:, band].mean(axis=1) - 2.0) / (2.0 / np.sqrt(n_powers * pa.n_segments))
    assert np.all(np.abs(z_pds) > 30), z_pds


def test_fad_restores_the_poisson_level_of_dead_time_noise(deadtime_pair):
    """Bachetti & Huppenkothen (2018): FAD-corrected Leahy powers of dead-time-affected noise average to ~2.

    FAD divides by S, a Gaussian-smoothed (weights w_k, sum 1, sigma = 3 T_seg = 24 bins, Stingray's
    default) estimate of the noise level from the same data, so the ratio has a small, predictable bias.
    To first order in the noise of S, E[P / S] / E[P] - 1 = Var(S) / E[S]^2 - Cov(P, S) / (E[P] E[S])
    = 2 sum(w^2) - w_0 / 2 (~0.365 / sigma ~ 1.5 % here); 2 sum(w^2) for the summed light curve, whose
    amplitude is uncorrelated with the difference; and w_0 for the cospectrum, whose mean is 0 without the
    bias. The band mean over K frequencies and M segments has variance 8 / (M K) (Leahy), not 4 / (M K):
    the band average of S is as noisy as the powers (4 + 8 - 2 * 2); 12 / (M K) for the summed light curve,
    2 / (M K) for the cospectrum. (Checked on 16 independent simulations: z = 0.2 +- 1.06.) With this data
    volume the bias is ~3-4 sigma, so the mean is compared with 2 (1 + bias), and the raw periodogram with
    its dead-time level to show what was corrected."""
    a, b = deadtime_pair
    fad = fad_correct(a, b, DT, segment_bins=SEGMENT_BINS)
    raw = periodogram(a, DT, segment_bins=SEGMENT_BINS)
    band = (fad.power_a.freq > 15.0) & (fad.power_a.freq < 240.0)  # 4 sigma (12 Hz) away from the ends
    n_avg = band.sum() * fad.power_a.n_segments

    # Dead time: the low-frequency Leahy level is 2 / (1 + r tau)^2 = 0.395 (Fano factor), not 2.
    low = raw.freq < 5.0  # 2 pi f tau < 0.08: the dead-time spectrum is flat there
    expected_low = 2.0 / (1.0 + RATE * DEAD_TIME) ** 2
    sigma_low = expected_low / np.sqrt(low.sum() * raw.n_segments)
    assert np.all(np.abs(raw.power[:, low].mean(axis=1) - expected_low) < 3 * sigma_low)
    assert np.all(raw.power[:, band].mean(axis=1) < 1.5)

    sigma_bins = 3 * SEGMENT_BINS * DT
    radius = int(4 * sigma_bins + 0.5)  # scipy.ndimage.gaussian_filter1d's kernel
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_bins) ** 2)
    w /= w.sum()
    checks = {
        "power_a": (2.0 * (1 + 2 * np.sum(w**2) - w[radius] / 2), 8.0),
        "power_b": (2.0 * (1 + 2 * np.sum(w**2) - w[radius] / 2), 8.0),
        "power_total": (2.0 * (1 + 2 * np.sum(w**2)), 12.0),
        "cospectrum": (w[radius], 2.0),
    }
    for field, (expected, variance) in checks.items():
        mean = getattr(fad, field).power[:, band].mean(axis=1)
        z = (mean - expected) / np.sqrt(variance / n_avg)
        assert np.all(np.abs(z) < 3), (field, mean, expected, z)
    assert np.all(np.abs(fad.power_a.power[:, band].mean(axis=1) - 2.0) < 0.05)
    assert np.all(np.abs(fad.fad_delta) < 0.05)  # Stingray's compliance criterion


# --- bad input --------------------------------------------------------------------------------------


@pytest.fixture
def counts(rng):
    return rng.poisson(3.0, size=(2, 1024)), rng.poisson(3.0, size=(2, 1024))


@pytest.mark.parametrize("func", [cospectrum, fad_correct])
def test_bad_input_names_the_argument(counts, func):
    a, b = counts
    seg = {"segment_bins": 64}
    with pytest.raises(ValueError, match=r"counts_b must have the same shape as counts_a"):
        func(a, b[:, :1000], 0.01, **seg)
    with pytest.raises(ValueError, match=r"counts_b must have the same shape"):
        func(a, b[:1], 0.01, **seg)
    for dt in (0.0, -0.01, np.nan, "x"):
        with pytest.raises(ValueError, match=r"dt must be a finite number > 0"):
            func(a, b, dt, **seg)
    for bad in (2, 1025, 64.0, True):
        with pytest.raises(ValueError, match=r"segment_bins must be"):
            func(a, b, 0.01, segment_bins=bad)
    with pytest.raises(ValueError, match=r"norm must be one of"):
        func(a, b, 0.01, norm="none", **seg)
    negative = a.copy()
    negative[1, 5] = -1
    with pytest.raises(ValueError, match=r"counts_a must be >= 0; rows \[1\]"):
        func(negative, b, 0.01, **seg)
    nan = b.astype(float)
    nan[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"counts_b must be finite; rows \[0\]"):
        func(a, nan, 0.01, **seg)
    with pytest.raises(ValueError, match=r"counts_a must be a real numeric array"):
        func(a.astype(complex), b, 0.01, **seg)
    with pytest.raises(ValueError, match=r"counts_a must have n_bins >= 3"):
        func(a[:, :2], b[:, :2], 0.01, segment_bins=3)


def test_zero_counts_name_the_detector_and_row(counts):
    a, b = counts
    empty_row = b.copy()
    empty_row[1] = 0
    with pytest.raises(ValueError, match=r"counts_b rows \[1\] have zero counts"):
        cospectrum(a, empty_row, 0.01, segment_bins=64)
    # FAD normalises every segment by its own counts: one empty segment is enough.
    empty_segment = a.copy()
    empty_segment[0, 128:192] = 0
    with pytest.raises(ValueError, match=r"counts_a rows \[0\] have zero counts in at least one segment"):
        fad_correct(empty_segment, b, 0.01, segment_bins=64)
    cospectrum(empty_segment, b, 0.01, segment_bins=64)  # the cospectrum uses the common mean: fine


def test_fad_specific_bad_input(counts):
    a, b = counts
    with pytest.raises(ValueError, match=r"segment_bins must be an integer"):
        fad_correct(a, b, 0.01, segment_bins=None)
    for bad in (0.0, -3.0, np.inf, "wide"):
        with pytest.raises(ValueError, match=r"smoothing_length must be a finite number > 0"):
            fad_correct(a, b, 0.01, segment_bins=64, smoothing_length=bad)
    with pytest.raises(ValueError, match=r"counts_a and counts_b must be independent"):
        fad_correct(a, a, 0.01, segment_bins=64)


def test_fad_result_checks_its_fields(counts):
    a, b = counts
    fad = fad_correct(a, b, 0.01, segment_bins=64)
    other = cospectrum(a, b, 0.01, segment_bins=128)
    with pytest.raises(ValueError, match=r"cospectrum must have the batch size and frequencies of power_a"):
        FADResult(fad.power_a, fad.power_b, fad.power_total, other, fad.fad_delta)
    with pytest.raises(ValueError, match=r"power_b must be a PowerSpectrum"):
        FADResult(fad.power_a, fad.power_b.power, fad.power_total, fad.cospectrum, fad.fad_delta)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fad_delta must have shape \(2,\)"):
        FADResult(fad.power_a, fad.power_b, fad.power_total, fad.cospectrum, np.zeros(3))
    with pytest.raises(AttributeError):
        fad.power_a = fad.power_b  # type: ignore[misc]
