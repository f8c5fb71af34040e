r"""The laws of the particle filter ("smc") and of annealed importance sampling
("ais") in the suite's sweep, each against the exact evidence (the Kalman
filter, the forward algorithm) with its standard error.

* :math:`\hat Z` is unbiased for p(x) for every proposal and resampling scheme.
* For large N, :math:`E\log\hat Z - \log p(x) \approx -\mathrm{Var}(\log\hat Z)/2`.
* :math:`\mathrm{Var}(\log\hat Z)` falls like 1/N and grows like T (averaged
  over observed series); the locally optimal proposal beats the bootstrap one.
* AIS: forward below, reverse (BDMC) above log p(x); their gap shrinks with
  the number of temperatures.

"Large N" is made precise once, a priori: the cells with
:math:`\mathrm{Var}(\log\hat Z) \le 1` (``reports.figures.FIT_MAX_VARIANCE``).
There the sample SE of :math:`\hat Z/p` is reliable (for a log-normal
:math:`\hat Z` the relative variance is :math:`e^{\mathrm{Var}} - 1 \le 1.7`)
and the delta-method laws hold to well within the SEs of these R; outside it
:math:`\hat Z/p` is so heavy-tailed that R replicates mostly miss its mean,
and those cells are drawn in the report but not tested.  Thresholds: the
Bonferroni z* over the cells of a test (``bench.suite.bonferroni_z``) or
``TOLERANCE_SE`` = 4 SE for one fitted slope.  The slopes are fitted here
with ``bench.metrics.wls_line`` on logs (the report's figures fit the same
numbers with their own code).
"""

import math

import numpy as np
import pytest

import estimators
from bench import metrics
from bench.suite import TOLERANCE_SE, bonferroni_z, timed

LARGE_N_VARIANCE = 1.0  # = reports.figures.FIT_MAX_VARIANCE (checked in tests/test_sequential_sweeps.py)
SMC_DEFAULTS = {"proposal": "bootstrap", "resampling": "systematic", "ess_threshold": 0.5}


def _rows(df, estimator):
    import json

    sub = df[df["estimator"] == estimator].copy()
    opts = [json.loads(o) if o else {} for o in sub["options"]]
    if estimator == "smc":
        for k, v in SMC_DEFAULTS.items():
            sub[k] = [o.get(k, v) for o in opts]
    else:
        sub["steps"] = [int(o.get("steps", 10)) for o in opts]
        sub["reverse"] = [bool(o.get("reverse", False)) for o in opts]
        sub["kernel"] = [o.get("kernel", "hmc") for o in opts]
    sub["T"] = [json.loads(p).get("T") for p in sub["problem_params"]]
    return sub


def _loglog_slope(x, v, v_se):
    """wls_line of log v on log x with the delta-method SEs v_se / v."""
    x, v, v_se = (np.asarray(a, dtype=float) for a in (x, v, v_se))
    return metrics.wls_line(np.log(x), np.log(v), v_se / v)


def test_smc_evidence_is_unbiased(benchmark, suite):
    """E[Z_hat / p(x)] = 1 in every large-N smc cell (every proposal and scheme):
    |ratio_bias / SE| < z* (Bonferroni).  Times the bootstrap filter on the
    suite's LinearGaussianStateSpace problem."""
    df = suite.table()
    smc = _rows(df, "smc")
    cells = smc[smc["variance"] <= LARGE_N_VARIANCE]
    assert len(cells) >= 10, f"too few large-N smc cells: {len(cells)}"
    assert {"bootstrap", "optimal"} <= set(cells["proposal"])
    p, x = suite.problem("lgss")
    N, R = (1000, 100) if suite.mode == "full" else (100, 20)
    timed(benchmark, lambda: estimators.smc(p, x, N, R, seed=1), rounds=5 if suite.mode == "full" else 1,
          samples=N * R * p.T, N=N, R=R, T=p.T)
    z = cells["ratio_bias"] / cells["ratio_bias_se"]
    zstar = bonferroni_z(len(cells))
    benchmark.extra_info.update(cells=len(cells), max_abs_z=float(z.abs().max()), z_star=zstar)
    bad = cells.assign(z=z)[z.abs() >= zstar]
    assert bad.empty, bad[["problem", "K", "proposal", "resampling", "ratio_bias", "ratio_bias_se", "z"]]


def test_smc_log_bias_is_minus_half_the_variance(benchmark, suite):
    """In every large-N smc cell, bias + Var/2 = 0 within z* SE, with
    SE^2 = bias_se^2 + (variance_se/2)^2 (the table's SEs, combined as if
    independent); and the bias itself is detected over those cells (power)."""
    df = suite.table()
    cells = benchmark.pedantic(lambda: _rows(df, "smc"), rounds=3, iterations=1)
    cells = cells[cells["variance"] <= LARGE_N_VARIANCE]
    se = np.sqrt(cells["bias_se"] ** 2 + (cells["variance_se"] / 2) ** 2)
    z = (cells["bias"] + cells["variance"] / 2) / se
    zstar = bonferroni_z(len(cells))
    benchmark.extra_info.update(cells=len(cells), max_abs_z=float(z.abs().max()), z_star=zstar)
    bad = cells.assign(z=z)[z.abs() >= zstar]
    assert bad.empty, bad[["problem", "K", "proposal", "resampling", "bias", "variance", "z"]]
    # the test has power: the downward bias itself is detected (Stouffer's z over the same cells)
    stouffer = float((cells["bias"] / cells["bias_se"]).sum() / math.sqrt(len(cells)))
    benchmark.extra_info["bias_stouffer_z"] = stouffer
    assert stouffer < -zstar, f"the bias of log Z_hat is not detected: Stouffer z = {stouffer:.2f}"


