"""MCMC posteriors: vs exact posteriors, recovery of a simulated QPO, determinism, enforced convergence."""

import numpy as np
import pytest
from scipy import stats

from xtml.psd import Constant, Fixed, JointPrior, LogUniform, Lorentzian, PowerLaw, PSDModel, Uniform
from xtml.reference import MCMCResult, NotConvergedError, SpectralModel, log_likelihood, sample_posterior
from xtml.simulate import simulate_lightcurves
from xtml.timing import PowerSpectrum, periodogram

WHITE = SpectralModel(PSDModel.from_components({"floor": Constant()}), noise="free")  # S = noise.level
WHITE_PRIOR = JointPrior({"floor.level": Fixed(0.0), "noise.level": LogUniform(0.5, 8.0)})
QPO = PSDModel.from_components({"qpo": Lorentzian()})


def _spectrum(power, m, rate=100.0, df=1.0):
    n_freq = power.shape[-1]
    return PowerSpectrum(
        freq=np.arange(1.0, n_freq + 1) * df,
        power=np.atleast_2d(power),
        m=np.broadcast_to(m, (n_freq,)),
        df=np.full(n_freq, df),
        norm="leahy",
        mean_rate=[rate],
        segment_length=1.0 / df,
        dt=1.0 / df / (2 * n_freq + 2),
        n_segments=int(np.max(m)),
    )


@pytest.fixture(scope="module")
def white():
    """White Leahy noise, N = 200 bins of m = 5 powers, and its MCMC posterior."""
    m, level = 5, 2.0
    ps = _spectrum(np.random.default_rng(7).gamma(m, level / m, 200), m)
    return ps, sample_posterior(ps, WHITE, WHITE_PRIOR, n_walkers=16, n_steps=500, rng=11)


def _check_quantiles(samples, cdf, ess, qs=(0.025, 0.16, 0.5, 0.84, 0.975)):
    """Each sample quantile, mapped through the exact CDF, is within 4 Monte-Carlo sigma of its level."""
    for q in qs:
        got = cdf(np.quantile(samples, q))
        assert abs(got - q) < 4 * np.sqrt(q * (1 - q) / ess) + 1e-3, (q, got)


def test_exact_posterior_of_a_white_noise_level(white):
    """Gamma(m, S/m) powers and a 1/S prior: the posterior of S is inverse-gamma(N m, m sum P), truncated."""
    ps, result = white
    assert result.converged, result.status
    assert result.param_names == ("floor.level", "noise.level")
    assert np.all(result.samples[:, 0] == 0.0)  # fixed
    assert result.tau[0] == 0
    assert result.ess[0] == np.inf
    n, m = ps.n_freq, int(ps.m[0])
    post = stats.invgamma(a=n * m, scale=m * ps.power.sum())
    lo, hi = WHITE_PRIOR.priors["noise.level"].support
    assert max(post.cdf(lo), post.sf(hi)) < 1e-12  # the truncation is negligible
    s = result.samples[:, 1]
    ess = float(result.ess[1])
    assert ess >= 400
    assert abs(s.mean() - post.mean()) < 4 * post.std() / np.sqrt(ess)
    assert s.std() == pytest.approx(post.std(), rel=0.15)  # a likelihood doubled for m > 1: 1/sqrt(2)
    _check_quantiles(s, post.cdf, ess)
    interval = result.interval(0.68)
    assert interval.shape == (2, 2)
    assert interval[1, 0] < post.median() < interval[1, 1]


def test_two_parameter_posterior_against_grid_integration(rng):
    """Red noise (norm, index) on a frac spectrum: the marginals match a 2-D grid of the exact posterior."""
    model = SpectralModel(PSDModel.from_components({"red": PowerLaw()}), noise="poisson")
    prior = JointPrior({"red.norm": LogUniform(1e-3, 10.0), "red.index": Uniform(0.0, 3.0)})
    truth = np.array([0.05, 1.5])  # 0.1-15 Hz: 40 times the Poisson level (0.04) at 0.1 Hz, 1.25 at 1 Hz
    m = 4
    shape = _spectrum(np.ones(150), m, rate=50.0, df=0.1).to_norm("frac")
    expected = model.expected(truth[None], shape)[0]
    ps = _spectrum(rng.gamma(m, expected / m) * 50.0, m, rate=50.0, df=0.1).to_norm("frac")
    result = sample_posterior(ps, model, prior, n_steps=500, rng=5)
    assert result.converged, result.status
    # grid over the sampled region, widened; the posterior must be negligible at its edges
    lo, hi = result.samples.min(axis=0), result.samples.max(axis=0)
    span = hi - lo
    support = [prior.priors[name].support for name in model.param_names]
    axes = [
        np.linspace(max(lo[k] - 0.6 * span[k], support[k][0]), min(hi[k] + 0.6 * span[k], support[k][1]), 301)
        for k in range(2)
    ]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    theta = np.column_stack([g0.ravel(), g1.ravel()])
    logp = (prior.log_prob(theta) + log_likelihood(theta, ps, model)).reshape(g0.shape)
    dens = np.exp(logp - logp.max())
    # negligible density where the grid cuts the posterior (edges on a prior bound truncate it anyway)
    cut = [
        edge
        for k in range(2)
        for end, edge in ((0, dens.take(0, axis=k)), (1, dens.take(-1, axis=k)))
        if axes[k][-end] != support[k][end]
    ]
    assert max(edge.max() for edge in cut) < 1e-6
    for k in range(2):
        marginal = dens.sum(axis=1 - k)
        cdf_grid = np.cumsum(marginal) / marginal.sum()
        x = axes[k]

        def cdf(v, x=x, c=cdf_grid):
            return np.interp(v, x, c)

        s = result.samples[:, k]
        mean = (x * marginal).sum() / marginal.sum()
        sd = np.sqrt(((x - mean) ** 2 * marginal).sum() / marginal.sum())
        ess = float(result.ess[k])
        assert abs(s.mean() - mean) < 4 * sd / np.sqrt(ess), k
        assert s.std() == pytest.approx(sd, rel=0.15)
        _check_quantiles(s, cdf, ess)


