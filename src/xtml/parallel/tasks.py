"""One Dask task per item, results in order, with progress, retries and a clean interrupt."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["map_tasks"]


def map_tasks(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    client: Client | None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    desc: str = "tasks",
    unit: str = "chunk",
    progress: bool = True,
    retries: int = 2,
    initial: int = 0,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(item, *args, **kwargs) for item in items]``, one Dask task per item, results in item order.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers).
    items : sequence
        One task per item.
    client : distributed.Client or None
        ``None`` runs the tasks here, one after the other (the single-process path).
    args, kwargs
        Shared by every task.  A large object is best scattered once (``client.scatter``) and its future
        passed in ``args``: Dask resolves futures found in ``args``, not in ``kwargs``.
    desc, unit : str
        Label and unit of the progress bar (tqdm over the tasks as they complete).
    progress : bool
        Show the progress bar (on a terminal only).
    retries : int
        Reruns of a task that raises (a worker that dies is handled by the scheduler, see the module
        docstring).
    initial : int
        Tasks already done before these (the bar starts there; for resumed jobs).
    on_result : callable, optional
        Called here as ``on_result(index, result)`` as each task completes (in completion order).

    Returns
    -------
    list
        The results, in the order of ``items``.

    Raises
    ------
    KeyboardInterrupt
        After cancelling the pending tasks; finished tasks keep what they wrote.
    Exception
        The first error of a task (after its retries), once the other tasks are cancelled.
    """
    from tqdm.auto import tqdm

    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    call = functools.partial(fn, **(kwargs or {}))
    results: list[Any] = [None] * len(items)
    # disable=None: the bar is drawn on a terminal only, never into a log file
    bar = tqdm(
        total=initial + len(items), initial=initial, unit=unit, desc=desc, disable=None if progress else True
    )
    try:
        if client is None:
            for i, item in enumerate(items):
                results[i] = call(item, *args)
                bar.update(1)
                if on_result is not None:
                    on_result(i, results[i])
            return results
        from distributed import as_completed

        futures = [
            # earlier items first; pure=False: a rerun after a failure must run again, not reuse a result
            client.submit(call, item, *args, retries=retries, priority=-i, pure=False)
            for i, item in enumerate(items)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    results[i] = future.result()
                except Exception as err:
                    _explain(err, desc, items[i])
                    raise
                future.release()
                bar.update(1)
                if on_result is not None:
                    on_result(i, results[i])
        except BaseException:  # KeyboardInterrupt included: stop what is still pending or running
            with suppress(Exception):  # a client that lost its scheduler cannot cancel: nothing to stop
                client.cancel([f for f in futures if not f.done()])
            raise
        return results
    finally:
        bar.close()


def _explain(err: Exception, desc: str, item: Any) -> None:
    """Say which task failed (Python >= 3.11 notes), and what a ``KilledWorker`` means."""
    note = f"xtml.parallel: {desc}: the task of item {item!r} failed"
    if type(err).__name__ == "KilledWorker":
        note += (
            " because the workers running it died too often (out of memory? see the workers' logs); "
            "finished work is kept: run again to resume"
        )
    err.add_note(note)
