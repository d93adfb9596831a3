"""Plots of spectra against their models; matplotlib is imported only when a plot is drawn.

Data are points with 1-sigma error bars, models are lines in other colours, and a fit plot has a
residual panel below the spectrum: :math:`(P - M) / \\sigma` with :math:`\\sigma = M / \\sqrt{m}`,
the standard deviation of an average of :math:`m` periodograms under the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from xtml.timing import PowerSpectrum

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_fit", "plot_ratio", "plot_spectra"]

_UNITS = {"leahy": "Leahy power", "frac": "power [(rms/mean)$^2$/Hz]", "abs": "power [ct$^2$ s$^{-2}$/Hz]"}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(6.4, 4.2)).add_subplot()


def plot_spectra(
    ps: PowerSpectrum,
    rows: Sequence[int],
    *,
    expected: PowerSpectrum | None = None,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Spectra ``rows`` of ``ps`` as points with 1-sigma errors ``P / sqrt(m)``, and their expectation.

    Each row's data and expectation get different colours (data: points, expectation: a line); with
    ``expected`` and no ``ax``, a residual panel :math:`(P - M)/(M/\\sqrt m)` is drawn below
    (:func:`plot_fit`).

    Parameters
    ----------
    ps : PowerSpectrum
    rows : sequence of int
    expected : PowerSpectrum, optional
        Same grid; drawn as lines.
    labels : sequence of str, optional
        Legend entries, one per row.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The spectrum panel (its figure holds the residual panel, if drawn).
    """
    if expected is not None and ax is None and len(rows) == 1:
        name = "data" if labels is None else labels[0]
        return plot_fit(ps, {"model": expected.power[rows[0]]}, row=rows[0], label=name)
    ax = _axes(ax)
    for k, i in enumerate(rows):
        label = None if labels is None else labels[k]
        p = ps.power[i]
        ax.errorbar(ps.freq, p, yerr=p / np.sqrt(ps.m), fmt=".", ms=3, lw=0.6, color=f"C{2 * k}", label=label)
        if expected is not None:
            model_label = None if label is None else f"{label}: model"
            ax.plot(expected.freq, expected.power[i], color=f"C{2 * k + 1}", lw=1.4, label=model_label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel(_UNITS[ps.norm])
    if labels is not None:
        ax.legend(fontsize="small")
    return ax


def plot_fit(
    ps: PowerSpectrum,
    models: Mapping[str, NDArray[np.float64]],
    *,
    row: int = 0,
    label: str = "data",
    ax: Axes | None = None,
    residual_ax: Axes | None = None,
) -> Axes:
    """One spectrum with one or more fitted models, and their residuals in a panel below.

    The data are black points with 1-sigma error bars :math:`P/\\sqrt m`; each model is a line in its
    own colour and style, named in the legend.  The residual panel shows
    :math:`(P - M) / (M / \\sqrt m)` for every model (mean 0 and standard deviation 1 where the model
    is right; skewed for small :math:`m`), with lines at 0 and +-2.

    Parameters
    ----------
    ps : PowerSpectrum
    models : mapping of str to ndarray, shape (n_freq,)
        Expected powers on the grid of ``ps``, by name (e.g. "dead-time-aware fit", "naive fit").
    row : int
        The spectrum of ``ps`` to draw.
    label : str
        Legend entry of the data.
    ax, residual_ax : matplotlib Axes, optional
        Where to draw the spectrum and the residuals; default a new figure with both (3:1), sharing the
        frequency axis.

    Returns
    -------
    matplotlib Axes
        The spectrum panel.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, (ax, residual_ax) = plt.subplots(
            2, 1, figsize=(6.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
        )
    p = ps.power[row]
    m = np.broadcast_to(ps.m, p.shape)
    ax.errorbar(ps.freq, p, yerr=p / np.sqrt(m), fmt="o", ms=2.5, lw=0.6, color="k", label=label, zorder=3)
    styles = ("-", "--", "-.", ":")
    for k, (name, model) in enumerate(models.items()):
        mod = np.asarray(model, dtype=np.float64)
        ax.plot(ps.freq, mod, color=f"C{k}", ls=styles[k % len(styles)], lw=1.6, label=name)
        if residual_ax is not None:
            r = (p - mod) * np.sqrt(m) / mod
            residual_ax.plot(ps.freq, r, "o", ms=2.5, color=f"C{k}", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(_UNITS[ps.norm])
    ax.legend(fontsize="small")
    if residual_ax is not None:
        for level, style in ((0.0, "-"), (2.0, ":"), (-2.0, ":")):
            residual_ax.axhline(level, color="0.5", ls=style, lw=0.8)
        residual_ax.set_xscale("log")
        residual_ax.set_xlabel("frequency [Hz]")
        residual_ax.set_ylabel("(data - model) / σ", fontsize=8)
    else:
        ax.set_xlabel("frequency [Hz]")
    return ax


def plot_ratio(
    freq: NDArray[np.float64],
    ratios: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    *,
    ax: Axes | None = None,
) -> Axes:
    """Mean data / expectation against frequency, ``name -> (mean, standard error)``, with the line at 1."""
    ax = _axes(ax)
    for name, (mean, err) in ratios.items():
        ax.errorbar(freq, mean, yerr=err, fmt=".-", ms=3, lw=0.8, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel("mean data / expected")
    ax.legend(fontsize="small")
    return ax
