"""Features of power spectra: band powers, fractional rms, power colours, peak significance, slopes.

Every function takes Leahy powers ``power`` of shape (n, n_freq) (Poisson level 2, no dead time) on a
:class:`~xtml.learn.inputs.SpectralGrid` and, where needed, the mean count rates ``mean_rate`` (n,) in
ct/s; the transformers take the standard input matrix of :func:`~xtml.learn.inputs.spectra_to_X`.

Bands are integrated with the exact overlap of each bin :math:`[f_j - \\Delta f_j/2, f_j + \\Delta f_j/2]`
with the band :math:`[a, b)`, :math:`w_{bj} = |[f_j \\mp \\Delta f_j/2] \\cap [a, b)|` (Hz), so a band
edge may cut a bin and the band integral :math:`\\int_a^b P\\,df \\approx \\sum_j w_{bj} P_j` is the
midpoint rule on the grid. Bands are intersected with the grid: the part of a band outside the grid is
simply not integrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaincinv
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from xtml.learn.inputs import SpectralGrid, check_spectral_X

__all__ = [
    "HEIL_BANDS",
    "POWER_FLOOR",
    "SpectralFeatures",
    "SpectralGroup",
    "band_log_power",
    "band_overlap",
    "band_variance",
    "band_variance_error",
    "geometric_bands",
    "local_continuum",
    "peak_significance",
    "power_colours",
    "spectral_slopes",
]

FloatArray = NDArray[np.float64]

SpectralGroup = Literal["log_power", "rms", "colours", "peak", "slopes", "rate"]
"""Feature groups of :class:`SpectralFeatures`, in output order."""

_GROUPS: tuple[str, ...] = get_args(SpectralGroup)

HEIL_BANDS: tuple[tuple[float, float], ...] = ((0.0039, 0.031), (0.031, 0.25), (0.25, 2.0), (2.0, 16.0))
"""Power-colour bands A, B, C, D of Heil, Uttley & Klein-Wolt (2015), Hz."""

POWER_FLOOR = 1e-6
"""Floor applied to Leahy powers before taking logarithms (and to the local continuum), so that a power of
exactly 0 gives a finite feature. Real Leahy powers fall below it with probability ~5e-7 (m = 1)."""

_TINY = 1e-300  # last-resort floor on variances (only reached for absurd rates ~1e300 ct/s)
_MAX_NEIGHBOURS = 16  # cap on the running-median window, each side, so its cost stays bounded
_CHUNK_ELEMENTS = 1 << 22  # rows are processed in chunks of at most this many gathered powers


# --------------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------------


def geometric_bands(grid: SpectralGrid, n_bands: int = 4) -> FloatArray:
    """Contiguous bands of equal logarithmic width spanning the grid: Heil's bands scaled to the data.

    Heil, Uttley & Klein-Wolt (2015) use four contiguous bands, each a factor 8 in frequency (and so each 8
    times wider than the previous one) over 0.0039-16 Hz. Typical xtml spectra cover ~0.25-128 Hz instead,
    so the default bands keep the geometry (contiguous, equal width in :math:`\\log f`) over the grid:

    .. math::

        e_k = f_{lo} (f_{hi} / f_{lo})^{k / n_{bands}}, \\quad k = 0 \\dots n_{bands},

    with :math:`f_{lo} = f_0 - \\Delta f_0 / 2` (or :math:`f_0` if that is not > 0) and
    :math:`f_{hi} = f_{n-1} + \\Delta f_{n-1} / 2` the outer bin edges. On 0.125-128.125 Hz each band spans a
    factor ~5.7.

    Parameters
    ----------
    grid : SpectralGrid
        The frequency grid.
    n_bands : int, optional
        Number of bands, >= 1.

    Returns
    -------
    ndarray of float64, shape (n_bands, 2)
        ``[low, high)`` edges of each band, Hz.
    """
    if isinstance(n_bands, bool) or not isinstance(n_bands, int | np.integer) or n_bands < 1:
        raise ValueError(f"n_bands must be an integer >= 1, got {n_bands!r}")
    lower, upper = grid.bin_edges()
    f_lo = lower[0] if lower[0] > 0 else grid.freq[0]
    edges = np.geomspace(f_lo, upper[-1], int(n_bands) + 1)
    return np.column_stack([edges[:-1], edges[1:]])


def _check_bands(bands: object, grid: SpectralGrid, name: str, n_required: int | None = None) -> FloatArray:
    """Resolve ``"auto"``, ``"heil"`` or a sequence of ``(low, high)`` pairs to an (n_bands, 2) array."""
    if isinstance(bands, str):
        if bands == "auto":
            out = geometric_bands(grid, 4 if n_required is None else n_required)
        elif bands == "heil":
            out = np.asarray(HEIL_BANDS, dtype=np.float64)
        else:
            raise ValueError(
                f"{name} must be 'auto', 'heil' or a sequence of (low, high) pairs, got {bands!r}"
            )
    else:
        try:
            out = np.asarray(bands, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be 'auto', 'heil' or a sequence of (low, high) pairs in Hz, got {bands!r}"
            ) from None
        if out.ndim != 2 or out.shape[1] != 2 or out.shape[0] < 1:
            raise ValueError(f"{name} must be a sequence of (low, high) pairs in Hz, got {bands!r}")
        if not (np.all(np.isfinite(out)) and np.all(out[:, 0] >= 0) and np.all(out[:, 1] > out[:, 0])):
            raise ValueError(f"{name} must hold finite pairs with 0 <= low < high (Hz), got {out.tolist()}")
    if n_required is not None and out.shape[0] != n_required:
        raise ValueError(f"{name} must hold exactly {n_required} bands (A, B, C, D), got {out.shape[0]}")
    return out


def band_overlap(grid: SpectralGrid, bands: ArrayLike) -> FloatArray:
    """Width of each bin inside each band, :math:`w_{bj} = |[f_j \\mp \\Delta f_j/2] \\cap [a_b, b_b)|`.

    Parameters
    ----------
    grid : SpectralGrid
        The frequency grid.
    bands : array_like, shape (n_bands, 2)
        ``[low, high)`` band edges, Hz.

    Returns
    -------
    ndarray of float64, shape (n_bands, n_freq)
        Overlaps in Hz; a row sums to the part of the band covered by the grid.

    Raises
    ------
    ValueError
        If a band does not overlap any bin of the grid.
    """
    edges = np.asarray(bands, dtype=np.float64)
    lower, upper = grid.bin_edges()
    overlap = np.minimum(upper, edges[:, 1:2]) - np.maximum(lower, edges[:, 0:1])
    overlap = np.clip(overlap, 0.0, None)
    empty = np.flatnonzero(overlap.sum(axis=1) <= 0)
    if empty.size:
        k = int(empty[0])
        raise ValueError(
            f"band {k} = [{edges[k, 0]:g}, {edges[k, 1]:g}) Hz contains no bin of the grid, which covers "
            f"[{lower[0]:g}, {upper[-1]:g}] Hz; choose bands inside the grid (or 'auto')"
        )
    return overlap


def band_variance(power: FloatArray, mean_rate: FloatArray, overlap: FloatArray) -> FloatArray:
    """Poisson-subtracted fractional variance in bands (rms^2), signed.

    .. math::

        \\sigma^2_b = \\frac{1}{\\mu} \\sum_j w_{bj} (P_j - 2)

    the integral of the fractional-rms power :math:`(P - 2)/\\mu` over the band. It is negative when the
    noise fluctuates below the Poisson level; it is not clipped.

    Parameters
    ----------
    power : ndarray, shape (n, n_freq)
        Leahy powers.
    mean_rate : ndarray, shape (n,)
        Mean count rates, ct/s, > 0.
    overlap : ndarray, shape (n_bands, n_freq)
        Output of :func:`band_overlap`, Hz.

    Returns
    -------
    ndarray of float64, shape (n, n_bands)
        Fractional variances, :math:`(\\mathrm{rms/mean})^2`.
    """
    return ((power - 2.0) @ overlap.T) / mean_rate[:, None]


def band_variance_error(grid: SpectralGrid, mean_rate: FloatArray, overlap: FloatArray) -> FloatArray:
    """Standard deviation of :func:`band_variance` for pure Poisson noise.

    White Leahy noise in bin ``j`` has standard deviation :math:`2/\\sqrt{m_j}`, independent between bins:

    .. math::

        \\delta_b = \\frac{1}{\\mu} \\sqrt{\\sum_j w_{bj}^2\\, 4 / m_j}

    Parameters
    ----------
    grid : SpectralGrid
        The frequency grid (its ``m``).
    mean_rate : ndarray, shape (n,)
        Mean count rates, ct/s.
    overlap : ndarray, shape (n_bands, n_freq)
        Output of :func:`band_overlap`, Hz.

    Returns
    -------
    ndarray of float64, shape (n, n_bands)
        The noise standard deviation of the band variance, :math:`(\\mathrm{rms/mean})^2`.
    """
    return np.sqrt(overlap**2 @ (4.0 / grid.m))[None, :] / mean_rate[:, None]


def band_log_power(power: FloatArray, overlap: FloatArray) -> FloatArray:
    """Frequency-averaged log power in bands, in units of the Poisson level.

    .. math::

        L_b = \\frac{\\sum_j w_{bj} \\log_{10}(\\max(P_j, P_{floor}) / 2)}{\\sum_j w_{bj}}

    (0 for a spectrum at the Poisson level; :data:`POWER_FLOOR` keeps zero powers finite).

    Parameters
    ----------
    power : ndarray, shape (n, n_freq)
        Leahy powers.
    overlap : ndarray, shape (n_bands, n_freq)
        Output of :func:`band_overlap`, Hz.

    Returns
    -------
    ndarray of float64, shape (n, n_bands)
    """
    log_p = np.log10(np.maximum(power, POWER_FLOOR) / 2.0)
    return (log_p @ overlap.T) / overlap.sum(axis=1)


def power_colours(variance: FloatArray, error: FloatArray, floor: float = 1.0) -> FloatArray:
    """Logarithmic power colours of Heil, Uttley & Klein-Wolt (2015).

    With the band variances :math:`\\sigma^2_{A..D}` of four increasing bands,

    .. math::

        \\log_{10} PC1 = \\log_{10} \\frac{\\tilde\\sigma^2_C}{\\tilde\\sigma^2_A}, \\qquad
        \\log_{10} PC2 = \\log_{10} \\frac{\\tilde\\sigma^2_B}{\\tilde\\sigma^2_D}, \\qquad
        \\tilde\\sigma^2_b = \\max(\\sigma^2_b,\\ k\\,\\delta_b),

    where :math:`\\delta_b` is the noise standard deviation of the band variance
    (:func:`band_variance_error`) and :math:`k` is ``floor``: a noise-dominated or negative variance is
    replaced by ``k`` times its noise level, a detection limit, so a colour is never NaN or infinite, and a
    band without signal gives a bounded (limit) colour.

    Parameters
    ----------
    variance : ndarray, shape (n, 4)
        Band variances of bands A, B, C, D (:func:`band_variance`).
    error : ndarray, shape (n, 4)
        Their noise standard deviations (:func:`band_variance_error`), > 0.
    floor : float, optional
        ``k``, in units of the noise standard deviation, > 0.

    Returns
    -------
    ndarray of float64, shape (n, 2)
        :math:`\\log_{10} PC1` and :math:`\\log_{10} PC2`.
    """
    v = np.maximum(np.maximum(variance, floor * error), _TINY)
    return np.log10(np.column_stack([v[:, 2] / v[:, 0], v[:, 1] / v[:, 3]]))


def _median_of_gamma(m: NDArray[np.int64]) -> FloatArray:
    """Median of Gamma(m, 1/m) (mean 1): ln 2 for m = 1, tending to 1 - 1/(3m)."""
    return gammaincinv(m.astype(np.float64), 0.5) / m


def _windows(grid: SpectralGrid, half_width: float, min_neighbours: int) -> tuple[NDArray[np.intp], NDArray]:
    """Neighbour indices of each bin for the running median, padded with ``n_freq``; and their count."""
    n = grid.n_freq
    x = np.log10(grid.freq)
    j = np.arange(n)
    first = np.searchsorted(x, x - half_width, side="left")
    last = np.searchsorted(x, x + half_width, side="right") - 1
    first = np.clip(np.minimum(first, j - min_neighbours), j - _MAX_NEIGHBOURS, None).clip(0, None)
    last = np.clip(np.maximum(last, j + min_neighbours), None, j + _MAX_NEIGHBOURS).clip(None, n - 1)
    count = last - first  # neighbours, the bin itself excluded
    t = np.arange(max(int(count.max()), 1))
    idx = first[:, None] + t[None, :]
    idx = idx + (idx >= j[:, None])  # skip the bin itself
    idx = np.where(t[None, :] < count[:, None], idx, n)
    return idx, count


def local_continuum(
    power: FloatArray, grid: SpectralGrid, *, half_width: float = 0.1, min_neighbours: int = 5
) -> FloatArray:
    """Smooth local continuum: running median of the neighbouring powers in log frequency.

    The continuum at bin ``j`` is the median of :math:`P_i / c(m_i)` over the neighbours ``i != j`` with
    :math:`|\\log_{10} f_i - \\log_{10} f_j| \\le h` (``half_width``), widened to at least
    ``min_neighbours`` bins each side and capped at 16 each side. Dividing by :math:`c(m)`, the median of
    :math:`\\Gamma(m, 1/m)` (:math:`\\ln 2` for m = 1), makes the median an estimate of the mean, so that
    :math:`P / S` has mean 1 for a smooth spectrum. Excluding the bin itself keeps ``S`` independent of
    :math:`P_j`. For noiseless input (exact expectations) this correction biases ``S`` high by
    :math:`1/c(m)`.

    Parameters
    ----------
    power : ndarray, shape (n, n_freq)
        Leahy powers.
    grid : SpectralGrid
        Their frequency grid, n_freq >= 2.
    half_width : float, optional
        Half width of the window, dex, >= 0.
    min_neighbours : int, optional
        Minimum number of neighbours on each side (fewer at the ends of the grid), >= 1.

    Returns
    -------
    ndarray of float64, shape (n, n_freq)
        Continuum :math:`S_j`, Leahy units, >= :data:`POWER_FLOOR`.
    """
    if grid.n_freq < 2:
        raise ValueError(f"the local continuum needs n_freq >= 2 bins, got n_freq = {grid.n_freq}")
    idx, count = _windows(grid, half_width, min_neighbours)
    lo = ((count - 1) // 2)[None, :, None]
    hi = (count // 2)[None, :, None]
    scaled = np.empty((power.shape[0], grid.n_freq + 1))
    scaled[:, :-1] = power / _median_of_gamma(grid.m)
    scaled[:, -1] = np.nan  # padding of the shorter windows: sorts last
    out = np.empty_like(power)
    step = max(1, _CHUNK_ELEMENTS // idx.size)
    for start in range(0, power.shape[0], step):  # chunks of rows bound the memory; rows are vectorised
        window = np.sort(scaled[start : start + step][:, idx], axis=-1)
        med = 0.5 * (np.take_along_axis(window, lo, -1) + np.take_along_axis(window, hi, -1))
        out[start : start + step] = med[..., 0]
    return np.maximum(out, POWER_FLOOR)


def peak_significance(
    power: FloatArray, grid: SpectralGrid, *, half_width: float = 0.1, min_neighbours: int = 5
) -> FloatArray:
    """Significance of the excess of each bin over the local continuum.

    For a smooth spectrum :math:`S`, :math:`P_j / S_j` follows :math:`\\Gamma(m_j, 1/m_j)` (mean 1,
    variance :math:`1/m_j`), so

    .. math::

        z_j = \\left(\\frac{P_j}{S_j} - 1\\right) \\sqrt{m_j}

    is the excess in standard deviations (Gaussian for large m; heavier upper tail for small m), with
    :math:`S_j` from :func:`local_continuum`.

    Parameters
    ----------
    power : ndarray, shape (n, n_freq)
        Leahy powers.
    grid : SpectralGrid
        Their frequency grid.
    half_width, min_neighbours
        Window of :func:`local_continuum`.

    Returns
    -------
    ndarray of float64, shape (n, n_freq)
        :math:`z_j`.
    """
    continuum = local_continuum(power, grid, half_width=half_width, min_neighbours=min_neighbours)
    return (power / continuum - 1.0) * np.sqrt(grid.m)


def _slope_design(grid: SpectralGrid, mask: NDArray[np.bool_]) -> FloatArray:
    """Vector ``a`` such that ``y @ a`` is the weighted least-squares slope of y vs log10 f over ``mask``."""
    x = np.log10(grid.freq[mask])
    w = grid.df[mask] / grid.freq[mask]
    dx = x - np.sum(w * x) / np.sum(w)
    a = np.zeros(grid.n_freq)
    a[mask] = w * dx / np.sum(w * dx**2)
    return a


def _slope_masks(grid: SpectralGrid) -> tuple[float, NDArray[np.bool_], NDArray[np.bool_]]:
    lower, upper = grid.bin_edges()
    f_lo = lower[0] if lower[0] > 0 else grid.freq[0]
    split = float(np.sqrt(f_lo * upper[-1]))
    low = grid.freq < split
    if low.sum() < 2 or (~low).sum() < 2:
        raise ValueError(
            f"spectral slopes need >= 2 bins on each side of the split frequency {split:g} Hz, got "
            f"{int(low.sum())} and {int((~low).sum())}; drop 'slopes' from groups"
        )
    return split, low, ~low


def spectral_slopes(power: FloatArray, grid: SpectralGrid) -> FloatArray:
    """Log-log slopes of the Poisson-subtracted spectrum in the low and high halves of the grid.

    The grid is split at the geometric middle :math:`f_s = \\sqrt{f_{lo} f_{hi}}` of its outer edges. In
    each half, the slope is the weighted least-squares slope of

    .. math::

        y_j = \\log_{10} \\max\\!\\left(P_j - 2,\\ 2/\\sqrt{m_j}\\right)
        \\quad \\text{vs} \\quad x_j = \\log_{10} f_j, \\qquad \\text{weights } \\Delta f_j / f_j

    (the weights make it a fit in continuous :math:`\\log f` on linear and logarithmic grids alike). The
    Poisson level is subtracted where that is meaningful, i.e. where the excess exceeds the one-sigma noise
    of the bin, :math:`2/\\sqrt{m_j}`; below it the bin is set to that detection limit. A source-dominated
    half gives the slope of the source (:math:`-\\alpha` for :math:`P - 2 \\propto f^{-\\alpha}`); a
    noise-dominated half gives the slope of the detection limit, :math:`-\\tfrac12\\, d\\log m / d\\log f`
    (0 on a grid of constant m, about -0.5 on a logarithmic one), a constant that carries no information.

    Parameters
    ----------
    power : ndarray, shape (n, n_freq)
        Leahy powers.
    grid : SpectralGrid
        Their frequency grid, with >= 2 bins in each half.

    Returns
    -------
    ndarray of float64, shape (n, 2)
        Slopes of the low and high halves (dimensionless, :math:`d \\log P / d \\log f`).
    """
    _, low, high = _slope_masks(grid)
    y = np.log10(np.maximum(power - 2.0, 2.0 / np.sqrt(grid.m)))
    return y @ np.column_stack([_slope_design(grid, low), _slope_design(grid, high)])


def _signed_sqrt(x: FloatArray) -> FloatArray:
    return np.sign(x) * np.sqrt(np.abs(x))


def _check_grid(grid: object) -> SpectralGrid:
    if not isinstance(grid, SpectralGrid):
        raise ValueError(
            f"grid must be a SpectralGrid (e.g. from spectra_to_X or SpectralGrid.from_spectrum), got "
            f"{type(grid).__name__}"
        )
    return grid


def _check_positive(value: object, name: str, unit: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if ok:
        ok = bool(np.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound} ({unit}), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _names_out(estimator: BaseEstimator, names: list[str], input_features: ArrayLike | None) -> NDArray:
    check_is_fitted(estimator)
    if input_features is not None and len(np.asarray(input_features)) != estimator.n_features_in_:
        raise ValueError(
            f"input_features must have {estimator.n_features_in_} entries (n_freq + 1), got "
            f"{len(np.asarray(input_features))}"
        )
    return np.asarray(names, dtype=object)


# --------------------------------------------------------------------------------------------------------
# Transformers
# --------------------------------------------------------------------------------------------------------


class SpectralFeatures(TransformerMixin, BaseEstimator):
    """Hand-crafted timing features of power spectra, as a scikit-learn transformer.

    Input is the standard matrix of :func:`~xtml.learn.inputs.spectra_to_X`: Leahy powers on ``grid``,
    then the mean count rate. Output columns, group by group in this order (``groups`` selects them):

    ``"log_power"``
        ``log_power_b{k}``: frequency-averaged :math:`\\log_{10}(P/2)` in each band of ``bands``
        (:func:`band_log_power`; 0 at the Poisson level).
    ``"rms"``
        ``rms_b{k}``: Poisson-subtracted fractional rms in each band of ``bands``, signed:
        :math:`\\mathrm{sign}(\\sigma^2_b) \\sqrt{|\\sigma^2_b|}` with :math:`\\sigma^2_b` from
        :func:`band_variance` (negative when the band is below the Poisson level; never NaN).
    ``"colours"``
        ``log_pc1``, ``log_pc2``: :math:`\\log_{10}` of the power colours PC1 = C/A and PC2 = B/D of Heil,
        Uttley & Klein-Wolt (2015) in the four ``colour_bands``, variances floored at ``colour_floor``
        times their noise standard deviation (:func:`power_colours`).
    ``"peak"``
        ``peak_z``, ``log_peak_freq``: the maximum over bins of the local significance
        :math:`z_j = (P_j / S_j - 1)\\sqrt{m_j}` over a running-median continuum in log frequency
        (:func:`peak_significance`), and :math:`\\log_{10}` of the frequency (Hz) of that bin. The first
        and last :math:`k = \\min(` ``peak_min_neighbours`` :math:`, \\lfloor (n_{freq} - 1)/2 \\rfloor)`
        bins are not searched: their windows are one-sided, and on a red-noise spectrum the continuum
        extrapolated from one side would turn the steep ends into spurious peaks.
    ``"slopes"``
        ``slope_low``, ``slope_high``: log-log slopes of the Poisson-subtracted spectrum in the low and
        high halves of the grid (:func:`spectral_slopes`).
    ``"rate"``
        ``log_rate``: :math:`\\log_{10}` of the mean count rate (ct/s).

    Every feature is finite for any valid input (powers >= 0, rates > 0). The Poisson level is taken to be
    the ideal Leahy value 2: dead time lowers and distorts it (see :mod:`xtml.timing.cross`), which biases
    the noise-subtracted ``rms``, ``colours`` and ``slopes`` of dead-time-affected spectra (by design a
    learnable signature, not a corrected one). ``fit`` learns nothing from the data: it checks the
    parameters and ``X`` against the grid and precomputes the band weights.

    Parameters
    ----------
    grid : SpectralGrid
        Frequency grid of the power columns of ``X``.
    groups : "all" or sequence of str, optional
        Feature groups to compute, among ``"log_power"``, ``"rms"``, ``"colours"``, ``"peak"``,
        ``"slopes"``, ``"rate"``; output order is always the one above.
    bands : "auto", "heil" or sequence of (low, high), optional
        Bands (Hz) for ``log_power`` and ``rms``. ``"auto"`` (default): four contiguous bands of equal
        logarithmic width spanning the grid (:func:`geometric_bands`), i.e. Heil's band geometry scaled to
        the grid; ``"heil"``: :data:`HEIL_BANDS`.
    colour_bands : "auto", "heil" or four (low, high) pairs, optional
        Bands A, B, C, D of the power colours; ``"auto"`` as for ``bands``. ``"heil"`` needs a grid that
        reaches 0.0039 Hz.
    colour_floor : float, optional
        Floor of the colour variances in units of their noise standard deviation, > 0.
    peak_half_width : float, optional
        Half width of the running-median window of the peak search, dex, >= 0.
    peak_min_neighbours : int, optional
        Minimum number of neighbouring bins on each side of that window, >= 1.

    Attributes
    ----------
    n_features_in_ : int
        ``grid.n_freq + 1``.
    groups_ : tuple of str
        The computed groups, in output order.
    bands_ : ndarray, shape (n_bands, 2)
        Edges of ``bands``, Hz.
    colour_bands_ : ndarray, shape (4, 2)
        Edges of ``colour_bands``, Hz.
    split_freq_ : float
        Frequency separating the two halves of the slopes, Hz.

    Examples
    --------
    >>> grid = SpectralGrid(freq=np.arange(1.0, 65.0), df=np.ones(64), m=np.full(64, 10))
    >>> X = np.column_stack([np.full((3, 64), 2.0), np.full(3, 100.0)])  # Poisson level, 100 ct/s
    >>> feats = SpectralFeatures(grid, groups=("rms", "rate")).fit(X)
    >>> feats.get_feature_names_out().tolist()
    ['rms_b0', 'rms_b1', 'rms_b2', 'rms_b3', 'log_rate']
    >>> feats.transform(X)[0]
    array([0., 0., 0., 0., 2.])
    """

    def __init__(
        self,
        grid: SpectralGrid,
        *,
        groups: Sequence[SpectralGroup] | Literal["all"] = "all",
        bands: Literal["auto", "heil"] | Sequence[tuple[float, float]] = "auto",
        colour_bands: Literal["auto", "heil"] | Sequence[tuple[float, float]] = "auto",
        colour_floor: float = 1.0,
        peak_half_width: float = 0.1,
        peak_min_neighbours: int = 5,
    ) -> None:
        self.grid = grid
        self.groups = groups
        self.bands = bands
        self.colour_bands = colour_bands
        self.colour_floor = colour_floor
        self.peak_half_width = peak_half_width
        self.peak_min_neighbours = peak_min_neighbours

    def _check_groups(self) -> tuple[str, ...]:
        groups = self.groups
        if isinstance(groups, str):
            groups = _GROUPS if groups == "all" else (groups,)
        try:
            chosen = set(groups)
        except TypeError:
            raise ValueError(
                f"groups must be 'all' or a sequence of {list(_GROUPS)}, got {groups!r}"
            ) from None
        unknown = chosen - set(_GROUPS)
        if unknown or not chosen:
            raise ValueError(f"groups must be 'all' or a non-empty subset of {list(_GROUPS)}, got {groups!r}")
        return tuple(g for g in _GROUPS if g in chosen)

    def __sklearn_tags__(self) -> Tags:
        """Leahy powers and count rates are non-negative: negative input is rejected in ``fit``."""
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> SpectralFeatures:
        """Check the parameters and ``X`` against the grid, and precompute the band weights.

        Parameters
        ----------
        X : array_like, shape (n, n_freq + 1)
            Leahy powers and mean count rates (:func:`~xtml.learn.inputs.spectra_to_X`).
        y : ignored

        Returns
        -------
        SpectralFeatures
            ``self``.
        """
        grid = _check_grid(self.grid)
        groups = self._check_groups()
        colour_floor = _check_positive(self.colour_floor, "colour_floor", "noise standard deviations")
        half_width = _check_positive(self.peak_half_width, "peak_half_width", "dex", allow_zero=True)
        min_neighbours = _check_int(self.peak_min_neighbours, "peak_min_neighbours", 1)
        X = validate_data(self, X, dtype=np.float64)
        check_spectral_X(X, grid, owner=type(self).__name__)

        self.bands_ = _check_bands(self.bands, grid, "bands")
        self.colour_bands_ = _check_bands(self.colour_bands, grid, "colour_bands", n_required=4)
        names: list[str] = []
        if "log_power" in groups or "rms" in groups:
            self._overlap = band_overlap(grid, self.bands_)
        if "log_power" in groups:
            names += [f"log_power_b{k}" for k in range(len(self.bands_))]
        if "rms" in groups:
            names += [f"rms_b{k}" for k in range(len(self.bands_))]
        if "colours" in groups:
            self._colour_overlap = band_overlap(grid, self.colour_bands_)
            names += ["log_pc1", "log_pc2"]
        if "peak" in groups:
            if grid.n_freq < 2:
                raise ValueError(f"the peak features need n_freq >= 2 bins, got {grid.n_freq}; drop 'peak'")
            names += ["peak_z", "log_peak_freq"]
        self.split_freq_ = float("nan")
        if "slopes" in groups:
            self.split_freq_ = _slope_masks(grid)[0]
            names += ["slope_low", "slope_high"]
        if "rate" in groups:
            names.append("log_rate")
        self.groups_ = groups
        self._grid = grid
        self._colour_floor = colour_floor
        self._peak = {"half_width": half_width, "min_neighbours": min_neighbours}
        self._names = names
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Compute the features.

        Parameters
        ----------
        X : array_like, shape (n, n_freq + 1)
            Leahy powers and mean count rates.

        Returns
        -------
        ndarray of float64, shape (n, n_features_out)
            Finite features, columns named by :meth:`get_feature_names_out`.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        grid = self._grid
        power, rate = check_spectral_X(X, grid, owner=type(self).__name__)
        out: list[FloatArray] = []
        if "log_power" in self.groups_:
            out.append(band_log_power(power, self._overlap))
        if "rms" in self.groups_:
            out.append(_signed_sqrt(band_variance(power, rate, self._overlap)))
        if "colours" in self.groups_:
            var = band_variance(power, rate, self._colour_overlap)
            err = band_variance_error(grid, rate, self._colour_overlap)
            out.append(power_colours(var, err, self._colour_floor))
        if "peak" in self.groups_:
            z = peak_significance(power, grid, **self._peak)
            k = min(self._peak["min_neighbours"], (grid.n_freq - 1) // 2)
            inner = z[:, k : grid.n_freq - k]
            best = np.argmax(inner, axis=1)
            peak_freq = grid.freq[k + best]
            out.append(np.column_stack([inner[np.arange(len(z)), best], np.log10(peak_freq)]))
        if "slopes" in self.groups_:
            out.append(spectral_slopes(power, grid))
        if "rate" in self.groups_:
            out.append(np.log10(rate)[:, None])
        return np.hstack(out)

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> NDArray:
        """Names of the output features (see the class docstring); ``input_features`` is only checked."""
        return _names_out(self, getattr(self, "_names", []), input_features)


def __getattr__(name: str) -> object:
    """Resolve ``LogSpectrum``, now in :mod:`xtml.learn.log_spectrum`, under its old module path.

    Model files written by :func:`~xtml.learn.persist.save_model` before the move name the class
    ``xtml.learn.spectral_features.LogSpectrum`` (skops records the defining module); this keeps them
    loadable. It is resolved lazily because :mod:`xtml.learn.log_spectrum` imports this module.
    """
    if name == "LogSpectrum":
        from xtml.learn.log_spectrum import LogSpectrum

        return LogSpectrum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
