"""Two-detector spectral products: cospectra and FAD-corrected power spectra, batched on the first axis.

Instruments such as NuSTAR have two identical, independent detectors (FPMA and FPMB), each with its own
dead time (~2.5 ms, non-paralyzable). Dead time suppresses and distorts the white-noise level of each
detector's power spectrum. Two products of the pair avoid or correct this:

* the **cospectrum**, the real part of the cross spectrum of the two detectors (Bachetti et al. 2015, ApJ
  800, 109): the counting noise of independent detectors is uncorrelated, so its white-noise level is zero
  whatever the dead time; its powers follow a Laplace distribution, not a chi-squared one (Huppenkothen &
  Bachetti 2018, ApJS 236, 13);
* the **FAD correction** (Fourier Amplitude Differences, Bachetti & Huppenkothen 2018, ApJ 853, L21): the
  difference of the Leahy-normalised Fourier amplitudes of the two detectors holds no source signal, only
  the (dead-time-distorted) noise; its smoothed squared modulus traces the noise level, by which each
  periodogram is divided.

Both functions take the two light curves as two arrays of equal shape ``(n, n_bins)`` (rows are
observations, the same row of both arrays is one simultaneous pair) and reproduce Stingray for the same
input: :func:`cospectrum` equals ``AveragedCrossspectrum(lc_a, lc_b, segment_size, norm=...).power.real``
and :func:`fad_correct` equals ``stingray.deadtime.fad.FAD(lc_a, lc_b, segment_size, norm=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import gaussian_filter1d

from xtml.timing.periodogram import _BLOCK_BYTES, _check_dt, _n_freq, check_counts, check_segment_bins
from xtml.timing.spectrum import Norm, PowerSpectrum, Sampling, _from_leahy_factor, check_norm, check_sampling

__all__ = ["FADResult", "cospectrum", "fad_correct"]

# Default FAD smoothing width, as ``stingray.deadtime.fad.FAD``: sigma = 3 * T_seg frequency bins (T_seg in
# s), i.e. a Gaussian of sigma = 3 Hz whatever the segment length.
_DEFAULT_SMOOTHING_HZ = 3.0


def _paired_segments(
    counts_a: ArrayLike, counts_b: ArrayLike, dt: object, segment_bins: object, *, required: bool
) -> tuple[NDArray, NDArray, float]:
    """Check a pair of light curves and cut both into segments of shape (n, M, L) (views)."""
    dt_ = _check_dt(dt)
    a = check_counts(counts_a, "counts_a")
    b = check_counts(counts_b, "counts_b")
    if a.shape != b.shape:
        raise ValueError(
            f"counts_b must have the same shape as counts_a (simultaneous light curves of the two "
            f"detectors), got {b.shape} and {a.shape}"
        )
    n_bins = a.shape[1]
    if segment_bins is None and required:
        raise ValueError(f"segment_bins must be an integer in [3, n_bins = {n_bins}], got None")
    seg = check_segment_bins(segment_bins, n_bins)
    n_seg = n_bins // seg
    shape = (a.shape[0], n_seg, seg)
    return a[:, : n_seg * seg].reshape(shape), b[:, : n_seg * seg].reshape(shape), dt_


def _row_blocks(n: int, n_seg: int, n_bins: int) -> range:
    """Start rows of blocks whose complex FFT buffers stay near ``_BLOCK_BYTES`` (as ``periodogram``)."""
    return range(0, n, max(1, _BLOCK_BYTES // (16 * n_seg * (n_bins // 2 + 1))))


def _rfft(block: NDArray) -> NDArray[np.complex128]:
    """float64 real FFT along the last axis (float32 input is upcast first, as in ``periodogram``)."""
    if block.dtype.kind == "f" and block.dtype != np.float64:
        block = block.astype(np.float64)
    return sp_fft.rfft(block, axis=-1, workers=-1)


def _spectrum(
    power: NDArray, mean_rate: NDArray, norm: Norm, n_bins: int, n_seg: int, dt: float, sampling: Sampling
) -> PowerSpectrum:
    """Wrap averaged powers on the Fourier grid ``j / (L dt)``, ``j = 1 .. (L-1)//2``, with ``m = M``."""
    n_freq = power.shape[1]
    return PowerSpectrum(
        freq=np.arange(1, n_freq + 1) * (1.0 / (n_bins * dt)),
        power=power,
        m=np.full(n_freq, n_seg, dtype=np.int64),
        df=np.full(n_freq, 1.0 / (n_bins * dt)),
        norm=norm,
        mean_rate=mean_rate,
        segment_length=n_bins * dt,
        dt=dt,
        n_segments=n_seg,
        sampling=sampling,
    )


