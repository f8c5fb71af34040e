"""bench's public entry points -- bench.run, bench.run_cell, the Sweep and
ProblemSpec constructors, config loading and the command line -- reject bad
input with a ValueError (exit status 2 on the command line) whose message
starts with the argument or key.  (Config keys already covered by
tests/test_bench_config.py are not repeated; this adds non-finite values,
out-of-range counts and the run-time arguments.)  Also: bench works without
Dask, and asking for a scheduler without it says how to install it."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bench
from bench.cli import main
from bench.dask_executor import DistributedUnavailable, parse_scheduler

LG = {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}

CONFIG = """
name = "t"
seed = 1

[problems.lg]
family = "LinearGaussian"
D = 3
d = 2
seed = 1
x_seed = 2

[[sweep]]
estimators = ["importance_sampling"]
q = ["prior", "shift:1"]
K = [1, 10]
R = 20
"""


def sweep(**kw):
    args = dict(problems={"lg": dict(LG)}, q=["prior"], estimators=["elbo"], K=[3], R=8)
    args.update(kw)
    return bench.Sweep(**args)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"K": [math.inf]}, r"K\[0\]: must be an integer"),
        ({"K": [math.nan]}, r"K\[0\]: must be an integer"),
        ({"K": [2**63]}, r"K\[0\]: must be <= 9223372036854775807"),
        ({"K": [-5]}, r"K\[0\]: must be >= 1"),
        ({"K": [np.float64(3.0)]}, r"K\[0\]: must be an integer"),
        ({"R": 10**30}, r"R: must be <= 9223372036854775807"),
        ({"R": 0}, r"R: must be >= 4"),
        ({"R": math.inf}, r"R: must be an integer"),
        ({"R": True}, r"R: must be an integer"),
        ({"seed": math.nan}, r"seed: must be an integer"),
        ({"seed": -1}, r"seed: must be >= 0"),
        ({"q": ["shift:inf"]}, r"q\[0\]: .*shift must be finite"),
        ({"q": ["scale:nan"]}, r"q\[0\]: .*scale must be finite"),
        ({"estimators": ["gibbs"]}, r"estimators\[0\]: unknown estimator 'gibbs'"),
        ({"problems": {"lg": {**LG, "D": math.nan}}}, r"problems\.lg\.D: must be an integer"),
        ({"problems": {"lg": {**LG, "x_seed": math.inf}}}, r"problems\.lg\.x_seed: must be an integer"),
        ({"problems": {"lg": {**LG, "family": "Ising"}}}, r"problems\.lg\.family: unknown problem 'Ising'"),
        ({"problems": [LG]}, r"problems: expected a non-empty mapping"),
    ],
)
def test_sweep_rejects(kwargs, key):
    with pytest.raises(ValueError, match=rf"^{key}"):
        sweep(**kwargs)


def test_problem_spec_rejects_params_that_are_not_a_mapping():
    with pytest.raises(ValueError, match=r"^params: expected a mapping"):
        bench.ProblemSpec("LinearGaussian", [("D", 3), ("d", 2)])


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"sweep": None}, r"sweep: expected a Sweep"),
        ({"sweep": "small.toml"}, r"sweep: expected a Sweep"),
        ({"sweep": []}, r"sweep: expected a Sweep or a non-empty list"),
        ({"sweep": [1]}, r"sweep: expected a Sweep or a non-empty list"),
        ({"out": None}, r"out: expected a directory path"),
        ({"out": 3}, r"out: expected a directory path"),
        ({"out": ""}, r"out: expected a directory path"),
        ({"fresh": "no"}, r"fresh: expected True or False"),
        ({"progress": "yes"}, r"progress: expected None, True or False"),
        ({"workers": -1}, r"workers: must be an integer >= 1"),
        ({"workers": 2.5}, r"workers: must be an integer >= 1"),
        ({"workers": math.nan}, r"workers: must be an integer >= 1"),
        ({"executor": 3}, r"executor: expected a name or an object with map_unordered"),
        ({"executor": "threads"}, r"executor: unknown executor 'threads'"),
        ({"scheduler": "local:0"}, r"scheduler: local:N needs N >= 1"),
        ({"scheduler": "local:two"}, r"scheduler: expected 'tcp://HOST:PORT' or 'local:N'"),
        ({"scheduler": "tcp://127.0.0.1"}, r"scheduler: expected 'tcp://HOST:PORT' or 'local:N'"),
        ({"scheduler": "tcp://127.0.0.1:99999"}, r"scheduler: port must be in 1\.\.65535"),
        ({"scheduler": "http://127.0.0.1:8786"}, r"scheduler: expected 'tcp://HOST:PORT' or 'local:N'"),
        ({"scheduler": 8786}, r"scheduler: expected 'tcp://HOST:PORT' or 'local:N'"),
        ({"scheduler": "local:2", "workers": 2}, r"scheduler: give either scheduler \(Dask\) or executor/workers"),
        ({"scheduler": "local:2", "executor": "local:2"}, r"scheduler: give either scheduler"),
    ],
)
def test_run_rejects(tmp_path, kwargs, key):
    args = {"sweep": sweep(), "out": tmp_path / "out", "progress": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{key}"):
        bench.run(args.pop("sweep"), **args)
    assert not (tmp_path / "out").exists()  # nothing created for a rejected call


def test_run_rejects_a_file_as_results_directory(tmp_path):
    f = tmp_path / "results"
    f.write_text("not a directory")
    with pytest.raises(ValueError, match=r"^out: .* is not a directory"):
        bench.run(sweep(), out=f, progress=False)


def test_run_cell_rejects_what_is_not_a_cell():
    with pytest.raises(ValueError, match=r"^cell: expected a bench\.Cell"):
        bench.run_cell({"K": 3})


def test_load_config_rejects_what_is_not_a_path():
    with pytest.raises(ValueError, match=r"^config: expected a file path"):
        bench.load_config(None)
    with pytest.raises(ValueError, match=r"^config: expected a file path"):
        bench.load_config(3)


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("K = [1, 10]", "K = [1, inf]", r"sweep\[0\]\.K\[1\]: must be an integer, got inf"),
        ("K = [1, 10]", "K = [nan]", r"sweep\[0\]\.K\[0\]: must be an integer, got nan"),
        ("K = [1, 10]", "K = [1, -10]", r"sweep\[0\]\.K\[1\]: must be >= 1"),
        ("K = [1, 10]", 'K = "10"', r"sweep\[0\]\.K: expected a list of integers"),
        ("R = 20", "R = nan", r"sweep\[0\]\.R: must be an integer, got nan"),
        ("R = 20", "R = -inf", r"sweep\[0\]\.R: must be an integer"),
        ("R = 20", "R = 0", r"sweep\[0\]\.R: must be >= 4"),
        ("seed = 1\n", "seed = inf\n", r"seed: must be an integer, got inf"),
        ("D = 3", "D = nan", r"problems\.lg\.D: must be an integer"),
        ("x_seed = 2", "x_seed = inf", r"problems\.lg\.x_seed: must be an integer"),
        ('q = ["prior", "shift:1"]', 'q = ["prior", "shift:nan"]', r"sweep\[0\]\.q\[1\]: .*shift must be finite"),
        ('q = ["prior", "shift:1"]', 'q = ["scale:inf"]', r"sweep\[0\]\.q\[0\]: .*scale must be finite"),
        ('name = "t"', "name = 3", r"name: expected a non-empty string"),
    ],
)
def test_config_rejects_non_finite_and_out_of_range_values(tmp_path, old, new, key):
    assert old in CONFIG
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace(old, new, 1))
    with pytest.raises(ValueError, match=rf"^{key}"):
        bench.load_config(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "-1"], "error: workers: must be an integer >= 1, got -1"),
        (["--scheduler", "127.0.0.1:8786"], "error: scheduler: expected 'tcp://HOST:PORT' or 'local:N'"),
        (["--scheduler", "local:0"], "error: scheduler: local:N needs N >= 1"),
        (["--scheduler", "local:2", "--workers", "2"], "error: workers: --workers is for the local executor"),
    ],
)
def test_cli_run_rejects(tmp_path, capsys, extra, message):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_run_rejects_a_bad_value_in_the_config(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("R = 20", "R = nan"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "error: sweep[0].R: must be an integer, got nan" in capsys.readouterr().err


def test_scheduler_strings():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://127.0.0.1:8786") == ("tcp", "tcp://127.0.0.1:8786")
    assert parse_scheduler("tcp://node-7.cluster:8786") == ("tcp", "tcp://node-7.cluster:8786")
    assert parse_scheduler("tcp://[::1]:8786") == ("tcp", "tcp://[::1]:8786")


def test_bench_does_not_import_dask():
    """`import bench` (and the local executor) must work without the
    [distributed] extra: nothing imports dask until a scheduler is asked for."""
    code = textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None  # as if dask.distributed were not installed
        sys.modules["dask"] = None
        import bench, bench.cli, bench.dask_executor
        print("ok", "dask" in sys.modules and sys.modules["dask"] is not None)
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "False"]


def test_scheduler_without_dask_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with pytest.raises(DistributedUnavailable, match=r"^scheduler: .*pip install \"evidence-bench\[distributed\]\""):
        bench.run(sweep(), out=tmp_path / "api", scheduler="local:2", progress=False)
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--scheduler", "local:2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: scheduler: running on Dask needs dask.distributed, which is not installed")
    assert 'pip install "evidence-bench[distributed]"' in err
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()
