"""Where batches run: this process, a local process pool, or a Dask cluster.

Data goes to each worker once (pool initializer / ``Client.scatter(broadcast=True)``), never
with every task; a task is a chunk of combinations, so per-task overhead stays small.
Results stream back as they finish, in any order, as ``(first_index, tables, errors)``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import pandas as pd

from meridian.exceptions import ParameterError
from meridian.sweep.evaluate import Settings, Window, evaluate

EXECUTORS = ("local", "dask")
Chunk = tuple[int, list[dict]]
_worker_state: dict = {}


def chunks(combinations: list[dict], workers: int) -> list[Chunk]:
    """Combinations split so each worker gets several tasks of 8–32 combinations: enough to
    amortize a task's overhead, small enough to keep the bars × combinations arrays in cache."""
    size = max(8, min(32, len(combinations) // max(1, workers * 8)))
    return [(i, combinations[i:i + size]) for i in range(0, len(combinations), size)]


def _init_worker(data: pd.DataFrame, settings: Settings, windows: tuple[Window, ...]) -> None:
    # Ctrl-C is the parent's to handle (it keeps finished work); workers just finish a chunk.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_state.update(data=data, settings=settings, windows=windows)


def _run_chunk(chunk: Chunk):
    first, combinations = chunk
    state = _worker_state
    return (first, *evaluate(state["data"], state["settings"], combinations, state["windows"]))


def _evaluate_chunk(data, settings, windows, chunk: Chunk):
    first, combinations = chunk
    return (first, *evaluate(data, settings, combinations, windows))


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_local(data, settings, windows, work: list[Chunk], workers: int) -> Iterator[tuple]:
    """A process pool of ``workers`` (this process alone when 1)."""
    if workers <= 1:
        for chunk in work:
            yield _evaluate_chunk(data, settings, windows, chunk)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                               initargs=(data, settings, windows))
    pending = set()
    queue = iter(work)
    try:
        for chunk in queue:  # keep a bounded number of tasks in flight
            pending.add(pool.submit(_run_chunk, chunk))
            if len(pending) >= workers * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(data, settings, windows, work: list[Chunk], workers: int,
             scheduler: str | None) -> Iterator[tuple]:
    """A ``dask.distributed`` client: to ``scheduler`` (a running cluster, which must have
    meridian installed on its workers) or to a ``LocalCluster`` of ``workers`` processes."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        shared = client.scatter(data, broadcast=True)
        futures = [client.submit(_evaluate_chunk, shared, settings, windows, chunk, pure=False)
                   for chunk in work]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run(executor: str, data, settings, windows, work, workers, scheduler=None):
    if executor not in EXECUTORS:
        raise ParameterError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "dask":
        return run_dask(data, settings, windows, work, workers, scheduler)
    if scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    return run_local(data, settings, windows, work, workers)
