r"""The lecture's claims (``bench.claims``), computed into the suite's results
directory -- results/ under ``pytest --benchmark-only``, a temporary directory
(at smoke sizes) under plain ``pytest`` -- one timed round each, before the
report (``bench_report.py``, which runs last) draws them.

What is asserted is that each claim's computation ran and that its recorded
verdict is the one its rule gives on its recorded numbers, and that those
numbers are the ones in its tables (re-derived here from the Parquet files).
Whether a claim *held* is the measurement, not a test: it is never asserted.
"""

import math

import numpy as np
import pandas as pd
import pytest

from bench import claims as CL

TABLES = {
    "uniform_vs_is": {"errors", "errors_by_image", "images"},
    "single_sample_bias": {"bias"},
    "elbo_plus_kl": {"gap"},
    "lecture_question": {"summary", "densities"},
    "reparam_variance": {"variance"},
    "vae_learns": {"curves"},
    "score_steps_small": {"steps", "curves"},
    "score_steps_large": {"steps", "curves"},
    "vae_learns_digits": {"curves", "directions", "latent", "reconstructions"},
    "analytic_kl_variance": {"variance"},
    "beta_vae": {"optima", "curves"},
    "principal_axes": {"columns", "spectrum", "images"},
}


def _close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


def _numbers_match_tables(cid, n, t):
    """Each number a rule reads, re-derived from the claim's own tables."""
    if cid == "uniform_vs_is":
        e = t["errors"]
        at = e[e["K"] == n["K_rule"]].set_index("q")["rmse"]
        assert _close(n["rmse_uniform"], at["uniform (φ = 0.5)"]) and _close(n["rmse_is"], at["φ = posterior marginals"])
        assert math.isfinite(n["theory_z"]) and n["theory_se_exact"] > 0
        b = t["errors_by_image"]
        one = b[b["q"] == "φ = 1"]
        # q = Bernoulli(1) is deterministic: every replicate is log p(x, z = 1), each image's exact error
        assert np.allclose(one["mean_error"], one["exact_error"], atol=1e-9) and (one["sd_error"] < 1e-9).all()
        assert _close(n["error_phi_one_exact"], one.groupby("image")["exact_error"].first().mean())
        # the pooled RMSE is the root of the images' mean squared errors (equal R per image)
        pooled = (b["rmse"] ** 2).groupby([b["q"], b["K"]]).mean() ** 0.5
        assert np.allclose(e.set_index(["q", "K"])["rmse"], pooled.loc[e.set_index(["q", "K"]).index], rtol=1e-10)
    elif cid == "single_sample_bias":
        k1 = t["bias"].sort_values("K").iloc[0]
        assert k1["K"] == 1 and _close(n["mean_log_p_hat_K1"], k1["mean_log_p_hat"])
        assert _close(n["z_vs_elbo"], (k1["mean_log_p_hat"] - n["elbo"]) / n["se_K1_exact"])
        assert _close(n["z_below_log_p"], (n["log_p_x"] - k1["mean_log_p_hat"]) / n["se_K1_exact"])
    elif cid == "elbo_plus_kl":
        g = t["gap"]
        assert _close(n["max_abs_z"], g["z"].abs().max()) and _close(n["max_identity_error"], g["identity_error"].max())
        assert np.allclose(g["z"], (g["gap"] - g["kl"]) / g["gap_se"], rtol=1e-12, atol=0)
    elif cid == "lecture_question":
        s = t["summary"].set_index(["reading", "role"])["kl"]
        for reading in ("variance", "sd"):
            for role in ("good", "bad"):
                assert _close(n[f"kl_{role}_{reading}_reading"], s[reading, role])
    elif cid == "reparam_variance":
        sc = t["variance"][t["variance"]["method"] == "score"]
        lower = sc["ratio_to_reparam"] - CL.RATIO_SE * sc["ratio_to_reparam_se"]
        assert _close(n["min_ratio_lower_bound"], lower.min())
    elif cid == "vae_learns":
        c = t["curves"]
        last = c.sort_values("step").groupby("run", sort=False).tail(1).set_index("run")
        vae = [r for r in last.index if r.startswith("amortized")][0]
        svi = [r for r in last.index if r.startswith("SVI")][0]
        assert _close(n["vae_ll_below_max"], last.loc[vae, "ll_below_max"])
        assert _close(n["svi_ll_below_max"], last.loc[svi, "ll_below_max"])
        assert _close(n["vae_gap"], last.loc[vae, "gap"]) and _close(n["svi_gap"], last.loc[svi, "gap"])
    elif cid in _DIGITS_CHECKS:
        _DIGITS_CHECKS[cid](n, t)
    else:  # score_steps_*
        s = t["steps"]
        for method in ("reparam", "score_loo", "score"):
            assert _close(n[f"median_steps_{method}"], s.loc[s["method"] == method, "steps_to_reach"].median())
        # a run "reached" exactly when its recorded ELBO came within its tolerance
        c = t["curves"]
        for r in s.itertuples():
            run = c[(c["method"] == r.method) & (c["seed"] == r.seed)].sort_values("step")
            hit = run[run["elbo_below_max"] <= r.tolerance]
            assert r.reached == (len(hit) > 0)
            if r.reached:
                assert r.steps_to_reach == hit["step"].iloc[0]


