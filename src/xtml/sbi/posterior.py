"""The trained posterior of neural posterior estimation: sampling, densities and safe files.

See :mod:`xtml.sbi.npe` for the method and the equation of the density. Files
(:meth:`NeuralPosterior.save`): ``weights.safetensors`` (all members) and ``posterior.json`` (the
configuration, standardisation, box, parameter names and the xtml version): no pickle anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - optional dependencies
    raise ImportError(
        'xtml.sbi needs PyTorch and zuko, optional dependencies: pip install "xtml[sbi]"'
    ) from exc

from xtml.learn._torch_train import INFERENCE_BATCH, torch_threads
from xtml.sbi.density import NPEConfig, _check_int, build_estimator
from xtml.sbi.fastflow import CompiledFlow, UnsupportedFlowError, compile_flows, weights_key
from xtml.sbi.transforms import BoxTransform
from xtml.simulate.lightcurves import default_threads

__all__ = ["NeuralPosterior"]

FORMAT = "xtml.sbi.NeuralPosterior"
FORMAT_VERSION = 1
SAMPLE_ROWS = 65_536  # samples drawn per flow call (observations x draws), bounding memory
FAST_THREADS = 1  # torch threads of the compiled sampler: its operations are too small to share (measured)


def _rows(name: str, value: ArrayLike, n_columns: int, what: str) -> NDArray[np.float64]:
    """``value`` as finite float64 rows (n, n_columns); a 1-D array is one row. ValueError otherwise."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array; got shape {arr.shape}")
    if arr.shape[1] != n_columns:
        raise ValueError(f"{name} has {arr.shape[1]} {what} per row, but {n_columns} are expected")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contains NaN or infinite values in {int(bad.sum())} of {arr.shape[0]} rows "
            f"(first: row {int(np.argmax(bad))})"
        )
    return arr


