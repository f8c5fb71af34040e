"""The report of a results directory: figures/*.png, report.html, report.md.

``build_report(dir)`` reads what ``bench.run`` wrote into ``dir``
(benchmarks.parquet; jensen.parquet and jensen_fit.parquet when there were
ELBO cells; sweep.json and skipped.json) and, when present, pytest-benchmark's
own JSON (``pytest-benchmark.json``), draws the figures of
``reports.figures`` into ``dir/figures``, and writes

* ``report.html`` -- self-contained: figures embedded as base64 PNG, tables inline;
* ``report.md``   -- the same text and tables, figures linked from figures/.

``render_documents(dir)`` re-renders only the two documents from the figures
already drawn (their list is ``figures/manifest.json``), e.g. once
pytest-benchmark has written its JSON at the end of a session.

When the directory holds the lecture's claims (``claims.json`` and
``claims_*.parquet``, written by ``bench.claims``), both documents open with a
"Claims" section: for each claim its statement, the rule that decides it, its
figure (``figures/claim_<id>.png``, drawn by ``reports.claims``), its numbers
and its verdict, "held" or "did not hold" -- all read from the files.

``reports`` only reads results; it never imports ``bench``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import claims as C
from . import figures as F
from . import figures_trust

__all__ = ["build_report", "render_documents", "load_results", "BENCHMARK_JSON"]

BENCHMARK_JSON = "pytest-benchmark.json"

#: Further figure providers, each ``f(res) -> [(stem, title, caption, thunk), ...]``
#: (``res`` as ``load_results`` returns it): a module of figures joins the
#: report with one line here.  A provider returns [] when its rows are absent.
FIGURE_SECTIONS = [
    figures_trust.trust_specs,
]
_DPI = 130


# --------------------------------------------------------------------------- loading
def load_results(results_dir):
    """The tables of a results directory as a dict of DataFrames / objects."""
    d = Path(results_dir)
    table = d / "benchmarks.parquet"
    if not table.is_file():
        raise ValueError(f"results_dir: {str(d)!r} has no benchmarks.parquet (run `python -m bench run` first)")
    out = {"df": pd.read_parquet(table)}
    for name in ("jensen", "jensen_fit"):
        f = d / f"{name}.parquet"
        out[name] = pd.read_parquet(f) if f.is_file() else None
    for name in ("sweep", "skipped"):
        f = d / f"{name}.json"
        out[name] = json.loads(f.read_text()) if f.is_file() else None
    f = d / BENCHMARK_JSON
    out["pytest_benchmark"] = json.loads(f.read_text()) if f.is_file() else None
    out["claims"] = C.load_claims(d)
    return out


def _file_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_text(path, text):
    """Write ``text`` to a temporary file beside ``path``, then os.replace it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, _file_mode())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- figures
