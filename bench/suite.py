"""The benchmark suite's run: which sweep, where its results go, and the
statistical thresholds its checks use.

Two modes, chosen once per pytest session:

* ``full`` -- under ``pytest --benchmark-only`` (what a user runs): the sweep
  of ``bench/configs/suite.toml`` into ``<rootdir>/results``; pytest-benchmark's
  JSON goes to ``results/pytest-benchmark.json``; the report to
  ``results/report.html`` and ``results/report.md``.  The suite's cells are
  recomputed every session (timings are part of the output); set
  ``EVIDENCE_BENCH_RESUME=1`` to keep the cells a killed session finished.
* ``smoke`` -- under plain ``pytest`` (and ``--benchmark-disable``): the small
  sweep of ``bench/configs/smoke.toml`` into a temporary directory, every
  check run on it, nothing written to results/, pytest-benchmark's timing
  disabled (``bench/conftest.py``).  Keeps ``pytest`` fast (~20-30 s).

``EVIDENCE_BENCH_MODE=full|smoke`` overrides the choice.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from scipy.stats import norm

from .config import load_config
from .runner import run

__all__ = ["Suite", "choose_mode", "CONFIGS", "TOLERANCE_SE", "bonferroni_z", "timed", "samples_per_second"]

CONFIGS = Path(__file__).parent / "configs"
TOLERANCE_SE = 4.0  # |measured - exact| < 4 SE: a 6e-5 false-alarm rate per check under normality


def choose_mode(benchmark_only: bool) -> str:
    env = os.environ.get("EVIDENCE_BENCH_MODE", "").strip().lower()
    if env:
        if env not in ("full", "smoke"):
            raise ValueError(f"EVIDENCE_BENCH_MODE: expected 'full' or 'smoke', got {env!r}")
        return env
    return "full" if benchmark_only else "smoke"


def bonferroni_z(n_tests, familywise=1e-3):
    r"""Two-sided normal threshold with a familywise false-alarm rate over
    ``n_tests`` independent-or-not tests (Bonferroni):
    :math:`z^* = \Phi^{-1}(1 - \alpha / (2n))`."""
    if n_tests < 1:
        raise ValueError(f"n_tests: must be >= 1, got {n_tests}")
    return float(norm.isf(familywise / (2.0 * n_tests)))


class Suite:
    """The session's sweep, run once (lazily) and shared by the checks."""

    def __init__(self, mode, out):
        self.mode = mode
        self.out = Path(out)
        self.config = CONFIGS / ("suite.toml" if mode == "full" else "smoke.toml")
        self.sweeps = load_config(self.config)
        self.fresh = mode == "full" and os.environ.get("EVIDENCE_BENCH_RESUME", "") != "1"
        self._df = None

    def run(self):
        """Run the sweep (recomputing this suite's cells in full mode unless
        EVIDENCE_BENCH_RESUME=1; resuming otherwise) and return the table."""
        self._df = run(self.sweeps, out=self.out, progress=False, fresh=self.fresh)
        self.fresh = False  # a second call in the same session only reads back
        return self._df

    def table(self):
        return self._df if self._df is not None else self.run()

    def problem(self, label):
        """(p, x) of a problem label of the sweep."""
        for s in self.sweeps:
            if label in s.problems:
                return s.problems[label].build()
        raise ValueError(f"label: no problem {label!r} in {self.config.name}")

    @property
    def problem_labels(self):
        return list(dict.fromkeys(label for s in self.sweeps for label in s.problems))

    def __repr__(self):
        return f"Suite(mode={self.mode!r}, out={str(self.out)!r}, config={self.config.name!r})"


def samples_per_second(stats, samples):
    """K R / mean seconds of a pytest-benchmark stats object (None if disabled)."""
    if stats is None:
        return math.nan
    return samples / stats.stats.mean


def timed(benchmark, fn, *, rounds, samples=None, **extra):
    """Call ``fn()`` once untimed (numba compiles here, outside the timing),
    then time ``rounds`` calls with pytest-benchmark; returns fn's result.
    ``samples`` (K*R) adds samples_per_s to the benchmark's extra_info."""
    fn()
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    for k, v in extra.items():
        benchmark.extra_info[k] = v
    if samples is not None:
        benchmark.extra_info["samples"] = int(samples)
        benchmark.extra_info["samples_per_s"] = samples_per_second(benchmark.stats, samples)
    return result
