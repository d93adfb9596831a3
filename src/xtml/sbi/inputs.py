"""What a neural posterior sees: spectra on one frequency grid (channels) and a few per-observation numbers.

A row of inputs is ``n_channels`` spectra on the training grid, concatenated, then ``n_scalars`` numbers:

* channels (:data:`CHANNELS`): ``power`` (the averaged, rebinned total power, as its natural log: the
  Whittle noise of a power is multiplicative), ``cospectrum`` (the averaged cospectrum of two modules,
  which dead time leaves free of its white-noise distortion; as is, since it scatters around zero) and
  ``power_fad`` (the FAD-corrected power, as is);
* scalars (:data:`SCALARS`): ``log_mean_rate`` (natural log of the detected mean count rate, ct/s: dead
  time and pile-up act through it).

:class:`InputSpec` records the grid (frequencies, powers averaged per bin ``m``, segment length,
normalisation) a posterior was trained on; :func:`spectrum_inputs` refuses a spectrum on another grid
(different frequencies, a different number of averaged segments, another normalisation), NaN or infinite
values, and non-positive powers, each with a message that names the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.timing import PowerSpectrum

__all__ = ["CHANNELS", "SCALARS", "InputSpec", "dataset_inputs", "spectrum_inputs"]

CHANNELS: tuple[str, ...] = ("power", "cospectrum", "power_fad")
SCALARS: tuple[str, ...] = ("log_mean_rate",)
FREQ_RTOL = 1e-9
CHUNK = 4096  # rows read from a dataset at a time


@dataclass(frozen=True, eq=False)
class InputSpec:
    """The inputs of a posterior: channels, scalars and the frequency grid they live on.

    Attributes
    ----------
    channels, scalars : tuple of str
        Names from :data:`CHANNELS` and :data:`SCALARS`, in row order.
    freq, m : ndarray of shape (n_freq,)
        Bin centres (Hz) and the number of powers averaged in each bin (segments x frequencies).
    segment_length : float
        Length of the averaged segments, s.
    norm : str
        Normalisation of the power (e.g. "leahy").
    """

    channels: tuple[str, ...]
    scalars: tuple[str, ...]
    freq: NDArray[np.float64]
    m: NDArray[np.float64]
    segment_length: float
    norm: str

    @property
    def n_freq(self) -> int:
        """Frequency bins per channel."""
        return int(self.freq.size)

    @property
    def n_features(self) -> int:
        """Length of one input row."""
        return len(self.channels) * self.n_freq + len(self.scalars)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "channels": list(self.channels),
            "scalars": list(self.scalars),
            "freq": self.freq.tolist(),
            "m": self.m.tolist(),
            "segment_length": self.segment_length,
            "norm": self.norm,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            channels=tuple(d["channels"]),
            scalars=tuple(d["scalars"]),
            freq=np.asarray(d["freq"], dtype=np.float64),
            m=np.asarray(d["m"], dtype=np.float64),
            segment_length=float(d["segment_length"]),
            norm=str(d["norm"]),
        )

    @classmethod
    def from_dataset(cls, ds: Any, channels: Sequence[str], scalars: Sequence[str]) -> InputSpec:
        """The grid of an xtml dataset (:class:`~xtml.data.SimDataset`)."""
        meta = ds.meta if hasattr(ds, "meta") else {}
        seg = meta.get("segment_length", ds.config.observation.segment_length)
        return cls(
            channels=tuple(channels),
            scalars=tuple(scalars),
            freq=np.asarray(ds.array("freq"), dtype=np.float64),
            m=np.asarray(ds.array("m"), dtype=np.float64),
            segment_length=float(seg),
            norm=str(ds.config.observation.norm),
        )

    def check_grid(self, ps: PowerSpectrum, what: str) -> None:
        """``ValueError`` naming the difference if ``ps`` is not on this grid."""
        self.check_arrays(ps.freq, ps.m, ps.norm, what)

    def check_arrays(self, freq: NDArray[Any], m: NDArray[Any], norm: str, what: str) -> None:
        """:meth:`check_grid` for bare arrays: bin centres ``freq``, powers per bin ``m``, ``norm``."""
        freq = np.asarray(freq, dtype=np.float64)
        if norm != self.norm:
            raise ValueError(
                f"{what}: normalisation {norm!r}, but the posterior was trained on {self.norm!r}"
            )
        if freq.size != self.n_freq or not np.allclose(freq, self.freq, rtol=FREQ_RTOL, atol=0):
            raise ValueError(
                f"{what}: frequency grid of {freq.size} bins ({freq[0]:.4g}-{freq[-1]:.4g} Hz) "
                "differs "
                f"from the training grid of {self.n_freq} bins ({self.freq[0]:.4g}-{self.freq[-1]:.4g} Hz, "
                f"segments of {self.segment_length:g} s): use the same dt, segment length and rebinning"
            )
        m = np.broadcast_to(np.asarray(m, dtype=np.float64), freq.shape)
        if not np.allclose(m, self.m, rtol=1e-9):
            ratio = float(np.median(m / self.m))
            raise ValueError(
                f"{what}: {ratio:g} times as many averaged powers per bin as in training (m[0] = {m[0]:g}, "
                f"trained m[0] = {self.m[0]:g}): the number of averaged segments differs; the posterior "
                f"needs exactly the training number of {self.segment_length:g} s segments"
            )


def _channel_values(name: str, power: NDArray[Any], what: str) -> NDArray[np.float64]:
    p = np.asarray(power, dtype=np.float64)
    bad = ~np.all(np.isfinite(p), axis=1)
    if bad.any():
        raise ValueError(
            f"{what}: channel {name!r} has NaN or infinite values in {int(bad.sum())} of {p.shape[0]} rows "
            f"(first: row {int(np.argmax(bad))})"
        )
    if name == "power":
        low = p <= 0
        if low.any():
            row = int(np.argmax(low.any(axis=1)))
            raise ValueError(
                f"{what}: power must be > 0 (it enters as its log); row {row} has {int(low[row].sum())} "
                "non-positive bins"
            )
        return np.log(p)
    return p


def _scalar_values(name: str, mean_rate: NDArray[Any], what: str) -> NDArray[np.float64]:
    r = np.asarray(mean_rate, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        bad = int(np.argmax(~np.isfinite(r) | (r <= 0)))
        raise ValueError(f"{what}: mean count rate must be finite and > 0; row {bad} has {r[bad]!r}")
    return np.log(r)


def _assemble(
    spec: InputSpec, channels: Mapping[str, NDArray[Any]], mean_rate: NDArray[Any], what: str
) -> NDArray[np.float64]:
    parts = [_channel_values(c, channels[c], what) for c in spec.channels]
    parts += [_scalar_values(s, mean_rate, what)[:, None] for s in spec.scalars]
    return np.concatenate(parts, axis=1)


def dataset_inputs(ds: Any, spec: InputSpec, indices: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
    """Input rows (n, ``spec.n_features``) of dataset rows ``indices`` (default: all), read in chunks."""
    have = InputSpec.from_dataset(ds, spec.channels, spec.scalars)
    spec.check_arrays(have.freq, have.m, have.norm, f"dataset {getattr(ds, 'path', '')}")
    idx = np.arange(ds.n) if indices is None else np.asarray(indices, dtype=np.int64)
    out = np.empty((idx.size, spec.n_features))
    missing = [c for c in spec.channels if c not in ds.group]
    if missing:
        raise ValueError(
            f"dataset {getattr(ds, 'path', '')} has no {missing} array, which the posterior needs"
        )
    for start in range(0, idx.size, CHUNK):
        sl = idx[start : start + CHUNK]
        what = f"dataset rows {int(sl[0])}..{int(sl[-1])}"
        channels = {c: np.asarray(ds.group[c].oindex[sl]) for c in spec.channels}
        out[start : start + sl.size] = _assemble(
            spec, channels, np.asarray(ds.group["mean_rate"].oindex[sl]), what
        )
    return out


def spectrum_inputs(
    spectra: Mapping[str, PowerSpectrum],
    spec: InputSpec,
    *,
    mean_rate: float | None = None,
    what: str = "input",
) -> NDArray[np.float64]:
    """Input rows of observed spectra, one :class:`~xtml.timing.PowerSpectrum` per channel name.

    ``mean_rate`` defaults to the ``power`` channel's ``mean_rate``.  Every spectrum is checked against
    the training grid first (:meth:`InputSpec.check_grid`).
    """
    missing = [c for c in spec.channels if c not in spectra]
    if missing:
        raise ValueError(
            f"{what}: the posterior needs the channels {list(spec.channels)}; missing {missing} "
            "(the cospectrum and FAD spectrum need two modules' events)"
        )
    n = None
    for c in spec.channels:
        spec.check_grid(spectra[c], f"{what} ({c})")
        if n is None:
            n = spectra[c].n
        elif spectra[c].n != n:
            raise ValueError(f"{what}: channels have different numbers of rows")
    if mean_rate is None:
        ref = spectra.get("power", spectra[spec.channels[0]])
        if ref.mean_rate is None:
            raise ValueError(f"{what}: no mean count rate: pass mean_rate")
        rate = np.broadcast_to(np.asarray(ref.mean_rate, dtype=np.float64), (n,))
    else:
        rate = np.full(n, float(mean_rate))
    return _assemble(spec, {c: spectra[c].power for c in spec.channels}, rate, what)
