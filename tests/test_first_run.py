"""A first run that talks: the kernels are compiled before the cells, with a
message when numba's cache is cold, the cells' ETA leaves that (and resumed
cells) out, and ``pytest --benchmark-only`` collects the benchmark suite only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench import progress as progress_module
from bench.progress import Progress
from bench.runner import COLD_SECONDS_PER_KIND, compile_kernels, compile_keys, unfinished

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = sys.modules["estimators.warm_up"]  # the module (estimators.warm_up is the function)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture()
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", c)
    return c


def test_eta_leaves_out_resumed_cells_and_the_first_cells_start_up(clock):
    bar = Progress(20, stream=io.StringIO(), enabled=False, already=10)
    assert bar.done == 10 and bar.eta() is None  # nothing run yet: no rate
    clock.now = 30.0  # the first cell took 30 s (a worker starting, a kernel loading)
    bar.update(1)
    assert bar.eta() is None and "eta ?" in bar.render()  # one item is no rate: its 30 s are not extrapolated
    for _ in range(3):  # then one cell a second
        clock.now += 1.0
        bar.update(1)
    assert bar.done == 14
    assert bar.eta() == pytest.approx(1.0 * 6)  # 3 s for 3 cells since the first; 6 left
    assert "eta 6s" in bar.render()


def test_eta_without_resumed_cells(clock):
    bar = Progress(4, stream=io.StringIO(), enabled=False)
    clock.now = 2.0
    bar.update(1)
    clock.now = 6.0
    bar.update(1)
    assert bar.eta() == pytest.approx(4.0 * 2)
    bar.update(2)
    assert bar.eta() == 0.0


SWEEP = bench.Sweep(
    problems={"lg": {"family": "LinearGaussian", "D": 3, "d": 1, "seed": 0}},
    q=["prior", "shift:1"],
    estimators=["importance_sampling", "elbo"],
    K=[100, 10],
    R=4,
)


def test_one_cell_per_kind_the_smallest_k():
    cells = unfinished([SWEEP], "/nonexistent-dir")
    assert len(cells) == 2 * 2 * 2
    reps = compile_keys(cells)
    kinds = {(c.q, c.estimator) for c in cells}  # one family, no methods: a kind is (q, estimator)
    assert {(c.q, c.estimator) for c in reps} == kinds and len(reps) == len(kinds)
    assert all(c.K == 10 for c in reps)


def test_cold_cache_is_announced_and_a_warm_one_is_not(monkeypatch):
    cells = unfinished([SWEEP], "/nonexistent-dir")
    monkeypatch.setattr(WARM_UP, "kernel_cache_status", lambda: (40, 40))
    out = io.StringIO()
    info = compile_kernels(cells, enabled=False, stream=out)
    about = max(5, round(COLD_SECONDS_PER_KIND * 4 / 5) * 5)
    assert info["cold"] and info["kinds"] == 4
    assert out.getvalue().startswith(f"compiling kernels (first run only, about {about} s)"), out.getvalue()
    assert "compiled in" in out.getvalue()
    monkeypatch.setattr(WARM_UP, "kernel_cache_status", lambda: (1, 40))
    out = io.StringIO()
    info = compile_kernels(cells, enabled=False, stream=out)
    assert not info["cold"] and out.getvalue() == ""


def test_resumed_cells_are_not_compiled_again(tmp_path):
    bench.run(SWEEP, out=tmp_path, progress=False)
    assert unfinished([SWEEP], tmp_path) == []
    assert len(unfinished([SWEEP], tmp_path, fresh=True)) == 8


def test_kernel_cache_status_counts_an_empty_cache_as_cold(tmp_path):
    code = "from estimators.warm_up import kernel_cache_status as s; u, t = s(); print(u, t)"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache: nothing compiled yet
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    uncached, total = map(int, proc.stdout.split())
    assert total > 50 and uncached == total


def test_benchmark_only_collects_the_benchmark_suite_alone():
    cmd = [sys.executable, "-m", "pytest", "--benchmark-only", "--collect-only", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids and all(line.startswith("bench/") for line in ids), ids[:5]
