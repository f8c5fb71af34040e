r"""The lecture's claims in the report: read ``claims.json`` and the
``claims_<id>__<table>.parquet`` tables that ``bench.claims`` wrote into a
results directory, and draw each claim's figure.

Nothing here computes a claim's number or verdict: they are read as written.
The figure functions take DataFrames (and the claim's numbers for the
thresholds its rule states) and return a ``matplotlib.figure.Figure`` built
without pyplot, like ``reports.figures``:

* ``missing_pixels_figure``   held-out digits with the top half missing, the posterior mean and
                              completions from the exact posterior and from each q, and
                              log p̂ − log p(x) vs K;
* ``single_sample_bias_figure``  E[log p̂] vs K between the ELBO and log p(x), and E[p̂/p];
* ``elbo_plus_kl_figure``     the Monte Carlo Jensen gap against the exact KL;
* ``lecture_question_figure`` the bimodal posterior with N(2, 2) and N(−4, 0.75) in both readings;
* ``reparam_variance_figure`` gradient variance per method vs K and the ratio to reparam;
* ``training_figure``         exact training curves of the linear VAE / SVI runs.

``claim_figure(claim)`` picks the function named by the claim's ``figure``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .figures import jensen_gap_vs_kl
from . import claims_digits

__all__ = [
    "CLAIMS_JSON",
    "load_claims",
    "claim_figure",
    "missing_pixels_figure",
    "single_sample_bias_figure",
    "elbo_plus_kl_figure",
    "lecture_question_figure",
    "reparam_variance_figure",
    "training_figure",
]

CLAIMS_JSON = "claims.json"
# Okabe & Ito's colour-blind-safe colours, the same per method as reports.figures
_BLUE, _VERMILLION, _GREEN, _PURPLE, _ORANGE, _SKY = "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"
_Q_COLORS = {"uniform (φ = 0.5)": _VERMILLION, "φ = 1": "#6b6b6b", "φ = posterior marginals": _BLUE}
_METHOD_COLORS = {"reparam": _BLUE, "score_loo": _ORANGE, "score": _VERMILLION}
_RUN_COLORS = [_BLUE, _VERMILLION, _GREEN, _PURPLE, _ORANGE, _SKY]


def _legend_below(fig, fontsize=8, ncol=3):
    """One legend for every panel's entries (each label once), under the panels: outside the data."""
    handles, labels = [], []
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("_"):
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", fontsize=fontsize, ncol=min(ncol, len(labels)))


def _unjson(v):
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, list):
        return [_unjson(u) for u in v]
    return v


def load_claims(results_dir):
    """The claims of a results directory, in order: a list of dicts (the
    entries of claims.json, numbers decoded) with ``tables`` mapping each
    table's name to its DataFrame.  [] when the directory has no claims.json."""
    d = Path(results_dir)
    f = d / CLAIMS_JSON
    if not f.is_file():
        return []
    entries = json.loads(f.read_text())["claims"]
    out = []
    for e in sorted(entries, key=lambda e: e.get("order", 0)):
        e = dict(e)
        e["numbers"] = {k: _unjson(v) for k, v in e["numbers"].items()}
        tables = {}
        for name, fname in e.get("tables", {}).items():
            path = d / fname
            if not path.is_file():
                raise ValueError(f"results_dir: claim {e['id']!r} lists {fname}, which is missing")
            tables[name] = pd.read_parquet(path)
        e["tables"] = tables
        out.append(e)
    return out


