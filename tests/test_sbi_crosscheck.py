r"""Cross-check: xtml's NPE and the ``sbi`` package's NPE, trained on the same simulations, against the exact
posterior of a banana-shaped toy problem.

``sbi`` is an optional extra used only here, as an independent implementation (nflows flows, its own
training loop, z-scoring and leakage correction) of the same method. To run the check::

    pip install -e ".[sbi,sbi-check]"
    pytest -m slow tests/test_sbi_crosscheck.py

It takes about 2-3 minutes on one or two busy cores (the two trainings dominate); without ``sbi`` the
module is skipped.

The toy problem: theta = (a, b) with a ~ U(-2, 2), b ~ U(-1.5, 1.5), and

.. math::

    x_1 = a + b^2 + \sigma_1 \epsilon_1, \qquad x_2 = b + \sigma_2 \epsilon_2, \qquad
    \epsilon_i \sim N(0, 1),

with sigma_1 = 0.1, sigma_2 = 0.4. The posterior is a curved banana (a follows x_1 - b^2 closely while b
is loosely measured) cut by the prior box: a Gaussian with the same mean and covariance is told apart from
it (C2ST 0.66-0.76), so agreement tests the shape, not only the moments. It is exact through a 1-D grid:

.. math::

    p(b \mid x) \propto N(x_2; b, \sigma_2^2)
    \left[\Phi\left(\frac{a_{hi} - x_1 + b^2}{\sigma_1}\right)
    - \Phi\left(\frac{a_{lo} - x_1 + b^2}{\sigma_1}\right)\right], \qquad
    a \mid b, x \sim N(x_1 - b^2, \sigma_1^2) \text{ truncated to } [a_{lo}, a_{hi}].

``sbi`` runs its ``NPE`` (NPE-C) with a ``BoxUniform`` prior and ``density_estimator="nsf"`` (sbi's
nflows spline flow at its default size), trained with xtml's learning rate, batch size, validation
fraction and the same epoch cap; sbi's own schedule (5e-4, batches of 200) had not converged by 60 epochs.
The exact posterior has a conditional entropy of about -0.80 nats; sbi's NSF reaches a validation loss of
-0.77. Not the default ``"maf"``: it needs 133 epochs here to reach -0.61 (C2ST 0.53-0.57 against the
exact posterior, acceptable), and on an earlier version of this problem (a ~ U(-1, 1), sigma_1 = 0.15,
sigma_2 = 0.3, 8,000 simulations) it converged to +0.12 nats with posterior means of a stuck near 0: a
reference that can be that far off would fail the check for its own sake.
"""

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")
pytest.importorskip("safetensors")
sbi_inference = pytest.importorskip("sbi.inference")
sbi_utils = pytest.importorskip("sbi.utils")

from xtml.psd import JointPrior, Uniform  # noqa: E402
from xtml.sbi.comparisons import c2st  # noqa: E402
from xtml.sbi.npe import NPEConfig, train_npe  # noqa: E402
from xtml.sbi.transforms import BoxTransform  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # nflows (sbi's flows) calls the deprecated torch.triangular_solve when sampling its LU layers
    pytest.mark.filterwarnings("ignore:torch.triangular_solve is deprecated:UserWarning"),
]

PRIOR = JointPrior({"a": Uniform(-2.0, 2.0), "b": Uniform(-1.5, 1.5)})
BOX = BoxTransform.from_prior(PRIOR)
(A_LO, B_LO), (A_HI, B_HI) = BOX.low, BOX.high
SIGMA1, SIGMA2 = 0.1, 0.4
N_SIM, N_SAMPLES, MAX_EPOCHS = 10_000, 2000, 60
XTML_CONFIG = NPEConfig(max_epochs=MAX_EPOCHS)  # the default architecture and schedule, epochs capped
SIM_SEED, OBS_SEED, SBI_SEED, SAMPLE_SEED, EXACT_SEED = 101, 202, 303, 404, 505
# centre, two arms of the banana, a pinched at its upper bound, b near its upper bound
THETA_OBS = np.array([[0.0, 0.0], [0.5, 0.8], [-0.6, -1.0], [1.9, 0.3], [-0.2, 1.4]])
C2ST_MAX = 0.6  # both fits reach 0.49-0.57 here; a 0.5-sd shift of either gives >= 0.7


