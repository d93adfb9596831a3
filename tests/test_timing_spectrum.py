"""PowerSpectrum container, normalisations, Poisson level, and the doctests of xtml.timing."""

import dataclasses

import numpy as np
import pytest
from stingray.fourier import poisson_level as stingray_poisson_level

from xtml.timing import PowerSpectrum, check_norm, periodogram, poisson_level

NORMS = ("leahy", "frac", "abs")


def _spectrum(**changes):
    fields = {
        "freq": [1.0, 2.0, 3.0],
        "power": [[2.0, 1.0, 3.0], [1.5, 2.5, 2.0]],
        "m": [1, 1, 1],
        "df": [1.0, 1.0, 1.0],
        "norm": "leahy",
        "mean_rate": [10.0, 20.0],
        "segment_length": 1.0,
        "dt": 0.1,
        "n_segments": 1,
    }
    fields.update(changes)
    return PowerSpectrum(**fields)


@pytest.mark.parametrize("norm", NORMS)
def test_poisson_level_matches_stingray(norm):
    rates = np.array([0.5, 10.0, 1234.5])
    expected = [stingray_poisson_level(norm=norm, meanrate=r) for r in rates]
    np.testing.assert_allclose(poisson_level(norm, rates), expected, rtol=1e-14)
    assert poisson_level(norm, 10.0).shape == ()


def test_poisson_level_bad_input():
    with pytest.raises(ValueError, match=r"norm must be one of \['leahy', 'frac', 'abs'\]"):
        poisson_level("none", 1.0)
    with pytest.raises(ValueError, match="mean_rate must be finite and > 0"):
        poisson_level("frac", [1.0, 0.0])


def test_check_norm():
    assert check_norm("abs") == "abs"
    with pytest.raises(ValueError, match="norm must be one of"):
        check_norm("Leahy")


def test_fields_are_coerced_and_read_only():
    ps = _spectrum()
    assert ps.freq.dtype == np.float64
    assert ps.power.dtype == np.float64
    assert ps.m.dtype == np.int64
    assert ps.mean_rate.dtype == np.float64
    assert (ps.n, ps.n_freq) == (2, 3)
    with pytest.raises(ValueError, match="read-only"):
        ps.power[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ps.norm = "frac"
    # The caller's array stays writeable.
    power = np.ones((1, 3))
    _spectrum(power=power, mean_rate=[1.0])
    power[0, 0] = 5.0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"norm": "rms"}, "norm must be one of"),
        ({"freq": [1.0, 3.0, 2.0]}, "freq must be finite, > 0 and strictly increasing"),
        ({"freq": [0.0, 1.0, 2.0]}, "freq must be finite, > 0"),
        ({"freq": [[1.0, 2.0, 3.0]]}, r"freq must have shape \(n_freq,\)"),
        ({"power": [2.0, 1.0, 3.0]}, r"power must have shape \(n, 3\)"),
        ({"power": [[2.0, 1.0], [1.0, 1.0]]}, r"power must have shape \(n, 3\)"),
        ({"power": [[2.0, np.nan, 3.0], [1.0, 1.0, 1.0]]}, r"power must be finite; rows \[0\]"),
        ({"m": [1, 0, 1]}, "m must be >= 1"),
        ({"m": [1.5, 1, 1]}, "m must hold integers"),
        ({"m": [1, 1]}, r"m must have shape \(3,\)"),
        ({"df": [1.0, -1.0, 1.0]}, "df must be finite and > 0"),
        ({"mean_rate": [10.0]}, r"mean_rate must have shape \(2,\)"),
        ({"mean_rate": [10.0, 0.0]}, "mean_rate must be finite and > 0"),
        ({"segment_length": 0.0}, "segment_length must be a finite number > 0"),
        ({"dt": np.inf}, "dt must be a finite number > 0"),
        ({"n_segments": 0}, "n_segments must be an integer >= 1"),
        ({"n_segments": 2.0}, "n_segments must be an integer >= 1"),
    ],
)
def test_validation_names_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        _spectrum(**changes)


def test_select():
    ps = _spectrum()
    for index, rows in [(0, [0]), (-1, [1]), (np.int64(1), [1]), (slice(None, None, -1), [1, 0]),
                        ([1, 0], [1, 0]), (np.array([False, True]), [1])]:  # fmt: skip
        sub = ps.select(index)
        np.testing.assert_array_equal(sub.power, ps.power[rows])
        np.testing.assert_array_equal(sub.mean_rate, ps.mean_rate[rows])
        assert sub.power.ndim == 2
    with pytest.raises(ValueError, match=r"index must be in \[-2, 1\]"):
        ps.select(2)
    with pytest.raises(ValueError, match="power must have shape"):
        ps.select(slice(5, None))


@pytest.mark.parametrize("source", NORMS)
@pytest.mark.parametrize("target", NORMS)
def test_to_norm_equals_direct_computation(rng, source, target):
    counts = rng.poisson(7.0, size=(3, 2048))
    direct = periodogram(counts, 0.01, norm=target, segment_bins=256)
    converted = periodogram(counts, 0.01, norm=source, segment_bins=256).to_norm(target)
    assert converted.norm == target
    np.testing.assert_allclose(converted.power, direct.power, rtol=1e-12)
    np.testing.assert_allclose(converted.poisson_level(), poisson_level(target, direct.mean_rate), rtol=1e-14)


def test_frac_and_abs_relations(rng):
    """frac = leahy / mean_rate; abs = frac * mean_rate**2 (Stingray's definitions)."""
    counts = rng.poisson(3.0, size=(2, 1000))
    leahy = periodogram(counts, 0.002, norm="leahy")
    frac = periodogram(counts, 0.002, norm="frac")
    absolute = periodogram(counts, 0.002, norm="abs")
    rate = counts.sum(axis=1) / (1000 * 0.002)
    np.testing.assert_allclose(leahy.mean_rate, rate, rtol=1e-14)
    np.testing.assert_allclose(frac.power, leahy.power / rate[:, None], rtol=1e-12)
    np.testing.assert_allclose(absolute.power, frac.power * rate[:, None] ** 2, rtol=1e-12)


def test_repr_is_short():
    text = repr(_spectrum())
    assert text.startswith("PowerSpectrum(n=2, n_freq=3, norm='leahy'")
    assert len(text) < 200


def test_sampling_is_checked_and_travels_with_the_spectrum():
    """How the bins sampled the source (the binning response of the reference) survives every transform."""
    from xtml.timing import rebin_linear, rebin_log

    assert _spectrum().sampling == 1
    ps = _spectrum(sampling="continuous")
    for derived in (ps.select([1]), ps.to_norm("frac"), rebin_linear(ps, 3)):
        assert derived.sampling == "continuous"
    assert _spectrum(sampling=np.int64(4)).sampling == 4
    for bad in (0, -2, 1.5, True, "events", None):
        with pytest.raises(ValueError, match="sampling must be an integer >= 1"):
            _spectrum(sampling=bad)
    counts = np.random.default_rng(3).poisson(20.0, size=(2, 1024))
    assert periodogram(counts, 0.01, segment_bins=256, sampling=2).sampling == 2
    assert rebin_log(periodogram(counts, 0.01, segment_bins=256), 0.1).sampling == 1