@pytest.mark.parametrize("claim_id", CL.CLAIM_IDS)
def test_claim(benchmark, suite, claim_id):
    """Computes one claim (one timed round), writes it into the results
    directory, reads it back and checks it: the computation ran (finite
    numbers, non-empty tables), the recorded verdict is its rule applied to
    the recorded numbers, and those numbers are the ones in its tables."""
    claim = benchmark.pedantic(CL.compute_claim, args=(claim_id, suite.mode), rounds=1, iterations=1,
                               warmup_rounds=0)
    CL.write_claim(suite.out, claim)
    entry = CL.read_claims(suite.out)[claim_id]
    numbers = entry["numbers"]
    assert entry["mode"] == suite.mode and entry["seconds"] > 0
    assert entry["verdict"] in (CL.HELD, CL.NOT_HELD)
    assert entry["verdict"] == CL.verdict(claim_id, numbers) == claim.verdict
    for k, v in numbers.items():
        if isinstance(v, float):
            assert not math.isnan(v), k
    tables = {name: pd.read_parquet(suite.out / f) for name, f in entry["tables"].items()}
    assert set(tables) == TABLES[claim_id]
    assert all(len(df) > 0 for df in tables.values())
    _numbers_match_tables(claim_id, numbers, tables)
    benchmark.extra_info.update(verdict=entry["verdict"], mode=suite.mode,
                                numbers={k: v for k, v in numbers.items() if isinstance(v, (int, float, bool))})


# --------------------------------------------------------------------------- the digits claims
def _check_vae_learns_digits(n, t):
    last = t["curves"].sort_values("step").groupby("run", sort=False).tail(1).set_index("run")
    for key, start in (("amortized_reparam", "amortized VAE (reparam)"), ("svi_reparam", "SVI per datapoint (reparam)")):
        run = [r for r in last.index if r.startswith(start)][0]
        assert _close(n[f"{key}_ll_below_max"], last.loc[run, "ll_below_max"])


def _check_analytic_kl(n, t):
    v = t["variance"]
    assert _close(n["max_exact_ratio"], v["ratio"].max())
    assert _close(n["max_abs_z_mean"], np.abs(v[["z_mean_mc", "z_mean_analytic"]].values).max())
    assert _close(n["max_abs_z_variance"], np.abs(v[["z_var_mc", "z_var_analytic"]].values).max())


def _check_beta_vae(n, t):
    o = t["optima"].sort_values("beta")
    assert _close(n["beta1_minus_ppca"], abs(o.loc[o["beta"] == 1.0, "objective"].iloc[0] - n["ppca_train_ll"]))
    assert _close(n["max_other_ll_minus_ppca"], o.loc[o["beta"] != 1.0, "train_ll_minus_ppca"].max())
    assert list(o["active"]) == n["active_by_beta"]
    assert _close(n["fit_objective_below_optimum"], t["curves"].sort_values("step")["objective_below_optimum"].iloc[-1])


def _check_principal_axes(n, t):
    c = t["columns"]
    act, col = c[c["active"]], c[~c["active"]]
    assert len(act) == n["expected_active"]
    if len(act):
        assert _close(n["max_column_angle_deg"], act["angle_deg"].max())
    if len(col):
        assert _close(n["max_collapsed_kl"], col["kl"].max())
        assert _close(n["max_collapsed_norm_ratio"], col["norm"].max() / act["optimal_norm"].min())


_DIGITS_CHECKS = {
    "vae_learns_digits": _check_vae_learns_digits,
    "analytic_kl_variance": _check_analytic_kl,
    "beta_vae": _check_beta_vae,
    "principal_axes": _check_principal_axes,
}
