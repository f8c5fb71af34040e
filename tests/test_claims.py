"""bench.claims and reports.claims: the exact helpers against brute force, the
rules (each can go either way), storage (atomic, merged, resumable), and the
figures drawing the numbers of the tables they are given.

The claims are computed once, at smoke sizes, into a temporary directory."""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

import estimators
from bench import claims as CL
from estimators import Bernoulli, Gaussian, Uniform
from problems import MissingPixels, MixturePrior
from reports import claims as RC
from reports.report import build_report


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    computed = CL.compute_claims(out, mode="smoke")
    return out, {c.id: c for c in computed}


# --------------------------------------------------------------------------- exact helpers
def test_bernoulli_relative_weight_variance_by_enumeration():
    """sum_z p(z|x)^2 / q(z) - 1 over all 2^m z, against the pairwise closed form."""
    rng = np.random.default_rng(0)
    C, m = 3, 6
    pi = rng.dirichlet(np.ones(C))
    t = rng.uniform(0.05, 0.95, size=(C, m))
    phi = rng.uniform(0.1, 0.9, size=m)
    zs = np.array(list(itertools.product((0, 1), repeat=m)))
    post = np.array([sum(pi[c] * np.prod(np.where(z, t[c], 1 - t[c])) for c in range(C)) for z in zs])
    q = np.prod(np.where(zs, phi, 1 - phi), axis=1)
    assert math.isclose(CL.bernoulli_relative_weight_variance(pi, t, phi), np.sum(post**2 / q) - 1, rel_tol=1e-10)
    assert CL.bernoulli_relative_weight_variance(pi, t, np.ones(m)) == math.inf  # q misses the support


def test_log_weight_variance_against_enumeration_and_sampling():
    p = MissingPixels.digits(latent_rows=1)
    x = p.sample(1, seed=2)[0]
    q = Bernoulli(np.full(8, 0.3))
    zs = np.array(list(itertools.product((0, 1), repeat=8)))
    lw = p.log_joint(x, zs) - np.sum(np.where(zs, np.log(0.3), np.log(0.7)), axis=1)
    qz = np.prod(np.where(zs, 0.3, 0.7), axis=1)
    mean = np.sum(qz * lw)
    assert math.isclose(CL.log_weight_variance(p, x, q, p.elbo(x, q)), np.sum(qz * (lw - mean) ** 2), rel_tol=1e-10)
    # MixturePrior: quadrature vs the variance of many single-sample ELBO estimates (5 SE of a variance)
    mp, xm = MixturePrior.lecture(), MixturePrior.lecture_x
    for q in (Gaussian([0.5], [2.0]), Uniform([-8.0], [6.0])):
        v = CL.log_weight_variance(mp, xm, q, mp.elbo(xm, q))
        e = estimators.elbo(mp, xm, q, 1, 200000, seed=4)
        d = e - e.mean()
        se = math.sqrt((np.mean(d**4) - np.var(e) ** 2) / e.size)
        assert abs(np.var(e, ddof=1) - v) < 5 * se
    with pytest.raises(ValueError, match="p"):
        CL.log_weight_variance(MissingPixels.digits(latent_rows=3), np.zeros(40), Bernoulli(np.full(24, 0.5)), 0.0)


def test_orthogonal_linear_gaussian_has_orthogonal_columns():
    p = CL.orthogonal_linear_gaussian(6, 3, seed=1)
    G = p.W.T @ p.W
    assert np.allclose(G, np.diag(np.diag(G)), atol=1e-12) and np.allclose(p.psi, 0.5)