def _zero_count_error(name: str, bad: NDArray[np.bool_], where: str) -> ValueError:
    """Error for rows (``bad`` of shape (n,) or (n, M)) in which a detector has no counts."""
    rows = np.flatnonzero(bad if bad.ndim == 1 else np.any(bad, axis=1))
    return ValueError(
        f"{name} rows {rows.tolist()[:10]} have zero counts {where}; the normalisation 2 / N_ph is undefined"
    )


def cospectrum(
    counts_a: ArrayLike,
    counts_b: ArrayLike,
    dt: float,
    *,
    norm: Norm = "leahy",
    segment_bins: int | None = None,
    sampling: Sampling = 1,
) -> PowerSpectrum:
    """Cospectra of simultaneous light curves of two independent detectors, averaged over segments.

    Each light curve is cut into :math:`M = \\lfloor n_{bins} / L \\rfloor` segments of :math:`L` bins (a
    trailing remainder is dropped). With :math:`F^a_{s,j}`, :math:`F^b_{s,j}` the Fourier transforms of
    segment :math:`s` of the two detectors and :math:`\\bar N_a`, :math:`\\bar N_b` their mean counts per
    segment, Stingray's common-mean normalisation (``AveragedCrossspectrum``, ``use_common_mean=True``) is

    .. math::

        C_j = \\frac{1}{M} \\sum_{s=1}^{M} \\mathrm{Re}\\left(F^{a*}_{s,j} F^b_{s,j}\\right), \\qquad
        \\bar N = \\sqrt{\\bar N_a \\bar N_b}, \\qquad \\mu = \\frac{\\bar N}{L\\,\\Delta t},

        C^{Leahy}_j = \\frac{2 C_j}{\\bar N}, \\qquad C^{frac}_j = \\frac{C^{Leahy}_j}{\\mu}, \\qquad
        C^{abs}_j = C^{frac}_j\\,\\mu^2 = \\frac{2 \\Delta t}{L} C_j,

    i.e. the periodogram normalisations with the geometric mean of the two detectors' counts (and rates).

    For independent detectors the counting noise, dead-time-affected or not, has zero mean in the
    cospectrum. The powers are **not** chi-squared: for pure Poisson noise a single Leahy cospectral power
    follows a Laplace distribution of scale 1 (variance 2), and the average of :math:`M` segments has
    variance :math:`2/M` (Huppenkothen & Bachetti 2018, ApJS 236, 13). A Whittle likelihood does not apply.

    Parameters
    ----------
    counts_a, counts_b : array_like, shape (n, n_bins) or (n_bins,)
        Counts per bin of detectors A and B (any real dtype; non-negative and finite), same shape; row ``i``
        of both arrays is one simultaneous observation. A 1-D input is one observation (n = 1).
    dt : float
        Bin time, s; finite and > 0.
    norm : {"leahy", "frac", "abs"}, optional
        Normalisation of the output.
    segment_bins : int, optional
        Bins per segment :math:`L`, ``3 <= segment_bins <= n_bins``. Default: the whole light curve (M = 1).
    sampling : int or "continuous", optional
        How the bins sample the source's rate (:attr:`~xtml.timing.PowerSpectrum.sampling`; default 1).

    Returns
    -------
    PowerSpectrum
        ``n`` cospectra with ``n_freq = (L - 1) // 2`` frequencies :math:`j / (L \\Delta t)` (zero and
        Nyquist excluded), ``m = M`` and ``mean_rate`` the geometric mean
        :math:`\\mu = \\sqrt{\\mu_a \\mu_b}` of the two detectors' mean rates, the rate used by the
        normalisation. Powers may be negative. The white-noise level of a cospectrum is 0, not
        :meth:`PowerSpectrum.poisson_level`.

    Raises
    ------
    ValueError
        For a bad ``dt``, ``norm`` or ``segment_bins``, inputs of different shapes, fewer than 3 bins, counts
        that are negative or non-finite, or a detector with zero counts in the used segments of a row.

    Notes
    -----
    Unlike Stingray, which skips segments in which either detector has no counts, every segment is kept, so
    that all rows share the same ``M`` (as :func:`xtml.timing.periodogram` does).

    Examples
    --------
    >>> rng = np.random.default_rng(20261121)
    >>> a, b = rng.poisson(5.0, size=(2, 3, 8192))
    >>> cs = cospectrum(a, b, 0.01, segment_bins=512)
    >>> cs.n, cs.n_freq, cs.n_segments
    (3, 255, 16)
    >>> bool(abs(cs.power.mean()) < 0.05)
    True
    """
    norm = check_norm(norm)
    seg_a, seg_b, dt = _paired_segments(counts_a, counts_b, dt, segment_bins, required=False)
    n, n_seg, n_bins = seg_a.shape
    n_freq = _n_freq(n_bins)
    cross = np.empty((n, n_freq), dtype=np.float64)
    total = np.empty((2, n), dtype=np.float64)
    blocks = _row_blocks(n, n_seg, n_bins)
    for start in blocks:
        rows = slice(start, start + blocks.step)
        fa, fb = _rfft(seg_a[rows]), _rfft(seg_b[rows])
        np.sum(fa[..., 0].real, axis=1, out=total[0, rows])
        np.sum(fb[..., 0].real, axis=1, out=total[1, rows])
        fa, fb = fa[..., 1 : n_freq + 1], fb[..., 1 : n_freq + 1]
        # Re(conj(F_a) F_b), summed over segments in order (Stingray's running sum).
        np.sum(fa.real * fb.real + fa.imag * fb.imag, axis=1, out=cross[rows])
    for name, tot in zip(("counts_a", "counts_b"), total, strict=True):
        if not np.all(tot > 0):
            raise _zero_count_error(name, tot <= 0, f"in the {n_seg} used segment(s)")
    n_ph = np.sqrt((total[0] / n_seg) * (total[1] / n_seg))  # geometric mean counts per segment
    mean_rate = n_ph / (n_bins * dt)
    factor = 2.0 / n_ph * _from_leahy_factor(norm, mean_rate) / n_seg
    return _spectrum(cross * factor[:, None], mean_rate, norm, n_bins, n_seg, dt, check_sampling(sampling))


