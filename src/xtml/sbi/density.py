"""The conditional density estimator of neural posterior estimation and its configuration.

:class:`NPEConfig` describes the network and the training schedule; ``build_estimator(config, n_features,
n_params)`` builds one ensemble member: an embedding of the standardised features (an
:class:`~xtml.sbi.embedding.MLPEmbedding`, a :class:`~xtml.sbi.embedding.CNNEmbedding` or none) feeding the
context of a zuko flow (:class:`zuko.flows.NSF` or :class:`zuko.flows.MAF`) over the standardised unbounded
parameters. Calling the member on features gives the context; ``member.flow(context)`` is the conditional
distribution (a torch ``Distribution`` with ``sample`` and ``log_prob``).

PyTorch and zuko are optional: ``pip install "xtml[sbi]"``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

try:
    import torch
    import zuko
    from torch import nn
except ImportError as exc:  # pragma: no cover - optional dependencies
    raise ImportError(
        'xtml.sbi needs PyTorch and zuko, optional dependencies: pip install "xtml[sbi]"'
    ) from exc

from xtml.sbi.embedding import CNNEmbedding, MLPEmbedding

__all__ = ["NPEConfig", "build_estimator"]

FlowKind = Literal["nsf", "maf"]
EmbeddingKind = Literal["mlp", "cnn", "none"]
ScheduleKind = Literal["plateau", "one_cycle"]


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


@dataclass(frozen=True)
class NPEConfig:
    """Architecture and training schedule of a neural posterior.

    Parameters
    ----------
    flow : {"nsf", "maf"}, default="nsf"
        :class:`zuko.flows.NSF` (monotonic rational-quadratic splines) or :class:`zuko.flows.MAF` (affine).
    transforms : int, default=5
        Number of autoregressive transforms.
    hidden_features : tuple of int, default=(64, 64)
        Hidden layers of each transform's masked network.
    bins : int, default=8
        Spline bins (NSF only).
    passes : int or None, default=None
        Sequential passes of each transform: None = fully autoregressive, 2 = coupling transforms (a
        little less accurate in the tests; with the fast sampler of :mod:`xtml.sbi.fastflow` about 1.7
        times faster to sample than the autoregressive default for 5 parameters).
    embedding : {"mlp", "cnn", "none"}, default="mlp"
        :class:`~xtml.sbi.embedding.MLPEmbedding`, :class:`~xtml.sbi.embedding.CNNEmbedding` (features =
        ``n_channels`` spectra on one frequency grid, concatenated) or none (the flow sees ``x`` itself).
    embedding_dim : int, default=32
        Size of the embedding output (the flow's context).
    embedding_hidden : tuple of int, default=(128, 128)
        Hidden layers of the MLP embedding; the CNN uses the first entry as the width of its head.
    n_channels : int, default=1
        Spectra per row for the CNN embedding.
    n_scalars : int, default=0
        Numbers after the spectra in each row (CNN embedding: they join the convolutional summaries
        before the head; the MLP simply sees all features).
    n_ensemble : int, default=1
        Number ``K`` of flows trained from different initialisations; the posterior is their mixture.
    lr, weight_decay : float, default=1e-3, 0.0
        Adam(W) learning rate and decoupled weight decay.
    lr_patience : int or None, default=5
        Halve the learning rate after every ``lr_patience`` epochs without a validation improvement
        (None: constant). A constant rate left the 100k-simulation posteriors of scenario (a) too wide.
        Ignored with ``schedule="one_cycle"``.
    schedule : {"plateau", "one_cycle"}, default="plateau"
        ``"plateau"``: start at ``lr`` and reduce on plateaus (``lr_patience``); training length is
        set by early stopping. ``"one_cycle"``: warm up to ``lr`` and anneal to zero over exactly
        ``max_epochs`` epochs (a fixed, predictable training time; early stopping still applies).
    batch_size, max_epochs, patience : int, default=256, 200, 10
        Minibatch size, maximum number of epochs, and epochs without a validation improvement before
        stopping (the best weights are kept).
    validation_fraction : float, default=0.1
        Fraction of the simulations held out for early stopping (0: monitor the training loss).
    seed : int, default=0
        Seeds the validation split, the initialisations and the shuffling.
    """

    flow: FlowKind = "nsf"
    transforms: int = 5
    hidden_features: tuple[int, ...] = (64, 64)
    bins: int = 8
    passes: int | None = None
    embedding: EmbeddingKind = "mlp"
    embedding_dim: int = 32
    embedding_hidden: tuple[int, ...] = (128, 128)
    n_channels: int = 1
    n_scalars: int = 0
    n_ensemble: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_patience: int | None = 5
    schedule: ScheduleKind = "plateau"
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 10
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kinds in (("flow", FlowKind), ("embedding", EmbeddingKind), ("schedule", ScheduleKind)):
            if getattr(self, name) not in get_args(kinds):
                raise ValueError(f"{name} must be one of {get_args(kinds)}; got {getattr(self, name)!r}")
        for name, low in (
            ("transforms", 1),
            ("bins", 2),
            ("embedding_dim", 1),
            ("n_channels", 1),
            ("n_scalars", 0),
            ("n_ensemble", 1),
            ("batch_size", 2),
            ("max_epochs", 1),
            ("patience", 1),
            ("seed", 0),
        ):
            _check_int(name, getattr(self, name), low)
        if self.passes is not None:
            _check_int("passes", self.passes, 1)
        if self.lr_patience is not None:
            _check_int("lr_patience", self.lr_patience, 1)
        for name in ("hidden_features", "embedding_hidden"):
            value = tuple(getattr(self, name))
            for i, h in enumerate(value):
                _check_int(f"{name}[{i}]", h, 1)
            object.__setattr__(self, name, value)
        for name, low, high in (("lr", 0.0, math.inf), ("weight_decay", 0.0, math.inf)):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not low <= v < high:
                raise ValueError(f"{name} must be a finite number >= {low}; got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        f = self.validation_fraction
        if not isinstance(f, numbers.Real) or isinstance(f, bool) or not 0 <= f < 1:
            raise ValueError(f"validation_fraction must be a number in [0, 1); got {f!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> NPEConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(f"unknown NPEConfig keys {unknown}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


class _Estimator(nn.Module):
    """One ensemble member: an embedding and a conditional flow; ``forward(x)`` is the context."""

    def __init__(self, config: NPEConfig, n_features: int, n_params: int) -> None:
        super().__init__()
        if config.embedding == "mlp":
            self.embedding: nn.Module = MLPEmbedding(
                n_features, config.embedding_dim, config.embedding_hidden
            )
            n_context = config.embedding_dim
        elif config.embedding == "cnn":
            n_spec = n_features - config.n_scalars
            if n_spec < config.n_channels or n_spec % config.n_channels:
                raise ValueError(
                    f"the CNN embedding needs the features to be {config.n_channels} spectra of equal "
                    f"length then {config.n_scalars} scalars; got {n_features} features, and "
                    f"{n_spec} is not a multiple of n_channels={config.n_channels}"
                )
            head = config.embedding_hidden[0] if config.embedding_hidden else 128
            self.embedding = CNNEmbedding(
                n_spec // config.n_channels,
                config.n_channels,
                config.embedding_dim,
                n_scalars=config.n_scalars,
                hidden=head,
            )
            n_context = config.embedding_dim
        else:
            self.embedding = nn.Identity()
            n_context = n_features
        common = {
            "features": n_params,
            "context": n_context,
            "transforms": config.transforms,
            "hidden_features": config.hidden_features,
            "passes": config.passes,
        }
        if config.flow == "nsf":
            self.flow: zuko.flows.Flow = zuko.flows.NSF(bins=config.bins, **common)
        else:
            self.flow = zuko.flows.MAF(**common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context (batch, n_context) of standardised features ``x`` (batch, n_features)."""
        return self.embedding(x)


def build_estimator(config: NPEConfig, n_features: int, n_params: int) -> nn.Module:
    """One untrained ensemble member for ``n_features`` features and ``n_params`` parameters.

    Returns an ``nn.Module`` whose call maps standardised features (batch, n_features) to the flow's
    context, and whose ``flow`` attribute is the zuko flow: ``member.flow(member(x)).sample((n,))``.
    """
    return _Estimator(config, n_features, n_params)
