"""Neural posterior estimation: the prior-box bijection, the flows against an exact posterior, files, checks.

The toy problem has a known posterior: theta = (a, b, c) with a ~ U(-1, 1), b ~ U(0, 2), c ~ LogU(0.1, 10)
(and a fixed parameter, not inferred); x holds M = 5 measurements of each of (a, b, log c) with Gaussian
noise of standard deviation SIGMA. The posterior of (a, b, log c) is then a product of Gaussians centred
on the measurement means, with sd SIGMA / sqrt(M), truncated to the prior box.
"""

import json

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")
pytest.importorskip("safetensors")

from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from xtml.psd import Fixed, JointPrior, LogUniform, Uniform  # noqa: E402
from xtml.sbi.embedding import CNNEmbedding, MLPEmbedding  # noqa: E402
from xtml.sbi.npe import NeuralPosterior, NPEConfig, train_npe  # noqa: E402
from xtml.sbi.transforms import BoxTransform  # noqa: E402

PRIOR = JointPrior(
    {"a": Uniform(-1.0, 1.0), "b": Uniform(0.0, 2.0), "c": LogUniform(0.1, 10.0), "k": Fixed(3.0)}
)
BOX = BoxTransform.from_prior(PRIOR)
M, SIGMA = 5, 1.0
SD = SIGMA / np.sqrt(M)  # posterior sd of each coordinate before truncation
LO, HI = np.array([-1.0, 0.0, np.log(0.1)]), np.array([1.0, 2.0, np.log(10.0)])  # box of (a, b, log c)
FAST = NPEConfig(
    transforms=5,
    hidden_features=(64, 64),
    embedding_dim=16,
    embedding_hidden=(64, 64),
    max_epochs=60,
    patience=20,
)


def _simulate(theta, rng):
    """x (n, 3 M): M noisy measurements of a, then of b, then of log c."""
    loc = np.column_stack([theta[:, 0], theta[:, 1], np.log(theta[:, 2])])
    return (loc[:, :, None] + SIGMA * rng.normal(size=(theta.shape[0], 3, M))).reshape(theta.shape[0], -1)


def _exact_params(x_row):
    mu = x_row.reshape(3, M).mean(axis=1)
    return (LO - mu) / SD, (HI - mu) / SD, mu


def _exact_samples(x_row, n, rng):
    """Exact posterior samples (n, 3) of (a, b, c): independent truncated normals in (a, b, log c)."""
    lo, hi, mu = _exact_params(x_row)
    y = stats.truncnorm.rvs(lo, hi, loc=mu, scale=SD, size=(n, 3), random_state=rng)
    return np.column_stack([y[:, 0], y[:, 1], np.exp(y[:, 2])])


def _exact_log_prob(theta, x_row):
    """Exact posterior log density of (a, b, c): truncated normal in log c, times 1 / c."""
    lo, hi, mu = _exact_params(x_row)
    y = np.column_stack([theta[:, 0], theta[:, 1], np.log(theta[:, 2])])
    return stats.truncnorm.logpdf(y, lo, hi, loc=mu, scale=SD).sum(axis=1) - y[:, 2]


def _c2st(a, b):
    """Classifier two-sample test: 5-fold accuracy of an MLP telling ``a`` from ``b`` (0.5 = same law).

    Computed on (a, b, log c) standardised together (the classifier sees the natural scale of each).
    """
    x = np.vstack([a, b])
    x[:, 2] = np.log(x[:, 2])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    clf = MLPClassifier((32, 32), max_iter=500, early_stopping=True, random_state=0)
    with threadpool_limits(1):
        scores = cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return float(scores.mean())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(101)
    theta = PRIOR.sample(10_000, rng)[:, :3]
    return theta, _simulate(theta, rng)


@pytest.fixture(scope="module")
def posterior(data):
    return train_npe(*data, BOX, FAST, n_threads=1)


@pytest.fixture(scope="module")
def x_test():
    """Observations from a central theta, a theta near a corner (strong truncation) and a log-scale edge."""
    theta = np.array([[0.1, 1.0, 1.0], [0.9, 0.1, 0.5], [-0.5, 1.5, 9.0]])
    return _simulate(theta, np.random.default_rng(202))


