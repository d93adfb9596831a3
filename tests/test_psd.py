"""PSD components, composite models and priors: normalisation, batching, validation."""

import numpy as np
import pytest
from scipy import integrate, stats

from xtml.psd import (
    BendingPowerLaw,
    Constant,
    Fixed,
    JointPrior,
    LogUniform,
    Lorentzian,
    PowerLaw,
    PSDModel,
    Uniform,
    ZeroCentredLorentzian,
    make_component,
    prior_from_config,
)


@pytest.mark.parametrize(
    ("comp", "params", "rms"),
    [
        (Lorentzian(), [5.0, 10.0, 0.1], 0.1),
        (Lorentzian(), [0.3, 0.5, 0.25], 0.25),  # broad, centroid near zero: arctan term matters
        (Lorentzian(width="fwhm"), [5.0, 2.0, 0.2], 0.2),
        (ZeroCentredLorentzian(), [2.0, 0.3], 0.3),
    ],
)
def test_lorentzians_integrate_to_rms_squared(comp, params, rms):
    """Belloni et al. (2002): the component integrates to rms^2 over (0, inf)."""
    val, _ = integrate.quad(lambda f: comp.evaluate(np.array([f]), params)[0, 0], 0, np.inf, limit=500)
    assert val == pytest.approx(rms**2, rel=1e-6)


def test_lorentzian_shape_matches_formula():
    nu0, q, rms = 8.0, 4.0, 0.15
    f = np.linspace(0.1, 30, 50)
    delta = nu0 / (2 * q)
    expect = rms**2 * delta / np.pi / (delta**2 + (f - nu0) ** 2) / (0.5 + np.arctan(nu0 / delta) / np.pi)
    np.testing.assert_allclose(Lorentzian().evaluate(f, [nu0, q, rms])[0], expect, rtol=1e-12)
    # the peak is at nu0 and the half maximum at nu0 +- FWHM/2 (for a narrow QPO)
    half = Lorentzian().evaluate(np.array([nu0, nu0 + delta]), [nu0, q, rms])[0]
    assert half[1] / half[0] == pytest.approx(0.5)


def test_q_and_fwhm_parametrisations_agree():
    f = np.geomspace(0.1, 50, 40)
    a = Lorentzian().evaluate(f, [6.0, 3.0, 0.1])
    b = Lorentzian(width="fwhm").evaluate(f, [6.0, 2.0, 0.1])
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_power_laws():
    f = np.geomspace(0.01, 100, 30)
    np.testing.assert_allclose(PowerLaw().evaluate(f, [0.01, 1.5])[0], 0.01 * f**-1.5)
    bpl = BendingPowerLaw().evaluate(f, [0.01, 2.0, 1.0, 3.0])[0]
    # slopes far below / above the bend
    lo = np.polyfit(np.log(f[:5]), np.log(bpl[:5]), 1)[0]
    hi = np.polyfit(np.log(f[-5:]), np.log(bpl[-5:]), 1)[0]
    assert lo == pytest.approx(-1.0, abs=0.02)
    assert hi == pytest.approx(-3.0, abs=0.02)
    np.testing.assert_allclose(
        Constant().evaluate(f, [[0.5], [0.25]]), np.array([[0.5], [0.25]]) * np.ones(30)
    )


