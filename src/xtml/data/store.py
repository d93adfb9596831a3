"""Simulated datasets on disk: a chunked Zarr store that is resumable and never half-valid.

Layout of ``DIR.zarr`` (first axis = spectrum, chunked by ``chunk_size``).  Each simulated observation
gives ``[dataset] spectra_per_observation`` consecutive spectra (default 1) of the same source and
parameters, cut from one continuous light curve; ``group`` says which observation a spectrum belongs to,
so that splits and cross-validation can keep an observation on one side:

========================  ==========================  ==========================================
array                     shape                       content
========================  ==========================  ==========================================
``params``                (n, n_params) float64       ``"rate"`` then the union of the classes'
                                                      parameters; NaN where a class has no such
                                                      parameter (e.g. the QPO centroid of a
                                                      no-QPO spectrum), never elsewhere
``labels``                (n,) int16                  index into ``class_names``
``split``                 (n,) int8                   0 train, 1 validation, 2 test (per observation)
``group``                 (n,) int64                  simulated observation of each spectrum
``power``                 (n, n_freq) float32/64      averaged, rebinned power spectrum
``mean_rate``             (n,) float64                measured mean count rate (ct/s, all modules)
``n_clipped``             (n,) int64                  bins where the Gaussian rate was clipped at 0
``live_time``             (n, n_modules) float64      live time of each detector module, s
``cospectrum``            (n, n_freq) float32/64      cospectrum of modules 0 and 1 (n_modules >= 2)
``power_fad``             (n, n_freq) float32/64      FAD-corrected total power (``fad = true``)
``lightcurves``           (n, n_modules, n_bins)      counts, only with ``store_lightcurves``
``freq``, ``m``, ``df``   (n_freq,)                   frequency grid, powers per bin, bin widths
``done``                  (n_chunks,) uint8           1 once every array of that chunk is written
========================  ==========================  ==========================================

The group attributes hold the canonical configuration, seed, chunk size and provenance.

Chunk ``i`` draws all its randomness from ``SeedSequence(seed, spawn_key=(i,))``: its content
depends on the seed, the configuration and the chunk index only, so chunks can be made in any
order, by any process, and a resumed run is byte-identical to an uninterrupted one.  ``done``
is written last, so a chunk interrupted mid-write is redone by the next run and refused by
:func:`open_dataset` until then.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray

from xtml.data.config import SimulationConfig, rate_rms
from xtml.data.provenance import provenance
from xtml.data.resources import check_resources
from xtml.simulate import observe, simulate_rate
from xtml.timing import PowerSpectrum, cospectrum, fad_correct, periodogram

__all__ = [
    "DATA_NAME",
    "SPLIT_NAMES",
    "IncompleteDatasetError",
    "SimDataset",
    "dataset_path",
    "open_dataset",
    "simulate_chunk",
    "simulate_dataset",
    "spectrum_grid",
]

SPLIT_NAMES = ("train", "validation", "test")
FORMAT_VERSION = 1
#: the store inside the run folder of ``xtml simulate`` (:func:`xtml.data.simrun.simulate_run`)
DATA_NAME = "data.zarr"


class IncompleteDatasetError(ValueError):
    """A dataset with unfinished chunks; ``missing`` lists their indices."""

    def __init__(self, path: Path, missing: list[int]) -> None:
        self.path = path
        self.missing = missing
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        super().__init__(
            f"dataset {str(path)!r} is incomplete: {len(missing)} chunk(s) not finished ({shown}); "
            "re-run the same `xtml simulate` command to complete it"
        )


def _spectrum(config: SimulationConfig, counts: NDArray[np.int64]) -> PowerSpectrum:
    o = config.observation
    return o.rebin(
        periodogram(counts, o.dt, norm=o.norm, segment_bins=o.segment_bins, sampling=o.alias_factor)
    )


def spectrum_grid(config: SimulationConfig) -> PowerSpectrum:
    """The frequency grid (freq, m, df) of the dataset's spectra, from a constant light curve."""
    flat = np.full((1, config.observation.n_bins), 10, dtype=np.int64)
    return _spectrum(config, flat)