# --- BoxTransform ---------------------------------------------------------------------------------------


def test_box_from_prior_skips_fixed_parameters_and_refuses_to_infer_them():
    assert BOX.names == ("a", "b", "c")
    np.testing.assert_array_equal(BOX.log, [False, False, True])
    with pytest.raises(ValueError, match="Fixed prior"):
        BoxTransform.from_prior(PRIOR, ["a", "k"])
    with pytest.raises(ValueError, match="not in the prior"):
        BoxTransform.from_prior(PRIOR, ["a", "zz"])
    with pytest.raises(ValueError, match="low > 0"):
        BoxTransform(("x",), [-1.0], [1.0], [True])
    with pytest.raises(ValueError, match="low < high"):
        BoxTransform(("x",), [1.0], [1.0], [False])
    assert BoxTransform.from_config(json.loads(json.dumps(BOX.to_config()))).to_config() == BOX.to_config()


def test_box_round_trip_numpy_and_torch_agree_and_stay_inside(rng):
    theta = PRIOR.sample(1000, rng)[:, :3]
    z = BOX.to_unbounded(theta)
    np.testing.assert_allclose(BOX.to_box(z), theta, rtol=1e-12, atol=1e-12)
    zt = BOX.to_unbounded_torch(torch.from_numpy(theta))
    np.testing.assert_allclose(zt.numpy(), z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(BOX.to_box_torch(zt).numpy(), theta, rtol=1e-12, atol=1e-12)
    ld = BOX.log_det_jacobian_torch(torch.from_numpy(theta)).numpy()
    np.testing.assert_allclose(ld, BOX.log_det_jacobian(theta), rtol=1e-12)
    extreme = np.array([[-1e4, 1e4, -40.0], [40.0, -40.0, 1e4], [0.0, 0.0, 0.0]])
    for t in (
        BOX.to_box(extreme),
        BOX.to_box_torch(torch.tensor(extreme, dtype=torch.float32)).double().numpy(),
    ):
        assert np.all(BOX.contains(t))
    assert np.all(np.isfinite(BOX.to_unbounded(np.array([[-1.0, 2.0, 0.1]]))))  # exactly on the bounds


def test_box_log_det_matches_numerical_jacobian(rng):
    theta = PRIOR.sample(20, rng)[:, :3]
    h = 1e-6 * (BOX.high - BOX.low)
    for row in theta:
        jac = np.empty((3, 3))
        for j in range(3):
            step = np.zeros(3)
            step[j] = h[j]
            jac[:, j] = (BOX.to_unbounded(row + step) - BOX.to_unbounded(row - step))[0] / (2 * h[j])
        np.testing.assert_allclose(BOX.log_det_jacobian(row)[0], np.log(abs(np.linalg.det(jac))), rtol=1e-6)


def test_box_maps_the_prior_to_standard_logistic(rng):
    z = BOX.to_unbounded(PRIOR.sample(5000, rng)[:, :3])
    for j in range(3):
        assert stats.kstest(z[:, j], stats.logistic.cdf).pvalue > 1e-3


# --- embeddings -------------------------------------------------------------------------------------------


def test_embeddings_have_the_documented_shapes_and_checks():
    assert MLPEmbedding(12, 4, hidden=())(torch.zeros(2, 12)).shape == (2, 4)
    cnn = CNNEmbedding(150, n_channels=3, n_out=8)
    assert cnn(torch.zeros(5, 450)).shape == (5, 8)
    assert cnn(torch.zeros(5, 3, 150)).shape == (5, 8)
    with pytest.raises(ValueError, match="450 features"):
        cnn(torch.zeros(5, 300))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        CNNEmbedding(100, kernel_size=4)


# --- NPE against the exact posterior ----------------------------------------------------------------------


def test_npe_matches_the_exact_truncated_gaussian_posterior(posterior, x_test):
    samples = posterior.sample(x_test, 2000, rng=1)
    rng = np.random.default_rng(2)
    for i, x_row in enumerate(x_test):
        exact = _exact_samples(x_row, 2000, rng)
        assert _c2st(samples[i], exact) < 0.6, i
    # the test has power: the exact posterior of an observation shifted by 0.5 sd per coordinate is told apart
    shifted = x_test[0] + 0.5 * SD
    assert _c2st(_exact_samples(shifted, 2000, rng), _exact_samples(x_test[0], 2000, rng)) > 0.6


def test_log_prob_is_normalised_over_the_box_and_close_to_the_exact_density(posterior, x_test):
    # normalisation, E_prior[q(theta | x) / prior(theta)] = 1: checks the box Jacobian and the standardisation
    rng = np.random.default_rng(3)
    theta = PRIOR.sample(100_000, rng)[:, :3]
    log_prior = PRIOR.log_prob(np.column_stack([theta, np.full(len(theta), 3.0)]))
    for x_row in x_test:
        w = np.exp(posterior.log_prob(theta, x_row) - log_prior)
        assert abs(w.mean() - 1) < 4 * w.std() / np.sqrt(w.size) + 0.01
    # closeness: KL(exact || NPE) estimated on exact samples (0 for a perfect posterior; 10,000 simulations
    # give 0.03-0.13 nats here, depending on the seeds)
    for x_row in x_test:
        theta = _exact_samples(x_row, 2000, rng)
        exact, npe = _exact_log_prob(theta, x_row), posterior.log_prob(theta, x_row)
        assert -0.02 < float(np.mean(exact - npe)) < 0.2
    outside = np.array([[1.5, 1.0, 1.0], [0.0, 1.0, 20.0]])
    assert np.all(posterior.log_prob(outside, x_test[0]) == -np.inf)


def test_log_prob_draws_are_log_prob_row_by_row(posterior, x_test):
    s = posterior.sample(x_test, 300, rng=5)
    s[1, 7] = [1.5, 1.0, 1.0]  # outside the box: -inf, as for log_prob
    rows = np.stack([posterior.log_prob(a, b) for a, b in zip(s, x_test, strict=True)])
    draws = posterior.log_prob_draws(s, x_test)
    assert draws.shape == (len(x_test), 300)
    assert draws[1, 7] == -np.inf
    np.testing.assert_allclose(draws, rows, rtol=1e-5, atol=1e-4)  # float32 flows, batched differently
    with pytest.raises(ValueError, match=r"samples must have shape \(n_obs = 3, n_draws, n_params = 3\)"):
        posterior.log_prob_draws(s[:, :, :2], x_test)


def test_samples_stay_in_the_box_even_for_observations_outside_the_prior(posterior):
    x_far = np.full((2, 3 * M), 6.0)
    x_far[1] = -6.0
    s = posterior.sample(x_far, 3000, rng=4)
    assert s.shape == (2, 3000, 3)
    assert np.all(BOX.contains(s.reshape(-1, 3)))


def test_save_load_gives_identical_samples_and_densities(posterior, x_test, tmp_path):
    posterior.save(tmp_path / "npe")
    assert sorted(p.name for p in (tmp_path / "npe").iterdir()) == ["posterior.json", "weights.safetensors"]
    info = json.loads((tmp_path / "npe" / "posterior.json").read_text())
    assert info["names"] == ["a", "b", "c"]
    assert info["xtml_version"]
    loaded = NeuralPosterior.load(tmp_path / "npe")
    loaded.n_threads = 1
    a, b = posterior.sample(x_test, 500, rng=7), loaded.sample(x_test, 500, rng=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, posterior.sample(x_test, 500, rng=8))
    theta = a[0, :50]
    np.testing.assert_array_equal(posterior.log_prob(theta, x_test[0]), loaded.log_prob(theta, x_test[0]))


def test_bad_input_is_refused_with_a_clear_message(posterior, data):
    x_nan = np.zeros((2, 3 * M))
    x_nan[1, 3] = np.nan
    with pytest.raises(ValueError, match="x_obs has 14 features per row, but 15"):
        posterior.sample(np.zeros(14), 10)
    with pytest.raises(
        ValueError, match=r"x_obs contains NaN or infinite values in 1 of 2 rows \(first: row 1\)"
    ):
        posterior.sample(x_nan, 10)
    with pytest.raises(ValueError, match="x contains NaN or infinite"):
        posterior.log_prob(np.ones((2, 3)), x_nan)
    with pytest.raises(ValueError, match="x has 16 features"):
        posterior.log_prob(np.ones((2, 3)), np.zeros(16))
    with pytest.raises(ValueError, match="theta has 2 parameters"):
        posterior.log_prob(np.ones((2, 2)), np.zeros(15))
    theta, x = data
    bad = theta[:50].copy()
    bad[3, 0] = 1.5
    with pytest.raises(ValueError, match="outside the prior box"):
        train_npe(bad, x[:50], BOX, FAST)
    with pytest.raises(ValueError, match="flow must be one of"):
        NPEConfig(flow="realnvp")
    with pytest.raises(ValueError, match="n_ensemble must be an integer >= 1"):
        NPEConfig(n_ensemble=0)


# --- ensembles, determinism, global state -----------------------------------------------------------------


def test_ensemble_of_two_maf_with_cnn_embedding_is_a_uniform_mixture(data, x_test, tmp_path):
    theta, x = data
    config = NPEConfig(
        flow="maf",
        transforms=2,
        embedding="cnn",
        n_channels=3,
        embedding_dim=8,
        n_ensemble=2,
        max_epochs=4,
        seed=5,
    )
    state_np, state_torch = np.random.get_state()[1].copy(), torch.get_rng_state().clone()  # noqa: NPY002
    post = train_npe(theta[:3000], x[:3000], BOX, config, n_threads=1)
    s = post.sample(x_test, 400, rng=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state_np)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), state_torch)
    assert len(post.members) == len(post.history) == 2
    assert s.shape == (3, 400, 3)
    assert np.all(BOX.contains(s.reshape(-1, 3)))
    again = train_npe(theta[:3000], x[:3000], BOX, config, n_threads=1)
    np.testing.assert_array_equal(again.sample(x_test, 400, rng=0), s)  # same seed, same posterior
    # log_prob is the log of the mean of the members' densities
    singles = [
        NeuralPosterior(
            config, BOX, [m], x_mean=post.x_mean, x_std=post.x_std, z_mean=post.z_mean, z_std=post.z_std
        )
        for m in post.members
    ]
    t = s[1, :100]
    each = np.array([p.log_prob(t, x_test[1]) for p in singles])
    assert not np.allclose(each[0], each[1])
    np.testing.assert_allclose(post.log_prob(t, x_test[1]), np.log(np.exp(each).mean(axis=0)), rtol=1e-6)
    post.save(tmp_path / "k2")
    loaded = NeuralPosterior.load(tmp_path / "k2")
    np.testing.assert_array_equal(loaded.sample(x_test, 400, rng=0), s)


