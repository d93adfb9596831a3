"""Diagnostic plots of data sets, outliers, residuals and posterior calibration (``ax=None`` style).

Every function takes plain arrays, draws on ``ax`` / ``fig`` (or a new figure made with
:mod:`matplotlib.pyplot`) and returns it; matplotlib is imported only when a plot is drawn.

* :func:`plot_embedding`: a 2-D PCA or t-SNE map of feature rows, coloured by a label or by domain
  ("simulated" against "real"), to see whether classes separate and whether real data sit inside the
  simulations.
* :func:`plot_outliers`: the spectra with the largest scores (e.g. scope-gate scores), with their models
  and residuals.
* :func:`plot_residuals`: standardised residuals of spectra against their model.
* :func:`plot_coverage`, :func:`plot_sbc_ranks`: calibration of a posterior over many simulated
  observations, with the binomial scatter expected of a calibrated posterior.
* :func:`plot_posterior_corner`: a corner plot of posterior draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_coverage",
    "plot_embedding",
    "plot_outliers",
    "plot_posterior_corner",
    "plot_residuals",
    "plot_sbc_ranks",
]

FloatArray = NDArray[np.float64]

#: Largest number of distinct values of an integer or string ``color`` drawn as categories (with a legend).
MAX_CATEGORIES = 12

_METHODS = ("pca", "tsne")


def _axes(ax: Axes | None, size: tuple[float, float] = (5.2, 4.4)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size).add_subplot()


def _figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size)


def _finite(x: ArrayLike, name: str, ndim: int | tuple[int, ...]) -> FloatArray:
    """``x`` as a float array with ``ndim`` dimensions and finite values, or a ValueError naming it."""
    a = np.asarray(x, dtype=np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(a)))} non-finite values")
    return a


def _m_grid(m: float | ArrayLike, shape: tuple[int, int], name: str = "m") -> FloatArray:
    """``m`` (powers averaged per bin) broadcast to the spectra's shape ``(n, n_freq)``.

    A scalar, a per-frequency array ``(n_freq,)`` as in :class:`~xtml.timing.PowerSpectrum`, or any
    array that broadcasts to ``(n, n_freq)`` (e.g. a per-spectrum column ``(n, 1)``).
    """
    a = np.asarray(m, dtype=np.float64)
    try:
        out = np.broadcast_to(a, shape)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar, shape ({shape[1]},) per frequency or broadcast to {shape}; "
            f"got shape {a.shape}"
        ) from None
    if not np.all(np.isfinite(out) & (out > 0)):
        raise ValueError(f"{name} must be positive and finite, got {a[~(np.isfinite(a) & (a > 0))][:5]}")
    return out


def _grid(n_panels: int, max_cols: int = 4) -> tuple[int, int]:
    n_cols = min(n_panels, max_cols)
    return math.ceil(n_panels / n_cols), n_cols


# ----------------------------------------------------------------------------- embedding


def _categories(values: NDArray[np.generic]) -> NDArray[np.generic] | None:
    """The distinct values in order of first appearance if ``values`` is categorical, else None."""
    kind = values.dtype.kind
    _, first = np.unique(values, return_index=True)
    n_unique = len(first)
    if kind in "biu" and n_unique <= MAX_CATEGORIES:
        return values[np.sort(first)]
    if kind in "USOb":
        if n_unique > MAX_CATEGORIES:
            raise ValueError(
                f"color has {n_unique} distinct non-numeric values; at most {MAX_CATEGORIES} categories "
                "can be drawn (pass numbers for a colour bar)"
            )
        return values[np.sort(first)]
    if kind in "fiu":
        return None
    raise ValueError(f"color must hold numbers, strings or booleans, got dtype {values.dtype}")


def plot_embedding(
    features: ArrayLike,
    *,
    color: ArrayLike | None = None,
    color_name: str = "label",
    method: Literal["pca", "tsne"] = "pca",
    max_points: int = 2000,
    random_state: int = 0,
    n_threads: int | None = 1,
    ax: Axes | None = None,
) -> Axes:
    """Two-dimensional map of the rows of ``features``, coloured by a label, a domain or a number.

    The features are standardised (zero mean, unit variance per column) and projected on their first
    two principal components (``"pca"``, :class:`sklearn.decomposition.PCA`; the axis labels give the
    explained variance), or embedded by t-SNE (``"tsne"``, :class:`sklearn.manifold.TSNE` with
    ``init="pca"`` and perplexity :math:`\\min(30, n/4)`; distances between clusters are not meaningful
    in t-SNE, only which points are neighbours).

    If there are more than ``max_points`` rows, a subset of ``max_points`` rows is drawn, chosen without
    replacement by ``np.random.default_rng(random_state)`` (deterministic).  PCA is fitted on all rows;
    t-SNE only sees the subset.

    Parameters
    ----------
    features : array_like, shape (n, d)
        One row per example, ``n >= 3`` and ``d >= 2``; finite.
    color : array_like, shape (n,), optional
        Categorical (strings, booleans, or integers with at most 12 distinct values; one colour per
        category and a legend, in order of first appearance) or continuous (other numbers; a colour bar).
        For example the class label, or ``"simulated"`` / ``"real"`` for the domain.
    color_name : str
        Title of the legend or label of the colour bar.
    method : {"pca", "tsne"}
    max_points : int
        Largest number of points drawn.
    random_state : int
        Seed of the subsampling and of t-SNE.
    n_threads : int or None
        BLAS / OpenMP threads while embedding (``threadpoolctl``); None leaves them alone.  The default 1
        is deliberate, as for :func:`xtml.sbi.comparisons.c2st`: on a shared, busy two-core machine the
        spin-waiting OpenMP threads of t-SNE took 14-33 s for 200 points, one thread 1-3 s.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        One ``PathCollection`` per category (or a single one), whose offsets are the embedded points.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    x = _finite(features, "features", 2)
    n, d = x.shape
    if n < 3 or d < 2:
        raise ValueError(f"features must have at least 3 rows and 2 columns, got shape {x.shape}")
    if int(max_points) != max_points or max_points < 3:
        raise ValueError(f"max_points must be an integer >= 3, got {max_points!r}")
    if n_threads is not None and (int(n_threads) != n_threads or n_threads < 1):
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    c = None
    if color is not None:
        c = np.asarray(color)
        if c.shape != (n,):
            raise ValueError(f"color must have shape ({n},) like the rows of features, got shape {c.shape}")
        if c.dtype.kind in "fc" and not np.all(np.isfinite(c)):
            raise ValueError("color has non-finite values")

    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)
    with threadpool_limits(limits=n_threads):
        z = StandardScaler().fit_transform(x)
        if method == "pca":
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2, random_state=random_state).fit(z)
            xy = pca.transform(z[rows])
            ratio = pca.explained_variance_ratio_
            labels = (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%} of variance)")
        else:
            from sklearn.manifold import TSNE

            tsne = TSNE(
                n_components=2,
                perplexity=min(30.0, len(rows) / 4),
                learning_rate="auto",
                init="pca",
                random_state=random_state,
            )
            xy = tsne.fit_transform(z[rows])
            labels = ("t-SNE 1", "t-SNE 2")

    ax = _axes(ax)
    style = {"s": 6, "alpha": 0.6, "linewidths": 0}
    if c is None:
        ax.scatter(xy[:, 0], xy[:, 1], color="C0", **style)
    else:
        c = c[rows]
        cats = _categories(c)
        if cats is None:
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=c.astype(np.float64), cmap="viridis", **style)
            ax.figure.colorbar(sc, ax=ax, label=color_name)
        else:
            for k, cat in enumerate(cats):
                sel = c == cat
                ax.scatter(xy[sel, 0], xy[sel, 1], color=f"C{k % 10}", label=str(cat), **style)
            ax.legend(title=color_name, fontsize=8, title_fontsize=8, markerscale=2)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{'PCA' if method == 'pca' else 't-SNE'} of {len(rows)} rows", fontsize=9)
    return ax


