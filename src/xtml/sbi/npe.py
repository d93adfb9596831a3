r"""Neural posterior estimation (NPE): a conditional normalising flow :math:`q(\theta \mid x)` trained on
simulations :math:`(\theta_i, x_i)` drawn from the prior and the simulator.

The flow does not model :math:`\theta` directly. Parameters are first mapped out of their prior box by
:class:`~xtml.sbi.transforms.BoxTransform` (:math:`z = \operatorname{logit}(s(\theta))`), then
standardised with the training mean and standard deviation, :math:`u = (z - \bar z) / \sigma_z`; the
features are standardised the same way, :math:`\tilde x = (x - \bar x) / \sigma_x`. A zuko flow (NSF or MAF)
is conditioned on an embedding :math:`e(\tilde x)` trained jointly, by minimising
:math:`-\frac1n \sum_i \log q(u_i \mid e(\tilde x_i))` with Adam and early stopping on a validation split.
The density in the original parameters is

.. math::

    \log p(\theta \mid x) = \log \frac1K \sum_{k=1}^K q_k(u \mid e_k(\tilde x)) - \sum_j \log\sigma_{z,j}
    + \log\left|\det \frac{\partial z}{\partial \theta}\right|,

for an ensemble of :math:`K` independently initialised members (a uniform mixture), and samples are drawn
from a member chosen uniformly at random, then mapped back into the box (never outside: no rejection).

Randomness: training is seeded by ``NPEConfig.seed`` (a local :class:`torch.Generator` for shuffling;
weight initialisation under :func:`torch.random.fork_rng`); sampling by ``rng``. The caller's global numpy
and torch generators are left untouched. Torch threads are set for the duration of each call and restored.

The pieces live in small modules: :mod:`xtml.sbi.transforms` (the box), :mod:`xtml.sbi.embedding` (the
embedding networks), :mod:`xtml.sbi.density` (:class:`NPEConfig` and the network it builds),
:mod:`xtml.sbi.posterior` (:class:`NeuralPosterior`: sampling, densities, safetensors + JSON files) and
this one (:func:`train_npe`).

PyTorch, zuko and safetensors are optional: ``pip install "xtml[sbi]"``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    import torch
except ImportError as exc:  # pragma: no cover - optional dependencies
    raise ImportError(
        'xtml.sbi needs PyTorch and zuko, optional dependencies: pip install "xtml[sbi]"'
    ) from exc

from xtml.learn._torch_train import seeded, torch_threads, train
from xtml.sbi.density import NPEConfig, _check_int, build_estimator
from xtml.sbi.posterior import NeuralPosterior, _rows
from xtml.sbi.transforms import BoxTransform
from xtml.simulate.lightcurves import default_threads

__all__ = ["NPEConfig", "NeuralPosterior", "train_npe"]

TOL = 1e-4  # improvement of the validation loss (nats) that resets the early-stopping counter


def _nll(member: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss of ``train``: mean negative log-likelihood of ``u`` under the member's flow given the context."""

    def loss(context: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return -member.flow(context).log_prob(u).mean()

    return loss


def _epoch_log(bar: object, k: int) -> Callable[[int, float, float], None]:
    """Progress of member ``k``: epoch and losses on the ensemble's tqdm bar."""

    def show(epoch: int, train_loss: float, monitored: float) -> None:
        bar.set_postfix_str(f"member {k}: epoch {epoch + 1}, train {train_loss:.3f}, val {monitored:.3f}")  # type: ignore[attr-defined]

    return show


def _standardisation(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    std = a.std(axis=0)
    return a.mean(axis=0), np.where(std > 0, std, 1.0)


def train_npe(
    theta: ArrayLike,
    x: ArrayLike,
    prior_box: BoxTransform,
    config: NPEConfig | None = None,
    *,
    progress: bool = False,
    n_threads: int | None = None,
) -> NeuralPosterior:
    """Train a neural posterior on simulations ``(theta, x)``.

    Parameters
    ----------
    theta : array-like of shape (n, n_params)
        Parameters of the simulations, drawn from the prior; columns in ``prior_box.names`` order, all
        inside the box.
    x : array-like of shape (n, n_features)
        Features of each simulation (e.g. log-power in frequency bins, channels concatenated).
    prior_box : BoxTransform
        The prior box (:meth:`BoxTransform.from_prior`).
    config : NPEConfig, optional
        Architecture and schedule (default: ``NPEConfig()``).
    progress : bool, default=False
        Show a progress bar over the ensemble members.
    n_threads : int or None
        Torch threads (None: ``OMP_NUM_THREADS`` if set, else the CPUs available); also kept for sampling.

    Returns
    -------
    NeuralPosterior
        The trained ensemble (each member holds the weights of its best validation epoch).

    Examples
    --------
    >>> import numpy as np
    >>> from xtml.psd import JointPrior, LogUniform, Uniform
    >>> prior = JointPrior({"nu0": LogUniform(1.0, 20.0), "rms": Uniform(0.05, 0.2)})
    >>> box = BoxTransform.from_prior(prior)
    >>> rng = np.random.default_rng(0)
    >>> theta = prior.sample(500, rng)
    >>> x = np.log(theta)[:, [0, 0, 1, 1]] + 0.1 * rng.normal(size=(500, 4))
    >>> posterior = train_npe(theta, x, box, NPEConfig(max_epochs=3), n_threads=1)
    >>> samples = posterior.sample(x[:2], 100, rng=1)
    >>> samples.shape, bool(np.all(box.contains(samples.reshape(-1, 2))))
    ((2, 100, 2), True)
    """
    config = NPEConfig() if config is None else config
    if not isinstance(config, NPEConfig):
        raise ValueError(f"config must be an NPEConfig; got {type(config).__name__}")
    if not isinstance(prior_box, BoxTransform):
        raise ValueError(
            f"prior_box must be a BoxTransform (see BoxTransform.from_prior); got {type(prior_box).__name__}"
        )
    if n_threads is not None:
        _check_int("n_threads", n_threads, 1)
    t = _rows("theta", theta, prior_box.n_params, "parameters")
    x_arr = np.asarray(x, dtype=np.float64)
    if x_arr.ndim != 2:
        raise ValueError(f"x must have shape (n, n_features); got {x_arr.shape}")
    xr = _rows("x", x_arr, x_arr.shape[1], "features")
    if xr.shape[0] != t.shape[0] or t.shape[0] < 2:
        raise ValueError(
            f"theta and x must have the same number (>= 2) of rows; got {t.shape[0]} and {xr.shape[0]}"
        )
    outside = ~prior_box.contains(t)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} rows of theta lie outside the prior box (first: row "
            f"{int(np.argmax(outside))}, {t[np.argmax(outside)]}); bounds low={prior_box.low}, "
            f"high={prior_box.high}"
        )
    split_seed, *member_seeds = np.random.SeedSequence(config.seed).generate_state(config.n_ensemble + 1)
    n = t.shape[0]
    n_val = round(config.validation_fraction * n)
    order = np.random.default_rng(split_seed).permutation(n)
    if n_val < 1 or n - n_val < 2:
        n_val = 0
    train_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
    z = prior_box.to_unbounded(t)
    x_mean, x_std = _standardisation(xr[train_idx])
    z_mean, z_std = _standardisation(z[train_idx])
    xs = ((xr - x_mean) / x_std).astype(np.float32)
    us = ((z - z_mean) / z_std).astype(np.float32)
    members, history = [], []
    threads = default_threads() if n_threads is None else n_threads
    ks = range(config.n_ensemble)
    if progress:
        from tqdm.auto import tqdm

        ks = tqdm(ks, desc="NPE ensemble", unit="flow", disable=None)  # a bar on a terminal only
    for k in ks:
        with torch_threads(threads), seeded(int(member_seeds[k])) as generator:
            member = build_estimator(config, xr.shape[1], prior_box.n_params)
            result = train(
                member,
                _nll(member),
                xs[train_idx],
                us[train_idx],
                xs[val_idx] if n_val else None,
                us[val_idx] if n_val else None,
                lr=config.lr,
                weight_decay=config.weight_decay,
                batch_size=config.batch_size,
                max_epochs=config.max_epochs,
                patience=config.patience,
                tol=TOL,
                generator=generator,
                on_epoch=_epoch_log(ks, k) if progress else None,
                lr_patience=config.lr_patience if config.schedule == "plateau" else None,
                one_cycle=config.schedule == "one_cycle",
            )
        members.append(member.eval())
        history.append(
            {
                "n_epochs": result.n_epochs,
                "best_epoch": result.best_epoch,
                "best_loss": result.best_loss,
                **result.history,
            }
        )
    posterior = NeuralPosterior(
        config, prior_box, members, x_mean=x_mean, x_std=x_std, z_mean=z_mean, z_std=z_std, history=history
    )
    posterior.n_threads = n_threads
    return posterior
