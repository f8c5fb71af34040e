"""Running cells on Dask (``dask.distributed``): the ``--scheduler`` executor.

    python -m bench run CONFIG.toml --scheduler tcp://HOST:PORT   # an existing scheduler
    python -m bench run CONFIG.toml --scheduler local:N           # N local worker processes

    bench.run(sweep, out, scheduler="local:2")                    # the same from Python

Dask is an optional extra (``pip install "evidence-bench[distributed]"``);
this module imports ``distributed`` only when a scheduler is opened, so
``import bench`` works without it, and asking for a scheduler without it is a
clear error (``DistributedUnavailable``).

How it runs a sweep (see ``DaskExecutor``):

* every task ``bench.run`` hands over -- one cell, or the "iwae" gradient
  cells that share a reference gradient (``bench.runner.task_groups``) -- is
  one Dask task (``client.map`` with ``pure=False``); it computes the rows on
  a worker and ships them back (~50 numbers a cell).  The *client* writes
  each row as it arrives
  (``distributed.as_completed``), atomically, with ``bench.storage`` -- so
  the workers need no access to the results directory, and a killed client
  or a lost worker loses at most the cells in flight.  Dask reschedules the
  tasks of a lost worker on the others (a task that loses
  ``distributed.scheduler.allowed-failures`` + 1 workers, default 4, fails
  with ``KilledWorker``); a re-run resumes from the stored cells.
* results are bit-identical to the local executor's: a cell's seed is its
  own, and the kernels are reproducible whatever NUMBA_NUM_THREADS is.  To
  keep that promise on a cluster the client checks, with every result, that
  the worker ran the same code and numeric libraries (``code_fingerprint``);
  a mismatch is a ``ValueError`` naming the worker.
* ``local:N`` starts a ``LocalCluster`` of N worker processes
  (``processes=True``, one task thread each, on 127.0.0.1, no dashboard) and
  gives each task ``max(1, cores // N)`` numba threads, so N workers do not
  oversubscribe the cores.  ``NUMBA_NUM_THREADS`` goes into each worker's
  environment (``LocalCluster(env=...)`` -> ``Nanny(env=...)``), which sizes
  numba's thread pool -- when it arrives in time.  The Nanny applies it only
  after the spawned process has started, and multiprocessing's spawn first
  re-imports the parent's ``__main__`` module (a script, or a ``-m`` module
  other than a package's ``__main__``, so not ``python -m bench``); if that
  imports bench, numba is already imported with one thread per core, and the
  changed variable then makes numba's next *compilation* fail ("Cannot set
  NUMBA_NUM_THREADS to a different value once the threads have been
  launched", measured).  So every task (``_run_on_worker``) first puts the
  variable back to the pool size numba really has when the two differ, then
  calls ``numba.set_num_threads(n)`` (thread-local: the worker's task thread)
  and reports ``numba.get_num_threads()`` and the pool size to the client,
  which checks the former.  For ``tcp://`` the workers are yours: start them
  with one task thread and NUMBA_NUM_THREADS set, e.g.
  ``NUMBA_NUM_THREADS=4 dask worker tcp://HOST:PORT --nworkers 8 --nthreads 1``
  on a 32-core host (or pass ``numba_threads`` to ``dask_executor``).
* numba compiles once per worker process, not per task: the kernels are
  ``cache=True``, so a worker's first cell loads the machine code from
  numba's on-disk cache (or compiles and stores it when the cache is cold),
  and every later cell in that process reuses the in-memory dispatcher.
  ``run_cell`` calls ``estimators.warm_up`` before its timed call, so neither
  loading nor compiling is ever inside a cell's timing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import re
from pathlib import Path

from .executors import _workers_ignore_ctrl_c

__all__ = [
    "DaskExecutor",
    "DistributedUnavailable",
    "INSTALL_HINT",
    "code_fingerprint",
    "dask_executor",
    "local_numba_threads",
    "parse_scheduler",
    "require_distributed",
]

INSTALL_HINT = 'pip install "evidence-bench[distributed]"  (or: pip install "dask[distributed]")'

_TCP = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
_LOCAL = re.compile(r"^local:(?P<n>[0-9]+)$")


class DistributedUnavailable(ImportError):
    """``--scheduler`` was asked for but dask.distributed is not installed."""


def parse_scheduler(scheduler):
    """``("tcp", "tcp://HOST:PORT")`` or ``("local", N)``; ValueError naming
    ``scheduler`` otherwise.  Needs no Dask, so typos are caught first."""
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler: expected 'tcp://HOST:PORT' or 'local:N', got {scheduler!r}")
    m = _LOCAL.match(scheduler)
    if m:
        n = int(m.group("n"))
        if n < 1:
            raise ValueError(f"scheduler: local:N needs N >= 1 worker processes, got {scheduler!r}")
        return "local", n
    m = _TCP.match(scheduler)
    if m:
        port = int(m.group("port"))
        if not 1 <= port <= 65535:
            raise ValueError(f"scheduler: port must be in 1..65535, got {scheduler!r}")
        return "tcp", scheduler
    raise ValueError(f"scheduler: expected 'tcp://HOST:PORT' or 'local:N', got {scheduler!r}")


def require_distributed():
    """The ``distributed`` module, or ``DistributedUnavailable`` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise DistributedUnavailable(
            f"scheduler: running on Dask needs dask.distributed, which is not installed ({exc}); "
            f"install the optional extra: {INSTALL_HINT}"
        ) from None
    return distributed


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_numba_threads(n_workers, cores=None):
    """NUMBA_NUM_THREADS for each of ``n_workers`` local worker processes:
    ``max(1, cores // n_workers)``."""
    cores = _cores() if cores is None else cores
    return max(1, cores // n_workers)


# Modules whose code decides a cell's numbers on the worker (run_cell and what it calls).
_BENCH_COMPUTE = ("sweep.py", "presets.py", "metrics.py", "exact.py", "runner.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint():
    """What a cell's numbers depend on besides its seed, as {component: digest
    or version}: the sources of ``problems`` and ``estimators`` (kernels
    included), bench's compute modules, and the Python, NumPy, SciPy and numba
    versions.  Computed once per process."""
    import numba
    import numpy
    import scipy

    import estimators
    import problems

    def digest(files):
        h = hashlib.sha256()
        for root, f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        return h.hexdigest()[:16]

    out = {}
    for mod in (problems, estimators):
        root = Path(mod.__file__).resolve().parent
        out[mod.__name__] = digest((root, f) for f in sorted(root.rglob("*.py")))
    bench_root = Path(__file__).resolve().parent
    out["bench"] = digest((bench_root, bench_root / name) for name in _BENCH_COMPUTE)
    out["python"] = platform.python_version()
    out["numpy"] = numpy.__version__
    out["scipy"] = scipy.__version__
    out["numba"] = numba.__version__
    return out


def _run_on_worker(fn, task, numba_threads=None):
    """The Dask task: ``fn(task)`` with ``numba_threads`` numba threads in this
    (the worker's task) thread if given, plus what the client checks about
    the worker."""
    import numba
    from distributed import get_worker

    pool = numba.config.NUMBA_NUM_THREADS
    if os.environ.get("NUMBA_NUM_THREADS", str(pool)) != str(pool):
        # numba was imported before the Nanny set the variable (see the module
        # docstring): keep the environment consistent with the real pool, or
        # numba's next compilation raises RuntimeError.
        os.environ["NUMBA_NUM_THREADS"] = str(pool)
    if numba_threads is not None:
        numba.set_num_threads(numba_threads)  # ValueError if above the worker's NUMBA_NUM_THREADS
    info = {
        "worker": get_worker().address,
        "pid": os.getpid(),
        "numba_threads": numba.get_num_threads(),
        "numba_pool": pool,
        "fingerprint": code_fingerprint(),
    }
    return info, fn(task)


class DaskExecutor:
    """An executor (``map_unordered(fn, tasks)``, see ``bench.executors``) on a
    ``distributed.Client``.

    ``numba_threads``: if given, each task sets that many numba threads
    before it runs (``numba.set_num_threads``, thread-local), and the client
    checks the number the task reports (a mismatch is a RuntimeError); None
    leaves the workers' own setting (NUMBA_NUM_THREADS, default one per core).
    After (or during) a run, ``workers`` maps each worker address that
    returned a result to ``{"pid", "numba_threads", "numba_pool"}``
    (``numba_pool`` = the worker's NUMBA_NUM_THREADS) and ``completed_on``
    maps task index to the address of the worker whose result was used;
    ``task_keys`` lists the Dask keys of the last ``map_unordered``'s tasks.
    """

    def __init__(self, client, numba_threads=None, description=None):
        self.client = client
        self.numba_threads = numba_threads
        self.description = description or f"dask {client.scheduler.address}"
        self.workers = {}
        self.completed_on = {}
        self.task_keys = []
        self.cluster = None  # the LocalCluster when dask_executor started one
        self._fingerprint = None

    def __repr__(self):
        threads = sorted({w["numba_threads"] for w in self.workers.values()})
        pool = sorted({w["numba_pool"] for w in self.workers.values()})
        seen = (
            f"; {len(self.workers)} workers returned results, numba threads per task {threads}"
            f" (NUMBA_NUM_THREADS {pool})"
            if self.workers
            else ""
        )
        return f"DaskExecutor({self.description}{seen})"

    def _check(self, info):
        if self._fingerprint is None:
            self._fingerprint = code_fingerprint()
        theirs = info["fingerprint"]
        differ = sorted(k for k in set(self._fingerprint) | set(theirs) if self._fingerprint.get(k) != theirs.get(k))
        if differ:
            detail = ", ".join(f"{k}: here {self._fingerprint.get(k)}, worker {theirs.get(k)}" for k in differ)
            raise ValueError(
                f"scheduler: worker {info['worker']} runs different code or libraries than this client ({detail}); "
                "its results would not be bit-identical -- give the workers the same evidence-bench, "
                "Python, NumPy, SciPy and numba"
            )
        if self.numba_threads is not None and info["numba_threads"] != self.numba_threads:
            raise RuntimeError(
                f"worker {info['worker']} runs {info['numba_threads']} numba threads, "
                f"expected {self.numba_threads}"
            )

    def map_unordered(self, fn, tasks):
        """Submit every task, then yield ``(index, fn(task))`` as each finishes.
        A task's exception is raised here; tasks not yet finished are
        cancelled when the iteration stops early (an error, or the consumer
        closing the generator)."""
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        futures = self.client.map(
            _run_on_worker, [fn] * len(tasks), tasks, numba_threads=self.numba_threads, pure=False
        )
        self.task_keys = [f.key for f in futures]
        index = {f.key: i for i, f in enumerate(futures)}
        pending = set(index)
        try:
            for fut in as_completed(futures):
                info, result = fut.result()
                self._check(info)
                i = index[fut.key]
                pending.discard(fut.key)
                self.workers[info["worker"]] = {k: info[k] for k in ("pid", "numba_threads", "numba_pool")}
                self.completed_on[i] = info["worker"]
                fut.release()
                yield i, result
        finally:
            left = [f for f in futures if f.key in pending]
            if left:
                self.client.cancel(left)


def _quiet_on_interrupt(exc_type, exc, tb):
    """On Ctrl-C, before the cluster closes: silence this process's
    distributed and tornado loggers, which would otherwise print the shutdown's
    warnings and a NameError that distributed.utils.sync logs when the
    interrupt lands before its future exists (a distributed bug)."""
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        for name in ("distributed", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return False


@contextlib.contextmanager
def dask_executor(scheduler, numba_threads=None, connect_timeout="10s"):
    """``with dask_executor("local:2") as ex:`` -- a ``DaskExecutor`` on a new
    LocalCluster (closed on exit), or on an existing scheduler at
    ``tcp://HOST:PORT`` (the client disconnects on exit; the cluster stays).
    ``ex.cluster`` is the LocalCluster (None for tcp).  ``numba_threads``:
    numba threads per task; default ``local_numba_threads(N)`` for local:N,
    the workers' own setting for tcp.

    Like any ``multiprocessing`` spawn, ``local:N`` re-imports the calling
    script in each worker process: guard a script's work with
    ``if __name__ == "__main__":``."""
    kind, arg = parse_scheduler(scheduler)
    if numba_threads is not None:
        if isinstance(numba_threads, bool) or not isinstance(numba_threads, int) or numba_threads < 1:
            raise ValueError(f"numba_threads: must be an integer >= 1, got {numba_threads!r}")
    distributed = require_distributed()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            threads = local_numba_threads(arg) if numba_threads is None else numba_threads
            # Started with SIGINT ignored, so the worker processes are born ignoring
            # it: a Ctrl-C in the terminal (sent to the whole process group) reaches
            # this client alone, which says what is saved and closes the cluster.
            # The cluster's own logs at ERROR only: its warnings on that shutdown
            # (tasks cancelled, workers killed) are noise; task errors come back
            # through the futures.
            with _workers_ignore_ctrl_c():
                cluster = distributed.LocalCluster(
                    n_workers=arg,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    env={"NUMBA_NUM_THREADS": str(threads)},
                    silence_logs=logging.ERROR,
                )
            stack.callback(cluster.close)
            stack.push(_quiet_on_interrupt)  # runs first on the way out
            client = distributed.Client(cluster)
            description = (
                f"dask LocalCluster of {arg} processes x 1 thread on 127.0.0.1, {threads} numba threads per task"
            )
        else:
            threads, cluster = numba_threads, None
            try:
                client = distributed.Client(arg, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"scheduler: cannot connect to {arg} ({exc})") from None
            description = f"dask scheduler {arg}" + (f", {threads} numba threads per task" if threads else "")
        stack.callback(client.close)
        ex = DaskExecutor(client, numba_threads=threads, description=description)
        ex.cluster = cluster
        yield ex
