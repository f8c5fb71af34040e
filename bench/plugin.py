"""evidence-bench's pytest plugin (entry point ``pytest11``): your estimator,
benchmarked and measured against the truth in your own ``pytest --benchmark-only``.

    def test_my_estimator(estimator_benchmark):
        row = estimator_benchmark(defensive_is, p, x, q, K=1000, R=200, target="log_marginal")
        assert abs(row["bias"]) < 5 * row["bias_se"]

The fixture ``estimator_benchmark(fn, p, x, q, K, R, seed=0, target=None,
rounds=3, label=None, q_label=None, **options)`` calls ``fn`` once untimed
(numba and JAX compile there), times ``rounds`` calls with pytest-benchmark's
``benchmark`` fixture, measures the result against the exact truth
(``bench.testing.measure``'s columns), puts the row's numbers into the
benchmark's ``extra_info`` (so ``--benchmark-compare`` tracks the statistics
as well as the speed) and returns the row.  ``seconds`` is the median timed
round.

``--evidence-out DIR`` writes every row of the session to
``DIR/benchmarks.parquet`` and builds the report there (``DIR/report.html``,
``DIR/figures/``, variance vs K among them), as ``python -m bench report`` does.

The plugin is loaded in every pytest session of an environment that has
evidence-bench installed, so it imports nothing heavy until the fixture is used.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

_ROWS = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("evidence-bench")
    group.addoption(
        "--evidence-out",
        action="store",
        default=None,
        metavar="DIR",
        help="evidence-bench: write every estimator_benchmark row as DIR/benchmarks.parquet and build the report in DIR",
    )


def pytest_configure(config):
    config.stash[_ROWS] = []


def _jsonable(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, (int, float)):
        return not (isinstance(v, float) and not math.isfinite(v))
    return False


@pytest.fixture
def estimator_benchmark(benchmark, request):
    """Time an estimator with pytest-benchmark and measure it against the truth; returns the row."""
    from bench import testing

    store = request.config.stash[_ROWS]

    def run(fn, p, x, q, K, R, seed=0, target=None, rounds=3, label=None, q_label=None, **options):
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ValueError(f"rounds: must be a positive integer, got {rounds!r}")

        def timed_call(entry):
            entry.call(p, x, q, K, R, seed, options)  # compile / warm up, untimed
            est = benchmark.pedantic(
                lambda: entry.call(p, x, q, K, R, seed, options), rounds=rounds, iterations=1, warmup_rounds=0
            )
            stats = getattr(benchmark, "stats", None)
            if stats is None or getattr(benchmark, "disabled", False):
                import time

                t0 = time.perf_counter()
                est = entry.call(p, x, q, K, R, seed, options)
                return est, time.perf_counter() - t0
            return est, float(stats.stats.median)

        row, _ = testing._measure(fn, p, x, q, K, R, seed, target, options, call=timed_call)
        row["problem"] = label or type(p).__name__
        row["q"] = q_label or row["q_family"]
        row["test"] = request.node.nodeid
        for k, v in row.items():
            if _jsonable(v):
                benchmark.extra_info[k] = v
        store.append(dict(row))
        return row

    return run


def pytest_sessionfinish(session, exitstatus):
    out = session.config.getoption("evidence_out", None)
    rows = session.config.stash.get(_ROWS, [])
    if not out or not rows:
        return
    import pandas as pd

    import pyarrow as pa

    from bench import analysis, storage
    from bench.runner import REFERENCE_METHOD, SCHEMA
    from reports.report import build_report

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    # the columns of a sweep's table, so the report reads these rows as it reads a sweep's
    for f in SCHEMA:
        if f.name not in df:
            df[f.name] = "" if pa.types.is_string(f.type) else (0 if pa.types.is_integer(f.type) else math.nan)
    df["problem_params"] = df["problem_params"].replace("", "{}")
    df["cell_id"] = [f"test-{i}" for i in range(len(df))]
    df["x_seed"] = -1  # x was given by the test, not drawn by the harness
    df = analysis.add_variance_ratios(df, reference=REFERENCE_METHOD)
    storage.write_table(d / storage.TABLE, df)
    paths = build_report(d)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"evidence-bench: {len(df)} rows -> {d / storage.TABLE}; report {paths['html']}")
