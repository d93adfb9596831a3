"""Work over an existing dataset on a Dask cluster, one task per Zarr chunk: fits and features."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from xtml.parallel.tasks import map_tasks

if TYPE_CHECKING:
    from distributed import Client

    from xtml.data.store import SimDataset
    from xtml.reference.fit import FitResult
    from xtml.reference.likelihood import SpectralModel

__all__ = ["extract_features", "fit_dataset"]


def _open(path: str) -> SimDataset:
    """A dataset opened without reading every ``done`` flag (the driver checked them)."""
    import zarr

    from xtml.data.config import SimulationConfig
    from xtml.data.store import SimDataset

    g = zarr.open_group(path, mode="r")
    meta = dict(g.attrs["xtml"])  # type: ignore[arg-type]
    return SimDataset(path=Path(path), group=g, config=SimulationConfig.from_dict(meta["config"]), meta=meta)


def _chunk_rows(path: str | Path) -> tuple[str, list[tuple[int, int, int]]]:
    """Check that ``path`` is a complete dataset; its resolved path and each ``(chunk, start, stop)``."""
    from xtml.data.store import open_dataset

    ds = open_dataset(path)
    size = int(ds.meta["chunk_size"])
    rows = [(c, a, min(ds.n, a + size)) for c, a in enumerate(range(0, ds.n, size))]
    return str(Path(path).resolve()), rows


def _fit_chunk(
    rows: tuple[int, int, int],
    path: str,
    model: SpectralModel,
    bounds: Any,
    array: str,
    n_starts: int,
    seed: int,
) -> FitResult:
    from xtml.reference.fit import fit_spectra

    chunk, start, stop = rows
    spectra = _open(path).spectra(slice(start, stop), array=array)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk,)))
    return fit_spectra(spectra, model, bounds, n_starts=n_starts, workers=1, rng=rng)


def _concat_fits(parts: Sequence[FitResult]) -> FitResult:
    from xtml.reference.fit import FitResult

    cat = functools.partial(np.concatenate, axis=0)
    return FitResult(
        param_names=parts[0].param_names,
        params=cat([p.params for p in parts]),
        errors=cat([p.errors for p in parts]),
        cov=cat([p.cov for p in parts]),
        loglike=cat([p.loglike for p in parts]),
        aic=cat([p.aic for p in parts]),
        bic=cat([p.bic for p in parts]),
        success=cat([p.success for p in parts]),
        status=tuple(s for p in parts for s in p.status),
    )


def fit_dataset(
    path: str | Path,
    model: SpectralModel,
    bounds: Any,
    *,
    array: str = "power",
    n_starts: int = 4,
    seed: int = 0,
    client: Client | None = None,
    progress: bool = True,
    retries: int = 2,
) -> FitResult:
    """Maximum-likelihood fits of every spectrum of a dataset, one task per Zarr chunk.

    Each task reads its chunk's rows from the store and fits them with
    :func:`~xtml.reference.fit_spectra` (``workers=1``), the random starts of chunk ``i`` drawn from
    ``SeedSequence(seed, spawn_key=(i,))``: the result is the same with any client or none.

    Parameters
    ----------
    path : path
        A complete dataset (:func:`~xtml.data.open_dataset`), on a filesystem every worker sees.
    model : SpectralModel
        Source PSD plus white noise (for dead-time data, give the model its ``dead_time``).
    bounds : JointPrior or mapping name -> (low, high)
        As for :func:`~xtml.reference.fit_spectra`.
    array : str
        Stored spectrum to fit: ``"power"``, ``"power_fad"`` or ``"cospectrum"``.
    n_starts : int
        Starts per spectrum (the data-driven one plus random ones).
    seed : int
        Root of the chunks' random starts.
    client : distributed.Client or None
        Where to run; ``None``: here, chunk after chunk.
    progress : bool
        Show a progress bar over the chunks.
    retries : int
        Reruns of a chunk whose task raises.

    Returns
    -------
    FitResult
        One row per spectrum of the dataset, in order.
    """
    from xtml.data.store import SPECTRUM_ARRAYS

    if array not in SPECTRUM_ARRAYS:
        raise ValueError(f"array must be one of {', '.join(SPECTRUM_ARRAYS)}, got {array!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    resolved, rows = _chunk_rows(path)
    parts = map_tasks(
        _fit_chunk,
        rows,
        client=client,
        args=(resolved, model, bounds, array, n_starts, int(seed)),
        desc=f"fit {Path(path).name}",
        progress=progress,
        retries=retries,
    )
    return _concat_fits(parts)


def _features_chunk(
    rows: tuple[int, int, int], path: str, transformer: Any, array: str
) -> NDArray[np.float64]:
    from xtml.learn.inputs import spectra_to_X

    _, start, stop = rows
    X, _ = spectra_to_X(_open(path).spectra(slice(start, stop), array=array))
    return np.asarray(transformer.transform(X), dtype=np.float64)


def extract_features(
    path: str | Path,
    transformer: Any = None,
    *,
    array: str = "power",
    client: Client | None = None,
    progress: bool = True,
    retries: int = 2,
) -> NDArray[np.float64]:
    """A fitted feature transformer applied to every spectrum of a dataset, one task per Zarr chunk.

    Parameters
    ----------
    path : path
        A complete dataset, on a filesystem every worker sees.
    transformer : fitted transformer, optional
        Takes the standard matrix of :func:`~xtml.learn.inputs.spectra_to_X` (Leahy powers, then the mean
        rate); default: :class:`~xtml.learn.features.SpectralFeatures` on the dataset's grid (its ``fit``
        learns nothing from the data).
    array : str
        Stored spectrum: ``"power"``, ``"power_fad"`` or ``"cospectrum"``.
    client : distributed.Client or None
        Where to run; ``None``: here, chunk after chunk.
    progress : bool
        Show a progress bar over the chunks.
    retries : int
        Reruns of a chunk whose task raises.

    Returns
    -------
    ndarray of float64, shape (n, n_features)
        Identical whatever the client.
    """
    from xtml.data.store import SPECTRUM_ARRAYS

    if array not in SPECTRUM_ARRAYS:
        raise ValueError(f"array must be one of {', '.join(SPECTRUM_ARRAYS)}, got {array!r}")
    resolved, rows = _chunk_rows(path)
    if transformer is None:
        from xtml.learn.features import SpectralFeatures
        from xtml.learn.inputs import spectra_to_X

        X, grid = spectra_to_X(_open(resolved).spectra(slice(0, 1), array=array))
        transformer = SpectralFeatures(grid).fit(X)
    elif not callable(getattr(transformer, "transform", None)):
        raise ValueError(f"transformer must have a transform method, got {type(transformer).__name__}")
    if client is not None:
        (transformer,) = client.scatter([transformer], broadcast=True)  # sent once to each worker
    parts = map_tasks(
        _features_chunk,
        rows,
        client=client,
        args=(resolved, transformer, array),
        desc=f"features {Path(path).name}",
        progress=progress,
        retries=retries,
    )
    return np.concatenate(parts, axis=0)
