"""Posterior diagnostics against exact answers: the conjugate Gaussian model and known distributions.

Prior :math:`\\theta \\sim N(0, 1)` per parameter, one observation :math:`x \\sim N(\\theta, s^2)`; the
posterior is :math:`N(x / (1 + s^2), s^2 / (1 + s^2))`.  An estimate is made wrong on purpose (too narrow,
shifted, skewed) and each diagnostic must flag it, while the exact posterior must pass.
"""

import numpy as np
import pytest
from scipy import stats

from xtml.psd import Constant, Fixed, JointPrior, LogUniform, PSDModel
from xtml.reference import SpectralModel
from xtml.sbi.comparisons import (
    PPC_STATISTICS,
    c2st,
    compare_with_reference,
    exact_posterior_draws,
    posterior_predictive_pvalue,
    spectral_ppc,
)
from xtml.sbi.diagnostics import (
    CalibrationError,
    check_calibration,
    expected_coverage,
    sbc_ranks,
    sbc_uniformity,
    tarp,
)
from xtml.timing import PowerSpectrum


def gaussian_posteriors(rng, n_obs, n_samples, n_params=2, s=0.5, shift=0.0, width=1.0, skew=0.0):
    """Draws from N(mu + shift*sd, (width*sd)^2) around the exact posterior N(mu, sd^2), with log-densities.

    ``skew = c`` maps the uniform of each draw through K(v) = v + c (v^2 - v) first: the truth's PIT then
    has density 1 + c (2u - 1), a posterior skewed low (``shift`` and ``width`` must be 0 and 1).
    """
    theta = rng.normal(size=(n_obs, n_params))
    mu = (theta + s * rng.normal(size=theta.shape)) / (1 + s**2)
    sd = s / np.sqrt(1 + s**2)
    v = rng.random((n_obs, n_samples, n_params))
    z = stats.norm.ppf(v + skew * (v**2 - v))
    centre, scale = mu + shift * sd, width * sd
    samples = centre[:, None, :] + scale * z
    log_prob_samples = stats.norm.logpdf(samples, centre[:, None, :], scale).sum(axis=2)
    log_prob_truth = stats.norm.logpdf(theta, centre, scale).sum(axis=1)
    return samples, theta, log_prob_samples, log_prob_truth


# ----------------------------------------------------------------------------- SBC and coverage


def test_exact_posterior_passes_sbc_and_coverage(rng):
    n_obs, n_samples = 1000, 300
    samples, theta, lps, lpt = gaussian_posteriors(rng, n_obs, n_samples)
    sbc = sbc_uniformity(sbc_ranks(samples, theta, rng=rng), n_samples, rng=rng)
    assert np.all(sbc.ks_pvalue > 0.01)
    np.testing.assert_allclose(sbc.z_mean, 0, atol=3 / np.sqrt(n_obs))
    np.testing.assert_allclose(sbc.z_std, 1, atol=3 / np.sqrt(2 * n_obs))

    cov = expected_coverage(samples, theta, log_prob_samples=lps, log_prob_truth=lpt)
    allowed = 3 * cov.standard_error + 1 / (n_samples + 1)  # binomial scatter + discreteness of L draws
    assert np.all(np.abs(cov.marginal - cov.levels[:, None]) < allowed[:, None])
    assert np.all(np.abs(cov.joint - cov.levels) < allowed)

    report = check_calibration(samples, theta, rng=rng, log_prob_samples=lps, log_prob_truth=lpt)
    assert report.passed, str(report)
    assert report.reasons == ()
    report.raise_if_failed()  # does not raise


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"width": 0.7}, "too narrow"), ({"shift": 0.5}, "biased high")],
    ids=["narrow30pc", "biased0.5sd"],
)
def test_miscalibrated_parameter_is_flagged_by_name(rng, kwargs, words):
    n_obs, n_samples = 2000, 300
    good, theta, *_ = gaussian_posteriors(rng, n_obs, n_samples, n_params=1)
    bad, theta_bad, *_ = gaussian_posteriors(rng, n_obs, n_samples, n_params=1, **kwargs)
    samples = np.concatenate([good, bad], axis=2)
    truths = np.concatenate([theta, theta_bad], axis=1)

    report = check_calibration(samples, truths, rng=rng, names=("rms", "nu0"))
    assert report.passed is False
    assert report.sbc.ks_pvalue[1] < 1e-4 < 0.01 < report.sbc.ks_pvalue[0]
    assert any(r.startswith("nu0: SBC") and words in r for r in report.reasons), report.reasons
    assert any(r.startswith("nu0: coverage") for r in report.reasons), report.reasons
    assert not any(r.startswith("rms: SBC") for r in report.reasons)  # the calibrated one is not blamed
    assert report.sbc.chi2_pvalue[1] < 1e-4
    assert report.coverage.max_deviation()[1] > 3  # percentage points
    with pytest.raises(CalibrationError) as err:
        report.raise_if_failed()
    assert err.value.report is report