def test_mixture_sampling_draws_half_from_each_of_two_members(data, x_test):
    """A posterior member and a prior member (trained on shuffled pairs): the mixture is half of each."""
    theta, x = data
    config = NPEConfig(transforms=1, embedding="none", max_epochs=5, validation_fraction=0.0, seed=9)
    shuffled = np.random.default_rng(9).permutation(2000)
    informed = train_npe(theta[:2000], x[:2000], BOX, config, n_threads=1)
    blind = train_npe(theta[:2000], x[shuffled], BOX, config, n_threads=1)  # same standardisation
    np.testing.assert_allclose(blind.x_mean, informed.x_mean)

    def posterior(members):
        k2 = NPEConfig(**{**config.to_dict(), "n_ensemble": len(members)})
        s = informed
        return NeuralPosterior(
            k2, BOX, members, x_mean=s.x_mean, x_std=s.x_std, z_mean=s.z_mean, z_std=s.z_std
        )

    mixture = posterior([informed.members[0], blind.members[0]]).sample(x_test[1], 4000, rng=3)[0]
    halves = np.vstack([informed.sample(x_test[1], 2000, rng=4)[0], blind.sample(x_test[1], 2000, rng=5)[0]])

    def min_p(a):
        return min(stats.ks_2samp(a[:, j], halves[:, j]).pvalue for j in range(3))

    assert min_p(mixture) > 1e-3
    for single in (informed, blind):  # the test has power: either member alone is told apart
        assert min_p(single.sample(x_test[1], 4000, rng=6)[0]) < 1e-3


