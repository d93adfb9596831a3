"""Plots of spectra against their models; matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from xtml.timing import PowerSpectrum

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_ratio", "plot_spectra"]

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

    Parameters
    ----------
    ps : PowerSpectrum
    rows : sequence of int
    expected : PowerSpectrum, optional
        Same grid; drawn as lines.
    labels : sequence of str, optional
        Legend entries, one per row.
    ax : matplotlib Axes, optional
    """
    ax = _axes(ax)
    for k, i in enumerate(rows):
        label = None if labels is None else labels[k]
        p = ps.power[i]
        line = ax.errorbar(ps.freq, p, yerr=p / np.sqrt(ps.m), fmt=".", ms=3, lw=0.6, label=label)
        if expected is not None:
            ax.plot(expected.freq, expected.power[i], color=line[0].get_color(), lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel(_UNITS[ps.norm])
    if labels is not None:
        ax.legend(fontsize="small")
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
