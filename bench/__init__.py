"""evidence-bench's harness: sweeps of (problem x q x estimator x K) cells,
metrics with standard errors, resumable Parquet storage, executors, the
command line (``python -m bench``) and the pytest-benchmark suite
(``bench/bench_*.py``, run by ``pytest --benchmark-only``).

    import bench
    sweep = bench.Sweep(
        problems={"lg": {"family": "LinearGaussian", "D": 5, "d": 2, "seed": 1, "x_seed": 2}},
        q=["posterior", "prior", "shift:1", "scale:2", "meanfield"],
        estimators=["importance_sampling", "elbo"], K=[1, 10, 100], R=200)
    df = bench.run(sweep, out="results/mine")      # one row per cell

Data flows one way: problems -> estimators -> bench -> reports.
"""

from .config import load_config, parse_config
from .executors import LocalExecutor, get_executor
from .presets import make_q, parse_preset
from .registry import TARGETS, estimator, register_estimator
from .runner import run, run_cell
from .sweep import ESTIMATORS, FAMILIES, METHODS, OBJECTIVES, Cell, ProblemSpec, Sweep

__all__ = [
    "Sweep",
    "Cell",
    "ProblemSpec",
    "run",
    "run_cell",
    "load_config",
    "parse_config",
    "make_q",
    "parse_preset",
    "LocalExecutor",
    "get_executor",
    "ESTIMATORS",
    "METHODS",
    "OBJECTIVES",
    "FAMILIES",
    "register_estimator",
    "estimator",
    "TARGETS",
]