def simulate_chunk(
    config: SimulationConfig, chunk_index: int, size: int, seed: int
) -> dict[str, NDArray[Any]]:
    """Simulate one chunk: ``size`` observations from ``SeedSequence(seed, spawn_key=(chunk_index,))``.

    Returns a dict of the per-observation arrays described in the module docstring.
    """
    o = config.observation
    det = config.detector
    per_obs = config.dataset.spectra_per_observation
    if size % per_obs:
        raise ValueError(f"chunk size {size} must be a multiple of spectra_per_observation = {per_obs}")
    n_spectra, size = size, size // per_obs  # below, ``size`` counts observations
    ss = np.random.SeedSequence(seed, spawn_key=(chunk_index,))
    class_rng, param_rng, split_rng = (np.random.default_rng(s) for s in ss.spawn(3))
    sim_rngs = np.random.default_rng(ss.spawn(1)[0]).spawn(len(config.classes))
    weights = np.array([c.weight for c in config.classes])
    labels = class_rng.choice(len(config.classes), size=size, p=weights / weights.sum()).astype(np.int16)
    names = config.param_names
    params = np.full((size, len(names)), np.nan)
    params[:, 0] = config.rate.sample(size, param_rng)
    counts = np.empty((size, det.n_modules, o.n_bins * per_obs), dtype=np.int64)
    live = np.empty((size, det.n_modules))
    clipped = np.zeros(size, dtype=np.int64)
    # an ideal detector records binned rates (averaged over alias_factor steps); photon-level
    # detectors (dead time, pile-up) see the rate at the fine step and bin their events
    fine = 1 if det.is_ideal else o.alias_factor
    for c, spec in enumerate(config.classes):
        idx = np.flatnonzero(labels == c)
        theta = spec.prior.sample(idx.size, param_rng)
        cols = [names.index(p) for p in spec.model.param_names]
        params[np.ix_(idx, cols)] = theta
        if idx.size == 0:
            continue
        rate_rng, photon_rng = sim_rngs[c].spawn(2)
        # independent segments: one light curve per segment (rows observation by observation)
        pieces = o.n_segments * per_obs if o.independent_segments else 1
        rate, n_clip = simulate_rate(
            spec.model,
            np.repeat(theta, pieces, axis=0),
            mean_rate=np.repeat(params[idx, 0], pieces),
            dt=o.dt / fine,
            n_bins=o.n_bins * per_obs * fine // pieces,
            rng=rate_rng,
            red_noise_factor=o.red_noise_factor,
            alias_factor=o.alias_factor // fine,
        )
        rate = rate.reshape(idx.size, -1)
        clipped[idx] = n_clip.reshape(idx.size, pieces).sum(axis=1)
        detected = observe(rate, o.dt / fine, det, photon_rng, bin_factor=fine)
        counts[idx] = detected.counts
        live[idx] = detected.live_time / per_obs
    split = split_rng.choice(3, size=size, p=np.asarray(config.dataset.split)).astype(np.int8)
    if per_obs > 1:  # cut each observation into consecutive spectra; repeat its labels and parameters
        counts = counts.reshape(size, det.n_modules, per_obs, o.n_bins).swapaxes(1, 2)
        counts = counts.reshape(n_spectra, det.n_modules, o.n_bins)
        labels, params, clipped, live, split = (
            np.repeat(a, per_obs, axis=0) for a in (labels, params, clipped, live, split)
        )
    _check_photons(config, counts, labels, params, clipped / (o.n_bins * per_obs * fine), chunk_index)
    ps = _spectrum(config, counts.sum(axis=1))
    out: dict[str, NDArray[Any]] = {
        "params": params,
        "labels": labels,
        "split": split,
        "power": ps.power.astype(config.dataset.power_dtype),
        "mean_rate": ps.mean_rate,
        "n_clipped": clipped,
        "live_time": live,
    }
    dtype = config.dataset.power_dtype
    pair = {
        "norm": o.norm,
        "segment_bins": o.segment_bins,
        "sampling": o.alias_factor,
    }  # both modules' spectra
    if det.n_modules >= 2:
        cs = o.rebin(cospectrum(counts[:, 0], counts[:, 1], o.dt, **pair))
        out["cospectrum"] = cs.power.astype(dtype)
    if o.fad:
        fad = fad_correct(counts[:, 0], counts[:, 1], o.dt, **pair)
        out["power_fad"] = o.rebin(fad.power_total).power.astype(dtype)
    if config.dataset.store_lightcurves:
        out["lightcurves"] = counts.astype(np.int32)
    return out


