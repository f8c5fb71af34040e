"""Cells as Dask tasks (``--scheduler``): a real LocalCluster of worker
processes gives the local executor's table bit for bit (timing aside), and a
worker killed mid-sweep costs nothing but the cells it had in flight, which
Dask reruns elsewhere.  Needs the ``[distributed]`` extra."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

import pandas as pd  # noqa: E402

import bench  # noqa: E402
from bench.dask_executor import DaskExecutor, code_fingerprint, dask_executor, local_numba_threads  # noqa: E402
from bench.runner import TIMING_COLUMNS  # noqa: E402

# Eight cells of ~0.2-0.4 s each: long enough that a task is reliably still
# running when the test kills its worker, short enough for a quick test.
CONFIG = """
name = "dask"
seed = 17

[problems.lg]
family = "LinearGaussian"
D = 6
d = 3
seed = 1
x_seed = 2

[[sweep]]
estimators = ["importance_sampling", "elbo"]
q = ["prior", "shift:1", "scale:2", "uniform"]
K = [100000]
R = 100
"""


def non_timing(df):
    return df.drop(columns=TIMING_COLUMNS).reset_index(drop=True)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("dask") / "dask.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def local_table(config, tmp_path_factory):
    """The sweep run by the default (sequential, in-process) executor."""
    return bench.run(bench.load_config(config), out=tmp_path_factory.mktemp("local"), progress=False)


def test_cli_local_cluster_gives_the_local_table(config, local_table, tmp_path):
    """`python -m bench run --scheduler local:2`: two worker processes, each
    task with max(1, cores // 2) numba threads -- set in the worker's
    environment (NUMBA_NUM_THREADS) and in the task thread, and reported back
    from inside the tasks -- and the table of the local executor."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "bench", "run", str(config), "--out", str(out), "--no-progress",
                        "--scheduler", "local:2"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    n = local_numba_threads(2)
    assert "executor: DaskExecutor(dask LocalCluster of 2 processes" in r.stdout
    assert f"numba threads per task [{n}] (NUMBA_NUM_THREADS [{n}])" in r.stdout, r.stdout
    dask_table = pd.read_parquet(out / "benchmarks.parquet")
    assert len(dask_table) == len(local_table) == 8
    pd.testing.assert_frame_equal(non_timing(dask_table), non_timing(local_table))


SCRIPT = """
import numba  # imported at the top: each worker's spawn re-imports this script before the Nanny sets its env

from bench.dask_executor import dask_executor


def compile_something(x):
    @numba.njit
    def f(y):
        return y + 1

    return f(x), numba.get_num_threads()


if __name__ == "__main__":
    with dask_executor("local:2") as ex:
        print(sorted(r for _, r in ex.map_unordered(compile_something, [1, 2])))
"""


def test_a_script_that_imports_numba_can_still_compile_on_local_workers(tmp_path):
    """A script's workers import numba (one thread per core) before
    NUMBA_NUM_THREADS arrives; numba's next compilation would then raise
    "Cannot set NUMBA_NUM_THREADS to a different value once the threads have
    been launched" unless the task reconciles the variable first."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    n = local_numba_threads(2)
    assert r.stdout.strip() == str([(2, n), (3, n)])


class _KillAWorkerAfterTheFirstCell:
    """Wraps a DaskExecutor: when the first result arrives, SIGKILLs the worker
    process that sent it -- by then the scheduler has handed it its next
    cell, which is running -- and records what was in flight there."""

    def __init__(self, ex):
        self.ex = ex
        self.killed = None

    def map_unordered(self, fn, tasks):
        tasks = list(tasks)
        for n_done, (i, result) in enumerate(self.ex.map_unordered(fn, tasks), start=1):
            if self.killed is None:
                address = self.ex.completed_on[i]
                deadline = time.monotonic() + 10
                while not (in_flight := list(self.ex.client.processing(workers=[address]).get(address, ()))):
                    assert time.monotonic() < deadline, "the worker was never given a second cell"
                    time.sleep(0.005)
                pid = self.ex.workers[address]["pid"]
                os.kill(pid, signal.SIGKILL)
                self.killed = {"address": address, "pid": pid, "in_flight": in_flight, "done": n_done,
                               "total": len(tasks)}
            yield i, result


def test_killed_worker_loses_only_its_cells_in_flight(config, local_table, tmp_path):
    with dask_executor("local:2") as ex:
        killer = _KillAWorkerAfterTheFirstCell(ex)
        df = bench.run(bench.load_config(config), out=tmp_path / "out", executor=killer, progress=False)
        k = killer.killed
        assert k is not None and 0 < k["done"] < k["total"], "the kill did not land mid-sweep"
        assert k["in_flight"], "the killed worker had no cell in flight: the test would prove nothing"
        with pytest.raises(ProcessLookupError):
            os.kill(k["pid"], 0)  # the worker process is gone (reaped by its nanny)
        # every cell that was running on the dead worker was rerun on another one
        assert k["address"] not in ex.client.scheduler_info()["workers"]
        for key in k["in_flight"]:
            assert ex.completed_on[ex.task_keys.index(key)] != k["address"]
        assert {w["numba_threads"] for w in ex.workers.values()} == {local_numba_threads(2)}
    assert len(list((tmp_path / "out" / "cells").glob("*.parquet"))) == len(local_table)
    pd.testing.assert_frame_equal(non_timing(df), non_timing(local_table))


def test_a_worker_with_other_code_is_refused():
    """The client compares each result's code fingerprint with its own."""
    ex = DaskExecutor(client=None, description="test")
    info = {"worker": "tcp://10.0.0.9:4000", "pid": 1, "numba_threads": 1, "numba_pool": 1,
            "fingerprint": dict(code_fingerprint())}
    ex._check(info)  # same code: fine
    info["fingerprint"]["estimators"] = "0" * 16
    with pytest.raises(ValueError, match=r"^scheduler: worker tcp://10\.0\.0\.9:4000 runs different code .*estimators"):
        ex._check(info)
    threads = DaskExecutor(client=None, numba_threads=2, description="test")
    with pytest.raises(RuntimeError, match="runs 1 numba threads, expected 2"):
        threads._check({**info, "fingerprint": code_fingerprint()})
