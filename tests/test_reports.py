"""reports: the figures draw the table's numbers (perturb the DataFrame and
the drawn data follow), carry labels, log axes, legends and titles; the
report builder writes self-contained HTML and Markdown."""

import json

import numpy as np
import pytest

import bench
from bench import analysis
from reports import figures as F
from reports.report import build_report, render_documents


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    problems = {
        "lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2},
        "gm": {"family": "GaussianMixture", "C": 3, "D": 2, "seed": 5, "x_seed": 6},
    }
    sweeps = [
        bench.Sweep(problems, q=["posterior", "prior", "shift:1", "scale:2"], estimators=["importance_sampling", "elbo"],
                    K=[1, 10, 100], R=40),
        bench.Sweep(problems, q=["meanfield+shift:1"], estimators=["gradient"], K=[2, 10], R=20,
                    methods=["score", "score_loo", "reparam", "stl"], objectives=["elbo", "iwae"]),
    ]
    df = bench.run(sweeps, out=out, progress=False)
    return out, df


def _line(fig, gid, panel=0):
    """The line with this gid in axes ``panel`` (problems are panels in table order: lg, gm)."""
    found = [ln for ln in fig.axes[panel].lines if ln.get_gid() == gid]
    assert len(found) == 1, f"{len(found)} lines {gid!r} in panel {panel}"
    return found[0]


def _rows(df, **eq):
    m = np.ones(len(df), bool)
    for k, v in eq.items():
        m &= (df[k] == v).to_numpy()
    return df[m].sort_values("K")


def test_variance_figure_draws_the_table(results):
    _, df = results
    fig = F.variance_vs_k(df, "importance_sampling")
    rows = _rows(df, estimator="importance_sampling", problem="lg", q="prior")
    line = _line(fig, "variance:prior")
    assert np.array_equal(line.get_ydata(), rows["variance"].to_numpy())
    assert np.array_equal(line.get_xdata(), rows["K"].to_numpy(float))
    df2 = df.copy()
    df2.loc[rows.index, "variance"] *= 10.0
    line2 = _line(F.variance_vs_k(df2, "importance_sampling"), "variance:prior")
    assert np.allclose(line2.get_ydata(), 10.0 * line.get_ydata())
    # the ELBO figure draws the exact Var[log w]/K beside the measured points
    fig = F.variance_vs_k(df, "elbo")
    erows = _rows(df, estimator="elbo", problem="lg", q="prior")
    ref = _line(fig, "reference:prior")
    assert np.allclose(ref.get_ydata(), erows["var_log_w"] / erows["K"])


def test_bias_figure_draws_measured_and_predicted(results):
    _, df = results
    rows = _rows(df, estimator="importance_sampling", problem="gm", q="prior")
    fig = F.bias_vs_k(df)
    pred = _line(fig, "prediction:prior", panel=1)
    assert np.allclose(pred.get_ydata(), -rows["bias_pred"].to_numpy())
    df2 = df.copy()
    df2.loc[rows.index, "bias_pred"] *= 3.0
    assert np.allclose(_line(F.bias_vs_k(df2), "prediction:prior", panel=1).get_ydata(), 3.0 * pred.get_ydata())
    measured = _line(fig, "measured:prior", panel=1)
    nb = -rows["bias"].to_numpy()
    assert np.allclose(measured.get_ydata(), nb)  # every point, either sign (symmetric-log axis)
    assert fig.axes[1].get_yscale() == "symlog"


def test_jensen_figure_draws_the_gap_table(results):
    _, df = results
    jt = analysis.jensen_table(df)
    fig = F.jensen_gap_vs_kl(jt, analysis.jensen_fit(jt))
    row = jt[(jt["problem"] == "lg") & (jt["q"] == "prior")].iloc[0]
    pt = _line(fig, "gap:prior")
    assert pt.get_xdata()[0] == row["kl"] and pt.get_ydata()[0] == row["gap"]
    res = _line(fig, "residual:prior", panel=2)  # axes: gap lg, gap gm, residual lg, residual gm
    assert res.get_ydata()[0] == pytest.approx((row["gap"] - row["kl"]) / row["gap_se"])
    jt2 = jt.copy()
    jt2.loc[row.name, "gap"] *= 1.5
    assert _line(F.jensen_gap_vs_kl(jt2), "gap:prior").get_ydata()[0] == pytest.approx(1.5 * row["gap"])
    assert "slope" in fig.axes[0].get_title()


