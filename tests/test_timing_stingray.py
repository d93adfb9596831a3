"""Conversion to and from Stingray power spectra."""

import numpy as np
import pytest
from stingray import AveragedPowerspectrum, Lightcurve, Powerspectrum

from xtml.timing import from_stingray, periodogram, rebin_linear, rebin_log, to_stingray

# Stingray's compute_rms warns when fewer than 30 powers are averaged; expected for these small spectra.
RMS_WARNING = "ignore:(All|Some) power spectral bins have M<30:UserWarning"


@pytest.fixture
def lightcurve(rng):
    dt = 1 / 128
    t = (np.arange(8 * 1024) + 0.5) * dt
    counts = rng.poisson(6.0 * (1 + 0.1 * np.sin(2 * np.pi * 10.0 * t)))  # 7 % rms at 10 Hz
    return counts, dt, Lightcurve(t, counts, dt=dt, skip_checks=True)


def _assert_same(a, b):
    np.testing.assert_allclose(a.freq, b.freq, rtol=1e-14)
    np.testing.assert_allclose(a.power, b.power, rtol=1e-13)
    np.testing.assert_array_equal(a.m, b.m)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-12)
    np.testing.assert_allclose(a.mean_rate, b.mean_rate, rtol=1e-13)
    assert a.norm == b.norm
    assert a.n_segments == b.n_segments
    assert a.segment_length == pytest.approx(b.segment_length, rel=1e-14)
    assert a.dt == pytest.approx(b.dt, rel=1e-14)


@pytest.mark.parametrize("norm", ["leahy", "frac", "abs"])
@pytest.mark.parametrize("rebin", ["none", "linear", "log"])
@pytest.mark.parametrize("segment_bins", [None, 1024])
def test_round_trip(lightcurve, norm, rebin, segment_bins):
    counts, dt, _ = lightcurve
    ps = periodogram(np.stack([counts, counts[::-1]]), dt, norm=norm, segment_bins=segment_bins)
    ps = {"none": ps, "linear": rebin_linear(ps, 4) if rebin == "linear" else ps, "log": rebin_log(ps, 0.05)}[
        rebin
    ]
    spec = to_stingray(ps, index=1)
    expected_type = Powerspectrum if segment_bins is None else AveragedPowerspectrum
    assert type(spec) is expected_type
    _assert_same(from_stingray(spec), ps.select(1))


@pytest.mark.parametrize("norm", ["leahy", "frac"])
def test_from_stingray_equals_periodogram(lightcurve, norm):
    counts, dt, lc = lightcurve
    theirs = AveragedPowerspectrum(lc, 1024 * dt, norm=norm, silent=True)
    ours = periodogram(counts, dt, norm=norm, segment_bins=1024)
    _assert_same(from_stingray(theirs), ours)
    _assert_same(from_stingray(theirs.rebin_log(0.02)), rebin_log(ours, 0.02))


@pytest.mark.filterwarnings(RMS_WARNING)
def test_stingray_methods_work_on_converted_spectra(lightcurve):
    counts, dt, lc = lightcurve
    theirs = AveragedPowerspectrum(lc, 1024 * dt, norm="leahy", silent=True)
    ours = periodogram(counts, dt, segment_bins=1024)
    spec = to_stingray(ours)
    np.testing.assert_allclose(spec.unnorm_power, theirs.unnorm_power, rtol=1e-10)
    np.testing.assert_allclose(spec.classical_significances(), theirs.classical_significances(), rtol=1e-10)
    np.testing.assert_allclose(spec.compute_rms(5.0, 15.0), theirs.compute_rms(5.0, 15.0), rtol=1e-10)
    for f in (0.02, 0.3):
        a, b = spec.rebin_log(f), theirs.rebin_log(f)
        np.testing.assert_allclose(a.power, b.power, rtol=1e-10)
        np.testing.assert_array_equal(a.m, b.m)
    frac = spec.to_norm("frac")
    np.testing.assert_allclose(frac.power, ours.to_norm("frac").power[0], rtol=1e-10)
    # Methods on a log-rebinned conversion.
    logged = to_stingray(rebin_log(ours, 0.05))
    pvalues, _ = logged.classical_significances()
    assert np.all((pvalues >= 0) & (pvalues <= 1))
    rms, rms_err = logged.compute_rms(5.0, 15.0)
    assert np.isfinite(rms)
    assert rms_err > 0


def test_from_stingray_bad_input(lightcurve):
    _, dt, lc = lightcurve
    spec = Powerspectrum(lc, norm="none")
    with pytest.raises(ValueError, match=r"obj.norm must be one of \['leahy', 'frac', 'abs'\], got 'none'"):
        from_stingray(spec)
    with pytest.raises(ValueError, match="obj must be a computed Stingray power spectrum"):
        from_stingray(Powerspectrum())
    with pytest.raises(ValueError, match=r"index must be in \[-1, 0\]"):
        to_stingray(periodogram(lc.counts, dt), index=3)