def test_composite_is_sum_and_batch_equals_rows(rng):
    model = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian(), "c": Constant()})
    assert model.param_names == ("broad.nu_max", "broad.rms", "qpo.nu0", "qpo.q", "qpo.rms", "c.level")
    f = np.geomspace(0.1, 60, 100)
    theta = np.column_stack(
        [
            rng.uniform(0.5, 5, 7),
            rng.uniform(0.1, 0.3, 7),
            rng.uniform(2, 30, 7),
            rng.uniform(2, 20, 7),
            rng.uniform(0.05, 0.2, 7),
            rng.uniform(0, 1e-3, 7),
        ]
    )
    batch = model.evaluate(f, theta)
    assert batch.shape == (7, 100)
    for i in range(7):
        row = model.evaluate(f, theta[i])
        parts = (
            ZeroCentredLorentzian().evaluate(f, theta[i, :2])
            + Lorentzian().evaluate(f, theta[i, 2:5])
            + Constant().evaluate(f, theta[i, 5:])
        )
        np.testing.assert_allclose(batch[i], row[0], rtol=1e-14)
        np.testing.assert_allclose(batch[i], parts[0], rtol=1e-14)
    comps = model.evaluate_components(f, theta)
    np.testing.assert_allclose(sum(comps.values()), batch, rtol=1e-14)
    assert model.index("qpo.q") == 3
    assert PSDModel.from_kinds(model.to_kinds()) == model


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ([1.0, 0.2, 5.0, 0.0, 0.1], r"qpo\.q = 0\.0 .*allowed range \(0\.0, inf\)"),
        ([1.0, 0.2, 5.0, -3.0, 0.1], r"qpo\.q = -3\.0"),
        ([1.0, 0.2, 5.0, 3.0, 1.2], r"qpo\.rms = 1\.2 .*\(0\.0, 1\.0\]"),
        ([1.0, 0.0, 5.0, 3.0, 0.1], r"broad\.rms = 0\.0"),
        ([1.0, 0.2, np.nan, 3.0, 0.1], r"qpo\.nu0 must be finite, got nan"),
        ([1.0, 0.2, np.inf, 3.0, 0.1], r"qpo\.nu0 must be finite"),
        ([-1.0, 0.2, 5.0, 3.0, 0.1], r"broad\.nu_max = -1\.0"),
    ],
)
def test_bad_parameters_are_named(params, match):
    model = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
    with pytest.raises(ValueError, match=match):
        model.evaluate(np.array([1.0, 2.0]), params)


def test_centroid_above_nyquist_is_refused():
    model = PSDModel.from_components({"qpo": Lorentzian()})
    with pytest.raises(ValueError, match=r"qpo\.nu0 = 70\.0 .*Nyquist frequency 64\.0"):
        model.check([[70.0, 5.0, 0.1]], nyquist=64.0)


def test_structure_errors():
    with pytest.raises(ValueError, match=r"unknown PSD component kind 'lorenzian'; valid kinds: .*"):
        make_component("lorenzian")
    with pytest.raises(ValueError, match="used twice"):
        PSDModel((("a", Constant()), ("a", PowerLaw())))
    with pytest.raises(ValueError, match="without dots"):
        PSDModel((("a.b", Constant()),))
    model = PSDModel.from_components({"qpo": Lorentzian()})
    with pytest.raises(
        ValueError, match=r"unknown parameter 'qpo\.nu'; valid parameters: qpo\.nu0, qpo\.q, qpo\.rms"
    ):
        model.index("qpo.nu")
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        model.evaluate(np.ones(2), [[1.0, 2.0]])


def test_priors_sample_their_distribution(rng):
    prior = JointPrior({"a": Uniform(-1.0, 3.0), "b": LogUniform(0.1, 100.0), "c": Fixed(2.5)})
    theta = prior.sample(20000, rng)
    assert theta.shape == (20000, 3)
    assert stats.kstest(theta[:, 0], stats.uniform(-1, 4).cdf).pvalue > 0.01
    assert stats.kstest(np.log(theta[:, 1]), stats.uniform(np.log(0.1), np.log(1000)).cdf).pvalue > 0.01
    assert np.all(theta[:, 2] == 2.5)
    lp = prior.log_prob(theta)
    np.testing.assert_allclose(lp, -np.log(4) - np.log(theta[:, 1]) - np.log(np.log(1000)))
    assert np.isneginf(prior.log_prob(np.array([[4.0, 1.0, 2.5]])))[0]
    assert np.isneginf(prior.log_prob(np.array([[0.0, 1.0, 2.0]])))[0]
    # log density integrates to one
    val = integrate.quad(lambda x: np.exp(LogUniform(0.1, 100.0).log_prob(np.array(x))), 0.1, 100, limit=200)[
        0
    ]
    assert val == pytest.approx(1.0, rel=1e-6)