def test_gradient_figures_draw_the_table(results):
    _, df = results
    q = "meanfield+shift:1"
    rows = _rows(df, estimator="gradient", problem="lg", method="reparam", objective="elbo")
    fig = F.gradient_variance_vs_k(df, q)
    assert np.array_equal(_line(fig, "variance:reparam").get_ydata(), rows["variance"].to_numpy())
    fig = F.gradient_snr_vs_k(df, q)
    assert np.array_equal(_line(fig, "snr_median:reparam").get_ydata(), rows["snr_median"].to_numpy())
    df2 = df.copy()
    df2.loc[rows.index, "snr_median"] /= 2
    assert np.allclose(_line(F.gradient_snr_vs_k(df2, q), "snr_median:reparam").get_ydata(),
                       rows["snr_median"].to_numpy() / 2)
    with pytest.raises(ValueError, match="^q: no gradient rows"):
        F.gradient_variance_vs_k(df, "prior")


def test_throughput_figure_draws_the_table(results):
    _, df = results
    fig = F.throughput_vs_k(df)
    rows = df[(df["problem"] == "lg") & (df["estimator"] == "elbo")]
    med = rows.groupby("K")["samples_per_s"].median().sort_index()
    line = _line(fig, "throughput:elbo")
    assert np.allclose(line.get_ydata(), med.to_numpy())
    df2 = df.copy()
    df2.loc[rows.index, "samples_per_s"] *= 2
    assert np.allclose(_line(F.throughput_vs_k(df2), "throughput:elbo").get_ydata(), 2 * med.to_numpy())


def test_every_figure_is_labelled(results):
    _, df = results
    jt = analysis.jensen_table(df)
    figs = [F.variance_vs_k(df), F.variance_vs_k(df, "elbo"), F.bias_vs_k(df), F.jensen_gap_vs_kl(jt),
            F.gradient_variance_vs_k(df), F.gradient_snr_vs_k(df), F.throughput_vs_k(df)]
    for fig in figs:
        assert fig._suptitle is not None and fig._suptitle.get_text()
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() is not None
            assert ax.get_xscale() == "log"
            assert ax.get_legend() is not None or fig.legends  # one legend beside the panels, outside the data
        assert any(ax.get_yscale() in ("log", "symlog") for ax in fig.axes)


def test_bad_input_is_refused(results):
    _, df = results
    with pytest.raises(ValueError, match="^df: variance_vs_k needs columns"):
        F.variance_vs_k(df.drop(columns=["variance_se"]))
    with pytest.raises(ValueError, match="^df: no 'elbo' rows"):
        F.variance_vs_k(df[df["estimator"] != "elbo"], "elbo")
    with pytest.raises(ValueError, match="^jt: no rows"):
        F.jensen_gap_vs_kl(analysis.jensen_table(df).iloc[0:0])


@pytest.fixture(scope="module")
def built(results):
    return build_report(results[0])


def test_report_documents(results, built, tmp_path):
    out, _ = results
    paths = built
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == len(paths["figures"]) >= 7
    assert "pytest-benchmark timings" not in html
    # with pytest-benchmark's JSON beside the results, the documents gain its table
    (out / "pytest-benchmark.json").write_text(json.dumps({"benchmarks": [
        {"name": "test_x[lg]", "stats": {"mean": 0.5, "stddev": 0.01, "min": 0.49, "rounds": 5},
         "extra_info": {"samples_per_s": 4e6}}]}))
    render_documents(out)
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    assert "pytest-benchmark timings" in html and "test_x[lg]" in md and "4.000e+06" in md
    with pytest.raises(ValueError, match="^results_dir:"):
        build_report(tmp_path)