def _check_photons(
    config: SimulationConfig,
    counts: NDArray[np.int64],
    labels: NDArray[np.int16],
    params: NDArray[np.float64],
    clipped: NDArray[np.float64],
    chunk_index: int,
) -> None:
    """Refuse a chunk with a segment without photons, naming the draw of the prior that made it."""
    o = config.observation
    per_segment = counts.sum(axis=1).reshape(counts.shape[0], -1, o.segment_bins).sum(axis=2)
    empty = np.flatnonzero((per_segment == 0).any(axis=1))
    if empty.size == 0:
        return
    i = int(empty[0])
    spec = config.classes[int(labels[i])]
    names = config.param_names
    draw = ", ".join(f"{n} = {params[i, names.index(n)]:.3g}" for n in ("rate", *spec.model.param_names))
    theta = params[i : i + 1, [names.index(n) for n in spec.model.param_names]]
    rms = float(rate_rms(spec.model, theta, o)[0])
    expected = params[i, 0] * o.segment_length
    raise ValueError(
        f"{empty.size} simulated spectra of chunk {chunk_index} have a segment without a single photon, "
        f"whose power spectrum is undefined; the first, a draw of class {spec.name!r} ({draw}), expects "
        f"{expected:.3g} photons per {o.segment_length:g} s segment, its rate has a fractional rms of "
        f"{rms:.2g} over the simulated band and was negative (clipped to 0) in "
        f"{100 * clipped[i]:.0f} % of its bins. Narrow the prior of [classes.{spec.name}] (or "
        "[rate]) so that the rate stays positive and each segment sees photons"
    )


def _meta(config: SimulationConfig, n: int, seed: int, chunk_size: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "n": n,
        "seed": seed,
        "chunk_size": chunk_size,
        "config": config.to_dict(),
        "param_names": list(config.param_names),
        "class_names": list(config.class_names),
        "split_names": list(SPLIT_NAMES),
    }


def _named(err: OSError, where: str) -> OSError:
    """``err`` with a path to name: a write error of a full disk often carries none."""
    if err.filename:
        return err
    named = OSError(err.errno, err.strerror or str(err), where)
    named.__cause__ = err
    return named


