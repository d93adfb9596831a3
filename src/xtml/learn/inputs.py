"""The standard input matrix of the spectral transformers and estimators of :mod:`xtml.learn`.

scikit-learn estimators take a plain 2-D array, so a batch of power spectra is flattened into

.. math::

    X = \\bigl[\\,P^{\\rm Leahy}_{i,0}, \\dots, P^{\\rm Leahy}_{i,n_{freq}-1},\\ \\mu_i\\,\\bigr],
    \\qquad X \\in \\mathbb{R}^{n \\times (n_{freq} + 1)},

the Leahy-normalised powers of spectrum :math:`i` followed by ONE last column holding its mean count rate
:math:`\\mu_i` (ct/s). The Leahy normalisation makes the Poisson level 2 whatever the rate, and the rate
column lets a transformer convert to fractional rms, :math:`P^{\\rm frac} = P^{\\rm Leahy} / \\mu`.

The frequency grid the columns refer to (bin centres, widths and the number ``m`` of averaged powers per
bin) is not in ``X``; it travels as a :class:`SpectralGrid`, a constructor argument of every grid-bound
transformer, so that a fitted pipeline knows which spectra it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.timing.spectrum import PowerSpectrum

__all__ = ["SpectralGrid", "check_spectral_X", "spectra_to_X"]


def _readonly_copy(value: ArrayLike, name: str, dtype: type, n_freq: int | None) -> NDArray:
    """A validated, read-only, C-contiguous copy of a 1-D grid array."""
    array = np.asarray(value)
    if array.ndim != 1 or (n_freq is not None and array.shape[0] != n_freq):
        expected = "(n_freq,)" if n_freq is None else f"({n_freq},), the shape of freq"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array!r}")
    if dtype is np.int64 and np.any(array != np.rint(array)):
        raise ValueError(f"{name} must hold integers, got {array!r}")
    out = np.array(array, dtype=dtype, copy=True, order="C")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False, repr=False)
class SpectralGrid:
    """The frequency grid shared by the columns of a spectral input matrix ``X``.

    The arrays are copied and stored read-only, so a grid is immutable; it pickles and deep-copies (as
    :func:`sklearn.base.clone` does) by reconstruction.

    Parameters
    ----------
    freq : array_like, shape (n_freq,)
        Bin centres, Hz; finite, > 0 and strictly increasing.
    df : array_like, shape (n_freq,)
        Bin widths, Hz; finite and > 0. Bin ``j`` covers :math:`[f_j - \\Delta f_j/2, f_j + \\Delta f_j/2]`,
        exactly the frequencies merged into it by :mod:`xtml.timing.rebin`.
    m : array_like of int, shape (n_freq,)
        Number of independent periodogram powers averaged in each bin, >= 1: white Leahy noise in bin
        ``j`` follows :math:`(2 / 2 m_j)\\,\\chi^2_{2 m_j}` (mean 2, standard deviation
        :math:`2/\\sqrt{m_j}`).

    Raises
    ------
    ValueError
        If a field has the wrong shape, dtype or value; the message names the field.

    Examples
    --------
    >>> grid = SpectralGrid(freq=[1.0, 2.0, 3.0], df=[1.0, 1.0, 1.0], m=[4, 4, 4])
    >>> grid.n_freq
    3
    >>> grid.freq.flags.writeable
    False
    """

    freq: NDArray[np.float64]
    df: NDArray[np.float64]
    m: NDArray[np.int64]

    def __post_init__(self) -> None:
        freq = _readonly_copy(self.freq, "freq", np.float64, None)
        if freq.shape[0] < 1:
            raise ValueError("freq must hold at least one frequency, got an empty array")
        if not (freq[0] > 0 and np.all(np.diff(freq) > 0)):
            raise ValueError(f"freq must be > 0 and strictly increasing (Hz), got {freq!r}")
        df = _readonly_copy(self.df, "df", np.float64, freq.shape[0])
        if np.any(df <= 0):
            raise ValueError(f"df must be > 0 (Hz) in every bin, got {df!r}")
        m = _readonly_copy(self.m, "m", np.int64, freq.shape[0])
        if np.any(m < 1):
            raise ValueError(f"m must be >= 1 in every bin, got min(m) = {m.min()}")
        object.__setattr__(self, "freq", freq)
        object.__setattr__(self, "df", df)
        object.__setattr__(self, "m", m)

    @classmethod
    def from_spectrum(cls, ps: PowerSpectrum) -> SpectralGrid:
        """The grid of a :class:`~xtml.timing.spectrum.PowerSpectrum` (its ``freq``, ``df`` and ``m``)."""
        if not isinstance(ps, PowerSpectrum):
            raise ValueError(f"ps must be a PowerSpectrum, got {type(ps).__name__}")
        return cls(freq=ps.freq, df=ps.df, m=ps.m)

    @property
    def n_freq(self) -> int:
        """Number of frequency bins."""
        return int(self.freq.shape[0])

    @property
    def n_columns(self) -> int:
        """Number of columns of a matching input matrix ``X``: ``n_freq + 1`` (powers, then the rate)."""
        return self.n_freq + 1

    def bin_edges(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper edges of the bins, :math:`f_j \\mp \\Delta f_j / 2`, Hz, each shape (n_freq,)."""
        return self.freq - 0.5 * self.df, self.freq + 0.5 * self.df

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpectralGrid):
            return NotImplemented
        return (
            np.array_equal(self.freq, other.freq)
            and np.array_equal(self.df, other.df)
            and np.array_equal(self.m, other.m)
        )

    def __hash__(self) -> int:
        # The arrays are private read-only copies, so the grid is truly immutable and hashable.
        return hash((self.freq.tobytes(), self.df.tobytes(), self.m.tobytes()))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through the constructor so copies are validated and read-only again.
        return (type(self), (self.freq, self.df, self.m))

    def __repr__(self) -> str:
        return (
            f"SpectralGrid(n_freq={self.n_freq}, freq=[{self.freq[0]:.6g}, ..., {self.freq[-1]:.6g}] Hz, "
            f"m=[{self.m.min()}..{self.m.max()}])"
        )


