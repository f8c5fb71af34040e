"""A user's estimator in sweeps (issue 11): the same path as the built-ins,
failures isolated to their own cells, options as columns, workers refused
before the run when they could not import the function, Ctrl-C and resume.

Expected values come from calling the user's function directly with the
cell's seed (so a sweep row must equal numpy's metrics of that output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import bench
from bench import runner

MODULE = '''
import time
import numpy as np
from scipy.special import logsumexp
import bench


def plain_is(p, x, q, K, R, seed, tempering=1.0):
    """Importance sampling in NumPy; tempering != 1 flattens the weights (biased on purpose)."""
    rng = np.random.default_rng(seed)
    out = np.empty(R)
    for r in range(R):
        z = q.sample(K, rng)
        out[r] = logsumexp(tempering * (p.log_joint(x, z) - q.log_prob(z))) - np.log(K)
    return out


# replace=True: another test file may have registered a "plain_is" of its own in this process
bench.register_estimator("plain_is", plain_is, "log_marginal", replace=True)


@bench.estimator("raises", target="log_marginal")
def raises(p, x, q, K, R, seed):
    raise RuntimeError("boom")


@bench.estimator("wrong_shape", target="log_marginal")
def wrong_shape(p, x, q, K, R, seed):
    return np.zeros((R, 2))


@bench.estimator("gives_nan", target="log_marginal")
def gives_nan(p, x, q, K, R, seed):
    return np.full(R, np.nan)


@bench.estimator("gives_inf", target="elbo")
def gives_inf(p, x, q, K, R, seed):
    return np.full(R, np.inf)


@bench.estimator("slow_is", target="log_marginal")
def slow_is(p, x, q, K, R, seed):
    time.sleep(0.4)
    return plain_is(p, x, q, K, R, seed)
'''

PROBLEMS = {"lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}}


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    d = tmp_path_factory.mktemp("userpkg")
    (d / "user_estimators.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(d))
    import user_estimators

    yield d, user_estimators
    sys.path.remove(str(d))


def test_a_user_estimators_rows_equal_the_function_called_with_the_cells_seed(user_module, tmp_path):
    _, mod = user_module
    sweep = bench.Sweep(problems=PROBLEMS, q=["prior", "shift:1"], estimators=["importance_sampling", mod.plain_is],
                        K=[10, 100], R=40, options={"tempering": [1.0, 0.5]})
    df = bench.run(sweep, out=tmp_path, progress=False)
    user = [c for c in sweep.cells() if c.estimator == "plain_is"]
    assert len(user) == 2 * 2 * 2 and len(df) == len(sweep)
    for cell in user:
        p, x = cell.spec.build()
        est = mod.plain_is(p, x, runner.cell_q(cell.spec, cell.q), cell.K, cell.R, cell.seed, **dict(cell.options))
        row = df[df.cell_id == cell.cell_id].iloc[0]
        assert row["mean"] == np.mean(est) and row["variance"] == np.var(est, ddof=1)
        assert row["bias"] == np.mean(est) - p.log_marginal(x)
        assert row["tempering"] == dict(cell.options)["tempering"]
        assert row["target"] == "log_marginal" and bool(row["user"])
    assert not df[df.estimator == "importance_sampling"].user.any()
    # the built-ins' cells are those of a sweep without the user estimator (same ids, same numbers)
    alone = bench.run(bench.Sweep(problems=PROBLEMS, q=["prior", "shift:1"], estimators=["importance_sampling"],
                                  K=[10, 100], R=40), out=tmp_path / "alone", progress=False)
    a = df[df.estimator == "importance_sampling"].set_index("cell_id")[["mean", "variance"]]
    b = alone.set_index("cell_id")[["mean", "variance"]]
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())


def test_the_tempered_estimator_is_measured_biased(user_module, tmp_path):
    """tempering = 0.5 is biased for p(x): the sweep's ratio_bias must show it
    (|z| > 5), while tempering = 1 stays within 5 SE."""
    _, mod = user_module
    sweep = bench.Sweep(problems=PROBLEMS, q=["shift:1"], estimators=[mod.plain_is], K=[100], R=400,
                        options={"tempering": [1.0, 0.5]})
    df = bench.run(sweep, out=tmp_path, progress=False).set_index("tempering")
    z = df["ratio_bias"] / df["ratio_bias_se"]
    assert abs(z[1.0]) < 5 and abs(z[0.5]) > 5


def test_failing_estimators_fail_only_their_own_cells(user_module, tmp_path):
    _, mod = user_module
    common = dict(problems=PROBLEMS, q=["prior"], K=[10, 100], R=20)
    bad = ["raises", "wrong_shape", "gives_nan", "gives_inf"]
    df = bench.run(bench.Sweep(estimators=["importance_sampling", "elbo", *bad], **common), out=tmp_path / "a",
                   progress=False)
    clean = bench.run(bench.Sweep(estimators=["importance_sampling", "elbo"], **common), out=tmp_path / "b",
                      progress=False)
    assert set(df.estimator) == {"importance_sampling", "elbo"}
    cols = ["cell_id", "mean", "variance", "bias"]
    pd.testing.assert_frame_equal(df[cols].reset_index(drop=True), clean[cols].reset_index(drop=True))
    failed = df.attrs["failed"]
    kinds = {(f["estimator"], f["kind"]) for f in failed}
    assert kinds == {("raises", "raised"), ("wrong_shape", "shape"), ("gives_nan", "nonfinite"),
                     ("gives_inf", "nonfinite")}
    assert len(failed) == 8
    assert any("raised RuntimeError: boom" in f["reason"] for f in failed)
    assert json.loads((tmp_path / "a" / "failed.json").read_text()) == failed


def test_the_cli_exits_non_zero_with_one_line_per_failure_kind(user_module, tmp_path):
    d, _ = user_module
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(textwrap.dedent('''
        name = "failing"
        [problems.lg]
        family = "LinearGaussian"
        [[sweep]]
        estimators = ["importance_sampling", "user_estimators:raises", "user_estimators:gives_nan"]
        q = ["prior"]
        K = [10, 100]
        R = 10
    '''))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", str(cfg), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "2 cells in" in proc.stdout
    assert "4 cells FAILED" in proc.stderr
    assert "2 x raises raised: raises: raised RuntimeError: boom" in proc.stderr
    assert "2 x gives_nan nonfinite: gives_nan: returned NaN" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_workers_refuse_an_estimator_they_cannot_import(tmp_path):
    def local_is(p, x, q, K, R, seed):  # a closure: no worker process can import it
        return np.zeros(R)

    bench.register_estimator("local_is", local_is, "log_marginal", replace=True)
    sweep = bench.Sweep(problems=PROBLEMS, q=["prior"], estimators=["local_is"], K=[10], R=4)
    with pytest.raises(ValueError, match=r"^estimators: 'local_is' cannot be imported by a worker process"):
        bench.run(sweep, out=tmp_path, workers=2, progress=False)
    with pytest.raises(ValueError, match=r"^estimators: 'local_is' cannot be imported by a Dask worker"):
        pytest.importorskip("distributed", reason="the [distributed] extra is not installed")
        bench.run(sweep, out=tmp_path, scheduler="local:1", progress=False)


def test_options_need_a_user_estimator_and_name_their_key():
    with pytest.raises(ValueError, match=r"^options.alpha: none of this sweep's estimators takes an option 'alpha'"):
        bench.Sweep(problems=PROBLEMS, q=["prior"], estimators=["importance_sampling"], K=[10], R=4,
                    options={"alpha": 0.1})
    with pytest.raises(ValueError, match=r"^estimators\[1\]: cannot import module 'nope'"):
        bench.Sweep(problems=PROBLEMS, q=["prior"], estimators=["elbo", "nope:fn"], K=[10], R=4)


def test_ctrl_c_says_what_is_saved_and_a_rerun_resumes(user_module, tmp_path):
    d, _ = user_module
    cfg = tmp_path / "slow.toml"
    cfg.write_text(textwrap.dedent('''
        name = "slow"
        [problems.lg]
        family = "LinearGaussian"
        [[sweep]]
        estimators = ["user_estimators:slow_is"]
        q = ["prior", "shift:1", "shift:2", "scale:2"]
        K = [10, 20, 30, 40, 50]
        R = 4
    '''))
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bench", "run", str(cfg), "--out", str(out)]
    # SIGINT at its default in the child: a run started from a background shell
    # has it ignored, the child would inherit that and finish with 0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until a few cells are stored
        cells = list((out / "cells").glob("*.parquet")) if (out / "cells").is_dir() else []
        if len(cells) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    saved = len(list((out / "cells").glob("*.parquet")))
    assert f"interrupted: {saved} of 20 cells are saved in {out}; run the same command again to resume" in err
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {saved} of 20 cells are already stored in {out}; computing the other {20 - saved}" in again.stderr


def test_worker_processes_import_a_user_estimator_by_its_path(user_module, tmp_path):
    """workers=2 (spawned processes): each imports the estimator from its module; the rows equal the
    sequential run's."""
    _, mod = user_module
    sweep = bench.Sweep(problems=PROBLEMS, q=["prior"], estimators=[mod.plain_is, "importance_sampling"],
                        K=[10, 100], R=20)
    assert {c.estimator_ref for c in sweep.cells() if c.estimator == "plain_is"} == {"user_estimators:plain_is"}
    seq = bench.run(sweep, out=tmp_path / "seq", progress=False)
    par = bench.run(sweep, out=tmp_path / "par", workers=2, progress=False)
    cols = ["cell_id", "mean", "variance", "bias"]
    pd.testing.assert_frame_equal(seq[cols].reset_index(drop=True), par[cols].reset_index(drop=True))
