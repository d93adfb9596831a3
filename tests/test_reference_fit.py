"""Maximum-likelihood fits: recovery with calibrated errors, agreement with Stingray, status, workers."""

import warnings

import numpy as np
import pytest

from xtml.psd import Fixed, JointPrior, LogUniform, Lorentzian, PowerLaw, PSDModel, Uniform
from xtml.reference import FitResult, SpectralModel, fit_spectra, log_likelihood, start_values
from xtml.simulate import simulate_lightcurves
from xtml.timing import periodogram, rebin_log, to_stingray

PSD = PSDModel.from_components({"red": PowerLaw(), "qpo": Lorentzian()})
MODEL = SpectralModel(PSD, noise="free")
# red.norm, red.index, qpo.nu0, qpo.q, qpo.rms, noise.level (Leahy: the Poisson level is 2)
TRUTH = np.array([2e-3, 1.2, 6.0, 8.0, 0.1, 2.0])
PRIOR = JointPrior(
    {
        "red.norm": LogUniform(1e-5, 1e-1),
        "red.index": Uniform(0.0, 3.0),
        "qpo.nu0": LogUniform(1.0, 20.0),
        "qpo.q": LogUniform(1.0, 50.0),
        "qpo.rms": LogUniform(1e-3, 0.5),
        "noise.level": Uniform(1.0, 3.0),
    }
)
RATE, DT, SEG_BINS, N_SEG = 500.0, 1 / 64, 1024, 16


def simulate(n, rng, theta=TRUTH, psd=PSD, n_seg=N_SEG, seg_bins=SEG_BINS, log_f=0.02):
    """Leahy spectra averaged over ``n_seg`` segments of 16 s and log-rebinned (123 bins).

    Every segment is its own Timmer & Koenig realisation, so the averaged periodogram has exactly the
    model's expectation (no red-noise leak from below 1/16 Hz); Poisson counts add the white noise.
    Log bins (1.02 times wider each) stay narrow next to the QPO's width (0.18 Hz vs FWHM 0.75 Hz
    at 6 Hz): the model, evaluated at the bin centres, then matches the bin averages.
    """
    k = psd.n_params
    lc = simulate_lightcurves(
        psd, np.tile(theta[:k], (n * n_seg, 1)), mean_rate=RATE, dt=DT, n_bins=seg_bins, rng=rng
    )
    ps = periodogram(lc.counts.reshape(n, n_seg * seg_bins), DT, segment_bins=seg_bins)
    return rebin_log(ps, log_f) if log_f else ps


def central_hessian(x, spectrum, model, rel=1e-4):
    """Hessian of -log L by plain central differences of log_likelihood, relative steps."""
    k = x.size
    h = rel * np.abs(x)
    rows = [x]
    for a in range(k):
        for b in range(k):
            for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                y = x.copy()
                y[a] += sa * h[a]
                y[b] += sb * h[b]
                rows.append(y)
    ll = log_likelihood(np.array(rows), spectrum, model)[1:].reshape(k, k, 4)
    return -(ll[..., 0] - ll[..., 1] - ll[..., 2] + ll[..., 3]) / (4 * h[:, None] * h[None, :])