def test_one_cycle_schedule_runs_its_budget_and_learns(data, x_test):
    """The one-cycle schedule trains exactly max_epochs (no plateau to stop on) and ends near the exact
    posterior; it cannot be combined with the plateau schedule."""
    theta, x = data
    config = NPEConfig(
        embedding_dim=16, embedding_hidden=(64, 64), schedule="one_cycle", max_epochs=15, patience=15, lr=3e-3
    )
    post = train_npe(theta, x, BOX, config, n_threads=1)
    hist = post.history[0]
    assert hist["n_epochs"] == 15
    assert hist["val_loss"][-1] < hist["val_loss"][0] - 0.5
    exact = _exact_samples(x_test[0], 2000, np.random.default_rng(3))
    assert _c2st(post.sample(x_test[:1], 2000, rng=1)[0], exact) < 0.65
    with pytest.raises(ValueError, match="schedule must be one of"):
        NPEConfig(schedule="cosine")
    from xtml.learn._torch_train import train

    with pytest.raises(ValueError, match="one_cycle and lr_patience"):
        train(
            torch.nn.Linear(2, 1),
            torch.nn.functional.mse_loss,
            np.zeros((4, 2), np.float32),
            np.zeros((4, 1), np.float32),
            None,
            None,
            lr=1e-3,
            weight_decay=0.0,
            batch_size=2,
            max_epochs=1,
            patience=1,
            tol=0.0,
            generator=torch.Generator(),
            lr_patience=2,
            one_cycle=True,
        )


