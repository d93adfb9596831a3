"""Periodograms of binned light curves and of event lists, averaged over segments.

Both functions reproduce Stingray's ``Powerspectrum`` / ``AveragedPowerspectrum`` (``use_common_mean=True``,
see ``stingray.fourier.avg_pds_from_iterable``) for the same input: for each spectrum, with :math:`M` segments
of :math:`L` bins of width :math:`\\Delta t`,

.. math::

    \\overline{|F_j|^2} = \\frac{1}{M} \\sum_{s=1}^{M} |F_{s,j}|^2, \\qquad
    \\bar N_{ph} = \\frac{1}{M} \\sum_{s=1}^{M} N_{ph,s}, \\qquad
    \\mu = \\frac{\\bar N_{ph}}{L\\,\\Delta t},

    P^{Leahy}_j = \\frac{2\\,\\overline{|F_j|^2}}{\\bar N_{ph}}, \\qquad
    P^{frac}_j = \\frac{P^{Leahy}_j}{\\mu}, \\qquad
    P^{abs}_j = P^{frac}_j\\,\\mu^2,

at the Fourier frequencies :math:`f_j = j / (L\\,\\Delta t)`, :math:`j = 1, \\dots, \\lfloor (L-1)/2 \\rfloor`
(zero frequency and Nyquist frequency excluded). The mean count per segment, not each segment's own mean,
normalises every segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import scipy.fft as sp_fft
from numpy.typing import ArrayLike, NDArray

from xtml.timing.spectrum import Norm, PowerSpectrum, Sampling, check_norm, check_sampling

__all__ = ["periodogram", "periodogram_from_events"]

# Target size of the complex FFT buffer per block of rows: large enough for the FFT threads to have work,
# small enough to stay near the cache and to avoid one huge complex temporary for a big batch.
_BLOCK_BYTES = 1 << 22
# Stingray's tolerances: segment_size is rounded up to the next multiple of dt when within 1 % of a bin
# (``stingray.utils.fix_segment_size_to_integer_samples``); GTI ends get 1e-5 s of slack
# (``stingray.gti.time_intervals_from_gtis``).
_SEGMENT_TOLERANCE = 0.01
_GTI_EPSILON = 1e-5


def _check_dt(dt: object) -> float:
    try:
        value = float(dt)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a finite number > 0 (s), got {dt!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"dt must be a finite number > 0 (s), got {dt!r}")
    return value


def _n_freq(segment_bins: int) -> int:
    """Number of positive Fourier frequencies below Nyquist, as ``stingray.fourier.positive_fft_bins``."""
    return (segment_bins - 1) // 2


def check_counts(value: ArrayLike, name: str) -> NDArray:
    """Counts as a 2-D array (n, n_bins): real, finite, >= 0, with n_bins >= 3; ``ValueError`` naming rows.

    A 1-D input is one light curve (n = 1).  Shared by every transform of binned counts.
    """
    data = np.asarray(value)
    if data.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real numeric array (int, uint or float), got dtype {data.dtype}")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (n, n_bins) or (n_bins,) with n >= 1, got {np.shape(value)}"
        )
    if data.shape[1] < 3:
        raise ValueError(
            f"{name} must have n_bins >= 3 bins along the last axis (at least one Fourier frequency below "
            f"Nyquist), got n_bins = {data.shape[1]}"
        )
    if data.dtype.kind != "u":
        # two passes: the minimum is NaN for NaN and negative for negative counts or -inf; the maximum
        # catches +inf
        lowest = data.min()
        if np.isnan(lowest) or not np.isfinite(data.max()) or np.isinf(lowest):
            bad = np.flatnonzero(~np.all(np.isfinite(data), axis=1))
            raise ValueError(f"{name} must be finite; rows {bad.tolist()[:10]} hold NaN or inf")
        if lowest < 0:
            bad = np.flatnonzero(np.any(data < 0, axis=1))
            raise ValueError(f"{name} must be >= 0; rows {bad.tolist()[:10]} hold negative values")
    return data


def check_segment_bins(segment_bins: object, n_bins: int) -> int:
    """Bins per segment: ``n_bins`` if None, else an integer in [3, n_bins] (``ValueError`` otherwise)."""
    if segment_bins is None:
        return n_bins
    if isinstance(segment_bins, bool) or not isinstance(segment_bins, int | np.integer):
        raise ValueError(f"segment_bins must be an integer in [3, n_bins = {n_bins}], got {segment_bins!r}")
    seg = int(segment_bins)
    if not 3 <= seg <= n_bins:
        raise ValueError(f"segment_bins must be in [3, n_bins = {n_bins}], got {seg}")
    return seg


def _segment_power_sum(segments: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sum over segments of :math:`|F_{s,j}|^2`, and the total counts from the zero-frequency terms.

    Parameters
    ----------
    segments : ndarray, shape (n, M, L)
        Counts per bin, any real dtype (a view; it is not copied as a whole).

    Returns
    -------
    power_sum : ndarray of float64, shape (n, (L - 1) // 2)
        :math:`\\sum_s |F_{s,j}|^2` for :math:`j = 1, \\dots, (L-1)//2`.
    total : ndarray of float64, shape (n,)
        :math:`\\sum_s F_{s,0} = \\sum_s N_{ph,s}`, the counts in all segments (exact for integer counts;
        NaN or inf if the input holds them).
    """
    n, n_seg, n_bins = segments.shape
    n_freq = _n_freq(n_bins)
    out = np.empty((n, n_freq), dtype=np.float64)
    total = np.empty(n, dtype=np.float64)
    # float64 FFT whatever the input dtype: a float32 FFT loses ~1e-7 of |F_0| ~ N_ph in every bin, far more
    # than the Poisson power ~ N_ph at high counts. Integer input is converted block by block inside rfft.
    upcast = segments.dtype.kind == "f" and segments.dtype != np.float64
    rows = max(1, _BLOCK_BYTES // (16 * n_seg * (n_bins // 2 + 1)))
    for start in range(0, n, rows):
        block = segments[start : start + rows]
        if upcast:
            block = block.astype(np.float64)
        ft = sp_fft.rfft(block, axis=-1, workers=-1)
        np.sum(ft[..., 0].real, axis=1, out=total[start : start + rows])
        # |F|^2 = re^2 + im^2 (as Stingray's (F F*).real), computed in place in the FFT buffer.
        re, im = ft.real[..., 1 : n_freq + 1], ft.imag[..., 1 : n_freq + 1]
        dest = out[start : start + rows]
        np.square(im, out=im)
        if n_seg == 1:
            np.multiply(re[:, 0], re[:, 0], out=dest)
            dest += im[:, 0]
        else:
            np.square(re, out=re)
            re += im
            # Sequential sum over segments, in the same order as Stingray's running sum.
            np.sum(re, axis=1, out=dest)
    return out, total


def _averaged_spectrum(segments: NDArray, dt: float, norm: Norm, sampling: Sampling) -> PowerSpectrum:
    """Normalised average periodogram of non-negative ``segments`` of shape (n, M, L)."""
    n, n_seg, n_bins = segments.shape
    power, total = _segment_power_sum(segments)
    if not np.all(np.isfinite(total)):
        bad = np.flatnonzero(~np.isfinite(total))
        raise ValueError(f"counts must be finite; rows {bad.tolist()[:10]} hold NaN or inf")
    if not np.all(total > 0):
        bad = np.flatnonzero(total <= 0)
        raise ValueError(
            f"counts rows {bad.tolist()[:10]} have zero total counts in the {n_seg} used segment(s); "
            "the normalisation 2 / N_ph is undefined"
        )
    segment_length = n_bins * dt
    n_ph = total / n_seg  # mean counts per segment
    mean_rate = n_ph / segment_length
    if norm == "leahy":
        factor = 2.0 / n_ph
    elif norm == "frac":
        factor = 2.0 * dt / (n_bins * (n_ph / n_bins) ** 2)
    else:
        factor = np.full(n, 2.0 / n_bins / dt)
    power *= (factor / n_seg)[:, None]
    n_freq = power.shape[1]
    return PowerSpectrum(
        # Same expression as numpy.fft.fftfreq, which Stingray uses: j * (1 / (L dt)).
        freq=np.arange(1, n_freq + 1) * (1.0 / (n_bins * dt)),
        power=power,
        m=np.full(n_freq, n_seg, dtype=np.int64),
        df=np.full(n_freq, 1.0 / segment_length),
        norm=norm,
        mean_rate=mean_rate,
        segment_length=segment_length,
        dt=dt,
        n_segments=n_seg,
        sampling=sampling,
    )


def periodogram(
    counts: ArrayLike,
    dt: float,
    *,
    norm: Norm = "leahy",
    segment_bins: int | None = None,
    sampling: Sampling = 1,
) -> PowerSpectrum:
    """Periodograms of a batch of binned light curves, optionally averaged over segments.

    Each light curve is cut into :math:`M = \\lfloor n_{bins} / L \\rfloor` consecutive segments of
    :math:`L` = ``segment_bins`` bins; a trailing remainder of fewer than :math:`L` bins is dropped (as
    Stingray's ``AveragedPowerspectrum(lc, segment_size)`` does). The periodograms of the segments are
    averaged and normalised with the mean counts per segment (module docstring):

    .. math::

        P^{Leahy}_j = \\frac{2 \\sum_s |F_{s,j}|^2}{\\sum_s N_{ph,s}}, \\qquad
        f_j = \\frac{j}{L \\Delta t}, \\quad j = 1, \\dots, \\lfloor (L-1)/2 \\rfloor .

    The zero and Nyquist frequencies are excluded, as in Stingray. Unlike Stingray, which skips segments
    with no counts at all, every segment is kept, so that all spectra of a batch share the same ``M`` (an
    empty segment of a constant-rate source is a legitimate Poisson outcome; skipping it biases the mean).

    Parameters
    ----------
    counts : array_like, shape (n, n_bins) or (n_bins,)
        Counts per bin (any real dtype; non-negative and finite). A 1-D input is one light curve (n = 1).
    dt : float
        Bin time, s; finite and > 0.
    norm : {"leahy", "frac", "abs"}, optional
        Normalisation of the output.
    segment_bins : int, optional
        Bins per segment :math:`L`, ``3 <= segment_bins <= n_bins``. Default: the whole light curve
        (:math:`M = 1`).
    sampling : int or "continuous", optional
        How the bins sample the source's rate (:attr:`PowerSpectrum.sampling`), recorded for the model of
        the expected power: 1 (default) for a rate simulated on the grid of ``dt``, the simulator's
        ``alias_factor`` for one simulated on a finer grid, ``"continuous"`` for photons of a real source.

    Returns
    -------
    PowerSpectrum
        ``n`` spectra with ``n_freq = (L - 1) // 2`` frequencies, ``m = M`` in every bin,
        ``df = 1 / (L dt)`` and ``mean_rate`` = counts in the used segments / (:math:`M L \\Delta t`).

    Raises
    ------
    ValueError
        For a bad ``dt``, ``norm`` or ``segment_bins``, fewer than 3 bins, counts that are negative,
        non-finite or not real numbers, or a light curve with zero counts in the used segments (its
        normalisation :math:`2/N_{ph}` is undefined); the message names the row.

    Notes
    -----
    The FFT is done in float64 with ``scipy.fft.rfft`` over blocks of rows (one call per block, segments
    and rows batched), so a C-ordered input is never copied as a whole: the only large allocation is the
    output.

    Examples
    --------
    >>> rng = np.random.default_rng(20261121)
    >>> counts = rng.poisson(50.0, size=(3, 4096))
    >>> ps = periodogram(counts, 0.01, segment_bins=512)
    >>> ps.n, ps.n_freq, ps.n_segments, int(ps.m[0])
    (3, 255, 8, 8)
    >>> bool(abs(ps.power.mean() - 2.0) < 0.05)
    True
    """
    norm = check_norm(norm)
    dt = _check_dt(dt)
    data = check_counts(counts, "counts")
    sampling = check_sampling(sampling)
    seg = check_segment_bins(segment_bins, data.shape[1])
    n_seg = data.shape[1] // seg
    segments = data[:, : n_seg * seg].reshape(data.shape[0], n_seg, seg)
    return _averaged_spectrum(segments, dt, norm, sampling)


def _segment_bins_from_size(segment_size: object, dt: float) -> tuple[float, int]:
    """Segment length fixed to a whole number of bins, as ``fix_segment_size_to_integer_samples``."""
    try:
        size = float(segment_size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"segment_size must be a finite number > 0 (s), got {segment_size!r}") from None
    if not (np.isfinite(size) and size > 0):
        raise ValueError(f"segment_size must be a finite number > 0 (s), got {segment_size!r}")
    ratio = size / dt
    n_bins = np.ceil(ratio) if np.ceil(ratio) - ratio < _SEGMENT_TOLERANCE else np.floor(ratio)
    if n_bins < 3:
        raise ValueError(
            f"segment_size must hold at least 3 bins of dt = {dt} s (>= {3 * dt} s), got {segment_size!r}"
        )
    return float(n_bins * dt), int(n_bins)


def _check_gti(gti: ArrayLike, index: int) -> NDArray[np.float64]:
    array = np.asarray(gti, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise ValueError(f"gti of file {index} must have shape (n_gti, 2) with n_gti >= 1, got {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array[:, 1] <= array[:, 0]):
        raise ValueError(f"gti of file {index} must be finite with start < stop in every row, got {array!r}")
    if np.any(array[1:, 0] < array[:-1, 1]):
        raise ValueError(f"gti of file {index} must be sorted and non-overlapping, got {array!r}")
    return array


def _segment_starts(gti: NDArray[np.float64], segment_length: float) -> NDArray[np.longdouble]:
    """Start times of the segments that fit fully in a GTI, as ``stingray.gti.time_intervals_from_gtis``.

    Segments start at the beginning of each GTI and follow each other without gaps; the arithmetic is done
    in long double, as Stingray does, so that events are assigned to exactly the same segments.
    """
    starts = [
        np.arange(g0, g1 - segment_length + _GTI_EPSILON, np.longdouble(segment_length), dtype=np.longdouble)
        for g0, g1 in gti
        if g1 - g0 + _GTI_EPSILON >= segment_length
    ]
    return np.concatenate(starts) if starts else np.array([], dtype=np.longdouble)


@numba.njit(nogil=True, cache=True)
def _histogram_segments(
    times: NDArray[np.float64],
    first: NDArray[np.intp],
    last: NDArray[np.intp],
    start_hi: NDArray[np.float64],
    start_lo: NDArray[np.float64],
    delta: float,
    out: NDArray[np.int64],
) -> None:  # pragma: no cover - compiled
    """Add the events ``times[first[s]:last[s]]`` of segment ``s`` into ``out[s]`` (one pass, no temporaries).

    The bin is Stingray's (``stingray.utils.hist1d_numba_seq``, used by ``AveragedPowerspectrum`` when numba
    is installed): ``x = (t - start) * delta`` with ``delta = 1 / (T_seg / L)``, counted in bin ``int(x)`` if
    ``0 <= x < L``. The segment start is a long double split into ``start_hi + start_lo``.
    """
    n_bins = out.shape[1]
    for s in range(first.size):
        hi = start_hi[s]
        lo = start_lo[s]
        for i in range(first[s], last[s]):
            x = ((times[i] - hi) - lo) * delta
            if 0.0 <= x < n_bins:
                out[s, int(x)] += 1


@numba.njit(nogil=True, cache=True)
def first_unsorted(times: NDArray[np.float64]) -> int:  # pragma: no cover - compiled
    """Index ``k`` of the first non-finite ``times[k]`` or decrease ``times[k + 1] < times[k]``; -1 if none.

    One pass without temporaries (sorted-and-finite is checked on every event list of every spectrum).
    """
    n = times.size
    for k in range(n):
        t = times[k]
        if not np.isfinite(t) or (k + 1 < n and times[k + 1] < t):
            return k
    return -1


def _search_long_double(times: NDArray[np.float64], bounds: NDArray[np.longdouble]) -> NDArray[np.intp]:
    """``times.searchsorted(bounds)`` for long double ``bounds``, without promoting ``times`` to long double.

    For float64 ``t`` and the float64 ``b`` nearest to the bound ``B``: ``t >= B`` is ``t > b`` or ``t == b``
    when ``b >= B``; so the left search for ``b`` is exact when ``b >= B`` and the right search otherwise.
    """
    rounded = bounds.astype(np.float64)
    left = times.searchsorted(rounded, side="left")
    right = times.searchsorted(rounded, side="right")
    return np.where(rounded >= bounds, left, right)


def _binned_segments(
    times: ArrayLike, gti: NDArray[np.float64], segment_length: float, n_bins: int, index: int
) -> NDArray[np.int64]:
    """Counts (M, L) of the events in each good segment holding at least 2 events (Stingray's rule)."""
    t = np.ascontiguousarray(times, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"times of file {index} must be a 1-D array of event times (s), got shape {t.shape}")
    if t.size == 0:
        raise ValueError(f"times of file {index} is empty: no events")
    k = first_unsorted(t)
    if k >= 0 and not np.isfinite(t[k : k + 2]).all():
        raise ValueError(f"times of file {index} must be finite")
    if k >= 0:
        raise ValueError(
            f"times of file {index} must be sorted in increasing order; times[{k}] = {t[k]!r} > "
            f"times[{k + 1}] = {t[k + 1]!r}"
        )
    starts = _segment_starts(gti, segment_length)
    if starts.size == 0:
        longest = float(np.max(gti[:, 1] - gti[:, 0]))
        raise ValueError(
            f"segment_size = {segment_length} s fits in no GTI of file {index}; "
            f"the longest GTI is {longest} s"
        )
    first, last = _segment_bounds(t, starts, segment_length)
    per_segment = last - first
    keep = per_segment >= 2  # Stingray skips segments with fewer than 2 events
    if not np.any(keep):
        raise ValueError(
            f"no segment of file {index} holds at least 2 events ({starts.size} segments of "
            f"{segment_length} s in the GTIs, {int(per_segment.sum())} events in them)"
        )
    return segment_counts(t, starts[keep], segment_length, n_bins)


def _segment_bounds(
    times: NDArray[np.float64], starts: NDArray[np.longdouble], segment_length: float
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Segment s holds ``times[first[s]:last[s]]``: ``start <= t < start + T_seg``, compared in long double as
    Stingray does (``generate_indices_of_segment_boundaries_unbinned``)."""
    bounds = _search_long_double(times, np.stack([starts, starts + np.longdouble(segment_length)]))
    return bounds[0], bounds[1]


def segment_counts(
    times: NDArray[np.float64], starts: NDArray[np.longdouble], segment_length: float, n_bins: int
) -> NDArray[np.int64]:
    """Counts (M, L) of sorted float64 event ``times`` in the segments ``[starts, starts + T_seg)``, every one
    kept (also those with fewer than 2 events), binned as Stingray bins events (:func:`_histogram_segments`).
    """
    first, last = _segment_bounds(times, starts, segment_length)
    start_hi = starts.astype(np.float64)
    start_lo = (starts - start_hi).astype(np.float64)
    out = np.zeros((first.size, n_bins), dtype=np.int64)
    _histogram_segments(times, first, last, start_hi, start_lo, 1.0 / (segment_length / n_bins), out)
    return out


def periodogram_from_events(
    times: ArrayLike | Sequence[ArrayLike],
    *,
    gti: ArrayLike | Sequence[ArrayLike],
    dt: float,
    segment_size: float,
    norm: Norm = "leahy",
) -> PowerSpectrum:
    """Averaged periodogram of one or several event lists, as ``AveragedPowerspectrum.from_events``.

    The GTIs are cut into consecutive segments of length :math:`T_{seg}` starting at the beginning of each
    GTI; only segments lying fully inside a GTI are used (``stingray.gti.time_intervals_from_gtis``).
    Segments holding fewer than 2 events are skipped, as Stingray does. The events of each segment are binned
    into :math:`L` bins of width ``dt`` and the periodograms are averaged as in :func:`periodogram`.

    Parameters
    ----------
    times : array_like of float, shape (n_events,), or sequence of such arrays
        Event arrival times, s, sorted in increasing order. A sequence of arrays gives a batch of spectra,
        one per event list ("file").
    gti : array_like, shape (n_gti, 2), or sequence of such arrays
        Good time intervals ``[[start, stop], ...]``, s, sorted and non-overlapping. One array is shared by
        all files; a sequence of 2-D arrays gives one per file.
    dt : float
        Bin time, s; finite and > 0.
    segment_size : float
        Segment length, s. Like Stingray, it is fixed to a whole number :math:`L` of bins: rounded down to a
        multiple of ``dt``, or up when within 1 % of a bin of the next multiple; :math:`L \\ge 3`. The
        value used is the output's ``segment_length``.
    norm : {"leahy", "frac", "abs"}, optional
        Normalisation of the output.

    Returns
    -------
    PowerSpectrum
        One spectrum per file, with ``m = M`` (the number of segments used, equal for all files),
        ``mean_rate`` = events in the used segments / (:math:`M T_{seg}`) and ``sampling = "continuous"``
        (photons counted in bins: the binning response of :mod:`xtml.reference.binning`).

    Raises
    ------
    ValueError
        For bad ``dt``, ``segment_size``, ``norm`` or GTIs, empty, non-finite or unsorted times, when no
        segment fits in any GTI (the message gives the longest GTI), when no segment holds 2 events, or when
        the files give different numbers of segments (the message names the file and its ``M``).

    Examples
    --------
    >>> rng = np.random.default_rng(20261121)
    >>> times = np.sort(rng.uniform(0.0, 100.0, 20000))
    >>> ps = periodogram_from_events(times, gti=[[0.0, 100.0]], dt=0.01, segment_size=10.0)
    >>> ps.n, ps.n_segments, ps.n_freq
    (1, 10, 499)
    """
    norm = check_norm(norm)
    dt = _check_dt(dt)
    segment_length, n_bins = _segment_bins_from_size(segment_size, dt)

    batched = isinstance(times, list | tuple) and len(times) > 0 and all(np.ndim(t) == 1 for t in times)
    event_lists = list(times) if batched else [times]  # type: ignore[arg-type]
    per_file_gti = isinstance(gti, list | tuple | np.ndarray) and len(gti) > 0 and np.ndim(gti[0]) == 2
    if per_file_gti:
        if len(gti) != len(event_lists):  # type: ignore[arg-type]
            raise ValueError(
                f"gti must be one (n_gti, 2) array or one per file; got {len(gti)} GTI arrays for "  # type: ignore[arg-type]
                f"{len(event_lists)} event lists"
            )
        gtis = [_check_gti(g, i) for i, g in enumerate(gti)]  # type: ignore[union-attr]
    else:
        shared = _check_gti(gti, 0)  # type: ignore[arg-type]
        gtis = [shared] * len(event_lists)

    counts = [
        _binned_segments(t, g, segment_length, n_bins, i)
        for i, (t, g) in enumerate(zip(event_lists, gtis, strict=True))
    ]
    n_seg = counts[0].shape[0]
    for i, c in enumerate(counts):
        if c.shape[0] != n_seg:
            raise ValueError(
                f"all files must give the same number of segments M; file 0 gives M = {n_seg}, "
                f"file {i} gives M = {c.shape[0]}"
            )
    return _averaged_spectrum(np.stack(counts), dt, norm, "continuous")
