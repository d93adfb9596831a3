"""Expected power spectra of a simulation configuration: what the periodogram averages to.

For a source PSD ``S`` (frac normalisation), binned light curves of width ``dt`` made by
averaging ``a = alias_factor`` finer samples, the expected fractional-rms periodogram at the
Fourier frequency ``nu_j`` of a segment is the sum over the aliased images of the fine grid,

.. math::

    E[P_j] = \\sum_{\\text{images } i} |H(\\nu_i)|^2 S(\\nu_i), \\qquad
    H(\\nu) = \\frac{1}{a} \\sum_{l=0}^{a-1} e^{-2\\pi i \\nu l\\, dt / a},

diluted by a constant background (``(r_src / (r_src + r_bkg))^2``), plus the Poisson level;
the result is converted to the requested normalisation and rebinned exactly like the data.
Only ideal detectors have this closed form: with dead time or pile-up the spectrum is distorted
(for white noise, see ``xtml.reference.zhang_leahy``), which is what simulation-based inference
is for.  The red-noise leak (``red_noise_factor > 1``) is *not* included: it
redistributes power from below ``1 / T`` and mostly raises the lowest bins.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xtml.data.config import SimulationConfig
from xtml.timing import PowerSpectrum, poisson_level

__all__ = ["expected_frac_psd", "expected_spectra"]


def expected_frac_psd(config: SimulationConfig, class_index: int, theta: ArrayLike) -> NDArray[np.float64]:
    """Source-only expected frac periodogram on the unbinned segment grid, shape (n, (segment_bins - 1) // 2).

    Includes binning (the fine samples averaged into ``dt``) and aliasing of the fine grid.
    """
    o = config.observation
    spec = config.classes[class_index]
    n_seg, a = o.segment_bins, o.alias_factor
    n_fine, fine_dt = n_seg * a, o.dt / a
    j = np.arange(1, (n_seg - 1) // 2 + 1)  # the periodogram's frequencies: Nyquist excluded
    images = []
    for k in range(a):
        for idx in (j + k * n_seg, k * n_seg - j):
            images.append(np.where((idx >= 1) & (idx <= n_fine // 2), idx, 0))
    idx = np.array(images)  # (n_images, n_freq); 0 marks "no such image"
    nu = idx / (n_fine * fine_dt)
    h2 = np.abs(np.exp(-2j * np.pi * nu[..., None] * fine_dt * np.arange(a)).mean(axis=-1)) ** 2
    weight = np.where(idx > 0, h2, 0.0) * np.where(idx == n_fine // 2, 2.0, 1.0)
    uniq, inverse = np.unique(idx[idx > 0], return_inverse=True)
    s = spec.model.evaluate(uniq / (n_fine * fine_dt), theta)  # (n, n_unique)
    full = np.zeros((s.shape[0], *idx.shape))
    full[:, idx > 0] = s[:, inverse]
    return (full * weight).sum(axis=1)


def expected_spectra(
    config: SimulationConfig,
    labels: ArrayLike,
    params: ArrayLike,
    mean_rate: ArrayLike,
) -> PowerSpectrum:
    """Expected spectra for rows of a dataset (labels, params with the dataset's columns, mean rates).

    ``mean_rate`` is the measured mean count rate of the light curve that was transformed
    (all modules summed), which sets the Poisson level and the conversion between norms.
    """
    o = config.observation
    det = config.detector
    if not det.is_ideal:
        raise ValueError(
            "expected spectra have a closed form only for an ideal detector; this configuration has "
            + ("dead time" if det.dead_time is not None else "pile-up")
        )
    labels = np.asarray(labels)
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    rate = np.asarray(mean_rate, dtype=np.float64)
    names = config.param_names
    n_freq = (o.segment_bins - 1) // 2
    frac = np.empty((labels.size, n_freq))
    for c, spec in enumerate(config.classes):
        rows = np.flatnonzero(labels == c)
        if rows.size:
            cols = [names.index(p) for p in spec.model.param_names]
            src = params[rows, names.index("rate")]
            dilution = (src / (src + det.background_rate)) ** 2
            frac[rows] = expected_frac_psd(config, c, params[np.ix_(rows, cols)]) * dilution[:, None]
    t = o.segment_length
    freq = np.arange(1, n_freq + 1) / t
    if o.norm == "frac":
        power = frac
    elif o.norm == "leahy":
        power = frac * rate[:, None]
    else:
        power = frac * rate[:, None] ** 2
    power = power + poisson_level(o.norm, rate)[:, None]
    ps = PowerSpectrum(
        freq=freq,
        power=power,
        m=np.full(n_freq, o.n_segments, dtype=np.int64),
        df=np.full(n_freq, 1 / t),
        norm=o.norm,
        mean_rate=rate,
        segment_length=t,
        dt=o.dt,
        n_segments=o.n_segments,
    )
    return o.rebin(ps)
