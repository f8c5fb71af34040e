"""pytest wiring of the benchmark suite (bench/bench_*.py).

* Mode (``bench.suite``): ``full`` under ``--benchmark-only`` (results/),
  ``smoke`` otherwise (a temporary directory, small sizes).  In smoke mode
  pytest-benchmark is switched to ``--benchmark-disable`` (each benchmarked
  function runs once, untimed, and its checks still run) unless
  ``--benchmark-enable`` is given.
* Full mode makes pytest-benchmark write its own JSON to
  ``results/pytest-benchmark.json`` unless ``--benchmark-json`` was given.
* Full mode with the sweep selected: the kernels are compiled after
  collection, before the first test, with "compiling kernels (first run
  only, about N s)" and a bar when numba's cache is cold
  (``bench.runner.compile_kernels``); the header says what the run does.
* Order: the sweep's test runs first (so its benchmark times the sweep), the
  report's last (so it sees every result); markers ``suite_first`` and
  ``suite_last``.
* After pytest-benchmark has written its JSON (its ``pytest_sessionfinish``),
  the report's HTML and Markdown are re-rendered to include that JSON's
  timing table.

Every check in the suite requests the ``benchmark`` fixture, because
``--benchmark-only`` skips every test that does not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bench.suite import Suite, choose_mode

MODE_KEY = pytest.StashKey[str]()
SUITE_KEY = pytest.StashKey[Suite]()
REPORT_KEY = pytest.StashKey[bool]()


def pytest_configure(config):
    config.addinivalue_line("markers", "suite_first: run this benchmark-suite test before the others")
    config.addinivalue_line("markers", "suite_last: run this benchmark-suite test after the others")
    try:
        mode = choose_mode(bool(config.getoption("benchmark_only", False)))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[MODE_KEY] = mode
    config.stash[REPORT_KEY] = False
    if mode == "smoke" and not config.getoption("benchmark_only", False) \
            and not config.getoption("benchmark_enable", False):
        # plain `pytest` checks the suite's code paths and numbers, it does not time them
        config.option.benchmark_disable = True
    if mode == "full" and config.getoption("benchmark_json", None) is None:
        results = Path(config.rootpath) / "results"
        results.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = results / "pytest-benchmark.json"


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if item.get_closest_marker("suite_first"):
            return 0
        if item.get_closest_marker("suite_last"):
            return 2
        return 1

    items[:] = sorted(items, key=rank)  # stable: keeps pytest's order within a rank


def pytest_report_header(config):
    if config.stash.get(MODE_KEY, None) != "full":
        return None
    return ("evidence-bench: the benchmark suite (full mode): compiles the kernels if numba's cache is cold, runs "
            "the sweep of bench/configs/suite.toml into results/, checks it, recomputes the lecture's claims and "
            "writes results/report.html")


def pytest_collection_finish(session):
    """Full mode, with the sweep's test selected: compile the sweep's kernels
    now, before the first test, saying so on the terminal when the cache is
    cold ("compiling kernels (first run only, about N s)", then a bar), so that
    the run is not silent and the sweep's timing holds no compilation."""
    config = session.config
    if config.stash.get(MODE_KEY, None) != "full" or config.option.collectonly:
        return
    if not any(item.nodeid.startswith("bench/bench_sweep.py") for item in session.items):
        return
    import sys

    from bench.runner import compile_kernels, unfinished

    s = Suite("full", Path(config.rootpath) / "results")
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        compile_kernels(unfinished(s.sweeps, s.out, fresh=s.fresh), stream=sys.stderr)


@pytest.fixture(scope="session")
def suite(request, tmp_path_factory):
    """The session's sweep (``bench.suite.Suite``); ``suite.table()`` runs it once."""
    mode = request.config.stash[MODE_KEY]
    out = Path(request.config.rootpath) / "results" if mode == "full" else tmp_path_factory.mktemp("bench-smoke")
    s = Suite(mode, out)
    request.config.stash[SUITE_KEY] = s
    return s


@pytest.fixture(scope="session")
def mark_report_built(request):
    """Call to record that the suite's report was written this session."""

    def mark():
        request.config.stash[REPORT_KEY] = True

    return mark


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    yield  # pytest-benchmark writes its JSON in its own (wrapped) sessionfinish, before this point
    config = session.config
    s = config.stash.get(SUITE_KEY, None)
    if s is None or s.mode != "full" or not config.stash.get(REPORT_KEY, False):
        return
    json_path = config.getoption("benchmark_json", None)
    from reports.report import BENCHMARK_JSON, render_documents

    if json_path is None or Path(json_path).resolve() != (s.out / BENCHMARK_JSON).resolve():
        return
    if not Path(json_path).is_file():
        return
    paths = render_documents(s.out)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"evidence-bench: report with pytest-benchmark timings: {paths['html']}")
