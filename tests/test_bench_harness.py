"""The harness: cells against the public estimators, seeds, resume, executors,
atomic storage, skipped cells, progress bar."""

import io
import json

import numpy as np
import pandas as pd
import pytest

import bench
import estimators
from bench import storage
from bench.executors import LocalExecutor, get_executor
from bench.presets import make_q
from bench.progress import Progress
from bench.runner import TIMING_COLUMNS, plan, run_cell

LG = {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}
GM = {"family": "GaussianMixture", "C": 3, "D": 2, "seed": 3, "x_seed": 5}


def small_sweep(q=("prior", "shift:1"), seed=0, label="lg"):
    return bench.Sweep({label: dict(LG)}, q=list(q), estimators=["importance_sampling", "elbo"], K=[1, 10], R=20,
                       seed=seed)


def non_timing(df):
    return df.drop(columns=TIMING_COLUMNS).sort_values("cell_id").reset_index(drop=True)


def test_cells_match_the_public_estimators():
    s = bench.Sweep({"lg": dict(LG)}, q=["shift:1"], estimators=["importance_sampling", "elbo", "gradient"],
                    K=[7], R=30, methods=["reparam"], objectives=["elbo"])
    is_cell, elbo_cell, grad_cell = s.cells()
    p, x = bench.ProblemSpec("LinearGaussian", {"D": 3, "d": 2, "seed": 1}, 2).build()
    q = make_q(p, x, "shift:1")

    row = run_cell(is_cell)
    est = estimators.importance_sampling(p, x, q, 7, 30, seed=is_cell.seed)
    assert row["mean"] == np.mean(est) and row["variance"] == np.var(est, ddof=1)
    assert row["truth"] == p.log_marginal(x) and row["bias"] == np.mean(est) - p.log_marginal(x)
    assert row["ratio_bias"] == pytest.approx(np.mean(np.exp(est - p.log_marginal(x))) - 1, rel=1e-12)
    assert row["kl"] == p.kl(x, q) and row["samples_per_s"] == pytest.approx(7 * 30 / row["seconds"])

    row = run_cell(elbo_cell)
    est = estimators.elbo(p, x, q, 7, 30, seed=elbo_cell.seed)
    assert row["mean"] == np.mean(est) and row["truth"] == p.elbo(x, q)

    row = run_cell(grad_cell)
    g = estimators.gradient(p, x, q, 7, 30, "reparam", "elbo", seed=grad_cell.seed)
    assert row["variance"] == pytest.approx(np.trace(np.cov(g.T)), rel=1e-12)
    assert row["bias"] == pytest.approx(np.linalg.norm(g.mean(0) - p.elbo_grad(x, q)), rel=1e-12)
    assert row["n_params"] == len(q.params)


def test_seeds_depend_on_cell_identity_only(tmp_path):
    a, b = small_sweep(("prior", "shift:1")), small_sweep(("shift:1", "prior"))
    seeds_a = {c.cell_id: c.seed for c in a.cells()}
    seeds_b = {c.cell_id: c.seed for c in b.cells()}
    assert seeds_a == seeds_b and len(set(seeds_a.values())) == len(seeds_a)
    assert {c.seed for c in small_sweep(seed=1).cells()}.isdisjoint(seeds_a.values())
    renamed = small_sweep(label="other")
    assert sorted(c.seed for c in renamed.cells()) == sorted(seeds_a.values())  # the label is not in the seed
    assert not set(c.cell_id for c in renamed.cells()) & set(seeds_a)  # ... but it is in the file name
    da = bench.run(a, out=tmp_path / "a", progress=False)
    db = bench.run(b, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(non_timing(da), non_timing(db))


def test_rerun_skips_finished_cells_and_recomputes_missing_ones(tmp_path):
    s = small_sweep()
    first = bench.run(s, out=tmp_path, progress=False)
    files = sorted((tmp_path / "cells").glob("*.parquet"))
    assert len(files) == len(s) == len(first)
    mtimes = {f.name: f.stat().st_mtime_ns for f in files}
    deleted = {f.name for f in files[:2]}
    for f in files[:2]:
        f.unlink()
    second = bench.run(s, out=tmp_path, progress=False)
    after = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "cells").glob("*.parquet")}
    assert set(after) == set(mtimes)  # the deleted cells are back ...
    assert all(after[n] == mtimes[n] for n in mtimes if n not in deleted)  # ... and only they were rewritten
    pd.testing.assert_frame_equal(non_timing(first), non_timing(second))
    # fresh=True recomputes everything, with identical numbers
    third = bench.run(s, out=tmp_path, progress=False, fresh=True)
    pd.testing.assert_frame_equal(non_timing(first), non_timing(third))
    assert all(f.stat().st_mtime_ns != mtimes.get(f.name) for f in (tmp_path / "cells").glob("*.parquet"))


