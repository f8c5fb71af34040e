r"""Statistical laws the sweep's numbers must obey, each against an exact answer.

Thresholds come from standard errors.  Where one test makes n comparisons
(cells, or cells x gradient coordinates), the threshold is the two-sided
Bonferroni normal quantile with a familywise false-alarm rate of 1e-3,
z* = Phi^{-1}(1 - 0.001 / (2n)) (``bench.suite.bonferroni_z``).
"""

import numpy as np
import pytest

import estimators
from bench import exact
from bench.presets import make_q
from bench.suite import bonferroni_z

PROBLEMS = ["lg", "gm"]


def _p_hat_z(df, problem):
    """Per IS cell with a finite Var_q[w]: z = (mean(p_hat/p) - 1) / SE with
    the exact SE = sqrt(Var_q[w] / (p^2 K R)) (plus a 1e-9 round-off floor;
    q = posterior has zero variance)."""
    rows = df[(df["estimator"] == "importance_sampling") & (df["problem"] == problem)]
    rows = rows[np.isfinite(rows["rel_weight_var"])]
    se = np.sqrt(rows["rel_weight_var"] / (rows["K"] * rows["R"]) + 1e-18)
    return rows.assign(z=rows["ratio_bias"] / se)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_p_hat_is_unbiased(benchmark, suite, problem):
    """E[p_hat / p] = 1 at every K: |z| < z* over the cells with a finite,
    known Var_q[w] (``_p_hat_z``).  Times the computation of the z's."""
    df = suite.table()
    cells = benchmark.pedantic(_p_hat_z, args=(df, problem), rounds=3, iterations=1)
    assert len(cells) >= 10, f"too few cells to test: {len(cells)}"
    zstar = bonferroni_z(len(cells))
    benchmark.extra_info.update(cells=len(cells), max_abs_z=float(cells["z"].abs().max()), z_star=zstar)
    bad = cells[cells["z"].abs() >= zstar]
    assert bad.empty, bad[["q", "K", "ratio_bias", "ratio_bias_se", "rel_weight_var", "z"]]


def _elbo_variance_z(df, problem):
    """Per elbo cell with nonzero exact variance and a known fourth moment:
    z = (s^2 - sigma^2/K) / SE(s^2), with the exact
    SE(s^2)^2 = (mu4_K - (R-3)/(R-1) sigma_K^4) / R of the sample variance of R
    means of K i.i.d. log-weights (``bench.exact.elbo_mean_moments``)."""
    rows = df[(df["estimator"] == "elbo") & (df["problem"] == problem)]
    rows = rows[np.isfinite(rows["mu4_log_w"]) & (rows["var_log_w"] > 1e-12)]
    var_k, mu4_k = exact.elbo_mean_moments(rows["var_log_w"], rows["mu4_log_w"], rows["K"])
    R = rows["R"]
    se = np.sqrt((mu4_k - (R - 3) / (R - 1) * var_k**2) / R)
    return rows.assign(var_exact=var_k, z=(rows["variance"] - var_k) / se)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_elbo_variance_is_exact(benchmark, suite, problem):
    """Var[ELBO estimate] = Var_q[log w] / K exactly (the 1/K law with its
    exact constant): |z| < z* over the cells (``_elbo_variance_z``)."""
    df = suite.table()
    cells = benchmark.pedantic(_elbo_variance_z, args=(df, problem), rounds=3, iterations=1)
    assert len(cells) >= 10, f"too few cells to test: {len(cells)}"
    zstar = bonferroni_z(len(cells))
    benchmark.extra_info.update(cells=len(cells), max_abs_z=float(cells["z"].abs().max()), z_star=zstar)
    bad = cells[cells["z"].abs() >= zstar]
    assert bad.empty, bad[["q", "K", "variance", "var_exact", "z"]]


def _gradient_rows(df, problem, objective):
    g = df[(df["estimator"] == "gradient") & (df["problem"] == problem) & (df["objective"] == objective)]
    biased = (g["method"] == "stl") & (g["objective"] == "iwae") & (g["K"] > 1)
    return g[~biased]


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_gradients_are_unbiased(benchmark, suite, problem, objective):
    """Every gradient method is unbiased for its objective (except stl for
    iwae at K > 1, which is biased by construction): the largest bias
    t-statistic over cells x coordinates is below the Bonferroni z*.
    Against p.elbo_grad (elbo) or iwae_gradient_reference with its SE (iwae).
    Times the exact reference of one cell."""
    df = suite.table()
    rows = _gradient_rows(df, problem, objective)
    assert len(rows) > 0
    p, x = suite.problem(problem)
    q = make_q(p, x, rows["q"].iloc[0])
    if objective == "elbo":
        benchmark.pedantic(p.elbo_grad, args=(x, q), rounds=20, iterations=1)
    else:
        benchmark.pedantic(estimators.iwae_gradient_reference, args=(p, x, q, 10), kwargs={"R_ref": 2000},
                           rounds=1, iterations=1)
    n = int(rows["n_params"].sum())
    zstar = bonferroni_z(n)
    worst = rows.loc[rows["bias_t_max"].idxmax()]
    benchmark.extra_info.update(cells=len(rows), comparisons=n, z_star=zstar, max_t=float(worst["bias_t_max"]))
    assert worst["bias_t_max"] < zstar, worst[["q", "method", "K", "bias_t_max", "bias"]].to_dict()


def test_stl_is_biased_for_iwae(benchmark, suite):
    """The harness's t-statistic has power: stl is a biased estimator of the
    IWAE gradient for K > 1 (estimators.gradients docs), and at the largest K
    of each q its bias t-statistic exceeds the Bonferroni z*."""
    df = suite.table()
    rows = df[(df["estimator"] == "gradient") & (df["method"] == "stl") & (df["objective"] == "iwae")
              & (df["problem"] == "lg")]
    assert len(rows) > 0
    top = rows[rows["K"] == rows.groupby("q")["K"].transform("max")]
    p, x = suite.problem("lg")
    q = make_q(p, x, top["q"].iloc[0])
    benchmark.pedantic(estimators.gradient, args=(p, x, q, int(top["K"].iloc[0]), 100, "stl", "iwae"),
                       rounds=3, iterations=1, warmup_rounds=1)
    zstar = bonferroni_z(int(rows["n_params"].sum()))
    benchmark.extra_info.update(t={r.q: r.bias_t_max for r in top.itertuples()}, z_star=zstar)
    assert (top["bias_t_max"] > zstar).all(), top[["q", "K", "bias_t_max"]]
    # ... while for K = 1 (where stl is the unbiased ELBO gradient) it is not detected:
    k1 = rows[rows["K"] == 1]
    assert (k1["bias_t_max"] < zstar).all(), k1[["q", "bias_t_max"]]