def _figure_specs(res):
    """(file stem, title, caption, thunk) for every figure the data support."""
    df, specs = res["df"], []
    est = set(df["estimator"])
    if "importance_sampling" in est:
        specs.append(("variance_vs_K_log_p_hat", "Variance of log p̂(x) vs K",
                      "Importance sampling: the variance of the log estimate falls like 1/K once K is large "
                      "enough for the delta method (black dashed: a 1/K slope; dotted, per q: the delta-method "
                      "value Var_q[w]/(K p(x)²) where finite and known).",
                      lambda: F.variance_vs_k(df, "importance_sampling")))
        specs.append(("bias_vs_K_log_p_hat", "Bias of log p̂(x) vs K",
                      "log p̂ is biased low (Jensen); the delta method predicts a bias of "
                      "−Var_q[w]/(2K p(x)²) (dashed), drawn where Var_q[w] is finite and known.",
                      lambda: F.bias_vs_k(df)))
    if "elbo" in est:
        specs.append(("variance_vs_K_elbo", "Variance of the ELBO estimate vs K",
                      "The ELBO estimate is an average of K i.i.d. log-weights: its variance is exactly "
                      "Var_q[log w]/K (dotted, per q, from the exact Var_q[log w]).",
                      lambda: F.variance_vs_k(df, "elbo")))
    if res.get("jensen") is not None and len(res["jensen"]):
        specs.append(("jensen_gap_vs_KL", "Jensen gap vs KL",
                      "log p(x) − E[ELBO estimate], pooled over K, against the exact KL(q‖p(z|x)) "
                      "(computed without the ELBO or log p(x)); below, residuals in standard errors.",
                      lambda: F.jensen_gap_vs_kl(res["jensen"], res.get("jensen_fit"))))
    grad = F.gradient_rows(df)
    if len(grad):
        for q in dict.fromkeys(grad["q"]):
            stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in q)
            specs.append((f"gradient_variance_vs_K_{stem}", f"Gradient variance vs K (q = {q})",
                          "Total variance tr Cov(ĝ) of each gradient estimator (rows: objective).",
                          lambda q=q: F.gradient_variance_vs_k(df, q)))
            specs.append((f"gradient_snr_vs_K_{stem}", f"Gradient SNR vs K (q = {q})",
                          "Median over coordinates of |mean|/sd; dotted: the floor √(2/π)/√R that a "
                          "coordinate with zero true gradient shows.",
                          lambda q=q: F.gradient_snr_vs_k(df, q)))
    targets = F.row_targets(df)
    for target, title in (("log_marginal", "log p(x)"), ("elbo", "the ELBO")):
        rows = df[targets == target]
        shared = rows.groupby(["problem", "q"])["estimator"].nunique().max() if len(rows) else 0
        if shared >= 2 or ("user" in df and rows["user"].fillna(False).astype(bool).any()):
            specs.append((f"estimators_vs_K_{target}", f"Every estimator of {title} vs K",
                          "Each estimator's bias (symmetric-log axis, ±1 SE) and variance against K, per problem "
                          "and q; a user's estimators are dashed with hollow markers and labelled “(yours)”.",
                          lambda target=target: F.estimators_vs_k(df, target)))
    specs.append(("throughput_vs_K", "Throughput vs K",
                  "Samples per second of one timed call per cell (compilation excluded by a warm-up call).",
                  lambda: F.throughput_vs_k(df)))
    if {"smc", "ais"} & est:
        specs.extend(_sequential_specs(df))
    for provider in FIGURE_SECTIONS:
        specs.extend(provider(res))
    return specs


def _sequential_specs(df):
    """The figures of the particle filter ("smc") and AIS ("ais") rows the table supports."""
    have, specs = F.sequential_available(df), []
    if have["smc_variance_vs_n"]:
        specs.append(("smc_variance_vs_N", "Particle filter: Var(log Ẑ) vs N",
                      "Var(log Ẑ) against the number of particles N (±1 SE), with a weighted least-squares "
                      f"fit of log Var on log N over the points with Var ≤ {F.FIT_MAX_VARIANCE:g} (filled); the "
                      "law for large N is slope −1. The legend gives each slope ± SE and its distance from −1.",
                      lambda: F.smc_variance_vs_n(df)))
    if have["smc_variance_vs_t"]:
        specs.append(("smc_variance_vs_T", "Particle filter: Var(log Ẑ) vs T",
                      "Var(log Ẑ) against the length T of the series at fixed N, averaged over the observed "
                      "series drawn per T (SE: their spread / √M); the law for a stable model is slope 1.",
                      lambda: F.smc_variance_vs_t(df)))
    if have["smc_bias_vs_variance"]:
        specs.append(("smc_bias_vs_variance", "Bias of log Ẑ vs −Var/2",
                      "Ẑ is unbiased for p(x), so log Ẑ is biased low by about Var(log Ẑ)/2 when it is close "
                      "to normal: the points (particle filter, forward AIS) should lie on y = x; right, the "
                      "residual in SEs.",
                      lambda: F.smc_bias_vs_variance(df)))
    if have["smc_proposals"]:
        specs.append(("smc_bootstrap_vs_optimal", "Particle filter: bootstrap vs optimal proposal",
                      "Var(log Ẑ) of the bootstrap filter (solid) and of the locally optimal proposal "
                      "(dashed), and their ratio with its SE (above 1: the optimal proposal wins).",
                      lambda: F.smc_proposals(df)))
    if have["ais_sandwich"]:
        specs.append(("ais_bdmc_sandwich", "AIS: the BDMC sandwich vs steps",
                      "Forward AIS (a stochastic lower bound on log p(x)) and reverse AIS from exact posterior "
                      "draws (an upper bound) against the number of temperatures, with the exact log p(x); "
                      "below, the gap between them, which closes as the steps grow.",
                      lambda: F.ais_sandwich(df)))
    return specs