@dataclass(frozen=True, eq=False)
class FADResult:
    """FAD-corrected spectra of a pair of detectors (Bachetti & Huppenkothen 2018), see :func:`fad_correct`.

    Parameters
    ----------
    power_a, power_b : PowerSpectrum
        Corrected power spectra of detectors A and B; ``mean_rate`` is each detector's mean rate.
    power_total : PowerSpectrum
        Corrected power spectrum of the summed light curve A + B; ``mean_rate`` is the summed rate.
    cospectrum : PowerSpectrum
        Corrected cospectrum (real part of the cross spectrum); ``mean_rate`` is the geometric mean
        :math:`\\sqrt{\\mu_a \\mu_b}`.
    fad_delta : ndarray, shape (n,)
        Stingray's compliance diagnostic ``meta["fad_delta"]``: the relative deviation
        :math:`(\\sigma - \\sigma_{th}) / \\sigma_{th}` of the standard deviation of the averaged, corrected
        Fourier differences from its expectation :math:`\\sigma_{th} = 2 / \\sqrt{M}`. Stingray warns when
        :math:`|\\delta| \\ge 0.05`.

    Raises
    ------
    ValueError
        If the four spectra do not share one frequency grid and batch size, or ``fad_delta`` has the wrong
        shape.
    """

    power_a: PowerSpectrum
    power_b: PowerSpectrum
    power_total: PowerSpectrum
    cospectrum: PowerSpectrum
    fad_delta: NDArray[np.float64]

    def __post_init__(self) -> None:
        spectra = {"power_a": self.power_a, "power_b": self.power_b, "power_total": self.power_total}
        spectra["cospectrum"] = self.cospectrum
        for name, spectrum in spectra.items():
            if not isinstance(spectrum, PowerSpectrum):
                raise ValueError(f"{name} must be a PowerSpectrum, got {type(spectrum).__name__}")
            if spectrum.n != self.power_a.n or not np.array_equal(spectrum.freq, self.power_a.freq):
                raise ValueError(f"{name} must have the batch size and frequencies of power_a")
        delta = np.asarray(self.fad_delta, dtype=np.float64)
        if delta.shape != (self.power_a.n,):
            raise ValueError(f"fad_delta must have shape ({self.power_a.n},), got {delta.shape}")
        delta.flags.writeable = False
        object.__setattr__(self, "fad_delta", delta)

    @property
    def n(self) -> int:
        """Number of observations in the batch."""
        return self.power_a.n


