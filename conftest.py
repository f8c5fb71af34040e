"""pytest at the repository's root: which test paths a run collects.

``pytest`` collects both test paths of pyproject's ``testpaths`` (tests/ and
the benchmark suite bench/).  ``pytest --benchmark-only`` with no paths is the
benchmark suite's command, and pytest-benchmark would skip every unit test in
tests/ (they request no ``benchmark`` fixture), printing 800-odd ``s``: it
collects bench/ alone.  Paths given on the command line are collected as
asked.
"""

from __future__ import annotations

import pytest


def pytest_ignore_collect(collection_path, config):
    if (
        config.getoption("benchmark_only", False)
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and collection_path.is_relative_to(config.rootpath / "tests")
    ):  # tests/ itself is one of the initial paths, which pytest never asks about: ignore what it holds
        return True
    return None
