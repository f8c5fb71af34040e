r"""Figures of the trust diagnostics and of the bounds beyond the IWAE bound.

Read from the tidy results table (``bench.runner``'s columns), nothing
recomputed except the drawn fits, whose formulas are below.

* ``khat_vs_q``        the PSIS Pareto :math:`\hat k` of each proposal q's
                       weights (mean over replicates), per K, with the
                       reliability threshold :math:`\min(1 - 1/\log_{10}K,\ 0.7)`
                       of Vehtari et al. (2024) drawn for each K; points above
                       it (or with most replicates above it: ``unreliable_mask``,
                       the report's rule too) are ringed "unreliable".
* ``bounds_sandwich``  per (problem, q): the exact :math:`\mathcal L` (ELBO),
                       :math:`\log p(x)` and :math:`\mathrm{CUBO}_n = \frac1n\log E_q[w^n]`
                       as lines, and the Monte Carlo estimates with ±1 SE as
                       points against K: the ELBO estimate (unbiased), the
                       IWAE estimate :math:`\log\frac1K\sum_k w_k` (its mean is
                       the IWAE_K bound, between the ELBO and log p(x)) and the
                       CUBO estimate :math:`\frac1n\log\frac1K\sum_k w_k^n`,
                       which is biased LOW at finite K (Jensen) and may fall
                       below log p(x): shown, not hidden.
* ``jvi_bias_vs_k``    per (problem, q): |bias| of log p̂ (IS) and of the
                       jackknife estimators of order 1 and 2 (Nowozin 2018)
                       against K on log-log axes, filled markers where the bias
                       is negative and hollow where positive, with a weighted
                       least-squares fit :math:`|b| = c K^{s}` over the points
                       with :math:`|b| > 2\,\mathrm{SE}` and the theory's slopes
                       -1, -2, -3 as references.

``trust_specs(res)`` is the report's provider (``reports.report.FIGURE_SECTIONS``).
"""

from __future__ import annotations

import json
import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .figures import OKABE_ITO, _legend_outside, power_law_fit

__all__ = ["unreliable_mask", "khat_vs_q", "bounds_sandwich", "jvi_bias_vs_k", "trust_specs", "FIT_MIN_Z"]

FIT_MIN_Z = 2.0  # a bias enters the slope fit only where |bias| > FIT_MIN_Z SE
_MARKERS = "osD^vP*Xh<>p"
MAX_PANELS = 6


def _options(s):
    if isinstance(s, str) and s:
        return json.loads(s)
    return {}


def _grid(n, width=4.6, height=3.8, ncols=3):
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols + 2.2, height * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _k_axis(ax, Ks):
    """A log K axis labelled at the K values of the data (no overlapping minor labels)."""
    ax.set_xscale("log")
    ks = sorted(set(int(k) for k in Ks))
    if len(ks) > 8:
        ks = ks[:: math.ceil(len(ks) / 8)]
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ks)
    ax.set_xticklabels([f"{k:g}" if k < 10**5 else f"1e{round(math.log10(k))}" for k in ks], fontsize=7)
    ax.set_xlabel("K (samples per estimate)")


def _footnote(fig, lines):
    """Notes under the panels (a supxlabel, so the constrained layout makes room for it)."""
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=7, color="0.3", x=0.01, ha="left")


