"""Several runs sharing one results directory at the same time: no file is
ever half-written or lost, every cell file holds the right numbers, and the
derived files (table, sweep.json, ...) come as one set from one run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pyarrow.parquet as pq

import bench
from bench import storage
from bench.runner import TIMING_COLUMNS, plan

BASE = """
name = "{name}"
seed = 5

[problems.lg]
family = "LinearGaussian"
D = 4
d = 2
seed = 1
x_seed = 2

[problems.gm]
family = "GaussianMixture"
C = 3
D = 2
seed = 3
x_seed = 4

[[sweep]]
estimators = ["importance_sampling", "elbo"]
q = {q}
K = [10, 3000, 20000]
R = 200
"""
# Overlapping sweeps: B has A's cells (same names, seeds and ids) and more,
# its own first.
Q_A = '["prior", "shift:1", "scale:2", "uniform"]'
Q_B = '["posterior", "meanfield", "prior", "shift:1", "scale:2", "uniform"]'


def non_timing(df):
    return df.drop(columns=TIMING_COLUMNS).reset_index(drop=True)


def _start(cfg, out, cwd):
    return subprocess.Popen([sys.executable, "-m", "bench", "run", str(cfg), "--out", str(out), "--no-progress"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _freeze_mid_write(proc, cells, deadline):
    """SIGSTOP ``proc`` at a moment when it has a temporary in ``cells``
    (retrying until one is caught); True when it was caught."""
    while time.monotonic() < deadline:
        if any(f.name.endswith(".tmp") for f in cells.iterdir()):
            os.kill(proc.pid, signal.SIGSTOP)
            if any(f.name.endswith(".tmp") for f in cells.iterdir()):
                return True
            os.kill(proc.pid, signal.SIGCONT)  # it finished that write in between; try again
        assert proc.poll() is None, "A finished before it could be frozen mid-write"
    return False


def test_two_runs_into_one_directory_at_once(tmp_path):
    """Run A is frozen (SIGSTOP) in the middle of writing a cell; run B
    starts into the same directory -- cleaning temporaries on the way in --
    and stores cells of its own; then A continues and both run to the end,
    side by side, over the cells they share."""
    cfg_a, cfg_b = tmp_path / "a.toml", tmp_path / "b.toml"
    cfg_a.write_text(BASE.format(name="shared", q=Q_A))
    cfg_b.write_text(BASE.format(name="shared", q=Q_B))
    shared = tmp_path / "shared"
    cells_a, cells_b = plan(bench.load_config(cfg_a))[0], plan(bench.load_config(cfg_b))[0]
    only_b = {f"{c.cell_id}.parquet" for c in cells_b} - {f"{c.cell_id}.parquet" for c in cells_a}
    assert {c.cell_id for c in cells_a} < {c.cell_id for c in cells_b}

    a = _start(cfg_a, shared, tmp_path)
    b = None
    deadline = time.monotonic() + 120
    try:
        while not (shared / "cells").is_dir() or not any((shared / "cells").glob("*.parquet")):
            assert a.poll() is None, a.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert _freeze_mid_write(a, shared / "cells", deadline), "never caught A with a temporary"
        b = _start(cfg_b, shared, tmp_path)
        while not any(f.name in only_b for f in (shared / "cells").iterdir()):
            assert b.poll() is None, b.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    for proc in (a, b):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    # nothing half-written, nothing left behind, nothing extra
    files = sorted((shared / "cells").iterdir())
    assert [f.name for f in files] == sorted(f"{c.cell_id}.parquet" for c in cells_b)
    assert not [f for f in shared.iterdir() if f.name.endswith(".tmp")]
    for f in files:
        assert pq.read_table(f).num_rows == 1

    # Every cell file has the numbers of an uninterrupted single run.
    alone_b = tmp_path / "alone_b"
    whole_b = bench.run(bench.load_config(cfg_b), out=alone_b, progress=False)
    ids = [c.cell_id for c in cells_b]
    pd.testing.assert_frame_equal(non_timing(storage.read_cells(shared, ids)),
                                  non_timing(storage.read_cells(alone_b, ids)))

    # The derived files are one set, from whichever run finished last.
    written = json.loads((shared / "sweep.json").read_text())
    if written == [s.to_dict() for s in bench.load_config(cfg_b)]:
        reference, reference_dir = whole_b, alone_b
    else:
        assert written == [s.to_dict() for s in bench.load_config(cfg_a)]
        reference_dir = tmp_path / "alone_a"
        reference = bench.run(bench.load_config(cfg_a), out=reference_dir, progress=False)
    table = pd.read_parquet(shared / "benchmarks.parquet")
    pd.testing.assert_frame_equal(non_timing(table), non_timing(reference))
    for name in ("jensen.parquet", "jensen_fit.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(shared / name), pd.read_parquet(reference_dir / name))
    assert json.loads((shared / "skipped.json").read_text()) == json.loads((reference_dir / "skipped.json").read_text())


def test_a_live_runs_temporary_is_not_cleaned_away(tmp_path):
    """A run that starts cleans up temporaries -- but only those of dead
    writers: another live run's half-written file must survive to be moved
    into place.  (Before the fix, clean_temporaries deleted every temporary
    and the other run's os.replace failed.)"""
    out = tmp_path / "out"
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        from bench import storage
        def slow(tmp):
            with open(tmp, "w") as fh:
                fh.write("half")
                fh.flush()
                while not os.path.exists({str(go)!r}):
                    time.sleep(0.01)
                fh.write(" and the rest")
        storage._atomic_write({str(out / "cells" / "x.parquet")!r}, slow)
        """)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "cells").is_dir() or not [f for f in (out / "cells").iterdir() if f.name.endswith(".tmp")]:
            assert writer.poll() is None, writer.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # a stale temporary: its writer (a process that has exited) is gone
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        stale = out / "cells" / f".y.parquet~{storage._host()}~{int(dead.stdout)}~abc.tmp"
        stale.write_text("stale")
        storage.clean_temporaries(out)
        assert not stale.exists()
        assert len([f for f in (out / "cells").iterdir() if f.name.endswith(".tmp")]) == 1
    finally:
        go.touch()
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert (out / "cells" / "x.parquet").read_text() == "half and the rest"


def test_the_derived_files_are_written_under_the_lock(tmp_path):
    """While another holder has out/.lock, a finishing run waits before it
    writes benchmarks.parquet and the rest (its cells are already stored)."""
    s = bench.Sweep({"lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}},
                    q=["prior"], estimators=["elbo"], K=[5], R=10)
    result = {}
    with storage.results_lock(tmp_path):
        t = threading.Thread(target=lambda: result.setdefault("df", bench.run(s, out=tmp_path, progress=False)))
        t.start()
        deadline = time.monotonic() + 60
        while not storage.finished_ids(tmp_path):
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.01)
        time.sleep(0.5)
        assert t.is_alive() and not (tmp_path / storage.TABLE).exists()
    t.join(60)
    assert not t.is_alive() and len(result["df"]) == 1
    assert (tmp_path / storage.TABLE).exists() and (tmp_path / "sweep.json").exists()