def _simulate(theta, rng):
    """x (n, 2) = (a + b^2, b) plus Gaussian noise of sd (SIGMA1, SIGMA2)."""
    a, b = theta[:, 0], theta[:, 1]
    noise = rng.normal(size=(len(theta), 2)) * [SIGMA1, SIGMA2]
    return np.column_stack([a + b**2, b]) + noise


def _exact_grid(x_row, n_cells=20_000):
    """Cells of b (centres, width) with their posterior probabilities, and a | b in each: the centre
    x_1 - b^2 and the standardised bounds of its truncated normal."""
    width = (B_HI - B_LO) / n_cells
    b = B_LO + (np.arange(n_cells) + 0.5) * width
    mu = x_row[0] - b**2
    lo, hi = (A_LO - mu) / SIGMA1, (A_HI - mu) / SIGMA1
    mass = np.where(lo > 0, stats.norm.sf(lo) - stats.norm.sf(hi), stats.norm.cdf(hi) - stats.norm.cdf(lo))
    w = stats.norm.pdf(x_row[1], loc=b, scale=SIGMA2) * mass
    return b, width, w / w.sum(), mu, lo, hi


def _exact_samples(x_row, n, rng):
    """Exact posterior samples (n, 2): b from the 1-D grid (uniform within a cell), then a | b exactly."""
    b, width, w, mu, lo, hi = _exact_grid(x_row)
    k = rng.choice(len(b), size=n, p=w)
    a = stats.truncnorm.rvs(lo[k], hi[k], loc=mu[k], scale=SIGMA1, random_state=rng)
    return np.column_stack([a, b[k] + width * (rng.random(n) - 0.5)])


def _exact_moments(x_row):
    """Exact posterior means and standard deviations of (a, b), by quadrature over the grid of b."""
    b, _, w, mu, lo, hi = _exact_grid(x_row)
    mean_a, var_a = stats.truncnorm.stats(lo, hi, loc=mu, scale=SIGMA1, moments="mv")
    mean = np.array([w @ mean_a, w @ b])
    second = np.array([w @ (var_a + mean_a**2), w @ b**2])
    return mean, np.sqrt(second - mean**2)


@contextmanager
def _torch_local(seed: int) -> Iterator[None]:
    """One torch thread and a seeded global torch generator (sbi draws from it), both restored on exit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _quiet_underflow() -> Iterator[None]:
    """sbi's mixture log-probabilities underflow in scipy's logsumexp; after some earlier test of the suite
    has turned numpy's underflow reporting on (seen in a full run, not found yet), that is an error here."""
    with np.errstate(under="ignore"):
        yield


@pytest.fixture(scope="module")
def simulations():
    rng = np.random.default_rng(SIM_SEED)
    theta = PRIOR.sample(N_SIM, rng)
    return theta, _simulate(theta, rng)


@pytest.fixture(scope="module")
def x_obs():
    return _simulate(THETA_OBS, np.random.default_rng(OBS_SEED))


@pytest.fixture(scope="module")
def xtml_samples(simulations, x_obs):
    """(n_obs, N_SAMPLES, 2) samples of xtml's NPE (default architecture, at most MAX_EPOCHS epochs)."""
    start = time.perf_counter()
    posterior = train_npe(*simulations, BOX, XTML_CONFIG, n_threads=1)
    print(f"xtml NPE: {posterior.history[0]['n_epochs']} epochs, {time.perf_counter() - start:.0f} s")
    return posterior.sample(x_obs, N_SAMPLES, rng=SAMPLE_SEED)


