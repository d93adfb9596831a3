"""Simulated datasets on a Dask cluster: one task per unfinished chunk, each writing its own chunk."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xtml.parallel.tasks import map_tasks

if TYPE_CHECKING:
    from distributed import Client

    from xtml.data.config import SimulationConfig

__all__ = ["simulate_dataset_dask"]


def _write_chunk(chunk: int, config: SimulationConfig, out: str, n: int, seed: int, chunk_size: int) -> float:
    """Simulate chunk ``chunk`` of the store ``out`` and write it, ``done`` flag last; its compute time, s.

    The worker-side equivalent of ``simulate_dataset(..., chunks=[chunk])`` that reads one ``done`` flag
    instead of all of them (that costs a file per chunk of the store: too much for a 10,000-chunk store).
    The tests check that both write the same bytes.
    """
    import zarr

    from xtml.data.store import simulate_chunk

    t0 = time.perf_counter()
    g = zarr.open_group(out, mode="r+")
    meta = dict(g.attrs["xtml"])  # type: ignore[arg-type]
    stored = (meta.get("n"), meta.get("seed"), meta.get("chunk_size"))
    if stored != (n, seed, chunk_size):
        raise ValueError(
            f"{out!r} holds another dataset (n, seed, chunk_size) = {stored}, this run has "
            f"{(n, seed, chunk_size)}: was it replaced during the run?"
        )
    if int(g["done"][chunk]) == 1:
        return 0.0
    start, stop = chunk * chunk_size, min(n, (chunk + 1) * chunk_size)
    result = simulate_chunk(config, chunk, stop - start, seed)
    for name, values in result.items():
        g[name][start:stop] = values
    g["group"][start:stop] = np.arange(start, stop) // config.dataset.spectra_per_observation
    g["done"][chunk] = 1  # commit: only now is the chunk valid
    return time.perf_counter() - t0


def simulate_dataset_dask(
    config: SimulationConfig,
    n: int,
    out: str | Path,
    *,
    client: Client | None,
    seed: int | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    retries: int = 2,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """:func:`~xtml.data.simulate_dataset` on a Dask cluster: one task per unfinished chunk.

    The store is created (or checked and resumed) here; each task writes its own chunk into it, so the
    store must be on a filesystem every worker sees.  The result is byte-identical to
    :func:`~xtml.data.simulate_dataset` with the same arguments, whatever the number of workers.

    Parameters
    ----------
    config, n, out, seed, chunk_size, overwrite, progress
        As for :func:`~xtml.data.simulate_dataset`.
    client : distributed.Client or None
        Where to run (:func:`dask_client`); ``None`` runs :func:`~xtml.data.simulate_dataset` here.
    retries : int
        Reruns of a chunk whose task raises (a dead worker's chunks are rerun by the scheduler anyway).
    on_chunk : callable, optional
        Called here with each chunk index as it is committed.

    Returns
    -------
    Path of the store.

    Raises
    ------
    ValueError
        For bad arguments or an existing store holding another dataset (as ``simulate_dataset``).
    KeyboardInterrupt
        After cancelling the pending chunks; the finished ones are kept and the same call resumes.
    """
    from xtml.data.store import simulate_dataset

    if client is None:
        return simulate_dataset(
            config,
            n,
            out,
            seed=seed,
            chunk_size=chunk_size,
            overwrite=overwrite,
            progress=progress,
            on_chunk=on_chunk,
        )
    import zarr

    # create the store, or check that the existing one is this dataset (no chunk is simulated here)
    path = simulate_dataset(
        config, n, out, seed=seed, chunk_size=chunk_size, overwrite=overwrite, progress=False, chunks=[]
    )
    meta = dict(zarr.open_group(str(path), mode="r").attrs["xtml"])  # type: ignore[arg-type]
    n, seed, chunk_size = int(meta["n"]), int(meta["seed"]), int(meta["chunk_size"])
    done = np.asarray(zarr.open_group(str(path), mode="r")["done"][:]) == 1
    todo = np.flatnonzero(~done).tolist()
    map_tasks(
        _write_chunk,
        todo,
        client=client,
        args=(config, str(path.resolve()), n, seed, chunk_size),
        desc=f"simulate {path.name}",
        progress=progress,
        retries=retries,
        initial=int(done.sum()),
        on_result=None if on_chunk is None else lambda i, _: on_chunk(todo[i]),
    )
    return path
