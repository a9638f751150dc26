"""Where batches run: this process, a local process pool, or a Dask cluster.

A task is an array of combination indices; workers decode the parameters from the grid they
received once (pool initializer / ``Client.scatter(broadcast=True)``) with the data, so tasks
stay tiny and nothing proportional to the grid is ever pickled. Results stream back as they
finish, in any order, as ``(indices, tables, errors)``.

Workers never outlive the sweep: they ignore Ctrl-C (the parent handles it and keeps finished
work), the pool is shut down on every exit path, and each worker exits on its own as soon as
its parent is gone, even when the parent was killed with -9 and could not stop them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np
import pandas as pd

from meridian import _process
from meridian.engine._jit import load_compiler
from meridian.exceptions import ParameterError
from meridian.indicators import shared_windows
from meridian.sweep.evaluate import Job, Window, evaluate, evaluate_columns
from meridian.sweep.grid import Grid

EXECUTORS = ("local", "dask")
SCHEDULER_TIMEOUT = "5s"
LOCAL_CLUSTER_CONFIG = {"distributed.worker.multiprocessing-method": "fork",
                        "distributed.worker.profile.enabled": False,
                        "distributed.admin.tick.interval": "1s"}
_worker_state: dict = {}


def chunk_size(total: int, workers: int, bars: int = 3_000, fused: bool = False,
               dask: bool = False) -> int:
    """Combinations per task: several tasks per worker, each a bars × combinations block of
    about 100,000 cells (8–32 combinations on ten years of daily bars, more on short data):
    enough to amortize a task's overhead, small enough to stay in cache. A fused sweep
    (:func:`~meridian.sweep.evaluate.fusable`) keeps one column at a time, so its tasks hold
    about 4 million cells of signals (a thousand combinations on ten years of daily bars);
    on Dask four times that, as each task costs its scheduler, client and workers 10–20 ms
    of CPU of their own (a 1,000,250-combination FLD sweep: 31.5 → 27 s of CPU, Dask from
    0.77 to 0.89 of the local pool; eight local tasks' worth costs more per combination). The sweep
    ends Dask's run with smaller tasks (:func:`~meridian.sweep.run._work`)."""
    scale = 4 if dask else 1
    cells = 4_000_000 * scale if fused else 100_000
    per_task = max(8, min(20_000 * scale if fused else 256, cells // max(1, bars)))
    return max(1, min(per_task, total // max(1, workers * (4 if fused else 8))) or 1)


def tasks(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``indices`` cut into consecutive tasks of ``size`` (lazily)."""
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def _init_worker(data: pd.DataFrame, settings: Job, grid: Grid,
                 windows: tuple[Window, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _process.watch_parent()
    data.attrs.clear()  # provenance is the parent's; pandas would deep-copy it on every op
    shared_windows(data)
    _worker_state.update(data=data, settings=settings, grid=grid, windows=windows)


def _run_task(indices: np.ndarray):
    state = _worker_state
    return _evaluate(state["data"], state["settings"], state["grid"], state["windows"], indices)


def _evaluate(data, settings, grid: Grid, windows, indices: np.ndarray):
    """``(indices, tables, errors, kept returns, their indices)`` of one task."""
    load_compiler()  # numba's tables, without scipy.linalg (0.1–0.2 s sooner per worker)
    keep = sampled(indices, settings.sample_stride, settings.sample_size)
    fused = evaluate_columns(data, settings, grid.columns(indices), windows, keep)
    tables, errors, kept = fused if fused is not None else evaluate(
        data, settings, grid.combinations(indices), windows, keep)
    return indices, tables, errors, kept, indices[keep]


def sampled(indices: np.ndarray, stride: int, size: int) -> np.ndarray:
    """Which of ``indices`` belong to the sweep's even sample for the overfitting statistics
    (every ``stride``-th combination, ``size`` of them)."""
    return (indices % stride == 0) & (indices // stride < size)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_local(data, settings, grid, windows, work: Iterator[np.ndarray],
              workers: int) -> Iterator[tuple]:
    """A process pool of ``workers`` (this process alone when 1)."""
    if workers <= 1:
        data = data.copy()
        data.attrs.clear()
        shared_windows(data)
        for indices in work:
            yield _evaluate(data, settings, grid, windows, indices)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                               initargs=(data, settings, grid, windows))
    pending = set()
    try:
        for indices in work:  # keep a bounded number of tasks in flight
            pending.add(pool.submit(_run_task, indices))
            if len(pending) >= workers * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _ParentWatch:
    """A Dask nanny plugin: the nanny (and so its worker) exits when the sweep's process is
    gone, even killed with -9."""

    name = "meridian-parent-watch"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def setup(self, nanny) -> None:
        import threading
        import time

        def poll() -> None:
            while True:
                time.sleep(0.5)
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    process = getattr(getattr(nanny, "process", None), "process", None)
                    if process is not None and process.pid:
                        os.kill(process.pid, signal.SIGKILL)
                    os._exit(1)

        threading.Thread(target=poll, daemon=True).start()


def connect_dask(workers: int, scheduler: str | None):
    """A ``dask.distributed`` client: to ``scheduler`` (a running cluster, whose workers must
    have meridian installed) or to a new ``LocalCluster``; (client, cluster or None).
    An unreachable scheduler is a one-line error within seconds."""
    from dask.distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import NannyPlugin

    if scheduler:
        try:
            return Client(scheduler, timeout=SCHEDULER_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as error:
            raise ParameterError(f"--scheduler {scheduler}: cannot reach a Dask scheduler "
                                 f"there within {SCHEDULER_TIMEOUT} ({type(error).__name__}); "
                                 "is it running, and is the address tcp://HOST:PORT?") from None
    import dask

    # forked like the local pool's workers: they start with this process's imports (pandas,
    # numba, the strategy) instead of importing them again (about a second on a small machine).
    # No profiler and a slow tick: this cluster has no dashboard to show profiles, and every
    # sample (each 10 ms) and tick (each 20 ms) takes the worker's GIL and a core from the
    # task; its event loop then used 0.13-0.18 s of CPU a sweep instead of 0.22-0.26 s
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(cluster)
    watch = type("MeridianParentWatch", (_ParentWatch, NannyPlugin), {})(os.getpid())
    client.register_plugin(watch)
    return client, cluster


def run_dask(data, settings, grid, windows, work: Iterator[np.ndarray], workers: int,
             scheduler: str | None, connection=None) -> Iterator[tuple]:
    """Tasks on a Dask cluster, a bounded number in flight; results are fetched in the
    background as tasks finish (``as_completed``), not one round trip each."""
    from dask.distributed import as_completed

    client, cluster = connection or connect_dask(workers, scheduler)
    finished = as_completed(with_results=True)
    try:
        shared = client.scatter(data, broadcast=True)
        for indices in work:
            finished.add(client.submit(_evaluate, shared, settings, grid, windows, indices,
                                       pure=False))
            if finished.count() >= workers * 8:
                yield next(finished)[1]
        for _, result in finished:
            yield result
    finally:
        with finished.lock:  # its own: the client's thread moves futures out as they end
            left = list(finished.futures)
        if left:
            client.cancel(left)
        client.close()
        if cluster is not None:
            cluster.close()


def run(executor: str, data, settings, grid, windows, work, workers, scheduler=None,
        connection=None):
    if executor not in EXECUTORS:
        raise ParameterError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "dask":
        return run_dask(data, settings, grid, windows, work, workers, scheduler, connection)
    if scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    return run_local(data, settings, grid, windows, work, workers)