@pytest.fixture(scope="module")
def sbi_samples(simulations, x_obs, tmp_path_factory):
    """(n_obs, N_SAMPLES, 2) samples of sbi's NPE (NSF, xtml's schedule) on the same simulations."""
    theta, x = (torch.as_tensor(a, dtype=torch.float32) for a in simulations)
    start = time.perf_counter()
    with _torch_local(SBI_SEED):
        prior = sbi_utils.BoxUniform(torch.tensor(BOX.low.tolist()), torch.tensor(BOX.high.tolist()))
        from torch.utils.tensorboard import SummaryWriter  # sbi's default writes ./sbi-logs

        writer = SummaryWriter(log_dir=str(tmp_path_factory.mktemp("sbi-logs")))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "summary_writer is deprecated", FutureWarning)
            inference = sbi_inference.NPE(
                prior=prior, density_estimator="nsf", show_progress_bars=False, summary_writer=writer
            )
        inference.append_simulations(theta, x)
        with warnings.catch_warnings():
            # the epoch cap is deliberate (run time); sbi warns when it stops training short of convergence
            warnings.filterwarnings("ignore", "Maximum number of epochs", UserWarning)
            estimator = inference.train(
                learning_rate=XTML_CONFIG.lr,
                training_batch_size=XTML_CONFIG.batch_size,
                validation_fraction=XTML_CONFIG.validation_fraction,
                max_num_epochs=MAX_EPOCHS,
            )
        posterior = inference.build_posterior(estimator)
        samples = np.stack(
            [
                posterior.sample(
                    (N_SAMPLES,), x=torch.as_tensor(row, dtype=torch.float32), show_progress_bars=False
                )
                .numpy()
                .astype(np.float64)
                for row in x_obs
            ]
        )
    print(f"sbi NPE: {inference.summary['epochs_trained'][-1]} epochs, {time.perf_counter() - start:.0f} s")
    return samples


@pytest.fixture(scope="module")
def exact(x_obs):
    """Exact posterior samples (n_obs, N_SAMPLES, 2), means (n_obs, 2) and standard deviations (n_obs, 2)."""
    rng = np.random.default_rng(EXACT_SEED)
    samples = np.stack([_exact_samples(row, N_SAMPLES, rng) for row in x_obs])
    means, stds = zip(*(_exact_moments(row) for row in x_obs), strict=True)
    return samples, np.array(means), np.array(stds)


def test_sbi_and_xtml_posteriors_agree_with_each_other_and_with_the_exact_one(
    xtml_samples, sbi_samples, exact
):
    samples, mean, std = exact
    pairs = {
        "sbi-xtml": (sbi_samples, xtml_samples),
        "sbi-exact": (sbi_samples, samples),
        "xtml-exact": (xtml_samples, samples),
    }
    scores = {
        name: [c2st(p[i], q[i], rng=i) for i in range(len(THETA_OBS))] for name, (p, q) in pairs.items()
    }
    for name, values in scores.items():
        print(f"C2ST {name}: " + " ".join(f"{v:.3f}" for v in values))
    for name, values in scores.items():
        assert max(values) <= C2ST_MAX, (name, values)
    # moments, in units of the exact posterior sd: the Monte Carlo error of a mean of 2000 draws is 0.02 sd;
    # when this test was written the means were within 0.12 sd (xtml) and 0.21 sd (sbi) of the exact ones,
    # both worst for the observation pinned against a = 2, and the sds within 12 %
    for name, s in (("sbi", sbi_samples), ("xtml", xtml_samples)):
        assert np.all(np.abs(s.mean(axis=1) - mean) < 0.3 * std), (name, s.mean(axis=1), mean, std)
        assert np.all(np.abs(np.log(s.std(axis=1) / std)) < np.log(1.25)), (name, s.std(axis=1), std)
    assert np.all(np.abs(sbi_samples.mean(axis=1) - xtml_samples.mean(axis=1)) < 0.3 * std)
    assert np.all(np.abs(np.log(sbi_samples.std(axis=1) / xtml_samples.std(axis=1))) < np.log(1.25))


def test_the_comparison_has_power(xtml_samples, sbi_samples, exact):
    """A 0.5-sd shift of one NPE's samples, and a Gaussian with the exact mean and covariance, are told apart
    (the second shows that the posterior is not Gaussian, so agreement tests its shape)."""
    samples, _, std = exact
    rng = np.random.default_rng(EXACT_SEED + 1)
    shifted, gaussian = [], []
    for i in range(len(THETA_OBS)):
        shifted.append(c2st(sbi_samples[i], xtml_samples[i] + 0.5 * std[i], rng=i))
        fake = rng.multivariate_normal(samples[i].mean(axis=0), np.cov(samples[i].T), size=N_SAMPLES)
        gaussian.append(c2st(fake, samples[i], rng=i))
    print("C2ST sbi-shifted xtml: " + " ".join(f"{v:.3f}" for v in shifted))
    print("C2ST Gaussian-exact:   " + " ".join(f"{v:.3f}" for v in gaussian))
    assert min(shifted) > 0.65, shifted
    assert min(gaussian) > C2ST_MAX, gaussian  # the posterior is not Gaussian: agreement tests its shape