# --------------------------------------------------------------------------- k-hat
def unreliable_mask(df):
    r"""The cells whose importance weights have an unreliable tail (PSIS,
    Vehtari et al. 2024): the mean Pareto k̂ over the replicates above
    ``khat_threshold`` = min(1 − 1/log₁₀ K, 0.7), or more than half of the
    replicates above it (``khat_unreliable`` is that fraction).  False where
    k̂ was not fitted (K <= 20, equal weights) or the columns are absent."""
    if "khat" not in df or "khat_threshold" not in df:
        return np.zeros(len(df), dtype=bool)
    k = df["khat"].to_numpy(float)
    t = df["khat_threshold"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        out = np.isfinite(k) & np.isfinite(t) & (k > t)
        if "khat_unreliable" in df:
            out |= df["khat_unreliable"].to_numpy(float) > 0.5
    return out


def _khat_rows(df):
    """IS rows with a k-hat (ELBO rows where no IS row exists for that (problem, q, K))."""
    if "khat" not in df.columns:
        return df.iloc[:0]
    rows = df[df["estimator"].isin(["importance_sampling", "elbo"])]
    rows = rows.sort_values("estimator", key=lambda s: s != "importance_sampling")
    return rows.drop_duplicates(["problem", "q", "K"])


def _pick(values, n=4):
    vs = sorted(set(values))
    if len(vs) <= n:
        return vs
    idx = np.unique(np.round(np.linspace(0, len(vs) - 1, n)).astype(int))
    return [vs[i] for i in idx]


def khat_vs_q(df, max_panels=MAX_PANELS):
    r"""Mean PSIS :math:`\hat k` per proposal q (x axis, ordered by k̂ at the
    largest K), one marker and colour per K (up to four K with a k̂), and each
    K's threshold :math:`\min(1 - 1/\log_{10} K, 0.7)` as a dashed line in its
    colour; a point above its threshold is ringed (unreliable: the weights'
    variance is likely infinite or the estimate will not settle at that K).
    Cells without a finite k̂ (the tail of M <= 4 weights below K = 21, or all
    weights equal, q = p(z|x)) are named in a note under the panel."""
    rows = _khat_rows(df)
    problems = [p for p in dict.fromkeys(rows["problem"]) if rows.loc[rows["problem"] == p, "khat"].notna().any()]
    if not problems:
        raise ValueError("df: no importance-sampling or ELBO rows with a finite k-hat (K > 20) to draw k-hat vs q")
    problems = problems[:max_panels]
    fig, axes = _grid(len(problems), width=5.4)
    notes = []
    for ax, prob in zip(axes, problems):
        sub = rows[rows["problem"] == prob]
        ks = _pick(sub.loc[sub["khat"].notna(), "K"].astype(int))
        top = sub[sub["K"] == ks[-1]].set_index("q")["khat"]
        qs = sorted(dict.fromkeys(sub["q"]), key=lambda q: (not np.isfinite(top.get(q, np.nan)), top.get(q, 0.0)))
        xpos = {q: i for i, q in enumerate(qs)}
        for j, K in enumerate(ks):
            color, marker = OKABE_ITO[j % len(OKABE_ITO)], _MARKERS[j % len(_MARKERS)]
            at = sub[sub["K"] == K]
            ok = at[at["khat"].notna()]
            offset = (j - (len(ks) - 1) / 2) * 0.12
            x = np.array([xpos[q] for q in ok["q"]]) + offset
            ax.plot(x, ok["khat"], ls="none", marker=marker, color=color, ms=5, label=f"K = {K:g}",
                    gid=f"khat:K={K}")
            bad = unreliable_mask(ok)
            if bad.any():
                ax.plot(x[bad], ok.loc[bad, "khat"], ls="none", marker="o", ms=11, mfc="none",
                        mec="k", mew=1.0, label="above its K's threshold: unreliable")
            thr = float(at["khat_threshold"].iloc[0])
            ax.axhline(thr, color=color, ls="--", lw=0.9, label=f"threshold at K = {K:g}: {thr:.2f}")
            missing = at.loc[at["khat"].isna(), "q"].tolist()
            if missing:
                notes.append(f"{prob}, K = {K:g}: no finite k̂ for q = {', '.join(missing)}")
        ax.axhline(0.5, color="0.6", ls=":", lw=0.9, label="k = 1/2: Var_q[w] finite below")
        ax.set_xticks(range(len(qs)))
        ax.set_xticklabels(qs, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(r"Pareto $\hat k$ (mean over replicates)")
        ax.set_title(prob, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(r"PSIS $\hat k$ of the importance weights per proposal q: above the threshold, do not trust the estimate",
                 fontsize=10)
    _legend_outside(fig)
    _footnote(fig, notes[:6] + ([f"... and {len(notes) - 6} more"] if len(notes) > 6 else []))
    return fig


# --------------------------------------------------------------------------- the sandwich
def _cubo_rows(df):
    rows = df[df["estimator"] == "cubo"].copy()
    if len(rows):
        rows["n_power"] = [float(_options(o).get("n", 2)) for o in rows["options"]]
    return rows


def _sandwich_pairs(df):
    cubo = _cubo_rows(df)
    pairs = list(dict.fromkeys(zip(cubo["problem"], cubo["q"])))
    have = set(zip(df.loc[df["estimator"] == "importance_sampling", "problem"],
                   df.loc[df["estimator"] == "importance_sampling", "q"]))
    return [pq for pq in pairs if pq in have]


def bounds_sandwich(df, max_panels=MAX_PANELS):
    r"""ELBO <= IWAE_K <= log p(x) <= CUBO_n, per (problem, q) with CUBO rows.

    Lines: the exact ELBO (``elbo_exact``), log p(x) (``log_marginal``) and the
    exact CUBO_n (the cubo rows' ``truth``; +inf where E_q[w^n] diverges, said
    in a note).  Points (±1 SE): the ELBO estimate, the IWAE estimate (the
    importance-sampling rows: E[log p̂_K] is the IWAE_K bound) and the CUBO
    estimate, against K.  The CUBO estimate is biased low at finite K."""
    pairs = _sandwich_pairs(df)
    if not pairs:
        raise ValueError("df: the sandwich needs cubo and importance_sampling rows on the same (problem, q)")
    pairs = pairs[:max_panels]
    fig, axes = _grid(len(pairs), width=4.8)
    cubo_all = _cubo_rows(df)
    notes = []
    series = (("elbo", "ELBO estimate (unbiased)", OKABE_ITO[2], "s"),
              ("importance_sampling", r"IWAE estimate $\log\frac{1}{K}\sum w_k$", OKABE_ITO[0], "o"))
    for ax, (prob, q) in zip(axes, pairs):
        sel = df[(df["problem"] == prob) & (df["q"] == q)]
        Ks = sel["K"].astype(float)
        span = np.array([Ks.min(), Ks.max()])
        logp = float(sel["log_marginal"].iloc[0])
        ax.plot(span, [logp, logp], color="k", lw=1.4, label=r"exact $\log p(x)$")
        elbo_exact = sel["elbo_exact"].dropna()
        if len(elbo_exact):
            e = float(elbo_exact.iloc[0])
            ax.plot(span, [e, e], color=OKABE_ITO[2], lw=1.2, ls="-", label="exact ELBO")
        for est, label, color, marker in series:
            r = sel[sel["estimator"] == est].sort_values("K")
            if len(r):
                ax.errorbar(r["K"], r["mean"], yerr=r["mean_se"], color=color, marker=marker, ms=4, lw=0.8,
                            capsize=2, label=label, gid=f"sandwich:{est}:{prob}:{q}")
        cu = cubo_all[(cubo_all["problem"] == prob) & (cubo_all["q"] == q)]
        for j, (n_pow, r) in enumerate(cu.groupby("n_power")):
            r = r.sort_values("K")
            color = OKABE_ITO[(1 + 3 * j) % len(OKABE_ITO)]
            exact = float(r["truth"].iloc[0])
            if np.isfinite(exact):
                ax.plot(span, [exact, exact], color=color, lw=1.2, ls="--", label=f"exact CUBO$_{{{n_pow:g}}}$")
            else:
                notes.append(f"{prob}, q = {q}: CUBO_{n_pow:g} = +inf (E_q[w^{n_pow:g}] diverges); only its "
                             "estimates are drawn")
            ax.errorbar(r["K"], r["mean"], yerr=r["mean_se"], color=color, marker="D", mfc="white", ms=4,
                        lw=0.8, capsize=2, label=f"CUBO$_{{{n_pow:g}}}$ estimate (biased low at finite K)",
                        gid=f"sandwich:cubo{n_pow:g}:{prob}:{q}")
        _k_axis(ax, Ks)
        ax.set_ylabel("nats")
        ax.set_title(f"{prob}, q = {q}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(r"The sandwich: ELBO $\leq$ IWAE$_K$ $\leq \log p(x) \leq$ CUBO$_n$ (lines exact, points ±1 SE)",
                 fontsize=10)
    _legend_outside(fig)
    _footnote(fig, notes)
    return fig


# --------------------------------------------------------------------------- jackknife
def _jvi_pairs(df):
    jk = df[df["estimator"] == "jackknife"]
    return list(dict.fromkeys(zip(jk["problem"], jk["q"])))


def _bias_series(df, prob, q):
    """[(label, rows)] for IS and each jackknife order on (prob, q), by K."""
    sel = df[(df["problem"] == prob) & (df["q"] == q)]
    out = []
    isr = sel[sel["estimator"] == "importance_sampling"].sort_values("K")
    if len(isr):
        out.append(("IS  (theory: slope −1)", -1.0, isr))
    jk = sel[sel["estimator"] == "jackknife"].copy()
    jk["order"] = [int(_options(o).get("order", 1)) for o in jk["options"]]
    for order, r in jk.groupby("order"):
        out.append((f"JVI order {order}  (theory: slope −{order + 1})", -(order + 1.0), r.sort_values("K")))
    return out


def jvi_slopes(rows, min_z=FIT_MIN_Z):
    """The power-law fit |bias| = c K^s over the rows with |bias| > min_z SE
    (``reports.figures.power_law_fit``: weighted least squares on logs), or None."""
    b, se, K = (rows[c].to_numpy(dtype=float) for c in ("bias", "bias_se", "K"))
    keep = np.isfinite(b) & np.isfinite(se) & (se > 0) & (np.abs(b) > min_z * se)
    return power_law_fit(K[keep], np.abs(b[keep]), se[keep])


def jvi_bias_vs_k(df, max_panels=MAX_PANELS):
    r"""|bias| of IS and of the jackknife (orders 1 and 2) against K, log-log.

    Filled markers: bias < 0; hollow: bias > 0 (nothing is dropped for its
    sign); faded: |bias| <= 2 SE (indistinguishable from 0 at this R, left out
    of the fit).  Lines: the fit |bias| = c K^s over the other points, its slope
    ± SE in the legend; dotted grey: slopes -1, -2, -3 through the first IS
    point.  A bias below 2 SE for every K leaves that estimator unfitted
    (said in the legend)."""
    pairs = _jvi_pairs(df)
    if not pairs:
        raise ValueError("df: no jackknife rows to draw the JVI bias against K")
    pairs = pairs[:max_panels]
    fig, axes = _grid(len(pairs), width=4.8)
    for ax, (prob, q) in zip(axes, pairs):
        first, handles, texts = None, [], []
        for j, (label, _, rows) in enumerate(_bias_series(df, prob, q)):
            color, marker = OKABE_ITO[j % len(OKABE_ITO)], _MARKERS[j % len(_MARKERS)]
            K, b, se = (rows[c].to_numpy(dtype=float) for c in ("K", "bias", "bias_se"))
            a = np.abs(b)
            sig = a > FIT_MIN_Z * se
            drawable = np.isfinite(a) & (a > 0)
            for mask, fill, alpha in ((sig & (b < 0), color, 1.0), (sig & (b > 0), "white", 1.0),
                                      (~sig & (b < 0), color, 0.35), (~sig & (b >= 0), "white", 0.35)):
                m = mask & drawable
                if m.any():
                    ax.errorbar(K[m], a[m], yerr=np.vstack([np.minimum(se[m], 0.9 * a[m]), se[m]]), ls="none",
                                marker=marker, mfc=fill, color=color, ms=5, capsize=2, lw=0.8, alpha=alpha)
            fit = jvi_slopes(rows)
            if fit is not None:
                ks = K[sig & drawable]
                xs = np.array([ks.min(), ks.max()])
                ax.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], color=color, lw=1.3,
                        gid=f"jvi-fit:{label}:{prob}:{q}")
                text = f"{label}: fitted {fit['slope']:.2f} ± {fit['slope_se']:.2f}"
            else:
                text = f"{label}: |bias| ≤ {FIT_MIN_Z:g} SE at all but ≤1 K, not fitted"
            handles.append(ax.plot([], [], color=color, marker=marker, label="_" + text)[0])
            texts.append(text)
            if first is None and drawable.any():
                i = int(np.argmax(drawable))
                first = (K[i], a[i])
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()  # the data's range: the reference slopes must not stretch it
        if first is not None:
            xs = np.geomspace(first[0], float(df.loc[(df["problem"] == prob) & (df["q"] == q), "K"].max()), 50)
            for s in (-1, -2, -3):
                ys = first[1] * (xs / xs[0]) ** s
                ax.plot(xs, ys, ls=":", color="0.55", lw=0.9)
                inside = np.nonzero(ys >= lo)[0]
                if inside.size:
                    i = inside[-1]
                    ax.text(xs[i], ys[i], f" {s}", fontsize=7, color="0.45", va="center")
        ax.set_ylim(lo, hi)
        _k_axis(ax, df.loc[(df["problem"] == prob) & (df["q"] == q), "K"])
        ax.set_ylabel(r"|bias| of the log p(x) estimate (nats)")
        ax.set_title(f"{prob}, q = {q}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(handles, texts, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax0 = axes[0]
    ax0.plot([], [], ls="none", marker="o", color="0.3", label="filled: bias < 0")
    ax0.plot([], [], ls="none", marker="o", mfc="white", color="0.3", label="hollow: bias > 0")
    ax0.plot([], [], ls="none", marker="o", color="0.3", alpha=0.35, label=f"faded: |bias| ≤ {FIT_MIN_Z:g} SE (not fitted)")
    ax0.plot([], [], ls=":", color="0.55", label="reference slopes −1, −2, −3")
    fig.suptitle("Jackknife variational inference: the bias of log p̂ falls like K^−(order+1)", fontsize=10)
    _legend_outside(fig)
    return fig


# --------------------------------------------------------------------------- the report's provider
def trust_specs(res):
    """(stem, title, caption, thunk) for the figures the table supports."""
    df, specs = res["df"], []
    rows = _khat_rows(df)
    if len(rows) and rows["khat"].notna().any():
        specs.append(("khat_vs_q", "PSIS k̂ per proposal q",
                      "The Pareto k̂ of each q's importance weights (mean over replicates; Vehtari et al. 2024, "
                      "fitted as ArviZ does) at several K, with each K's threshold min(1 − 1/log10 K, 0.7) "
                      "dashed. Ringed points are above it: their estimates should not be trusted.",
                      lambda: khat_vs_q(df)))
    if _sandwich_pairs(df):
        specs.append(("bounds_sandwich", "ELBO ≤ IWAE ≤ log p(x) ≤ CUBO",
                      "Lines: the exact ELBO, log p(x) and CUBO_n; points: Monte Carlo estimates ±1 SE against K. "
                      "The IWAE estimates climb from the ELBO to log p(x); the CUBO estimate is biased low at "
                      "finite K and can sit below log p(x) — an upper bound only in expectation of w^n.",
                      lambda: bounds_sandwich(df)))
    if _jvi_pairs(df):
        specs.append(("jvi_bias_vs_K", "Jackknife (JVI) bias vs K",
                      f"|bias| of IS and of the order-1 and order-2 jackknife against K, with weighted "
                      f"least-squares slopes over the points whose |bias| exceeds {FIT_MIN_Z:g} SE (theory: −1, "
                      "−2, −3). Hollow markers: a positive bias.",
                      lambda: jvi_bias_vs_k(df)))
    return specs