@pytest.mark.parametrize(
    ("kwargs", "verdict"),
    [
        ({}, "passed"),
        ({"width": 1.3}, "conservative"),
        ({"width": 0.75}, "failed"),
        ({"shift": 0.4}, "failed"),
        ({"shift": 0.4, "width": 1.3}, "failed"),  # wide but biased: not usable
    ],
    ids=["exact", "wide30pc", "narrow25pc", "biased", "wide-and-biased"],
)
def test_verdict_tells_a_conservative_posterior_from_an_overconfident_one(rng, kwargs, verdict):
    """Over-coverage (wider than needed) is usable and says by how much; under-coverage or bias is not."""
    samples, theta, lps, lpt = gaussian_posteriors(rng, 2000, 300, **kwargs)
    report = check_calibration(
        samples, theta, rng=rng, names=("a", "b"), log_prob_samples=lps, log_prob_truth=lpt
    )
    assert report.verdict == verdict, str(report)
    assert report.usable is (verdict != "failed")
    assert report.passed is (verdict == "passed")
    width = kwargs.get("width", 1.0)
    if "shift" not in kwargs:  # the width is read off the coverage: a Gaussian twice too wide is +100 %
        for name in ("a", "b", "joint HPD"):
            assert report.wider_by[name] == pytest.approx(width - 1, abs=0.05), report.wider_by
    if verdict == "conservative":
        assert "CONSERVATIVE (usable" in str(report)
        assert "a by ~3" in report.conservative_text()  # ~30 % wider


def test_coverage_of_a_too_wide_posterior_matches_the_analytic_value(rng):
    # A posterior twice too wide.  Marginal: the central interval at level a is +-2 z_a true sigmas wide
    # and covers 2 Phi(2 z_a) - 1 of the truths, z_a = Phi^-1((1 + a) / 2).  Joint (2-D): the HPD region
    # is |z|^2 / 4 <= q_a, q_a the a-quantile of chi2_2, and covers F_chi2_2(4 q_a).
    n_obs, n_samples = 2000, 400
    samples, theta, lps, lpt = gaussian_posteriors(rng, n_obs, n_samples, width=2.0)
    cov = expected_coverage(samples, theta, log_prob_samples=lps, log_prob_truth=lpt)
    marginal = 2 * stats.norm.cdf(2 * stats.norm.ppf((1 + cov.levels) / 2)) - 1
    joint = stats.chi2.cdf(4 * stats.chi2.ppf(cov.levels, 2), 2)
    for expected, got in ((marginal[:, None], cov.marginal), (joint, cov.joint)):
        se = np.sqrt(expected * (1 - expected) / n_obs)
        assert np.all(np.abs(got - expected) < 3 * se + 1 / n_samples)
    # coverage at levels not on the grid, and the deviations in percentage points
    at68, joint68 = cov.coverage_at([0.68])
    np.testing.assert_allclose(at68[0], 2 * stats.norm.cdf(2 * stats.norm.ppf(0.84)) - 1, atol=0.03)
    assert joint68[0] == pytest.approx(stats.chi2.cdf(4 * stats.chi2.ppf(0.68, 2), 2), abs=0.03)
    np.testing.assert_allclose(cov.max_deviation((0.5,)), 100 * np.abs(cov.coverage_at([0.5])[0][0] - 0.5))
    assert cov.max_joint_deviation() > 20