def test_process_pool_gives_the_sequential_table(tmp_path):
    s = small_sweep()
    seq = bench.run(s, out=tmp_path / "seq", progress=False)
    par = bench.run(s, out=tmp_path / "par", executor="local:2", progress=False)
    pd.testing.assert_frame_equal(non_timing(seq), non_timing(par))


def test_custom_executor_object_is_used(tmp_path):
    class Reversed:
        """Runs tasks in reverse order: the table must not care."""

        calls = 0

        def map_unordered(self, fn, tasks):
            tasks = list(tasks)
            for i in reversed(range(len(tasks))):
                Reversed.calls += 1
                yield i, fn(tasks[i])

    s = small_sweep()
    df = bench.run(s, out=tmp_path / "r", executor=Reversed(), progress=False)
    assert Reversed.calls == len(s)
    assert list(df["cell_id"]) == [c.cell_id for c in s.cells()]  # table in sweep order


def test_executor_names():
    assert get_executor("local").workers == 1 and get_executor("local:3").workers == 3
    with pytest.raises(ValueError, match="^executor: unknown executor"):
        get_executor("dask")
    with pytest.raises(ValueError, match="^executor: worker count"):
        get_executor("local:x")
    with pytest.raises(ValueError, match="^workers:"):
        LocalExecutor(0)


def test_gradient_cells_the_estimator_refuses_are_skipped_with_its_reason(tmp_path):
    s = bench.Sweep({"gm": dict(GM)}, q=["prior"], estimators=["gradient"], K=[1, 4], R=10,
                    methods=["score_loo", "reparam", "score"], objectives=["elbo"])
    cells, skipped = plan(s)
    assert {(c.method, c.K) for c in cells} == {("score_loo", 4), ("score", 1), ("score", 4)}
    reasons = {s_["reason"] for s_ in skipped}
    assert any("reparameterizable" in r for r in reasons) and any("K >= 2" in r for r in reasons)
    df = bench.run(s, out=tmp_path, progress=False)
    assert len(df) == 3 and len(df.attrs["skipped"]) == 3
    assert json.loads((tmp_path / "skipped.json").read_text()) == df.attrs["skipped"]
    assert set(df.loc[df["method"] == "score", "variance_ratio"]) == {1.0}


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from bench.runner import SCHEMA

    row = run_cell(small_sweep().cells()[0])

    def broken(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        storage.write_cell(tmp_path, "abc", row, SCHEMA)
    assert list((tmp_path / "cells").iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "cells" / ".abc.parquet.x.tmp").write_bytes(b"stale")
    storage.clean_temporaries(tmp_path)
    assert list((tmp_path / "cells").iterdir()) == []
    storage.write_cell(tmp_path, "abc", row, SCHEMA)
    assert storage.finished_ids(tmp_path) == {"abc"}
    assert storage.read_cells(tmp_path, ["abc"]).iloc[0]["mean"] == row["mean"]


def test_progress_bar_draws_only_when_enabled():
    out = io.StringIO()
    with Progress(3, stream=out, enabled=True, min_interval=0) as bar:
        for _ in range(3):
            bar.update(1, note="cell")
    assert "3/3" in out.getvalue() and "100%" in out.getvalue()
    quiet = io.StringIO()  # StringIO is not a TTY: enabled=None keeps it quiet
    with Progress(3, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_iwae_cells_sharing_a_reference_are_one_task(tmp_path):
    """The methods of one (problem, q, K) share the iwae reference gradient:
    they go to the executor as one task (the reference is computed once, in
    one process); elbo-objective and non-gradient cells are tasks of their
    own.  The process pool still gives the sequential table."""
    from bench.runner import task_groups

    s = bench.Sweep({"lg": dict(LG)}, q=["meanfield"], estimators=["elbo", "gradient"], K=[2, 5], R=10,
                    methods=["score", "reparam", "dreg"], objectives=["elbo", "iwae"])
    cells = plan(s)[0]
    tasks = task_groups(cells)
    assert sorted(c.cell_id for t in tasks for c in t) == sorted(c.cell_id for c in cells)
    grouped = [t for t in tasks if len(t) > 1]
    assert len(grouped) == 2 and all(len(t) == 3 for t in grouped)
    for t in grouped:
        assert {c.objective for c in t} == {"iwae"} and len({(c.K, c.q) for c in t}) == 1
        assert {c.method for c in t} == {"score", "reparam", "dreg"}
    assert len(tasks) == len(cells) - 4
    seq = bench.run(s, out=tmp_path / "seq", progress=False)
    par = bench.run(s, out=tmp_path / "par", executor="local:2", progress=False)
    pd.testing.assert_frame_equal(non_timing(seq), non_timing(par))
