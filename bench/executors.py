"""How cells are run: executors.

An executor is any object with

    map_unordered(fn, tasks) -> iterator of (index, result)

that calls ``fn(task)`` for every task (``fn`` and the tasks are picklable:
``bench.run`` passes ``run_cell`` and the ``Cell`` objects, a frozen
dataclass) and yields each result, tagged with the task's index, *as it
finishes* -- in any order.  ``bench.run`` writes each finished cell's row
itself, in the calling process, as it arrives, so the order does not matter
for the results and the workers never touch the results directory.  An
exception in a task propagates out of the iterator (cells already finished
stay stored).

``LocalExecutor(workers=1)`` runs the cells one after another in this
process; ``workers > 1`` uses a ``concurrent.futures.ProcessPoolExecutor``
(spawned processes, each with one numba thread, so the workers do not
oversubscribe the cores).  ``bench.dask_executor.DaskExecutor`` implements
the same method on a Dask cluster (``bench.run(..., scheduler=...)``,
``python -m bench run --scheduler``).  Timing columns measured under a
parallel executor include the contention between workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

__all__ = ["LocalExecutor", "get_executor", "EXECUTORS"]


def _init_worker():
    import numba

    numba.set_num_threads(1)


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """SIGINT ignored while the pool starts its processes, so that they are
    born ignoring it (a spawned Python keeps an inherited SIG_IGN) and a
    Ctrl-C in the terminal -- sent to the whole process group -- reaches the
    parent alone: it says what is saved and stops the workers, and no worker
    prints a traceback from the middle of its start-up imports.  (A handler set
    in the pool's initializer comes too late: the worker unpickles -- imports --
    the initializer first.)  Only the main thread may set signal handlers;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(pool):
    """Stop a pool now, without waiting for the cells its workers are computing
    (they are lost; finished cells were already handed back)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


def was_interrupted(exc):
    """True if ``exc`` is, or was caused by, a KeyboardInterrupt.  A Ctrl-C
    that lands while numba runs one of its own Python callbacks (unpickling a
    constant, say) comes out of the compiled call as a SystemError ("returned
    a result with an exception set") chained to the KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class LocalExecutor:
    """Sequential (workers = 1) or a local process pool (workers > 1)."""

    def __init__(self, workers=1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
        self.workers = workers

    def __repr__(self):
        return f"LocalExecutor(workers={self.workers})"

    def map_unordered(self, fn, tasks):
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                try:
                    result = fn(task)
                except SystemError as exc:
                    if was_interrupted(exc):
                        raise KeyboardInterrupt from None
                    raise
                yield i, result
            return
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker)
        finished = False
        try:
            with _workers_ignore_ctrl_c():  # the pool starts its workers in submit
                pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    yield i, fut.result()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # Ctrl-C, a failed task or the caller stopped: do not wait for the running cells
                _stop(pool)


EXECUTORS = {"local": LocalExecutor}


def get_executor(executor="local", workers=None):
    """An executor from a name ("local", "local:<workers>") or an object with
    ``map_unordered`` (returned as is)."""
    if hasattr(executor, "map_unordered"):
        if workers is not None:
            raise ValueError("workers: give it to the executor object itself")
        return executor
    if not isinstance(executor, str):
        raise ValueError(f"executor: expected a name or an object with map_unordered, got {executor!r}")
    name, _, count = executor.partition(":")
    if name not in EXECUTORS:
        raise ValueError(f"executor: unknown executor {executor!r}; expected one of {sorted(EXECUTORS)}")
    if count:
        if workers is not None:
            raise ValueError(f"workers: given twice ({executor!r} and workers={workers})")
        try:
            workers = int(count)
        except ValueError:
            raise ValueError(f"executor: worker count in {executor!r} is not an integer") from None
    if workers == 0:
        workers = os.cpu_count() or 1
    return EXECUTORS[name](workers=1 if workers is None else workers)
