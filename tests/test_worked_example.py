"""The worked example of docs/estimators.md, end to end (issue 11, item 5).

docs/examples/evidence_bench_example is a user's package: it is copied to a
temporary directory, installed there with pip (``--target``, so nothing
touches the environment), and then, in subprocesses whose PYTHONPATH holds
the install -- as a user's shell would after ``pip install`` --

(a) ``python -m bench run sweep.toml`` sweeps its estimators beside the built-ins,
(b) ``python -m pytest --benchmark-only --evidence-out DIR`` runs its benchmarks
    through the ``estimator_benchmark`` fixture, and ``--benchmark-skip`` its
    statistical tests,
(c) ``python -m bench list`` shows its estimators, found through the
    ``evidence_bench.estimators`` entry points;

and the ```python blocks of docs/estimators.md run, in order, as one script
(```py blocks are excerpts and are not run).

The statistical checks of the estimators themselves (5 SE against exact
answers) are the example's own tests, run by (b).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = DOCS / "examples" / "evidence_bench_example"
GUIDE = DOCS / "estimators.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
USER = {"defensive_is", "score_cv"}
BUILTIN = {"importance_sampling", "elbo", "gradient"}

pytestmark = pytest.mark.slow


def _can_build_offline():
    """setuptools builds a wheel without build isolation only with the ``wheel``
    package or setuptools >= 70.1 (which has bdist_wheel built in)."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        from packaging.version import Version

        return Version(importlib.metadata.version("setuptools")) >= Version("70.1")
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return False


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, f"$ {' '.join(map(str, cmd))}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(root, src, env): the example copied to root/src, installed into root/site,
    env with root/site on PYTHONPATH."""
    root = tmp_path_factory.mktemp("worked_example")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache", ".benchmarks"))
    site = root / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target", str(site)]
    if _can_build_offline():
        cmd.append("--no-build-isolation")
    # else pip builds in an isolated environment and needs an index that serves setuptools>=61
    proc, log = _run(cmd + [str(src)], root, None)
    assert proc.returncode == 0, "pip could not install the example:\n" + log
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["MPLBACKEND"] = "Agg"
    return root, src, env


def test_the_install_carries_the_entry_points(installed):
    root, _, _ = installed
    eps = {
        ep.name: ep.value
        for dist in importlib.metadata.distributions(path=[str(root / "site")])
        for ep in dist.entry_points
        if ep.group == "evidence_bench.estimators"
    }
    assert eps == {
        "defensive_is": "evidence_bench_example.estimators:defensive_is",
        "score_cv": "evidence_bench_example.estimators:score_cv",
    }


def test_bench_list_shows_the_example_estimators(installed):
    """(c) The entry points are loaded by the registry: each estimator with its target and description."""
    root, _, env = installed
    proc, log = _run([sys.executable, "-m", "bench", "list"], root, env)
    assert proc.returncode == 0, log
    lines = proc.stdout.splitlines()
    for name, target, words in [("defensive_is", "log_marginal", "Defensive importance sampling"),
                                ("score_cv", "elbo_grad", "Score-function ELBO gradient")]:
        hit = [i for i, ln in enumerate(lines) if ln.strip().split(" ")[0] == name]
        assert hit, f"{name} is not listed\n" + log
        entry = " ".join(lines[hit[0]:hit[0] + 2])  # "name  target T  [origin]", then the description
        assert f"target {target}" in entry and words in entry, entry
    assert any(ln.strip().startswith("importance_sampling") for ln in lines), log


@pytest.fixture(scope="module")
def swept(installed):
    """(out, log) of ``python -m bench run sweep.toml --out root/results``, asserted to succeed."""
    root, src, env = installed
    out = root / "results"
    proc, log = _run([sys.executable, "-m", "bench", "run", str(src / "sweep.toml"), "--out", str(out)], root, env)
    assert proc.returncode == 0, log
    return out, log


def test_sweep_runs_the_example_beside_the_builtins(swept):
    """(a) The config names defensive_is by import string and score_cv by its
    registered (entry-point) name, next to importance_sampling, elbo and gradient."""
    out, log = swept
    df = pd.read_parquet(out / "benchmarks.parquet")
    assert set(df["estimator"]) == USER | BUILTIN, log
    user = df["estimator"].isin(USER)
    assert df.loc[user, "user"].astype(bool).all() and not df.loc[~user, "user"].astype(bool).any()
    assert set(df["problem"]) == {"lg", "gm"}
    counts = df["estimator"].value_counts().to_dict()
    # problems x q x K (x alpha, x methods): every cell of the config is served
    assert counts == {"importance_sampling": 18, "defensive_is": 36, "elbo": 18, "gradient": 24, "score_cv": 12}, counts
    dis = df[df["estimator"] == "defensive_is"]
    assert sorted(set(dis["alpha"])) == [0.1, 0.3]
    assert df.loc[df["estimator"] != "defensive_is", "alpha"].isna().all()
    assert set(dis["target"]) == {"log_marginal"} and set(df.loc[df["estimator"] == "score_cv", "target"]) == {"elbo_grad"}
    # the truth is the exact one, whoever the estimator: the same log p(x) for IS and defensive IS of a problem
    for prob, g in df[df["target"] == "log_marginal"].groupby("problem"):
        assert g["truth"].nunique() == 1, prob
    # p_hat of defensive IS has bounded weights (so a trustworthy SE): unbiased for p(x) in every cell
    z = dis["ratio_bias"] / dis["ratio_bias_se"]
    assert (z.abs() < 5).all(), dis.loc[z.abs() >= 5, ["problem", "q", "K", "alpha", "ratio_bias", "ratio_bias_se"]]
    assert (df.loc[df["estimator"] == "score_cv", "bias_t_max"] < 5).all()


def test_sweep_row_equals_a_direct_call(installed, swept):
    """A defensive_is row's mean and variance are those of the function called
    directly with the cell's problem, q, K, R, seed and alpha."""
    root, _, env = installed
    df = pd.read_parquet(swept[0] / "benchmarks.parquet")
    row = df[(df["estimator"] == "defensive_is") & (df["problem"] == "gm")].iloc[0]
    script = f"""
import json, sys
import numpy as np
import bench
from evidence_bench_example.estimators import defensive_is
from problems import GaussianMixture
p = GaussianMixture.random(C=3, D=2, seed=0)
x = p.sample(1, seed=1)[0]
est = defensive_is(p, x, bench.make_q(p, x, {row['q']!r}), {int(row['K'])}, {int(row['R'])}, {int(row['seed'])},
                   alpha={float(row['alpha'])})
print(json.dumps([float(np.mean(est)), float(np.var(est, ddof=1))]))
"""
    proc, log = _run([sys.executable, "-c", script], root, env)
    assert proc.returncode == 0, log
    mean, var = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["mean"] == mean and row["variance"] == var, (row["mean"], mean, row["variance"], var)


