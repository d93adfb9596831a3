"""Where a model is evaluated for a spectrum: the Fourier frequencies of each bin and their aliased images.

**Bin averaging.** A rebinned power is the mean of the periodogram powers at the Fourier frequencies
:math:`\\nu_i = i / T` inside the bin (:mod:`xtml.timing.rebin`), so its expectation is the mean of the model
over those frequencies,

.. math::

    E[P_b] = \\frac{1}{K_b} \\sum_{i \\in b} E[P_i],

not the model at the bin's mean frequency.  The two differ where the model is curved on the scale of a bin:
a narrow QPO in 5 % logarithmic bins has its quality factor biased by a few per cent when the model is
evaluated at bin centres.  :func:`model_grid` recovers the Fourier frequencies of every bin from the
spectrum itself (``K_b = T \\Delta f_b`` frequencies centred on ``freq_b``) so that the model can be averaged
exactly; for a plain periodogram (``K_b = 1``) it is the bin centres.

**Binning response and aliasing.** A light curve binned at :math:`\\Delta t` does not sample the source's
rate at instants: each bin integrates it, and power above the Nyquist frequency :math:`1 / (2\\Delta t)`
folds back.  For a source PSD :math:`S` the expected periodogram at :math:`\\nu_i` is the sum over the
aliased images :math:`\\nu_{i,k}` of :math:`\\nu_i`, weighted by the response :math:`|H|^2` of the binning
(:attr:`~xtml.timing.PowerSpectrum.sampling` says which):

.. math::

    E[P_i] = \\sum_k |H(\\nu_{i,k})|^2\\, S(\\nu_{i,k}), \\qquad
    |H(\\nu)|^2 = \\begin{cases}
      \\left[\\dfrac{\\sin(\\pi\\nu\\Delta t)}{a \\sin(\\pi\\nu\\Delta t / a)}\\right]^2
      & \\text{mean of } a \\text{ samples on a grid of } \\Delta t / a \\\\
      \\mathrm{sinc}^2(\\nu\\Delta t) = \\left[\\dfrac{\\sin(\\pi\\nu\\Delta t)}{\\pi\\nu\\Delta t}\\right]^2
      & \\text{photons counted from a continuous rate}
    \\end{cases}

with images :math:`|\\nu_i + k/\\Delta t|` for every integer :math:`k`; on a grid of :math:`\\Delta t / a`
only those up to its Nyquist frequency :math:`a / (2\\Delta t)` exist (the images of xtml's simulator with
``alias_factor = a``, which it reproduces exactly: ``tests/test_reference_forward.py``).  In continuous time
the weights of all images sum to one (:math:`\\sum_k \\mathrm{sinc}^2(x + k) = 1`): the images up to
:math:`|k| = 8` are summed and the remaining weight is put on the outermost pair (exact for a flat source PSD,
a relative error below :math:`10^{-3}` of the source power at the Nyquist frequency for red noise).  ``a = 1``
is the rate sampled on the grid itself: no response, nothing to alias.

The Poisson (white) noise of the counts is not filtered: counts in different bins are independent, whatever
the response of the source.  Not modelled: the leak of power from frequencies between the Fourier
frequencies (the Fejér window of a finite segment cut from a longer process; xtml's ``red_noise_factor``),
which mostly raises the lowest bins of steep red noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from xtml.timing import PowerSpectrum, Sampling

__all__ = ["ModelGrid", "binning_response", "model_grid"]

FloatArray = NDArray[np.float64]

# Tolerance (in units of one Fourier frequency) for recognising the Fourier frequencies of a bin.
_INDEX_TOLERANCE = 1e-6
# Images on each side summed explicitly for a continuous rate; the rest of the weight goes on the outermost.
_CONTINUOUS_IMAGES = 8
# Images whose weight is below this are left out (their weight is added to the outermost kept image).
_MIN_WEIGHT = 1e-12


@dataclass(frozen=True)
class ModelGrid:
    """Frequencies at which to evaluate a model, and how to combine them into a spectrum's bins.

    Attributes
    ----------
    freq : ndarray, shape (n_eval,)
        The Fourier frequencies inside the bins (or the bin centres), Hz.
    starts : ndarray of int or None
        Start of each bin's run in ``freq`` (``np.add.reduceat`` indices); ``None`` when every bin is
        evaluated at one frequency (nothing to average).
    counts : ndarray of float or None
        Number of evaluation frequencies per bin, shape (n_freq,); ``None`` with ``starts``.
    index : ndarray of int or None
        Fourier index :math:`i` of each evaluation frequency (:math:`\\nu = i / T`), or ``None`` when the
        grid is the bin centres of a spectrum whose bins are not recognised sets of Fourier frequencies.
    source_freq : ndarray, shape (n_source,)
        Where the *source* PSD is evaluated: ``freq`` itself, or ``freq`` and its aliased images when the
        spectrum's bins have a binning response (module docstring).
    source_weights : scipy.sparse.csr_matrix or None
        Shape (n_freq, n_source): the response weight of every image divided by the bin's number of
        frequencies, so that the expected source power of the bins is ``source_weights @ S(source_freq)``;
        ``None`` when there is no response (then :meth:`average` applies).
    """

    freq: FloatArray
    starts: NDArray[np.intp] | None
    counts: FloatArray | None
    index: NDArray[np.int64] | None
    source_freq: FloatArray | None = None
    source_weights: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        if self.source_freq is None:
            object.__setattr__(self, "source_freq", self.freq)

    @property
    def exact(self) -> bool:
        """Whether the grid is the exact set of Fourier frequencies of the spectrum."""
        return self.index is not None

    def average(self, values: FloatArray) -> FloatArray:
        """Mean of ``values`` (..., n_eval) at :attr:`freq` over each bin's frequencies, (..., n_freq)."""
        if self.starts is None or self.counts is None:
            return values
        return np.add.reduceat(values, self.starts, axis=-1) / self.counts

    def source_average(self, values: FloatArray) -> FloatArray:
        """Expected power of the bins, (..., n_freq), from a source PSD ``values`` (..., n_source) at
        :attr:`source_freq`: the response-weighted sum over the images, averaged over each bin."""
        if self.source_weights is None:
            return self.average(values)
        flat = values.reshape(-1, values.shape[-1])
        out = (self.source_weights @ flat.T).T
        return np.asarray(out).reshape(*values.shape[:-1], self.source_weights.shape[0])


