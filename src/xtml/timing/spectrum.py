"""The power-spectrum container, its normalisations and the Poisson (white-noise) level.

Normalisations follow Stingray (``stingray.fourier.normalize_periodograms``). With :math:`F_j` the discrete
Fourier transform of the counts in a segment of :math:`L` bins of width :math:`\\Delta t`, :math:`N_{ph}` the
counts in the segment and :math:`\\mu = N_{ph} / (L\\,\\Delta t)` the mean count rate:

* unnormalised: :math:`|F_j|^2`;
* ``"leahy"`` (Leahy et al. 1983): :math:`P_j = 2 |F_j|^2 / N_{ph}`; pure Poisson noise has mean 2;
* ``"frac"`` (fractional rms, Belloni & Hasinger 1990; Miyamoto et al. 1991):
  :math:`P_j = P^{Leahy}_j / \\mu`, in :math:`(\\mathrm{rms}/\\mathrm{mean})^2\\,\\mathrm{Hz}^{-1}`;
  integrated over frequency it gives the fractional variance;
* ``"abs"`` (absolute rms): :math:`P_j = P^{frac}_j\\,\\mu^2`, in :math:`\\mathrm{rms}^2\\,\\mathrm{Hz}^{-1}`
  (count rate units).

For averaged spectra, :math:`|F_j|^2` and :math:`N_{ph}` are the means over the segments (Stingray's
``use_common_mean=True``), so the conversions above hold with :math:`\\mu` the mean rate over all segments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, cast, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Norm", "PowerSpectrum", "Sampling", "check_norm", "check_sampling", "poisson_level"]

Norm = Literal["leahy", "frac", "abs"]
"""Allowed power normalisations."""

_NORMS: tuple[str, ...] = get_args(Norm)

Sampling = int | Literal["continuous"]
"""How the bins of a light curve sample the source's rate (:attr:`PowerSpectrum.sampling`): an integer
``a >= 1`` (each bin is the mean of ``a`` samples of the rate on a grid of ``dt / a``; 1: the rate itself on
the grid of ``dt``) or ``"continuous"`` (photons counted in bins of ``dt`` from a rate in continuous time)."""


def check_sampling(sampling: object, name: str = "sampling") -> Sampling:
    """Check a :data:`Sampling` value; the one place where it is validated.

    Raises
    ------
    ValueError
        If ``sampling`` is neither an integer >= 1 nor ``"continuous"``.

    Examples
    --------
    >>> check_sampling(2), check_sampling("continuous")
    (2, 'continuous')
    """
    if sampling == "continuous":
        return "continuous"
    if isinstance(sampling, bool) or not isinstance(sampling, int | np.integer) or sampling < 1:
        raise ValueError(
            f"{name} must be an integer >= 1 (samples of the rate averaged into each bin) or "
            f"'continuous' (photons counted from a rate in continuous time), got {sampling!r}"
        )
    return int(sampling)


def check_norm(norm: object, name: str = "norm") -> Norm:
    """Check a normalisation name; the one place where the ``Norm`` option is validated.

    Parameters
    ----------
    norm : object
        Candidate normalisation.
    name : str, optional
        Name of the argument, used in the error message.

    Returns
    -------
    Norm
        ``norm``, unchanged, typed as a :data:`Norm`.

    Raises
    ------
    ValueError
        If ``norm`` is not one of ``"leahy"``, ``"frac"``, ``"abs"``.

    Examples
    --------
    >>> check_norm("frac")
    'frac'
    """
    if not isinstance(norm, str) or norm not in _NORMS:
        raise ValueError(f"{name} must be one of {list(_NORMS)}, got {norm!r}")
    return cast(Norm, norm)


def poisson_level(norm: Norm, mean_rate: ArrayLike) -> NDArray[np.float64]:
    """Expected power of pure Poisson (counting) noise, as ``stingray.fourier.poisson_level``.

    .. math::

        P_{\\rm noise} = \\begin{cases} 2 & \\text{leahy} \\\\ 2 / \\mu & \\text{frac} \\\\
        2 \\mu & \\text{abs} \\end{cases}

    with :math:`\\mu` the mean count rate (no background subtraction).

    Parameters
    ----------
    norm : {"leahy", "frac", "abs"}
        Normalisation of the power spectrum.
    mean_rate : array_like, shape (n,) or scalar
        Mean count rate :math:`\\mu`, ct/s; must be finite and > 0.

    Returns
    -------
    ndarray of float64, same shape as ``mean_rate``
        The Poisson level in the units of ``norm`` (dimensionless for Leahy, :math:`\\mathrm{Hz}^{-1}` for
        frac, :math:`(\\mathrm{ct/s})^2\\,\\mathrm{Hz}^{-1}` for abs).

    Raises
    ------
    ValueError
        If ``norm`` is unknown or ``mean_rate`` is not finite and > 0.

    Examples
    --------
    >>> poisson_level("frac", [10.0, 100.0])
    array([0.2 , 0.02])
    """
    norm = check_norm(norm)
    rate = np.asarray(mean_rate, dtype=np.float64)
    if not np.all(np.isfinite(rate) & (rate > 0)):
        raise ValueError(f"mean_rate must be finite and > 0 (ct/s), got {rate}")
    if norm == "leahy":
        return np.full_like(rate, 2.0)
    if norm == "frac":
        return 2.0 / rate
    return 2.0 * rate


def _from_leahy_factor(norm: Norm, mean_rate: NDArray[np.float64]) -> NDArray[np.float64]:
    """Factor ``c`` such that ``P_norm = c * P_leahy``, shape (n,): 1, 1/mu or mu."""
    if norm == "leahy":
        return np.ones_like(mean_rate)
    if norm == "frac":
        return 1.0 / mean_rate
    return mean_rate.copy()


def _as_readonly(array: NDArray) -> NDArray:
    """A read-only view of ``array`` (the caller's array stays writeable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _positive_finite_scalar(value: object, name: str, unit: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}") from None
    if not (np.isfinite(out) and out > 0):
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return out


def _check_1d(value: ArrayLike, name: str, dtype: type, n_freq: int | None) -> NDArray:
    array = np.asarray(value)
    if array.ndim != 1 or (n_freq is not None and array.shape[0] != n_freq):
        expected = "(n_freq,)" if n_freq is None else f"({n_freq},), the shape of freq"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if dtype is np.int64:
        if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)) or np.any(array != np.rint(array)):
            raise ValueError(f"{name} must hold integers, got {array!r}")
    elif array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    return np.asarray(array, dtype=dtype)