def test_recovers_parameters_with_calibrated_hessian_errors(rng):
    """80 spectra: pulls (fit - truth) / error have mean ~0 and std ~1; 68%/95% intervals cover the truth."""
    n = 80
    ps = simulate(n, rng)
    assert ps.n_freq == 123
    assert ps.m.min() == N_SEG
    fit = fit_spectra(ps, MODEL, PRIOR, n_starts=2, workers=2, rng=1)
    assert isinstance(fit, FitResult)
    assert fit.param_names == MODEL.param_names
    assert fit.params.shape == fit.errors.shape == (n, 6)
    assert fit.cov.shape == (n, 6, 6)
    assert fit.success.all(), [s for s in fit.status if s != "ok"]
    pull = (fit.params - TRUTH) / fit.errors
    # 3-sigma sampling tolerances for n spectra: mean of pulls, their std, and binomial coverage rates
    np.testing.assert_array_less(np.abs(pull.mean(axis=0)), 3 / np.sqrt(n))
    np.testing.assert_array_less(np.abs(pull.std(axis=0) - 1.0), 3 / np.sqrt(2 * n))
    for level, z in ((0.683, 1.0), (0.954, 1.96)):
        cover = (np.abs(pull) < z).mean(axis=0)
        np.testing.assert_array_less(np.abs(cover - level), 3 * np.sqrt(level * (1 - level) / n))
    # the QPO is found in every spectrum: centroid and rms within 4 sigma of the truth
    assert np.all(np.abs(pull[:, [2, 4]]) < 4)
    # AIC and BIC: k = 6 free parameters, N = 123 frequency bins
    np.testing.assert_allclose(fit.aic, 12 - 2 * fit.loglike)
    np.testing.assert_allclose(fit.bic, 6 * np.log(123) - 2 * fit.loglike)
    np.testing.assert_allclose(fit.loglike, log_likelihood(fit.params, ps, MODEL), rtol=1e-12)


def test_best_fit_is_a_maximum_and_errors_match_plain_finite_differences(rng):
    """The reported errors are the inverse Hessian of the exact likelihood, and nothing nearby is better."""
    ps = simulate(2, rng)
    fit = fit_spectra(ps, MODEL, PRIOR, workers=1)
    for i in range(ps.n):
        one = ps.select(i)
        x = fit.params[i]
        cov = np.linalg.inv(central_hessian(x, one, MODEL))
        np.testing.assert_allclose(fit.cov[i], cov, rtol=2e-3, atol=1e-6 * np.abs(cov).max())
        np.testing.assert_allclose(fit.errors[i], np.sqrt(np.diag(cov)), rtol=1e-3)
        # a step of 0.01 sigma along each parameter does not raise the likelihood (beyond round-off)
        steps = 0.01 * np.diag(fit.errors[i])
        near = log_likelihood(np.vstack([x + steps, x - steps]), one, MODEL)
        assert np.all(near <= fit.loglike[i] + 1e-8)


def test_agrees_with_stingray_psdparest_for_a_single_periodogram(rng):
    """m = 1: Stingray's PSDLogLikelihood is exact; both fits find the same maximum.

    xtml's Lorentzian (centroid, FWHM, fractional rms) and astropy's ``Lorentz1D`` (amplitude, x_0,
    fwhm) describe the same family: ``amplitude = c rms^2 / (pi D) / (1/2 + arctan(nu0 / D) / pi)``
    with ``D = fwhm / 2`` and ``c`` the mean rate (Leahy), a one-to-one map for fixed ``(nu0, fwhm)``.
    A maximum-likelihood estimate does not depend on the parametrisation, so mapping Stingray's best
    fit into xtml's parameters must give xtml's best fit.
    """
    from astropy.modeling.models import Const1D, Lorentz1D, PowerLaw1D
    from stingray.modeling import PSDLogLikelihood, PSDParEst

    psd = PSDModel.from_components({"red": PowerLaw(), "qpo": Lorentzian(width="fwhm")})
    model = SpectralModel(psd, noise="free")
    theta = np.array([2e-3, 1.2, 6.0, 0.75, 0.1, 2.0])
    lc = simulate_lightcurves(psd, theta[:5], mean_rate=RATE, dt=DT, n_bins=4098, rng=rng)
    ps = periodogram(lc.counts, DT)
    assert ps.n_freq == 2048
    assert np.all(ps.m == 1)
    rate = ps.mean_rate[0]

    def to_astropy(t):
        norm, index, nu0, fwhm, rms, white = t
        d = fwhm / 2
        amp = rms**2 / (np.pi * d) / (0.5 + np.arctan(nu0 / d) / np.pi) * rate
        return np.array([norm * rate, index, amp, nu0, fwhm, white])

    bounds = {
        "red.norm": (1e-5, 1e-1),
        "red.index": (0.0, 3.0),
        "qpo.nu0": (1.0, 20.0),
        "qpo.fwhm": (0.05, 5.0),
        "qpo.rms": (1e-3, 0.5),
        "noise.level": (1.0, 3.0),
    }
    start = start_values(ps, model, bounds)[0]
    fit = fit_spectra(ps, model, bounds, start=start, n_starts=1, workers=1)
    assert fit.status == ("ok",)

    sps = to_stingray(ps)
    astro = PowerLaw1D(x_0=1.0) + Lorentz1D() + Const1D()
    astro.x_0_0.fixed = True
    loglike = PSDLogLikelihood(sps.freq, sps.power, astro, m=1)
    # Stingray perturbs the start with numpy's global generator: seed it, then restore its state
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(3)  # noqa: NPY002
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = PSDParEst(sps, max_post=False).fit(loglike, to_astropy(start))
    finally:
        np.random.set_state(state)  # noqa: NPY002
    np.testing.assert_allclose(to_astropy(fit.params[0]), res.p_opt, rtol=1e-3)
    # the same maximum of the same likelihood (for m = 1 the constant terms vanish)
    assert -fit.loglike[0] == pytest.approx(res.result, rel=1e-9, abs=1e-6)
    assert fit.loglike[0] >= -res.result - 1e-6