def spectra_to_X(ps: PowerSpectrum) -> tuple[NDArray[np.float64], SpectralGrid]:
    """The standard input matrix of :mod:`xtml.learn`: Leahy powers, then the mean count rate.

    Parameters
    ----------
    ps : PowerSpectrum
        A batch of ``n`` spectra in any normalisation (converted with ``ps.to_norm("leahy")``).

    Returns
    -------
    X : ndarray of float64, shape (n, n_freq + 1)
        ``X[:, :n_freq]`` the Leahy powers (Poisson level 2), ``X[:, n_freq]`` the mean count rate, ct/s.
    grid : SpectralGrid
        The frequency grid of the columns.

    Raises
    ------
    ValueError
        If ``ps`` is not a :class:`~xtml.timing.spectrum.PowerSpectrum`.

    Examples
    --------
    >>> ps = PowerSpectrum(freq=[1.0, 2.0], power=[[0.021, 0.019]], m=[1, 1], df=[1.0, 1.0], norm="frac",
    ...                    mean_rate=[100.0], segment_length=1.0, dt=0.25, n_segments=1)
    >>> X, grid = spectra_to_X(ps)
    >>> X
    array([[  2.1,   1.9, 100. ]])
    """
    if not isinstance(ps, PowerSpectrum):
        raise ValueError(f"ps must be a PowerSpectrum, got {type(ps).__name__}")
    leahy = ps.to_norm("leahy")
    X = np.empty((leahy.n, leahy.n_freq + 1), dtype=np.float64)
    X[:, :-1] = leahy.power
    X[:, -1] = leahy.mean_rate
    return X, SpectralGrid.from_spectrum(leahy)


def check_spectral_X(
    X: ArrayLike, grid: SpectralGrid, *, owner: str = "the estimator", allow_negative: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Check a spectral input matrix against its grid and split it into powers and rates.

    Parameters
    ----------
    X : array_like, shape (n, n_freq + 1)
        Leahy powers followed by the mean count rate (see the module docstring).
    grid : SpectralGrid
        Grid of the power columns.
    owner : str, optional
        Name of the caller, used in error messages.
    allow_negative : bool, optional
        Accept negative powers (e.g. cospectra). By default Leahy powers must be >= 0.

    Returns
    -------
    power : ndarray of float64, shape (n, n_freq)
        Leahy powers (a view of ``X`` when it is already float64).
    mean_rate : ndarray of float64, shape (n,)
        Mean count rates, ct/s.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D with ``grid.n_freq + 1`` columns, holds NaN or inf, negative entries (unless
        ``allow_negative``; checked before the column count) or a mean rate that is not > 0.

    Examples
    --------
    >>> grid = SpectralGrid(freq=[1.0, 2.0], df=[1.0, 1.0], m=[1, 1])
    >>> power, rate = check_spectral_X([[2.0, 3.0, 50.0]], grid)
    >>> power, rate
    (array([[2., 3.]]), array([50.]))
    """
    if not isinstance(grid, SpectralGrid):
        raise ValueError(f"grid must be a SpectralGrid, got {type(grid).__name__}")
    array = np.asarray(X)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"X must be a real numeric array, got dtype {array.dtype}")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"X must be 2-D, shape (n, n_freq + 1 = {grid.n_columns}), got shape {array.shape}")
    if not np.isfinite(array.sum()) and not np.all(np.isfinite(array)):
        rows = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
        raise ValueError(f"X must be finite; rows {rows.tolist()[:10]} hold NaN or inf")
    if not allow_negative and array.size and array.min() < 0:
        # Checked before the shape: powers >= 0 and rates > 0 make every entry of X >= 0.
        row = int(np.flatnonzero(np.any(array < 0, axis=1))[0])
        raise ValueError(
            f"Negative values in data passed to {owner}: Leahy powers must be >= 0 and mean rates > 0, "
            f"got {float(array[row].min())!r} in row {row}"
        )
    if array.shape[1] != grid.n_columns:
        raise ValueError(
            f"X has {array.shape[1]} feature(s), but {owner} needs n_freq + 1 = {grid.n_columns} columns: "
            f"the {grid.n_freq} Leahy powers of the grid, then the mean count rate (see spectra_to_X)"
        )
    power = array[:, :-1]
    rate = array[:, -1]
    if np.any(rate <= 0):
        row = int(np.flatnonzero(rate <= 0)[0])
        raise ValueError(
            f"the mean count rate (last column of X) must be > 0 ct/s, got {float(rate[row])!r} in row {row}"
        )
    return power, rate