def _recalibration_affine(
    rec: Mapping[str, Any] | None, k_members: int, d: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The recalibrated bases (loc (K, d), lower Cholesky factor (K, d, d)) of a recalibration record."""
    if rec is None:
        return None
    loc = torch.as_tensor(np.asarray(rec["loc"], dtype=np.float64))
    chol = torch.as_tensor(np.asarray(rec["chol"], dtype=np.float64))
    if loc.shape != (k_members, d) or chol.shape != (k_members, d, d):
        raise ValueError(
            f"recalibration has loc {tuple(loc.shape)} and chol {tuple(chol.shape)}; expected "
            f"({k_members}, {d}) and ({k_members}, {d}, {d}) for {k_members} members and {d} parameters"
        )
    diag = torch.diagonal(chol, dim1=-2, dim2=-1)
    if not torch.all(diag > 0) or not torch.allclose(chol, torch.tril(chol)):
        raise ValueError("recalibration chol must be lower-triangular with a positive diagonal")
    return loc, chol


def _gaussian_log_prob(z: torch.Tensor, loc: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, chol chol^T) of rows ``z`` (n, d)."""
    w = torch.linalg.solve_triangular(chol, (z - loc).T, upper=False).T
    d = z.shape[-1]
    log_det = torch.log(torch.diagonal(chol)).sum()
    return -0.5 * (w**2).sum(dim=-1) - log_det - 0.5 * d * math.log(2 * math.pi)


class NeuralPosterior:
    """A trained NPE posterior: an ensemble of conditional flows with its standardisation and prior box.

    Built by :func:`train_npe` or :meth:`load`; not meant to be constructed by hand.

    Attributes
    ----------
    config : NPEConfig
        Architecture and schedule used in training.
    box : BoxTransform
        The prior box (parameter names, bounds, scales).
    n_features : int
        Number of features per simulation.
    x_mean, x_std : ndarray of shape (n_features,)
        Standardisation of the features.
    z_mean, z_std : ndarray of shape (n_params,)
        Standardisation of the unbounded parameters.
    members : list of torch.nn.Module
        The ``K`` trained networks (eval mode).
    history : list of dict
        Per member: ``n_epochs``, ``best_epoch``, ``best_loss`` and the per-epoch ``train_loss`` and
        ``val_loss`` (mean negative log-likelihood of the standardised unbounded parameters, nats).
    n_threads : int or None
        Torch threads for sampling and evaluation (None: ``OMP_NUM_THREADS`` if set, else the CPUs); the fast
        sampler always runs on one thread (its operations are too small to share: 2 threads were slower
        in ``bench/bench_npe.py``).
    recalibration : dict or None
        The base refit of :meth:`recalibrate` (``n``: the held-out simulations it was fitted on;
        ``covariance``: "full" or "diagonal"; per member, ``loc`` and the lower Cholesky factor ``chol``
        of the base Gaussian that replaces the trained one), or None for the trained flows as they are.
    fast_sampling : bool
        Sample through :mod:`xtml.sbi.fastflow` (default True): the members' flows are compiled once
        (again whenever a weight changes), stacked and inverted stage by stage, several times faster than
        zuko's ``sample``; flows it does not support fall back to zuko. The base noise is the same in
        both cases, so the samples agree to float32 rounding.
    """

    def __init__(
        self,
        config: NPEConfig,
        box: BoxTransform,
        members: Sequence[nn.Module],
        *,
        x_mean: ArrayLike,
        x_std: ArrayLike,
        z_mean: ArrayLike,
        z_std: ArrayLike,
        history: Sequence[Mapping[str, Any]] = (),
        recalibration: Mapping[str, Any] | None = None,
        xtml_version: str | None = None,
    ) -> None:
        self.config, self.box, self.members = config, box, list(members)
        self.x_mean, self.x_std = np.asarray(x_mean, dtype=np.float64), np.asarray(x_std, dtype=np.float64)
        self.z_mean, self.z_std = np.asarray(z_mean, dtype=np.float64), np.asarray(z_std, dtype=np.float64)
        self.n_features = int(self.x_mean.size)
        self.history = [dict(h) for h in history]
        self.recalibration = None if recalibration is None else dict(recalibration)
        self._affine = _recalibration_affine(self.recalibration, len(self.members), box.n_params)
        self.n_threads: int | None = None
        self.fast_sampling = True
        self._compiled: tuple[tuple[int, ...], CompiledFlow | None] | None = None
        if xtml_version is None:
            from xtml import __version__ as xtml_version
        self.xtml_version = xtml_version

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in column order."""
        return self.box.names

    def __repr__(self) -> str:
        c = self.config
        return (
            f"NeuralPosterior({c.flow.upper()} x {len(self.members)}, embedding={c.embedding!r}, "
            f"n_features={self.n_features}, names={list(self.names)})"
        )

    def _threads(self) -> int:
        return default_threads() if self.n_threads is None else int(self.n_threads)

    def _standard_x(self, x: NDArray[np.float64]) -> torch.Tensor:
        return torch.from_numpy(((x - self.x_mean) / self.x_std).astype(np.float32))

    def _contexts(self, member: nn.Module, xs: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(xb) for xb in torch.split(xs, INFERENCE_BATCH)])

    def _compiled_members(self) -> CompiledFlow | None:
        """All members' flows compiled and stacked (cached while no weight changes), or None."""
        if not self.fast_sampling:
            return None
        key = tuple(v for member in self.members for v in (id(member), *weights_key(member.flow)))
        if self._compiled is None or self._compiled[0] != key:
            try:
                compiled = compile_flows([member.flow for member in self.members])
            except UnsupportedFlowError:
                compiled = None
            self._compiled = (key, compiled)
        return self._compiled[1]

    def _draw_fast(
        self, compiled: CompiledFlow, contexts: list[torch.Tensor], ms: list[int], gen: torch.Generator
    ) -> torch.Tensor:
        """Draws (K, m, b, d) of all members at once, ``m = max(ms)``: member ``k`` fills its first
        ``ms[k]`` draws for each of the ``b`` contexts (b, C) with the noise zuko would use."""
        k_members, b, d = len(contexts), contexts[0].shape[0], self.box.n_params
        m = max(ms)
        eps = torch.zeros((k_members, m * b, d), dtype=compiled.loc.dtype)
        for k, mk in enumerate(ms):  # zuko's order: member by member, (m_k, b, d) each
            if mk:
                eps[k, : mk * b] = torch.randn((mk * b, d), generator=gen, dtype=eps.dtype)
        if self._affine is None:
            z = eps * compiled.scale[:, None, :] + compiled.loc[:, None, :]
        else:
            loc, chol = (a.to(eps.dtype) for a in self._affine)
            z = torch.einsum("kij,knj->kni", chol, eps) + loc[:, None, :]
        context = torch.stack(contexts)  # (K, b, C); row i * b + j of the draws has context j
        shared = context if b == 1 else context.repeat(1, m, 1)
        return compiled.inverse(z, shared).view(k_members, m, b, d)

    def _draw_zuko(self, k: int, dist: Any, m: int) -> NDArray[np.float32]:
        """``m`` draws of member ``k``'s distribution ``dist`` (zuko), through its recalibrated base."""
        if self._affine is None:
            return dist.sample((m,)).numpy()
        loc, chol = (a[k].to(torch.float32) for a in self._affine)
        eps = torch.randn((m, *dist.base.batch_shape, loc.shape[0]))
        return dist.transform.inv(eps @ chol.T + loc).numpy()

    def _member_log_prob(self, k: int, dist: Any, u: torch.Tensor) -> torch.Tensor:
        """Member ``k``'s log density of the standardised parameters ``u``, with its recalibrated base."""
        if self._affine is None:
            return dist.log_prob(u)
        z, ladj = dist.transform.call_and_ladj(u)
        return _gaussian_log_prob(z.double(), self._affine[0][k], self._affine[1][k]) + ladj.double()

    def sample(
        self, x_obs: ArrayLike, n: int, rng: np.random.Generator | int | None = None
    ) -> NDArray[np.float64]:
        """Draw ``n`` posterior samples for each observation, in the original parameter space.

        Parameters
        ----------
        x_obs : array-like of shape (n_obs, n_features) or (n_features,)
            Observed features, computed as for the training simulations.
        n : int
            Samples per observation.
        rng : numpy Generator, int or None
            Source of randomness (the same seed gives the same samples).

        Returns
        -------
        ndarray of shape (n_obs, n, n_params)
            Samples, always inside the prior box; columns in ``names`` order.
        """
        _check_int("n", n, 1)
        x = _rows("x_obs", x_obs, self.n_features, "features")
        gen = np.random.default_rng(rng)
        n_obs, k_members, d = x.shape[0], len(self.members), self.box.n_params
        counts = gen.multinomial(n, np.full(k_members, 1.0 / k_members), size=n_obs)  # (n_obs, K)
        seed = int(gen.integers(2**62))
        u = np.empty((n_obs, n, d), dtype=np.float32)
        step = max(1, SAMPLE_ROWS // n)
        noise = torch.Generator().manual_seed(seed)  # the stream zuko draws from under manual_seed(seed)
        compiled = self._compiled_members()
        threads = self._threads() if compiled is None else FAST_THREADS
        with torch_threads(threads), torch.inference_mode():
            xs = self._standard_x(x)
            for start in range(0, n_obs, step):
                sl = slice(start, min(start + step, n_obs))
                ms = [int(counts[sl, k].max()) for k in range(k_members)]
                contexts = [self._contexts(member, xs[sl]) for member in self.members]
                if compiled is not None:
                    draws = self._draw_fast(compiled, contexts, ms, noise).numpy()  # (K, m, b, d)
                else:
                    with torch.random.fork_rng(devices=[]):
                        torch.default_generator.set_state(noise.get_state())
                        draws = [
                            self._draw_zuko(k, member.flow(c), mk) if mk else None
                            for k, (member, c, mk) in enumerate(zip(self.members, contexts, ms, strict=True))
                        ]
                        noise.set_state(torch.default_generator.get_state())
                filled = np.zeros(sl.stop - start, dtype=np.int64)
                for k in range(k_members):
                    if ms[k] == 0:
                        continue
                    for i, c in enumerate(counts[sl, k]):
                        u[start + i, filled[i] : filled[i] + c] = draws[k][:c, i]
                    filled += counts[sl, k]
        if k_members > 1:
            u = gen.permuted(u, axis=1)
        z = u.astype(np.float64) * self.z_std + self.z_mean
        return self.box.to_box(z.reshape(-1, d)).reshape(n_obs, n, d)

    def log_prob(self, theta: ArrayLike, x: ArrayLike) -> NDArray[np.float64]:
        """Posterior log density :math:`\\log p(\\theta \\mid x)` in the original parameter space.

        Parameters
        ----------
        theta : array-like of shape (n, n_params)
            Parameter vectors (columns in ``names`` order).
        x : array-like of shape (n, n_features) or (n_features,)
            Features of each row, or one observation shared by all rows.

        Returns
        -------
        ndarray of shape (n,)
            Log density (mixture over the ensemble, with the Jacobian of the box map); ``-inf`` outside
            the prior box.
        """
        t = _rows("theta", theta, self.box.n_params, "parameters")
        xr = _rows("x", x, self.n_features, "features")
        if xr.shape[0] not in (1, t.shape[0]):
            raise ValueError(f"x must have 1 or {t.shape[0]} rows (one per theta); got {xr.shape[0]}")
        return self._log_prob(t, xr, t.shape[0] if xr.shape[0] == 1 else None)

    def log_prob_draws(self, samples: ArrayLike, x: ArrayLike) -> NDArray[np.float64]:
        """:meth:`log_prob` of draws per observation: the numbers the calibration checks score.

        Parameters
        ----------
        samples : array-like of shape (n_obs, n_draws, n_params)
            Parameter vectors per observation (e.g. :meth:`sample`'s output).
        x : array-like of shape (n_obs, n_features)
            The features of each observation.

        Returns
        -------
        ndarray of shape (n_obs, n_draws)
            The numbers of ``log_prob(samples[i], x[i])`` for each ``i``; each observation's context is
            computed once and the draws go through the flows in large batches.
        """
        s = np.asarray(samples, dtype=np.float64)
        xr = _rows("x", x, self.n_features, "features")
        if s.ndim != 3 or s.shape[0] != xr.shape[0] or s.shape[2] != self.box.n_params:
            raise ValueError(
                f"samples must have shape (n_obs = {xr.shape[0]}, n_draws, n_params = {self.box.n_params}); "
                f"got {s.shape}"
            )
        t = _rows("samples", s.reshape(-1, self.box.n_params), self.box.n_params, "parameters")
        return self._log_prob(t, xr, s.shape[1]).reshape(s.shape[:2])

    def _log_prob(
        self, t: NDArray[np.float64], xr: NDArray[np.float64], per_x: int | None
    ) -> NDArray[np.float64]:
        """Log density of rows ``t``; each ``per_x`` consecutive rows share one row of ``xr`` (None: a row
        of ``xr`` per row of ``t``)."""
        inside = self.box.contains(t)
        u = ((self.box.to_unbounded(t) - self.z_mean) / self.z_std).astype(np.float32)
        log_q = np.empty((len(self.members), t.shape[0]))
        with torch_threads(self._threads()), torch.inference_mode():
            xs, ut = self._standard_x(xr), torch.from_numpy(u)
            for k, member in enumerate(self.members):
                member.eval()
                parts = []
                shared = self._contexts(member, xs) if per_x is not None else None
                for start in range(0, t.shape[0], INFERENCE_BATCH):
                    ub = ut[start : start + INFERENCE_BATCH]
                    if shared is None:
                        context = self._contexts(member, xs[start : start + INFERENCE_BATCH])
                    elif shared.shape[0] == 1:
                        context = shared.expand(ub.shape[0], -1)
                    else:
                        context = shared[torch.arange(start, start + ub.shape[0]) // per_x]
                    parts.append(self._member_log_prob(k, member.flow(context), ub).double())
                log_q[k] = torch.cat(parts).numpy()
        mixture = np.logaddexp.reduce(log_q, axis=0) - math.log(len(self.members))
        out = mixture - np.log(self.z_std).sum() + self.box.log_det_jacobian(t)
        return np.where(inside, out, -np.inf)

    def base_coordinates(self, theta: ArrayLike, x: ArrayLike) -> NDArray[np.float64]:
        r"""Each member's flow applied to ``theta`` given ``x``: the base-space points (K, n, n_params),
        standardised by the member's current base (``(T_k(u) - loc_k) / scale_k``, or whitened by the
        Cholesky factor of a recalibrated base).

        For a calibrated member and ``(theta, x)`` drawn from the prior and the simulator, these are
        independent standard normal draws: :math:`\theta` is then a draw from the posterior, and the flow
        maps posterior draws onto its base. Their mean and spread measure the member's bias and
        over- or under-confidence (a spread above 1: regions too narrow).
        """
        t = _rows("theta", theta, self.box.n_params, "parameters")
        xr = _rows("x", x, self.n_features, "features")
        if xr.shape[0] != t.shape[0]:
            raise ValueError(f"x must have {t.shape[0]} rows (one per theta); got {xr.shape[0]}")
        if not np.all(self.box.contains(t)):
            raise ValueError("theta has rows outside the prior box: they have no base coordinates")
        u = ((self.box.to_unbounded(t) - self.z_mean) / self.z_std).astype(np.float32)
        out = np.empty((len(self.members), t.shape[0], self.box.n_params))
        with torch_threads(self._threads()), torch.inference_mode():
            xs, ut = self._standard_x(xr), torch.from_numpy(u)
            for k, member in enumerate(self.members):
                member.eval()
                parts = []
                for start in range(0, t.shape[0], INFERENCE_BATCH):
                    sl = slice(start, start + INFERENCE_BATCH)
                    parts.append(member.flow(self._contexts(member, xs[sl])).transform(ut[sl]))
                z = torch.cat(parts).double()
                if self._affine is None:
                    base = member.flow.base()
                    z = (z - base.base_dist.loc.double()) / base.base_dist.scale.double()
                else:  # whitened by the recalibrated base
                    loc, chol = self._affine[0][k], self._affine[1][k]
                    z = torch.linalg.solve_triangular(chol, (z - loc).T, upper=False).T
                out[k] = z.numpy()
        return out

    def recalibrate(self, theta: ArrayLike, x: ArrayLike, *, covariance: str = "full") -> NeuralPosterior:
        r"""A copy whose members' base Gaussians are refitted on held-out simulations ``(theta, x)``.

        Each member :math:`k` is a flow :math:`u = T_k^{-1}(b)` of a base :math:`b \sim
        \mathcal N(0, I)`. On simulations drawn from the prior and the simulator, a calibrated member maps
        the true parameters onto standard normal base points (:meth:`base_coordinates`); a member that is
        overconfident maps them onto points spread wider than 1, a biased one onto points off 0, one whose
        correlations are wrong onto correlated points. The recalibration replaces the base by the normal
        with the mean and the covariance of those points (``covariance="full"``; ``"diagonal"``: their
        variances only): an exact density again (sampling and :meth:`log_prob` stay consistent), whose
        regions are widened (or narrowed), shifted and rotated by what the held-out simulations showed. The
        flows' weights are unchanged; the fit is stored in :attr:`recalibration` (``posterior.json``).

        It is fitted on simulations that must not be those the calibration is then judged on: ``xtml sbi
        train`` fits it on a calibration set of its own and checks the result on the test set. It corrects
        a miscalibration common to the prior's range, not one that changes sign across it (the test set's
        checks, per parameter and count-rate bin, show what remains). A recalibrated posterior can be
        recalibrated again (the fits compose).

        Parameters
        ----------
        theta : array-like of shape (n, n_params)
            True parameters of the held-out simulations (inside the prior box).
        x : array-like of shape (n, n_features)
            Their features.
        covariance : {"full", "diagonal"}
            Refit the base's full covariance (default) or its variances only.

        Returns
        -------
        NeuralPosterior
            The recalibrated posterior (this one is left unchanged; the members are shared, not copied).
        """
        if covariance not in ("full", "diagonal"):
            raise ValueError(f"covariance must be 'full' or 'diagonal'; got {covariance!r}")
        t = _rows("theta", theta, self.box.n_params, "parameters")
        d = self.box.n_params
        if t.shape[0] < 10 * d:
            raise ValueError(
                f"recalibration needs at least {10 * d} held-out simulations "
                f"(10 per parameter); got {t.shape[0]}"
            )
        b = self.base_coordinates(t, x)  # (K, n, d), whitened by each member's current base
        locs, chols = [], []
        for k, bk in enumerate(b):
            loc0, chol0 = self._base_affine(k)
            cov = np.cov(bk, rowvar=False).reshape(d, d)
            if covariance == "diagonal":
                cov = np.diag(np.diag(cov))
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                raise ValueError(
                    "the held-out simulations' base points have a singular covariance: the parameters "
                    "are degenerate in them (too few simulations, or repeated ones)"
                ) from None
            locs.append((loc0 + chol0 @ bk.mean(axis=0)).tolist())
            chols.append((chol0 @ chol).tolist())
        return self.with_recalibration(
            {
                "method": "base_gaussian",
                "covariance": covariance,
                "n": int(t.shape[0]),
                "loc": locs,
                "chol": chols,
            }
        )

    def with_recalibration(self, recalibration: Mapping[str, Any] | None) -> NeuralPosterior:
        """This posterior (the same members, not copied) with another base recalibration record (the form of
        :attr:`recalibration`; None: the trained bases). :meth:`recalibrate` fits one."""
        return type(self)(
            self.config,
            self.box,
            self.members,
            x_mean=self.x_mean,
            x_std=self.x_std,
            z_mean=self.z_mean,
            z_std=self.z_std,
            history=self.history,
            recalibration=recalibration,
            xtml_version=self.xtml_version,
        )

    def _base_affine(self, k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Member ``k``'s base as ``loc + chol @ eps``: the recalibrated one, or the trained diagonal."""
        if self._affine is not None:
            return self._affine[0][k].numpy(), self._affine[1][k].numpy()
        base = self.members[k].flow.base
        return base.loc.double().numpy(), np.diag(base.scale.double().numpy())

    def save(self, path_dir: str | Path) -> Path:
        """Write ``weights.safetensors`` and ``posterior.json`` to the folder ``path_dir`` (created)."""
        from safetensors.torch import save_file

        out = Path(path_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            f"member{k}.{name}": v.detach().contiguous().clone()
            for k, member in enumerate(self.members)
            for name, v in member.state_dict().items()
        }
        save_file(state, str(out / "weights.safetensors"))
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "xtml_version": self.xtml_version,
            "names": list(self.names),
            "config": self.config.to_dict(),
            "box": self.box.to_config(),
            "n_features": self.n_features,
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "z_mean": self.z_mean.tolist(),
            "z_std": self.z_std.tolist(),
            "history": self.history,
            "recalibration": self.recalibration,
        }
        (out / "posterior.json").write_text(json.dumps(info, indent=1))
        return out

    @classmethod
    def load(cls, path_dir: str | Path) -> Self:
        """Read a posterior written by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        from safetensors.torch import load_file

        d = Path(path_dir)
        info = json.loads((d / "posterior.json").read_text())
        if info.get("format") != FORMAT:
            raise ValueError(
                f"{d / 'posterior.json'} is not an xtml NeuralPosterior file (format {FORMAT!r})"
            )
        if info.get("format_version") != FORMAT_VERSION:
            from xtml import __version__

            raise ValueError(
                f"{d / 'posterior.json'} was saved by xtml {info.get('xtml_version', '?')} in posterior "
                f"format {info.get('format_version')}; this xtml {__version__} reads format {FORMAT_VERSION}"
                + (": upgrade xtml to load it" if int(info.get("format_version", 0)) > FORMAT_VERSION else "")
            )
        config = NPEConfig.from_dict(info["config"])
        box = BoxTransform.from_config(info["box"])
        state = load_file(str(d / "weights.safetensors"))
        members = []
        for k in range(config.n_ensemble):
            member = build_estimator(config, int(info["n_features"]), box.n_params)
            prefix = f"member{k}."
            member.load_state_dict({n[len(prefix) :]: v for n, v in state.items() if n.startswith(prefix)})
            members.append(member.eval())
        return cls(
            config,
            box,
            members,
            x_mean=info["x_mean"],
            x_std=info["x_std"],
            z_mean=info["z_mean"],
            z_std=info["z_std"],
            history=info["history"],
            recalibration=info.get("recalibration"),
            xtml_version=info["xtml_version"],
        )