def test_priors_same_seed_same_bytes():
    prior = JointPrior({"a": Uniform(0, 1), "b": LogUniform(1, 10)})
    assert prior.sample(50, 3).tobytes() == prior.sample(50, 3).tobytes()
    assert prior.sample(50, 3).tobytes() != prior.sample(50, 4).tobytes()


def test_prior_config_round_trip_and_errors():
    spec = {
        "a": {"dist": "uniform", "low": 0, "high": 1},
        "b": {"dist": "loguniform", "low": 1, "high": 5},
        "c": 3,
    }
    prior = JointPrior.from_config(spec)
    assert JointPrior.from_config(prior.to_config()) == prior
    with pytest.raises(ValueError, match="unknown dist 'gauss'; valid: uniform, loguniform, fixed"):
        prior_from_config("a", {"dist": "gauss"})
    with pytest.raises(ValueError, match=r"unknown: \['hi'\], missing: \['high'\]"):
        prior_from_config("a", {"dist": "uniform", "low": 0, "hi": 1})
    with pytest.raises(ValueError, match="low < high"):
        Uniform(2.0, 1.0)
    with pytest.raises(ValueError, match="0 < low < high"):
        LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match=r"missing: \['qpo.rms'\]; unknown: \['qpo.amp'\]"):
        JointPrior({"qpo.nu0": Fixed(1), "qpo.q": Fixed(1), "qpo.amp": Fixed(1)}).require(
            ("qpo.nu0", "qpo.q", "qpo.rms")
        )


@pytest.mark.parametrize("index", [-0.5, 0.8, 1.0, 1.0 + 1e-10, 1.5, 2.0, 3.0])
def test_power_law_by_band_rms_integrates_to_rms_squared_over_its_band(index):
    """PowerLaw(rms_band=...): the integral over the band is rms^2 for every index, through index = 1."""
    comp = PowerLaw(rms_band=(0.1, 10.0))
    assert comp.param_names == ("rms", "index")
    val, _ = integrate.quad(lambda f: comp.evaluate(np.array([f]), [0.2, index])[0, 0], 0.1, 10.0, limit=200)
    assert val == pytest.approx(0.04, rel=1e-8)
    # the same curve as the 1-Hz normalisation it implies
    norm = comp.norm_at_1hz([[0.2, index]])
    f = np.geomspace(0.01, 100, 9)
    np.testing.assert_allclose(
        comp.evaluate(f, [0.2, index]), PowerLaw().evaluate(f, [norm[0], index]), rtol=1e-12
    )


def test_power_law_by_band_rms_from_configuration_names():
    model = PSDModel.from_kinds({"red": "powerlaw_rms:0.1-10", "qpo": "lorentzian"})
    assert model.param_names == ("red.rms", "red.index", "qpo.nu0", "qpo.q", "qpo.rms")
    assert PSDModel.from_kinds(model.to_kinds()) == model
    tiny = PSDModel.from_kinds({"red": "powerlaw_rms:1e-05-0.5"})  # exponents keep their minus sign
    assert tiny.components[0][1].rms_band == (1e-05, 0.5)
    assert PSDModel.from_kinds(tiny.to_kinds()) == tiny
    with pytest.raises(ValueError, match=r"'powerlaw_rms:LOW-HIGH', e.g. 'powerlaw_rms:0.1-10'"):
        make_component("powerlaw_rms")
    with pytest.raises(ValueError, match=r"0 < low < high .* got \(10.0, 1.0\)"):
        make_component("powerlaw_rms:10-1")
    with pytest.raises(
        ValueError, match=r"parameter red.rms = 1.5 \(row 0\) is outside the allowed range \(0.0, 1.0\]"
    ):
        model.check([[1.5, 1.0, 5.0, 10.0, 0.1]])
    with pytest.raises(ValueError, match="powerlaw_rms:LOW-HIGH"):
        make_component("power_law")
