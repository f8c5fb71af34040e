"""Reproducibility and memory: the same seed gives bit-identical results, also
across NUMBA_NUM_THREADS; different seeds differ; memory does not grow with K.

The thread-count and memory checks run in fresh interpreters (subprocesses),
because numba fixes its thread pool size at import.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import estimators
from estimators import Categorical, Gaussian, MultivariateGaussian
from estimators._kernels.driver import CHUNK, thread_slots
from problems import GaussianMixture, LinearGaussian

REPO = Path(__file__).resolve().parents[1]


def cases():
    """(label, callable(seed) -> array) covering every kernel path."""
    p = LinearGaussian.random(3, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    p1 = LinearGaussian.random(2, 1, seed=2)
    x1 = p1.sample(1, seed=3)[0]
    g = GaussianMixture.random(5, 2, seed=4)
    xg = g.sample(1, seed=5)[0]
    mvg = MultivariateGaussian([0.3, -0.2], [[1.0, 0.4], [0.4, 0.8]])
    catq = Categorical([0.1, 0.0, 0.4, 0.2, 0.3])
    return [
        ("lg-prior-is", lambda s, K, R: estimators.importance_sampling(p, x, p.prior(), K, R, seed=s)),
        ("lg-mvg-elbo", lambda s, K, R: estimators.elbo(p, x, mvg, K, R, seed=s)),
        ("lg-box-umc", lambda s, K, R: estimators.uniform_mc(p1, x1, K, R, seed=s, box=(-3.0, 2.0))),
        ("gm-cat-is", lambda s, K, R: estimators.importance_sampling(g, xg, catq, K, R, seed=s)),
        ("gm-umc", lambda s, K, R: estimators.uniform_mc(g, xg, K, R, seed=s)),
        (
            "lg-stats",
            lambda s, K, R: np.stack(
                [
                    getattr(estimators.weight_stats(p, x, Gaussian([1.0, 0.0], [0.5, 2.0]), K, R, seed=s), f)
                    for f in ("log_sum_w", "log_sum_w2", "sum_log_w")
                ]
            ),
        ),
    ]


CASES = cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("label, run", CASES, ids=IDS)
@pytest.mark.parametrize("K", [1, 1000, 2 * CHUNK + 5])
def test_same_seed_same_bits_and_different_seed_differs(label, run, K):
    R = 4
    a, b = run(7, K, R), run(7, K, R)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a))
    c = run(8, K, R)
    assert not np.array_equal(a, c)
    if K == 1:
        return  # one draw from a discrete q can repeat across seeds and replicates
    assert np.all(a != c), "a different seed must change every replicate"
    # replicates are independent streams, not copies
    rows = a if a.ndim == 1 else a[0]
    assert len(np.unique(rows)) == R


def test_problem_and_proposal_sampling_is_seeded():
    p = LinearGaussian.random(3, 2, seed=0)
    g = GaussianMixture.random(4, 2, seed=0)
    for sample in (p.sample, g.sample, p.prior().sample, Categorical([0.2, 0.8]).sample):
        np.testing.assert_array_equal(sample(100, seed=3), sample(100, seed=3))
        assert not np.array_equal(sample(100, seed=3), sample(100, seed=4))
    # random instances too
    np.testing.assert_array_equal(LinearGaussian.random(3, 2, seed=5).W, LinearGaussian.random(3, 2, seed=5).W)
    assert not np.array_equal(LinearGaussian.random(3, 2, seed=5).W, LinearGaussian.random(3, 2, seed=6).W)


# Two fresh interpreters, started side by side by one module fixture: one with
# NUMBA_NUM_THREADS=1, one with NUMBA_NUM_THREADS=2.  Both compute the same
# LinearGaussian estimate with K = 50000 (4 chunks of 16384) and R = 3, i.e.
# 12 units of parallel work; the second then also measures peak memory for
# K = 10^7 (sharing its compile, which dominates the cost).
#
# Only one case runs in the subprocesses because numba recompiles the driver
# (its block function is a first-class function argument, which defeats
# cache=True) in every fresh interpreter, at seconds per kernel; every case is
# covered in-process below with numba.set_num_threads.  Each subprocess gets a
# private NUMBA_CACHE_DIR: processes compiling into one shared cache at the same
# time can fail with "ReferenceError: underlying object has vanished".
THREAD_K, THREAD_R, MEMORY_K = 50_000, 3, 10**7

SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numba

    def peak_kib():
        # this process's own high-water mark (exec resets it); ru_maxrss can carry the parent's peak
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc/self/status")

    import numpy as np
    import estimators
    from problems import LinearGaussian
    p = LinearGaussian.random(3, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    result = estimators.importance_sampling(p, x, p.prior(), {K}, {R}, seed=11)
    np.save({path!r}, result)
    print("threads", numba.get_num_threads())
    if {memory_K}:
        p = LinearGaussian.random(2, 2, seed=0)
        x = p.sample(1, seed=1)[0]
        q = p.prior()
        estimators.importance_sampling(p, x, q, 3 * 16384, 1, seed=0)  # the same compiled path, warm
        base = peak_kib()
        t = time.perf_counter()
        big = estimators.importance_sampling(p, x, q, {memory_K}, 1, seed=0)
        seconds = time.perf_counter() - t
        peak = peak_kib()
        print("memory", base, peak, seconds, repr(float(big[0])), repr(float(p.log_marginal(x))),
              repr(p.relative_weight_variance(x, q)))
    """
)