# --------------------------------------------------------------------------- rules
RULE_CASES = {
    "uniform_vs_is": (dict(theory_z=1.0, rmse_uniform=5.0, rmse_is=0.1), dict(rmse_is=0.6)),
    "single_sample_bias": (dict(z_below_log_p=50.0, z_vs_elbo=-1.0), dict(z_vs_elbo=6.0)),
    "elbo_plus_kl": (dict(max_identity_error=1e-14, max_abs_z=2.0), dict(max_abs_z=4.5)),
    "lecture_question": (dict(kl_good_variance_reading=0.3, kl_bad_variance_reading=1.4, kl_good_sd_reading=0.3,
                              kl_bad_sd_reading=1.4), dict(kl_good_sd_reading=2.0)),
    "reparam_variance": (dict(min_ratio_lower_bound=3.0), dict(min_ratio_lower_bound=0.9)),
    "vae_learns": (dict(vae_ll_below_max=0.01, svi_ll_below_max=0.01, vae_gap=0.01, svi_gap=0.01),
                   dict(svi_ll_below_max=0.05)),
    "score_steps_small": (dict(median_steps_reparam=50, median_steps_score_loo=80), dict(median_steps_score_loo=50)),
}


@pytest.mark.parametrize("cid", RULE_CASES)
def test_each_rule_can_go_either_way(cid):
    held, change = RULE_CASES[cid]
    assert CL.verdict(cid, held) == "held"
    assert CL.verdict(cid, {**held, **change}) == "did not hold"


def test_every_claim_has_a_spec_a_rule_and_a_function():
    assert set(CL.SPECS) == set(CL.RULES) == set(CL.FUNCTIONS) == set(CL.CLAIM_IDS)
    for spec in CL.SPECS.values():
        assert spec["statement"] and spec["rule"].startswith("Held iff") and spec["figure"]


# --------------------------------------------------------------------------- computing and storage
def test_smoke_claims_are_written_and_read_back(smoke):
    out, computed = smoke
    entries = CL.read_claims(out)
    assert list(entries) == list(CL.CLAIM_IDS)
    for cid, e in entries.items():
        assert e["verdict"] == CL.verdict(cid, e["numbers"]) == computed[cid].verdict
        assert e["mode"] == "smoke" and e["seconds"] > 0
        for name, fname in e["tables"].items():
            pd.testing.assert_frame_equal(pd.read_parquet(out / fname), computed[cid].tables[name])
    assert not list(out.glob(".*.tmp"))  # no stray temporaries
    raw = json.loads((out / CL.CLAIMS_JSON).read_text())
    assert [c["id"] for c in raw["claims"]] == list(CL.CLAIM_IDS)


