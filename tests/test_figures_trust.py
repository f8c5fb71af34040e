"""The trust figures (reports.figures_trust) on tables whose answers are known.

The rows are made by hand, so what each figure must draw is known exactly: a
jackknife bias of exactly c K^-(order+1) must give that slope, a cell whose
k-hat is above its K's threshold must be ringed, the sandwich must draw the
exact lines at the table's values and say when CUBO is infinite.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from reports import figures_trust as T
from reports.report import FIGURE_SECTIONS

KS = [3, 10, 30, 100, 300, 1000]


def _row(estimator, K, bias, se=None, q="q0", problem="p", options="", truth=-10.0, **extra):
    se = abs(bias) / 50 if se is None else se
    base = dict(problem=problem, q=q, estimator=estimator, K=K, options=options, bias=bias, bias_se=se,
                mean=truth + bias, mean_se=se, truth=truth, log_marginal=-10.0, elbo_exact=-11.0,
                khat=np.nan, khat_threshold=min(1 - 1 / math.log10(K), 0.7) if K > 1 else np.nan)
    base.update(extra)
    return base


def _jvi_table():
    rows = []
    for K in KS:
        rows.append(_row("importance_sampling", K, -0.8 / K))
        for order in (1, 2):
            rows.append(_row("jackknife", K, -0.5 * K ** -(order + 1.0), options=json.dumps({"order": order})))
    return pd.DataFrame(rows)


def test_jvi_slopes_recover_exact_power_laws():
    df = _jvi_table()
    series = {label.split()[0] + label.split()[2] if label.startswith("JVI") else "IS": rows
              for label, _, rows in T._bias_series(df, "p", "q0")}
    assert set(series) == {"IS", "JVI1", "JVI2"}
    for name, slope in (("IS", -1.0), ("JVI1", -2.0), ("JVI2", -3.0)):
        fit = T.jvi_slopes(series[name])
        assert fit["slope"] == pytest.approx(slope, abs=1e-9)
        assert fit["n"] == len(KS)


def test_jvi_fit_leaves_out_biases_within_two_se():
    df = _jvi_table()
    rows = df[df["estimator"] == "importance_sampling"].copy()
    rows.loc[rows["K"] >= 300, "bias_se"] = 1.0  # |bias| << 2 SE at the two largest K
    fit = T.jvi_slopes(rows)
    assert fit["n"] == len(KS) - 2


def test_jvi_figure_draws_one_fit_per_estimator():
    fig = T.jvi_bias_vs_k(_jvi_table())
    gids = [line.get_gid() for ax in fig.axes for line in ax.lines if line.get_gid()]
    assert sum(g.startswith("jvi-fit:") for g in gids) == 3


def test_khat_figure_rings_the_unreliable_cells():
    rows = []
    for K, k_good, k_bad in ((100, 0.2, 0.9), (1000, 0.1, 0.8)):
        rows.append(_row("importance_sampling", K, -0.1, q="good", khat=k_good))
        rows.append(_row("importance_sampling", K, -0.1, q="bad", khat=k_bad))
    df = pd.DataFrame(rows)
    fig = T.khat_vs_q(df)
    ax = fig.axes[0]
    rings = [line for line in ax.lines if line.get_marker() == "o" and line.get_markerfacecolor() == "none"]
    ringed = sorted(float(y) for line in rings for y in line.get_ydata())
    assert ringed == [0.8, 0.9]  # exactly the two cells above their K's threshold
    thresholds = sorted(round(line.get_ydata()[0], 6) for line in ax.lines
                        if line.get_linestyle() == "--")
    assert thresholds == [0.5, 0.666667]  # min(1 - 1/log10 K, 0.7) at K = 100, 1000


def test_khat_figure_needs_a_finite_khat():
    df = pd.DataFrame([_row("importance_sampling", 10, -0.1)])
    with pytest.raises(ValueError, match="^df: "):
        T.khat_vs_q(df)


def _sandwich_table(cubo_truth):
    rows = []
    for K in KS:
        rows.append(_row("importance_sampling", K, -1.0 / K))
        rows.append(_row("elbo", K, 0.0, se=0.01, truth=-11.0))
        rows.append(_row("cubo", K, -2.0 / K, truth=cubo_truth, options=json.dumps({"n": 2})))
    return pd.DataFrame(rows)


def test_sandwich_draws_the_exact_lines():
    fig = T.bounds_sandwich(_sandwich_table(-9.0))
    ax = fig.axes[0]
    flat = {round(float(line.get_ydata()[0]), 9) for line in ax.lines
            if len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]}
    assert {-11.0, -10.0, -9.0} <= flat


def test_sandwich_says_when_cubo_is_infinite():
    fig = T.bounds_sandwich(_sandwich_table(math.inf))
    assert "CUBO_2 = +inf" in fig._supxlabel.get_text()


def test_the_report_registers_the_trust_figures():
    assert T.trust_specs in FIGURE_SECTIONS
    df = pd.concat([_jvi_table(), _sandwich_table(-9.0)], ignore_index=True)
    stems = [s[0] for s in T.trust_specs({"df": df})]
    assert stems == ["bounds_sandwich", "jvi_bias_vs_K"]  # no finite k-hat in these rows
