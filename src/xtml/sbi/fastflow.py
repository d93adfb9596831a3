r"""Fast sampling of zuko's masked autoregressive flows (MAF, NSF) by incremental MADE inversion.

A masked autoregressive transform maps :math:`x \mapsto y` with :math:`y_i = f(x_i; \phi_i(x_{<i}, c))`, where
the parameters :math:`\phi` of the univariate map :math:`f` (an affine map or a rational-quadratic spline)
come from a masked network (MADE) of the earlier features and the context :math:`c`. Sampling inverts it:
:math:`x_i = f^{-1}(y_i; \phi_i(x_{<i}, c))`. zuko runs one full network pass per sequential step
(``passes``: the number of parameters for a fully autoregressive transform) and recomputes the context part
of the first layer at each of them.

Here each transform is *compiled* (:func:`compile_transforms`) into stages. Feature :math:`i` gets the stage
:math:`s_i = 0` if it depends on no other feature and :math:`s_i = 1 + \max_{j \to i} s_j` otherwise; every
hidden unit gets the level :math:`\ell = 1 + \max s_j` over the features :math:`j` it depends on (0 for a
unit that only sees the context). Both are read from the ``MaskedLinear`` masks, so any order, coupling
(``passes=2``) or adjacency works. Units are sorted by level, features by stage, and at stage
:math:`t` only the units of level :math:`t` are computed (from the prefix of lower-level units, which is
all they are connected to), then the parameters of the stage-:math:`t` features, whose univariate maps are
inverted. Units of level 0 depend on the context only: for one observation they are computed once (on one
row) and folded into the biases of the next layer. The total cost is about half a network pass per
transform instead of ``passes`` full passes.

The samples run along the last, contiguous axis (zuko puts them first): each stage then writes contiguous
rows of the hidden buffers, and the spline's softmax, cumulative sum and bin search run over contiguous
samples instead of over 8 bins at a time. The members of an ensemble with the same architecture are
stacked on a leading axis and inverted together (batched matrix products), so that the Python overhead of
the ~25 sequential stages is paid once, not once per member.

PyTorch and zuko are optional: ``pip install "xtml[sbi]"``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, Literal

try:
    import torch
    import torch.nn.functional as F
    import zuko
    from torch import nn
    from zuko.flows.autoregressive import MaskedAutoregressiveTransform
    from zuko.flows.gaussianization import ElementWiseTransform
    from zuko.nn import MaskedLinear, MaskedMLP
    from zuko.transforms import MonotonicAffineTransform, MonotonicRQSTransform
    from zuko.utils import unpack
except ImportError as exc:  # pragma: no cover - optional dependencies
    raise ImportError(
        'xtml.sbi needs PyTorch and zuko, optional dependencies: pip install "xtml[sbi]"'
    ) from exc

__all__ = [
    "CompiledFlow",
    "MadeInverse",
    "UnsupportedFlowError",
    "compile_flow",
    "compile_flows",
    "compile_transforms",
    "invert_made",
    "weights_key",
]

# element-wise activations: anything else (e.g. zuko's residual blocks) is refused
_ACTIVATIONS = (
    nn.ReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.LeakyReLU,
    nn.Identity,
)


class UnsupportedFlowError(ValueError):
    """The flow (or one of its transforms) has a structure the fast sampler does not handle.

    Attributes
    ----------
    part : object
        The offending flow, transform or layer.
    """

    def __init__(self, part: object, msg: str) -> None:
        super().__init__(msg)
        self.part = part


@dataclass(frozen=True)
class MadeInverse:
    """One masked autoregressive transform of ``M`` stacked flows, compiled for stage-by-stage inversion.

    Built by :func:`compile_transforms`. Features are permuted so that stage ``t`` holds the permuted
    features ``feature_bounds[t]:feature_bounds[t + 1]``; the hidden units of each layer are sorted by level.

    Attributes
    ----------
    perm, inverse_perm : LongTensor of shape (D,)
        Features in stage order (``x_perm = x[:, perm]``) and back (``x = x_perm[:, inverse_perm]``).
    feature_bounds : tuple of int, length S + 1
        Start of each stage in the permuted features (0, ..., D).
    w_context : Tensor of shape (M, H_0, C) or None
        First layer, context columns (rows sorted by level).
    weights : tuple of Tensor
        Masked weights with rows sorted by level: ``weights[0]`` (M, H_0, D) holds the first layer's
        feature columns (in ``perm`` order), ``weights[l]`` (M, H_l, H_{l-1}) the following layers and
        ``weights[-1]`` the output layer (M, D T, H_L), its rows grouped by feature in ``perm`` order.
    biases : tuple of Tensor
        Biases (M, H_l) matching ``weights``.
    level_bounds : tuple of tuple of int
        Per hidden layer, the start of each level 0, ..., S in the sorted units (length S + 2).
    activations : tuple of nn.Module
        Activation after each hidden layer.
    univariate : callable
        zuko's univariate transform constructor (e.g. ``MonotonicRQSTransform``) taking the parameters.
    shapes : tuple of torch.Size
        Shapes of the univariate parameters; ``total`` = T numbers per feature.
    kind : {"rqs", "affine", "zuko"}
        Inversion of the univariate transform: zuko's rational-quadratic spline or affine map re-coded in
        the samples-last layout, or any other one through zuko's own class.
    options : dict
        ``bound`` and ``slope`` of the spline, ``slope`` of the affine map.
    """

    perm: torch.Tensor
    inverse_perm: torch.Tensor
    feature_bounds: tuple[int, ...]
    w_context: torch.Tensor | None
    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    level_bounds: tuple[tuple[int, ...], ...]
    activations: tuple[nn.Module, ...]
    univariate: Any
    shapes: tuple[torch.Size, ...]
    kind: Literal["rqs", "affine", "zuko"]
    options: dict[str, float]

    @property
    def total(self) -> int:
        """Number T of univariate parameters per feature."""
        return sum(prod(s) for s in self.shapes)

    @property
    def n_stages(self) -> int:
        """Number S of sequential stages of the inversion."""
        return len(self.feature_bounds) - 1


def _stages(depends: torch.Tensor) -> torch.Tensor:
    """Stage of each node of a DAG given ``depends[i, j]`` (i depends on j): 0 for a source, else
    1 + the largest stage of its parents. UnsupportedFlowError for a cycle."""
    stage = torch.zeros(depends.shape[0], dtype=torch.long)
    for _ in range(depends.shape[0] + 1):
        new = torch.where(depends, stage[None, :] + 1, 0).max(dim=1).values
        if torch.equal(new, stage):
            return stage
        stage = new
    raise UnsupportedFlowError(depends, "the autoregressive adjacency has a cycle")


def _levels(deps: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
    """Level of units with feature dependencies ``deps`` (H, D): 1 + largest stage, 0 if none."""
    return torch.where(deps, stage[None, :] + 1, 0).max(dim=1).values


def _unpartial(f: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """``(function, args, keywords)`` of a ``functools.partial`` (comparable, unlike partials)."""
    if isinstance(f, functools.partial):
        return f.func, f.args, dict(f.keywords)
    return f, (), {}


def _univariate_kind(transform: nn.Module) -> tuple[Literal["rqs", "affine", "zuko"], dict[str, float]]:
    """Recognise zuko's spline and affine constructors (possibly ``functools.partial``) and their options."""
    f, args, kwargs = _unpartial(transform.univariate)
    if args:
        return "zuko", {}
    shapes = [tuple(s) for s in transform.shapes]
    for cls, kind, names in (
        (MonotonicRQSTransform, "rqs", ("bound", "slope")),
        (MonotonicAffineTransform, "affine", ("slope",)),
    ):
        if f is not cls or not set(kwargs) <= set(names):
            continue
        if kind == "rqs" and not (
            len(shapes) == 3 and shapes[0] == shapes[1] and shapes[2] == (shapes[0][0] - 1,)
        ):
            continue
        if kind == "affine" and shapes != [(), ()]:
            continue
        defaults = inspect.signature(cls).parameters
        return kind, {name: float(kwargs.get(name, defaults[name].default)) for name in names}
    return "zuko", {}