def _draw_figures(res, fig_dir):
    fig_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for stem, title, caption, thunk in _figure_specs(res):
        fig = thunk()
        path = fig_dir / f"{stem}.png"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".png.tmp", dir=fig_dir)
        os.close(fd)
        fig.savefig(tmp, dpi=_DPI, format="png")
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
        manifest.append({"file": path.name, "title": title, "caption": caption})
    for claim in res.get("claims") or []:
        stem = f"claim_{claim['id']}"
        _save_figure(C.claim_figure(claim), fig_dir, stem)
        manifest.append({"file": f"{stem}.png", "title": claim["title"], "caption": claim["statement"],
                         "section": "claims", "claim": claim["id"]})
    _atomic_text(fig_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _save_figure(fig, fig_dir, stem):
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".png.tmp", dir=fig_dir)
    os.close(fd)
    fig.savefig(tmp, dpi=_DPI, format="png")
    os.chmod(tmp, _file_mode())
    os.replace(tmp, fig_dir / f"{stem}.png")


# --------------------------------------------------------------------------- tables
def _fmt(v):
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        a = abs(v)
        return f"{v:.4g}" if 1e-3 <= a < 1e5 else f"{v:.3e}"
    return str(v)


def _pm(v, se):
    """"v ± se" with v rounded to the second significant digit of se."""
    v, se = float(v), float(se)
    if math.isnan(v):
        return ""
    if not math.isfinite(v) or not math.isfinite(se) or se <= 0:
        return f"{_fmt(v)} ± {_fmt(se)}"
    decimals = max(0, 1 - math.floor(math.log10(se)))
    if decimals > 12 or abs(v) >= 1e6:
        return f"{v:.3e} ± {se:.2g}"
    return f"{v:.{decimals}f} ± {se:.2g}"


def _md_table(df):
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)