def _create(path: Path, config: SimulationConfig, n: int, seed: int, chunk_size: int) -> zarr.Group:
    """Create the empty store: written beside ``path`` and renamed into place when whole, so that a
    failure (a full or read-only disk, an interrupt) never leaves a store without its metadata, which
    the same command could not resume."""
    tmp = path.with_name(path.name + ".creating")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write_empty(tmp, config, n, seed, chunk_size)
        os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _named(err, str(path)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return zarr.open_group(str(path), mode="r+")


def _write_empty(path: Path, config: SimulationConfig, n: int, seed: int, chunk_size: int) -> None:
    o = config.observation
    grid = spectrum_grid(config)
    n_chunks = -(-n // chunk_size)
    g = zarr.open_group(str(path), mode="w")
    spec = {
        "params": ((n, len(config.param_names)), "float64"),
        "labels": ((n,), "int16"),
        "split": ((n,), "int8"),
        "group": ((n,), "int64"),
        "power": ((n, grid.n_freq), config.dataset.power_dtype),
        "mean_rate": ((n,), "float64"),
        "n_clipped": ((n,), "int64"),
        "live_time": ((n, config.detector.n_modules), "float64"),
    }
    if config.detector.n_modules >= 2:
        spec["cospectrum"] = ((n, grid.n_freq), config.dataset.power_dtype)
    if o.fad:
        spec["power_fad"] = ((n, grid.n_freq), config.dataset.power_dtype)
    if config.dataset.store_lightcurves:
        spec["lightcurves"] = ((n, config.detector.n_modules, o.n_bins), "int32")
    for name, (shape, dtype) in spec.items():
        g.create_array(name, shape=shape, chunks=(chunk_size, *shape[1:]), dtype=dtype)
    for name, values in (("freq", grid.freq), ("m", grid.m), ("df", grid.df)):
        arr = g.create_array(name, shape=values.shape, dtype=values.dtype)
        arr[:] = values
    g.create_array("done", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
    meta = _meta(config, n, seed, chunk_size)
    meta["provenance"] = provenance()
    meta["segment_length"] = o.segment_length
    meta["norm"] = o.norm
    g.attrs["xtml"] = meta


def _done_chunks(g: zarr.Group) -> NDArray[np.bool_]:
    return np.asarray(g["done"][:]) == 1


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: stored {a!r}, requested {b!r}"]


def simulate_dataset(
    config: SimulationConfig,
    n: int,
    out: str | Path,
    *,
    seed: int | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    chunks: Iterable[int] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Simulate ``n`` observations into the Zarr store ``out``, resuming an unfinished one.

    Parameters
    ----------
    config : SimulationConfig
    n : int
        Number of simulated observations (>= 1).
    out : path
        Store directory (conventionally ``*.zarr``).
    seed, chunk_size : int, optional
        Override the configuration's ``[dataset]`` values.
    overwrite : bool
        Delete an existing store at ``out`` first.  Without it, an existing store made with the
        same configuration, n, seed and chunk size is completed (finished chunks are never
        rewritten); any difference is an error that lists it.
    progress : bool
        Show a progress bar over chunks when the output is a terminal (never in a log file).
    chunks : iterable of int, optional
        Only these chunk indices (for workers that each write their own chunks).
    on_chunk : callable, optional
        Called with the chunk index after each chunk is committed.

    Returns
    -------
    Path of the store.

    Raises
    ------
    ValueError
        For bad arguments, or an existing store holding another dataset.
    xtml.data.DatasetTooLargeError
        Before anything is written or deleted, if the store would not fit on its disk or a chunk in
        memory (:func:`~xtml.data.check_resources`).
    OSError
        If the disk refuses a write (full, read-only), naming the store; the chunks committed before are
        kept and the same call completes the store later, byte-identical to an uninterrupted one.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    n = int(n)
    seed = config.dataset.seed if seed is None else seed
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    chunk_size = config.dataset.chunk_size if chunk_size is None else chunk_size
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    per_obs = config.dataset.spectra_per_observation
    if n % per_obs or chunk_size % per_obs:
        raise ValueError(
            f"n ({n}) and chunk_size ({chunk_size}) must be multiples of [dataset] spectra_per_observation "
            f"= {per_obs}: an observation's spectra are never split across chunks"
        )
    path = Path(out)
    n_chunks = -(-n // chunk_size)
    if chunks is not None:  # a worker's own chunks (never all of a huge dataset: no O(n_chunks) set)
        wanted = sorted({int(c) for c in chunks})
        bad = [c for c in wanted if not 0 <= c < n_chunks]
        if bad:
            raise ValueError(f"chunk indices {bad[:5]} out of range [0, {n_chunks})")
    resume = path.exists() and not overwrite
    if not resume:  # before anything is written or deleted: refuse what cannot fit
        check_resources(config, n, int(chunk_size), path)
    if path.exists() and overwrite:
        shutil.rmtree(path)
    if path.exists():
        g = _open_existing(path, config, n, int(seed), int(chunk_size))
    else:
        g = _create(path, config, n, int(seed), int(chunk_size))
    done = _done_chunks(g)
    if chunks is None:
        todo = np.flatnonzero(~done)
        total = n_chunks
    else:
        todo = np.array([c for c in wanted if not done[c]], dtype=np.int64)
        total = len(wanted)
    if resume and todo.size:
        check_resources(config, n, int(chunk_size), path, todo=todo.size / n_chunks)
    arrays = {name: g[name] for name in g.array_keys()}
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=total - todo.size,
        unit="chunk",
        desc=f"simulate {path.name}",
        disable=None if progress else True,  # None: a bar on a terminal only, never in a log file
    )
    try:
        for c in todo.tolist():
            start, stop = c * chunk_size, min(n, (c + 1) * chunk_size)
            result = simulate_chunk(config, c, stop - start, int(seed))
            try:
                for name, values in result.items():
                    arrays[name][start:stop] = values
                arrays["group"][start:stop] = np.arange(start, stop) // per_obs
                arrays["done"][c] = 1  # commit: only now is the chunk valid
            except OSError as err:  # a full or read-only disk: name the store (a write error may not)
                raise _named(err, f"{path} (chunk {c})") from None
            bar.update(1)
            if on_chunk is not None:
                on_chunk(c)
    finally:
        bar.close()
    return path


def _open_existing(path: Path, config: SimulationConfig, n: int, seed: int, chunk_size: int) -> zarr.Group:
    try:
        g = zarr.open_group(str(path), mode="r+")
        meta = dict(g.attrs["xtml"])  # type: ignore[arg-type]
    except Exception as err:
        raise ValueError(
            f"{str(path)!r} exists but is not an xtml dataset ({type(err).__name__}: {err}); "
            "choose another --out or pass --overwrite"
        ) from None
    want = _meta(config, n, seed, chunk_size)
    stored = {k: meta.get(k) for k in want}
    diffs = _diff(stored, want)
    if diffs:
        raise ValueError(
            f"{str(path)!r} holds a different dataset, so it cannot be resumed: "
            + "; ".join(diffs[:8])
            + ". Use another --out, or --overwrite to replace it"
        )
    return g


SPECTRUM_ARRAYS: tuple[str, ...] = ("power", "power_fad", "cospectrum")


@dataclass(frozen=True)
class SimDataset:
    """A simulated dataset opened from disk (arrays are read lazily from Zarr).

    Attributes
    ----------
    path : Path
    group : zarr.Group
    config : SimulationConfig
    meta : dict
        Stored metadata, including ``provenance``.
    """

    path: Path
    group: zarr.Group
    config: SimulationConfig
    meta: dict[str, Any]

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.meta["n"])

    @property
    def param_names(self) -> tuple[str, ...]:
        """Column names of ``params``."""
        return tuple(self.meta["param_names"])

    @property
    def class_names(self) -> tuple[str, ...]:
        """Label names (a label is an index into this)."""
        return tuple(self.meta["class_names"])

    def array(self, name: str) -> NDArray[Any]:
        """Load one whole array by name."""
        if name not in self.group:
            raise ValueError(
                f"dataset has no array {name!r}; arrays: {', '.join(sorted(self.group.array_keys()))}"
            )
        return np.asarray(self.group[name][...])

    @property
    def groups(self) -> NDArray[np.int64]:
        """Simulated observation of each spectrum, shape (n,) (stores without ``group``: one per row)."""
        if "group" not in self.group:
            return np.arange(self.n, dtype=np.int64)
        return self.array("group")

    def split_indices(self, split: str) -> NDArray[np.int64]:
        """Row indices of ``"train"``, ``"validation"`` or ``"test"``."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
        return np.flatnonzero(self.array("split") == SPLIT_NAMES.index(split))

    def spectra(
        self, index: NDArray[np.int64] | slice | None = None, *, array: str = "power"
    ) -> PowerSpectrum:
        """The selected spectra as a :class:`~xtml.timing.PowerSpectrum` (float64).

        ``array`` names the stored spectrum: ``"power"`` (the summed modules, default),
        ``"power_fad"`` (FAD-corrected, if the config asked for it) or ``"cospectrum"``.
        """
        if array not in SPECTRUM_ARRAYS:
            raise ValueError(f"array must be one of {', '.join(SPECTRUM_ARRAYS)}, got {array!r}")
        if array not in self.group:
            raise ValueError(
                f"dataset {self.path} has no {array!r} spectra (stored: "
                f"{', '.join(a for a in SPECTRUM_ARRAYS if a in self.group)})"
            )
        sel = slice(None) if index is None else index
        o = self.config.observation
        power = np.asarray(
            self.group[array].oindex[sel] if not isinstance(sel, slice) else self.group[array][sel]
        )
        rate = np.asarray(
            self.group["mean_rate"].oindex[sel]
            if not isinstance(sel, slice)
            else self.group["mean_rate"][sel]
        )
        return PowerSpectrum(
            freq=self.array("freq"),
            power=power.astype(np.float64),
            m=self.array("m"),
            df=self.array("df"),
            norm=o.norm,
            mean_rate=rate,
            segment_length=o.segment_length,
            dt=o.dt,
            n_segments=o.n_segments,
            sampling=o.alias_factor,
        )


def dataset_path(path: str | Path) -> Path:
    """The Zarr store that ``path`` names: the store itself, or the ``data.zarr`` of an ``xtml simulate``
    run folder.  Raises ``ValueError`` if it does not exist."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"dataset {str(p)!r} does not exist")
    if p.is_dir() and not (p / "zarr.json").is_file() and (p / DATA_NAME).is_dir():
        return p / DATA_NAME
    return p


def open_dataset(path: str | Path, *, allow_incomplete: bool = False) -> SimDataset:
    """Open a dataset written by :func:`simulate_dataset` (the store, or the run folder of
    ``xtml simulate`` that holds it as ``data.zarr``).

    Raises :class:`IncompleteDatasetError` if any chunk is unfinished (unless
    ``allow_incomplete``), and ``ValueError`` if ``path`` is not an xtml dataset.
    """
    p = dataset_path(path)
    try:
        g = zarr.open_group(str(p), mode="r")
        meta = dict(g.attrs["xtml"])  # type: ignore[arg-type]
    except Exception as err:
        raise ValueError(f"{str(p)!r} is not an xtml dataset ({type(err).__name__}: {err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{str(p)!r} has dataset format {meta.get('format_version')!r}; "
            f"this xtml reads format {FORMAT_VERSION}"
        )
    done = _done_chunks(g)
    if not allow_incomplete and not done.all():
        raise IncompleteDatasetError(p, np.flatnonzero(~done).tolist())
    config = SimulationConfig.from_dict(meta["config"])
    return SimDataset(path=p, group=g, config=config, meta=meta)