def binning_response(
    freq: FloatArray, dt: float, sampling: Sampling
) -> tuple[FloatArray, NDArray[np.intp], FloatArray]:
    """The aliased images of frequencies and their binning-response weights (module docstring).

    Parameters
    ----------
    freq : ndarray, shape (n,)
        Frequencies below the Nyquist frequency ``1 / (2 dt)``, Hz.
    dt : float
        Bin time, s.
    sampling : int or "continuous"
        :attr:`~xtml.timing.PowerSpectrum.sampling` of the light curves.

    Returns
    -------
    image_freq : ndarray, shape (n_images,)
        The frequencies themselves and their images, Hz (all > 0).
    column : ndarray of int, shape (n_images,)
        Which input frequency each image belongs to.
    weight : ndarray, shape (n_images,)
        The response :math:`|H(\\nu)|^2` at each image: the expected power at ``freq[i]`` is
        ``sum(weight * S(image_freq))`` over the images with ``column == i``.

    Examples
    --------
    >>> f, col, w = binning_response(np.array([16.0]), 1 / 64, "continuous")
    >>> round(float(w.sum()), 12)  # the weights of all images of a continuous rate sum to one
    1.0
    >>> f, col, w = binning_response(np.array([16.0]), 1 / 64, 2)  # the rate on a grid of 1/128 s
    >>> f.tolist(), w.round(4).tolist()
    ([16.0, 48.0], [0.8536, 0.1464])
    """
    x = np.asarray(freq, dtype=np.float64) * dt  # in cycles per bin, 0 < x <= 1/2
    n = x.size
    cols = np.arange(n)
    if sampling == "continuous":
        k = np.arange(1, _CONTINUOUS_IMAGES + 1, dtype=np.float64)[:, None]
        offsets = np.concatenate([x[None, :], x + k, k - x])  # (1 + 2K, n), in units of 1/dt
        weight = np.sinc(offsets) ** 2
        rest = np.maximum(1.0 - weight.sum(axis=0), 0.0)  # the images beyond |k| = K
        weight[_CONTINUOUS_IMAGES] += rest / 2  # on the outermost pair, half each
        weight[-1] += rest / 2
    else:
        a = int(sampling)
        if a == 1:
            return np.asarray(freq, dtype=np.float64), cols, np.ones(n)
        k = np.arange(a, dtype=np.float64)[:, None]
        offsets = np.concatenate([x + k, k[1:] - x])  # (2a - 1, n): every image on the fine grid
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = (np.sin(np.pi * offsets) / (a * np.sin(np.pi * offsets / a))) ** 2
        weight = np.where(np.isfinite(weight), weight, 1.0)  # 0/0 only at offsets = 0 (excluded: x > 0)
        weight[offsets > a / 2 + 1e-9] = 0.0  # beyond the fine grid's Nyquist frequency: no such image
        weight[np.abs(offsets - a / 2) <= 1e-9] *= 2.0  # the fine Nyquist term: one real amplitude
    column = np.broadcast_to(cols, offsets.shape)
    keep = weight >= _MIN_WEIGHT
    keep[0] = True  # the frequency itself, always
    return offsets[keep] / dt, column[keep].copy(), weight[keep]


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