def _require(df, columns, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df: {what} needs columns {missing}")


# --------------------------------------------------------------------------- missing pixels
def _image_axes_style(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_color("0.7")


def _missing_pixels_layout(images, pix):
    """Rows of the image grid: per measured image (column ``image``; one image
    when absent) a row with its single panels (observation, digit, posterior
    mean, ...) then the samples of its first multi-sample panel (the exact
    posterior's); after them one row per other multi-sample panel (each q's).
    Each row is (label, [(panel title or "", pixel values, framed)])."""
    if "image" not in images.columns:
        images = images.assign(image=0)
    layout, q_rows = [], []
    for k, g in images.groupby("image", sort=True):
        title = str(g["title"].iloc[0]) if "title" in g.columns else f"image {k}"
        panels = list(dict.fromkeys(g["panel"]))
        singles = [pn for pn in panels if (g["panel"] == pn).sum() == 1]
        multi = [pn for pn in panels if pn not in singles]
        first = [pn for pn in multi if not pn.startswith("q:")][:1]
        cells = [(pn, g.loc[g["panel"] == pn, pix].iloc[0], pn.startswith("posterior mean")) for pn in singles]
        for pn in first:
            sub = g[g["panel"] == pn].sort_values("sample")
            cells += [(pn if j == 0 else "", r[pix], True) for j, (_, r) in enumerate(sub.iterrows())]
        layout.append((title, cells))
        for pn in multi:
            if pn in first:
                continue
            sub = g[g["panel"] == pn].sort_values("sample")
            q_rows.append((f"{title}\n{pn}", [("", r[pix], True) for _, r in sub.iterrows()]))
    return layout + q_rows


def missing_pixels_figure(images, errors, latent_rows=4):
    r"""The lecture's "complete the top half of the digit".

    Top, one row per measured image (held-out real digits, or the glyph 9):
    the observed image x (missing pixels hatched red), the digit itself (and
    its grey levels), the posterior-mean completion :math:`E[z|x]` (grey =
    :math:`P(z_j = 1|x)`) and completions z drawn from the exact posterior
    p(z|x); then a row of completions from each q for the first image (the
    completed top ``latent_rows`` rows are framed).  ``images`` has columns
    panel, sample, p00..p63 (NaN = missing), and optionally image (which
    measured image) and title (its name).

    Bottom: the error :math:`\log\hat p(x) - \log p(x)` of uniform Monte Carlo
    and of importance sampling under each q, vs K (pooled over the measured
    images): left the mean over the replicates ±2 SE (symlog axis: the errors
    span 1e-4 to 1e2 nats and have a sign); right the RMSE
    :math:`\sqrt{E[(\log\hat p - \log p)^2]}` ±1 SE on log-log axes, with the
    exact error of φ = 1 (a constant, ``exact_error``) dashed.  ``errors``:
    columns q, K, R, mean_error, sd_error, rmse, rmse_se, exact_error.
    """
    _require(images, ["panel", "sample", "p00"], "missing_pixels_figure")
    _require(errors, ["q", "K", "R", "mean_error", "sd_error", "rmse", "rmse_se", "exact_error"],
             "missing_pixels_figure")
    pix = [c for c in images.columns if c.startswith("p") and c[1:].isdigit()]
    side = int(round(math.sqrt(len(pix))))
    if side * side != len(pix):
        raise ValueError(f"images: expected a square number of pixel columns, got {len(pix)}")
    layout = _missing_pixels_layout(images, pix)
    n_cols = max(len(cells) for _, cells in layout)

    fig = Figure(figsize=(max(13.0, 1.05 * n_cols + 2.5), 1.15 * len(layout) + 6.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15 * len(layout) + 0.6, 5.9])
    grid = top.add_gridspec(len(layout), n_cols + 1, width_ratios=[2.2] + [1] * n_cols)
    cmap = matplotlib.colormaps["Greys"].with_extremes(bad="white")

    def draw(ax, vec, missing_frame):
        img = np.asarray(vec, float).reshape(side, side)
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if np.isnan(img).any():
            ax.add_patch(Rectangle((-0.5, -0.5), side, latent_rows, fill=False, hatch="///", ec=_VERMILLION, lw=0))
        if missing_frame:
            ax.add_patch(Rectangle((-0.5, -0.5), side, latent_rows, fill=False, ec=_ORANGE, lw=1.5))
        _image_axes_style(ax)

    for i, (label, cells) in enumerate(layout):
        label_ax = top.add_subplot(grid[i, 0])
        label_ax.axis("off")
        label_ax.text(1.0, 0.5, label, ha="right", va="center", fontsize=8, transform=label_ax.transAxes)
        for j, (title, vec, framed) in enumerate(cells):
            ax = top.add_subplot(grid[i, j + 1])
            draw(ax, vec, framed)
            if title:
                ax.set_title(title, fontsize=6.5)
    top.suptitle(f"Completing the missing top half ({latent_rows} rows, hatched): the posterior mean and samples "
                 "of z from the exact posterior, and from each q (completed rows framed)", fontsize=11)

    ax_mean, ax_rmse = bottom.subplots(1, 2)
    for q, g in errors.groupby("q", sort=False):
        g = g.sort_values("K")
        color = _Q_COLORS.get(q, None)
        K = g["K"].to_numpy(float)
        R = sorted(set(int(r) for r in g["R"]))
        label = (f"uniform MC, {q}" if q.startswith("uniform") else f"IS, q with {q}") + f" (R = {'/'.join(map(str, R))})"
        eb = ax_mean.errorbar(K, g["mean_error"], yerr=2 * g["mean_error_se"], marker="o", ms=4, capsize=3,
                              color=color, label=label)
        eb.lines[0].set_gid(f"mean_error:{q}")
        y, se = g["rmse"].to_numpy(float), g["rmse_se"].to_numpy(float)
        ok = y > 0
        eb = ax_rmse.errorbar(K[ok], y[ok], yerr=np.vstack([np.minimum(se[ok], 0.9 * y[ok]), se[ok]]), marker="o",
                              ms=4, capsize=3, color=color, label=label)
        eb.lines[0].set_gid(f"rmse:{q}")
        exact = g["exact_error"].to_numpy(float)
        if np.isfinite(exact).any():
            e = float(exact[np.isfinite(exact)][0])
            ax_mean.axhline(e, color=color, ls="--", lw=1)
            ax_rmse.axhline(abs(e), color=color, ls="--", lw=1,
                            label=f"φ = 1, exact: log p(x, z = 1) − log p(x) = {e:.1f} at every K")
    ax_mean.axhline(0, color="k", lw=0.8)
    lo = float(np.nanmin(errors["mean_error"] - 2 * errors["mean_error_se"]))
    hi = float(np.nanmax(errors["mean_error"] + 2 * errors["mean_error_se"]))
    ax_mean.set_ylim(min(lo * 1.8, -1e-2), max(hi * 1.8, 1e-2))
    ax_mean.set_xscale("log")
    ax_mean.set_yscale("symlog", linthresh=1e-3)
    ax_mean.set_xlabel("K (samples per estimate)")
    ax_mean.set_ylabel(r"mean of $\log\hat p(x) - \log p(x)$  [nats] (±2 SE)")
    ax_mean.set_title("Mean error of the log estimate (symlog axis; 0 = exact)")
    ax_rmse.set_xscale("log")
    ax_rmse.set_yscale("log")
    ax_rmse.set_xlabel("K (samples per estimate)")
    ax_rmse.set_ylabel(r"RMSE of $\log\hat p(x)$  [nats] (±1 SE)")
    ax_rmse.set_title("Root-mean-square error")
    for ax in (ax_mean, ax_rmse):
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax_rmse.get_legend_handles_labels()
    bottom.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    bottom.suptitle("Uniform Monte Carlo vs importance sampling: log p̂(x) − log p(x) against K", fontsize=11)
    return fig


# --------------------------------------------------------------------------- single-sample bias
def single_sample_bias_figure(table):
    r"""Left: the mean of log p̂(x) over R replicates vs K (±2 SE), between the
    exact ELBO(q) (its expectation at K = 1) and log p(x) (its limit).  Right:
    the mean of p̂/p (±2 exact SE, from Var_q[w]), which is 1 at every K."""
    _require(table, ["K", "R", "mean_log_p_hat", "mean_log_p_hat_se", "mean_ratio", "mean_ratio_se_exact",
                     "log_p_x", "elbo"], "single_sample_bias_figure")
    t = table.sort_values("K")
    K = t["K"].to_numpy(float)
    log_p, elbo = float(t["log_p_x"].iloc[0]), float(t["elbo"].iloc[0])
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    eb = a.errorbar(K, t["mean_log_p_hat"], yerr=2 * t["mean_log_p_hat_se"], marker="o", ms=4, capsize=3,
                    color=_BLUE, label=r"mean of $\log\hat p(x)$ (±2 SE)")
    eb.lines[0].set_gid("mean_log_p_hat")
    a.axhline(log_p, color="k", lw=1.2, label=f"log p(x) = {log_p:.4f} (exact)")
    a.axhline(elbo, color=_VERMILLION, ls="--", lw=1.2, label=f"ELBO(q) = {elbo:.4f} (exact)")
    a.set_xscale("log")
    a.set_xlabel("K (samples per estimate)")
    a.set_ylabel(r"$E[\log\hat p(x)]$  [nats]")
    a.set_title(r"Mean of $\log\hat p$ vs K (theory: the ELBO at K = 1, log p(x) as K → ∞)")
    a.grid(True, alpha=0.3)
    eb = b.errorbar(K, t["mean_ratio"], yerr=2 * t["mean_ratio_se_exact"], marker="s", ms=4, capsize=3,
                    color=_GREEN, label=r"mean of $\hat p(x)/p(x)$ (±2 exact SE)")
    eb.lines[0].set_gid("mean_ratio")
    b.axhline(1.0, color="k", lw=1, label="1 (unbiased)")
    b.set_xscale("log")
    b.set_xlabel("K (samples per estimate)")
    b.set_ylabel(r"$E[\hat p(x)] / p(x)$")
    b.set_title(r"Mean of $\hat p/p$ vs K (theory: 1 at every K)")
    b.grid(True, alpha=0.3)
    _legend_below(fig)
    Rs = sorted(set(int(r) for r in t["R"]))
    fig.suptitle("The single-sample log estimate is biased: E[log p̂] at K = 1 is the ELBO, not log p(x) "
                 f"(R = {'/'.join(map(str, Rs))} replicates)")
    return fig


# --------------------------------------------------------------------------- ELBO + KL
def elbo_plus_kl_figure(table, tolerance_se=4.0):
    """``reports.figures.jensen_gap_vs_kl`` on the claim's table (problem, q,
    kl, gap, gap_se): the Monte Carlo gap log p(x) − E[ELBO estimate] against
    the exact KL on y = x, residuals in SE below."""
    fig = jensen_gap_vs_kl(table, None, tolerance_se=tolerance_se)
    for ax in fig.axes:  # under two decades, label 1-2-5 ticks instead of colliding minor labels
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if axis.get_scale() == "log" and lim[0] > 0 and lim[1] / lim[0] < 100:
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
    K = sorted(set(int(k) for k in table["K"])) if "K" in table else []
    R = sorted(set(int(r) for r in table["R"])) if "R" in table else []
    fig.suptitle("ELBO + KL = log p(x): the Monte Carlo gap log p(x) − mean ELBO estimate vs the exact "
                 f"KL(q ‖ p(z|x)) (K = {'/'.join(map(str, K))}, R = {'/'.join(map(str, R))})")
    return fig


# --------------------------------------------------------------------------- the lecture's question
def lecture_question_figure(densities, summary):
    r"""Left: the exact posterior p(z|x) of MixturePrior.lecture() (grey) with
    the two candidate q, read as N(μ, σ²) (solid) and as N(μ, σ) (dashed);
    the legend carries each KL(q ‖ p).  Right: KL(q ‖ p) (the ELBO's
    divergence) and KL(p ‖ q) for the four q, log scale."""
    _require(densities, ["z", "posterior"], "lecture_question_figure")
    _require(summary, ["reading", "role", "q", "kl", "kl_forward"], "lecture_question_figure")
    fig = Figure(figsize=(13, 5), layout="constrained")
    a, b = fig.subplots(1, 2, width_ratios=[1.5, 1])
    z = densities["z"].to_numpy(float)
    a.fill_between(z, densities["posterior"], color="0.8", label="exact posterior p(z|x)")
    a.plot(z, densities["posterior"], color="0.3", lw=1.2, gid="posterior")
    for r in summary.itertuples():
        color = _BLUE if r.role == "good" else _VERMILLION
        ls = "-" if r.reading == "variance" else "--"
        a.plot(z, densities[r.q], color=color, ls=ls, lw=1.6, gid=f"q:{r.q}",
               label=f"{r.q}: KL(q‖p) = {r.kl:.3f}")
    a.set_xlabel("z")
    a.set_ylabel("density")
    a.set_title("The bimodal posterior and the two candidates")
    a.grid(True, alpha=0.3)
    x = np.arange(len(summary))
    w = 0.38
    a1 = b.bar(x - w / 2, summary["kl"], w, color=_PURPLE, label="KL(q ‖ p)  (the ELBO's)")
    a2 = b.bar(x + w / 2, summary["kl_forward"], w, color=_GREEN, label="KL(p ‖ q)")
    for bars in (a1, a2):
        for rect in bars:
            b.text(rect.get_x() + rect.get_width() / 2, rect.get_height(), f"{rect.get_height():.2f}",
                   ha="center", va="bottom", fontsize=7)
    b.set_xticks(x)
    b.set_xticklabels([q.replace(" read as ", "\nas ") for q in summary["q"]], fontsize=7)
    b.set_yscale("log")
    b.set_ylabel("KL divergence [nats]")
    b.set_title("Both directions, both readings")
    b.grid(True, axis="y", alpha=0.3)
    _legend_below(fig)
    fig.suptitle("Which approximates p(z|x) better: N(2, 2) or N(−4, 0.75)?  (exact, by quadrature)")
    return fig


# --------------------------------------------------------------------------- reparameterization
def reparam_variance_figure(table, n_se=5.0):
    r"""Left: tr Cov(ĝ) of each ELBO-gradient estimator vs K (log-log, ±1 SE),
    one colour per method, one line style per q.  Right: the variance ratio
    to reparam, :math:`\operatorname{tr}\mathrm{Cov}(\text{method}) /
    \operatorname{tr}\mathrm{Cov}(\text{reparam})`, with ±``n_se`` SE bars
    (the claim's rule) and the line ratio = 1."""
    _require(table, ["q", "K", "method", "variance", "variance_se", "ratio_to_reparam", "ratio_to_reparam_se"],
             "reparam_variance_figure")
    fig = Figure(figsize=(12.5, 5), layout="constrained")
    a, b = fig.subplots(1, 2)
    styles = ["-", "--", ":", "-."]
    for i, (q, gq) in enumerate(table.groupby("q", sort=False)):
        ls = styles[i % len(styles)]
        for method, g in gq.groupby("method", sort=False):
            g = g.sort_values("K")
            color = _METHOD_COLORS.get(method, "0.3")
            K = g["K"].to_numpy(float)
            v, se = g["variance"].to_numpy(float), g["variance_se"].to_numpy(float)
            eb = a.errorbar(K, v, yerr=np.vstack([np.minimum(se, 0.9 * v), se]), color=color, ls=ls, marker="o",
                            ms=4, capsize=2, label=f"{method}, q = {q}")
            eb.lines[0].set_gid(f"variance:{method}:{q}")
            if method != "reparam":
                r, rse = g["ratio_to_reparam"].to_numpy(float), g["ratio_to_reparam_se"].to_numpy(float)
                eb = b.errorbar(K, r, yerr=np.vstack([np.minimum(n_se * rse, 0.95 * r), n_se * rse]), color=color,
                                ls=ls, marker="s", ms=4, capsize=3, label=f"{method} / reparam, q = {q}")
                eb.lines[0].set_gid(f"ratio:{method}:{q}")
    b.axhline(1.0, color="k", lw=1)
    methods = list(dict.fromkeys(table["method"]))
    qs = list(dict.fromkeys(table["q"]))
    handles = [Line2D([], [], color=_METHOD_COLORS.get(m, "0.3"), marker="o", label=m) for m in methods]
    handles += [Line2D([], [], color="k", ls=styles[i % len(styles)], label=f"q = {q}") for i, q in enumerate(qs)]
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (samples per estimate)")
        ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=handles + [Line2D([], [], color="k", lw=1, label="ratio = 1 (right)")], fontsize=8,
               loc="outside right center")
    a.set_ylabel(r"tr Cov$(\hat g)$ (±1 SE)")
    a.set_title("Variance of the ELBO-gradient estimators")
    b.set_ylabel(f"variance ratio to reparam (±{n_se:g} SE)")
    b.set_title("Score function over pathwise (> 1: reparam is less noisy)")
    R = sorted(set(int(r) for r in table["R"])) if "R" in table else []
    fig.suptitle("The reparameterization trick: gradient variance, score function vs pathwise "
                 f"(MixturePrior.lecture(), R = {'/'.join(map(str, R))})")
    return fig


# --------------------------------------------------------------------------- training curves
def training_figure(curves, steps=None, numbers=None):
    r"""Exact training curves (every value closed form, from the fitted θ and φ).

    Without ``steps`` (the VAE/SVI claim): left the average log-likelihood
    below the PPCA maximum, right the exact ELBO gap (average KL), both log y,
    per run, with the rule's thresholds (``numbers['eps']``, ``numbers['gap_tol']``)
    dashed.  With ``steps`` (a steps-to-reach claim): the ELBO below the PPCA
    maximum per run (colour = method, one line per seed), each run's
    tolerance (25% of its initial gap) as a dotted segment and the step where
    it is reached as a marker; right, the steps per method and seed."""
    _require(curves, ["run", "step", "ll_below_max", "elbo_below_max", "gap"], "training_figure")
    numbers = numbers or {}
    fig = Figure(figsize=(12.5, 4.9), layout="constrained")
    a, b = fig.subplots(1, 2)
    floor = 1e-5

    if steps is None:
        for i, (run, g) in enumerate(curves.groupby("run", sort=False)):
            g = g.sort_values("step")
            st = dict(color=_RUN_COLORS[i % len(_RUN_COLORS)], marker="osD^v"[i % 5], ms=3.5, label=run)
            a.plot(g["step"], np.maximum(g["ll_below_max"], floor), gid=f"ll:{run}", **st)
            b.plot(g["step"], np.maximum(g["gap"], floor), gid=f"gap:{run}", **st)
        if "eps" in numbers:
            a.axhline(numbers["eps"], color="k", ls="--", lw=1, label=f"ε = {numbers['eps']:g} (the rule, left)")
        if "gap_tol" in numbers:
            b.axhline(numbers["gap_tol"], color="k", ls="--", lw=1, label=f"gap tolerance {numbers['gap_tol']:g} (the rule, right)")
        a.set_ylabel("PPCA max − average log p(x)  [nats]")
        a.set_title("Log-likelihood below the maximum-likelihood optimum")
        b.set_ylabel("average KL(q ‖ p(z|x)) = log p − ELBO  [nats]")
        b.set_title("Exact ELBO gap")
        title = "SVI and the amortized linear VAE: exact training curves"
        for ax in (a, b):
            ax.set_yscale("log")
            ax.set_xlabel("θ step")
            ax.grid(True, alpha=0.3)
    else:
        _require(steps, ["method", "seed", "tolerance", "steps_to_reach", "reached"], "training_figure")
        seeds = sorted(set(int(s) for s in steps["seed"]))
        for (method, seed), g in curves.groupby(["method", "seed"], sort=False):
            g = g.sort_values("step")
            color = _METHOD_COLORS.get(method, "0.3")
            a.plot(g["step"], np.maximum(g["elbo_below_max"], floor), color=color, lw=1.1, alpha=0.85,
                   label=method if seed == seeds[0] else None, gid=f"elbo:{method}:{seed}")
            s = steps[(steps["method"] == method) & (steps["seed"] == seed)].iloc[0]
            a.plot([g["step"].min(), g["step"].max()], [s["tolerance"]] * 2, color=color, ls=":", lw=0.8)
            if s["reached"]:
                a.plot([s["steps_to_reach"]], [s["tolerance"]], marker="v", color=color, ms=7, ls="none")
        a.plot([], [], "k:", lw=0.8, label="25% of the initial gap (per run)")
        a.plot([], [], "kv", ls="none", label="reached")
        a.set_yscale("log")
        a.set_xlabel("θ step")
        a.set_ylabel("PPCA max − average ELBO  [nats]")
        a.set_title("Exact ELBO below the optimum, one line per seed")
        a.grid(True, alpha=0.3)
        methods = list(dict.fromkeys(steps["method"]))
        for i, method in enumerate(methods):
            g = steps[steps["method"] == method]
            xs = i + np.linspace(-0.15, 0.15, len(g)) if len(g) > 1 else np.array([float(i)])
            color = _METHOD_COLORS.get(method, "0.3")
            b.scatter(xs, g["steps_to_reach"], color=color, s=40, zorder=3,
                      label=f"{method}: median {float(np.median(g['steps_to_reach'])):g}")
            b.hlines(float(np.median(g["steps_to_reach"])), i - 0.3, i + 0.3, color=color, lw=2)
        if "steps" in numbers:
            b.axhline(numbers["steps"] + 1, color="0.5", ls="--", lw=1, label=f"never reached ({numbers['steps']} + 1)")
        b.set_xticks(range(len(methods)))
        b.set_xticklabels(methods)
        b.set_xlabel("encoder gradient estimator (K = %s)" % numbers.get("K", "?"))
        b.set_ylabel("steps to close 75% of the initial ELBO gap")
        b.set_title("Steps to reach, per seed (bar: median)")
        b.grid(True, axis="y", alpha=0.3)
        title = (f"Linear VAE (D = {numbers.get('D', '?')}, d = {numbers.get('d', '?')}): score-function vs "
                 "reparameterization encoder gradients at equal K")
    _legend_below(fig, fontsize=7, ncol=4)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- dispatch
def claim_figure(claim):
    """The figure of one claim entry (as ``load_claims`` returns it)."""
    kind, t, n = claim.get("figure"), claim["tables"], claim["numbers"]
    if kind == "missing_pixels":
        return missing_pixels_figure(t["images"], t["errors"])
    if kind == "single_sample_bias":
        return single_sample_bias_figure(t["bias"])
    if kind == "elbo_plus_kl":
        return elbo_plus_kl_figure(t["gap"])
    if kind == "lecture_question":
        return lecture_question_figure(t["densities"], t["summary"])
    if kind == "reparam_variance":
        return reparam_variance_figure(t["variance"])
    if kind == "training":
        return training_figure(t["curves"], t.get("steps"), n)
    if kind in claims_digits.FIGURES:  # the digits claims' figures (reports/claims_digits.py)
        return claims_digits.FIGURES[kind](t, n)
    raise ValueError(f"claim: unknown figure kind {kind!r} for claim {claim.get('id')!r}")
