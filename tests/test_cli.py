"""The command line end to end, in subprocesses: run -> Parquet -> report,
`list`, a bad config, and a run killed with SIGKILL mid-sweep that resumes to
the table of an uninterrupted run."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import bench
from bench.runner import TIMING_COLUMNS, plan

SMALL = """
name = "cli"
seed = 3

[problems.lg]
family = "LinearGaussian"
D = 3
d = 2
seed = 1
x_seed = 2

[problems.gm]
family = "GaussianMixture"
C = 3
D = 2
seed = 5
x_seed = 6

[[sweep]]
estimators = ["importance_sampling", "elbo"]
q = ["posterior", "prior", "shift:1", "scale:2", "meanfield", "uniform"]
K = [1, 10, 100]
R = 50

[[sweep]]
estimators = ["gradient"]
methods = ["score", "reparam", "dreg"]
objectives = ["elbo", "iwae"]
q = ["meanfield+shift:1"]
K = [1, 10]
R = 20
"""


def _bench(*args, cwd, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_run_then_report_end_to_end(tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "out"
    r = _bench("run", str(cfg), "--out", str(out), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    n_cells = len(plan(bench.load_config(cfg))[0])
    assert f"{n_cells} cells in" in r.stdout and "skipped" in r.stdout  # reparam/dreg on the categorical q
    df = pd.read_parquet(out / "benchmarks.parquet")
    assert len(df) == n_cells == len(list((out / "cells").glob("*.parquet")))
    assert (out / "jensen.parquet").is_file() and (out / "sweep.json").is_file()

    # without --claims the report is of the sweep alone: the lecture's claims are not computed
    r = _bench("report", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"claims: none in {out}, so the report leaves them out" in r.stdout
    assert not (out / "claims.json").exists() and "<h2>Claims</h2>" not in (out / "report.html").read_text()

    # --claims NAME computes those first (smoke sizes here: EVIDENCE_BENCH_MODE=smoke); every claim at
    # smoke size is tests/test_claims.py's, so two here keep the subprocess to its CLI's work
    smoke = {**os.environ, "EVIDENCE_BENCH_MODE": "smoke"}
    r = _bench("report", str(out), "--claims", "nonesuch", cwd=tmp_path, env=smoke)
    assert r.returncode == 2 and "claim_id: unknown claim 'nonesuch'" in r.stderr, r.stderr
    r = _bench("report", str(out), "--claims", "uniform_vs_is", "elbo_plus_kl", cwd=tmp_path, env=smoke)
    assert r.returncode == 0, r.stderr
    assert "claims: computed 2" in r.stdout and (out / "claims.json").is_file()
    assert {c["id"] for c in json.loads((out / "claims.json").read_text())["claims"]} == {"uniform_vs_is", "elbo_plus_kl"}
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) >= 7
    for f in figures:
        data = f.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    html = (out / "report.html").read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(embedded) == len(figures)
    assert all(base64.b64decode(e)[:8] == b"\x89PNG\r\n\x1a\n" for e in embedded)
    assert "<table" in html and "Jensen gap vs KL" in html and "src='figures/" not in html  # self-contained
    md = (out / "report.md").read_text()
    assert all(f"](figures/{f.name})" in md for f in figures) and "| problem |" in md
    assert "<h2>Claims</h2>" in html and "## Claims" in md
    r = _bench("report", str(out), cwd=tmp_path)  # then a plain report reuses them
    assert r.returncode == 0, r.stderr
    n_claims = len(json.loads((out / "claims.json").read_text())["claims"])
    assert n_claims >= 1 and f"claims: {n_claims} from {out / 'claims.json'}" in r.stdout


def test_list_names_everything(tmp_path):
    r = _bench("list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for word in ("LinearGaussian", "GaussianMixture", "posterior", "meanfield", "shift:<s>", "scale:<f>",
                 "uniform", "importance_sampling", "elbo", "gradient", "score_loo", "dreg", "iwae"):
        assert word in r.stdout


def test_bad_config_exits_with_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SMALL.replace("K = [1, 10, 100]", "K = [0, 10]"))
    r = _bench("run", str(cfg), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2
    assert "error: sweep[0].K[0]: must be >= 1, got 0" in r.stderr
    assert not (tmp_path / "o").exists()
    r = _bench("report", str(tmp_path / "nothing"), cwd=tmp_path)
    assert r.returncode == 2 and "results_dir:" in r.stderr


HEAVY = """
name = "heavy"
seed = 11

[problems.lg]
family = "LinearGaussian"
D = 6
d = 3
seed = 1
x_seed = 2

[[sweep]]
estimators = ["importance_sampling", "elbo"]
q = ["prior", "shift:1", "scale:2", "meanfield", "uniform", "shift:2"]
K = [20000, 40000]
R = 100
"""


def test_killed_run_resumes_to_the_uninterrupted_table(tmp_path):
    """SIGKILL right after the first cell file appears; the re-run finishes
    the sweep, and its table equals an uninterrupted run's on every column
    but the timing ones (seconds, samples_per_s: wall-clock, never reproducible)."""
    cfg = tmp_path / "heavy.toml"
    cfg.write_text(HEAVY)
    out = tmp_path / "killed"
    n_cells = len(bench.load_config(cfg)[0])
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(cfg), "--out", str(out), "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cells = out / "cells"
    deadline = time.monotonic() + 120
    try:
        while not (cells.is_dir() and any(f.suffix == ".parquet" for f in cells.iterdir())):
            assert proc.poll() is None, f"run ended before any cell was stored: {proc.stderr.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = [f for f in cells.iterdir() if f.suffix == ".parquet"]
    assert 0 < len(stored) < n_cells, "the kill did not land mid-sweep; the test would prove nothing"
    assert not (out / "benchmarks.parquet").exists()
    for f in stored:  # every stored cell is a complete Parquet file
        assert len(pd.read_parquet(f)) == 1

    r = _bench("run", str(cfg), "--out", str(out), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    resumed = pd.read_parquet(out / "benchmarks.parquet")
    whole = bench.run(bench.load_config(cfg), out=tmp_path / "whole", progress=False)
    assert len(resumed) == n_cells
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING_COLUMNS),
                                  whole.reset_index(drop=True).drop(columns=TIMING_COLUMNS))


@pytest.mark.parametrize("argv", [["run"], ["report"], ["frobnicate"]])
def test_usage_errors(tmp_path, argv):
    r = _bench(*argv, cwd=tmp_path)
    assert r.returncode == 2 and "usage:" in r.stderr