def test_absent_qpo_gives_finite_output_and_a_status(rng):
    """No QPO in the data: the QPO model still returns finite fits; what went wrong is in ``status``."""
    theta = TRUTH.copy()
    theta[4] = 1e-6  # no QPO to speak of
    ps = simulate(6, rng, theta=theta)
    fit = fit_spectra(ps, MODEL, PRIOR, workers=1)
    assert np.all(np.isfinite(fit.params))
    assert np.all(np.isfinite(fit.loglike))
    assert any(s.startswith("at bound: ") for s in fit.status)
    for s, ok, err in zip(fit.status, fit.success, fit.errors, strict=True):
        assert ok == (s == "ok")
        assert np.all(np.isfinite(err)) or "hessian" in s  # never a silent NaN
        for part in s.split("; "):
            assert part == "ok" or part.startswith(("at bound: qpo.", "hessian", "optimizer failed: "))


def test_bad_inputs_name_the_parameter():
    ps = simulate(1, 5)
    bounds = {name: PRIOR.priors[name].support for name in MODEL.param_names}
    missing = {k: v for k, v in bounds.items() if k != "qpo.q"}
    with pytest.raises(ValueError, match=r"missing: \['qpo.q'\].*valid parameters"):
        fit_spectra(ps, MODEL, missing)
    with pytest.raises(ValueError, match=r"unknown: \['qpo.width'\]"):
        fit_spectra(ps, MODEL, {**bounds, "qpo.width": (1.0, 2.0)})
    with pytest.raises(ValueError, match=r"missing: \[.qpo\.q.\]"):
        fit_spectra(ps, MODEL, JointPrior({k: v for k, v in PRIOR.priors.items() if k != "qpo.q"}))
    start = TRUTH.copy()
    start[2] = 30.0
    with pytest.raises(ValueError, match=r"start of qpo\.nu0 = 30\.0 .*outside"):
        fit_spectra(ps, MODEL, bounds, start=start)
    with pytest.raises(ValueError, match=r"bounds of red.index"):
        fit_spectra(ps, MODEL, {**bounds, "red.index": (2.0, 1.0)})
    with pytest.raises(ValueError, match="start must have shape"):
        fit_spectra(ps, MODEL, bounds, start=TRUTH[:5])
    with pytest.raises(ValueError, match="n_starts"):
        fit_spectra(ps, MODEL, bounds, n_starts=0)
    with pytest.raises(ValueError, match="workers"):
        fit_spectra(ps, MODEL, bounds, workers=0)
    from xtml.reference import default_bounds

    class MyQPO(Lorentzian):  # a user's component: no default bounds, a ValueError that says what to do
        pass

    mine = SpectralModel(PSDModel.from_components({"red": PowerLaw(), "mine": MyQPO()}), noise="free")
    with pytest.raises(ValueError, match=r"no default bounds for component 'mine' of kind MyQPO"):
        default_bounds(mine, ps)


