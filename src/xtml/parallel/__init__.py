"""Scale-out on Dask: an embedded ``LocalCluster`` or any scheduler address, work split along Zarr chunks.

Every job of xtml that is a loop over independent pieces runs here as one Dask task per piece:

* :func:`simulate_dataset_dask`: one task per unfinished chunk of a simulated dataset.  The driver creates
  (or checks, when resuming) the store; each task simulates its chunk and writes it straight into the
  store, ``done`` flag last, so nothing but a few bytes of timing funnels through the driver;
* :func:`fit_dataset`: maximum-likelihood fits (:func:`~xtml.reference.fit_spectra`) of the spectra of a
  dataset, one task per Zarr chunk, each reading its own rows;
* :func:`extract_features`: a feature transformer (default
  :class:`~xtml.learn.features.SpectralFeatures`) over a dataset, one task per Zarr chunk;
* :func:`xtml.analyze.analyze_files` with ``client=``: one task per file.

Determinism
-----------
A task's result depends on its inputs only, never on the worker or on the number of workers.  Chunk
``i`` of a simulation draws all its randomness from ``SeedSequence(seed, spawn_key=(i,))`` (see
:mod:`xtml.data.store`), so 1 worker, 8 workers and the single-process :func:`~xtml.data.simulate_dataset`
write identical stores.  The random starts of the fits of chunk ``i`` likewise come from
``SeedSequence(seed, spawn_key=(i,))``: they depend on the store's chunk size, not on the cluster.

Fault tolerance
---------------
A chunk is committed by its ``done`` flag, written after its data.  When a worker dies, the scheduler
reruns the tasks it was running on the other workers (up to ``distributed.scheduler.allowed-failures``
times, 3 by default); a task that raises is retried ``retries`` times.  A chunk interrupted mid-write has
no ``done`` flag and is simply rewritten (with the same bytes).  Interrupting the driver (Ctrl-C) cancels
the pending tasks and keeps every finished chunk; running the same call again resumes.

Clusters
--------
:func:`get_client` (and its context-manager form :func:`dask_client`) starts an embedded ``LocalCluster``
of worker *processes* with one thread each and one BLAS/OpenMP/numba thread each (the simulations are
Python- and numba-bound: processes scale with the cores where threads share the GIL), or connects to a
running scheduler (``tcp://host:8786``) of a real cluster: see ``docs/cluster.md``.  The store must then be
on a filesystem that every worker sees.
"""

from xtml.parallel.cluster import WORKER_ENV, add_dask_arguments, client_from_args, dask_client, get_client
from xtml.parallel.dataset import extract_features, fit_dataset
from xtml.parallel.simulate import simulate_dataset_dask
from xtml.parallel.tasks import map_tasks

__all__ = [
    "WORKER_ENV",
    "add_dask_arguments",
    "client_from_args",
    "dask_client",
    "extract_features",
    "fit_dataset",
    "get_client",
    "map_tasks",
    "simulate_dataset_dask",
]