def _with_response(grid: ModelGrid, spectrum: PowerSpectrum) -> ModelGrid:
    """``grid`` with the images of its frequencies and the sparse map onto the spectrum's bins."""
    if spectrum.sampling == 1:
        return grid
    image_freq, column, weight = binning_response(grid.freq, float(spectrum.dt), spectrum.sampling)
    n_eval = grid.freq.size
    if grid.starts is None or grid.counts is None:
        row, scale = np.arange(n_eval), np.ones(n_eval)
    else:  # which bin each evaluation frequency falls in, and 1 / its number of frequencies
        row = np.repeat(np.arange(grid.counts.size), grid.counts.astype(np.intp))
        scale = 1.0 / grid.counts[row]
    weights = sp.csr_matrix(
        (weight * scale[column], (row[column], np.arange(image_freq.size))),
        shape=(spectrum.n_freq, image_freq.size),
    )
    return ModelGrid(
        freq=grid.freq,
        starts=grid.starts,
        counts=grid.counts,
        index=grid.index,
        source_freq=image_freq,
        source_weights=weights,
    )


def model_grid(spectrum: PowerSpectrum, *, average: bool = True) -> ModelGrid:
    """The evaluation grid of a spectrum (module docstring): bin averaging and the binning response.

    Parameters
    ----------
    spectrum : PowerSpectrum
        Any spectrum; only its frequency grid (``freq``, ``df``, ``segment_length``), ``dt`` and
        ``sampling`` are used.
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
    key = (
        spectrum.freq.tobytes(),
        spectrum.df.tobytes(),
        float(spectrum.segment_length),
        float(spectrum.dt),
        spectrum.sampling,
        bool(average),
    )
    return _grid_of(key)


@lru_cache(maxsize=64)
def _grid_of(key: tuple[bytes, bytes, float, float, Sampling, bool]) -> ModelGrid:
    """The grid of :func:`model_grid`'s key, built once (a fit evaluates the model thousands of times); its
    arrays are read-only, as it is shared."""
    freq_bytes, df_bytes, segment_length, dt, sampling, average = key
    n = len(freq_bytes) // 8
    spectrum = PowerSpectrum(
        freq=np.frombuffer(freq_bytes, dtype=np.float64),
        power=np.ones((1, n)),
        m=np.ones(n, dtype=np.int64),
        df=np.frombuffer(df_bytes, dtype=np.float64),
        norm="leahy",
        mean_rate=np.ones(1),
        segment_length=segment_length,
        dt=dt,
        n_segments=1,
        sampling=sampling,
    )
    grid = _build_grid(spectrum, average)
    for value in (grid.freq, grid.starts, grid.counts, grid.index, grid.source_freq):
        if value is not None:
            value.flags.writeable = False
    return grid


def _build_grid(spectrum: PowerSpectrum, average: bool) -> ModelGrid:
    """The grid of :func:`model_grid`, uncached."""
    runs = _fourier_runs(spectrum)
    if runs is None:
        if average:
            raise ValueError(
                "cannot average the model over the bins of this spectrum: its bins are not runs of Fourier "
                f"frequencies i / T (T = segment_length = {spectrum.segment_length} s; freq and df "
                "disagree); use bin_average=False to evaluate the model at the bin centres"
            )
        grid = ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=None)
        return _with_response(grid, spectrum)
    first, k = runs
    if np.all(k == 1):
        grid = ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=first)
    elif not average:
        grid = ModelGrid(freq=spectrum.freq, starts=None, counts=None, index=None)
    else:
        index = np.repeat(first - np.cumsum(k) + k, k) + np.arange(int(k.sum()))
        starts = np.concatenate([[0], np.cumsum(k)[:-1]]).astype(np.intp)
        grid = ModelGrid(
            freq=index / float(spectrum.segment_length),
            starts=starts,
            counts=k.astype(np.float64),
            index=index,
        )
    return _with_response(grid, spectrum)