def test_a_posterior_from_a_newer_xtml_is_refused_naming_both_versions(posterior, tmp_path):
    import json

    from xtml import __version__

    path = posterior.save(tmp_path / "post")
    info = json.loads((path / "posterior.json").read_text())
    info |= {"format_version": info["format_version"] + 1, "xtml_version": "9.9.0"}
    (path / "posterior.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"saved by xtml 9\.9\.0 .*this xtml {__version__} .*upgrade xtml"):
        NeuralPosterior.load(path)


# --- recalibration -----------------------------------------------------------------------------------------


def _coverage68(post, theta, x, seed):
    """Fraction of the rows whose true value lies inside the central 68 % interval, per parameter."""
    s = post.sample(x, 300, rng=seed)
    lo, hi = np.quantile(s, [0.16, 0.84], axis=1)
    return np.mean((theta >= lo) & (theta <= hi), axis=0)


def _distorted(posterior, loc, scale):
    """A copy of ``posterior`` whose base is N(loc, scale): shifted and narrowed or widened on purpose."""
    import copy

    bad = copy.deepcopy(posterior)
    with torch.no_grad():
        for m in bad.members:
            m.flow.base.loc.fill_(loc)
            m.flow.base.scale.fill_(scale)
    bad._compiled = None
    return bad


def test_base_coordinates_of_a_calibrated_posterior_are_standard_normal(posterior):
    rng = np.random.default_rng(31)
    theta = PRIOR.sample(2000, rng)[:, :3]
    b = posterior.base_coordinates(theta, _simulate(theta, rng))
    assert b.shape == (1, 2000, 3)
    for k in range(3):  # KS against N(0, 1), and the moments the recalibration would refit
        assert stats.kstest(b[0, :, k], "norm").pvalue > 1e-3, k
    assert np.all(np.abs(b.mean(axis=1)) < 0.1)
    assert np.all(np.abs(b.std(axis=1) - 1) < 0.1)


def test_recalibration_repairs_an_overconfident_biased_posterior_on_other_simulations(posterior, tmp_path):
    rng = np.random.default_rng(32)
    cal = PRIOR.sample(2000, rng)[:, :3]
    x_cal = _simulate(cal, rng)
    test = PRIOR.sample(1500, rng)[:, :3]
    x_te = _simulate(test, rng)
    bad = _distorted(posterior, 0.4, 0.6)  # regions 40 % too narrow and off by 0.4 base sd
    band = 3 * np.sqrt(0.68 * 0.32 / len(test))
    assert np.all(_coverage68(bad, test, x_te, 1) < 0.68 - band)  # the distortion is seen
    fixed = bad.recalibrate(cal, x_cal)
    cov = _coverage68(fixed, test, x_te, 2)
    assert np.all(np.abs(cov - 0.68) < band), cov
    rec = fixed.recalibration
    assert rec["method"] == "base_gaussian"
    assert rec["n"] == 2000
    assert rec["covariance"] == "full"
    cov = np.asarray(rec["chol"][0]) @ np.asarray(rec["chol"][0]).T
    np.testing.assert_allclose(cov, np.eye(3), atol=0.12)  # the narrowing and the shift are undone
    np.testing.assert_allclose(rec["loc"][0], 0.0, atol=0.15)
    assert bad.recalibration is None
    assert bad.members[0].flow.base.scale[0].item() == pytest.approx(0.6)
    # still an exact density: normalised over the box, and the sampler and log_prob agree after a reload
    theta = PRIOR.sample(50_000, rng)[:, :3]
    log_prior = PRIOR.log_prob(np.column_stack([theta, np.full(len(theta), 3.0)]))
    w = np.exp(fixed.log_prob(theta, x_te[0]) - log_prior)
    assert abs(w.mean() - 1) < 4 * w.std() / np.sqrt(w.size) + 0.01
    loaded = NeuralPosterior.load(fixed.save(tmp_path / "recal"))
    assert loaded.recalibration == rec
    np.testing.assert_array_equal(loaded.sample(x_te[:3], 100, rng=5), fixed.sample(x_te[:3], 100, rng=5))
    # zuko's sampler through the recalibrated base gives the compiled sampler's draws (the same noise)
    slow = NeuralPosterior.load(tmp_path / "recal")
    slow.fast_sampling = False
    np.testing.assert_allclose(
        slow.sample(x_te[:3], 100, rng=5), fixed.sample(x_te[:3], 100, rng=5), atol=1e-4
    )
    # sampler and density agree: E_q[prior / q] = 1 over the draws of q (the prior integrates to 1)
    draws = fixed.sample(x_te[0], 20_000, rng=6)[0]
    log_prior = PRIOR.log_prob(np.column_stack([draws, np.full(len(draws), 3.0)]))
    w = np.exp(log_prior - fixed.log_prob(draws, x_te[0]))
    assert abs(w.mean() - 1) < 4 * w.std() / np.sqrt(w.size) + 0.01
    b = loaded.base_coordinates(test, x_te)  # in the new base's units: standard normal again
    assert np.all(np.abs(b.std(axis=1) - 1) < 0.1)
    assert np.all(np.abs(b.mean(axis=1)) < 0.1)


def test_recalibration_refuses_too_few_simulations_or_values_outside_the_box(posterior, data):
    theta, x = data
    with pytest.raises(ValueError, match=r"at least 30 held-out simulations .* got 12"):
        posterior.recalibrate(theta[:12], x[:12])
    bad = theta[:40].copy()
    bad[2, 1] = 5.0
    with pytest.raises(ValueError, match="outside the prior box"):
        posterior.recalibrate(bad, x[:40])


def test_a_full_covariance_refit_repairs_wrong_correlations_that_a_diagonal_one_cannot(posterior):
    from xtml.sbi.diagnostics import expected_coverage

    rng = np.random.default_rng(33)
    cal = PRIOR.sample(2000, rng)[:, :3]
    x_cal = _simulate(cal, rng)
    test = PRIOR.sample(800, rng)[:, :3]
    x_te = _simulate(test, rng)
    # a posterior whose base is correlated (0.8 between the first two axes) while the truth is not
    chol = np.linalg.cholesky(np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    bad = posterior.with_recalibration(
        {"method": "base_gaussian", "n": 0, "loc": [[0.0] * 3], "chol": [chol.tolist()]}
    )

    def joint50(post):
        s = post.sample(x_te, 200, rng=3)
        lp = post.log_prob_draws(s, x_te)
        cov = expected_coverage(s, test, log_prob_samples=lp, log_prob_truth=post.log_prob(test, x_te))
        return cov.coverage_at(np.array([0.5]))[1][0]

    band = 3 * np.sqrt(0.25 / len(test))
    assert joint50(bad) < 0.5 - band  # the wrong correlation shows in the joint region
    assert joint50(bad.recalibrate(cal, x_cal, covariance="diagonal")) < 0.5 - band  # variances are right
    assert abs(joint50(bad.recalibrate(cal, x_cal)) - 0.5) < band
    with pytest.raises(ValueError, match="covariance must be 'full' or 'diagonal'; got 'banded'"):
        bad.recalibrate(cal, x_cal, covariance="banded")