@pytest.mark.parametrize("name", ["defensive_is", "score_cv"])
def test_report_draws_the_example_estimators(swept, name):
    """Every figure the data support, drawn from the sweep's table: each of the
    example's estimators appears in a legend, marked as the user's."""
    out, _ = swept
    from reports import report

    labels = set()
    for _, _, _, thunk in report._figure_specs(report.load_results(out)):
        fig = thunk()
        for ax in fig.axes:
            labels.update(str(t) for t in ax.get_legend_handles_labels()[1])
    assert f"{name} (yours)" in labels, sorted(labels)


def test_the_examples_pytest_benchmark_only(installed):
    """(b) The example's benchmarks in its own ``pytest --benchmark-only``: they
    pass, and --evidence-out writes the rows and the report."""
    root, src, env = installed
    ev = root / "ev"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
           f"--benchmark-json={root / 'bm.json'}", f"--evidence-out={ev}"]
    proc, log = _run(cmd, src, env)
    assert proc.returncode == 0, log
    assert (ev / "report.html").is_file() and (ev / "report.md").is_file(), log
    df = pd.read_parquet(ev / "benchmarks.parquet")
    n_torch = 3 if importlib.util.find_spec("torch") is not None else 0
    assert len(df) == 12 + n_torch and f"evidence-bench: {12 + n_torch} rows" in proc.stdout, log
    assert set(df["estimator"]) >= {"defensive_is", "score_cv", "importance_sampling", "gradient"}
    assert sorted(df.loc[df["estimator"] == "defensive_is", "K"]) == [10, 100, 1000]
    assert df.loc[df["estimator"].isin(USER), "user"].astype(bool).all()
    extra = [b["extra_info"] for b in json.loads((root / "bm.json").read_text())["benchmarks"]]
    assert len(extra) == len(df) and all("variance" in e and "target" in e for e in extra)
    assert all(math.isfinite(e["seconds"]) and e["seconds"] > 0 for e in extra)


def test_the_examples_statistical_tests(installed):
    """(b) The rest of the example's tests (``--benchmark-skip``): unbiasedness at
    5 SE, the exact enumeration, the variance ratio to the plain score; the
    PyTorch estimator's tests are skipped, with the reason, without torch."""
    root, src, env = installed
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--benchmark-skip"]
    proc, log = _run(cmd, src, env)
    assert proc.returncode == 0, log
    last = proc.stdout.strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last, log
    if importlib.util.find_spec("torch") is None:
        assert "torch_reparam is written in PyTorch" in proc.stdout, log
    assert int(re.search(r"(\d+) passed", last).group(1)) >= 30, last


def test_the_guide_runs(installed):
    """docs/estimators.md's ```python blocks, in order, in one process with the example installed."""
    root, _, env = installed
    blocks = [code for lang, code in _FENCE.findall(GUIDE.read_text()) if lang == "python"]
    assert len(blocks) >= 3
    script = root / "guide.py"
    script.write_text("\n\n".join(blocks))
    proc, log = _run([sys.executable, str(script)], root, env)
    assert proc.returncode == 0, log
    assert "biased for p(x)" in proc.stdout, log
