r"""The Jensen gap equals the KL divergence, numerically.

For each problem and each q of the grid, the Monte Carlo gap
:math:`\log p(x) - \overline{\widehat{\mathrm{ELBO}}}` (pooled over the K of
the sweep, ``bench.analysis.jensen_table``) must equal the exact
KL(q || p(z|x)) -- computed by ``p.kl`` without going through the ELBO or
log p(x) -- within ``TOLERANCE_SE`` = 4 standard errors.

The slope of gap on KL: a weighted least-squares line gap = a + b KL with
weights 1/SE^2 (``bench.metrics.wls_line``).  "b = 1 within its standard
error" is made a fair test with a fixed seed as follows: the per-point SEs are
measured, so b's SE is the known-variance WLS SE, and under the hypothesis
gap = KL the estimate b is normal around 1 with that SE.  Requiring
|b - 1| < 1 SE would fail 32% of fixed seeds by chance; we require
|b - 1| < 4 SE (false alarm 6e-5), and likewise |a| < 4 SE(a).  The test
still has power: a gap of 1.01 KL would sit at (0.01 / SE(b)) SEs, and
SE(b) is ~1e-4 -- 1e-3 here.
"""

import pytest

from bench import analysis
from bench.suite import TOLERANCE_SE

PROBLEMS = ["lg", "gm"]


def _jensen(df):
    jt = analysis.jensen_table(df)
    return jt, analysis.jensen_fit(jt)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_jensen_gap_equals_kl(benchmark, suite, problem):
    """Per q: |gap - KL| < 4 SE.  Times the computation of the gap table."""
    df = suite.table()
    jt, _ = benchmark.pedantic(_jensen, args=(df,), rounds=3, iterations=1, warmup_rounds=0)
    rows = jt[jt["problem"] == problem]
    expected_q = {q for s in suite.sweeps if "elbo" in s.estimators and problem in s.problems for q in s.q}
    assert set(rows["q"]) == expected_q
    benchmark.extra_info["gap_vs_kl"] = {
        r.q: {"kl": r.kl, "gap": r.gap, "se": r.gap_se, "z": r.z} for r in rows.itertuples()
    }
    bad = rows[rows["z"].abs() >= TOLERANCE_SE]
    assert bad.empty, f"gap differs from KL by >= {TOLERANCE_SE} SE:\n{bad.to_string()}"


@pytest.mark.parametrize("problem", PROBLEMS + ["(all)"])
def test_jensen_slope_is_one(benchmark, suite, problem):
    """gap = a + b KL by WLS: |b - 1| < 4 SE(b) and |a| < 4 SE(a) (see the module docstring)."""
    df = suite.table()
    _, fit = benchmark.pedantic(_jensen, args=(df,), rounds=3, iterations=1, warmup_rounds=0)
    row = fit[fit["problem"] == problem]
    assert len(row) == 1, f"no fit for {problem}: {fit}"
    f = row.iloc[0]
    benchmark.extra_info.update(
        slope=f["slope"], slope_se=f["slope_se"], intercept=f["intercept"], intercept_se=f["intercept_se"],
        chi2=f["chi2"], dof=int(f["dof"]), n_points=int(f["n_points"]),
    )
    assert abs(f["slope"] - 1.0) < TOLERANCE_SE * f["slope_se"], f"slope {f['slope']} ± {f['slope_se']}"
    assert abs(f["intercept"]) < TOLERANCE_SE * f["intercept_se"], f"intercept {f['intercept']} ± {f['intercept_se']}"
    # The fit has points spread over the KL axis (the test has power):
    assert f["n_points"] >= 5 and f["slope_se"] < 0.05
