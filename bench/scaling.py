r"""How our kernels scale: with K, in memory, and with threads.

Three measurements that ``python -m bench peers`` prints after the peer table
(issue 5's targets; benchmarks, never asserted in timed unit tests):

* ``throughput_vs_K``: samples/s of ``importance_sampling`` (R = 1) for
  K = 10^3 ... 10^8, and the log-log slope of time against K fitted over the
  range -- 1 means time linear in K (a fixed per-call overhead shows at small
  K as a slope below 1 there);
* ``peak_memory``: the peak resident set size (``VmHWM``) of a fresh process
  that runs K = 10^8 draws, against the same process before the call:
  the kernels stream in chunks, so memory must not grow with K;
* ``thread_speedup``: the same call with ``numba.set_num_threads(1)`` and with
  all threads; the ratio of their median times.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

DEFAULT_SCALING_KS = tuple(10**e for e in range(3, 9))


def _median_time(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _works():
    from .peers import gaussian_mixture_work, linear_gaussian_work

    return {"is_lg": linear_gaussian_work(), "is_gm": gaussian_mixture_work()}


def throughput_vs_K(Ks=DEFAULT_SCALING_KS, max_seconds=20.0):
    """Rows (work, K, seconds, samples_per_s) and {work: fitted slope of log
    time on log K}.  K values whose predicted time exceeds ``max_seconds``
    are left out and listed in the returned notes."""
    import estimators

    rows, notes = [], []
    for name, w in _works().items():
        estimators.warm_up(w.problem, w.x, w.q)
        rate = None
        for K in sorted(Ks):
            if rate is not None and K / rate > max_seconds:
                notes.append(f"{name}: K={K:.0e} left out (predicted {K / rate:.0f} s > {max_seconds:.0f} s)")
                continue
            repeats = 5 if K <= 10**6 else 1
            seconds = _median_time(lambda: estimators.importance_sampling(w.problem, w.x, w.q, K, 1, seed=1), repeats)
            rate = K / seconds
            rows.append(dict(work=name, K=K, seconds=seconds, samples_per_s=rate))
    slopes = {}
    for name in {r["work"] for r in rows}:
        ks = np.array([r["K"] for r in rows if r["work"] == name], dtype=float)
        ts = np.array([r["seconds"] for r in rows if r["work"] == name])
        if len(ks) >= 2:
            slopes[name] = float(np.polyfit(np.log(ks), np.log(ts), 1)[0])
    return rows, slopes, notes


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import estimators
    from bench.peers import gaussian_mixture_work, linear_gaussian_work

    def peak_mb():
        # VmHWM belongs to this process's address space, which execve made new;
        # ru_maxrss would carry over the parent's peak on Linux (a parent with
        # JAX and PyTorch loaded reads as 2.4 GB here)
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    w = {"is_lg": linear_gaussian_work, "is_gm": gaussian_mixture_work}[sys.argv[1]]()
    K = int(sys.argv[2])
    estimators.warm_up(w.problem, w.x, w.q)
    before = peak_mb()
    t = time.perf_counter()
    est = estimators.importance_sampling(w.problem, w.x, w.q, K, 1, seed=1)[0]
    seconds = time.perf_counter() - t
    after = peak_mb()
    print(json.dumps(dict(before_mb=before, after_mb=after, seconds=seconds,
                          error=float(est - w.truth_log_p))))
    """
)


def peak_memory(work="is_lg", K=10**8):
    """Peak RSS (MB) of a fresh process before and after one call with K draws,
    the call's time, and its estimate's error against the exact log p(x)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, work, str(int(K))], capture_output=True, text=True, check=True
    )
    return dict(work=work, K=int(K), **json.loads(out.stdout.strip().splitlines()[-1]))


def thread_speedup(K=10**6, repeats=5):
    """{work: (seconds with 1 thread, seconds with all, speed-up, threads)}."""
    import numba

    import estimators

    threads = numba.config.NUMBA_NUM_THREADS
    result = {}
    for name, w in _works().items():
        estimators.warm_up(w.problem, w.x, w.q)
        call = lambda: estimators.importance_sampling(w.problem, w.x, w.q, K, 1, seed=1)  # noqa: E731
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = _median_time(call, repeats)
            numba.set_num_threads(threads)
            many = _median_time(call, repeats)
        finally:
            numba.set_num_threads(before)
        result[name] = (one, many, one / many, threads)
    return result


def format_scaling(rows, slopes, notes, memory, speedup):
    lines = ["\nthroughput of importance_sampling vs K (R = 1; ours)"]
    for name in sorted(slopes):
        cells = [f"K={r['K']:.0e}: {r['samples_per_s']:.3g}/s" for r in rows if r["work"] == name]
        lines.append(f"  {name}: " + ", ".join(cells))
        lines.append(f"  {name}: log-log slope of time on K = {slopes[name]:.3f} (1 = linear)")
    lines += [f"  note: {n}" for n in notes]
    for m in memory:
        lines.append(
            f"peak RSS, {m['work']} K={m['K']:.0e}: {m['after_mb']:.0f} MB "
            f"(before the call {m['before_mb']:.0f} MB; call {m['seconds']:.1f} s; "
            f"log p_hat - log p = {m['error']:+.2e})"
        )
    for name, (one, many, ratio, threads) in speedup.items():
        lines.append(f"threads, {name} K=1e6: 1 thread {one * 1e3:.1f} ms, {threads} threads {many * 1e3:.1f} ms: speed-up {ratio:.2f}x")
    return "\n".join(lines)
