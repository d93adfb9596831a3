"""Fast sampling of zuko flows (xtml.sbi.fastflow): the compiled inverse against zuko's, the law of the
samples, and NeuralPosterior.sample through it.

The flows are untrained but not trivial: every weight is perturbed, so the splines and affine maps are far
from the identity and each parameter depends on the earlier ones and on the context.
"""

import copy

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
zuko = pytest.importorskip("zuko")

from xtml.psd import JointPrior, LogUniform, Uniform  # noqa: E402
from xtml.sbi.density import NPEConfig, build_estimator  # noqa: E402
from xtml.sbi.fastflow import (  # noqa: E402
    MadeInverse,
    UnsupportedFlowError,
    compile_flow,
    compile_transforms,
    invert_made,
    weights_key,
)
from xtml.sbi.posterior import NeuralPosterior  # noqa: E402
from xtml.sbi.transforms import BoxTransform  # noqa: E402

N_CONTEXT = 6
FLOWS = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF}


@pytest.fixture(autouse=True)
def _one_thread_and_own_global_rng():
    """One torch thread, and the global torch generator (seeded by the tests) restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(previous)


def _flow(kind, features, seed, *, scale=0.1, **kwargs):
    """A zuko flow with every weight perturbed by ``scale`` standard normals (seeded)."""
    torch.manual_seed(seed)
    flow = FLOWS[kind](features, context=N_CONTEXT, transforms=3, hidden_features=(32, 32), **kwargs)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def _relative(a, b):
    return float(((a - b).abs() / (1 + b.abs())).max())


# --- the compiled inverse is zuko's inverse -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nsf", "maf"])
@pytest.mark.parametrize("features", [1, 2, 5, 7])
@pytest.mark.parametrize("passes", [None, 2])
def test_inverse_matches_zuko_on_the_same_noise(kind, features, passes, seed):
    flow = _flow(kind, features, seed + features, passes=passes)
    gen = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn((500, features), generator=gen)  # wide: reaches the spline tails too
    compiled = compile_flow(flow)
    with torch.no_grad():
        for context in (torch.randn(N_CONTEXT, generator=gen), torch.randn((500, N_CONTEXT), generator=gen)):
            expected = flow(context).transform.inv(z)
            assert _relative(compiled.inverse(z, context), expected) < 1e-4
        # in float64 the two computations agree to rounding: the algorithm, not the precision, is tested
        flow64 = copy.deepcopy(flow).double()
        expected = flow64(context.double()).transform.inv(z.double())
        assert _relative(compile_flow(flow64).inverse(z.double(), context.double()), expected) < 1e-10
    stages = [s.n_stages for s in compiled.steps if isinstance(s, MadeInverse)]
    assert stages == ([] if features == 1 else [min(features, passes or features)] * 3)


@pytest.mark.parametrize("kind", ["nsf", "maf"])
def test_inverse_matches_zuko_for_random_orders_and_deeper_networks(kind, seed):
    torch.manual_seed(seed)
    flow = FLOWS[kind](5, context=N_CONTEXT, transforms=4, hidden_features=(16, 24, 16), randperm=True)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
        z, c = torch.randn(300, 5, dtype=torch.float64), torch.randn(N_CONTEXT, dtype=torch.float64)
        flow = flow.double()
        assert _relative(compile_flow(flow).inverse(z, c), flow(c).transform.inv(z)) < 1e-10


def test_other_univariate_maps_are_inverted_through_zuko(seed):
    """NCSF's circular splines are not re-coded: its transforms go through zuko's own class."""
    torch.manual_seed(seed)
    flow = zuko.flows.NCSF(4, context=N_CONTEXT, transforms=2, hidden_features=(16, 16))
    with pytest.raises(UnsupportedFlowError, match="DiagNormal"):
        compile_flow(flow)  # its base is a box uniform
    y = (torch.rand(300, 4) * 2 - 1) * 3.0
    for c in (torch.randn(N_CONTEXT), torch.randn(300, N_CONTEXT)):
        for t in flow.transform.transforms:
            made = compile_transforms([t])
            assert made.kind == "zuko"
            context = c[None, :, None] if c.ndim == 1 else c.t()[None]
            with torch.no_grad():
                x = invert_made(made, y.t()[None], context)[0].t()
                assert _relative(x, t(c).inv(y)) < 1e-4


def test_a_wrong_stage_order_is_detected(seed):
    """The comparison has power: inverting the transforms in the wrong order is far from zuko."""
    flow = _flow("nsf", 5, seed)
    compiled = compile_flow(flow)
    swapped = type(compiled)(compiled.steps[::-1], compiled.loc, compiled.scale)
    z, c = torch.randn(500, 5), torch.randn(N_CONTEXT)
    with torch.no_grad():
        assert _relative(swapped.inverse(z, c), flow(c).transform.inv(z)) > 1e-2


def test_unsupported_flows_are_refused_with_the_offending_part(seed):
    residual = zuko.flows.NSF(3, context=N_CONTEXT, residual=True)
    with pytest.raises(UnsupportedFlowError, match="linear/activation") as info:
        compile_flow(residual)
    assert info.value.part is residual.transform.transforms[0].hyper
    with pytest.raises(UnsupportedFlowError, match="not a zuko flow"):
        compile_flow(torch.nn.Linear(2, 2))
    with pytest.raises(UnsupportedFlowError, match="masked autoregressive"):
        compile_flow(zuko.flows.NICE(3, context=N_CONTEXT))


# --- the samples follow the flow's law ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nsf", "maf"])
def test_samples_map_back_to_their_noise_and_match_zuko_in_law(kind, seed):
    flow = _flow(kind, 5, seed, scale=0.2)
    compiled, c = compile_flow(flow), torch.randn(N_CONTEXT)
    z = torch.randn((4000, 5), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = compiled.inverse(z, c)
        # zuko's forward pass (one network pass, not the inverse) sends the samples back to their noise,
        # and the density is the base density at the noise times the Jacobian
        back, ladj = flow(c).transform.call_and_ladj(x)
        np.testing.assert_allclose(back.numpy(), z.numpy(), rtol=1e-4, atol=1e-4)
        normal = torch.distributions.Normal(0.0, 1.0)
        expected = normal.log_prob(z).sum(-1) + ladj
        np.testing.assert_allclose(flow(c).log_prob(x).numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)
        # the probability integral transform of each coordinate is uniform
        for j in range(5):
            assert stats.kstest(normal.cdf(back[:, j]).numpy(), "uniform").pvalue > 1e-3
        # independent zuko samples have the same law, coordinate by coordinate; another flow does not
        torch.manual_seed(seed + 1)
        other = flow(c).sample((4000,))
        other_flow = _flow(kind, 5, seed + 7, scale=0.2)(c).sample((4000,))
    p_same = min(stats.ks_2samp(x[:, j], other[:, j]).pvalue for j in range(5))
    p_diff = min(stats.ks_2samp(x[:, j], other_flow[:, j]).pvalue for j in range(5))
    assert p_same > 1e-3
    assert p_diff < 1e-3


def test_sample_is_deterministic_and_draws_zukos_noise(seed):
    flow = _flow("nsf", 3, seed)
    compiled, c = compile_flow(flow), torch.randn(N_CONTEXT)
    a = compiled.sample(200, c, torch.Generator().manual_seed(seed))
    assert a.shape == (1, 200, 3)
    assert torch.equal(a, compiled.sample(200, c, torch.Generator().manual_seed(seed)))
    assert not torch.equal(a, compiled.sample(200, c, torch.Generator().manual_seed(seed + 1)))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        expected = flow(c).sample((200,))  # zuko, from the global generator with the same seed
    assert _relative(a[0], expected) < 1e-4


# --- NeuralPosterior.sample -------------------------------------------------------------------------------

PRIOR = JointPrior({"a": Uniform(-1.0, 1.0), "b": LogUniform(0.1, 10.0), "c": Uniform(0.0, 2.0)})
BOX = BoxTransform.from_prior(PRIOR)


def _posterior(flow, n_ensemble, seed, **kwargs):
    """An untrained posterior (perturbed weights) over 3 parameters from 4 features."""
    config = NPEConfig(
        flow=flow, transforms=3, hidden_features=(32, 32), embedding_dim=8, n_ensemble=n_ensemble, **kwargs
    )
    torch.manual_seed(seed)
    members = [build_estimator(config, 4, 3).eval() for _ in range(n_ensemble)]
    with torch.no_grad():
        for member in members:
            for p in member.flow.parameters():
                p.add_(0.1 * torch.randn_like(p))
    post = NeuralPosterior(
        config,
        BOX,
        members,
        x_mean=np.zeros(4),
        x_std=np.ones(4),
        z_mean=np.array([0.1, -0.2, 0.3]),
        z_std=np.array([1.5, 2.0, 0.5]),
    )
    post.n_threads = 1
    return post


@pytest.mark.parametrize(("flow", "n_ensemble"), [("nsf", 1), ("nsf", 3), ("maf", 2)])
def test_posterior_samples_are_zukos_up_to_rounding_and_stay_in_the_box(flow, n_ensemble, rng, seed):
    post = _posterior(flow, n_ensemble, seed)
    x_obs = rng.normal(size=(2, 4))
    for x in (x_obs[0], x_obs):  # one observation (shared context), several (one context per row)
        fast = post.sample(x, 1000, rng=seed)
        assert fast.shape == (np.atleast_2d(x).shape[0], 1000, 3)
        assert np.all(BOX.contains(fast.reshape(-1, 3)))
        np.testing.assert_array_equal(post.sample(x, 1000, rng=seed), fast)  # same seed, same bytes
        assert not np.array_equal(post.sample(x, 1000, rng=seed + 1), fast)
        post.fast_sampling = False
        slow = post.sample(x, 1000, rng=seed)
        post.fast_sampling = True
        u_fast, u_slow = (BOX.to_unbounded(s.reshape(-1, 3)) for s in (fast, slow))
        np.testing.assert_allclose(u_fast, u_slow, rtol=1e-4, atol=1e-4)
    compiled = post._compiled[1]
    assert compiled is not None
    assert compiled.n_flows == n_ensemble


def test_posterior_recompiles_when_the_weights_change_and_falls_back_to_zuko(rng, seed):
    post = _posterior("nsf", 1, seed)
    x = rng.normal(size=4)
    before = post.sample(x, 500, rng=seed)
    key = weights_key(post.members[0].flow)
    with torch.no_grad():
        post.members[0].flow.transform.transforms[0].hyper[0].bias.add_(0.5)
    assert weights_key(post.members[0].flow) != key
    after = post.sample(x, 500, rng=seed)
    assert not np.allclose(after, before)
    post.fast_sampling = False
    np.testing.assert_allclose(post.sample(x, 500, rng=seed), after, rtol=1e-4, atol=1e-5)
    # a flow the compiler refuses is sampled by zuko, exactly as before
    residual = _posterior("nsf", 1, seed)
    residual.members[0].flow = zuko.flows.NSF(3, context=8, transforms=2, residual=True)
    residual.fast_sampling = True
    fast = residual.sample(x, 300, rng=seed)
    assert residual._compiled[1] is None
    residual.fast_sampling = False
    np.testing.assert_array_equal(residual.sample(x, 300, rng=seed), fast)
