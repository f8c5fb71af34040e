"""The trust columns of a sweep row (issue 12): PSIS k-hat and the exact ESS limit.

Expected values: k-hat from estimators.weight_stats called directly with the
cell's seed (the streaming k-hat is itself tested against ArviZ in
test_psis.py), the ESS limit from the problem's own exact ``ess_limit``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bench
import estimators
from bench import runner
from estimators.psis import khat_threshold


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    sweep = bench.Sweep(problems={"lg": {"family": "LinearGaussian", "D": 4, "d": 2, "seed": 3, "x_seed": 1}},
                        q=["posterior", "prior", "scale:0.6"], estimators=["importance_sampling", "elbo"],
                        K=[10, 2000], R=60)
    return sweep, bench.run(sweep, out=tmp_path_factory.mktemp("diag"), progress=False)


def test_khat_columns_equal_weight_stats_khat_with_the_cells_seed(table):
    sweep, df = table
    for cell in sweep.cells():
        row = df[df.cell_id == cell.cell_id].iloc[0]
        p, x = cell.spec.build()
        khat = estimators.weight_stats(p, x, runner.cell_q(cell.spec, cell.q), cell.K, cell.R, seed=cell.seed).khat
        finite = khat[np.isfinite(khat)]
        assert row["khat_threshold"] == pytest.approx(khat_threshold(cell.K))
        if finite.size:
            assert row["khat"] == pytest.approx(finite.mean(), rel=1e-12)
            assert row["khat_unreliable"] == pytest.approx(np.mean(finite > khat_threshold(cell.K)))
        else:
            assert math.isnan(row["khat"]) and math.isnan(row["khat_unreliable"])


def test_khat_separates_a_light_tail_from_an_infinite_variance(table):
    """prior: Var_q[w] finite (k < 1/2); scale:0.6: q narrower than sqrt(1/2) of the posterior, Var_q[w] = inf."""
    _, df = table
    big = df[(df.K == 2000) & (df.estimator == "importance_sampling")].set_index("q")
    assert big.loc["prior", "khat"] < 0.5 < big.loc["scale:0.6", "khat"]
    assert big.loc["scale:0.6", "khat_unreliable"] > big.loc["prior", "khat_unreliable"]
    assert math.isnan(big.loc["posterior", "khat"])  # equal weights: no tail to fit


def test_ess_limit_is_the_problems_exact_limit(table):
    sweep, df = table
    for cell in sweep.cells():
        p, x = cell.spec.build()
        q = runner.cell_q(cell.spec, cell.q)
        row = df[df.cell_id == cell.cell_id].iloc[0]
        assert row["ess_limit"] == pytest.approx(p.ess_limit(x, q), rel=1e-9, abs=1e-12)
    big = df[(df.K == 2000) & (df.q == "prior")].iloc[0]
    # ESS/K at K = 2000 is close to its limit (the delta method: within a few SE of the replicates' mean)
    assert abs(big["ess"] / 2000 - big["ess_limit"]) < 5 * big["ess_se"] / 2000 + 0.02


def test_equal_weights_have_no_tail_not_an_error():
    from problems import LinearGaussian

    p = LinearGaussian.random(4, 2, seed=0)
    x = p.sample(1, seed=0)[0]
    khat = estimators.weight_stats(p, x, p.posterior(x), 1000, 4, seed=0).khat
    assert np.isinf(khat).all()


def test_registered_jvi_renyi_and_cubo_cells_carry_their_exact_truths(tmp_path):
    sweep = bench.Sweep(problems={"lg": {"family": "LinearGaussian"}, "gm": {"family": "GaussianMixture"}},
                        q=["prior"], estimators=["jackknife", "renyi_bound", "cubo"], K=[10], R=20,
                        options={"alpha": [0.5, -1.0], "order": [1, 2], "n": [2, 3]})
    df = bench.run(sweep, out=tmp_path, progress=False)
    assert len(df) == 2 * (2 + 2 + 2)
    for _, row in df.iterrows():
        p, x = sweep.problems[row["problem"]].build()
        q = p.prior()
        expected = {"jackknife": lambda: p.log_marginal(x), "renyi_bound": lambda: p.renyi_bound(x, q, row["alpha"]),
                    "cubo": lambda: p.cubo(x, q, row["n"])}[row["estimator"]]()
        assert row["truth"] == pytest.approx(expected, rel=1e-12)
    lg = df[df.problem == "lg"].set_index(["estimator", "alpha"])
    # L_{-1} = (1/2) log E_q[w^2] = CUBO_2: the same exact value through two formulas
    assert lg.loc[("renyi_bound", -1.0), "truth"] == pytest.approx(df[(df.problem == "lg") & (df.n == 2)].truth.iloc[0])