def test_sbc_ties_are_broken_at_random():
    # A discrete parameter whose "posterior" is its prior: calibrated, but most draws tie with the truth.
    gen = np.random.default_rng(3)
    n_obs, n_samples = 2000, 50
    truths = gen.binomial(3, 0.5, size=(n_obs, 1)).astype(float)
    samples = gen.binomial(3, 0.5, size=(n_obs, n_samples, 1)).astype(float)
    ranks = sbc_ranks(samples, truths, rng=gen)
    assert ranks.min() >= 0
    assert ranks.max() <= n_samples
    assert sbc_uniformity(ranks, n_samples, rng=gen).ks_pvalue[0] > 0.01
    naive = (samples < truths[:, None, :]).sum(axis=1)  # ranks without the ties
    assert sbc_uniformity(naive, n_samples, rng=gen).ks_pvalue[0] < 1e-6


def test_jittered_ks_is_exact_for_coarse_ranks(rng):
    # With L = 3 (4 rank values) the jittered KS p-value is still uniform under the null.
    n_samples = 3
    pvalues = [
        sbc_uniformity(rng.integers(0, n_samples + 1, size=(100, 1)), n_samples, rng=rng).ks_pvalue[0]
        for _ in range(300)
    ]
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01


def test_sbc_histogram_equals_rank_bins_when_they_divide(rng):
    ranks = rng.integers(0, 100, size=(500, 2))  # L = 99: 100 rank values, 20 bins of 5 ranks
    sbc = sbc_uniformity(ranks, 99, rng=rng, n_bins=20)
    for k in range(2):
        np.testing.assert_array_equal(sbc.counts[k], np.bincount(ranks[:, k] // 5, minlength=20))
    np.testing.assert_allclose(sbc.bin_edges, np.arange(0, 101, 5))


# ----------------------------------------------------------------------------- TARP


def test_tarp_of_exact_posterior_is_close_to_the_diagonal(rng):
    samples, theta, *_ = gaussian_posteriors(rng, 1000, 300)
    res = tarp(samples, theta, rng=rng)
    assert res.ks_pvalue > 0.01
    assert res.max_distance < 0.05
    assert abs(res.atc) < 0.02
    assert res.ecp[0] == 0
    assert res.ecp[-1] == 1
    averaged = tarp(samples, theta, rng=rng, n_refs=10)
    assert averaged.max_distance < 0.03
    np.testing.assert_allclose(averaged.ecp, averaged.alpha, atol=0.03)


def test_tarp_needs_random_references_to_catch_a_mirrored_posterior(rng):
    # q(theta | x) = N(-mu, sd^2): with the reference always at the centre of the box (theta = 0) the
    # distances |theta - 0| are those of the exact posterior (ECP on the diagonal); random references
    # expose it (Lemos et al.: the diagonal must hold for every reference distribution).
    samples, theta, *_ = gaussian_posteriors(rng, 1000, 300, n_params=1)
    mirrored = -samples
    centre_box = np.array([[-1.0], [1.0]])
    res = tarp(mirrored, theta, rng=rng, bounds=centre_box, n_refs=10)
    assert res.max_distance > 0.15
    assert res.ks_pvalue < 1e-6


def test_tarp_sees_a_narrow_posterior_but_is_nearly_blind_to_a_skewed_one(rng):
    """The field note: TARP missed a miscalibration that SBC flagged.

    With posteriors narrow compared with the box of reference points, the TARP ball is almost a
    half-space facing a random side, so TARP sees the truth's PIT u or 1 - u at random.  A too-narrow
    posterior (U-shaped PIT, symmetric) survives that; a posterior skewed the same way for every
    observation (PIT density 2u, antisymmetric about 1/2) is symmetrised away.
    """
    n_obs, n_samples = 2000, 300
    narrow, theta_n, *_ = gaussian_posteriors(rng, n_obs, n_samples, n_params=1, s=0.05, width=0.7)
    skewed, theta_s, *_ = gaussian_posteriors(rng, n_obs, n_samples, n_params=1, s=0.05, skew=1.0)
    sbc_narrow = sbc_uniformity(sbc_ranks(narrow, theta_n, rng=rng), n_samples, rng=rng)
    sbc_skewed = sbc_uniformity(sbc_ranks(skewed, theta_s, rng=rng), n_samples, rng=rng)
    tarp_narrow = tarp(narrow, theta_n, rng=rng, n_refs=10)
    tarp_skewed = tarp(skewed, theta_s, rng=rng, n_refs=10)

    assert sbc_skewed.ks_pvalue[0] < 1e-20
    assert sbc_narrow.ks_pvalue[0] < 1e-6
    assert sbc_skewed.ks_statistic[0] > 2 * sbc_narrow.ks_statistic[0]  # SBC: skew is the worse one
    assert tarp_narrow.max_distance > 0.6 * sbc_narrow.ks_statistic[0]  # TARP sees the narrow one ...
    assert tarp_skewed.max_distance < 0.25 * sbc_skewed.ks_statistic[0]  # ... but hardly the skew
    assert tarp_skewed.max_distance < tarp_narrow.max_distance


# ----------------------------------------------------------------------------- C2ST


def test_c2st_is_half_for_one_distribution_and_near_bayes_for_a_shift(rng):
    n, d = 2000, 5
    same = c2st(rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng=rng)
    assert abs(same - 0.5) < 0.05
    # N(0, I) vs N(0.5, I) in 5-D: the Bayes accuracy is Phi(0.5 sqrt(5) / 2) = 0.712.
    shifted = c2st(rng.normal(size=(n, d)), rng.normal(0.5, 1, size=(n, d)), rng=rng)
    bayes = stats.norm.cdf(0.5 * np.sqrt(d) / 2)
    assert shifted > 0.6
    assert abs(shifted - bayes) < 0.04


def test_c2st_boosting_and_unequal_sizes(rng):
    a = rng.normal(size=(1500, 2))
    assert abs(c2st(a, rng.normal(size=(500, 2)), rng=rng, classifier="hgb") - 0.5) < 0.05
    assert c2st(a, rng.normal(size=(500, 2)) * 3, rng=rng, classifier="hgb") > 0.7


def test_compare_with_reference_takes_the_c2st_in_log_and_the_std_ratio_in_units(rng):
    """Log-normal draws: in log a 20 % wider posterior is a scale change the C2ST sees; the same draws
    compared with themselves shifted by a tenth of a sigma in log are nearly indistinguishable."""
    ref = np.exp(rng.normal(0.0, 0.5, size=(2000, 2)))
    wide = np.exp(rng.normal(0.0, 0.5 * 1.2, size=(2000, 2)))
    same = np.exp(rng.normal(0.0, 0.5, size=(2000, 2)))
    cmp_same = compare_with_reference(ref, same, log=[True, True], rng=0)
    cmp_wide = compare_with_reference(ref, wide, log=[True, True], rng=0)
    assert abs(cmp_same.c2st - 0.5) < 0.04
    assert cmp_wide.c2st > cmp_same.c2st + 0.02
    np.testing.assert_allclose(cmp_same.std_ratio, 1.0, atol=0.1)
    # in units, not log: a log-normal's sd is sqrt((exp(s^2) - 1) exp(s^2)), 1.30 times larger for s = 0.6
    expected = np.sqrt((np.exp(0.36) - 1) * np.exp(0.36)) / np.sqrt((np.exp(0.25) - 1) * np.exp(0.25))
    np.testing.assert_allclose(cmp_wide.std_ratio, expected, rtol=0.12)
    with pytest.raises(ValueError, match=r"values <= 0 in the log columns \[1\]"):
        compare_with_reference(ref, np.c_[same[:, 0], -same[:, 1]], log=[True, True], rng=0)
    with pytest.raises(ValueError, match="one flag per parameter"):
        compare_with_reference(ref, same, log=[True], rng=0)
    with pytest.raises(ValueError, match="same parameters"):
        compare_with_reference(ref, same[:, :1], rng=0)


def test_exact_posterior_draws_match_the_conjugate_posterior():
    """White Leahy powers (gamma, m = 5, N = 200) and a 1/S prior: the posterior of S is inverse-gamma
    (N m, m sum P); the thinned MCMC draws are indistinguishable from exact draws by the C2ST."""
    m, n = 5, 200
    power = np.random.default_rng(7).gamma(m, 2.0 / m, n)
    ps = PowerSpectrum(
        freq=np.arange(1.0, n + 1),
        power=power[None],
        m=np.full(n, m),
        df=np.ones(n),
        norm="leahy",
        mean_rate=[100.0],
        segment_length=1.0,
        dt=1.0 / (2 * n + 2),
        n_segments=m,
    )
    model = SpectralModel(PSDModel.from_components({"floor": Constant()}), noise="free")
    prior = JointPrior({"floor.level": Fixed(0.0), "noise.level": LogUniform(0.5, 8.0)})
    draws, converged = exact_posterior_draws(ps, model, prior, ("noise.level",), rng=3, max_draws=2000)
    assert converged
    assert draws.shape == (2000, 1)
    exact = stats.invgamma(a=n * m, scale=m * power.sum()).rvs(size=(2000, 1), random_state=4)
    cmp = compare_with_reference(exact, draws, log=[True], rng=0)
    assert abs(cmp.c2st - 0.5) < 0.04
    np.testing.assert_allclose(cmp.std_ratio, 1.0, atol=0.12)
    again, _ = exact_posterior_draws(ps, model, prior, ("noise.level",), rng=3, max_draws=2000)
    np.testing.assert_array_equal(draws, again)  # same seed, same draws
    with pytest.raises(ValueError, match="not parameters of the model"):
        exact_posterior_draws(ps, model, prior, ("qpo.nu0",), rng=3)


# ----------------------------------------------------------------------------- posterior predictive


def test_ppc_pvalue_is_uniform_under_the_null(rng):
    pvalues = [posterior_predictive_pvalue(rng.normal(), rng.normal(size=99)) for _ in range(500)]
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01
    assert min(pvalues) >= 1 / 100  # never 0 from a finite number of replications


def spectrum_model(freq):
    return 0.01 * (freq / 1.0) ** -1.5 + 0.002


def test_spectral_ppc_uniform_under_the_model_and_small_for_a_missed_qpo(rng):
    freq = np.linspace(0.5, 64, 128)
    model = spectrum_model(freq)
    m = 4

    def draw(n, mean):
        return mean * rng.gamma(m, 1 / m, size=(n, freq.size))

    for model_power in (None, model):  # leave-one-out replication mean, or the known model
        null = np.array(
            [
                spectral_ppc(draw(1, model)[0], draw(99, model), model_power=model_power, m=m).pvalues
                for _ in range(300)
            ]
        )
        for k, name in enumerate(PPC_STATISTICS):
            assert stats.kstest(null[:, k], "uniform").pvalue > 0.01, (name, model_power is None)

    # The observed spectrum has a QPO at 20 Hz that the model (and its replications) lack.
    qpo = 0.02 / (1 + ((freq - 20) / 0.8) ** 2)
    observed = draw(1, model + qpo)[0]
    res = spectral_ppc(observed, draw(99, model), model_power=model, m=m)
    assert res.pvalue("max_ratio") <= 0.01
    assert res.pvalue("chi2") <= 0.01
    assert spectral_ppc(observed, draw(99, model), m=m).pvalue("max_ratio") <= 0.01
    assert res.observed.shape == res.replicated.shape == (len(PPC_STATISTICS), 99)


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sbc_ranks(np.zeros((5, 10)), np.zeros((5, 1)), rng=0), "samples must have shape"),
        (lambda: sbc_ranks(np.zeros((5, 10, 2)), np.zeros((5, 3)), rng=0), "truths must have shape"),
        (lambda: sbc_uniformity(np.full((5, 1), 11), 10, rng=0), "ranks must be integers"),
        (lambda: expected_coverage(np.zeros((5, 10, 1)), np.zeros((5, 1)), [0.5, 1.0]), "levels"),
        (
            lambda: expected_coverage(np.zeros((5, 10, 1)), np.zeros((5, 1)), log_prob_truth=np.zeros(5)),
            "both",
        ),
        (lambda: tarp(np.zeros((5, 10, 1)), np.zeros((5, 1)), rng=0), "upper > lower"),
        (lambda: c2st(np.zeros((10, 2)), np.zeros((10, 3)), rng=0), "same number of dimensions"),
        (lambda: c2st(np.zeros((10, 2)), np.zeros((10, 2)), rng=0, classifier="svm"), "classifier"),
        (lambda: posterior_predictive_pvalue(np.zeros(3), np.zeros(4)), "observed_stat"),
        (lambda: spectral_ppc(np.ones(4), np.ones((3, 5))), "replicated_power"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
