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
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import claims as C
from . import figures as F
from . import labels as L
from . import figures_trust
from .figures_trust import unreliable_mask
from . import figures_peers
from . import figures_discrete

__all__ = ["build_report", "render_documents", "load_results", "unreliable_mask", "BENCHMARK_JSON", "FIGURE_SECTIONS"]

BENCHMARK_JSON = "pytest-benchmark.json"

#: Further figure providers, each ``f(res) -> [(stem, title, caption, thunk), ...]``
#: (``res`` as ``load_results`` returns it): a module of figures joins the
#: report with one line here.  A provider returns [] when its rows are absent.
FIGURE_SECTIONS = [
    figures_trust.trust_specs,
    figures_peers.peers_specs,
    figures_discrete.discrete_specs,
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
    for name in ("sweep", "skipped", "failed"):
        f = d / f"{name}.json"
        out[name] = json.loads(f.read_text()) if f.is_file() else None
    f = d / BENCHMARK_JSON
    out["pytest_benchmark"] = json.loads(f.read_text()) if f.is_file() else None
    out["claims"] = C.load_claims(d)
    out["peers"] = pd.read_parquet(d / "peers.parquet") if (d / "peers.parquet").is_file() else None
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
                      "value Var_q[w]/(K p(x)²) where finite and known; the y range is the data's, and a line that leaves it is "
                      "clipped, as the panel's note says).",
                      lambda: F.variance_vs_k(df, "importance_sampling")))
        specs.append(("bias_vs_K_log_p_hat", "Bias of log p̂(x) vs K",
                      "log p̂ is biased low (Jensen); the delta method predicts a bias of "
                      "−Var_q[w]/(2K p(x)²) (dashed), drawn where Var_q[w] is finite and known. The y axis is "
                      "symmetric-log, so a point whose measured bias has the other sign (within noise of 0) sits "
                      "below 0 instead of being dropped; hollow markers: |bias| < 2 SE.",
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
        _save_figure(thunk(), fig_dir, stem)
        manifest.append({"file": f"{stem}.png", "title": title, "caption": caption})
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


class _Cell:
    """A table cell whose HTML is not its text (a link, a badge): ``text`` for
    Markdown and filtering, ``markup`` (already escaped) for HTML, ``sort`` the
    number a numeric column sorts by (None: sorts as text / last)."""

    def __init__(self, text, markup, sort=None, css=""):
        self.text, self.markup, self.sort, self.css = text, markup, sort, css


#: a leading number of a formatted cell: "0.41 ± 0.02", "3.1/4", "⚠ k̂ 0.83", "1.000e-03", "-inf"
_LEADING_NUMBER = re.compile(r"^(?:⚠ k̂ )?([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?inf)(?=\s|/|$)")


def _cell(v):
    """(text, sort value or None) of one value."""
    if isinstance(v, _Cell):
        return v.text, v.sort
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), None
    if isinstance(v, (int, np.integer)):
        return str(int(v)), float(v)
    if isinstance(v, (float, np.floating)):
        return _fmt(v), (None if math.isnan(v) else float(v))
    if v is None:
        return "", None
    text = str(v)
    m = _LEADING_NUMBER.match(text)
    return text, (float(m.group(1)) if m else None)


def _column_kinds(df):
    """"num" for a column whose every non-empty cell is a number (or starts with
    one: "v ± se"), else "text": numbers right-aligned, text left."""
    kinds = {}
    for c in df.columns:
        cells = [_cell(v) for v in df[c]]
        filled = [s for t, s in cells if t != ""]
        kinds[c] = "num" if filled and all(s is not None for s in filled) else "text"
    return kinds


def _khat_cells(sel):
    """The k̂ column of a table of weight rows: "0.41", or "⚠ k̂ 0.83" (an
    unreliable cell, ``unreliable_mask``); and the rows' CSS classes."""
    bad = unreliable_mask(sel)
    cells, classes = [], []
    for k, b in zip(sel["khat"].to_numpy(float) if "khat" in sel else [math.nan] * len(sel), bad):
        if b:
            text = f"⚠ k̂ {k:.2f}"
            cells.append(_Cell(text, f"<span class='warn'>{html.escape(text)}</span>", float(k)))
        else:
            cells.append(math.nan if math.isnan(k) else float(round(k, 3)))
        classes.append("unreliable" if b else "")
    return cells, classes


def _md_table(df, labels=None):
    labels = labels or {}
    cols = list(df.columns)
    lines = ["| " + " | ".join(labels.get(c, L.column_label(c)) for c in cols) + " |",
             "|" + "|".join("---:" if k == "num" else "---" for k in _column_kinds(df).values()) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_cell(r[c])[0].replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)


def _html_table(df, labels=None, row_classes=None, kinds=None, titles=None):
    """A sortable, filterable table: headers show the label, the code key in
    ``title=``; ``class="num"`` columns are right-aligned and sort numerically
    (by each cell's ``data-v``), ``class="text"`` columns left-aligned."""
    labels, titles = labels or {}, titles or {}
    kinds = {**_column_kinds(df), **(kinds or {})}
    head = "".join(
        f"<th class='{kinds[c]}' title='{html.escape(titles.get(c, str(c)))}' scope='col'>"
        f"{html.escape(labels.get(c, L.column_label(c)))}</th>" for c in df.columns)
    rows = []
    for i, (_, r) in enumerate(df.iterrows()):
        tds = []
        for c in df.columns:
            v = r[c]
            text, sort = _cell(v)
            markup = v.markup if isinstance(v, _Cell) else html.escape(text)
            dv = "" if sort is None else f" data-v='{sort!r}'".replace("'inf'", "'Infinity'").replace(
                "'-inf'", "'-Infinity'")
            tds.append(f"<td class='{kinds[c]}'{dv}>{markup}</td>")
        css = row_classes[i] if row_classes else ""
        rows.append(f"<tr class='{css}'>" if css else "<tr>")
        rows[-1] += "".join(tds) + "</tr>"
    return (f"<div class='scroll'><table class='data sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _pick_K(values, n=3):
    ks = sorted(set(int(k) for k in values))
    if len(ks) <= n:
        return ks
    return sorted({ks[0], ks[len(ks) // 2], ks[-1]})


def _table(key, title, intro, frame, row_classes=None):
    return {"key": key, "title": title, "intro": intro, "df": frame.reset_index(drop=True),
            "row_classes": row_classes}


def _fit_scope(problem):
    return "pooled over every problem" if str(problem) == "(all)" else f"problem {problem}"


def _tables(res):
    """Every table the data support: dicts of key (its anchor), title, intro,
    df (columns = code keys, labelled by ``reports.labels``) and row_classes."""
    df, out = res["df"], []
    probs = df.drop_duplicates("problem")[["problem", "family", "problem_params", "x_seed", "log_marginal"]]
    out.append(_table("problems", "Problems", "Each problem's observation is x = p.sample(1, seed=x_seed)[0]; "
                      "log p(x) is exact.", probs))
    jt, fit = res.get("jensen"), res.get("jensen_fit")
    if jt is not None and len(jt):
        t = pd.DataFrame({
            "problem": jt["problem"], "q": jt["q"], "kl": jt["kl"],
            "gap, gap_se": [_pm(a, b) for a, b in zip(jt["gap"], jt["gap_se"])],
            "z": jt["z"], "se_kind": jt["se_kind"] if "se_kind" in jt else "sample",
            "samples": jt["samples"],
        })
        out.append(_table("jensen", "Jensen gap vs KL, per q",
                          "gap = log p(x) − mean of the ELBO estimates, pooled over K by inverse-variance weights. "
                          "SE 'exact' = from the exact Var_q[log w] (sqrt(Var/(K R)) per cell), 'sample' = from the "
                          "replicates; both include a numerical floor of 1e-9·max(1, |log p(x)|) for the round-off "
                          "of q = posterior. The suite asserts |gap − KL| < 4 SE for every q.", t))
    if fit is not None and len(fit):
        t = pd.DataFrame({
            "problem": [("every problem" if str(p) == "(all)" else p) for p in fit["problem"]],
            "n_points": fit["n_points"],
            "slope, slope_se": [_pm(a, b) for a, b in zip(fit["slope"], fit["slope_se"])],
            "z_slope": fit["z_slope"],
            "intercept, intercept_se": [_pm(a, b) for a, b in zip(fit["intercept"], fit["intercept_se"])],
            "chi2, dof": [f"{c:.3g}/{d}" for c, d in zip(fit["chi2"], fit["dof"])],
        })
        out.append(_table("jensen_fit", "Weighted least-squares fit: gap = a + b·KL",
                          "Weights 1/SE²; the SEs of a and b treat the per-point SEs as known. "
                          "The gap is the KL exactly if b = 1 and a = 0; the suite asserts |b − 1| < 4 SE(b) and "
                          "|a| < 4 SE(a) (a fixed seed: 1 SE would fail a third of seeds by chance).", t))
    isr = df[df["estimator"] == "importance_sampling"]
    if len(isr):
        sel = isr[isr["K"].isin(_pick_K(isr["K"]))]
        khat, classes = _khat_cells(sel)
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "K": sel["K"],
            "bias, bias_se": [_pm(a, b) for a, b in zip(sel["bias"], sel["bias_se"])],
            "bias_pred": sel["bias_pred"],
            "variance": sel["variance"],
            "ratio_bias, ratio_bias_se": [_pm(a, b) for a, b in zip(sel["ratio_bias"], sel["ratio_bias_se"])],
            "rel_weight_var": sel["rel_weight_var"], "ess": sel["ess"],
        })
        t["khat"] = khat
        out.append(_table("importance_sampling", "Importance sampling: log p̂(x)",
                          "bias = mean(log p̂) − log p(x); predicted bias = −Var_q[w]/(2K p(x)²); "
                          "E[p̂/p] − 1 should be 0 (p̂ is unbiased) wherever Var_q[w] is finite. "
                          "k̂: the mean Pareto k̂ of the replicates' weights; ⚠ marks a cell whose weights' tail "
                          "is unreliable (empty: K ≤ 20, not fitted).", t, classes))
    el = df[df["estimator"] == "elbo"]
    if len(el):
        sel = el[el["K"].isin(_pick_K(el["K"]))]
        khat, classes = _khat_cells(sel)
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "K": sel["K"], "truth": sel["truth"],
            "bias, bias_se": [_pm(a, b) for a, b in zip(sel["bias"], sel["bias_se"])],
            "variance, variance_se": [_pm(a, b) for a, b in zip(sel["variance"], sel["variance_se"])],
            "K*variance": sel["variance"] * sel["K"],
        })
        t["khat"] = khat
        out.append(_table("elbo", "ELBO estimate",
                          "Unbiased for the exact ELBO at every K; K·variance = Var_q[log w].", t, classes))
    gr = F.gradient_rows(df)
    if len(gr):
        kmax = gr.groupby(["problem", "q", "objective"])["K"].transform("max")
        sel = gr[gr["K"] == kmax]
        t = pd.DataFrame({
            "problem": sel["problem"], "q": sel["q"], "objective": sel["objective"], "method": sel["method"],
            "K": sel["K"], "R": sel["R"],
            "grad_variance, grad_variance_se": [_pm(a, b) for a, b in zip(sel["variance"], sel["variance_se"])],
            "variance_ratio, variance_ratio_se": [_pm(a, b) for a, b in
                                                  zip(sel["variance_ratio"], sel["variance_ratio_se"])],
            "snr_median": sel["snr_median"], "snr_min": sel["snr_min"], "snr_floor": sel["snr_floor"],
            "bias_t_max": sel["bias_t_max"],
        })
        out.append(_table("gradients", "Gradient estimators at the largest K",
                          "Bias t-statistics are against p.elbo_grad (elbo) or estimators.iwae_gradient_reference "
                          "(iwae, its SE added in quadrature); stl is biased for iwae at K > 1 by construction.", t))
    pb = res.get("pytest_benchmark")
    if pb and pb.get("benchmarks"):
        rows = []
        for b in pb["benchmarks"]:
            s = b.get("stats", {})
            extra = b.get("extra_info", {})
            rows.append({
                "name": b.get("name"), "stats.mean": s.get("mean"), "stats.stddev": s.get("stddev"),
                "stats.min": s.get("min"), "stats.rounds": s.get("rounds"),
                "samples_per_s": extra.get("samples_per_s", math.nan),
            })
        out.append(_table("pytest_benchmark", "pytest-benchmark timings",
                          f"From {BENCHMARK_JSON} (pytest-benchmark's own JSON, with machine info). "
                          "Warm-up calls (numba compilation) are outside the timed rounds.", pd.DataFrame(rows)))
    failed = res.get("failed") or []
    if failed:
        t = pd.DataFrame(failed)
        t = t[[c for c in ("cell_id", "failure_kind", "failed") if c in t]]
        out.append(_table("failed", "Failed cells", "Cells whose estimator raised or returned a wrong shape, NaN "
                          "or inf (the reason as stored in failed.json); every other cell was computed.", t))
    skipped = res.get("skipped") or []
    if skipped:
        t = pd.DataFrame(skipped).groupby("reason").size().reset_index(name="cells")
        out.append(_table("skipped", "Skipped cells",
                          "Cells of the sweep that the estimator refuses (its own message).", t))
    return out


# --------------------------------------------------------------------------- documents
_CSS = """
:root{--fg:#1d2430;--muted:#5a6472;--line:#d5dae1;--head:#eef1f5;--accent:#0072B2;--warn:#fff1d6;--warnfg:#8a4b00}
*{box-sizing:border-box}
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);margin:0;line-height:1.45;font-size:15px}
.layout{display:grid;grid-template-columns:270px minmax(0,1fr);max-width:1500px;margin:0 auto}
nav#toc{position:sticky;top:0;align-self:start;height:100vh;overflow:auto;padding:1.2em 1em;font-size:13px;
 border-right:1px solid var(--line);background:#fafbfc}
nav#toc h2{font-size:14px;margin:0 0 .5em;border:0;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
nav#toc ol{padding-left:1.1em;margin:.2em 0}nav#toc li{margin:.15em 0}
nav#toc a{color:var(--fg);text-decoration:none}nav#toc a:hover{color:var(--accent);text-decoration:underline}
main{padding:1em 2.2em 4em;min-width:0}
@media (max-width:900px){.layout{display:block}nav#toc{position:static;max-height:none;border:0}}
h1{font-size:26px;border-bottom:2px solid #444;padding-bottom:.2em;margin-top:.4em}
h2{font-size:21px;border-bottom:1px solid var(--line);margin-top:2.2em;padding-bottom:.15em}
h3{font-size:17px;margin:1.4em 0 .4em}
section,figure,div.claim{scroll-margin-top:1em}
a.anchor{color:#aab;text-decoration:none;margin-left:.35em;font-weight:normal;visibility:hidden}
h2:hover a.anchor,h3:hover a.anchor{visibility:visible}
.glance{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:.8em 1.2em;margin:1em 0}
.glance ul{margin:.1em 0 .5em;padding-left:1.2em}.glance p{margin:.5em 0 .1em}
nav#toc .v-held{color:#1e7b34;font-weight:bold}nav#toc .v-nothold{color:#b3261e;font-weight:bold}
div.scroll{overflow-x:auto;max-width:100%}
table.data{border-collapse:collapse;font-size:12.5px;margin:.4em 0 1.6em;font-variant-numeric:tabular-nums}
table.data th,table.data td{border:1px solid var(--line);padding:3px 8px;vertical-align:top}
table.data th{background:var(--head);cursor:pointer;user-select:none;position:relative;padding-right:16px}
table.data th::after{content:"\\2195";position:absolute;right:4px;color:#b0b7c2;font-size:10px}
table.data th[aria-sort=ascending]::after{content:"\\25B2";color:var(--fg)}
table.data th[aria-sort=descending]::after{content:"\\25BC";color:var(--fg)}
table.data .num{text-align:right;white-space:nowrap}table.data .text{text-align:left}
table.data tbody tr:nth-child(even){background:#fafbfc}
table.data tr.unreliable,table.data tr.unreliable:nth-child(even){background:var(--warn)}
span.warn{color:var(--warnfg);font-weight:600;white-space:nowrap}
input.filter{font-size:12.5px;padding:3px 6px;margin:.3em 0 0;width:18em;border:1px solid var(--line);border-radius:4px}
span.count{font-size:12px;color:var(--muted);margin-left:.6em}
details{margin:.4em 0 1em}details>summary{cursor:pointer;color:var(--accent);font-size:14px}
figure{margin:1.2em 0 2em}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13.5px;color:#3b4350;max-width:62em}
p.note{font-size:13.5px;color:var(--muted);max-width:62em}
span.held{color:#fff;background:#1e7b34;padding:1px 7px;border-radius:3px;font-weight:bold;font-size:.85em}
span.nothold{color:#fff;background:#b3261e;padding:1px 7px;border-radius:3px;font-weight:bold;font-size:.85em}
div.claim{border-left:4px solid var(--line);padding-left:1.1em;margin:2em 0}
div.claim.held{border-left-color:#1e7b34}div.claim.nothold{border-left-color:#b3261e}
"""

#: sort by a click on a header (numbers by data-v, text lexically; empty cells last), and a filter box per
#: table of 6 rows or more
_JS = """
(function(){
 var FILTER_MIN=6;
 document.querySelectorAll('table.sortable').forEach(function(t){
  var tb=t.tBodies[0],rows=Array.prototype.slice.call(tb.rows);
  if(rows.length>=FILTER_MIN){
  var box=document.createElement('div'),f=document.createElement('input'),n=document.createElement('span');
  f.type='search';f.className='filter';f.placeholder='filter rows ('+rows.length+')';
  f.setAttribute('aria-label','filter the rows of this table');n.className='count';
  box.appendChild(f);box.appendChild(n);var w=t.parentNode;w.parentNode.insertBefore(box,w);
  f.addEventListener('input',function(){
   var s=f.value.trim().toLowerCase(),shown=0;
   rows.forEach(function(r){var hide=s!==''&&r.textContent.toLowerCase().indexOf(s)<0;r.hidden=hide;if(!hide)shown++;});
   n.textContent=s===''?'':shown+' of '+rows.length+' rows';
  });}
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
   th.tabIndex=0;
   function sort(){
    var asc=th.getAttribute('aria-sort')!=='ascending',num=th.classList.contains('num');
    Array.prototype.forEach.call(th.parentNode.cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var r=Array.prototype.slice.call(tb.rows);
    r.sort(function(a,b){
     var x=a.cells[i],y=b.cells[i];
     if(num){var u=parseFloat(x.dataset.v),v=parseFloat(y.dataset.v);
      if(isNaN(u))return isNaN(v)?0:1;if(isNaN(v))return -1;return asc?u-v:v-u;}
     var c=x.textContent.localeCompare(y.textContent,undefined,{numeric:true});return asc?c:-c;});
    r.forEach(function(row){tb.appendChild(row);});
   }
   th.addEventListener('click',sort);
   th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sort();}});
  });
 });
})();
"""

#: tables with more rows than this are collapsed (<details>) by default
COLLAPSE_ROWS = 12


def _slug(s):
    """A stable anchor fragment from an id or file stem (letters, digits, - and _ kept)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in str(s))


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


def _badge(verdict):
    css = "held" if verdict == "held" else "nothold"
    return f"<span class='{css}'>{html.escape(verdict)}</span>"


def _claims_overview(claims):
    return pd.DataFrame({
        "#": list(range(1, len(claims) + 1)),
        "title": [_Cell(c["title"], f"<a href='#claim-{_slug(c['id'])}'>{html.escape(c['title'])}</a>")
                  for c in claims],
        "verdict": [_Cell(c["verdict"], _badge(c["verdict"])) for c in claims],
        "mode": [c.get("mode", "") for c in claims],
        "seconds": [float(c.get("seconds", math.nan)) for c in claims],
    })


def _anchor(id_):
    return f"<a class='anchor' href='#{id_}' aria-label='link to this section'>#</a>"


def _claims_section(claims, manifest, d):
    """(markdown lines, html parts) of the Claims section."""
    figs = {m["claim"]: m for m in manifest if m.get("section") == "claims"}
    held = sum(c["verdict"] == "held" for c in claims)
    intro = (f"The lecture's claims, each decided by a rule stated before measuring: {held} of {len(claims)} held. "
             "Every number below is computed by bench/claims (exact answers or Monte Carlo estimates with their "
             "standard errors); the verdict is the rule applied to these numbers.")
    over = _claims_overview(claims)
    md = ["<a id=\"claims\"></a>", "", "## Claims", "", intro, "", _md_table(over), ""]
    h = ["<section id='claims'>", "<h2>Claims</h2>", f"<p>{html.escape(intro)}</p>", _html_table(over)]
    for i, c in enumerate(claims, start=1):
        v, cid = c["verdict"], f"claim-{_slug(c['id'])}"
        order = [k for k in c.get("number_order", []) if k in c["numbers"]]
        order += [k for k in c["numbers"] if k not in order]
        nums = pd.DataFrame({"number": [L.number_label(k) for k in order],
                             "value": [_fmt_number(c["numbers"][k]) for k in order]})
        md += [f"<a id=\"{cid}\"></a>", "", f"### Claim {i}: {c['title']} — **{v}**", "",
               f"**Statement.** {c['statement']}", "", f"**Rule.** {c['rule']}", ""]
        css = "held" if v == "held" else "nothold"
        h += [f"<div class='claim {css}' id='{cid}'><h3>Claim {i}: {html.escape(c['title'])} "
              f"{_badge(v)}{_anchor(cid)}</h3>",
              f"<p><b>Statement.</b> {html.escape(c['statement'])}</p>",
              f"<p><b>Rule.</b> {html.escape(c['rule'])}</p>"]
        m = figs.get(c["id"])
        if m is not None and (d / "figures" / m["file"]).is_file():
            data = base64.b64encode((d / "figures" / m["file"]).read_bytes()).decode("ascii")
            md += [f"![{c['title']}](figures/{m['file']})", ""]
            h.append(f"<figure id='fig-{_slug(Path(m['file']).stem)}'><img alt='{html.escape(c['title'])}' "
                     f"src='data:image/png;base64,{data}'></figure>")
        else:
            md += ["(figure not drawn yet: run `python -m bench report DIR`)", ""]
            h.append("<p class='note'>(figure not drawn yet: run <code>python -m bench report DIR</code>)</p>")
        # Markdown cannot hover: the claims.json key follows each label
        nums_md = pd.DataFrame({"number": [f"{lab} (`{k}`)" for lab, k in zip(nums["number"], order)],
                                "value": nums["value"]})
        md += ["**Numbers.**", "", _md_table(nums_md), ""]
        # each quantity's label, with its claims.json key one hover away
        rows = [_Cell(lab, f"<span title='{html.escape(k)}'>{html.escape(lab)}</span>")
                for lab, k in zip(nums["number"], order)]
        nums_h = pd.DataFrame({"number": rows, "value": nums["value"]})
        h += ["<p><b>Numbers.</b></p>",
              _html_table(nums_h, kinds={"number": "text", "value": "num"},
                          titles={"number": "hover a quantity for its key in claims.json", "value": "value"})]
        for note in c.get("notes", []):
            md += [f"- {note}"]
            h.append(f"<p class='note'>{html.escape(note)}</p>")
        md += ["", f"**Verdict: {v}** ({c.get('mode', '')} mode, {float(c.get('seconds', math.nan)):.1f} s).", ""]
        h.append(f"<p><b>Verdict:</b> {_badge(v)} "
                 f"({html.escape(str(c.get('mode', '')))} mode, {float(c.get('seconds', math.nan)):.1f} s)</p></div>")
    h.append("</section>")
    return md, h


def _unreliable_table(df):
    bad = df[unreliable_mask(df)]
    cols = [c for c in ("problem", "q", "estimator", "K", "khat", "khat_threshold", "khat_unreliable") if c in bad]
    t = bad[cols].copy()
    if "khat" in t:
        t["khat"] = [_Cell(f"⚠ k̂ {k:.2f}", f"<span class='warn'>⚠ k̂ {k:.2f}</span>", float(k)) for k in t["khat"]]
    return t.reset_index(drop=True)


def _summary(res):
    """(plain lines, [(label, [(text, href or None)])] of the at-a-glance lists)."""
    df = res["df"]
    n_sk = len(res.get("skipped") or [])
    n_fail = len(res.get("failed") or [])
    lines = [
        f"{len(df)} cells: {df['problem'].nunique()} problem(s), {df['q'].nunique()} proposal(s) q, "
        f"estimators {', '.join(sorted(df['estimator'].unique()))}, K from {int(df['K'].min())} to "
        f"{int(df['K'].max())}" + (f"; {n_sk} cell(s) skipped" if n_sk else "")
        + (f"; {n_fail} cell(s) failed" if n_fail else "") + ".",
        "Every number is measured against an exact answer; ± is one standard error. "
        "The full tidy table is benchmarks.parquet (one row per cell).",
    ]
    glance = []
    claims = res.get("claims") or []
    if claims:
        held = [c for c in claims if c["verdict"] == "held"]
        lines.append(f"The lecture's claims: {len(held)} of {len(claims)} held"
                     + ("; did not hold: " + "; ".join(c["title"] for c in claims if c["verdict"] != "held")
                        if len(held) < len(claims) else "") + " (section Claims).")
        glance.append((f"Held ({len(held)} of {len(claims)} claims)",
                       [(c["title"], f"#claim-{_slug(c['id'])}") for c in held] or [("none", None)]))
        glance.append(("Did not hold", [(c["title"], f"#claim-{_slug(c['id'])}") for c in claims
                                        if c["verdict"] != "held"] or [("none: every claim held", None)]))
    fit = res.get("jensen_fit")
    if fit is not None and len(fit):
        f = fit.iloc[-1]
        z = (f["slope"] - 1) / f["slope_se"] if f["slope_se"] > 0 else math.nan
        text = (f"Jensen gap = KL: fitted slope {f['slope']:.5f} ± {f['slope_se']:.5f} ({z:+.1f} SE from 1) over "
                f"{int(f['n_points'])} (problem, q) points, {_fit_scope(f['problem'])}.")
        lines.append(text)
        glance.append(("Sweep checks", [(text, "#table-jensen_fit")]))
    bad = unreliable_mask(df)
    fitted = int(np.isfinite(df["khat"].to_numpy(float)).sum()) if "khat" in df else 0
    if bad.any():
        ub = df[bad]
        text = [(f"{r['problem']}, q = {r['q']}, {r['estimator']}, K = {int(r['K'])}: k̂ {r['khat']:.2f} > "
                 f"{r['khat_threshold']:.2f}", "#table-unreliable") for _, r in ub.iterrows()]
        glance.append((f"Unreliable cells ({int(bad.sum())} of {fitted} with a fitted k̂; marked ⚠ in the tables)",
                       text))
    elif "khat" in df:
        glance.append(("Unreliable cells", [(f"none: all {fitted} cells with a fitted Pareto k̂ are below their "
                                             "threshold (k̂ is not fitted at K ≤ 20)", None)]))
    if n_fail:
        glance.append(("Failed cells", [(f"{n_fail} cell(s) failed; their reasons", "#table-failed")]))
    return lines, glance


def _toc(entries):
    """entries: [(label, href, [(label, href[, verdict]), ...])] -> (markdown lines, html)."""
    md, h = ["## Contents", ""], ["<nav id='toc' aria-label='contents'><h2>Contents</h2><ol>"]
    for label, href, children in entries:
        md.append(f"- [{label}]({href})")
        h.append(f"<li><a href='{href}'>{html.escape(label)}</a>")
        if children:
            h.append("<ol>")
            for cl, ch, *verdict in children:
                md.append(f"  - [{cl}]({ch})" + (f" — {verdict[0]}" if verdict else ""))
                mark = ""
                if verdict:
                    ok = verdict[0] == "held"
                    mark = (f"<span class='{'v-held' if ok else 'v-nothold'}' title='{html.escape(verdict[0])}'>"
                            f"{'✓' if ok else '✗'}</span> ")
                h.append(f"<li>{mark}<a href='{ch}'>{html.escape(cl)}</a></li>")
            h.append("</ol>")
        h.append("</li>")
    h.append("</ol></nav>")
    return md + [""], "".join(h)


def _table_html(t):
    id_ = f"table-{_slug(t['key'])}"
    body = _html_table(t["df"], row_classes=t.get("row_classes"))
    n = len(t["df"])
    if n > COLLAPSE_ROWS:
        body = f"<details><summary>Show the table ({n} rows)</summary>{body}</details>"
    return (f"<section id='{id_}'><h2>{html.escape(t['title'])}{_anchor(id_)}</h2>"
            f"<p class='note'>{html.escape(t['intro'])}</p>{body}</section>")


def render_documents(results_dir):
    """Write report.html and report.md from the tables and figures/manifest.json.

    Both open with a table of contents and a summary (what held, what did
    not, which cells are unreliable); every section, claim, figure and table
    has a stable anchor derived from its id or file stem (``#claim-<id>``,
    ``#fig-<stem>``, ``#table-<key>``).  The HTML is one self-contained file:
    figures embedded as base64 PNG, a few lines of inline script that sort a
    table by a click on a header and filter its rows, nothing fetched."""
    d = Path(results_dir)
    res = load_results(d)
    manifest_path = d / "figures" / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"results_dir: {str(d)!r} has no figures/manifest.json; run build_report first")
    manifest = json.loads(manifest_path.read_text())
    tables = _tables(res)
    title = "evidence-bench report"
    name = (res.get("sweep") or [{}])[0].get("name", d.name) if res.get("sweep") else d.name
    summary, glance = _summary(res)
    claims = res.get("claims") or []
    figures = [m for m in manifest if m.get("section") != "claims"]
    bad = _unreliable_table(res["df"])

    toc = [("Summary", "#summary", [])]
    if claims:
        toc.append(("Claims", "#claims", [(c["title"], f"#claim-{_slug(c['id'])}", c["verdict"]) for c in claims]))
    toc.append(("Figures", "#figures", [(m["title"], f"#fig-{_slug(Path(m['file']).stem)}") for m in figures]))
    data_entries = [(t["title"], f"#table-{_slug(t['key'])}") for t in tables]
    if len(bad):
        data_entries.insert(0, ("Unreliable cells", "#table-unreliable"))
    toc.append(("Tables", "#tables", data_entries))
    toc_md, toc_h = _toc(toc)

    md = [f"# {title}: {name}", ""] + toc_md + ["<a id=\"summary\"></a>", "", "## Summary", ""]
    md += [s + "  " for s in summary[:2]] + [""]
    for label, items in glance:
        md.append(f"**{label}**")
        md += [f"- [{t}]({href})" if href else f"- {t}" for t, href in items]
        md.append("")
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
         f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
         f"<title>{html.escape(title)}: {html.escape(name)}</title><style>{_CSS}</style></head><body>",
         "<div class='layout'>", toc_h, "<main>",
         f"<h1>{html.escape(title)}: {html.escape(name)}</h1>", "<section id='summary'><h2>Summary</h2>"]
    h += [f"<p>{html.escape(s)}</p>" for s in summary[:2]]
    h.append("<div class='glance'>")
    for label, items in glance:
        h.append(f"<p><b>{html.escape(label)}</b></p><ul>")
        h += [f"<li><a href='{href}'>{html.escape(t)}</a></li>" if href else f"<li>{html.escape(t)}</li>"
              for t, href in items]
        h.append("</ul>")
    h.append("</div></section>")
    if claims:
        c_md, c_h = _claims_section(claims, manifest, d)
        md += c_md
        h += c_h
    md += ["<a id=\"figures\"></a>", "", "## Figures", ""]
    h.append("<section id='figures'><h2>Figures</h2>")
    for m in figures:
        png = d / "figures" / m["file"]
        fid = f"fig-{_slug(Path(m['file']).stem)}"
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        md += [f"<a id=\"{fid}\"></a>", "", f"### {m['title']}", "", f"![{m['title']}](figures/{m['file']})", "",
               m["caption"], ""]
        h.append(f"<figure id='{fid}'><h3>{html.escape(m['title'])}{_anchor(fid)}</h3>"
                 f"<img alt='{html.escape(m['title'])}' src='data:image/png;base64,{data}'>"
                 f"<figcaption>{html.escape(m['caption'])}</figcaption></figure>")
    h.append("</section>")
    md += ["<a id=\"tables\"></a>", "", "## Tables", ""]
    h.append("<section id='tables'><h2>Tables</h2>"
             "<p class='note'>Click a column header to sort (again: reverse); type in a table's box to filter its "
             "rows. Hover a header for the column's key in benchmarks.parquet. Long tables are collapsed.</p>")
    if len(bad):
        intro = ("Cells whose importance weights have an unreliable tail: the mean Pareto k̂ of the replicates is "
                 "above the threshold min(1 − 1/log₁₀ K, 0.7), or more than half of the replicates are; their "
                 "means and variances converge too slowly to trust (Vehtari et al., Pareto smoothed importance "
                 "sampling, 2024).")
        md += ["<a id=\"table-unreliable\"></a>", "", "### Unreliable cells", "", intro, "", _md_table(bad), ""]
        h.append(_table_html({"key": "unreliable", "title": "Unreliable cells", "intro": intro, "df": bad,
                              "row_classes": ["unreliable"] * len(bad)}).replace("<h2>", "<h3>").replace(
            "</h2>", "</h3>"))
    for t in tables:
        md += [f"<a id=\"table-{_slug(t['key'])}\"></a>", "", f"### {t['title']}", "", t["intro"], "",
               _md_table(t["df"]), ""]
        h.append(_table_html(t).replace("<h2>", "<h3>").replace("</h2>", "</h3>"))
    h += ["</section>", "</main></div>", f"<script>{_JS}</script>", "</body></html>"]
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