@dataclass(frozen=True, eq=False, repr=False)
class PowerSpectrum:
    """A batch of (averaged, possibly rebinned) power spectra sharing one frequency grid.

    The arrays are stored as read-only views; instances are immutable and new ones are made by
    :meth:`to_norm`, :meth:`select` and the rebinning functions.

    Parameters
    ----------
    freq : array_like, shape (n_freq,)
        Bin centres, Hz: the mean of the Fourier frequencies :math:`j / T_{seg}` in each bin. Strictly
        increasing, finite, > 0.
    power : array_like, shape (n, n_freq)
        Powers in normalisation ``norm`` (always 2-D; a single spectrum has ``n = 1``). Finite.
    m : array_like of int, shape (n_freq,)
        Number of independent periodogram powers averaged into each bin, :math:`m = M K` (``M`` segments
        times ``K`` Fourier frequencies in the bin), >= 1. For white noise in Leahy normalisation the power
        in a bin follows :math:`(2 / 2m)\\,\\chi^2_{2m}`.
    df : array_like, shape (n_freq,)
        Bin widths, Hz: :math:`K / T_{seg}`, the frequency interval covered by the Fourier frequencies in
        the bin, so that :math:`\\sum_j P_j\\,\\Delta f_j` integrates the power. > 0.
    norm : {"leahy", "frac", "abs"}
        Normalisation (see the module docstring).
    mean_rate : array_like, shape (n,)
        Mean count rate over all segments used, ct/s, > 0.
    segment_length : float
        Length :math:`T_{seg}` of each Fourier segment, s.
    dt : float
        Bin time of the light curves, s.
    n_segments : int
        Number of averaged segments ``M`` (1 for a single periodogram).
    sampling : int or "continuous", optional
        How the light curves' bins sample the source's rate, which sets the binning response and the
        aliasing of the expected power (:mod:`xtml.reference.binning`): ``1`` (default) the rate on the grid
        of ``dt`` itself (no response, nothing above the Nyquist frequency); an integer ``a > 1`` the mean of
        ``a`` samples on a grid of ``dt / a`` (xtml's simulator with ``alias_factor = a``); ``"continuous"``
        photons counted in bins of ``dt`` from a rate in continuous time (real event files and light
        curves: a :math:`\\mathrm{sinc}^2` response and aliases of all orders).

    Raises
    ------
    ValueError
        If a field has the wrong shape, dtype or value; the message names the field.

    Examples
    --------
    >>> ps = PowerSpectrum(freq=[1.0, 2.0], power=[[2.1, 1.9]], m=[1, 1], df=[1.0, 1.0], norm="leahy",
    ...                    mean_rate=[100.0], segment_length=1.0, dt=0.25, n_segments=1)
    >>> ps.n, ps.n_freq
    (1, 2)
    >>> ps.to_norm("frac").power
    array([[0.021, 0.019]])
    """

    freq: NDArray[np.float64]
    power: NDArray[np.float64]
    m: NDArray[np.int64]
    df: NDArray[np.float64]
    norm: Norm
    mean_rate: NDArray[np.float64]
    segment_length: float
    dt: float
    n_segments: int
    sampling: Sampling = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "norm", check_norm(self.norm))

        freq = _check_1d(self.freq, "freq", np.float64, None)
        n_freq = freq.shape[0]
        if n_freq < 1:
            raise ValueError("freq must hold at least one frequency, got an empty array")
        if not (np.all(np.isfinite(freq)) and freq[0] > 0 and np.all(np.diff(freq) > 0)):
            raise ValueError(f"freq must be finite, > 0 and strictly increasing (Hz), got {freq!r}")

        power = np.asarray(self.power)
        if power.ndim != 2 or power.shape[1] != n_freq or power.shape[0] < 1:
            raise ValueError(
                f"power must have shape (n, {n_freq}) with n >= 1 (n_freq = len(freq)), "
                f"got shape {power.shape}"
            )
        if power.dtype.kind not in "iuf":
            raise ValueError(f"power must be a real numeric array, got dtype {power.dtype}")
        power = np.asarray(power, dtype=np.float64)
        # One cheap reduction; only if it is not finite do we look for the offending entries.
        if not np.isfinite(power.sum()) and not np.all(np.isfinite(power)):
            rows = np.flatnonzero(~np.all(np.isfinite(power), axis=1))
            raise ValueError(f"power must be finite; rows {rows.tolist()[:10]} hold NaN or inf")

        m = _check_1d(self.m, "m", np.int64, n_freq)
        if np.any(m < 1):
            raise ValueError(f"m must be >= 1 in every bin, got min(m) = {m.min()}")
        df = _check_1d(self.df, "df", np.float64, n_freq)
        if not np.all(np.isfinite(df) & (df > 0)):
            raise ValueError(f"df must be finite and > 0 (Hz) in every bin, got {df!r}")

        mean_rate = np.asarray(self.mean_rate)
        if mean_rate.shape != (power.shape[0],):
            raise ValueError(
                f"mean_rate must have shape ({power.shape[0]},), one rate per spectrum, got shape "
                f"{mean_rate.shape}"
            )
        mean_rate = np.asarray(mean_rate, dtype=np.float64)
        if not np.all(np.isfinite(mean_rate) & (mean_rate > 0)):
            raise ValueError(f"mean_rate must be finite and > 0 (ct/s), got {mean_rate!r}")

        n_segments = self.n_segments
        if isinstance(n_segments, bool) or not isinstance(n_segments, int | np.integer) or n_segments < 1:
            raise ValueError(f"n_segments must be an integer >= 1, got {n_segments!r}")

        set_(self, "freq", _as_readonly(freq))
        set_(self, "power", _as_readonly(power))
        set_(self, "m", _as_readonly(m))
        set_(self, "df", _as_readonly(df))
        set_(self, "mean_rate", _as_readonly(mean_rate))
        set_(self, "segment_length", _positive_finite_scalar(self.segment_length, "segment_length", "s"))
        set_(self, "dt", _positive_finite_scalar(self.dt, "dt", "s"))
        set_(self, "n_segments", int(n_segments))
        set_(self, "sampling", check_sampling(self.sampling))

    def __repr__(self) -> str:
        return (
            f"PowerSpectrum(n={self.n}, n_freq={self.n_freq}, norm={self.norm!r}, "
            f"freq=[{self.freq[0]:.6g}, ..., {self.freq[-1]:.6g}] Hz, m=[{self.m.min()}..{self.m.max()}], "
            f"segment_length={self.segment_length:g} s, dt={self.dt:g} s, n_segments={self.n_segments}, "
            f"sampling={self.sampling!r})"
        )

    @property
    def n(self) -> int:
        """Number of spectra in the batch."""
        return int(self.power.shape[0])

    @property
    def n_freq(self) -> int:
        """Number of frequency bins."""
        return int(self.freq.shape[0])

    def poisson_level(self) -> NDArray[np.float64]:
        """Poisson noise level of each spectrum, shape (n,); see :func:`poisson_level`."""
        return poisson_level(self.norm, self.mean_rate)

    def to_norm(self, norm: Norm) -> PowerSpectrum:
        """Convert to another normalisation.

        .. math::

            P^{frac} = P^{Leahy} / \\mu, \\qquad P^{abs} = P^{frac} \\mu^2

        Parameters
        ----------
        norm : {"leahy", "frac", "abs"}
            Target normalisation.

        Returns
        -------
        PowerSpectrum
            A new spectrum (``self`` if ``norm`` is already the current one).
        """
        norm = check_norm(norm)
        if norm == self.norm:
            return self
        factor = _from_leahy_factor(norm, self.mean_rate) / _from_leahy_factor(self.norm, self.mean_rate)
        return replace(self, power=self.power * factor[:, None], norm=norm)

    def select(self, index: int | slice | ArrayLike) -> PowerSpectrum:
        """Spectra of the chosen rows, always as a 2-D batch.

        Parameters
        ----------
        index : int, slice or array_like of int or bool
            Rows to keep (numpy indexing along the batch axis).

        Returns
        -------
        PowerSpectrum
            The selected spectra; an integer gives ``n = 1``.
        """
        if isinstance(index, int | np.integer) and not isinstance(index, bool):
            i = int(index)
            if not -self.n <= i < self.n:
                raise ValueError(f"index must be in [{-self.n}, {self.n - 1}] for n = {self.n}, got {i}")
            rows: slice | NDArray = slice(i, i + 1) if i != -1 else slice(-1, None)
        elif isinstance(index, slice):
            rows = index
        else:
            rows = np.asarray(index)
            if rows.dtype.kind not in "biu" or rows.ndim != 1:
                raise ValueError(f"index must be an int, a slice or a 1-D int/bool array, got {index!r}")
        return replace(self, power=self.power[rows], mean_rate=self.mean_rate[rows])