def test_smc_variance_falls_like_one_over_n(benchmark, suite):
    """Per (problem, proposal, resampling) with >= 3 large-N cells: the WLS slope
    of log Var on log N is -1 within 4 SE."""
    df = suite.table()
    smc = _rows(df, "smc")
    fits = {}

    def fit_all():
        for key, g in smc[smc["variance"] <= LARGE_N_VARIANCE].groupby(["problem", "proposal", "resampling"]):
            if g["K"].nunique() >= 3:
                fits[key] = _loglog_slope(g["K"], g["variance"], g["variance_se"])
        return fits

    benchmark.pedantic(fit_all, rounds=1, iterations=1)
    assert len(fits) >= 3, f"too few configurations with 3 large-N points: {list(fits)}"
    benchmark.extra_info["slopes"] = {"/".join(k): [f["slope"], f["slope_se"]] for k, f in fits.items()}
    bad = {k: (f["slope"], f["slope_se"]) for k, f in fits.items()
           if abs(f["slope"] + 1.0) >= TOLERANCE_SE * f["slope_se"]}
    assert not bad, bad
    assert all(f["slope_se"] < 0.25 for f in fits.values()), "the slopes are too noisy to test the law"


def test_smc_variance_grows_like_t(benchmark, suite):
    """At fixed N, E_x Var(log Z_hat) ~ T: the mean over the M >= 4 observed series
    per T (SE sd/sqrt(M)), fitted on log T, has slope 1 within 4 SE."""
    df = suite.table()
    smc = _rows(df, "smc")
    series = smc[smc["problem"].str.startswith("lgss_T")]
    assert series["T"].nunique() >= 2

    def fit_all():
        fits = {}
        for key, g in series.groupby(["K", "proposal", "resampling"]):
            per_t = g.groupby("T")["variance"].agg(["mean", "std", "count"])
            assert (per_t["count"] >= 4).all(), per_t
            fits[key] = _loglog_slope(per_t.index, per_t["mean"], per_t["std"] / np.sqrt(per_t["count"]))
        return fits

    fits = benchmark.pedantic(fit_all, rounds=1, iterations=1)
    benchmark.extra_info["slopes"] = {"/".join(map(str, k)): [f["slope"], f["slope_se"]] for k, f in fits.items()}
    bad = {k: (f["slope"], f["slope_se"]) for k, f in fits.items()
           if abs(f["slope"] - 1.0) >= TOLERANCE_SE * f["slope_se"]}
    assert not bad, bad


def test_optimal_proposal_beats_bootstrap(benchmark, suite):
    """At every (problem, N, resampling) with both proposals: Var_bootstrap >
    Var_optimal; at the largest such N by more than 4 SE of the difference."""
    df = suite.table()
    smc = _rows(df, "smc")
    both = smc.pivot_table(index=["problem", "K", "resampling"], columns="proposal",
                           values=["variance", "variance_se"], aggfunc="first").dropna()
    assert len(both) >= 3
    benchmark.pedantic(lambda: both["variance"]["bootstrap"] / both["variance"]["optimal"], rounds=3, iterations=1)
    ratio = both["variance"]["bootstrap"] / both["variance"]["optimal"]
    benchmark.extra_info["ratio_min"] = float(ratio.min())
    assert (ratio > 1).all(), ratio[ratio <= 1]
    top = both[both.index.get_level_values("K") == both.index.get_level_values("K").max()]
    diff = top["variance"]["bootstrap"] - top["variance"]["optimal"]
    se = np.hypot(top["variance_se"]["bootstrap"], top["variance_se"]["optimal"])
    assert (diff > TOLERANCE_SE * se).all(), (diff, se)


def test_ais_sandwich(benchmark, suite):
    """Forward AIS below log p(x) and reverse AIS above it, and reverse >= forward
    at every step count (each within z* SE), and the gap at the fewest steps
    exceeds the gap at the most by more than 4 SE.  Times AIS on the suite's
    LinearGaussianStateSpace problem for AIS."""
    df = suite.table()
    ais = _rows(df, "ais")
    assert ais["reverse"].nunique() == 2
    zstar = bonferroni_z(len(ais))
    fwd, rev = ais[~ais["reverse"]], ais[ais["reverse"]]
    assert ((fwd["mean"] - fwd["truth"]) / fwd["mean_se"] < zstar).all(), fwd[["steps", "mean", "truth"]]
    assert ((rev["mean"] - rev["truth"]) / rev["mean_se"] > -zstar).all(), rev[["steps", "mean", "truth"]]
    gaps = {}
    for (problem, K, kernel, steps), g in ais.groupby(["problem", "K", "kernel", "steps"]):
        f, r = g[~g["reverse"]], g[g["reverse"]]
        if len(f) == 1 and len(r) == 1:
            gaps.setdefault((problem, K, kernel), {})[steps] = (
                float(r["mean"].iloc[0] - f["mean"].iloc[0]), float(math.hypot(r["mean_se"].iloc[0], f["mean_se"].iloc[0])))
    assert gaps
    p, x = suite.problem("lgss_ais")
    timed(benchmark, lambda: estimators.ais(p, x, 4, 10, 10, seed=1), rounds=1, samples=4 * 10 * 10)  # chain-steps K R steps
    benchmark.extra_info["gaps"] = {f"{k[0]}/K={k[1]}/{k[2]}": {int(s): v for s, v in d.items()}
                                    for k, d in gaps.items()}
    for key, by_steps in gaps.items():
        steps = sorted(by_steps)
        assert all(by_steps[s][0] > -zstar * by_steps[s][1] for s in steps), by_steps
        (g0, s0), (g1, s1) = by_steps[steps[0]], by_steps[steps[-1]]
        assert g0 - g1 > TOLERANCE_SE * math.hypot(s0, s1), (key, by_steps)
