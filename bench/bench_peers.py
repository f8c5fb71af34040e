"""Our kernels against NumPy, JAX and PyTorch, one pytest-benchmark group per
comparison (``peers:<work>:K=<K>``), so that
``pytest --benchmark-only --benchmark-compare`` flags a regression of either side.

The implementations are those of ``bench.peers`` (``python -m bench peers``
prints the full K = 1e2 ... 1e6 table with the machine's limits).  A peer that
is not installed is not collected; the module prints which.  Every
implementation is first checked against the exact answer (``check_agreement``:
max |z| < 5 over p_hat/p and the gradient's mean), so a timing is only
recorded for work that computes the right thing.
"""

import numpy as np
import pytest

from bench import peers
from bench.suite import timed

PEERS, NOTES = peers.available_peers()
IMPLEMENTATIONS = ["evidence-bench"] + [p.name for p in PEERS]
WORKS = ["is_lg", "grad_lg", "is_gm"]
for _note in NOTES:
    print(f"bench_peers: {_note}")

_STATE = {}


def _setup():
    if not _STATE:
        lg, gm = peers.linear_gaussian_work(), peers.gaussian_mixture_work()
        impls = {impl.name: impl for impl in [peers.Ours(lg, gm)] + PEERS}
        _STATE.update(lg=lg, gm=gm, impls=impls, agreement={})
    return _STATE


def _agreement(name):
    state = _setup()
    if name not in state["agreement"]:
        state["agreement"][name] = peers.check_agreement(state["impls"][name], state["lg"], state["gm"])
    return state["agreement"][name]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("work", WORKS)
def test_peer(benchmark, suite, work, implementation):
    state = _setup()
    problem_work = state["gm"] if work == "is_gm" else state["lg"]
    K = 10_000 if suite.mode == "full" else 1_000
    R = peers.replicates_for(K) if suite.mode == "full" else 8
    z = _agreement(implementation)[work]
    assert z < 5, f"{implementation} disagrees with the exact answer on {work}: |z| = {z:.2f}"
    fn = getattr(state["impls"][implementation], work)
    benchmark.group = f"peers:{work}:K={K}"
    out = timed(
        benchmark,
        lambda: fn(problem_work.arrays, K, R, 1),
        rounds=5 if suite.mode == "full" else 1,
        samples=K * R,
        K=K,
        R=R,
        implementation=implementation,
        agreement_z=z,
    )
    assert np.all(np.isfinite(np.asarray(out)))
