"""``xtml simulate`` as a recorded run: the Zarr store inside a run folder with its record.

The run folder::

    RUN/
      record.json       the run record (:mod:`xtml.runs`): configuration, seed, versions, hashes, metrics
      config.toml       the resolved configuration: ``n``, ``seed``, ``chunk_size`` and ``[simulation]``
      data.zarr/        the dataset (:func:`xtml.data.simulate_dataset`), with its ``DATASET_CARD.md``

Every ``--data`` option (and :func:`xtml.data.open_dataset`) accepts the run folder for its store.  An
interrupted run is recorded as incomplete; the same command resumes it (finished chunks are kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtml.data.config import SimulationConfig
from xtml.data.resources import check_resources
from xtml.data.store import DATA_NAME, SPLIT_NAMES, open_dataset, simulate_dataset

__all__ = ["api_command", "simulate_run", "simulation_run_config"]


def api_command(function: str, **arguments: Any) -> tuple[str, ...]:
    """The ``command`` of a run started from Python rather than the command line."""
    return ("python", f"xtml.{function}", *(f"{k}={v}" for k, v in arguments.items()))


def simulation_run_config(config: SimulationConfig, n: int, seed: int, chunk_size: int) -> dict[str, Any]:
    """The resolved configuration a simulate run records (the inverse is read by ``xtml reproduce``)."""
    return {"n": int(n), "seed": int(seed), "chunk_size": int(chunk_size), "simulation": config.to_dict()}


def simulate_run(
    config: SimulationConfig,
    n: int,
    out: str | Path,
    *,
    seed: int | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: Sequence[str] | None = None,
    simulate: Callable[..., Path] | None = None,
) -> Path:
    """Simulate ``n`` observations into the run folder ``out`` (module docstring); returns the folder.

    ``seed`` and ``chunk_size`` override the configuration's ``[dataset]`` values.  ``simulate`` replaces
    :func:`~xtml.data.simulate_dataset` (same signature; e.g. the Dask version of :mod:`xtml.parallel`).
    A folder holding a finished run is refused unless ``overwrite`` (:class:`~xtml.runs.RunCompleteError`
    when it is this very run: same configuration, ``n``, seed and chunk size, files as recorded); an
    unfinished one with the same configuration is resumed.  A dataset that would not fit on the disk or
    whose chunks would not fit in memory is refused before anything is written
    (:class:`~xtml.data.DatasetTooLargeError`, with the estimate).
    """
    from xtml.data.card import write_dataset_card
    from xtml.runs import dataset_hash, run_folder

    seed = config.dataset.seed if seed is None else seed
    chunk_size = config.dataset.chunk_size if chunk_size is None else chunk_size
    for name, value, low in (("n", n, 1), ("seed", seed, 0), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    per_obs = config.dataset.spectra_per_observation
    if n % per_obs or chunk_size % per_obs:
        raise ValueError(
            f"n ({n}) and chunk_size ({chunk_size}) must be multiples of [dataset] spectra_per_observation "
            f"= {per_obs}: an observation's spectra are never split across chunks"
        )
    store = Path(out) / DATA_NAME
    if overwrite or not store.exists():  # before the run folder is made: refuse what cannot fit
        check_resources(config, int(n), int(chunk_size), out)
    resolved = simulation_run_config(config, n, seed, chunk_size)
    cmd = command or api_command("data.simulate_run", n=n, out=out, seed=seed, chunk_size=chunk_size)
    with run_folder(
        out, "simulate", command=cmd, config=resolved, seeds={"dataset": seed}, overwrite=overwrite
    ) as run:
        store = (simulate or simulate_dataset)(
            config, n, run.path / DATA_NAME, seed=seed, chunk_size=chunk_size, progress=progress
        )
        ds = open_dataset(store)
        labels = np.asarray(ds.array("labels"))
        write_dataset_card(store)
        run.add_metrics(
            {
                "n": ds.n,
                "n_observations": len(set(ds.groups.tolist())),
                "classes": {name: int((labels == k).sum()) for k, name in enumerate(ds.class_names)},
                "splits": {s: int(ds.split_indices(s).size) for s in SPLIT_NAMES},
                "n_freq": int(ds.array("freq").size),
                "dataset_sha256": dataset_hash(store),
            }
        )
    return run.path
