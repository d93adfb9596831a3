"""Where a model is evaluated for a rebinned spectrum: over the Fourier frequencies inside each bin.

A rebinned power is the mean of the periodogram powers at the Fourier frequencies :math:`\\nu_i = i / T`
inside the bin (:mod:`xtml.timing.rebin`), so its expectation is the mean of the model over those
frequencies,

.. math::

    E[P_b] = \\frac{1}{K_b} \\sum_{i \\in b} S(\\nu_i),

not the model at the bin's mean frequency :math:`S(\\bar\\nu_b)`.  The two differ where the model is
curved on the scale of a bin: a narrow QPO in 5 % logarithmic bins has its quality factor biased by a few
per cent when the model is evaluated at bin centres.  :func:`model_grid` recovers the Fourier frequencies
of every bin from the spectrum itself (``K_b = T \\Delta f_b`` frequencies centred on ``freq_b``) so that
the model can be averaged exactly; for a plain periodogram (``K_b = 1``) it is the bin centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xtml.timing import PowerSpectrum

__all__ = ["ModelGrid", "model_grid"]

FloatArray = NDArray[np.float64]

# Tolerance (in units of one Fourier frequency) for recognising the Fourier frequencies of a bin.
_INDEX_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ModelGrid:
    """Frequencies at which to evaluate a model, and how to average them back onto a spectrum's bins.

    Attributes
    ----------
    freq : ndarray, shape (n_eval,)
        Evaluation frequencies, Hz: the Fourier frequencies inside the bins (or the bin centres).
    starts : ndarray of int or None
        Start of each bin's run in ``freq`` (``np.add.reduceat`` indices); ``None`` when every bin is
        evaluated at one frequency (nothing to average).
    counts : ndarray of float or None
        Number of evaluation frequencies per bin, shape (n_freq,); ``None`` with ``starts``.
    index : ndarray of int or None
        Fourier index :math:`i` of each evaluation frequency (:math:`\\nu = i / T`), or ``None`` when the
        grid is the bin centres of a spectrum whose bins are not recognised sets of Fourier frequencies.
    """

    freq: FloatArray
    starts: NDArray[np.intp] | None
    counts: FloatArray | None
    index: NDArray[np.int64] | None

    @property
    def exact(self) -> bool:
        """Whether the grid is the exact set of Fourier frequencies of the spectrum."""
        return self.index is not None

    def average(self, values: FloatArray) -> FloatArray:
        """Mean of ``values`` (..., n_eval) over each bin's frequencies, shape (..., n_freq)."""
        if self.starts is None or self.counts is None:
            return values
        return np.add.reduceat(values, self.starts, axis=-1) / self.counts


def _fourier_runs(spectrum: PowerSpectrum) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """First Fourier index and number of Fourier frequencies of each bin, or ``None`` if not recognised."""
    t = float(spectrum.segment_length)
    k = spectrum.df * t
    k_int = np.rint(k)
    first = spectrum.freq * t - 0.5 * (k_int - 1.0)
    first_int = np.rint(first)
    if (
        np.any(k_int < 1)
        or np.any(np.abs(k - k_int) > _INDEX_TOLERANCE * k_int)
        or np.any(np.abs(first - first_int) > _INDEX_TOLERANCE * np.maximum(first_int, 1.0))
        or np.any(first_int < 1)
    ):
        return None
    return first_int.astype(np.int64), k_int.astype(np.int64)


def model_grid(spectrum: PowerSpectrum, *, average: bool = True) -> ModelGrid:
    """The evaluation grid of a spectrum (module docstring).

    Parameters
    ----------
    spectrum : PowerSpectrum
        Any spectrum; only its frequency grid (``freq``, ``df``, ``segment_length``) is used.
    average : bool, optional
        Average the model over the Fourier frequencies of each bin (default).  ``False`` evaluates it at
        the bin centres (faster for heavily rebinned spectra, biased where the model is curved).

    Returns
    -------
    ModelGrid

    Raises
    ------
    ValueError
        If ``average`` and some bin is not a run of Fourier frequencies :math:`i / T` (a spectrum that
        was not made by periodogram + rebinning); pass ``average=False`` for such spectra.

    Examples
    --------
    >>> from xtml.timing import rebin_linear
    >>> ps = PowerSpectrum(freq=np.arange(1.0, 7.0), power=np.full((1, 6), 2.0), m=[1] * 6,
    ...                    df=[1.0] * 6, norm="leahy", mean_rate=[10.0], segment_length=1.0, dt=0.05,
    ...                    n_segments=1)
    >>> grid = model_grid(rebin_linear(ps, 3))
    >>> grid.freq, grid.average(grid.freq ** 2)
    (array([1., 2., 3., 4., 5., 6.]), array([ 4.66666667, 25.66666667]))
    """
    runs = _fourier_runs(spectrum)
    if runs is None:
        if average:
            raise ValueError(
                "cannot average the model over the bins of this spectrum: its bins are not runs of Fourier "
                f"frequencies i / T (T = segment_length = {spectrum.segment_length} s; freq and df "
                "disagree); use bin_average=False to evaluate the model at the bin centres"
            )
        return ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=None)
    first, k = runs
    if np.all(k == 1):
        return ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=first)
    if not average:
        return ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=None)
    index = np.repeat(first - np.cumsum(k) + k, k) + np.arange(int(k.sum()))
    starts = np.concatenate([[0], np.cumsum(k)[:-1]]).astype(np.intp)
    return ModelGrid(
        freq=index / float(spectrum.segment_length),
        starts=starts,
        counts=k.astype(np.float64),
        index=index,
    )