# ----------------------------------------------------------------------------- spectra


def _spectra(freq: ArrayLike, power: ArrayLike, name: str = "power") -> tuple[FloatArray, FloatArray]:
    f = _finite(freq, "freq", 1)
    p = _finite(power, name, (1, 2))
    if p.shape[-1] != f.size:
        raise ValueError(f"{name} has {p.shape[-1]} frequency bins (shape {p.shape}) but freq has {f.size}")
    if np.any(f <= 0):
        raise ValueError(f"freq must be positive for a log axis, got minimum {f.min()}")
    return f, p


def plot_outliers(
    freq: ArrayLike,
    power: ArrayLike,
    m: float | ArrayLike,
    scores: ArrayLike,
    *,
    model: ArrayLike | None = None,
    k: int = 4,
    names: Sequence[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """The ``k`` spectra with the largest ``scores`` (for instance scope-gate scores), largest first.

    Each panel shows a spectrum as points with 1-sigma errors :math:`P / \\sqrt{m}` on log-log axes, its
    model if given, and the row name and score in the title.  With a model, a small axis below shows the
    residuals :math:`(P - M) / (P / \\sqrt{m})`.

    Parameters
    ----------
    freq : array_like, shape (n_freq,)
        Frequencies [Hz], positive.
    power : array_like, shape (n, n_freq)
        Powers, positive (log axis).
    m : float or array_like of shape (n_freq,) or broadcastable to (n, n_freq)
        Number of averaged periodograms (and frequency bins) per power.
    scores : array_like, shape (n,)
        Larger means more outlying; NaN scores are ranked last.
    model : array_like, shape (n, n_freq), optional
        Expected powers, drawn as lines.
    k : int
        Number of panels, at most ``n``.
    names : sequence of str, optional
        Names of the rows; default ``"row i"``.
    fig : matplotlib Figure, optional
        An empty figure to draw on.

    Returns
    -------
    matplotlib Figure
        ``fig.axes`` holds, panel by panel from the largest score, the spectrum axes followed by its
        residual axes (if ``model`` is given).
    """
    f, p = _spectra(freq, power)
    if p.ndim != 2:
        raise ValueError(f"power must be 2-D (n, n_freq), got shape {p.shape}")
    n = p.shape[0]
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), one per row of power, got shape {s.shape}")
    if np.any(p <= 0):
        raise ValueError(f"power must be positive for a log axis, got minimum {p.min()}")
    mm = _m_grid(m, p.shape)
    mod = None
    if model is not None:
        mod = _finite(model, "model", 2)
        if mod.shape != p.shape:
            raise ValueError(f"model must have the shape of power {p.shape}, got shape {mod.shape}")
    if names is not None and len(names) != n:
        raise ValueError(f"names must have {n} entries, one per row of power, got {len(names)}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), n)

    order = np.argsort(np.where(np.isnan(s), np.inf, -s), kind="stable")[:k]
    n_rows, n_cols = _grid(k)
    fig = _figure(fig, (3.6 * n_cols, 3.4 * n_rows))
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.45, wspace=0.3)
    for panel, i in enumerate(order):
        cell = outer[panel // n_cols, panel % n_cols]
        err = p[i] / np.sqrt(mm[i])
        if mod is None:
            ax = fig.add_subplot(cell)
        else:
            inner = cell.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
            ax = fig.add_subplot(inner[0])
        ax.errorbar(f, p[i], yerr=err, fmt=".", ms=3, lw=0.6, color="C0")
        if mod is not None:
            ax.plot(f, mod[i], color="C3", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("power", fontsize=8)
        ax.tick_params(labelsize=7)
        name = f"row {i}" if names is None else names[i]
        ax.set_title(f"{name}: score {s[i]:.3g}", fontsize=9)
        if mod is None:
            ax.set_xlabel("frequency [Hz]", fontsize=8)
            continue
        ax.tick_params(labelbottom=False)
        res = fig.add_subplot(inner[1], sharex=ax)
        res.plot(f, (p[i] - mod[i]) / err, ".", ms=3, color="C0")
        res.axhline(0.0, color="k", lw=0.8)
        res.set_xlabel("frequency [Hz]", fontsize=8)
        res.set_ylabel("resid. [σ]", fontsize=8)
        res.tick_params(labelsize=7)
    return fig


def plot_residuals(
    freq: ArrayLike,
    power: ArrayLike,
    model: ArrayLike,
    m: float | ArrayLike,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Standardised residuals of one or several spectra against their model, on a log-frequency axis.

    .. math::

        r = \\frac{P - M}{M / \\sqrt{m}}

    For an average of ``m`` periodograms, :math:`P = M\\,\\chi^2_{2m} / 2m`, so :math:`r` has mean 0 and
    standard deviation 1 when the model is right (skewed for small ``m``).  Lines mark 0, ±1 and ±3; the
    text gives the mean and standard deviation of all residuals.

    Parameters
    ----------
    freq : array_like, shape (n_freq,)
        Frequencies [Hz], positive.
    power : array_like, shape (n_freq,) or (n, n_freq)
    model : array_like, broadcastable to the shape of ``power``
        Expected powers, positive.
    m : float or array_like of shape (n_freq,) or broadcastable to (n, n_freq)
        Number of averaged periodograms per spectrum.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The residuals are the offsets of the ``PathCollection`` objects (one per spectrum up to 10
        spectra, otherwise a single one), as (frequency, residual).
    """
    f, p = _spectra(freq, power)
    mod = _finite(model, "model", (1, 2))
    try:
        mod = np.broadcast_to(mod, p.shape)
    except ValueError:
        raise ValueError(f"model of shape {mod.shape} does not match power of shape {p.shape}") from None
    if np.any(mod <= 0):
        raise ValueError(f"model must be positive, got minimum {mod.min()}")
    p2, mod2 = np.atleast_2d(p), np.atleast_2d(mod)
    mm = _m_grid(m, p2.shape)
    r = (p2 - mod2) * np.sqrt(mm) / mod2

    ax = _axes(ax, (6.4, 3.6))
    for level, style in ((0.0, "-"), (1.0, "--"), (-1.0, "--"), (3.0, ":"), (-3.0, ":")):
        ax.axhline(level, color="0.5", ls=style, lw=0.8)
    if r.shape[0] <= 10:
        for row in r:
            ax.scatter(f, row, s=5, linewidths=0)
    else:
        ax.scatter(np.broadcast_to(f, r.shape).ravel(), r.ravel(), s=3, alpha=0.3, linewidths=0, color="C0")
    ax.text(
        0.02,
        0.97,
        f"mean {r.mean():.2f}, std {r.std():.2f}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel("(P − M) / (M / √m)")
    return ax


# ----------------------------------------------------------------------------- calibration


def plot_coverage(
    levels: ArrayLike,
    coverage: Mapping[str, ArrayLike] | ArrayLike,
    *,
    n_test: int,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Empirical coverage of credible intervals against their nominal credibility level.

    A calibrated posterior lies on the diagonal; above it the posterior is too wide (under-confident),
    below it too narrow (over-confident).  The grey band holds 95% of the coverages of a calibrated
    posterior measured on ``n_test`` independent observations: at level :math:`\\alpha` the number of
    intervals that contain the truth is :math:`\\mathrm{Binomial}(n_{test}, \\alpha)`, so the band runs
    from its 2.5% to its 97.5% quantile divided by :math:`n_{test}` (about
    :math:`\\pm 1.96 \\sqrt{\\alpha(1-\\alpha)/n_{test}}`).  The band is pointwise: with many levels, a
    calibrated curve leaves it somewhere more often than 5% of the time.

    Parameters
    ----------
    levels : array_like, shape (n_levels,)
        Nominal credibility levels in [0, 1].
    coverage : mapping of str to array_like of shape (n_levels,), or array_like of shape (n_levels, n_params)
        Empirical coverage per parameter, fractions in [0, 1] (e.g. from
        ``xtml.sbi.diagnostics.CoverageResult.coverage_at``).  A 1-D array is one parameter.
    n_test : int
        Number of observations the coverage was measured on.
    names : sequence of str, optional
        Parameter names when ``coverage`` is an array; default ``"θ0", "θ1", ...``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The band is the ``PolyCollection`` labelled ``"95% binomial band"`` (its x grid includes every
        value of ``levels`` and 0.05, 0.10, ..., 0.95).
    """
    lv = _finite(levels, "levels", 1)
    if np.any((lv < 0) | (lv > 1)):
        raise ValueError(f"levels must lie in [0, 1], got {lv[(lv < 0) | (lv > 1)][:5]}")
    if int(n_test) != n_test or n_test < 1:
        raise ValueError(f"n_test must be a positive integer, got {n_test!r}")
    if isinstance(coverage, Mapping):
        if names is not None:
            raise ValueError("names is only for an array coverage; a mapping already names its entries")
        curves = {str(k): _finite(v, f"coverage[{k!r}]", 1) for k, v in coverage.items()}
    else:
        cov = _finite(coverage, "coverage", (1, 2))
        cov = cov[:, None] if cov.ndim == 1 else cov
        labels = [f"θ{j}" for j in range(cov.shape[1])] if names is None else list(names)
        if len(labels) != cov.shape[1]:
            raise ValueError(f"names has {len(labels)} entries but coverage has {cov.shape[1]} columns")
        curves = {name: cov[:, j] for j, name in enumerate(labels)}
    if not curves:
        raise ValueError("coverage is empty")
    for name, c in curves.items():
        if c.shape != lv.shape:
            raise ValueError(f"coverage of {name!r} has shape {c.shape}, levels has shape {lv.shape}")

    from scipy import stats

    grid = np.union1d(np.linspace(0.0, 1.0, 201), lv)
    lo = stats.binom.ppf(0.025, int(n_test), grid) / n_test
    hi = stats.binom.ppf(0.975, int(n_test), grid) / n_test
    ax = _axes(ax, (4.6, 4.4))
    ax.fill_between(grid, lo, hi, color="0.85", lw=0, label="95% binomial band")
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
    for name, c in curves.items():
        ax.plot(lv, c, marker="o", ms=3, lw=1.2, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("empirical coverage")
    ax.set_title(f"expected coverage ({int(n_test)} observations)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_sbc_ranks(
    ranks: ArrayLike,
    n_samples: int,
    *,
    names: Sequence[str],
    n_bins: int = 20,
    fig: Figure | None = None,
) -> Figure:
    """Histograms of simulation-based-calibration ranks, one per parameter, with the 99% uniform band.

    The rank of the truth among ``L = n_samples`` posterior draws is uniform on :math:`0..L` for a
    calibrated posterior.  Rank :math:`r` goes to bin :math:`\\lfloor (r + 1/2)\\, B / (L + 1) \\rfloor`
    of ``B = n_bins`` bins (the bins of Talts et al. 2018 when ``B`` divides ``L + 1``); bin :math:`b`
    holds a fraction :math:`p_b` of the :math:`L + 1` ranks, its count is
    :math:`\\mathrm{Binomial}(n_{obs}, p_b)`, and the grey band runs from its 0.5% to its 99.5% quantile
    (pointwise).  A U shape means an over-confident posterior, a hump an under-confident one, a slope a
    bias.

    Parameters
    ----------
    ranks : array_like of int, shape (n_obs, n_params)
        Ranks in ``0..n_samples`` (e.g. from ``xtml.sbi.diagnostics.sbc_ranks``).
    n_samples : int
        Posterior draws per observation ``L``.
    names : sequence of str
        Parameter names, ``n_params`` of them.
    n_bins : int
        Histogram bins, at least 2; reduced to ``L + 1`` if larger.
    fig : matplotlib Figure, optional
        An empty figure to draw on.

    Returns
    -------
    matplotlib Figure
        One axes per parameter, each with ``StepPatch`` artists labelled ``"ranks"`` (the counts),
        ``"99% band"`` (values: upper bound, baseline: lower bound) and ``"expected"``; the x axis is in
        rank units, from 0 to ``L + 1``.
    """
    r = np.asarray(ranks)
    if r.ndim != 2 or r.shape[0] < 1:
        raise ValueError(f"ranks must have shape (n_obs, n_params), got {r.shape}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    L = int(n_samples)
    if r.dtype.kind not in "iuf" or not np.all(np.isfinite(r)) or not np.array_equal(r, np.round(r)):
        raise ValueError("ranks must be integers")
    if r.min() < 0 or r.max() > L:
        raise ValueError(f"ranks must lie in 0..n_samples = 0..{L}, got {r.min()}..{r.max()}")
    n_obs, n_params = r.shape
    if len(names) != n_params:
        raise ValueError(f"names has {len(names)} entries but ranks has {n_params} columns")
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    B = min(int(n_bins), L + 1)

    from scipy import stats

    bin_of = np.floor((np.arange(L + 1) + 0.5) * B / (L + 1)).astype(np.int64)
    p_bin = np.bincount(bin_of, minlength=B) / (L + 1)
    edges = np.linspace(0.0, L + 1.0, B + 1)
    lo = stats.binom.ppf(0.005, n_obs, p_bin)
    hi = stats.binom.ppf(0.995, n_obs, p_bin)
    expected = n_obs * p_bin

    n_rows, n_cols = _grid(n_params)
    fig = _figure(fig, (3.4 * n_cols, 2.8 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for j in range(n_rows * n_cols):
        ax = axes.flat[j]
        if j >= n_params:
            ax.set_axis_off()
            continue
        counts = np.bincount(bin_of[r[:, j].astype(np.int64)], minlength=B)
        ax.stairs(hi, edges, baseline=lo, fill=True, color="0.85", label="99% band")
        ax.stairs(expected, edges, color="0.4", ls="--", lw=0.8, label="expected")
        ax.stairs(counts, edges, color="C0", lw=1.2, label="ranks")
        ax.set_xlim(0, L + 1)
        ax.set_ylim(0, None)
        ax.set_title(names[j], fontsize=9)
        ax.set_xlabel("rank", fontsize=8)
        ax.tick_params(labelsize=7)
        if j % n_cols == 0:
            ax.set_ylabel("count", fontsize=8)
    fig.suptitle(f"SBC ranks ({n_obs} observations, {L} draws each)", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- corner


def plot_posterior_corner(
    samples: ArrayLike,
    names: Sequence[str],
    *,
    truths: ArrayLike | None = None,
    bins: int = 40,
    fig: Figure | None = None,
) -> Figure:
    """Corner plot of posterior draws: 1-D histograms on the diagonal, 2-D histograms below it.

    Each column shares one range, from the smallest to the largest draw (widened to include the truth);
    truths are drawn as red lines on the diagonal and red squares below it.

    Parameters
    ----------
    samples : array_like, shape (n_samples, n_params)
        Posterior draws, finite.
    names : sequence of str
        Parameter names, ``n_params`` of them.
    truths : array_like, shape (n_params,), optional
        True (or reference) values.
    bins : int
        Histogram bins per parameter.
    fig : matplotlib Figure, optional
        An empty figure to draw on.

    Returns
    -------
    matplotlib Figure
        ``fig.axes`` is the ``n_params x n_params`` grid in row order; panels above the diagonal are
        switched off.
    """
    s = _finite(samples, "samples", 2)
    n, k = s.shape
    if n < 2:
        raise ValueError(f"samples must have at least 2 rows, got shape {s.shape}")
    if len(names) != k:
        raise ValueError(f"names has {len(names)} entries but samples has {k} columns")
    t = None
    if truths is not None:
        t = _finite(truths, "truths", 1)
        if t.shape != (k,):
            raise ValueError(f"truths must have shape ({k},), got shape {t.shape}")
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")

    lo, hi = s.min(axis=0), s.max(axis=0)
    if t is not None:
        lo, hi = np.minimum(lo, t), np.maximum(hi, t)
    pad = np.where(hi > lo, 0.02 * (hi - lo), 0.5 * np.maximum(np.abs(lo), 1.0))
    lo, hi = lo - pad, hi + pad

    fig = _figure(fig, (1.9 * k + 1, 1.9 * k + 1))
    axes = fig.subplots(k, k, squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(s[:, i], bins=int(bins), range=(lo[i], hi[i]), histtype="step", color="k")
                ax.set_yticks([])
                if t is not None:
                    ax.axvline(t[i], color="C3")
            else:
                ax.hist2d(
                    s[:, j], s[:, i], bins=int(bins), range=((lo[j], hi[j]), (lo[i], hi[i])), cmap="Greys"
                )
                if t is not None:
                    ax.plot(t[j], t[i], "s", color="C3", ms=4)
                ax.set_ylim(lo[i], hi[i])
            ax.set_xlim(lo[j], hi[j])
            if i == k - 1:
                ax.set_xlabel(names[j], fontsize=8)
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
            elif j > 0:
                ax.tick_params(labelleft=False)
            ax.tick_params(labelsize=6)
    return fig