def _html_table(df):
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in df.columns) + "</tr>" for _, r in df.iterrows()
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pick_K(values, n=3):
    ks = sorted(set(int(k) for k in values))
    if len(ks) <= n:
        return ks
    return sorted({ks[0], ks[len(ks) // 2], ks[-1]})


def _tables(res):
    """(title, intro, DataFrame) for every table the data support."""
    df, out = res["df"], []
    probs = df.drop_duplicates("problem")[["problem", "family", "problem_params", "x_seed", "log_marginal"]]
    out.append(("Problems", "Each problem's observation is x = p.sample(1, seed=x_seed)[0]; "
                "log p(x) is exact.", probs.rename(columns={"log_marginal": "log p(x)"})))
    jt, fit = res.get("jensen"), res.get("jensen_fit")
    if jt is not None and len(jt):
        t = pd.DataFrame({
            "problem": jt["problem"], "q": jt["q"], "exact KL": jt["kl"],
            "gap ± SE": [_pm(a, b) for a, b in zip(jt["gap"], jt["gap_se"])],
            "(gap − KL)/SE": jt["z"], "SE": jt["se_kind"] if "se_kind" in jt else "sample",
            "samples": jt["samples"],
        })
        out.append(("Jensen gap vs KL, per q",
                    "gap = log p(x) − mean of the ELBO estimates, pooled over K by inverse-variance weights. "
                    "SE 'exact' = from the exact Var_q[log w] (sqrt(Var/(K R)) per cell), 'sample' = from the "
                    "replicates; both include a numerical floor of 1e-9·max(1, |log p(x)|) for the round-off of "
                    "q = posterior. The suite asserts |gap − KL| < 4 SE for every q.",
                    t))
    if fit is not None and len(fit):
        t = pd.DataFrame({
            "problem": fit["problem"], "points": fit["n_points"],
            "slope ± SE": [_pm(a, b) for a, b in zip(fit["slope"], fit["slope_se"])],
            "(slope − 1)/SE": fit["z_slope"],
            "intercept ± SE": [_pm(a, b) for a, b in zip(fit["intercept"], fit["intercept_se"])],
            "χ²/dof": [f"{c:.3g}/{d}" for c, d in zip(fit["chi2"], fit["dof"])],
        })
        out.append(("Weighted least-squares fit: gap = a + b·KL",
                    "Weights 1/SE²; the SEs of a and b treat the per-point SEs as known. "
                    "The gap is the KL exactly if b = 1 and a = 0; the suite asserts |b − 1| < 4 SE(b) and "
                    "|a| < 4 SE(a) (a fixed seed: 1 SE would fail a third of seeds by chance).", t))
    isr = df[df["estimator"] == "importance_sampling"]
    if len(isr):
        sel = isr[isr["K"].isin(_pick_K(isr["K"]))]
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "K": sel["K"],
            "bias ± SE": [_pm(a, b) for a, b in zip(sel["bias"], sel["bias_se"])],
            "predicted bias": sel["bias_pred"],
            "variance": sel["variance"],
            "E[p̂/p] − 1 ± SE": [_pm(a, b) for a, b in zip(sel["ratio_bias"], sel["ratio_bias_se"])],
            "Var[w]/p²": sel["rel_weight_var"], "ESS": sel["ess"],
        })
        out.append(("Importance sampling: log p̂(x)",
                    "bias = mean(log p̂) − log p(x); predicted bias = −Var_q[w]/(2K p(x)²); "
                    "E[p̂/p] − 1 should be 0 (p̂ is unbiased) wherever Var_q[w] is finite.", t))
    el = df[df["estimator"] == "elbo"]
    if len(el):
        sel = el[el["K"].isin(_pick_K(el["K"]))]
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "K": sel["K"], "exact ELBO": sel["truth"],
            "bias ± SE": [_pm(a, b) for a, b in zip(sel["bias"], sel["bias_se"])],
            "variance ± SE": [_pm(a, b) for a, b in zip(sel["variance"], sel["variance_se"])],
            "K·variance": sel["variance"] * sel["K"],
        })
        out.append(("ELBO estimate", "Unbiased for the exact ELBO at every K; K·variance = Var_q[log w].", t))
    gr = F.gradient_rows(df)
    if len(gr):
        kmax = gr.groupby(["problem", "q", "objective"])["K"].transform("max")
        sel = gr[gr["K"] == kmax]
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "objective": sel["objective"], "method": sel["method"],
            "K": sel["K"], "R": sel["R"],
            "tr Cov ± SE": [_pm(a, b) for a, b in zip(sel["variance"], sel["variance_se"])],
            "ratio to score ± SE": [_pm(a, b) for a, b in zip(sel["variance_ratio"], sel["variance_ratio_se"])],
            "SNR median": sel["snr_median"], "SNR min": sel["snr_min"], "SNR floor": sel["snr_floor"],
            "max |t| of bias": sel["bias_t_max"],
        })
        out.append(("Gradient estimators at the largest K",
                    "Bias t-statistics are against p.elbo_grad (elbo) or estimators.iwae_gradient_reference "
                    "(iwae, its SE added in quadrature); stl is biased for iwae at K > 1 by construction.", t))
    pb = res.get("pytest_benchmark")
    if pb and pb.get("benchmarks"):
        rows = []
        for b in pb["benchmarks"]:
            s = b.get("stats", {})
            extra = b.get("extra_info", {})
            rows.append({
                "benchmark": b.get("name"), "mean [s]": s.get("mean"), "stddev [s]": s.get("stddev"),
                "min [s]": s.get("min"), "rounds": s.get("rounds"),
                "samples/s": extra.get("samples_per_s", math.nan),
            })
        out.append(("pytest-benchmark timings",
                    f"From {BENCHMARK_JSON} (pytest-benchmark's own JSON, with machine info). "
                    "Warm-up calls (numba compilation) are outside the timed rounds.", pd.DataFrame(rows)))
    skipped = res.get("skipped") or []
    if skipped:
        t = pd.DataFrame(skipped).groupby("reason").size().reset_index(name="cells")
        out.append(("Skipped cells", "Cells of the sweep that the estimator refuses (its own message).", t))
    return out