def test_workers_do_not_change_the_results(rng):
    ps = simulate(6, rng)
    one = fit_spectra(ps, MODEL, PRIOR, n_starts=2, workers=1, rng=7)
    two = fit_spectra(ps, MODEL, PRIOR, n_starts=2, workers=2, rng=7)
    for field in ("params", "errors", "cov", "loglike", "aic", "bic", "success"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    assert one.status == two.status


def test_fixed_parameters_half_open_bounds_and_norms(rng):
    """A Fixed prior holds its parameter (error 0, not counted in AIC/BIC); half-open and infinite
    bounds give the same maximum as a box; a frac-normalised spectrum gives the same source fit."""
    psd = PSDModel.from_components({"red": PowerLaw()})
    model = SpectralModel(psd, noise="free")
    ps = simulate(2, rng, theta=np.array([4e-3, 1.5]), psd=psd)
    box = {"red.norm": (1e-5, 1.0), "red.index": (0.0, 3.0), "noise.level": (1.0, 3.0)}
    fit = fit_spectra(ps, model, box, workers=1)
    assert fit.success.all(), fit.status
    open_ = {"red.norm": (0.0, np.inf), "red.index": (-np.inf, np.inf), "noise.level": (-np.inf, 10.0)}
    other = fit_spectra(ps, model, open_, workers=1)
    np.testing.assert_allclose(other.params, fit.params, rtol=1e-5)
    np.testing.assert_allclose(other.errors, fit.errors, rtol=1e-3)
    frac = fit_spectra(ps.to_norm("frac"), model, {**box, "noise.level": (1e-4, 1e-2)}, workers=1)
    np.testing.assert_allclose(frac.params[:, :2], fit.params[:, :2], rtol=1e-5)
    np.testing.assert_allclose(frac.params[:, 2] * ps.mean_rate, fit.params[:, 2], rtol=1e-5)
    np.testing.assert_allclose(frac.errors[:, :2], fit.errors[:, :2], rtol=1e-3)

    prior = JointPrior(
        {"red.norm": LogUniform(1e-5, 1.0), "red.index": Fixed(1.5), "noise.level": Fixed(2.0)}
    )
    fixed = fit_spectra(ps, model, prior, workers=1)
    np.testing.assert_array_equal(fixed.params[:, 1:], [[1.5, 2.0]] * 2)
    np.testing.assert_array_equal(fixed.errors[:, 1:], 0.0)
    np.testing.assert_array_equal(fixed.cov[:, 1:, :], 0.0)
    np.testing.assert_array_equal(fixed.cov[:, :, 1:], 0.0)
    np.testing.assert_allclose(fixed.aic, 2 - 2 * fixed.loglike)
    np.testing.assert_allclose(fixed.bic, np.log(ps.n_freq) - 2 * fixed.loglike)
    # a one-parameter fit: the error is 1 / sqrt(-d2 log L / d norm2)
    x = fixed.params[0]
    h = 1e-4 * x[0]
    step = np.array([h, 0.0, 0.0])
    ll = log_likelihood(np.array([x, x + step, x - step]), ps.select(0), model)
    assert fixed.errors[0, 0] == pytest.approx((-(ll[1] - 2 * ll[0] + ll[2]) / h**2) ** -0.5, rel=1e-3)


def test_start_values_are_inside_the_bounds_and_find_the_qpo(rng):
    ps = simulate(20, rng)
    start = start_values(ps, MODEL, PRIOR)
    lo = np.array([PRIOR.priors[n].support[0] for n in MODEL.param_names])
    hi = np.array([PRIOR.priors[n].support[1] for n in MODEL.param_names])
    assert np.all((start > lo) & (start < hi))
    np.testing.assert_allclose(start[:, 2], TRUTH[2], rtol=0.1)  # centroid from the largest excess
    np.testing.assert_allclose(start[:, 4], TRUTH[4], rtol=0.5)  # rms from the integrated excess
    np.testing.assert_allclose(start[:, 5], TRUTH[5], rtol=0.1)  # white noise from the top powers
