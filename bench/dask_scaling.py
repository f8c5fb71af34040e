"""The measurements behind docs/scaling.md: what Dask costs per task, and
how numba compilation behaves on Dask workers.  Needs the [distributed] extra.

    python -m bench.dask_scaling overhead [--scheduler local:2] [--tasks 2000] [--cells 200]
    python -m bench.dask_scaling compile  [--scheduler local:2]

``overhead`` times (1) no-op tasks through ``DaskExecutor.map_unordered``
(submit -> run on a worker -> result back -> as_completed), i.e. the
scheduler's cost per task, and (2) a sweep of trivial cells (K = 1..n, R = 4)
with the local executor and with the scheduler, i.e. what a cell costs on top
of its own computation.  ``compile`` runs a small sweep twice on the same
workers and reports, per worker, the kernels' compiled signatures and numba
cache hits / misses after each run.  To see a cold cache, give the whole
command an empty one: ``NUMBA_CACHE_DIR=$(mktemp -d) python -m bench.dask_scaling
compile`` (the client compiles nothing here; the workers inherit the variable).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from . import runner
from .dask_executor import dask_executor
from .sweep import Sweep

__all__ = ["task_overhead", "trivial_cells", "compile_stats", "main"]

LG = {"family": "LinearGaussian", "D": 4, "d": 2, "seed": 1, "x_seed": 2}


def _noop(x):
    return x


def task_overhead(scheduler="local:2", n_tasks=2000):
    """(seconds from opening the scheduler to the first no-op results -- for
    local:N the cluster's start-up, the workers' imports of bench and numba
    included --, seconds per no-op task through ``DaskExecutor.map_unordered``
    after that, the same with plain ``client.map`` + ``as_completed``)."""
    t0 = time.perf_counter()
    with dask_executor(scheduler) as ex:
        for _ in ex.map_unordered(_noop, range(50)):
            pass
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(1 for _ in ex.map_unordered(_noop, range(n_tasks)))
        ours = (time.perf_counter() - t0) / n
        from distributed import as_completed

        t0 = time.perf_counter()
        futures = ex.client.map(_noop, range(n_tasks), pure=False)
        n = sum(1 for f in as_completed(futures) if f.result() is not None)
        raw = (time.perf_counter() - t0) / n
        return startup, ours, raw


def _trivial_sweep(n_cells):
    return Sweep({"lg": dict(LG)}, q=["prior"], estimators=["elbo"], K=list(range(1, n_cells + 1)), R=4,
                 name="trivial")


def trivial_cells(scheduler="local:2", n_cells=200):
    """(seconds per trivial cell with the local sequential executor, the same
    with ``scheduler``), each over a fresh results directory, excluding the
    cluster's start-up (a warm-up sweep runs first on the same workers)."""
    sweep = _trivial_sweep(n_cells)
    with tempfile.TemporaryDirectory() as tmp:
        runner.run(_trivial_sweep(2), out=Path(tmp) / "warm", progress=False)  # compile in this process
        t0 = time.perf_counter()
        runner.run(sweep, out=Path(tmp) / "local", progress=False)
        local = (time.perf_counter() - t0) / n_cells
        with dask_executor(scheduler) as ex:
            runner.run(_trivial_sweep(4), out=Path(tmp) / "warm_dask", executor=ex, progress=False)
            t0 = time.perf_counter()
            runner.run(sweep, out=Path(tmp) / "dask", executor=ex, progress=False)
            dask = (time.perf_counter() - t0) / n_cells
    return local, dask


def _kernel_stats():
    """On a worker: compiled signatures and numba cache hits/misses of every
    kernel dispatcher loaded in this process."""
    import os

    from numba.core.registry import CPUDispatcher

    seen, sigs, hits, misses = set(), 0, 0, 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("estimators._kernels") or mod is None:
            continue
        for obj in vars(mod).values():
            if isinstance(obj, CPUDispatcher) and id(obj) not in seen:
                seen.add(id(obj))
                st = obj.stats
                sigs += len(obj.overloads)
                hits += sum(st.cache_hits.values())
                misses += sum(st.cache_misses.values())
    return {"pid": os.getpid(), "signatures": sigs, "cache_hits": hits, "cache_misses": misses}


def compile_stats(scheduler="local:2"):
    """[(run, seconds, {worker: kernel stats})] for the same small sweep run
    twice (the second with fresh=True) on the same workers."""
    sweep = Sweep({"lg": dict(LG), "gm": {"family": "GaussianMixture", "C": 3, "D": 2, "seed": 3, "x_seed": 4}},
                  q=["prior", "shift:1"], estimators=["importance_sampling", "elbo"], K=[10, 1000], R=50,
                  name="compile")
    with tempfile.TemporaryDirectory() as tmp:
        with dask_executor(scheduler) as ex:
            out = []
            for run_no, fresh in ((1, False), (2, True)):
                t0 = time.perf_counter()
                runner.run(sweep, out=Path(tmp) / "out", executor=ex, progress=False, fresh=fresh)
                seconds = time.perf_counter() - t0
                out.append((run_no, seconds, ex.client.run(_kernel_stats)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.dask_scaling", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    o = sub.add_parser("overhead", help="Dask's cost per task and per trivial cell")
    o.add_argument("--scheduler", default="local:2")
    o.add_argument("--tasks", type=int, default=2000)
    o.add_argument("--cells", type=int, default=200)
    c = sub.add_parser("compile", help="numba compilation on the workers, two runs")
    c.add_argument("--scheduler", default="local:2")
    args = parser.parse_args(argv)
    if args.command == "overhead":
        startup, per_task, raw = task_overhead(args.scheduler, args.tasks)
        print(f"{args.scheduler}: open + first 50 no-op tasks {startup:.2f} s")
        print(f"no-op task, {args.tasks} tasks: DaskExecutor.map_unordered {per_task * 1e3:.2f} ms/task, "
              f"plain client.map + as_completed {raw * 1e3:.2f} ms/task")
        local, dask = trivial_cells(args.scheduler, args.cells)
        print(f"trivial cell (K <= {args.cells}, R = 4), {args.cells} cells: local executor {local * 1e3:.2f} ms/cell, "
              f"{args.scheduler} {dask * 1e3:.2f} ms/cell")
    else:
        for run_no, seconds, stats in compile_stats(args.scheduler):
            print(f"run {run_no}: {seconds:.2f} s")
            for worker, st in sorted(stats.items()):
                print(f"  {worker} pid {st['pid']}: {st['signatures']} compiled signatures, "
                      f"cache hits {st['cache_hits']}, cache misses {st['cache_misses']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