def start_subprocess(code, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory):
    """{threads: (result array, {label: fields of the printed lines})}."""
    tmp = tmp_path_factory.mktemp("threads")
    procs = {}
    for n in (1, 2):
        code = SUBPROCESS_SCRIPT.format(
            K=THREAD_K, R=THREAD_R, path=str(tmp / f"threads{n}.npy"), memory_K=MEMORY_K if n == 2 else 0
        )
        env = {"NUMBA_NUM_THREADS": str(n), "NUMBA_CACHE_DIR": str(tmp / f"numba_cache_{n}")}
        procs[n] = start_subprocess(code, env)
    runs = {}
    for n, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
        runs[n] = (np.load(tmp / f"threads{n}.npy"), lines)
    return runs


def test_bit_identical_across_numba_thread_counts(subprocess_runs):
    assert THREAD_K > 3 * CHUNK
    one, two = subprocess_runs[1], subprocess_runs[2]
    assert int(one[1]["threads"][0]) == 1 and int(two[1]["threads"][0]) == 2  # the setting took effect
    assert one[0].shape == (THREAD_R,) and np.all(np.isfinite(one[0]))
    assert len(np.unique(one[0])) == THREAD_R
    np.testing.assert_array_equal(one[0], two[0])
    # and this process, whatever its thread count, agrees
    p = LinearGaussian.random(3, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    np.testing.assert_array_equal(estimators.importance_sampling(p, x, p.prior(), THREAD_K, THREAD_R, seed=11), one[0])


def test_memory_does_not_grow_with_k(subprocess_runs):
    """K = 10^7, R = 1, LinearGaussian D = d = 2 (K = 10^8 streams as well, in
    about 2 s on an idle machine and 4 s on a busy one -- too long for this
    suite's budget).  Peak RSS (VmHWM, KiB) may grow by at most
    50 MB over the warm-up run at K = 3 * 16384 on the same compiled path:
    holding the K log-weights alone would take 80 MB, the K draws z 160 MB."""
    base, peak, seconds, big, log_p, v = subprocess_runs[2][1]["memory"]
    growth_mb = (int(peak) - int(base)) / 1024
    assert growth_mb < 50, f"peak RSS grew by {growth_mb:.0f} MB for K = {MEMORY_K}"
    # and the answer is right: sd(log p_hat) ~ sqrt(Var[w] / (K p^2)) at this K
    se = np.sqrt(float(v) / MEMORY_K)
    assert abs(float(big) - float(log_p)) < 5 * se, (big, log_p, se)


@pytest.mark.parametrize("label, run", CASES, ids=IDS)
def test_bit_identical_for_one_and_two_threads_in_process(label, run):
    """numba.set_num_threads changes how many threads the parallel loop uses
    (up to NUMBA_NUM_THREADS): every case, 1 thread versus all of them."""
    K, R = 50_000, 3
    n_max = numba.config.NUMBA_NUM_THREADS
    try:
        numba.set_num_threads(1)
        one = run(11, K, R)
        numba.set_num_threads(n_max)
        many = run(11, K, R)
    finally:
        numba.set_num_threads(n_max)
    np.testing.assert_array_equal(one, many)


def _unit_sizes(K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    return np.array([min(K, (c + 1) * CHUNK) - c * CHUNK for _ in range(R) for c in range(n_chunks)])


@pytest.mark.parametrize("K, R", [(100_000, 1), (10_000, 13), (100, 1310), (1_000_000, 1), (3 * CHUNK, 1), (CHUNK + 1, 3), (1, 1)])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
def test_thread_slots_cover_the_units_in_order_balanced_by_samples(K, R, n_threads):
    """One contiguous run of units per thread, together every unit once, and no
    run more than a chunk above an equal share of the samples (half a unit at
    either end)."""
    sizes = _unit_sizes(K, R)
    bounds = thread_slots(K, R, n_threads)
    T = min(n_threads, len(sizes))
    assert bounds.shape == (T + 1,) and bounds[0] == 0 and bounds[-1] == len(sizes)
    assert np.all(np.diff(bounds) >= 0)
    runs = np.array([sizes[bounds[t] : bounds[t + 1]].sum() for t in range(T)])
    assert runs.sum() == K * R
    assert runs.max() <= K * R / T + CHUNK


def test_thread_slots_split_six_and_a_bit_chunks_three_and_three():
    """K = 1e5 is six full chunks and one of 1696 samples: a split of the unit
    count (4 + 3) leaves one thread with four full chunks; by samples it is 3 + 3."""
    bounds = thread_slots(100_000, 1, 2)
    np.testing.assert_array_equal(bounds, [0, 3, 7])


#: the cases whose estimator runs through driver.log_weight_stats (lg-stats runs the top-M path of diagnostics.tail)
DRIVER_CASES = [c for c in CASES if c[0] != "lg-stats"]


@pytest.mark.parametrize("label, run", DRIVER_CASES, ids=[c[0] for c in DRIVER_CASES])
def test_parallel_driver_same_bits_for_any_slot_count(label, run, monkeypatch):
    """The log-weight driver's parallel loop with 1, 2, 3 and 7 slots (runs of
    units) gives the bits of the default call."""
    from estimators._kernels import driver

    K, R = CHUNK + 17, 3
    reference = run(11, K, R)
    real = driver.log_weight_stats_parallel
    for n_threads in (1, 2, 3, 7):
        seen = []

        def forced(args, key, K_, R_, _n, n=n_threads):
            seen.append(n)
            return real(args, key, K_, R_, n)

        monkeypatch.setattr(driver, "log_weight_stats_parallel", forced)
        np.testing.assert_array_equal(run(11, K, R), reference)
        assert seen == [n_threads], f"{label} did not run through driver.log_weight_stats_parallel"


# A fresh compile and a compile whose callees come from numba's cache must give
# the same bits.  With fastmath's reassoc/contract LLVM chose the order of the
# log-joint's sums per compile context, and a seed's estimates differed in the
# last bits between the first run after an install and every later one (and
# with the order in which kernels were first compiled).
COMPILE_ORDER_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    import estimators
    from problems import LinearGaussian
    p = LinearGaussian.random(4, 3, seed=0)
    x = p.sample(1, seed=1)[0]
    q = estimators.Gaussian(np.full(3, 0.1), np.full(3, 0.9))
    calls = {
        "is": lambda: estimators.importance_sampling(p, x, q, 300, 7, seed=3),
        "iwae_reparam": lambda: estimators.gradient(p, x, q, 300, 7, "reparam", "iwae", seed=3),
        "elbo_reparam": lambda: estimators.gradient(p, x, q, 300, 7, "reparam", "elbo", seed=3),
    }
    order = sys.argv[1].split(",")
    out = {name: calls[name]() for name in order}
    for name in sorted(out):
        print(name, hashlib.sha256(np.ascontiguousarray(out[name]).tobytes()).hexdigest())
    """
)


def test_fresh_and_cached_compiles_give_the_same_bits(tmp_path):
    """Three interpreters: the first compiles the kernels into an empty
    NUMBA_CACHE_DIR, the second loads them from it, the third compiles them
    into another empty cache in the reverse order.  Every estimate must be the
    same bits in all three."""
    runs = []
    forward = "is,iwae_reparam,elbo_reparam"
    reverse = ",".join(reversed(forward.split(",")))
    for cache, order in (("a", forward), ("a", forward), ("b", reverse)):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / cache))
        done = subprocess.run(
            [sys.executable, "-c", COMPILE_ORDER_SCRIPT, order], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(done.stdout)
    assert runs[0] == runs[1] == runs[2], runs