def test_ensure_claims_computes_only_what_is_missing(smoke, tmp_path, monkeypatch):
    out, computed = smoke
    for f in out.glob("claims*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    assert CL.ensure_claims(tmp_path, "smoke") == []
    # drop one claim from claims.json: only that one is recomputed, the others are kept as they were
    raw = json.loads((tmp_path / CL.CLAIMS_JSON).read_text())
    raw["claims"] = [c for c in raw["claims"] if c["id"] != "lecture_question"]
    (tmp_path / CL.CLAIMS_JSON).write_text(json.dumps(raw))
    before = CL.read_claims(tmp_path)
    done = CL.ensure_claims(tmp_path, "smoke")
    assert [c.id for c in done] == ["lecture_question"]
    after = CL.read_claims(tmp_path)
    assert list(after) == list(CL.CLAIM_IDS)
    assert all(after[k] == before[k] for k in before)


def test_bad_arguments():
    with pytest.raises(ValueError, match="claim_id"):
        CL.compute_claim("moon_landing", "smoke")
    with pytest.raises(ValueError, match="mode"):
        CL.compute_claim("lecture_question", "huge")
    with pytest.raises(ValueError, match="claim_id"):
        CL.compute_claims("/nonexistent", "smoke", ids=["nope"])


def test_claims_mode_reads_the_environment(monkeypatch):
    monkeypatch.delenv("EVIDENCE_BENCH_MODE", raising=False)
    assert CL.claims_mode() == "full"
    monkeypatch.setenv("EVIDENCE_BENCH_MODE", "smoke")
    assert CL.claims_mode() == "smoke"
    monkeypatch.setenv("EVIDENCE_BENCH_MODE", "medium")
    with pytest.raises(ValueError, match="EVIDENCE_BENCH_MODE"):
        CL.claims_mode()


# --------------------------------------------------------------------------- figures
def _lines(fig, prefix):
    return {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines if (ln.get_gid() or "").startswith(prefix)}


def test_missing_pixels_figure_draws_the_errors(smoke):
    out, computed = smoke
    t = computed["uniform_vs_is"].tables
    fig = RC.missing_pixels_figure(t["images"], t["errors"])
    rmse = _lines(fig, "rmse:")
    for q, g in t["errors"].groupby("q"):
        g = g.sort_values("K")
        line = rmse[f"rmse:{q}"]
        assert np.array_equal(line.get_xdata(), g["K"].to_numpy(float))
        assert np.allclose(line.get_ydata(), g["rmse"])
    # the image grid: every image of the table drawn once -- per held-out digit the observed half, the digit,
    # its grey levels, the posterior mean and n posterior completions; n completions from each of the 3 q
    n = int(t["images"]["sample"].max()) + 1
    k = t["images"]["image"].nunique()
    images = [a for a in fig.axes if a.images]
    assert len(images) == len(t["images"]) == k * (4 + n) + 3 * n
    assert all(a.get_xlabel() or a.get_ylabel() for a in fig.axes if a.lines and not a.images)
    with pytest.raises(ValueError, match="missing_pixels_figure"):
        RC.missing_pixels_figure(t["images"], t["errors"].drop(columns=["rmse"]))


def test_other_claim_figures_follow_their_tables(smoke):
    _, computed = smoke
    b = computed["single_sample_bias"].tables["bias"]
    line = _lines(RC.single_sample_bias_figure(b), "mean_log_p_hat")["mean_log_p_hat"]
    assert np.allclose(line.get_ydata(), b.sort_values("K")["mean_log_p_hat"])
    v = computed["reparam_variance"].tables["variance"]
    fig = RC.reparam_variance_figure(v)
    row = v[(v["method"] == "score")]
    q = row["q"].iloc[0]
    assert np.allclose(_lines(fig, "ratio:")[f"ratio:score:{q}"].get_ydata(),
                       row[row["q"] == q].sort_values("K")["ratio_to_reparam"])
    tq = computed["lecture_question"].tables
    fig = RC.lecture_question_figure(tq["densities"], tq["summary"])
    first = tq["summary"]["q"].iloc[0]
    assert np.allclose(_lines(fig, "q:")[f"q:{first}"].get_ydata(), tq["densities"][first])
    c = computed["score_steps_large"]
    fig = RC.training_figure(c.tables["curves"], c.tables["steps"], c.numbers)
    assert len(_lines(fig, "elbo:")) == len(c.tables["steps"])
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_report_has_a_claims_section(smoke, tmp_path):
    """A results directory with a tiny sweep and the smoke claims: every claim's
    statement, figure, numbers and verdict are in both documents."""
    import bench

    out, _ = smoke
    problems = {"lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}}
    bench.run(bench.Sweep(problems, q=["posterior", "prior"], estimators=["importance_sampling", "elbo"], K=[1, 10],
                          R=20), out=tmp_path, progress=False)
    for f in out.glob("claims*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    paths = build_report(tmp_path)
    names = {f.name for f in paths["figures"]}
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    assert "<h2>Claims</h2>" in html and "## Claims" in md
    for cid, e in CL.read_claims(tmp_path).items():
        assert f"claim_{cid}.png" in names and f"](figures/claim_{cid}.png)" in md
        assert e["title"] in md and f"— **{e['verdict']}**" in md
        assert e["title"] in html.replace("&#x27;", "'")
    assert html.count("data:image/png;base64,") == len(paths["figures"])
