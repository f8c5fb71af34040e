r"""Figures from the tidy results table (one row per cell; see ``bench.runner``).

Every function takes a DataFrame and returns a ``matplotlib.figure.Figure``
built without pyplot (no global state, no GUI; saved through the Agg
canvas), with labelled axes, log scales where the data span decades, a
legend, and a title that says what is compared.  Nothing here computes a
number that is not in the table, except the drawn reference curves, whose
formulas are in each docstring.

* ``variance_vs_k``       Var of an estimator vs K, log-log, one panel per problem,
                          one line per q, with a 1/K reference slope.
* ``bias_vs_k``           -bias of log p-hat vs K beside the prediction Var[w]/(2K p^2).
* ``jensen_gap_vs_kl``    measured Jensen gap vs exact KL on y = x, with residuals in SEs.
* ``gradient_variance_vs_k`` / ``gradient_snr_vs_k``   per method, per objective.
* ``throughput_vs_k``     samples per second vs K per estimator.
* ``estimators_vs_k``     every estimator of one target (the built-ins and a
                          user's, marked "yours") side by side: bias and variance vs K.

Every data line carries a ``gid`` naming what it shows ("variance:<q>",
"prediction:<q>", "gap:<q>", "variance:<method>", "throughput:<label>", ...),
so the drawn numbers can be traced back to the table.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # never a GUI backend; figures are only saved

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "variance_vs_k",
    "bias_vs_k",
    "jensen_gap_vs_kl",
    "gradient_variance_vs_k",
    "gradient_snr_vs_k",
    "throughput_vs_k",
    "estimators_vs_k",
    "row_targets",
    "ZERO_VARIANCE",
]

ZERO_VARIANCE = 1e-20  # a variance at or below this is round-off (q = posterior)
KL_ZERO = 1e-10  # an exact KL at or below this is round-off (q = posterior)
_MARKERS = "osD^vP*Xh<>p"
_ESTIMATOR_TEXT = {
    "importance_sampling": r"$\log\hat p(x)$ (importance sampling)",
    "elbo": r"the ELBO estimate $\frac{1}{K}\sum_k \log w_k$",
}
_METHOD_STYLE = {
    "score": ("tab:red", "o"),
    "score_loo": ("tab:orange", "s"),
    "reparam": ("tab:blue", "D"),
    "stl": ("tab:green", "^"),
    "dreg": ("tab:purple", "v"),
}


def _require(df, columns, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df: {what} needs columns {missing}")


def _rows(df, estimator, what):
    sub = df[df["estimator"] == estimator]
    if sub.empty:
        raise ValueError(f"df: no '{estimator}' rows to draw {what}")
    return sub


def _panels(n, ncols=None, nrows=1, width=5.2, height=4.2, sharey=False):
    ncols = n if ncols is None else ncols
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def _q_styles(qs):
    cmap = matplotlib.colormaps["tab10" if len(qs) <= 10 else "tab20"]
    return {q: (cmap(i % cmap.N), _MARKERS[i % len(_MARKERS)]) for i, q in enumerate(qs)}


def _lower_err(y, se):
    """Error bars that stay positive on a log axis (lower bar at most 90% of y)."""
    return np.vstack([np.minimum(se, 0.9 * y), se])


def _note(ax, lines, inside=False):
    """Notes (what is not drawn, and why) in a box under the axes, or inside
    them at the lower right (``inside=True``)."""
    if lines:
        ax.text(
            0.98 if inside else 0.0,
            0.02 if inside else -0.16,
            "\n".join(lines),
            transform=ax.transAxes,
            fontsize=7,
            va="bottom" if inside else "top",
            ha="right" if inside else "left",
            color="0.3",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"},
        )


def variance_vs_k(df, estimator="importance_sampling"):
    r"""Variance of an estimator's R replicates vs K (log-log), ±1 SE bars.

    One panel per problem, one line per q.  The black dashed reference is
    :math:`c/K` with :math:`c` the median of variance*K over the drawn points.
    Thin dotted lines in each q's colour: for the ELBO the exact
    :math:`\mathrm{Var}_q[\log w]/K` (column ``var_log_w``); for log p-hat the
    large-K delta-method value :math:`\mathrm{Var}_q[w]/(K p^2)` (column
    ``rel_weight_var``), where finite.  A q whose variance is round-off
    (<= 1e-20, e.g. the posterior) is listed, not drawn.
    """
    _require(df, ["problem", "q", "K", "variance", "variance_se", "estimator"], "variance_vs_k")
    sub = _rows(df, estimator, "variance_vs_k")
    problems = list(dict.fromkeys(sub["problem"]))
    styles = _q_styles(list(dict.fromkeys(sub["q"])))
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes[0], problems):
        pdf = sub[sub["problem"] == problem]
        notes, ck, drew_ref = [], [], False
        for q, g in pdf.groupby("q", sort=False):
            g = g.sort_values("K")
            K = g["K"].to_numpy(float)
            v = g["variance"].to_numpy(float)
            se = g["variance_se"].to_numpy(float)
            keep = np.isfinite(v) & (v > ZERO_VARIANCE)
            if not keep.any():
                notes.append(f"{q}: variance 0 (round-off), not drawn")
                continue
            color, marker = styles[q]
            eb = ax.errorbar(K[keep], v[keep], yerr=_lower_err(v[keep], se[keep]), color=color, marker=marker,
                             ms=4, lw=1.3, capsize=2, label=q)
            eb.lines[0].set_gid(f"variance:{q}")
            ck.extend(v[keep] * K[keep])
            ref_col = "var_log_w" if estimator == "elbo" else "rel_weight_var"
            if ref_col in g:
                ref = g[ref_col].to_numpy(float) / K
                ok = np.isfinite(ref) & (ref > 0)
                if ok.any():
                    ax.plot(K[ok], ref[ok], ":", color=color, lw=1.0, gid=f"reference:{q}")
                    drew_ref = True
        if ck:
            c = float(np.median(ck))
            Ks = np.array([pdf["K"].min(), pdf["K"].max()], dtype=float)
            ax.plot(Ks, c / Ks, "k--", lw=1, alpha=0.7, label=r"reference $\propto 1/K$")
        if drew_ref:
            ax.plot([], [], "k:", lw=1.0, label=(r"exact Var$_q[\log w]/K$" if estimator == "elbo"
                                                 else r"delta method Var$_q[w]/(Kp^2)$"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (samples per estimate)")
        Rs = sorted(set(int(r) for r in pdf["R"]))
        ax.set_ylabel("variance over R = " + "/".join(str(r) for r in Rs) + " replicates")
        ax.set_title(f"{problem} ({pdf['family'].iloc[0]})" if "family" in pdf else problem)
        ax.grid(True, which="major", alpha=0.3)
        _note(ax, notes)
        ax.legend(fontsize=7, title="q", title_fontsize=8, loc="best")
    fig.suptitle(f"Variance of {_ESTIMATOR_TEXT.get(estimator, estimator)} vs K, per proposal q (±1 SE)")
    return fig


def bias_vs_k(df):
    r"""-bias of log p-hat, :math:`\log p(x) - E[\log\hat p(x)]`, vs K (log-log),
    beside the delta-method prediction :math:`\mathrm{Var}_q[w]/(2Kp(x)^2)`
    (column ``bias_pred`` = minus it), drawn dashed where finite.

    Filled markers: |bias| > 2 SE; hollow: not distinguishable from 0 at 2 SE
    (and points with a measured bias >= 0 cannot be drawn on a log axis: they
    are counted in the panel's note).  One panel per problem, one colour per q.
    """
    _require(df, ["problem", "q", "K", "bias", "bias_se", "bias_pred", "estimator"], "bias_vs_k")
    sub = _rows(df, "importance_sampling", "bias_vs_k")
    problems = list(dict.fromkeys(sub["problem"]))
    styles = _q_styles(list(dict.fromkeys(sub["q"])))
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes[0], problems):
        pdf = sub[sub["problem"] == problem]
        notes = []
        for q, g in pdf.groupby("q", sort=False):
            g = g.sort_values("K")
            color, marker = styles[q]
            K = g["K"].to_numpy(float)
            nb = -g["bias"].to_numpy(float)
            se = g["bias_se"].to_numpy(float)
            pred = -g["bias_pred"].to_numpy(float)
            if np.all(np.abs(nb) <= 1e-12) and np.all(se <= 1e-12):
                notes.append(f"{q}: bias 0 (every weight = p(x)), not drawn")
                continue
            pos = np.isfinite(nb) & (nb > 0)
            sig = pos & (nb > 2 * se)
            weak = pos & ~sig
            if (~pos).any():
                notes.append(f"{q}: {int((~pos).sum())} point(s) with measured bias >= 0 not drawn")
            if pos.any():
                eb = ax.errorbar(K[pos], nb[pos], yerr=_lower_err(nb[pos], se[pos]), color=color, marker="none",
                                 ls="none", capsize=2, lw=1)
                eb.lines[0].set_gid(f"measured:{q}")
                ax.plot(K[sig], nb[sig], marker=marker, color=color, ls="none", ms=5)
                ax.plot(K[weak], nb[weak], marker=marker, mfc="none", color=color, ls="none", ms=5)
            finite_pred = np.isfinite(pred) & (pred > 0)
            if finite_pred.any():
                ax.plot(K[finite_pred], pred[finite_pred], ls="--", color=color, lw=1.2, gid=f"prediction:{q}")
            elif np.isinf(pred).any():
                notes.append(f"{q}: Var[w] = inf, no prediction")
            elif np.isnan(pred).all():
                notes.append(f"{q}: Var[w] not available, no prediction")
            ax.plot([], [], marker=marker, color=color, ls="-" if finite_pred.any() else "none", label=q)
        ax.plot([], [], "k--", lw=1.2, label=r"prediction Var$[w]/(2Kp^2)$")
        ax.plot([], [], "ko", mfc="none", ls="none", label="measured, |bias| < 2 SE")
        ax.set_xscale("log")
        if any(len(line.get_xdata()) for line in ax.lines):
            ax.set_yscale("log")
        else:  # every q was the posterior (bias 0): nothing to put on a log axis
            ax.set_yticks([])
        ax.set_xlabel("K (samples per estimate)")
        ax.set_ylabel(r"$\log p(x) - E[\log \hat p(x)]$  (±1 SE)")
        ax.set_title(f"{problem} ({pdf['family'].iloc[0]})" if "family" in pdf else problem)
        ax.grid(True, which="major", alpha=0.3)
        _note(ax, notes)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(r"Bias of $\log\hat p(x)$ vs K: measured points and the prediction Var$_q[w]/(2K\,p(x)^2)$")
    return fig


def jensen_gap_vs_kl(jt, fit=None, tolerance_se=4.0):
    r"""The Jensen gap :math:`\log p(x) - E[\widehat{\mathrm{ELBO}}]` (measured,
    ±2 SE) against the exact KL(q || p(z|x)), on log-log axes with the line
    y = x; below, the residual (gap - KL)/SE with the ±``tolerance_se`` band
    the suite asserts.  ``jt`` is ``bench.analysis.jensen_table``'s output;
    ``fit`` (optional, ``jensen_fit``) puts the fitted slope in the titles.
    Points with KL = 0 (q = posterior; KL <= 1e-10 is taken as round-off)
    cannot sit on a log axis; they are listed in a note with their measured
    gap, and so is any point whose measured gap is <= 0.
    """
    _require(jt, ["problem", "q", "kl", "gap", "gap_se"], "jensen_gap_vs_kl")
    if jt.empty:
        raise ValueError("jt: no rows to draw jensen_gap_vs_kl")
    problems = list(dict.fromkeys(jt["problem"]))
    fig = Figure(figsize=(5.4 * len(problems), 7.2), layout="constrained")
    axes = fig.subplots(2, len(problems), squeeze=False, height_ratios=[3, 1.3])
    styles = _q_styles(list(dict.fromkeys(jt["q"])))
    for j, problem in enumerate(problems):
        ax, axr = axes[0, j], axes[1, j]
        g = jt[jt["problem"] == problem]
        kl, gap, se = (g[c].to_numpy(float) for c in ("kl", "gap", "gap_se"))
        pos = kl > KL_ZERO
        notes = [f"{q}: KL = 0 (|KL| <= {KL_ZERO:g}, round-off), gap = {gp:.2g} ± {s:.1g}"
                 for q, gp, s in zip(g["q"][~pos], gap[~pos], se[~pos])]
        for q, x, y, s in zip(g["q"][pos], kl[pos], gap[pos], se[pos]):
            color, marker = styles[q]
            if y > 0:
                eb = ax.errorbar([x], [y], yerr=[[min(2 * s, 0.9 * y)], [2 * s]], color=color, marker=marker,
                                 ms=6, capsize=3, ls="none", label=q)
                eb.lines[0].set_gid(f"gap:{q}")
            else:
                notes.append(f"{q}: KL = {x:.2g}, gap = {y:.2g} ± {s:.1g} (<= 0: residual panel only)")
                ax.plot([], [], color=color, marker=marker, ls="none", label=q)
            eb = axr.errorbar([x], [(y - x) / s], yerr=[[1.0], [1.0]], color=color, marker=marker, ms=5,
                              capsize=2, ls="none")
            eb.lines[0].set_gid(f"residual:{q}")
        if pos.any():
            lo, hi = kl[pos].min() / 2, kl[pos].max() * 2
            ax.plot([lo, hi], [lo, hi], "k-", lw=1, alpha=0.6, label="y = x (gap = KL)")
            axr.fill_between([lo, hi], -tolerance_se, tolerance_se, color="0.9",
                             label=f"±{tolerance_se:g} SE (asserted)")
            axr.axhline(0, color="k", lw=1, alpha=0.6)
            ax.set_xscale("log")
            ax.set_yscale("log")
            axr.set_xscale("log")
            axr.set_xlim(lo, hi)
            ax.set_xlim(lo, hi)
        title = f"{problem}"
        if fit is not None and len(fit) and (fit["problem"] == problem).any():
            f = fit[fit["problem"] == problem].iloc[0]
            title += f": slope {f['slope']:.5f} ± {f['slope_se']:.5f}"
        ax.set_title(title)
        ax.set_xlabel("exact KL(q || p(z|x))  [nats]")
        ax.set_ylabel(r"$\log p(x) - E[\widehat{\mathrm{ELBO}}]$  (±2 SE)  [nats]")
        axr.set_xlabel("exact KL(q || p(z|x))  [nats]")
        axr.set_ylabel("(gap − KL) / SE")
        ax.grid(True, alpha=0.3)
        axr.grid(True, alpha=0.3)
        _note(ax, notes, inside=True)
        ax.legend(fontsize=7, title="q", title_fontsize=8, loc="upper left")
        axr.legend(fontsize=7, loc="upper left")
    fig.suptitle("Jensen gap of the Monte Carlo ELBO vs the exact KL divergence (pooled over K)")
    return fig


def _gradient_panels(df, q, value, err, ylabel, title, floor=False):
    _require(df, ["problem", "q", "K", "method", "objective", value], title)
    sub = _rows(df, "gradient", title)
    if q is None:
        q = sub["q"].iloc[0]
    sub = sub[sub["q"] == q]
    if sub.empty:
        raise ValueError(f"q: no gradient rows for q = {q!r}")
    problems = list(dict.fromkeys(sub["problem"]))
    objectives = list(dict.fromkeys(sub["objective"]))
    fig, axes = _panels(len(problems), nrows=len(objectives), height=3.9)
    for i, objective in enumerate(objectives):
        for j, problem in enumerate(problems):
            ax = axes[i, j]
            g0 = sub[(sub["problem"] == problem) & (sub["objective"] == objective)]
            for method, g in g0.groupby("method", sort=False):
                g = g.sort_values("K")
                color, marker = _METHOD_STYLE.get(method, ("0.3", "x"))
                K = g["K"].to_numpy(float)
                y = g[value].to_numpy(float)
                keep = np.isfinite(y) & (y > 0)
                if not keep.any():
                    continue
                yerr = _lower_err(y[keep], g[err].to_numpy(float)[keep]) if err else None
                eb = ax.errorbar(K[keep], y[keep], yerr=yerr, color=color, marker=marker, ms=4, lw=1.3,
                                 capsize=2, label=method)
                eb.lines[0].set_gid(f"{value}:{method}")
            if floor and len(g0):
                R = g0["R"].to_numpy(float)
                Ks = np.sort(g0["K"].unique()).astype(float)
                ax.plot(Ks, np.full(Ks.shape, math.sqrt(2 / math.pi) / math.sqrt(R.max())), ":", color="0.4",
                        lw=1.2, label=r"floor $\sqrt{2/\pi}/\sqrt{R}$ (zero signal)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("K (samples per estimate)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{problem}, objective = {objective}")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title="method", title_fontsize=8, loc="best")
    fig.suptitle(f"{title}, q = {q}")
    return fig


def gradient_variance_vs_k(df, q=None):
    r"""Total variance :math:`\operatorname{tr}\mathrm{Cov}(\hat g)` of each
    gradient estimator vs K (log-log, ±1 SE), one line per method; rows =
    objective, columns = problem; for one q (default: the first gradient q)."""
    return _gradient_panels(df, q, "variance", "variance_se", r"tr Cov$(\hat g)$ (±1 SE)",
                            "Gradient estimators: total variance vs K")


def gradient_snr_vs_k(df, q=None):
    r"""Median over coordinates of the signal-to-noise ratio
    :math:`|\bar g_j|/s_j` vs K, one line per method, with the dotted floor
    :math:`\sqrt{2/\pi}/\sqrt R` that a zero-mean coordinate shows; rows =
    objective, columns = problem; for one q (default: the first gradient q)."""
    return _gradient_panels(df, q, "snr_median", None, r"median$_j$ $|\bar g_j| / s_j$",
                            "Gradient estimators: signal-to-noise ratio vs K", floor=True)


def throughput_vs_k(df):
    r"""Samples per second (K R / seconds of one timed call) vs K, log-log;
    one panel per problem, one line per estimator -- importance sampling and
    the ELBO in black/grey, gradients coloured by method, solid for the elbo
    objective and dashed for iwae -- each the median over the q's of
    (estimator, K)."""
    _require(df, ["problem", "estimator", "method", "objective", "K", "samples_per_s"], "throughput_vs_k")
    if df.empty:
        raise ValueError("df: no rows to draw throughput_vs_k")
    problems = list(dict.fromkeys(df["problem"]))
    fig, axes = _panels(len(problems), width=5.8)
    for ax, problem in zip(axes[0], problems):
        pdf = df[df["problem"] == problem]
        n_lines = 0
        for (est, method, objective), g in pdf.groupby(["estimator", "method", "objective"], sort=False):
            med = g.groupby("K")["samples_per_s"].median().sort_index()
            K, y = med.index.to_numpy(float), med.to_numpy(float)
            ok = np.isfinite(y) & (y > 0)
            if est == "gradient":
                color, marker = _METHOD_STYLE.get(method, ("0.3", "x"))
                ls, label = ("-" if objective == "elbo" else "--"), f"gradient {method} / {objective}"
            else:
                color, marker, ls = ("k", "o", "-") if est == "importance_sampling" else ("0.55", "s", "-")
                label = est
            ax.plot(K[ok], y[ok], marker=marker, ms=3, lw=1.3, ls=ls, color=color, label=label,
                    gid=f"throughput:{label}")
            n_lines += 1
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (samples per estimate)")
        ax.set_ylabel("samples per second (median over q)")
        ax.set_title(f"{problem} ({pdf['family'].iloc[0]})" if "family" in pdf else problem)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, ncol=1 if n_lines < 8 else 2, loc="lower right")
    fig.suptitle("Throughput vs K: K·R samples per second of one timed call per cell (compilation excluded)")
    return fig


# --------------------------------------------------------------------------- estimators side by side

#: Okabe & Ito's colour-blind-safe palette (black last)
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_TARGET_TEXT = {
    "log_marginal": r"estimators of $\log p(x)$",
    "elbo": "estimators of the ELBO",
}


def row_targets(df):
    """The target of every row: the ``target`` column where present, else from
    the built-in estimator's name ("importance_sampling" -> log_marginal,
    "elbo" -> elbo, "gradient" -> elbo_grad / iwae_grad by objective)."""
    derived = np.where(
        df["estimator"] == "importance_sampling", "log_marginal",
        np.where(df["estimator"] == "elbo", "elbo",
                 np.where(df.get("objective", "") == "iwae", "iwae_grad", "elbo_grad")))
    if "target" not in df:
        return derived
    t = df["target"].fillna("").astype(str).to_numpy()
    return np.where(t != "", t, derived)


def _is_user(df):
    if "user" not in df:
        return np.zeros(len(df), dtype=bool)
    return df["user"].fillna(False).astype(bool).to_numpy()


def estimators_vs_k(df, target="log_marginal", max_panels=6):
    r"""Every estimator of one value target side by side, per (problem, q):
    the bias (top; symmetric-log axis, so no point is dropped for its sign;
    ±1 SE bars) and the variance (bottom, log-log) against K.

    The built-in estimators are solid lines with filled markers; a user's
    (column ``user``) dashed with hollow markers, labelled "(yours)".  At most
    ``max_panels`` (problem, q) pairs are drawn, those with the most
    estimators first; the title says how many were left out."""
    _require(df, ["problem", "q", "K", "estimator", "bias", "bias_se", "variance"], "estimators_vs_k")
    sub = df[row_targets(df) == target].copy()
    if sub.empty:
        raise ValueError(f"df: no rows of target {target!r} to draw estimators_vs_k")
    sub["_user"] = _is_user(sub)
    names = list(dict.fromkeys(sub.sort_values("_user", kind="stable")["estimator"]))
    style = {n: (OKABE_ITO[i % len(OKABE_ITO)], _MARKERS[i % len(_MARKERS)]) for i, n in enumerate(names)}
    pairs = sub.groupby(["problem", "q"], sort=False)["estimator"].nunique().sort_values(ascending=False, kind="stable")
    shown = list(pairs.index[:max_panels])
    fig, axes = _panels(len(shown), nrows=2, height=3.4, width=max(5.2, 9.0 / len(shown)))
    for col, (problem, q) in enumerate(shown):
        g = sub[(sub["problem"] == problem) & (sub["q"] == q)]
        top, bottom = axes[0][col], axes[1][col]
        linthresh, zero_notes = [], []
        for name, h in g.groupby("estimator", sort=False):
            h = h.sort_values("K")
            user = bool(h["_user"].iloc[0])
            color, marker = style[name]
            label = f"{name} (yours)" if user else name
            kw = dict(color=color, marker=marker, ms=5, lw=1.3, capsize=2, ls="--" if user else "-",
                      mfc="white" if user else color, label=label)
            K = h["K"].to_numpy(float)
            b, bse = h["bias"].to_numpy(float), h["bias_se"].to_numpy(float)
            eb = top.errorbar(K, b, yerr=bse, **kw)
            eb.lines[0].set_gid(f"bias:{name}")
            linthresh.extend(bse[np.isfinite(bse) & (bse > 0)])
            v = h["variance"].to_numpy(float)
            ok = np.isfinite(v) & (v > ZERO_VARIANCE)
            if not ok.all():
                zero_notes.append(f"{label}: {int((~ok).sum())} point(s) with variance 0 (round-off) not drawn")
            if ok.any():
                line, = bottom.plot(K[ok], v[ok], **{k: kw[k] for k in ("color", "marker", "ms", "lw", "ls", "mfc")})
                line.set_gid(f"variance:{name}")
        top.axhline(0.0, color="0.4", lw=0.8)
        top.set_yscale("symlog", linthresh=float(np.median(linthresh)) if linthresh else 1e-3)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.grid(True, which="major", alpha=0.3)
        if any(len(line.get_xdata()) for line in bottom.lines):
            bottom.set_yscale("log")
        _note(bottom, zero_notes, inside=True)
        top.set_title(f"{problem}, q = {q}", fontsize=9)
        top.set_ylabel("bias (mean − truth)")
        bottom.set_ylabel("variance over R replicates")
        bottom.set_xlabel("K (samples per estimate)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8,
               title="estimator", title_fontsize=8)
    left_out = len(pairs) - len(shown)
    more = f"; {left_out} more (problem, q) pairs in the tables" if left_out > 0 else ""
    fig.suptitle(f"All {_TARGET_TEXT.get(target, target)} side by side\nbias (±1 SE) and variance vs K{more}")
    return fig
