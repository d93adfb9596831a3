"""Permutation importance of frequency bands: which part of the spectrum a fitted model relies on.

scikit-learn's :func:`sklearn.inspection.permutation_importance` permutes one input column at a time. On a
spectrum the columns are ~100 correlated frequency bins, and permuting one bin barely moves a model that
reads its neighbours: the answer is noise. Here adjacent bins are permuted **together** (the same row
permutation for every column of a band, so that a band keeps its internal shape but is moved to another
observation), and the importance of the band is the mean drop of the score over ``n_repeats`` permutations
(Breiman 2001; Fisher, Rudin & Dominici 2019 for grouped importance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BandImportance", "band_groups", "grouped_permutation_importance"]


@dataclass(frozen=True)
class BandImportance:
    """Mean and standard deviation of the score drop per group, with the group names and the base score."""

    names: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    baseline: float


def band_groups(
    freq: ArrayLike, n_bands: int = 12, *, extra: Sequence[str] = ("mean rate",)
) -> tuple[list[NDArray[np.int64]], list[str]]:
    """Column groups of an input row ``[power per bin..., extra...]``: ``n_bands`` log-spaced bands.

    Returns the column indices of each group and its name (e.g. ``"1.2-2.5 Hz"``); each extra column
    (after the bins) is a group of its own.
    """
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 1 or f.size < 1 or np.any(f <= 0):
        raise ValueError(f"freq must be a 1-D array of positive frequencies; got shape {f.shape}")
    n_bands = max(1, min(int(n_bands), f.size))
    edges = np.geomspace(f[0], f[-1] * (1 + 1e-9), n_bands + 1)
    idx = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, n_bands - 1)
    groups, names = [], []
    for b in range(n_bands):
        cols = np.flatnonzero(idx == b)
        if cols.size:
            groups.append(cols)
            names.append(f"{f[cols[0]]:.3g}-{f[cols[-1]]:.3g} Hz")
    for k, name in enumerate(extra):
        groups.append(np.array([f.size + k]))
        names.append(name)
    return groups, names


def grouped_permutation_importance(
    score_fn: Callable[[NDArray[np.float64]], float],
    X: ArrayLike,
    groups: Sequence[ArrayLike],
    *,
    names: Sequence[str] | None = None,
    n_repeats: int = 3,
    rng: np.random.Generator | int | None,
) -> BandImportance:
    """Drop of ``score_fn(X)`` when the columns of each group are permuted together across rows.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(X) -> float``, larger is better (e.g. the ROC-AUC of the model's scores on ``X``
        against fixed labels).
    X : array-like of shape (n, n_features)
    groups : sequence of array-like of int
        Column indices of each group.
    names : sequence of str, optional
        Group names (default "group k").
    n_repeats : int, default=3
        Permutations per group.
    rng : Generator, int or None
        Source of the permutations.
    """
    x = np.array(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"X must have shape (n >= 2, n_features); got shape {x.shape}")
    cols = [np.asarray(g, dtype=np.int64).reshape(-1) for g in groups]
    for k, c in enumerate(cols):
        if c.size == 0 or c.min() < 0 or c.max() >= x.shape[1]:
            raise ValueError(f"group {k} holds columns outside [0, {x.shape[1]}): {c[:5].tolist()}")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1; got {n_repeats}")
    gen = np.random.default_rng(rng)
    base = float(score_fn(x))
    drops = np.empty((len(cols), n_repeats))
    for k, c in enumerate(cols):
        saved = x[:, c].copy()
        for r in range(n_repeats):
            x[:, c] = saved[gen.permutation(x.shape[0])]
            drops[k, r] = base - float(score_fn(x))
        x[:, c] = saved
    labels = tuple(names) if names is not None else tuple(f"group {k}" for k in range(len(cols)))
    if len(labels) != len(cols):
        raise ValueError(f"{len(labels)} names for {len(cols)} groups")
    return BandImportance(names=labels, mean=drops.mean(axis=1), std=drops.std(axis=1), baseline=base)
