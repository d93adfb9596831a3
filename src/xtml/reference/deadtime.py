"""Analytic dead-time references: detected rates and the Zhang et al. (1995) power spectrum.

After recording an event a detector is blind for a dead time :math:`\\tau_d`. For a constant incident rate
:math:`r` the detected rate is

.. math::

    r_d = \\frac{r}{1 + r \\tau_d} \\quad \\text{(non-paralyzable)}, \\qquad
    r_d = r\\, e^{-r \\tau_d} \\quad \\text{(paralyzable)}.

Dead time also correlates the counts in nearby bins: the Leahy power spectrum of dead-time-affected Poisson
noise is no longer flat at 2 but dips below it at low frequencies and oscillates with period
:math:`1/\\tau_d` (NuSTAR: ~2.5 ms, non-paralyzable). Zhang, Jahoda, Swank et al. (1995, ApJ 449, 930),
Eq. 44, give it for non-paralyzable dead time and a segment of :math:`N` bins of width :math:`t_b`:

.. math::

    P_j = B_0 + \\sum_{k=1}^{K-1} \\frac{N-k}{N}\\, B_k \\cos\\left(\\frac{2\\pi j k}{N}\\right),
    \\qquad f_j = \\frac{j}{N t_b},

with :math:`K = \\min(N, \\text{limit\\_k})` and :math:`B_k` the normalised autocovariance of the counts at
lag :math:`k` bins (Eqs. 34-45, :func:`zhang_coefficients`). Stingray implements this as
``stingray.deadtime.model.pds_model_zhang``; :func:`zhang_leahy` returns the same numbers (tested to
``rtol=1e-8``, measured ~1e-11) but computes the :math:`B_k` once instead of once per frequency, and sums the
series with one real FFT, so 32,768 bins take milliseconds instead of seconds.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammainc, lambertw

from xtml.simulate.deadtime import DeadTimeKind, check_kind

__all__ = [
    "DeadTimeKind",
    "detected_rate",
    "incident_rate",
    "zhang_coefficients",
    "zhang_leahy",
    "zhang_leahy_at",
    "zhang_leahy_for_spectrum",
]

FloatArray = NDArray[np.float64]

_INV_E = float(np.exp(-1.0))
# Rows of the cosine matrix evaluated at once in zhang_leahy_at (keeps the temporary near 30 MB).
_BLOCK_ROWS = 1 << 16
# Terms of the n-sum per block in _lag_sum (bounds memory when bin_time >> dead_time).
_BLOCK_TERMS = 1 << 20


# ---------------------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------------------


def _nonnegative_array(value: ArrayLike, name: str, unit: str) -> FloatArray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be finite and >= 0 {unit}, got {value!r}") from None
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        first = float(array[bad].flat[0])
        raise ValueError(f"{name} must be finite and >= 0 {unit}, got {first!r}")
    return array


def _scalar(value: object, name: str, unit: str, *, positive: bool) -> float:
    relation = "> 0" if positive else ">= 0"
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number {relation} {unit}, got {value!r}") from None
    if not np.isfinite(out) or out < 0 or (positive and out == 0):
        raise ValueError(f"{name} must be a finite number {relation} {unit}, got {value!r}")
    return out


def _integer(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _zhang_rates(rate: float, dead_time: float, rate_is_incident: bool) -> tuple[float, float]:
    """Detected rate ``r0`` and mean incident waiting time ``tau = 1 / r_in``, as Stingray computes them."""
    rate = _scalar(rate, "rate", "ct/s", positive=True)
    if rate_is_incident:
        return 1.0 / (1.0 / rate + dead_time), 1.0 / rate
    if rate * dead_time >= 1.0:
        raise ValueError(
            f"rate (detected) must be < 1 / dead_time = {1.0 / dead_time!r} ct/s for non-paralyzable dead "
            f"time, got {rate!r}"
        )
    return rate, 1.0 / rate - dead_time


# ---------------------------------------------------------------------------------------------------------
# detected and incident rates
# ---------------------------------------------------------------------------------------------------------


def detected_rate(rate: ArrayLike, dead_time: ArrayLike, kind: DeadTimeKind = "nonparalyzable") -> FloatArray:
    """Detected count rate of a constant incident rate behind a dead time.

    .. math::

        r_d = \\frac{r}{1 + r\\tau_d} \\ \\text{(non-paralyzable)}, \\qquad
        r_d = r\\,e^{-r\\tau_d} \\ \\text{(paralyzable)}.

    Parameters
    ----------
    rate : array_like
        Incident count rate :math:`r`, ct/s; finite and >= 0.
    dead_time : array_like
        Dead time :math:`\\tau_d`, s; finite and >= 0. Broadcast against ``rate``.
    kind : {"nonparalyzable", "paralyzable"}, optional
        Dead-time kind.

    Returns
    -------
    ndarray of float64, broadcast shape of ``rate`` and ``dead_time``
        Detected count rate, ct/s (0-d for scalar inputs).

    Raises
    ------
    ValueError
        If ``kind`` is unknown or ``rate`` or ``dead_time`` is negative or not finite.

    Examples
    --------
    >>> float(detected_rate(500.0, 2.5e-3))
    222.22222222222223
    >>> np.round(detected_rate([100.0, 1000.0], 1e-3, kind="paralyzable"), 3)
    array([ 90.484, 367.879])
    """
    kind = check_kind(kind)
    r = _nonnegative_array(rate, "rate", "ct/s")
    tau = _nonnegative_array(dead_time, "dead_time", "s")
    if kind == "nonparalyzable":
        return np.asarray(r / (1.0 + r * tau))
    return np.asarray(r * np.exp(-r * tau))


def incident_rate(
    detected: ArrayLike, dead_time: ArrayLike, kind: DeadTimeKind = "nonparalyzable"
) -> FloatArray:
    """Incident count rate that gives a detected rate: the inverse of :func:`detected_rate`.

    .. math::

        r = \\frac{r_d}{1 - r_d\\tau_d} \\ \\text{(non-paralyzable, needs } r_d\\tau_d < 1),
        \\qquad
        r = -\\frac{W_0(-r_d\\tau_d)}{\\tau_d} \\ \\text{(paralyzable, needs } r_d\\tau_d \\le 1/e),

    with :math:`W_0` the principal branch of the Lambert W function. A paralyzable detector reaches its
    largest detected rate :math:`1/(e\\tau_d)` at :math:`r = 1/\\tau_d`, and every smaller detected rate comes
    from two incident rates; the low one (:math:`r\\tau_d \\le 1`) is returned. The high one is
    ``-scipy.special.lambertw(-detected * dead_time, k=-1).real / dead_time``.

    Parameters
    ----------
    detected : array_like
        Detected count rate :math:`r_d`, ct/s; finite and >= 0.
    dead_time : array_like
        Dead time :math:`\\tau_d`, s; finite and >= 0. Broadcast against ``detected``.
    kind : {"nonparalyzable", "paralyzable"}, optional
        Dead-time kind.

    Returns
    -------
    ndarray of float64, broadcast shape of ``detected`` and ``dead_time``
        Incident count rate, ct/s (0-d for scalar inputs).

    Raises
    ------
    ValueError
        If ``kind`` is unknown, an input is negative or not finite, or no incident rate gives ``detected``
        (:math:`r_d \\tau_d \\ge 1` non-paralyzable, :math:`r_d \\tau_d > 1/e` paralyzable).

    Examples
    --------
    >>> round(float(incident_rate(detected_rate(500.0, 2.5e-3), 2.5e-3)), 9)
    500.0
    >>> r = incident_rate(detected_rate([10.0, 300.0], 1e-3, "paralyzable"), 1e-3, "paralyzable")
    >>> np.allclose(r, [10.0, 300.0], rtol=1e-12)
    True
    """
    kind = check_kind(kind)
    rd = _nonnegative_array(detected, "detected", "ct/s")
    tau = _nonnegative_array(dead_time, "dead_time", "s")
    rd, tau = np.broadcast_arrays(rd, tau)
    z = rd * tau
    if kind == "nonparalyzable":
        if np.any(z >= 1.0):
            i = np.flatnonzero((z >= 1.0).ravel())[0]
            raise ValueError(
                "detected must be < 1 / dead_time for non-paralyzable dead time (no incident rate gives it), "
                f"got detected={float(rd.flat[i])!r} ct/s with dead_time={float(tau.flat[i])!r} s"
            )
        return np.asarray(rd / (1.0 - z))
    # Allow a few ulp of rounding at the maximum r_d tau = 1/e, where W_0 = -1 (scipy returns NaN there).
    too_high = z > _INV_E * (1.0 + 1e-12)
    if np.any(too_high):
        i = np.flatnonzero(too_high.ravel())[0]
        raise ValueError(
            "detected * dead_time must be <= 1/e for paralyzable dead time (the largest detectable rate is "
            f"1 / (e dead_time)), got detected={float(rd.flat[i])!r} ct/s with "
            f"dead_time={float(tau.flat[i])!r} s"
        )
    y = np.where(z >= _INV_E, 1.0, -lambertw(-np.minimum(z, _INV_E * (1 - 1e-15))).real)  # y = r tau
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(tau > 0, y / np.where(tau > 0, tau, 1.0), rd)
    return np.asarray(r)


# ---------------------------------------------------------------------------------------------------------
# Zhang et al. (1995)
# ---------------------------------------------------------------------------------------------------------


def _lag_sum(k: int, td_tb: float, tau_tb: float) -> float:
    """:math:`S_k = \\sum_{n \\ge 1} h(k, n)`, Zhang's Eq. 35 summed over n (``td_tb = tau_d / t_b``, ...).

    Zhang's :math:`h(k, n) = k - n(\\tau_d+\\tau)/t_b + (\\tau/t_b)\\,G_n(x)`, with
    :math:`x = (k t_b - n\\tau_d)/\\tau \\ge 0` (else 0) and
    :math:`G_n(x) = \\sum_{m<n} (n-m)\\,e^{-x}x^m/m!` (Eq. 34), is written without cancellation as

    .. math::

        h(k, n) = \\frac{\\tau}{t_b}\\,E[(M - n)_+] = \\frac{\\tau}{t_b}
        \\left[x\\,P(M \\ge n-1) - n\\,P(M \\ge n)\\right], \\qquad M \\sim \\mathrm{Poisson}(x),

    with :math:`P(M \\ge n)` the regularised lower incomplete gamma function ``gammainc(n, x)``. Terms with
    :math:`n > x + 12\\sqrt{x} + 40` are below 1e-30 of the others and are skipped, so the cost is set by the
    photons in ``k`` bins rather than by ``t_b / tau_d``.
    """
    if k == 0:
        return 0.0
    # x(n) = (k - n td_tb) / tau_tb >= 0  <=>  n <= k / td_tb; E[(M-n)+] is negligible once n >> x.
    n_zero = np.inf if td_tb == 0 else k / td_tb
    n_cross = k / (td_tb + tau_tb)  # where x(n) = n
    n_max = int(min(np.floor(n_zero), np.ceil(n_cross + 12.0 * np.sqrt(n_cross) + 40.0)))
    total = 0.0
    for start in range(1, n_max + 1, _BLOCK_TERMS):
        n = np.arange(start, min(n_max, start + _BLOCK_TERMS - 1) + 1, dtype=np.float64)
        x = np.maximum((k - n * td_tb) / tau_tb, 0.0)
        tail_nm1 = gammainc(np.maximum(n - 1.0, 1.0), x)
        excess = x * tail_nm1 - n * gammainc(n, x)
        if start == 1:  # n = 1: E[(M-1)+] = x - 1 + e^-x (P(M >= 0) = 1)
            excess[0] = x[0] + np.expm1(-x[0])
        total += float(excess.sum())
    return tau_tb * total


def zhang_coefficients(
    rate: float,
    dead_time: float,
    bin_time: float,
    *,
    rate_is_incident: bool = True,
    limit_k: int = 60,
) -> FloatArray:
    """The coefficients :math:`B_k` of the Zhang et al. (1995) dead-time power spectrum, k < ``limit_k``.

    With :math:`r_0` the detected rate, :math:`\\tau` the mean incident waiting time and
    :math:`S_k = \\sum_{n\\ge1} h(k, n)` (Eq. 35, see ``_lag_sum``), Eqs. 38, 39 and 45 read

    .. math::

        A_0 = r_0 t_b (1 + 2 S_1), \\qquad A_k = r_0 t_b (S_{k+1} - 2 S_k + S_{k-1}),

        B_0 = \\frac{2 (A_0 - r_0^2 t_b^2)}{r_0 t_b}, \\qquad
        B_k = \\frac{4 (A_k - r_0^2 t_b^2)}{r_0 t_b} \\ (k \\ge 1).

    :math:`A_k` is the mean product of the counts in two bins ``k`` apart, so :math:`B_0/2` and
    :math:`B_k/4` are the autocovariances of the counts at lags 0 and ``k`` divided by the mean counts per
    bin (lags :math:`\\pm k` both enter the spectrum); without dead time :math:`B_0 = 2` and
    :math:`B_{k\\ge1} = 0`, and :math:`\\sum_k B_k = 2 / (1 + r\\tau_d)^2` is twice the Fano factor of the
    counts in a long window. These are Stingray's ``B(k, r0, td, tb, tau, limit_k)``
    (``stingray.deadtime.model``), computed without Stingray's cancellation-prone form of :math:`h`: the two
    agree to ~1e-11, and against a 40-digit evaluation of Zhang's sums the errors are ~3e-13 here and
    ~2e-11 in Stingray (``bin_time = 10 dead_time``).

    Parameters
    ----------
    rate : float
        Count rate, ct/s, > 0: incident if ``rate_is_incident`` else detected (then < 1 / ``dead_time``).
    dead_time : float
        Non-paralyzable dead time :math:`\\tau_d`, s, >= 0.
    bin_time : float
        Bin time :math:`t_b` of the light curve, s, > 0.
    rate_is_incident : bool, optional
        Whether ``rate`` is the incident (default) or the detected count rate.
    limit_k : int, optional
        Number of coefficients, >= 1 (Stingray's ``limit_k``: lags ``k >= limit_k`` are taken as 0; check
        that the returned :math:`B_k` have decayed, as Stingray's ``check_B`` plots). With NuSTAR-like bins
        the default 60 suits :math:`r\\tau_d \\lesssim 5`; a saturated detector rings for longer (at
        :math:`r\\tau_d = 50`, 60 lags give negative low-frequency powers and ~1000 are needed; the cost
        grows as ``limit_k**2``).

    Returns
    -------
    ndarray of float64, shape (limit_k,)
        :math:`B_0, \\dots, B_{limit\\_k - 1}` (dimensionless, Leahy units).

    Raises
    ------
    ValueError
        If an argument is out of its range (the message names it).

    Examples
    --------
    >>> b = zhang_coefficients(500.0, 2.5e-3, 1 / 512)
    >>> b.shape, round(float(b[0]), 6), round(float(b[1]), 6)
    ((60,), 1.131944, -0.924444)
    >>> zhang_coefficients(500.0, 0.0, 1 / 512, limit_k=3)
    array([2., 0., 0.])
    """
    dead_time = _scalar(dead_time, "dead_time", "s", positive=False)
    bin_time = _scalar(bin_time, "bin_time", "s", positive=True)
    limit_k = _integer(limit_k, "limit_k", 1)
    r0, tau = _zhang_rates(rate, dead_time, rate_is_incident)
    b = np.zeros(limit_k)
    if dead_time == 0:
        b[0] = 2.0
        return b
    r_tb = r0 * bin_time
    s = np.array([_lag_sum(k, dead_time / bin_time, tau / bin_time) for k in range(limit_k + 1)])
    b[0] = 2.0 * (1.0 + 2.0 * s[1]) - 2.0 * r_tb
    b[1:] = 4.0 * (s[2 : limit_k + 1] - 2.0 * s[1:limit_k] + s[0 : limit_k - 1]) - 4.0 * r_tb
    return b


def _grid_power(n_bins: int, b: FloatArray) -> FloatArray:
    """Zhang's :math:`P_j` for ``j = 0 .. n_bins // 2``, shape (n_bins // 2 + 1,), by one real FFT.

    :math:`\\sum_k c_k \\cos(2\\pi jk/N) = \\mathrm{Re}\\,\\mathrm{rfft}(c)_j` with
    :math:`c_k = \\frac{N-k}{N} B_k` for :math:`1 \\le k < K` and 0 otherwise: exact, and
    :math:`O(N \\log N)` rather than the :math:`O(NK)` of a cosine-matrix product.
    """
    n_k = min(n_bins, b.size)
    c = np.zeros(n_bins)
    k = np.arange(1, n_k)
    c[1:n_k] = (n_bins - k) / n_bins * b[1:n_k]
    return b[0] + scipy.fft.rfft(c).real


def zhang_leahy(
    n_bins: int,
    rate: float,
    dead_time: float,
    bin_time: float,
    *,
    rate_is_incident: bool = True,
    limit_k: int = 60,
) -> tuple[FloatArray, FloatArray]:
    """Dead-time-modified Leahy power spectrum of Poisson noise (Zhang et al. 1995), as Stingray returns it.

    A fast drop-in for ``stingray.deadtime.model.pds_model_zhang(n_bins, rate, dead_time, bin_time,
    limit_k, rate_is_incident)``: same frequency grid, same powers (module docstring, Eq. 44):

    .. math::

        P_j = B_0 + \\sum_{k=1}^{K-1} \\frac{N-k}{N} B_k \\cos\\left(\\frac{2\\pi jk}{N}\\right),
        \\quad j = 0, \\dots, \\lfloor N/2 \\rfloor - 1, \\qquad K = \\min(N, \\text{limit\\_k}).

    Mind Stingray's conventions, kept here for equality: the first value is :math:`j = 0` (zero frequency,
    not a periodogram bin), the Nyquist frequency is left out, and the frequencies are
    ``arange(N // 2) * (0.5 / bin_time) / (N // 2)``, which equals :math:`j/(N t_b)` only for even ``N``
    (for odd ``N`` it is :math:`j/((N-1) t_b)` while the powers are those at :math:`j/(N t_b)`). To compare
    with an xtml :class:`~xtml.timing.PowerSpectrum` use :func:`zhang_leahy_for_spectrum`.

    Parameters
    ----------
    n_bins : int
        Bins :math:`N` of the light-curve segment, >= 2 (Stingray's ``N``; it returns ``N // 2`` powers).
    rate : float
        Count rate, ct/s, > 0: incident if ``rate_is_incident`` else detected (then < 1 / ``dead_time``).
    dead_time : float
        Non-paralyzable dead time, s, >= 0.
    bin_time : float
        Bin time :math:`t_b`, s, > 0.
    rate_is_incident : bool, optional
        Whether ``rate`` is the incident (default) or the detected count rate.
    limit_k : int, optional
        Lags kept in the sum, >= 1 (:func:`zhang_coefficients`).

    Returns
    -------
    freq : ndarray of float64, shape (n_bins // 2,)
        Stingray's frequency grid, Hz (see above).
    power : ndarray of float64, shape (n_bins // 2,)
        Leahy-normalised power, normalised with the detected counts (2 without dead time).

    Raises
    ------
    ValueError
        If an argument is out of its range (the message names it).

    Examples
    --------
    >>> freq, power = zhang_leahy(4096, 500.0, 2.5e-3, 1 / 512)
    >>> freq.shape, float(freq[1]), np.round(power[[0, 1, -1]], 4)
    ((2048,), 0.125, array([0.3952, 0.3952, 2.3271]))
    """
    n_bins = _integer(n_bins, "n_bins", 2)
    b = zhang_coefficients(rate, dead_time, bin_time, rate_is_incident=rate_is_incident, limit_k=limit_k)
    half = n_bins // 2
    power = _grid_power(n_bins, b)[:half]
    freq = np.arange(half) * ((0.5 / float(bin_time)) / half)
    return freq, power


def zhang_leahy_for_spectrum(
    n_bins: int,
    rate: float,
    dead_time: float,
    bin_time: float,
    *,
    rate_is_incident: bool = True,
    limit_k: int = 60,
) -> FloatArray:
    """Zhang et al. (1995) Leahy model on the frequency grid of an xtml periodogram of ``n_bins`` bins.

    ``xtml.timing.periodogram(counts, bin_time, segment_bins=n_bins)`` has frequencies
    :math:`f_j = j/(N t_b)`, :math:`j = 1, \\dots, \\lfloor (N-1)/2 \\rfloor`; this returns :math:`P_j` at
    exactly those :math:`j`. In terms of :func:`zhang_leahy` (and Stingray's ``pds_model_zhang``, whose
    index is :math:`j` itself, starting at 0) this is ``zhang_leahy(...)[1][1:(N - 1) // 2 + 1]`` for even
    ``N``; for odd ``N`` the last value (:math:`j = (N-1)/2`) is missing there and is computed here.

    Parameters
    ----------
    n_bins : int
        Bins :math:`N` per segment of the periodogram, >= 3.
    rate, dead_time, bin_time, rate_is_incident, limit_k
        As in :func:`zhang_leahy`. Give the incident rate, or the detected rate with
        ``rate_is_incident=False`` (e.g. ``PowerSpectrum.mean_rate`` of the detected events).

    Returns
    -------
    ndarray of float64, shape ((n_bins - 1) // 2,)
        Expected Leahy power (normalised with the detected counts) at ``PowerSpectrum.freq``.

    Raises
    ------
    ValueError
        If an argument is out of its range (the message names it).

    Examples
    --------
    >>> p = zhang_leahy_for_spectrum(4096, 500.0, 2.5e-3, 1 / 512)
    >>> p.shape, bool(np.allclose(p, zhang_leahy(4096, 500.0, 2.5e-3, 1 / 512)[1][1:], rtol=1e-12))
    ((2047,), True)
    """
    n_bins = _integer(n_bins, "n_bins", 3)
    b = zhang_coefficients(rate, dead_time, bin_time, rate_is_incident=rate_is_incident, limit_k=limit_k)
    return _grid_power(n_bins, b)[1 : (n_bins - 1) // 2 + 1]


def zhang_leahy_at(
    freq: ArrayLike,
    n_bins: int,
    rate: float,
    dead_time: float,
    bin_time: float,
    *,
    rate_is_incident: bool = True,
    limit_k: int = 60,
) -> FloatArray:
    """Zhang et al. (1995) Leahy model at arbitrary frequencies, for segments of ``n_bins`` bins.

    .. math::

        P(f) = B_0 + \\sum_{k=1}^{K-1} \\frac{N-k}{N} B_k \\cos(2\\pi f k t_b),

    which is :func:`zhang_leahy`'s :math:`P_j` at :math:`f = j/(N t_b)` and interpolates it smoothly in
    between (one matrix product over all frequencies). For a rebinned spectrum, average the model over the
    frequencies of each bin (e.g. :func:`zhang_leahy_for_spectrum` then the same rebinning) rather than
    evaluating it at the bin centres.

    Parameters
    ----------
    freq : array_like
        Frequencies, Hz (any shape; finite).
    n_bins, rate, dead_time, bin_time, rate_is_incident, limit_k
        As in :func:`zhang_leahy` (``n_bins`` >= 1 enters through the weights :math:`(N-k)/N`).

    Returns
    -------
    ndarray of float64, shape of ``freq``
        Expected Leahy power.

    Raises
    ------
    ValueError
        If an argument is out of its range (the message names it).

    Examples
    --------
    >>> f = np.arange(1, 2048) / (4096 / 512)
    >>> bool(np.allclose(zhang_leahy_at(f, 4096, 500.0, 2.5e-3, 1 / 512),
    ...                  zhang_leahy_for_spectrum(4096, 500.0, 2.5e-3, 1 / 512), rtol=1e-10))
    True
    """
    f = np.asarray(freq, dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise ValueError(f"freq must be finite (Hz), got {f[~np.isfinite(f)].flat[0]!r}")
    n_bins = _integer(n_bins, "n_bins", 1)
    b = zhang_coefficients(rate, dead_time, bin_time, rate_is_incident=rate_is_incident, limit_k=limit_k)
    n_k = min(n_bins, b.size)
    k = np.arange(1, n_k, dtype=np.float64)
    weights = (n_bins - k) / n_bins * b[1:n_k]
    flat = f.ravel() * float(bin_time)  # cycles per bin
    out = np.empty(flat.size)
    for start in range(0, flat.size, _BLOCK_ROWS):
        cycles = flat[start : start + _BLOCK_ROWS]
        out[start : start + cycles.size] = b[0] + np.cos((2.0 * np.pi) * np.outer(cycles, k)) @ weights
    return out.reshape(f.shape)