def _draw(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_q_styles_tell_eleven_presets_apart():
    qs = ["posterior", "prior", "meanfield", "shift:1", "shift:3", "scale:0.8", "scale:2", "uniform",
          "meanfield+shift:1", "scale:5", "shift:0.5"]
    styles = F._q_styles(qs)
    assert len(set(styles.values())) == len(qs)  # (colour, marker) pairs
    assert len({m for _, m in styles.values()}) == len(qs)  # and the markers alone
    assert {c for c, _ in styles.values()} <= set(F.OKABE_ITO)


def test_legends_and_notes_stay_outside_the_data(results):
    _, df = results
    jt = analysis.jensen_table(df)
    for fig in (F.variance_vs_k(df), F.bias_vs_k(df), F.jensen_gap_vs_kl(jt), F.gradient_snr_vs_k(df),
                F.throughput_vs_k(df)):
        r = _draw(fig)
        assert len(fig.legends) == 1
        leg = fig.legends[0].get_window_extent(r)
        for ax in fig.axes:
            assert not leg.overlaps(ax.get_window_extent(r)), fig._suptitle.get_text()
            label = ax.xaxis.label.get_window_extent(r)
            for t in ax.texts:  # notes (inside the axes or under the x label) never cover the x label
                if t.get_text():
                    assert not t.get_window_extent(r).overlaps(label), t.get_text()


def test_bias_figure_keeps_every_point_and_clips_a_runaway_prediction(results):
    _, df = results
    rows = _rows(df, estimator="importance_sampling", problem="lg", q="shift:1")
    df2 = df.copy()
    df2.loc[rows.index[0], "bias"] = abs(rows["bias"].iloc[0]) + 1e-3  # a measured bias of the other sign
    df2.loc[rows.index, "bias_pred"] *= 1e6  # a prediction far above the data
    fig = F.bias_vs_k(df2)
    _draw(fig)
    measured = _line(fig, "measured:shift:1")
    assert len(measured.get_ydata()) == len(rows) and (measured.get_ydata() < 0).any()
    pred = _line(fig, "prediction:shift:1")
    ax = fig.axes[0]
    assert pred.get_ydata().max() > ax.get_ylim()[1]  # the axis follows the data, not the line
    assert any("shift:1: the prediction leaves the axes" in t and "clipped" in t for t in _texts(fig))
    lo, hi = ax.get_ylim()
    nb = -df2.loc[rows.index, "bias"].to_numpy()
    assert lo <= nb.min() and nb.max() <= hi


def test_variance_figure_clips_a_runaway_delta_method_line(results):
    _, df = results
    rows = _rows(df, estimator="importance_sampling", problem="lg", q="prior")
    df2 = df.copy()
    df2.loc[rows.index, "rel_weight_var"] *= 1e6
    fig = F.variance_vs_k(df2)
    ref = _line(fig, "reference:prior")
    assert ref.get_ydata().max() > fig.axes[0].get_ylim()[1]
    assert any("prior: the delta-method line leaves the axes" in t for t in _texts(fig))
    v = df[(df["estimator"] == "importance_sampling") & (df["problem"] == "lg")]["variance"]
    assert fig.axes[0].get_ylim()[1] >= v.max()


def test_biased_estimator_is_marked_on_the_figure(results):
    _, df = results
    fig = F.gradient_snr_vs_k(df)
    labels = fig.legends[0].get_texts()
    assert "stl (biased for iwae)" in [t.get_text() for t in labels]
    iwae_axes = [ax for ax in fig.axes if ax.get_title().endswith("objective = iwae")]
    assert iwae_axes and all("biased for iwae" in [t.get_text() for t in ax.texts] for ax in iwae_axes[:1])
    elbo_axes = [ax for ax in fig.axes if ax.get_title().endswith("objective = elbo")]
    assert all("biased for iwae" not in [t.get_text() for t in ax.texts] for ax in elbo_axes)


def test_report_structure_anchors_labels_and_unreliable_cells(results, built):
    """The HTML has a TOC whose every link names an element, stable anchors
    derived from ids and stems (the same on a re-render), labelled headers with
    the code key in title=, num/text column classes, long tables collapsed, and
    the unreliable cells (k-hat above threshold, by an independent check on the
    table) marked in the summary and in the rows; the Markdown keeps the TOC,
    the anchors and the marks."""
    import re

    out, df = results
    paths = render_documents(out)
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    ids = re.findall(r"\bid='([^']+)'", html)
    assert len(ids) == len(set(ids))
    toc = re.search(r"<nav id='toc'.*?</nav>", html, re.S).group(0)
    hrefs = re.findall(r"href='#([^']+)'", toc)
    assert hrefs and set(hrefs) <= set(ids)
    manifest = json.loads((out / "figures" / "manifest.json").read_text())
    for m in manifest:
        stem = m["file"][:-4]
        assert f"fig-{stem}" in ids and f"#fig-{stem}" in toc
    for key in ("summary", "figures", "tables", "table-importance_sampling", "table-elbo", "table-jensen_fit"):
        assert key in ids
    render_documents(out)  # anchors do not depend on the run
    assert re.findall(r"\bid='([^']+)'", paths["html"].read_text()) == ids
    # labels with units, the code key one hover away; numbers right, text left
    assert "<th class='num' title='bias, bias_se' scope='col'>bias ± SE [nats]</th>" in html
    assert "<th class='text' title='q' scope='col'>proposal q</th>" in html
    assert "<th class='num' title='K' scope='col'>K [samples per estimate]</th>" in html
    assert "points ((all))" not in html and "pooled over every problem" in html
    # the IS and ELBO tables have 2 problems x 4 q x 3 K = 24 rows: collapsed
    assert html.count("<details><summary>Show the table (24 rows)</summary>") == 2
    # unreliable cells, found here without the report's helper
    w = df[df["estimator"].isin(["importance_sampling", "elbo"])]
    bad = w[(w["khat"] > w["khat_threshold"]) | (w["khat_unreliable"] > 0.5)]
    assert len(bad), "the fixture should hold an unreliable cell (k-hat above threshold at K = 100)"
    assert f"Unreliable cells ({len(bad)} of {int(w['khat'].notna().sum())} with a fitted k̂" in html
    shown = bad[bad["K"].isin([1, 10, 100])]
    n_marked_rows = html.count("<tr class='unreliable'>")
    assert n_marked_rows == len(bad) + len(shown)  # the unreliable-cells table, and each row in its own table
    for _, r in bad.iterrows():
        assert f"⚠ k̂ {r['khat']:.2f}" in html and f"⚠ k̂ {r['khat']:.2f}" in md
    assert "## Contents" in md and "(#table-importance_sampling)" in md
    assert '<a id="fig-variance_vs_K_log_p_hat"></a>' in md and '<a id="summary"></a>' in md
    # self-contained: no external fetch of any kind
    assert not re.search(r"(src|href)=['\"](https?:)?//", html)


def test_claim_numbers_carry_labels_and_keys(tmp_path):
    """A claim's Numbers table shows human labels; the claims.json key is in
    title= (HTML) and beside the label (Markdown); an unknown key is shown as
    itself, and <base>_se as the SE of <base>."""
    from reports import labels as L
    from reports.report import _claims_section

    claim = {"id": "score_steps_small", "title": "T", "statement": "S", "rule": "R", "verdict": "held",
             "mode": "smoke", "seconds": 1.0, "figure": "training",
             "numbers": {"variance_ratio_score_loo_to_reparam_at_fitted_encoder": 0.25, "new_number": 3,
                         "mean_ratio_K1_se": 0.5, "ratio_K1_N(2, σ²=2)": 8.0},
             "number_order": ["variance_ratio_score_loo_to_reparam_at_fitted_encoder", "new_number",
                              "mean_ratio_K1_se", "ratio_K1_N(2, σ²=2)"]}
    md, h = _claims_section([claim], [], tmp_path)
    html, md = "\n".join(h), "\n".join(md)
    label = "gradient variance ratio score_loo / reparam, encoder fitted"
    assert L.number_label("variance_ratio_score_loo_to_reparam_at_fitted_encoder") == label
    assert f"<span title='variance_ratio_score_loo_to_reparam_at_fitted_encoder'>{label}</span>" in html
    assert f"{label} (`variance_ratio_score_loo_to_reparam_at_fitted_encoder`)" in md
    assert L.number_label("new_number") == "new number"
    assert L.number_label("mean_ratio_K1_se") == "SE of: mean of p̂/p at K = 1"
    assert L.number_label("ratio_K1_N(2, σ²=2)") == "variance ratio score / reparam at K = 1, q = N(2, σ²=2)"
    assert "id='claim-score_steps_small'" in html and '<a id="claim-score_steps_small"></a>' in md
