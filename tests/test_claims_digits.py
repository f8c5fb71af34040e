"""The claims on the real digits (vae_learns_digits, analytic_kl_variance, beta_vae,
principal_axes): their rules go either way, they compute at smoke sizes, their
exact numbers agree with independent computations, and their figures draw
their tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bench.claims as CL
from bench.claims import _digits
from reports import claims as RC
from reports import claims_digits as RD

IDS = ("vae_learns_digits", "analytic_kl_variance", "beta_vae", "principal_axes")

RULE_CASES = {
    "vae_learns_digits": (dict(amortized_reparam_ll_below_max=0.3, svi_reparam_ll_below_max=0.4),
                          dict(svi_reparam_ll_below_max=0.6)),
    "analytic_kl_variance": (dict(max_exact_ratio=0.5, max_abs_z_mean=1.0, max_abs_z_variance=2.0),
                             dict(max_exact_ratio=1.2)),
    "beta_vae": (dict(beta1_minus_ppca=1e-13, max_other_ll_minus_ppca=-0.1, active_non_increasing=True,
                      active_at_largest_beta=2, d=10, fit_objective_below_optimum=0.2),
                 dict(fit_objective_below_optimum=0.7)),
    "principal_axes": (dict(max_subspace_angle_deg=3.0, max_column_angle_deg=10.0, distinct_eigenvectors=True,
                            expected_collapsed=2, max_collapsed_norm_ratio=0.05, max_collapsed_kl=0.01),
                       dict(max_column_angle_deg=25.0)),
}


@pytest.mark.parametrize("cid", IDS)
def test_each_rule_can_go_either_way(cid):
    held, change = RULE_CASES[cid]
    assert CL.verdict(cid, held) == "held"
    assert CL.verdict(cid, {**held, **change}) == "did not hold"


@pytest.fixture(scope="module")
def smoke():
    return {cid: CL.compute_claim(cid, "smoke") for cid in IDS}


def test_registered_with_a_spec_and_settings():
    for cid in IDS:
        assert cid in CL.CLAIM_IDS and CL.SPECS[cid]["rule"].startswith("Held iff")
        assert CL.SPECS[cid]["figure"] in RD.FIGURES


def test_ppca_heldout_log_likelihood_against_scipy():
    m, ll_train, ll_test = _digits.ppca(5)
    X_train, X_test, _ = _digits.data()
    mvn = stats.multivariate_normal(m.b, m.W @ m.W.T + np.diag(m.psi))
    assert ll_test == pytest.approx(float(np.mean(mvn.logpdf(X_test))), abs=1e-9)
    assert ll_train == pytest.approx(float(np.mean(mvn.logpdf(X_train))), abs=1e-9)
    assert X_train.min() >= 0 and X_train.max() <= 1 and len(X_train) + len(X_test) == 1797


def test_smoke_numbers(smoke):
    n = smoke["vae_learns_digits"].numbers
    # a fit records the exact log-likelihood of its model: nothing beats the maximum
    for key in ("amortized_reparam", "amortized_score_loo", "svi_reparam", "svi_score_loo"):
        assert n[f"{key}_ll_below_max"] > -1e-9
    t = smoke["analytic_kl_variance"].tables["variance"]
    np.testing.assert_allclose(t["ratio"], t["var_analytic"] / t["var_mc"])
    assert smoke["analytic_kl_variance"].numbers["max_abs_z_mean"] < 5
    b = smoke["beta_vae"].numbers
    assert b["beta1_minus_ppca"] < 1e-9 and b["max_other_ll_minus_ppca"] < 0
    pa = smoke["principal_axes"].tables["columns"]
    assert len(pa) == smoke["principal_axes"].numbers["d"]


def _gids(fig, prefix):
    return {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix)}


def test_figures_draw_their_tables(smoke):
    c = smoke["vae_learns_digits"]
    fig = RC.claim_figure({"figure": "digits_vae", "tables": c.tables, "numbers": c.numbers})
    curves = c.tables["curves"]
    run = curves["run"].iloc[0]
    line = _gids(fig, "gap:")[f"gap:{run}"]
    np.testing.assert_allclose(line.get_ydata(), np.maximum(curves[curves["run"] == run]["ll_below_max"], 1e-4))
    c = smoke["analytic_kl_variance"]
    fig = RC.claim_figure({"figure": "analytic_kl", "tables": c.tables, "numbers": c.numbers})
    t = c.tables["variance"]
    img = t["image"].iloc[0]
    np.testing.assert_allclose(_gids(fig, "ratio:")[f"ratio:{img}"].get_ydata(),
                               t[t["image"] == img].sort_values("c")["ratio"])
    c = smoke["beta_vae"]
    fig = RC.claim_figure({"figure": "beta_vae", "tables": c.tables, "numbers": c.numbers})
    np.testing.assert_allclose(_gids(fig, "active")["active"].get_ydata(),
                               c.tables["optima"].sort_values("beta")["active"])
    c = smoke["principal_axes"]
    fig = RC.claim_figure({"figure": "principal_axes", "tables": c.tables, "numbers": c.numbers})
    assert len(_gids(fig, "spectrum")) == 1
    for f in (fig,):
        for ax in f.axes:
            if ax.get_lines():
                assert ax.get_xlabel() and ax.get_ylabel()