def fad_correct(
    counts_a: ArrayLike,
    counts_b: ArrayLike,
    dt: float,
    *,
    segment_bins: int,
    smoothing_length: float | None = None,
    norm: Norm = "leahy",
    sampling: Sampling = 1,
) -> FADResult:
    """Dead-time-corrected spectra of two independent detectors with the FAD method, as Stingray's ``FAD``.

    Fourier Amplitude Difference correction (Bachetti & Huppenkothen 2018, ApJ 853, L21). For each segment
    :math:`s` (of :math:`M`, :math:`L` bins each) with counts :math:`N_{a,s}`, :math:`N_{b,s}` and Fourier
    transforms :math:`F^a_{s,j}`, :math:`F^b_{s,j}` at the positive frequencies below Nyquist:

    .. math::

        D_{s,j} = \\mathrm{Re}\\left(F^a_{s,j} \\sqrt{2/N_{a,s}} - F^b_{s,j} \\sqrt{2/N_{b,s}}\\right),
        \\qquad S_{s,j} = (G_\\sigma * D_s^2)_j,

        P^{a}_{j} = \\frac{1}{M} \\sum_s \\frac{2}{N_{a,s}} \\frac{2 |F^a_{s,j}|^2}{S_{s,j}}, \\qquad
        C_j = \\frac{1}{M} \\sum_s \\frac{2}{\\sqrt{N_{a,s} N_{b,s}}}
        \\frac{2\\,\\mathrm{Re}(F^{a*}_{s,j} F^b_{s,j})}{S_{s,j}}

    (Leahy; likewise :math:`P^b` and the power of the summed light curve, normalised by
    :math:`N_{a,s} + N_{b,s}`). :math:`G_\\sigma` is a Gaussian filter along frequency of standard deviation
    :math:`\\sigma` = ``smoothing_length`` bins (``scipy.ndimage.gaussian_filter1d``, ``mode="reflect"``,
    truncated at :math:`4\\sigma`). For counting noise :math:`E[D^2] = 2`, so without dead time
    :math:`S \\approx 2` and the correction is the identity; with dead time :math:`S` follows the distorted
    white-noise level, and the corrected Leahy powers of noise have mean 2 again.

    Two details follow Stingray exactly and are worth knowing: only the **real part** of the amplitude
    difference is squared and smoothed (both parts have the same expectation); and each segment is normalised
    with **its own** counts :math:`N_{s}` before averaging (Stingray's FAD does not use the common mean of
    ``AveragedPowerspectrum``), so for ``"frac"`` each segment is divided by its own rate
    :math:`\\mu_s = N_s / (L \\Delta t)`. Hence :meth:`PowerSpectrum.to_norm`, which uses the mean rate,
    converts FAD spectra between normalisations only approximately (exactly when all segments have equal
    counts).

    Parameters
    ----------
    counts_a, counts_b : array_like, shape (n, n_bins) or (n_bins,)
        Counts per bin of detectors A and B (non-negative, finite, same shape); row ``i`` of both is one
        simultaneous observation. The detectors must be independent (no dead-time cross-talk) and have similar
        responses.
    dt : float
        Bin time, s; finite and > 0.
    segment_bins : int
        Bins per segment :math:`L`, ``3 <= segment_bins <= n_bins``; the trailing remainder is dropped. The
        method needs many segments (Stingray recommends at least 30).
    smoothing_length : float, optional
        Standard deviation :math:`\\sigma` of the Gaussian smoothing, in frequency bins; finite and > 0.
        Default, as Stingray: :math:`3 T_{seg}` with :math:`T_{seg} = L \\Delta t` in seconds, i.e. a Gaussian
        of 3 Hz standard deviation.
    norm : {"leahy", "frac", "abs"}, optional
        Normalisation of the outputs (per segment, see above). Stingray's ``FAD`` defaults to ``"frac"``.
    sampling : int or "continuous", optional
        How the bins sample the source's rate (:attr:`~xtml.timing.PowerSpectrum.sampling`; default 1).

    Returns
    -------
    FADResult
        ``power_a``, ``power_b``, ``power_total`` and ``cospectrum``, each with ``n`` spectra on the
        frequencies :math:`j / T_{seg}`, :math:`j = 1, \\dots, \\lfloor (L-1)/2 \\rfloor`, ``m = M``, and
        ``mean_rate`` the mean rate over the segments (geometric mean of the two for the cospectrum); plus
        Stingray's compliance diagnostic ``fad_delta``.

    Raises
    ------
    ValueError
        For a bad ``dt``, ``norm``, ``segment_bins`` or ``smoothing_length``, inputs of different shapes,
        negative or non-finite counts, a segment in which a detector has zero counts (the message names the
        rows), or a smoothed difference that vanishes (identical light curves).

    Notes
    -----
    FAD is accurate for fractional rms below ~40 % and becomes biased upward above ~500 ct/s and 40 % rms
    (Bachetti & Huppenkothen 2018). The Gaussian reflects at the zero and Nyquist ends of the frequency range,
    so the correction is least accurate within a few :math:`\\sigma` of them where the dead-time white-noise
    level curves.

    Examples
    --------
    >>> rng = np.random.default_rng(20261121)
    >>> a, b = rng.poisson(2.0, size=(2, 1, 64 * 1024))
    >>> fad = fad_correct(a, b, 1 / 128, segment_bins=1024)
    >>> fad.power_a.n_segments, fad.power_a.n_freq
    (64, 511)
    >>> bool(abs(fad.power_a.power.mean() - 2.0) < 0.1)
    True
    """
    norm = check_norm(norm)
    seg_a, seg_b, dt = _paired_segments(counts_a, counts_b, dt, segment_bins, required=True)
    n, n_seg, n_bins = seg_a.shape
    segment_length = n_bins * dt
    if smoothing_length is None:
        sigma = _DEFAULT_SMOOTHING_HZ * segment_length
    else:
        try:
            sigma = float(smoothing_length)
        except (TypeError, ValueError):
            raise ValueError(
                f"smoothing_length must be a finite number > 0 (frequency bins), got {smoothing_length!r}"
            ) from None
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(
                f"smoothing_length must be a finite number > 0 (frequency bins), got {smoothing_length!r}"
            )
    n_freq = _n_freq(n_bins)
    out = np.empty((4, n, n_freq), dtype=np.float64)  # a, b, total, cospectrum
    counts = np.empty((2, n, n_seg), dtype=np.float64)
    diff_std = np.empty(n, dtype=np.float64)
    blocks = _row_blocks(n, n_seg, n_bins)
    for start in blocks:
        rows = slice(start, start + blocks.step)
        fa, fb = _rfft(seg_a[rows]), _rfft(seg_b[rows])
        na, nb = fa[..., 0].real, fb[..., 0].real  # counts per segment, shape (rows, M)
        for name, nph in (("counts_a", na), ("counts_b", nb)):
            if not np.all(nph > 0):
                bad = np.zeros((n, n_seg), dtype=bool)
                bad[rows] = nph <= 0
                raise _zero_count_error(name, bad, "in at least one segment (FAD normalises each segment)")
        counts[0, rows], counts[1, rows] = na, nb
        fa, fb = fa[..., 1 : n_freq + 1], fb[..., 1 : n_freq + 1]
        scale_a, scale_b = np.sqrt(2.0 / na)[..., None], np.sqrt(2.0 / nb)[..., None]
        diff = fa * scale_a - fb * scale_b
        smooth = gaussian_filter1d(diff.real**2, sigma, axis=-1)
        if not np.all(smooth > 0):
            bad = np.flatnonzero(np.any(smooth <= 0, axis=(1, 2))) + start
            raise ValueError(
                f"the smoothed Fourier amplitude difference vanishes in rows {bad.tolist()[:10]}: "
                "counts_a and counts_b must be independent light curves, not copies"
            )
        weight = 2.0 / smooth
        # Stingray's diagnostic: the std over frequency of mean_s(D_s sqrt(2 / S_s)), complex D_s.
        diff_std[rows] = np.std(np.mean(diff * np.sqrt(weight), axis=1), axis=-1)
        total = fa + fb
        spectra = (
            (fa.real**2 + fa.imag**2, na),
            (fb.real**2 + fb.imag**2, nb),
            (total.real**2 + total.imag**2, na + nb),
            (fa.real * fb.real + fa.imag * fb.imag, np.sqrt(na * nb)),
        )
        for k, (unnorm, nph) in enumerate(spectra):
            factor = 2.0 / nph * _from_leahy_factor(norm, nph / segment_length)
            np.mean(unnorm * weight * factor[..., None], axis=1, out=out[k, rows])
    rate_a, rate_b = counts.mean(axis=2) / segment_length
    rates = (rate_a, rate_b, rate_a + rate_b, np.sqrt(rate_a * rate_b))
    power_a, power_b, power_total, cs = (
        _spectrum(out[k], rates[k], norm, n_bins, n_seg, dt, check_sampling(sampling)) for k in range(4)
    )
    theory = 2.0 / np.sqrt(n_seg)
    return FADResult(power_a, power_b, power_total, cs, fad_delta=(diff_std - theory) / theory)