@pytest.fixture(scope="module")
def qpo_spectrum():
    truth = np.array([6.0, 6.0, 0.12, 2.0])
    lc = simulate_lightcurves(
        QPO, truth[:3], mean_rate=500.0, dt=1 / 64, n_bins=64 * 256, rng=2026, threads=1
    )
    ps = periodogram(lc.counts, lc.dt, segment_bins=256)
    prior = JointPrior(
        {
            "qpo.nu0": Uniform(2.0, 20.0),
            "qpo.q": LogUniform(1.0, 50.0),
            "qpo.rms": LogUniform(0.01, 0.5),
            "noise.level": Uniform(1.0, 3.0),
        }
    )
    return ps, SpectralModel(QPO, noise="free"), prior, truth


def test_recovers_a_simulated_qpo(qpo_spectrum):
    """Lorentzian + free noise level, walkers started from prior draws: truth inside the 95 % intervals."""
    ps, model, prior, truth = qpo_spectrum
    result = sample_posterior(ps, model, prior, n_steps=1000, rng=1)
    assert isinstance(result, MCMCResult)
    assert result.converged, result.status
    assert result.status == "ok"
    assert np.all(result.ess >= 400)
    assert result.n_steps > 50 * result.tau.max()
    assert 0.2 < result.acceptance < 0.8
    assert result.samples.shape == (result.n_samples, 4)
    assert result.log_prob.shape == (result.n_samples,)
    low, high = result.interval(0.95).T
    assert np.all((low <= truth) & (truth <= high)), (low, high)
    assert result.quantiles(0.5).shape == (4,)
    assert result.quantiles([0.1, 0.9]).shape == (2, 4)
    result.raise_if_not_converged()


def test_same_seed_same_samples(white):
    ps, _ = white

    def run(rng, start=None):
        return sample_posterior(ps, WHITE, WHITE_PRIOR, start=start, n_steps=200, max_steps=200, rng=rng)

    first, again = run(11), run(11)
    np.testing.assert_array_equal(first.samples, again.samples)
    np.testing.assert_array_equal(first.log_prob, again.log_prob)
    assert not np.array_equal(first.samples[:, 1], run(12).samples[:, 1])
    # a Generator works too, and a start ball is deterministic as well
    a, b = (run(np.random.default_rng(3), start=[0.0, 2.0]) for _ in range(2))
    np.testing.assert_array_equal(a.samples, b.samples)


def test_too_short_a_chain_is_not_converged(qpo_spectrum):
    ps, model, prior, truth = qpo_spectrum
    result = sample_posterior(ps, model, prior, start=truth, n_steps=150, max_steps=300, rng=4)
    assert not result.converged
    assert result.n_steps == 300
    assert result.status.startswith("not converged after 300 steps (max_steps = 300)")
    assert "tau = " in result.status
    assert any(name in result.status for name in model.param_names)
    with pytest.raises(NotConvergedError, match="not converged") as info:
        result.raise_if_not_converged()
    np.testing.assert_array_equal(info.value.tau, result.tau)
    assert info.value.n_steps == 300


def test_bad_input(qpo_spectrum, white):
    ps, model, prior, _ = qpo_spectrum
    with pytest.raises(ValueError, match="missing"):
        sample_posterior(ps, model, JointPrior({"qpo.nu0": Uniform(1, 2)}))
    two = PowerSpectrum(
        freq=ps.freq,
        power=np.vstack([ps.power, ps.power]),
        m=ps.m,
        df=ps.df,
        norm=ps.norm,
        mean_rate=np.repeat(ps.mean_rate, 2),
        segment_length=ps.segment_length,
        dt=ps.dt,
        n_segments=ps.n_segments,
    )
    with pytest.raises(ValueError, match="one PowerSpectrum row"):
        sample_posterior(two, model, prior)
    with pytest.raises(ValueError, match="n_walkers must be an integer >= 8"):
        sample_posterior(ps, model, prior, n_walkers=6)
    with pytest.raises(ValueError, match="max_steps"):
        sample_posterior(ps, model, prior, n_steps=100, max_steps=50)
    with pytest.raises(ValueError, match="start ="):
        sample_posterior(ps, model, prior, start=[30.0, 6.0, 0.12, 2.0])  # nu0 outside the prior
    with pytest.raises(ValueError, match="start must have shape"):
        sample_posterior(ps, model, prior, start=[6.0, 6.0])
    wps, _ = white
    with pytest.raises(ValueError, match="every parameter has a Fixed prior"):
        sample_posterior(wps, WHITE, JointPrior({"floor.level": Fixed(0.0), "noise.level": Fixed(2.0)}))
    with pytest.raises(ValueError, match="level must lie"):
        white[1].interval(1.5)
