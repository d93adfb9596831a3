"""Dask clients: an embedded ``LocalCluster`` of single-threaded worker processes, or a running scheduler;
the ``--scheduler`` / ``--workers`` options of the command line."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["WORKER_ENV", "add_dask_arguments", "client_from_args", "dask_client", "get_client"]

#: Environment of the worker processes of a local cluster: one thread per worker for every numeric library
#: (the workers are the parallelism; nested thread pools would oversubscribe the cores).
WORKER_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


# --------------------------------------------------------------------------------------------------------
# clients


def _check_workers(workers: object) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be None or an integer >= 1, got {workers!r}")
    return int(workers)


def get_client(
    scheduler: str | None = None, workers: int | None = None, *, dashboard: str | None = None
) -> Client:
    """A Dask client: on a new embedded ``LocalCluster``, or connected to a running scheduler.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``"tcp://host:8786"``, or a scheduler file's path ending in
        ``.json``).  Default: start a ``LocalCluster`` in this machine (nothing to start by hand).
    workers : int, optional
        Worker processes of the local cluster (default: the CPUs available), each with one thread.  Not
        allowed with ``scheduler``: a real cluster's size is set where its workers are started.
    dashboard : str, optional
        Address of the local cluster's dashboard (e.g. ``":8787"``); default: no dashboard.

    Returns
    -------
    distributed.Client
        Closing it also closes a local cluster it started.  Prefer :func:`dask_client`, which closes it.

    Raises
    ------
    ValueError
        If ``workers`` is not a positive integer, is given with ``scheduler``, or the scheduler cannot be
        reached (the message names the address).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(
            "running on Dask (--workers / --scheduler) needs the dask extra: pip install 'xtml[dask]'"
        ) from None

    n_workers = _check_workers(workers)
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ValueError(f"scheduler must be an address like 'tcp://host:8786', got {scheduler!r}")
        if n_workers is not None:
            raise ValueError(
                f"workers={n_workers} applies to a local cluster only; the size of the cluster at "
                f"{scheduler} is set where its workers are started (docs/cluster.md)"
            )
        kwargs: dict[str, Any] = (
            {"scheduler_file": scheduler} if scheduler.endswith(".json") else {"address": scheduler}
        )
        try:
            return Client(**kwargs)
        except (OSError, ValueError) as err:  # unreachable, or not an address ("missing port number")
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with `dask scheduler` "
                "or leave out --scheduler to run on a local cluster"
            ) from None
    from xtml.simulate.lightcurves import available_cpus

    return Client(
        n_workers=n_workers or available_cpus(),
        threads_per_worker=1,
        processes=True,
        # no dashboard: its HTTP server on a free local port (the default 8787 may be taken, by another
        # cluster of this machine), without the dashboard pages
        dashboard_address="127.0.0.1:0" if dashboard is None else dashboard,
        scheduler_kwargs=None if dashboard is not None else {"dashboard": False},
        env=dict(WORKER_ENV),
    )


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None, *, dashboard: str | None = None
) -> Iterator[Client]:
    """:func:`get_client` as a context manager: closes the client (and a local cluster it started).

    A remote cluster is left running: only the connection to it is closed.

    Examples
    --------
    >>> from xtml.data import load_config
    >>> with dask_client(workers=2) as client:  # doctest: +SKIP
    ...     simulate_dataset_dask(load_config("cfg.toml"), 10_000, "data.zarr", client=client)
    """
    client = get_client(scheduler, workers, dashboard=dashboard)
    try:
        yield client
    finally:
        cluster = client.cluster  # a LocalCluster the client started itself, or None (remote)
        client.close()
        if cluster is not None:
            cluster.close()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` to a subcommand's parser.

    Both default to ``None``: :func:`client_from_args` then gives no client (the single-process path)
    unless asked for a local cluster by default.
    """
    group = parser.add_argument_group("parallel (Dask)")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on the Dask cluster of this scheduler (tcp://host:8786, or a scheduler file .json); "
        "the data must be on a filesystem every worker sees (docs/cluster.md)",
    )
    group.add_argument(
        "--workers",
        metavar="N",
        type=_positive_int,
        default=None,
        help="run on an embedded local Dask cluster of N worker processes (one thread each)",
    )


def client_from_args(
    args: argparse.Namespace, *, local_by_default: bool = False
) -> AbstractContextManager[Client | None]:
    """The client asked for by :func:`add_dask_arguments`' options, as a context manager that closes it.

    ``--scheduler ADDRESS``: a client of that cluster; ``--workers N``: a local cluster of ``N`` workers;
    neither: a local cluster of one worker per CPU if ``local_by_default``, else ``None`` (the caller's
    single-process path).
    """
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    if scheduler is None and workers is None and not local_by_default:
        return nullcontext(None)
    return dask_client(scheduler, workers)