def _layers(transform: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """The masked linear layers and activations of a transform's network; UnsupportedFlowError if it is
    not a masked autoregressive transform with a plain (linear, activation, ..., linear) MaskedMLP."""
    if not isinstance(transform, MaskedAutoregressiveTransform) or not isinstance(transform.hyper, MaskedMLP):
        raise UnsupportedFlowError(transform, f"not a masked autoregressive transform: {type(transform)}")
    layers = list(transform.hyper)
    linears, activations = layers[0::2], layers[1::2]
    if (
        len(linears) != len(activations) + 1
        or not all(type(layer) is MaskedLinear for layer in linears)
        or not all(isinstance(a, _ACTIVATIONS) for a in activations)
    ):
        raise UnsupportedFlowError(transform.hyper, "the masked network is not linear/activation layers")
    return linears, activations


def compile_transforms(transforms: Sequence[nn.Module]) -> MadeInverse:
    """Compile the same :class:`zuko.flows.MaskedAutoregressiveTransform` of ``M`` flows for inversion.

    Parameters
    ----------
    transforms : sequence of MaskedAutoregressiveTransform
        One lazy transform per flow, all with the same masks and univariate map (e.g. the members of an
        ensemble). Each network must be a plain :class:`zuko.nn.MaskedMLP`: masked linear layers and
        element-wise activations, no residual blocks.

    Returns
    -------
    MadeInverse
        Detached copies of the masked weights, permuted and stacked; later changes are not seen.

    Raises
    ------
    UnsupportedFlowError
        For any other transform or network, or transforms of different structures.
    """
    first = transforms[0]
    linears, activations = _layers(first)
    kind, options = _univariate_kind(first)
    for other in transforms[1:]:
        other_linears, _ = _layers(other)
        if (
            len(other_linears) != len(linears)
            or not all(torch.equal(a.mask, b.mask) for a, b in zip(linears, other_linears, strict=True))
            or [repr(a) for a in _layers(other)[1]] != [repr(a) for a in activations]
            or _univariate_kind(other) != (kind, options)
            or (kind == "zuko" and _unpartial(other.univariate) != _unpartial(first.univariate))
        ):
            raise UnsupportedFlowError(other, "the flows to stack have different structures")
    total = int(first.total)
    n_out, n_in = linears[-1].out_features, linears[0].in_features
    d = n_out // total
    if n_out != d * total or n_in < d:
        raise UnsupportedFlowError(first, "the masked network does not match the univariate parameters")
    with torch.no_grad():
        masks = [layer.mask.to(torch.float64) for layer in linears]
        deps = [masks[0][:, :d] > 0]
        for mask in masks[1:]:
            deps.append((mask @ deps[-1].to(torch.float64)) > 0)
        feature_deps = deps[-1].view(d, total, d).any(dim=1)  # (D, D): feature i depends on feature j
        if feature_deps.diagonal().any():
            raise UnsupportedFlowError(first, "a feature's parameters depend on the feature itself")
        stage = _stages(feature_deps)
        n_stages = int(stage.max()) + 1
        perm = torch.sort(stage, stable=True).indices
        feature_bounds = tuple(int(b) for b in torch.searchsorted(stage[perm], torch.arange(n_stages + 1)))
        weights, biases, bounds = [], [], []
        w_context = None
        cols = perm
        for i in range(len(linears)):
            if i < len(linears) - 1:
                level = _levels(deps[i], stage)
                rows = torch.sort(level, stable=True).indices
                bounds.append(
                    tuple(int(v) for v in torch.searchsorted(level[rows], torch.arange(n_stages + 2)))
                )
            else:
                rows = (perm[:, None] * total + torch.arange(total)).reshape(-1)
                out_level = _levels(deps[i], stage)[rows].view(d, total).max(dim=1).values
                if bool((out_level > stage[perm]).any()):
                    raise UnsupportedFlowError(first, "output parameters depend on later features")
            layer_weights = [t.hyper[2 * i] for t in transforms]
            w = torch.stack([(layer.mask * layer.weight)[rows] for layer in layer_weights])
            biases.append(
                torch.stack(
                    [
                        layer.bias[rows] if layer.bias is not None else torch.zeros(len(rows), dtype=w.dtype)
                        for layer in layer_weights
                    ]
                )
            )
            if i == 0 and n_in > d:
                w_context = w[:, :, d:].contiguous()
            weights.append(w[:, :, cols].contiguous())
            cols = rows
    return MadeInverse(
        perm=perm,
        inverse_perm=torch.argsort(perm),
        feature_bounds=feature_bounds,
        w_context=w_context,
        weights=tuple(weights),
        biases=tuple(biases),
        level_bounds=tuple(bounds),
        activations=tuple(activations),
        univariate=first.univariate,
        shapes=tuple(torch.Size(s) for s in first.shapes),
        kind=kind,
        options=options,
    )


def _rqs_solve(
    y: torch.Tensor,
    x0: torch.Tensor,
    dx: torch.Tensor,
    y0: torch.Tensor,
    dy: torch.Tensor,
    d0: torch.Tensor,
    d1: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    r"""Invert one rational-quadratic bin (zuko's ``MonotonicRQSTransform._inverse``, same formulas).

    The bin spans ``[x0, x0 + dx]`` onto ``[y0, y0 + dy]`` with knot derivatives ``d0`` and ``d1``; the
    root of the quadratic :math:`a z^2 + b z + c = 0` is taken in the stable form
    :math:`z = 2 c / (-b - \sqrt{b^2 - 4 a c})`. Outside the spline's domain (``mask`` false) the map is
    the identity.
    """
    s = dy / dx
    y_ = y - y0  # zuko also zeroes it outside the domain (for its gradients); the lanes are discarded here
    dds = torch.add(d0, d1).sub_(s, alpha=2)
    a = torch.addcmul(dy * (s - d0), y_, dds)
    b = torch.addcmul(dy * d0, y_, dds, value=-1)
    c = s.mul_(y_)  # -c in zuko's notation
    z = (2 * c).div_(torch.addcmul(b * b, a, c, value=4).sqrt_().add_(b))
    return torch.where(mask, torch.addcmul(x0, z, dx), y)


def _rqs_inverse_shared(phi: torch.Tensor, y: torch.Tensor, bound: float, slope: float) -> torch.Tensor:
    """Inverse of ``g`` splines each shared by all samples: ``phi`` (g, 3 K - 1, 1), ``y`` (g, n).

    The knots are built once by zuko's ``MonotonicRQSTransform`` itself; the bins are then found with
    :func:`torch.searchsorted` and read with :func:`torch.gather` from the (g, K + 1) knot tables.
    """
    bins = (phi.shape[1] + 1) // 3
    spline = MonotonicRQSTransform(
        phi[:, :bins, 0], phi[:, bins : 2 * bins, 0], phi[:, 2 * bins :, 0], bound=bound, slope=slope
    )
    k = torch.searchsorted(spline.vertical.contiguous(), y.contiguous()) - 1  # zuko: sum(knots < y) - 1
    mask = (k >= 0) & (k < bins)
    k = k % bins
    x0, x1 = torch.gather(spline.horizontal, 1, k), torch.gather(spline.horizontal, 1, k + 1)
    y0, y1 = torch.gather(spline.vertical, 1, k), torch.gather(spline.vertical, 1, k + 1)
    d0, d1 = torch.gather(spline.derivatives, 1, k), torch.gather(spline.derivatives, 1, k + 1)
    return _rqs_solve(y, x0, x1 - x0, y0, y1 - y0, d0, d1, mask)


def _rqs_inverse(phi: torch.Tensor, y: torch.Tensor, bins: int, bound: float, slope: float) -> torch.Tensor:
    r"""Inverse of zuko's ``MonotonicRQSTransform`` with the samples along the last axis.

    ``phi`` (g, 3 K - 1, n) holds the unconstrained widths, heights and inner derivatives of the splines
    of ``g`` features, one per sample, and ``y`` (g, n) the points. The parameterisation is zuko's:
    :math:`w \to w / (1 + |2 w / \log s|)`, softmax, knots :math:`B (2\,\mathrm{cumsum} - 1)` on
    :math:`[-B, B]`, derivatives :math:`\exp(d / (1 + |d / \log s|))` (1 at the ends). The layout
    differs: zuko keeps the bins last, where softmax, cumsum and the bin search over 8 numbers run ~3
    times slower than here, with the bins on axis 1 and the samples contiguous. The softmax needs no
    maximum (the soft-clipped logits lie within :math:`\pm \log(1/s)/2`), the bin of ``y`` is found by
    comparing cumulative heights with ``y`` rescaled (not the knots with ``y``), and only the bin's own
    widths and derivatives are gathered and transformed.
    """
    g, n = phi.shape[0], y.shape[-1]
    wh = phi[:, : 2 * bins]
    e = wh.abs().mul_(2 / abs(math.log(slope))).add_(1)
    e = torch.div(wh, e, out=e).exp_().view(g, 2, bins, n)  # unnormalised widths, heights
    z = e.sum(dim=2, keepdim=True)  # (g, 2, 1, n)
    cs = torch.cumsum(e, dim=2)
    y = y[:, None, :]
    k = (cs[:, 1] < (y / bound + 1) * (0.5 * z[:, 1])).sum(dim=1, keepdim=True)  # bin of y (g, 1, n)
    mask = (y > -bound) & (k < bins)
    k = k.clamp_(max=bins - 1)
    kk = k[:, None].expand(g, 2, 1, n)
    ek = torch.gather(e, 2, kk)
    scale = (2 * bound) / z
    lower = (torch.gather(cs, 2, kk) - ek).mul_(scale).sub_(bound)  # left knots x0, y0
    size = ek.mul_(scale)  # bin sizes dx, dy
    d = F.pad(phi[:, 2 * bins :], (0, 0, 1, 1))
    d = torch.gather(d, 1, torch.cat((k, k + 1), dim=1))
    d0, d1 = torch.exp(d / (1 + (d / math.log(slope)).abs())).unbind(1)
    x0, y0 = lower[:, :, 0].unbind(1)
    dx, dy = size[:, :, 0].unbind(1)
    return _rqs_solve(y[:, 0], x0, dx, y0, dy, d0, d1, mask[:, 0])


def _affine_inverse(phi: torch.Tensor, y: torch.Tensor, slope: float) -> torch.Tensor:
    r"""Inverse of zuko's ``MonotonicAffineTransform`` (shift, unconstrained scale in ``phi`` (g, 2, B))
    at ``y`` (g, n): :math:`x = (y - b) / \exp(a / (1 + |a / \log s|))`."""
    shift, scale = phi[:, 0], phi[:, 1]
    log_scale = scale / (1 + (scale / math.log(slope)).abs())
    return (y - shift) / log_scale.exp()


def _zuko_inverse(made: MadeInverse, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Any other univariate transform, through zuko: ``phi`` (g, T, B), ``y`` (g, n) -> (g, n)."""
    params = unpack(phi.permute(2, 0, 1), made.shapes)
    return made.univariate(*params).inv(y.t()).t()


def _univariate_inverse(made: MadeInverse, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Invert the univariate maps of stacked features: ``phi`` (M, g T, B), ``y`` (M, g, n) -> (M, g, n)."""
    m, g, n = y.shape
    phi = phi.reshape(m * g, made.total, phi.shape[-1])
    y = y.reshape(m * g, n)
    if made.kind == "rqs" and phi.shape[-1] == 1:
        x = _rqs_inverse_shared(phi, y, made.options["bound"], made.options["slope"])
    elif made.kind == "rqs":
        x = _rqs_inverse(phi, y, made.shapes[0][0], made.options["bound"], made.options["slope"])
    elif made.kind == "affine":
        x = _affine_inverse(phi, y, made.options["slope"])
    else:
        x = _zuko_inverse(made, phi, y)
    return x.view(m, g, n)


def _linear(bias: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``bias + w @ x`` for stacked (M, ...) operands; ``baddbmm`` copies a broadcast bias first and is
    ~30 % slower than ``addmm`` for one flow, or than ``bmm`` then an in-place addition."""
    if w.shape[0] == 1:
        return torch.addmm(bias[0], w[0], x[0])[None]
    return torch.bmm(w, x).add_(bias)


def _activate(activation: nn.Module, h: torch.Tensor) -> None:
    if isinstance(activation, nn.ReLU):
        torch.relu_(h)
    else:
        h.copy_(activation(h))


def invert_made(made: MadeInverse, y: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    r"""Inverse :math:`x = f^{-1}(y \mid c)` of a compiled masked autoregressive transform.

    Parameters
    ----------
    made : MadeInverse
        The compiled transform of ``M`` stacked flows.
    y : Tensor of shape (M, D, n)
        Points to invert, samples along the last axis.
    context : Tensor of shape (M, C, 1) or (M, C, n), or None
        One context per flow shared by all its points (the fast case: everything that depends on the
        context only is computed once) or one per point; None for an unconditional transform.

    Returns
    -------
    Tensor of shape (M, D, n)
    """
    n_layers = len(made.weights) - 1  # hidden layers
    bounds = made.level_bounds
    # context-only part: the first layer's context term and all level-0 units, folded into the biases
    if made.w_context is not None and context is not None:
        pre = torch.baddbmm(made.biases[0][:, :, None], made.w_context, context)
    else:
        pre = made.biases[0][:, :, None]
    h0 = pre[:, :0]  # level-0 units of the layer below
    const = []  # per layer: bias (M, H_l - n0_l, B) of the level >= 1 units, level-0 inputs folded in
    for i in range(n_layers + 1):
        if i > 0:
            n0 = bounds[i - 1][1]
            bias = made.biases[i][:, :, None]
            pre = torch.baddbmm(bias, made.weights[i][:, :, :n0], h0) if n0 else bias
        if i < n_layers:
            n0 = bounds[i][1]
            h0 = made.activations[i](pre[:, :n0])
            const.append(pre[:, n0:])
        else:
            const.append(pre)
    m, _, n = y.shape
    yp = torch.index_select(y, 1, made.perm)
    xp = torch.empty_like(yp)
    hidden = [
        torch.empty((m, made.weights[i].shape[1] - bounds[i][1], n), dtype=y.dtype) for i in range(n_layers)
    ]
    fb, t_total = made.feature_bounds, made.total
    for t in range(made.n_stages):
        rows = slice(fb[t] * t_total, fb[t + 1] * t_total)
        phi = const[-1][:, rows]
        for i in range(n_layers + 1 if t > 0 else 0):  # level 0 is folded into the biases
            if i < n_layers:  # the units of level t
                n0 = bounds[i][1]
                rows = slice(bounds[i][t], bounds[i][t + 1])
                dest = slice(bounds[i][t] - n0, bounds[i][t + 1] - n0)
                if rows.stop == rows.start:
                    continue
            else:  # the parameters of the stage-t features
                rows = dest = slice(fb[t] * t_total, fb[t + 1] * t_total)
            if i == 0:  # inputs: the features of the earlier stages
                inp, cols = xp[:, : fb[t]], slice(0, fb[t])
            else:  # inputs: the units of level 1..t of the layer below
                lo = bounds[i - 1][1]
                inp, cols = hidden[i - 1][:, : bounds[i - 1][t + 1] - lo], slice(lo, bounds[i - 1][t + 1])
            if i < n_layers:
                h = hidden[i][:, dest]
                torch.bmm(made.weights[i][:, rows, cols], inp, out=h)
                h += const[i][:, dest]
                _activate(made.activations[i], h)
            else:
                phi = _linear(const[i][:, dest], made.weights[i][:, rows, cols], inp)
        xp[:, fb[t] : fb[t + 1]] = _univariate_inverse(made, phi, yp[:, fb[t] : fb[t + 1]])
    return torch.index_select(xp, 1, made.inverse_perm)


@dataclass(frozen=True)
class CompiledFlow:
    """``M`` zuko MAFs or NSFs of one architecture, compiled for fast sampling (:func:`compile_flows`).

    Attributes
    ----------
    steps : tuple
        The flows' transforms, first to last: a :class:`MadeInverse` (all flows stacked), or a tuple of
        ``M`` zuko ``ElementWiseTransform`` (what zuko builds for a single feature), inverted through zuko.
    loc, scale : Tensor of shape (M, D)
        Mean and standard deviation of each flow's diagonal normal base distribution.
    """

    steps: tuple[MadeInverse | tuple[nn.Module, ...], ...]
    loc: torch.Tensor
    scale: torch.Tensor

    @property
    def n_flows(self) -> int:
        """Number M of stacked flows."""
        return int(self.loc.shape[0])

    @property
    def n_features(self) -> int:
        """Number D of features of the flows."""
        return int(self.loc.shape[1])

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Map base points to the data space: zuko's ``flow(c).transform.inv(z)`` for each flow.

        Parameters
        ----------
        z : Tensor of shape (M, n, D), or (n, D) when M = 1
            Points of the base space.
        context : Tensor of shape (C,) (shared by all), (M, C) or (M, 1, C) (one per flow), (M, n, C)
            (one per point), or None for unconditional flows. For (n, D) points the flow axis of the
            context is left out too: (C,), (1, C) or (n, C).

        Returns
        -------
        Tensor of the shape of ``z``
            Computed under :func:`torch.inference_mode` (no gradients).
        """
        single = z.ndim == 2
        if single:
            z = z[None]
        if context is not None:
            if context.ndim == 1:  # one context for every flow and point
                context = context.expand(self.n_flows, 1, -1)
            elif single:
                context = context[None]
            if context.ndim == 2:  # one context per flow
                context = context[:, None, :]
        if z.shape[0] != self.n_flows or z.shape[2] != self.n_features:
            raise ValueError(
                f"z must have shape ({self.n_flows}, n, {self.n_features}); got {tuple(z.shape)}"
            )
        with torch.inference_mode():
            xt = z.transpose(1, 2).contiguous()  # (M, D, n): samples last
            ct = None if context is None else context.transpose(1, 2).contiguous()
            for step in reversed(self.steps):
                if isinstance(step, MadeInverse):
                    xt = invert_made(step, xt, ct)
                else:
                    xt = torch.stack(
                        [
                            t(None if context is None else context[k]).inv(xt[k].t()).t()
                            for k, t in enumerate(step)
                        ]
                    )
            x = xt.transpose(1, 2).contiguous()
        return x[0] if single else x

    def sample(
        self, n: int, context: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` samples (M, n, D) from each flow: normal noise from ``generator`` (drawn as zuko's
        ``flow(c).sample((n,))`` draws it from the global generator) mapped by :meth:`inverse`.
        ``context`` is (C,) (shared by all flows), (M, C), (M, n, C) or None."""
        eps = torch.randn((self.n_flows, n, self.n_features), generator=generator, dtype=self.loc.dtype)
        return self.inverse(eps * self.scale[:, None, :] + self.loc[:, None, :], context)


def compile_flows(flows: Sequence[nn.Module]) -> CompiledFlow:
    """Compile ``M`` zuko :class:`~zuko.flows.MAF` or :class:`~zuko.flows.NSF` of one architecture.

    Parameters
    ----------
    flows : sequence of zuko.flows.Flow
        Flows whose transforms are masked autoregressive transforms (any order, ``passes`` or
        adjacency; element-wise transforms for one feature) and whose base is a diagonal normal, all with
        the same masks (e.g. the members of an ensemble: they differ only in their weights).

    Returns
    -------
    CompiledFlow
        Holds detached copies of the weights: compile again after training (see :func:`weights_key`).

    Raises
    ------
    UnsupportedFlowError
        For other flows (residual masked networks, other transforms or base distributions) or flows of
        different architectures.
    """
    flows = list(flows)
    if not flows:
        raise ValueError("flows must hold at least one flow")
    chains = []
    for flow in flows:
        if not isinstance(flow, zuko.flows.Flow):
            raise UnsupportedFlowError(flow, f"not a zuko flow: {type(flow)}")
        transforms = getattr(flow.transform, "transforms", None)
        chains.append(list(transforms) if transforms is not None else [flow.transform])
    if len({len(chain) for chain in chains}) != 1:
        raise UnsupportedFlowError(flows, "the flows have different numbers of transforms")
    steps: list[MadeInverse | tuple[nn.Module, ...]] = []
    for parts in zip(*chains, strict=True):
        if all(isinstance(t, ElementWiseTransform) for t in parts):
            steps.append(tuple(parts))
        else:
            steps.append(compile_transforms(parts))
    locs, scales = [], []
    for flow in flows:
        base = flow.base()
        if not isinstance(base, zuko.distributions.DiagNormal):
            raise UnsupportedFlowError(base, f"the base distribution is not a DiagNormal: {base}")
        locs.append(base.base_dist.loc.detach())
        scales.append(base.base_dist.scale.detach())
    if len({loc.shape for loc in locs}) != 1:
        raise UnsupportedFlowError(flows, "the flows have different numbers of features")
    return CompiledFlow(tuple(steps), torch.stack(locs), torch.stack(scales))


def compile_flow(flow: nn.Module) -> CompiledFlow:
    """Compile one zuko :class:`~zuko.flows.MAF` or :class:`~zuko.flows.NSF` for fast sampling.

    Same as ``compile_flows([flow])``; the result also takes and returns unstacked (n, D) points.

    Examples
    --------
    >>> import torch, zuko
    >>> flow = zuko.flows.NSF(3, context=4)
    >>> c, z = torch.randn(4), torch.randn(100, 3)
    >>> x = compile_flow(flow).inverse(z, c)
    >>> bool(torch.allclose(x, flow(c).transform.inv(z), atol=1e-4))
    True
    """
    return compile_flows([flow])


def weights_key(module: nn.Module) -> tuple[int, ...]:
    """A key of the current weights of ``module``: it changes when a parameter or buffer is replaced or
    modified in place (through the tensors' version counters), so a cached :class:`CompiledFlow` can be
    checked against it before use."""
    tensors = itertools.chain(module.parameters(), module.buffers())
    return tuple(v for t in tensors for v in (t.data_ptr(), t._version))
