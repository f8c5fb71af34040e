"""SMC and AIS in sweeps (issue 14, item 4): the built-in sweep estimators
"smc" and "ais", the two state-space problem families, their option columns,
their rows against independent truth, and the figures and report sections
drawn from them.

Independent truths: log p(x) of a LinearGaussianStateSpace as the stacked
multivariate normal of the whole series (scipy), never the Kalman filter
under test; the rows' statistics recomputed with NumPy from a direct call of
estimators.smc / estimators.ais with the cell's seed.  Statistical checks:
fixed seeds, |estimate - truth| < 5 SE with the SE from the data.
"""

from __future__ import annotations

import inspect
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import bench
import estimators
from bench.registry import get_estimator
from problems import HiddenMarkov, LinearGaussianStateSpace
from problems.families import FAMILIES
from reports import figures as F
from reports.report import _figure_specs, build_report, load_results

LGSS = {"family": "LinearGaussianStateSpace", "state_dim": 2, "obs_dim": 2, "T": 8, "seed": 3, "x_seed": 1}
SMC_OPTIONS = {"proposal": ["bootstrap", "optimal"], "resampling": ["systematic", "multinomial"]}
AIS_OPTIONS = {"steps": [2, 20], "reverse": [False, True]}


def stacked_log_marginal(p, x):
    """log N(x; E x, Cov x) of the whole series, built from the model's matrices:
    z = (z_0..z_{T-1}) is Gaussian with E z_t = A^t m0 and
    Cov(z_t, z_u) = A^(t-u) Var z_u (t >= u), Var z_t = A Var z_(t-1) A^T + Q;
    x_t = C z_t + e_t with e_t ~ N(0, R) independent."""
    A, C, Q, Rm, m0, P0, T = p.A, p.C, p.Q, p.R, p.m0, p.P0, p.T
    s, o = A.shape[0], C.shape[0]
    means, variances = [m0], [P0]
    for _ in range(1, T):
        means.append(A @ means[-1])
        variances.append(A @ variances[-1] @ A.T + Q)
    Sz = np.zeros((T * s, T * s))
    for t in range(T):
        for u in range(t + 1):
            block = np.linalg.matrix_power(A, t - u) @ variances[u]
            Sz[t * s:(t + 1) * s, u * s:(u + 1) * s] = block
            Sz[u * s:(u + 1) * s, t * s:(t + 1) * s] = block.T
    Cb = np.kron(np.eye(T), C)
    cov = Cb @ Sz @ Cb.T + np.kron(np.eye(T), Rm)
    return float(multivariate_normal(Cb @ np.concatenate(means), cov).logpdf(np.asarray(x).reshape(T * o)))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One run of two sweeps over LinearGaussianStateSpace problems (T = 8 and 16,
    the same model otherwise): smc with two proposals x two resampling schemes at
    two N, and ais forward and reverse at two step counts."""
    out = tmp_path_factory.mktemp("sequential")
    problems = {"lgss": dict(LGSS), "lgss16": {**LGSS, "T": 16}}
    sweeps = [
        bench.Sweep(problems, q=["prior"], estimators=["smc"], K=[100, 400], R=400, seed=5, options=SMC_OPTIONS),
        bench.Sweep({"lgss": dict(LGSS)}, q=["prior"], estimators=["ais"], K=[4], R=40, seed=6,
                    options=AIS_OPTIONS),
    ]
    df = bench.run(sweeps, out=out, progress=False)
    return df, out


def _cell_options(row):
    return json.loads(row["options"]) if row["options"] else {}


# --------------------------------------------------------------------------- registration


def test_smc_and_ais_are_builtin_log_marginal_estimators():
    for name in ("smc", "ais"):
        entry = get_estimator(name)
        assert entry.builtin and entry.origin == "built-in" and entry.target == "log_marginal"
        assert name in bench.ESTIMATORS
        assert "q is ignored" in entry.description
    smc_params = inspect.signature(get_estimator("smc").fn).parameters
    assert list(smc_params)[:6] == ["p", "x", "q", "K", "R", "seed"]
    assert {k: v.default for k, v in list(smc_params.items())[6:]} == F.SMC_DEFAULTS
    ais_params = inspect.signature(get_estimator("ais").fn).parameters
    assert list(ais_params)[:6] == ["p", "x", "q", "K", "R", "seed"]
    assert {k: v.default for k, v in list(ais_params.items())[6:]} == F.AIS_DEFAULTS
    # the suite's checks use the same defaults and the same large-N regime as the figures
    from bench import bench_sequential

    assert bench_sequential.SMC_DEFAULTS == F.SMC_DEFAULTS
    assert bench_sequential.LARGE_N_VARIANCE == F.FIT_MAX_VARIANCE
    # the reverse bound's honest target: documented as biased high
    assert "upper" in get_estimator("ais").fn.__doc__ and "positive by design" in get_estimator("ais").fn.__doc__


def test_options_are_crossed_per_estimator():
    """One sweep with both: each estimator gets only the options it names."""
    s = bench.Sweep({"lgss": dict(LGSS)}, q=["prior"], estimators=["smc", "ais"], K=[3], R=4,
                    options={"proposal": ["bootstrap", "optimal"], "steps": [1, 2, 3]})
    cells = s.cells()
    assert sorted(dict(c.options).get("proposal", "-") for c in cells if c.estimator == "smc") == ["bootstrap",
                                                                                                   "optimal"]
    assert sorted(dict(c.options)["steps"] for c in cells if c.estimator == "ais") == [1, 2, 3]
    assert all(set(dict(c.options)) == {"proposal"} for c in cells if c.estimator == "smc")
    assert all(set(dict(c.options)) == {"steps"} for c in cells if c.estimator == "ais")
    with pytest.raises(ValueError, match=r"^options\.leapfrog: none of this sweep's estimators"):
        bench.Sweep({"lgss": dict(LGSS)}, q=["prior"], estimators=["smc"], K=[3], R=4, options={"leapfrog": 3})


# --------------------------------------------------------------------------- the families


def test_state_space_families_build_with_documented_defaults():
    lg = FAMILIES["LinearGaussianStateSpace"]
    hm = FAMILIES["HiddenMarkov"]
    assert lg.defaults == {"state_dim": 2, "obs_dim": 2, "T": 50, "seed": 0}
    assert hm.defaults == {"S": 3, "obs_dim": 2, "T": 50, "seed": 0}
    p, x = bench.ProblemSpec("LinearGaussianStateSpace").build()
    ref = LinearGaussianStateSpace.random(2, 2, 50, seed=0)
    assert isinstance(p, LinearGaussianStateSpace) and np.array_equal(p.A, ref.A) and p.T == 50
    assert np.array_equal(x, ref.sample(1, seed=0)[0]) and x.shape == (100,)
    h, xh = bench.ProblemSpec("HiddenMarkov").build()
    refh = HiddenMarkov.random(3, 2, 50, seed=0)
    assert isinstance(h, HiddenMarkov) and np.array_equal(h.transition, refh.transition)
    assert np.array_equal(xh, refh.sample(1, seed=0)[0])
    p2, _ = bench.ProblemSpec("LinearGaussianStateSpace", {"state_dim": 3, "T": 7}).build()
    assert (p2.state_dim, p2.emission_dim, p2.T) == (3, 2, 7)
    with pytest.raises(ValueError, match=r"^problems\.a\.T: must be >= 1"):
        bench.Sweep({"a": {"family": "HiddenMarkov", "T": 0}}, q=["prior"], estimators=["smc"], K=[2], R=4)
    with pytest.raises(ValueError, match=r"^problems\.a\.S_dim: unknown parameter for LinearGaussianStateSpace"):
        bench.Sweep({"a": {"family": "LinearGaussianStateSpace", "S_dim": 2}}, q=["prior"], estimators=["smc"],
                    K=[2], R=4)


def test_bench_list_shows_the_families_and_estimators(capsys):
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("LinearGaussianStateSpace", "HiddenMarkov", "smc", "ais", "T=50"):
        assert word in out, word


# --------------------------------------------------------------------------- the rows


def test_truth_is_the_exact_log_marginal(swept):
    df, _ = swept
    for label, T in (("lgss", 8), ("lgss16", 16)):
        spec = bench.ProblemSpec(LGSS["family"], {**{k: v for k, v in LGSS.items() if k not in ("family", "x_seed")},
                                                  "T": T}, x_seed=LGSS["x_seed"])
        p, x = spec.build()
        expected = stacked_log_marginal(p, x)
        rows = df[df["problem"] == label]
        assert len(rows) > 0
        np.testing.assert_allclose(rows["truth"], expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(rows["log_marginal"], expected, rtol=0, atol=1e-9)


def test_option_columns(swept):
    df, _ = swept
    for col in ("proposal", "resampling", "steps", "reverse"):
        assert col in df.columns, col
    smc, ais = df[df["estimator"] == "smc"], df[df["estimator"] == "ais"]
    assert len(smc) == 2 * 2 * 2 * 2 and len(ais) == 2 * 2
    assert set(smc["proposal"]) == {"bootstrap", "optimal"} and set(smc["resampling"]) == {"systematic",
                                                                                          "multinomial"}
    assert set(ais["steps"].astype(int)) == {2, 20} and set(ais["reverse"].astype(bool)) == {False, True}
    assert smc["steps"].isna().all() and ais["proposal"].isna().all()
    assert set(df["target"]) == {"log_marginal"} and not df["user"].any()


def test_rows_equal_the_direct_call_with_the_cell_seed(swept):
    df, _ = swept
    for _, row in df.iterrows():
        p, x = bench.ProblemSpec(row["family"], json.loads(row["problem_params"]), x_seed=int(row["x_seed"])).build()
        opts = _cell_options(row)
        if row["estimator"] == "smc":
            est = estimators.smc(p, x, int(row["K"]), int(row["R"]), seed=int(row["seed"]), **opts)
        else:
            est = estimators.ais(p, x, int(row["K"]), int(row["R"]), opts["steps"], seed=int(row["seed"]),
                                 reverse=opts["reverse"])
        assert row["mean"] == np.mean(est)
        assert row["variance"] == pytest.approx(np.var(est, ddof=1), rel=1e-12)
        assert row["bias"] == pytest.approx(np.mean(est) - row["truth"], rel=1e-12, abs=1e-12)
        u = np.exp(est - row["truth"])
        assert row["ratio_bias"] == pytest.approx(u.mean() - 1, rel=1e-10, abs=1e-12)


def test_smc_evidence_is_unbiased_for_every_proposal_and_scheme(swept):
    """E[Z_hat / p(x)] = 1: |ratio_bias| < 5 SE in every smc cell.  The cells'
    Var(log Z_hat) is small (checked), so the sample SE of Z_hat/p is reliable."""
    df, _ = swept
    smc = df[df["estimator"] == "smc"]
    assert (smc["variance"] < 1.0).all(), smc[["problem", "K", "variance"]]
    z = smc["ratio_bias"] / smc["ratio_bias_se"]
    assert (z.abs() < 5).all(), smc.assign(z=z)[["problem", "K", "proposal", "resampling", "ratio_bias", "z"]]
    # and log Z_hat itself is biased low (Jensen), detectably at the smallest N and longest series
    worst = smc[(smc["problem"] == "lgss16") & (smc["K"] == 100) & (smc["proposal"] == "bootstrap")]
    assert (worst["bias"] < -3 * worst["bias_se"]).all(), worst[["bias", "bias_se"]]


def test_ais_reverse_bounds_above_forward(swept):
    df, _ = swept
    ais = df[df["estimator"] == "ais"].assign(steps=lambda d: d["steps"].astype(int),
                                              reverse=lambda d: d["reverse"].astype(bool))
    for steps, g in ais.groupby("steps"):
        fwd, rev = g[~g["reverse"]].iloc[0], g[g["reverse"]].iloc[0]
        assert rev["mean"] >= fwd["mean"], (steps, fwd["mean"], rev["mean"])
        assert fwd["mean"] - fwd["truth"] < 5 * fwd["mean_se"], "forward is a stochastic lower bound"
        assert rev["mean"] - rev["truth"] > -5 * rev["mean_se"], "reverse is a stochastic upper bound"
    gap = {s: g[g["reverse"]]["mean"].iloc[0] - g[~g["reverse"]]["mean"].iloc[0] for s, g in ais.groupby("steps")}
    assert gap[20] < gap[2]


# --------------------------------------------------------------------------- the figures


def test_power_law_fit_matches_numpy():
    rng = np.random.default_rng(0)
    x = np.array([10.0, 30, 100, 300, 1000])
    v = 3.0 / x * np.exp(0.05 * rng.standard_normal(5))
    se = 0.1 * v * (1 + rng.random(5))
    fit = F.power_law_fit(x, v, se)
    coef, cov = np.polyfit(np.log(x), np.log(v), 1, w=v / se, cov="unscaled")
    assert fit["slope"] == pytest.approx(coef[0], rel=1e-12) and fit["intercept"] == pytest.approx(coef[1], rel=1e-10)
    assert fit["slope_se"] == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    resid = (np.log(v) - np.polyval(coef, np.log(x))) / (se / v)
    assert fit["chi2"] == pytest.approx(resid @ resid, rel=1e-9) and fit["dof"] == 3
    assert F.power_law_fit([1.0, 1.0], [1.0, 2.0], [0.1, 0.1]) is None
    assert F.power_law_fit([1.0, 2.0, 3.0], [1.0, -1.0, np.nan], [0.1, 0.1, 0.1]) is None


def _synthetic_smc(rows):
    base = {"estimator": "smc", "family": "LinearGaussianStateSpace", "q": "prior", "R": 100, "bias_se": 0.01,
            "truth": -10.0, "mean_se": 0.01}
    out = []
    for r in rows:
        r = {**base, **r}
        r.setdefault("problem_params", json.dumps({"T": r.pop("T", 50), "seed": 0}))
        r.setdefault("bias", -r["variance"] / 2)
        out.append(r)
    return pd.DataFrame(out)


def _lines(fig, prefix):
    return {line.get_gid(): line for ax in fig.axes for line in ax.lines if (line.get_gid() or "").startswith(prefix)}


def _texts(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_variance_vs_n_fits_the_table_and_drops_nothing_silently():
    Ns = [10, 100, 1000, 10000]
    rows = [{"problem": "a", "K": n, "variance": 50.0 / n, "variance_se": 5.0 / n,
             "options": json.dumps({"proposal": "bootstrap"})} for n in Ns]
    rows.append({"problem": "a", "K": 30, "variance": 0.0, "variance_se": 0.0,
                 "options": json.dumps({"proposal": "bootstrap"})})
    df = _synthetic_smc(rows)
    fig = F.smc_variance_vs_n(df)
    line = _lines(fig, "fit:variance:a:bootstrap / systematic")
    assert len(line) == 1  # the fit of the points with Var <= 1 (N = 100 .. 10000): slope exactly -1
    notes = _texts(fig)  # the fit table and the notes, under the panel
    assert re.search(r"^bootstrap / systematic: slope -1\.00 ± 0\.\d\d \([+-]0\.0 SE from -1\), χ²/dof 0\.0/1$",
                     notes, re.M), notes
    assert "bootstrap / systematic: 1 point(s) with variance <= 0 or not finite (N = 30) not drawn" in notes
    assert "(1 hollow point(s) not fitted)" in notes
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "bootstrap / systematic"


def test_variance_vs_t_averages_over_observations():
    rows = []
    for T in (10, 100):
        for xs, scale in ((0, 0.5), (1, 1.5)):
            rows.append({"problem": f"T{T}x{xs}", "K": 300, "T": T, "x_seed": xs, "variance": 0.01 * T * scale,
                         "variance_se": 0.001 * T})
    df = _synthetic_smc(rows)
    assert F.sequential_available(df)["smc_variance_vs_t"]
    fig = F.smc_variance_vs_t(df)
    (gid, line), = _lines(fig, "variance_T:").items()
    y = line.get_ydata()
    np.testing.assert_allclose(line.get_xdata(), [10, 100])
    np.testing.assert_allclose(y, [0.1, 1.0])  # the mean over the two series, exactly c T
    assert re.search(r"^bootstrap / systematic: slope 1\.00 ± ", _texts(fig), re.M), _texts(fig)


def test_figures_from_a_sweep_render(swept, tmp_path):
    df, _ = swept
    have = F.sequential_available(df)
    assert have == {"smc_variance_vs_n": True, "smc_variance_vs_t": True, "smc_bias_vs_variance": True,
                    "smc_proposals": True, "ais_sandwich": True}
    for name in have:
        fig = getattr(F, name)(df)
        fig.savefig(tmp_path / f"{name}.png", dpi=60)
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
        assert fig.legends, f"{name}: its legend is outside the panels (a figure legend)"
    # the sandwich's gap is reverse mean - forward mean of the table
    fig = F.ais_sandwich(df)
    (gid, line), = _lines(fig, "gap:").items()
    ais = df[df["estimator"] == "ais"].assign(reverse=lambda d: d["reverse"].astype(bool))
    expected = [ais[(ais["steps"] == s) & ais["reverse"]]["mean"].iloc[0]
                - ais[(ais["steps"] == s) & ~ais["reverse"]]["mean"].iloc[0] for s in (2, 20)]
    np.testing.assert_allclose(line.get_ydata(), expected)
    # bias vs -Var/2: every smc and forward ais row is drawn, the reverse rows are counted
    fig = F.smc_bias_vs_variance(df)
    drawn = sum(len(line.get_xdata()) for gid, line in _lines(fig, "residual:").items())
    assert drawn == int((df["estimator"] == "smc").sum()) + 2
    assert "2 reverse (BDMC upper-bound) AIS row(s) not drawn" in _texts(fig)


def test_report_has_the_sequential_figures(swept):
    _, out = swept
    stems = [s[0] for s in _figure_specs(load_results(out))]
    for stem in ("smc_variance_vs_N", "smc_variance_vs_T", "smc_bias_vs_variance", "smc_bootstrap_vs_optimal",
                 "ais_bdmc_sandwich"):
        assert stem in stems
    paths = build_report(out)
    names = {f.name for f in paths["figures"]}
    assert {"smc_variance_vs_N.png", "ais_bdmc_sandwich.png"} <= names
    assert "AIS: the BDMC sandwich vs steps" in paths["html"].read_text()
