"""Batched Timmer & Koenig (1995) light curves and Poisson photon counts.

The source rate is ``r(t) = mean_rate * (1 + delta(t))`` where ``delta`` is a Gaussian
process whose single-sided PSD is the model's, in (rms/mean)^2/Hz.  For ``N`` bins of width
``dt`` the Fourier amplitudes at ``nu_j = j / (N dt)`` are drawn as

.. math::

    X_j = \\sqrt{S(\\nu_j) N / (4\\,dt)}\\,(a_j + i b_j), \\qquad a_j, b_j \\sim \\mathcal{N}(0, 1),

(the Nyquist amplitude is real, with variance ``S N / (2 dt)``) and ``delta = irfft(X)``, so
that the expected fractional-rms periodogram ``2 dt |X_j|^2 / N`` equals ``S(nu_j)`` and the
variance of ``delta`` is the integral of ``S`` over the simulated band.  Realisations are
**not** rescaled to the requested variance: their sample variance scatters as the process
predicts (Timmer & Koenig 1995; rescaling, as Stingray's ``Simulator`` does, biases inference).

Red-noise leak and aliasing are modelled by oversampling: the process is drawn over
``red_noise_factor`` times the requested duration (the first ``n_bins`` bins are kept) and at
``alias_factor`` times finer resolution (averaged into the requested bins, as a detector
integrates photons).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from xtml.psd import PSDModel
from xtml.simulate.events import check_rates
from xtml.simulate.poisson import poisson_rows

__all__ = [
    "LightCurves",
    "poisson_counts",
    "simulate_lightcurves",
    "simulate_rate",
    "tk_frequencies",
]

FloatArray = NDArray[np.float64]

#: Values per block when rows are split over threads (numpy's generators and scipy's FFTs
#: release the GIL).  Rows per block follow from the row length only, never from the thread
#: count, so results do not depend on how many threads run.
_BLOCK_VALUES = 2**21


def _block_rows(row_length: int) -> int:
    return max(1, min(256, _BLOCK_VALUES // max(1, row_length)))


def _check_positive_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_dt(dt: float) -> float:
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite time step > 0 s, got {dt!r}")
    return float(dt)


def _check_rate(mean_rate: ArrayLike, n: int) -> FloatArray:
    rate = np.asarray(mean_rate, dtype=np.float64)
    if rate.ndim == 0:
        rate = np.full(n, float(rate))
    if rate.shape != (n,):
        raise ValueError(f"mean_rate must be a scalar or have shape ({n},), got shape {rate.shape}")
    bad = ~np.isfinite(rate) | (rate <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"mean_rate must be finite and > 0 ct/s, got {float(rate[i])!r} (row {i})")
    return rate


def tk_frequencies(n_bins: int, dt: float) -> FloatArray:
    """Positive Fourier frequencies ``j / (n_bins dt)``, ``j = 1 .. n_bins // 2``; shape (n_bins // 2,)."""
    return np.arange(1, n_bins // 2 + 1) / (n_bins * dt)


@dataclass(frozen=True)
class LightCurves:
    """A batch of simulated light curves.

    Attributes
    ----------
    counts : ndarray of int64, shape (n, n_bins) or (n, n_modules, n_bins)
        Detected counts per bin (one Poisson realisation per module of the same source rate).
    dt : float
        Bin width in s.
    rate : ndarray, shape (n, n_bins)
        The source count rate (ct/s, per module) averaged over each bin, before Poisson noise.
    n_clipped : ndarray of int64, shape (n,)
        Fine-resolution bins where the Gaussian process went below zero rate and was set to 0
        (non-zero only for large fractional rms; a sign the linear TK model is strained).
    """

    counts: NDArray[np.int64]
    dt: float
    rate: FloatArray
    n_clipped: NDArray[np.int64]

    @property
    def n(self) -> int:
        """Number of light curves."""
        return int(self.counts.shape[0])

    @property
    def n_bins(self) -> int:
        """Bins per light curve."""
        return int(self.counts.shape[-1])

    @property
    def times(self) -> FloatArray:
        """Bin centres in s, shape (n_bins,)."""
        return (np.arange(self.n_bins) + 0.5) * self.dt


def _streams(rng: np.random.Generator | int | None, n_blocks: int) -> list[np.random.Generator]:
    """Independent generators for ``n_blocks`` row blocks, derived only from ``rng``.

    The stream of a block depends on the seed and the block index, never on thread count.
    """
    return np.random.default_rng(rng).spawn(n_blocks)


def _run_blocks(
    n: int,
    rows: int,
    fn: Callable[[slice, np.random.Generator], None],
    rng: np.random.Generator | int | None,
    threads: int,
) -> None:
    n_blocks = max(1, -(-n // rows))
    gens = _streams(rng, n_blocks)
    tasks = [(slice(b * rows, min(n, (b + 1) * rows)), gens[b]) for b in range(n_blocks)]
    if threads <= 1 or n_blocks == 1:
        for sl, g in tasks:
            fn(sl, g)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda t: fn(*t), tasks))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports it, else the CPU count)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads a compute kernel takes by default: ``OMP_NUM_THREADS`` where it is set to a positive integer
    (the usual limit, as numpy's BLAS and torch read it), at most the CPUs available; else those CPUs."""
    import os

    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        return min(int(value), available_cpus())
    return available_cpus()


def _threads(threads: int | None) -> int:
    if threads is None:
        return min(available_cpus(), 8)
    return _check_positive_int("threads", threads, 1)


def simulate_rate(
    model: PSDModel,
    params: ArrayLike,
    *,
    mean_rate: ArrayLike,
    dt: float,
    n_bins: int,
    rng: np.random.Generator | int | None,
    red_noise_factor: int = 1,
    alias_factor: int = 1,
    threads: int | None = None,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """Noise-free source count rates from Timmer & Koenig, batched.

    Parameters
    ----------
    model : PSDModel
        Source PSD in (rms/mean)^2/Hz.
    params : array_like, shape (n, model.n_params)
        One parameter vector per light curve.
    mean_rate : float or array_like, shape (n,)
        Mean source count rate of the process in ct/s (the sample mean of each realisation
        scatters around it).
    dt : float
        Bin width of the output, s.
    n_bins : int
        Bins per light curve, >= 2.
    rng : Generator or int
        Random source; the same seed gives the same bytes whatever ``threads`` is.
    red_noise_factor : int
        Simulate ``red_noise_factor * n_bins * dt`` seconds and keep the first ``n_bins`` bins,
        so power below ``1 / (n_bins dt)`` leaks into the segment as in real data.
    alias_factor : int
        Simulate at ``dt / alias_factor`` and average into bins of ``dt``, so power above
        the Nyquist frequency aliases as in a real binned light curve.
    threads : int, optional
        Worker threads (default: the CPUs available, at most 8).

    Returns
    -------
    rate : ndarray, shape (n, n_bins)
        Rate in ct/s, averaged over each bin.
    n_clipped : ndarray of int64, shape (n,)
        Fine bins where the Gaussian rate was negative and was set to zero.
    """
    dt = _check_dt(dt)
    n_bins = _check_positive_int("n_bins", n_bins, 2)
    red = _check_positive_int("red_noise_factor", red_noise_factor, 1)
    alias = _check_positive_int("alias_factor", alias_factor, 1)
    theta = model.check(params, nyquist=None)
    n = theta.shape[0]
    rate0 = _check_rate(mean_rate, n)
    fine_dt = dt / alias
    n_fine = n_bins * alias * red
    model.check(theta, nyquist=0.5 / fine_dt)
    freq = tk_frequencies(n_fine, fine_dt)
    n_keep = n_bins * alias
    out = np.empty((n, n_bins))
    clipped = np.zeros(n, dtype=np.int64)
    has_nyquist = n_fine % 2 == 0

    def block(sl: slice, gen: np.random.Generator) -> None:
        amp = model.evaluate(freq, theta[sl], check=False)
        amp *= n_fine / (4.0 * fine_dt)
        np.sqrt(amp, out=amp)
        amp *= rate0[sl, np.newaxis]  # the inverse FFT then gives rate0 * delta directly
        m = amp.shape[0]
        # interleaved (re, im) normals viewed as complex: no extra copy
        spec = gen.standard_normal((m, 2 * (freq.size + 1))).view(np.complex128)
        spec[:, 0] = 0.0  # the mean is set by mean_rate, not by the process
        spec[:, 1:] *= amp
        if has_nyquist:
            spec[:, -1] = spec[:, -1].real * np.sqrt(2.0)
        rate = scipy.fft.irfft(spec, n=n_fine, axis=-1, overwrite_x=True)[:, :n_keep]
        rate += rate0[sl, np.newaxis]
        if rate.min() < 0:  # rare: only large fractional rms goes below zero rate
            clipped[sl] = np.count_nonzero(rate < 0, axis=1)
            np.maximum(rate, 0.0, out=rate)
        out[sl] = rate.reshape(m, n_bins, alias).mean(axis=2) if alias > 1 else rate

    _run_blocks(n, _block_rows(n_fine), block, rng, _threads(threads))
    return out, clipped


def poisson_counts(
    rate: ArrayLike,
    dt: float,
    rng: np.random.Generator | int | None,
    *,
    n_modules: int = 1,
    threads: int | None = None,
) -> NDArray[np.int64]:
    """Poisson counts of a batch of rates, optionally for several independent detector modules.

    Parameters
    ----------
    rate : array_like, shape (n, n_bins)
        Count rate per module in ct/s (>= 0, finite).
    dt : float
        Bin width, s.
    rng : Generator or int
    n_modules : int
        With 1 the result has shape (n, n_bins); with more, (n, n_modules, n_bins): each
        module sees the same source rate with independent Poisson noise.

    Returns
    -------
    ndarray of int64
    """
    dt = _check_dt(dt)
    n_modules = _check_positive_int("n_modules", n_modules, 1)
    lam = check_rates(rate)
    n = lam.shape[0]
    out = np.empty((n, n_modules, lam.shape[1]), dtype=np.int64)

    def block(sl: slice, gen: np.random.Generator) -> None:
        mu = np.repeat(lam[sl] * dt, n_modules, axis=0)  # rows: (light curve, module)
        out[sl] = poisson_rows(mu, gen).reshape(-1, n_modules, lam.shape[1])

    _run_blocks(n, _block_rows(n_modules * lam.shape[1]), block, rng, _threads(threads))
    return out[:, 0, :] if n_modules == 1 else out


def simulate_lightcurves(
    model: PSDModel,
    params: ArrayLike,
    *,
    mean_rate: ArrayLike,
    dt: float,
    n_bins: int,
    rng: np.random.Generator | int | None,
    n_modules: int = 1,
    red_noise_factor: int = 1,
    alias_factor: int = 1,
    threads: int | None = None,
) -> LightCurves:
    """Timmer & Koenig source rates, then Poisson counts in each detector module.

    See :func:`simulate_rate` for the parameters.  The two random stages use independent
    streams derived from ``rng``.

    Examples
    --------
    >>> import numpy as np
    >>> from xtml.psd import PSDModel, Lorentzian, ZeroCentredLorentzian
    >>> model = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
    >>> theta = np.array([[1.0, 0.2, 8.0, 10.0, 0.1]])
    >>> lc = simulate_lightcurves(model, theta, mean_rate=500.0, dt=1 / 128, n_bins=1024, rng=1)
    >>> lc.counts.shape
    (1, 1024)
    """
    rate_rng, count_rng = np.random.default_rng(rng).spawn(2)
    rate, clipped = simulate_rate(
        model,
        params,
        mean_rate=mean_rate,
        dt=dt,
        n_bins=n_bins,
        rng=rate_rng,
        red_noise_factor=red_noise_factor,
        alias_factor=alias_factor,
        threads=threads,
    )
    counts = poisson_counts(rate, dt, count_rng, n_modules=n_modules, threads=threads)
    return LightCurves(counts=counts, dt=float(dt), rate=rate, n_clipped=clipped)