# --------------------------------------------------------------------------- documents
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table.data{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}
table.data th,table.data td{border:1px solid #ccc;padding:2px 6px;text-align:right}
table.data th{background:#f0f0f0}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:13px;color:#444}p.note{font-size:13px;color:#555}
span.held{color:#fff;background:#2a7a2a;padding:1px 7px;border-radius:3px;font-weight:bold}
span.nothold{color:#fff;background:#b03030;padding:1px 7px;border-radius:3px;font-weight:bold}
div.claim{border-left:4px solid #bbb;padding-left:1em;margin:1.5em 0}
"""


def _fmt_number(v):
    """A claim's number as text: floats by ``_fmt``, lists element-wise, None as "never"."""
    if v is None:
        return "never"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_number(u) for u in v) + "]"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return _fmt(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def _claims_overview(claims):
    return pd.DataFrame({
        "#": list(range(1, len(claims) + 1)),
        "claim": [c["title"] for c in claims],
        "verdict": [c["verdict"] for c in claims],
        "mode": [c.get("mode", "") for c in claims],
        "seconds": [float(c.get("seconds", math.nan)) for c in claims],
    })


def _claims_section(claims, manifest, d):
    """(markdown lines, html parts) of the Claims section."""
    figs = {m["claim"]: m for m in manifest if m.get("section") == "claims"}
    held = sum(c["verdict"] == "held" for c in claims)
    intro = (f"The lecture's claims, each decided by a rule stated before measuring: {held} of {len(claims)} held. "
             "Every number below is computed by bench/claims.py (exact answers or Monte Carlo estimates with their "
             "standard errors); the verdict is the rule applied to these numbers.")
    md = ["## Claims", "", intro, "", _md_table(_claims_overview(claims)), ""]
    h = ["<h2>Claims</h2>", f"<p>{html.escape(intro)}</p>", _html_table(_claims_overview(claims))]
    for i, c in enumerate(claims, start=1):
        v = c["verdict"]
        order = [k for k in c.get("number_order", []) if k in c["numbers"]]
        order += [k for k in c["numbers"] if k not in order]
        nums = pd.DataFrame({"number": order, "value": [_fmt_number(c["numbers"][k]) for k in order]})
        md += [f"### Claim {i}: {c['title']} — **{v}**", "", f"**Statement.** {c['statement']}", "",
               f"**Rule.** {c['rule']}", ""]
        css = "held" if v == "held" else "nothold"
        h += [f"<div class='claim'><h3>Claim {i}: {html.escape(c['title'])} "
              f"<span class='{css}'>{html.escape(v)}</span></h3>",
              f"<p><b>Statement.</b> {html.escape(c['statement'])}</p>",
              f"<p><b>Rule.</b> {html.escape(c['rule'])}</p>"]
        m = figs.get(c["id"])
        if m is not None and (d / "figures" / m["file"]).is_file():
            data = base64.b64encode((d / "figures" / m["file"]).read_bytes()).decode("ascii")
            md += [f"![{c['title']}](figures/{m['file']})", ""]
            h.append(f"<figure><img alt='{html.escape(c['title'])}' src='data:image/png;base64,{data}'></figure>")
        else:
            md += ["(figure not drawn yet: run `python -m bench report DIR`)", ""]
            h.append("<p class='note'>(figure not drawn yet: run <code>python -m bench report DIR</code>)</p>")
        md += ["**Numbers.**", "", _md_table(nums), ""]
        h += ["<p><b>Numbers.</b></p>", _html_table(nums)]
        for note in c.get("notes", []):
            md += [f"- {note}"]
            h.append(f"<p class='note'>{html.escape(note)}</p>")
        md += ["", f"**Verdict: {v}** ({c.get('mode', '')} mode, {float(c.get('seconds', math.nan)):.1f} s).", ""]
        h.append(f"<p><b>Verdict:</b> <span class='{css}'>{html.escape(v)}</span> "
                 f"({html.escape(str(c.get('mode', '')))} mode, {float(c.get('seconds', math.nan)):.1f} s)</p></div>")
    return md, h


def _summary(res):
    df = res["df"]
    n_sk = len(res.get("skipped") or [])
    lines = [
        f"{len(df)} cells: {df['problem'].nunique()} problem(s), {df['q'].nunique()} proposal(s) q, "
        f"estimators {', '.join(sorted(df['estimator'].unique()))}, K from {int(df['K'].min())} to "
        f"{int(df['K'].max())}" + (f"; {n_sk} cell(s) skipped" if n_sk else "") + ".",
        "Every number is measured against an exact answer; ± is one standard error. "
        "The full tidy table is benchmarks.parquet (one row per cell).",
    ]
    fit = res.get("jensen_fit")
    if fit is not None and len(fit):
        f = fit.iloc[-1]
        lines.append(f"Jensen gap = KL: fitted slope {f['slope']:.5f} ± {f['slope_se']:.5f} "
                     f"over {int(f['n_points'])} (problem, q) points ({f['problem']}).")
    claims = res.get("claims") or []
    if claims:
        held = [c for c in claims if c["verdict"] == "held"]
        lines.append(f"The lecture's claims: {len(held)} of {len(claims)} held"
                     + ("; did not hold: " + "; ".join(c["title"] for c in claims if c["verdict"] != "held")
                        if len(held) < len(claims) else "") + " (section Claims).")
    return lines


def render_documents(results_dir):
    """Write report.html and report.md from the tables and figures/manifest.json."""
    d = Path(results_dir)
    res = load_results(d)
    manifest_path = d / "figures" / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"results_dir: {str(d)!r} has no figures/manifest.json; run build_report first")
    manifest = json.loads(manifest_path.read_text())
    tables = _tables(res)
    title = "evidence-bench report"
    name = (res.get("sweep") or [{}])[0].get("name", d.name) if res.get("sweep") else d.name
    summary = _summary(res)

    md = [f"# {title}: {name}", ""] + [s + "  " for s in summary] + [""]
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}: {html.escape(name)}</h1>"]
    h += [f"<p>{html.escape(s)}</p>" for s in summary]
    if res.get("claims"):
        c_md, c_h = _claims_section(res["claims"], manifest, d)
        md += c_md
        h += c_h
    md.append("## Figures\n")
    h.append("<h2>Figures</h2>")
    for m in manifest:
        if m.get("section") == "claims":
            continue
        png = d / "figures" / m["file"]
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        md += [f"### {m['title']}", "", f"![{m['title']}](figures/{m['file']})", "", m["caption"], ""]
        h.append(f"<figure><h3>{html.escape(m['title'])}</h3><img alt='{html.escape(m['title'])}' "
                 f"src='data:image/png;base64,{data}'><figcaption>{html.escape(m['caption'])}</figcaption></figure>")
    for t_title, intro, t in tables:
        md += [f"## {t_title}", "", intro, "", _md_table(t), ""]
        h += [f"<h2>{html.escape(t_title)}</h2>", f"<p class='note'>{html.escape(intro)}</p>", _html_table(t)]
    h.append("</body></html>")
    _atomic_text(d / "report.md", "\n".join(md) + "\n")
    _atomic_text(d / "report.html", "\n".join(h) + "\n")
    return {"html": d / "report.html", "markdown": d / "report.md"}


def build_report(results_dir):
    """Draw every figure into ``results_dir/figures`` and write report.html and
    report.md.  Returns {"html": path, "markdown": path, "figures": [paths]}."""
    d = Path(results_dir)
    res = load_results(d)
    manifest = _draw_figures(res, d / "figures")
    paths = render_documents(d)
    paths["figures"] = [d / "figures" / m["file"] for m in manifest]
    return paths
