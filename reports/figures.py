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
* ``smc_variance_vs_n`` / ``smc_variance_vs_t`` / ``smc_bias_vs_variance`` /
  ``smc_proposals`` / ``ais_sandwich``   the particle filter and AIS rows: Var(log Z_hat)
                          vs N and vs T with fitted slopes, the bias against -Var/2,
                          bootstrap vs optimal proposals, the BDMC sandwich vs steps.

Every data line carries a ``gid`` naming what it shows ("variance:<q>",
"prediction:<q>", "gap:<q>", "variance:<method>", "throughput:<label>", ...),
so the drawn numbers can be traced back to the table.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # never a GUI backend; figures are only saved

import numpy as np
import pandas as pd
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
#: Okabe & Ito's colour-blind-safe palette (black last)
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
#: the order lines take colours in: the pale yellow last, so up to 7 series avoid it
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
_METHOD_STYLE = {
    "score": ("#D55E00", "o"),
    "score_loo": ("#E69F00", "s"),
    "reparam": ("#0072B2", "D"),
    "stl": ("#009E73", "^"),
    "dreg": ("#CC79A7", "v"),
    # binary latents (Bernoulli q); a method's option variants ("gumbel_softmax (temperature=2)") share its style
    "arm": ("#56B4E9", "P"),
    "disarm": ("#000000", "*"),
    "rebar": ("#999933", "h"),
    "gumbel_softmax": ("#882255", "<"),
    "straight_through": ("#44AA99", ">"),
}


def _method_style(method):
    """(color, marker) of a method label, its option suffix dropped; gray x for others (a user's)."""
    base = method if method.endswith("(yours)") else method.split(" (")[0]
    return _METHOD_STYLE.get(base, ("0.3", "x"))
#: (method, objective) pairs whose estimator is biased by construction, and the label that says so
BIASED = {("stl", "iwae"): "stl (biased for iwae)"}


def _require(df, columns, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df: {what} needs columns {missing}")


def _rows(df, estimator, what):
    sub = df[df["estimator"] == estimator]
    if sub.empty:
        raise ValueError(f"df: no '{estimator}' rows to draw {what}")
    return sub


def _suptitle(fig, text, **kw):
    """The figure's title, wrapped to the figure's width (a one-panel figure is narrow)."""
    return fig.suptitle(text, wrap=True, **kw)


def _panels(n, ncols=None, nrows=1, width=5.2, height=4.2, sharey=False, legend_width=2.0):
    """A grid of panels with room on the right for the figure's legend."""
    ncols = n if ncols is None else ncols
    fig = Figure(figsize=(width * ncols + legend_width, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def _q_styles(qs):
    """One (colour, marker) per q: Okabe-Ito colours and a distinct marker for
    each of up to 12 q (colours repeat after 8, the markers tell them apart)."""
    return {q: (_PALETTE[i % len(_PALETTE)], _MARKERS[i % len(_MARKERS)]) for i, q in enumerate(qs)}


def _q_linestyle(styles, q):
    """Solid for the first 8 q, dashed for those that share a colour with an earlier one."""
    return "-" if list(styles).index(q) < len(_PALETTE) else "--"


def _clip_to_data(ax, lo, hi, lines, notes, what, log=True):
    """Set the y limits from the measured data [lo, hi] (with a margin) and, for
    each reference line (label, y values) that leaves them, add a note that it is
    clipped and how far it goes."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= 0 and log:
        return
    if log:
        lo, hi = max(lo, hi * 1e-12), hi
        a, b = lo / 2.5, hi * 2.5
    else:
        pad = 0.08 * (hi - lo if hi > lo else abs(hi) + 1.0)
        a, b = lo - pad, hi + pad
    ax.set_ylim(a, b)
    for label, y in lines:
        y = np.asarray(y, dtype=float)
        y = y[np.isfinite(y)]
        if y.size and (y.max() > b or y.min() < a):
            far = y.max() if y.max() > b else y.min()
            notes.append(f"{label}: {what} leaves the axes (reaches {far:.2g}), clipped")


def _symlog_ticks(axis, linthresh):
    """Major ticks of a symmetric-log axis: 0 and the powers of ten at least
    1.5 linthresh from it (both signs), labelled 10^k / -10^k, so the labels
    around 0 do not collide."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = axis.get_view_interval()
    k0 = math.ceil(math.log10(1.5 * linthresh))
    ticks = [0.0]
    for k in range(k0, k0 + 40):
        t = 10.0 ** k
        if t <= hi:
            ticks.append(t)
        if -t >= lo:
            ticks.append(-t)
        if t > max(hi, -lo):
            break
    axis.set_major_locator(FixedLocator(sorted(ticks)))
    axis.set_minor_locator(NullLocator())

    def fmt(v, _):
        if v == 0:
            return "0"
        k = round(math.log10(abs(v)))
        return f"$10^{{{k}}}$" if v > 0 else f"$-10^{{{k}}}$"

    axis.set_major_formatter(FuncFormatter(fmt))


def _lower_err(y, se):
    """Error bars that stay positive on a log axis (lower bar at most 90% of y)."""
    return np.vstack([np.minimum(se, 0.9 * y), se])


def _note(ax, lines, inside=False):
    """Notes (what is not drawn or clipped, and why): under the x label (the
    layout makes room for them), or inside the axes at the lower right
    (``inside=True``)."""
    if lines and not inside:
        ax.annotate("\n".join(lines), xy=(0.0, 0.0), xycoords=("axes fraction", ax.xaxis.label),
                    xytext=(0, -6), textcoords="offset points", fontsize=7, va="top", ha="left", color="0.25",
                    annotation_clip=False)
    elif lines:
        ax.text(
            0.98,
            0.02,
            "\n".join(lines),
            transform=ax.transAxes,
            fontsize=7,
            va="bottom",
            ha="right",
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
        notes, ck, drew_ref, lo, hi, refs = [], [], False, math.inf, -math.inf, []
        for q, g in pdf.groupby("q", sort=False):
            g = g.sort_values("K")
            K = g["K"].to_numpy(float)
            v = g["variance"].to_numpy(float)
            se = g["variance_se"].to_numpy(float)
            keep = np.isfinite(v) & (v > ZERO_VARIANCE)
            if not keep.any():
                notes.append(f"{q}: variance 0 (round-off), not drawn")
                continue
            if (~keep).any():
                notes.append(f"{q}: {int((~keep).sum())} point(s) with variance 0 (round-off) not drawn")
            color, marker = styles[q]
            err = _lower_err(v[keep], np.nan_to_num(se[keep]))
            eb = ax.errorbar(K[keep], v[keep], yerr=err, color=color, marker=marker,
                             ms=4.5, lw=1.3, capsize=2, label=q, ls=_q_linestyle(styles, q))
            eb.lines[0].set_gid(f"variance:{q}")
            lo, hi = min(lo, float(np.min(v[keep] - err[0]))), max(hi, float(np.max(v[keep] + err[1])))
            ck.extend(v[keep] * K[keep])
            ref_col = "var_log_w" if estimator == "elbo" else "rel_weight_var"
            if ref_col in g:
                ref = g[ref_col].to_numpy(float) / K
                ok = np.isfinite(ref) & (ref > 0)
                if ok.any():
                    ax.plot(K[ok], ref[ok], ":", color=color, lw=1.0, gid=f"reference:{q}")
                    refs.append((q, ref[ok]))
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
        _clip_to_data(ax, lo, hi, refs, notes, "the exact Var/K line" if estimator == "elbo"
                      else "the delta-method line")
        ax.set_xlabel("K (samples per estimate)")
        Rs = sorted(set(int(r) for r in pdf["R"]))
        ax.set_ylabel("variance over R = " + "/".join(str(r) for r in Rs) + " replicates")
        ax.set_title(f"{problem} ({pdf['family'].iloc[0]})" if "family" in pdf else problem)
        ax.grid(True, which="major", alpha=0.3)
        _note(ax, notes)
    _legend_outside(fig, title="q")
    _suptitle(fig, f"Variance of {_ESTIMATOR_TEXT.get(estimator, estimator)} vs K, per proposal q (±1 SE)")
    return fig


def bias_vs_k(df):
    r"""-bias of log p-hat, :math:`\log p(x) - E[\log\hat p(x)]`, vs K, beside
    the delta-method prediction :math:`\mathrm{Var}_q[w]/(2Kp(x)^2)` (column
    ``bias_pred`` = minus it), drawn dashed where finite.

    The y axis is symmetric-log (logarithmic beyond ± the 10th percentile of
    the panel's SEs, linear inside), so a point whose measured bias has the
    "wrong" sign (>= 0, within noise of 0) is drawn below the zero line, not
    dropped.  Filled markers: |bias| > 2 SE; hollow: not distinguishable from
    0 at 2 SE.  The y limits come from the measured points ± SE; a prediction
    line that leaves them is clipped and the panel's note says how far it
    goes.  One panel per problem, one colour and marker per q.
    """
    _require(df, ["problem", "q", "K", "bias", "bias_se", "bias_pred", "estimator"], "bias_vs_k")
    sub = _rows(df, "importance_sampling", "bias_vs_k")
    problems = list(dict.fromkeys(sub["problem"]))
    styles = _q_styles(list(dict.fromkeys(sub["q"])))
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes[0], problems):
        pdf = sub[sub["problem"] == problem]
        notes, ses, lo, hi, preds = [], [], math.inf, -math.inf, []
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
            ok = np.isfinite(nb)
            if (~ok).any():
                notes.append(f"{q}: {int((~ok).sum())} point(s) with a non-finite bias not drawn")
            sig = ok & (np.abs(nb) > 2 * se)
            weak = ok & ~sig
            s_ok = np.nan_to_num(se[ok])
            eb = ax.errorbar(K[ok], nb[ok], yerr=s_ok, color=color, marker="none", ls="none", capsize=2, lw=1)
            eb.lines[0].set_gid(f"measured:{q}")
            ax.plot(K[sig], nb[sig], marker=marker, color=color, ls="none", ms=5.5)
            ax.plot(K[weak], nb[weak], marker=marker, mfc="white", color=color, ls="none", ms=5.5)
            if ok.any():
                lo, hi = min(lo, float(np.min(nb[ok] - s_ok))), max(hi, float(np.max(nb[ok] + s_ok)))
                ses.extend(s_ok[s_ok > 0])
            finite_pred = np.isfinite(pred) & (pred > 0)
            if finite_pred.any():
                ax.plot(K[finite_pred], pred[finite_pred], ls="--", color=color, lw=1.2, gid=f"prediction:{q}")
                preds.append((q, pred[finite_pred]))
            elif np.isinf(pred).any():
                notes.append(f"{q}: Var[w] = inf, no prediction")
            elif np.isnan(pred).all():
                notes.append(f"{q}: Var[w] not available, no prediction")
            ax.plot([], [], marker=marker, color=color, ls="-" if finite_pred.any() else "none", label=q)
        ax.plot([], [], "k--", lw=1.2, label=r"prediction Var$[w]/(2Kp^2)$")
        ax.plot([], [], "ko", mfc="white", ls="none", label="hollow: |bias| < 2 SE")
        ax.axhline(0.0, color="0.5", lw=0.7)
        ax.set_xscale("log")
        linthresh = float(np.percentile(ses, 10)) if ses else 1e-3
        ax.set_yscale("symlog", linthresh=linthresh)
        if np.isfinite(lo):
            # symmetric-log limits: a margin in log units beyond the data, 0 always in view
            a = min(lo, 0.0)
            b = max(hi, 0.0)
            ax.set_ylim(a * 2.5 if a < -linthresh else a - linthresh, b * 2.5 if b > linthresh else b + linthresh)
            ymin, ymax = ax.get_ylim()
            _symlog_ticks(ax.yaxis, linthresh)
            for q, y in preds:
                if y.max() > ymax:
                    notes.append(f"{q}: the prediction leaves the axes (reaches {y.max():.2g}), clipped")
        ax.set_xlabel("K (samples per estimate)")
        ax.set_ylabel(r"$\log p(x) - E[\log \hat p(x)]$  (±1 SE; symlog)")
        ax.set_title(f"{problem} ({pdf['family'].iloc[0]})" if "family" in pdf else problem)
        ax.grid(True, which="major", alpha=0.3)
        _note(ax, notes)
    _legend_outside(fig, title="q")
    _suptitle(fig, r"Bias of $\log\hat p(x)$ vs K: measured points and the prediction Var$_q[w]/(2K\,p(x)^2)$")
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
    fig = Figure(figsize=(5.4 * len(problems) + 2.0, 7.2), layout="constrained")
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
    _legend_outside(fig, title="q")
    _suptitle(fig, "Jensen gap of the Monte Carlo ELBO vs the exact KL divergence (pooled over K)")
    return fig


def gradient_rows(df):
    """The rows of every gradient estimator: the built-in "gradient" rows as
    they are, and any other estimator of target elbo_grad / iwae_grad (a
    user's: method = "<name> (yours)") as a method of its objective."""
    targets = row_targets(df)
    other = (df["estimator"] != "gradient") & np.isin(targets, ["elbo_grad", "iwae_grad"])
    builtin = _with_options(df[df["estimator"] == "gradient"])
    if not other.any():
        return builtin
    extra = df[other].copy()
    user = _is_user(extra)
    extra["method"] = [f"{e} (yours)" if u else e for e, u in zip(extra["estimator"], user)]
    extra["objective"] = np.where(targets[other.to_numpy()] == "iwae_grad", "iwae", "elbo")
    extra["estimator"] = "gradient"
    return pd.concat([builtin, extra], ignore_index=True)


def _with_options(rows):
    """A built-in method's rows with options (temperature, eta) labelled by them:
    "gumbel_softmax (temperature=2)", one line per setting."""
    if "options" not in rows or not (rows["options"].fillna("") != "").any():
        return rows
    rows = rows.copy()
    rows["method"] = [
        f"{m} ({', '.join(f'{k}={v:g}' if isinstance(v, (int, float)) else f'{k}={v}' for k, v in _json(o).items())})"
        if isinstance(o, str) and o else m
        for m, o in zip(rows["method"], rows["options"])
    ]
    return rows


def _gradient_panels(df, q, value, err, ylabel, title, floor=False):
    _require(df, ["problem", "q", "K", "method", "objective", value], title)
    sub = _rows(gradient_rows(df), "gradient", title)
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
            notes = []
            g0 = sub[(sub["problem"] == problem) & (sub["objective"] == objective)]
            for method, g in g0.groupby("method", sort=False):
                g = g.sort_values("K")
                color, marker = _method_style(method)
                yours = method.endswith("(yours)")
                biased = BIASED.get((method, objective))
                K = g["K"].to_numpy(float)
                y = g[value].to_numpy(float)
                keep = np.isfinite(y) & (y > 0)
                if not keep.any():
                    notes.append(f"{method}: no point with {value} > 0, not drawn")
                    continue
                if (~keep).any():
                    notes.append(f"{method}: {int((~keep).sum())} point(s) with {value} <= 0 not drawn")
                yerr = _lower_err(y[keep], g[err].to_numpy(float)[keep]) if err else None
                eb = ax.errorbar(K[keep], y[keep], yerr=yerr, color=color, marker=marker, ms=4.5, lw=1.3,
                                 capsize=2, label=biased or method, ls="--" if (yours or biased) else "-",
                                 mfc="white" if (yours or biased) else color)
                eb.lines[0].set_gid(f"{value}:{method}")
                if biased:  # say it on the data, not only in the legend
                    ax.annotate("biased for " + objective, xy=(K[keep][-1], y[keep][-1]), xytext=(-8, -7),
                                textcoords="offset points", ha="right", va="top", fontsize=7, color=color,
                                fontstyle="italic")
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
            absent = [m for m in dict.fromkeys(sub["method"]) if m not in set(g0["method"])]
            if absent:
                notes.append(f"no cells here for {', '.join(absent)} (skipped: see the report's Skipped cells)")
            _note(ax, notes)
    _legend_outside(fig, title="method")
    _suptitle(fig, f"{title}, q = {q}")
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


def throughput_vs_k(df, max_panels=6):
    r"""Samples per second (K R / seconds of one timed call) vs K, log-log;
    one panel per problem, one line per estimator -- importance sampling and
    the ELBO in black/grey, gradients coloured by method, solid for the elbo
    objective and dashed for iwae -- each the median over the q's of
    (estimator, K).  At most ``max_panels`` problems, those with the most
    cells first; the title says how many were left out (their rows are in the
    table)."""
    _require(df, ["problem", "estimator", "method", "objective", "K", "samples_per_s"], "throughput_vs_k")
    if df.empty:
        raise ValueError("df: no rows to draw throughput_vs_k")
    counts = df.groupby("problem", sort=False).size().sort_values(ascending=False, kind="stable")
    problems = list(counts.index[:max_panels])
    left_out = len(counts) - len(problems)
    fig, axes = _panels(len(problems), width=5.8)
    for ax, problem in zip(axes[0], problems):
        pdf = df[df["problem"] == problem]
        n_lines = 0
        for (est, method, objective), g in pdf.groupby(["estimator", "method", "objective"], sort=False):
            med = g.groupby("K")["samples_per_s"].median().sort_index()
            K, y = med.index.to_numpy(float), med.to_numpy(float)
            ok = np.isfinite(y) & (y > 0)
            if est == "gradient":
                color, marker = _method_style(method)
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
    _legend_outside(fig, title="estimator")
    more = f"\n({left_out} more problems in the table)" if left_out else ""
    _suptitle(fig, "Throughput vs K: K·R samples per second of one timed call per cell (compilation excluded)" + more)
    return fig


# --------------------------------------------------------------------------- estimators side by side

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
    if (pairs >= 2).any():  # a comparison needs two estimators in a panel; pairs with one are in the tables
        pairs = pairs[pairs >= 2]
    shown = list(pairs.index[:max_panels])
    fig, axes = _panels(len(shown), nrows=2, height=3.4, width=max(5.2, 9.0 / len(shown)), legend_width=0.0)
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
    _suptitle(fig, f"All {_TARGET_TEXT.get(target, target)} side by side\nbias (±1 SE) and variance vs K{more}")
    return fig


# --------------------------------------------------------------------------- sequential and annealed estimators
#
# Rows of the built-in sweep estimators "smc" (K = the number of particles N) and "ais" (K = the
# number of chains).  Their options come from each row's ``options`` JSON, with the registered
# defaults (bench.registry) filled in where a sweep did not give one; the problem's T from its
# ``problem_params`` JSON.

SMC_DEFAULTS = {"proposal": "bootstrap", "resampling": "systematic", "ess_threshold": 0.5}
AIS_DEFAULTS = {"steps": 10, "kernel": "hmc", "schedule": "geometric", "reverse": False}
#: a fit of Var(log Z_hat) uses the points with Var <= this (the large-N regime of the delta method)
FIT_MAX_VARIANCE = 1.0

__all__ += [
    "SMC_DEFAULTS",
    "AIS_DEFAULTS",
    "FIT_MAX_VARIANCE",
    "power_law_fit",
    "sequential_rows",
    "sequential_available",
    "smc_variance_vs_n",
    "smc_variance_vs_t",
    "smc_bias_vs_variance",
    "smc_proposals",
    "ais_sandwich",
]


def power_law_fit(x, v, v_se):
    r"""Fit :math:`v = c\,x^{b}` by weighted least squares on logs.

    With :math:`y_i = \log v_i` and its delta-method SE :math:`s_i = \mathrm{SE}(v_i)/v_i`:
    :math:`(\log c, b) = (X^TWX)^{-1}X^TWy`, :math:`X = [1, \log x]`,
    :math:`W = \mathrm{diag}(s^{-2})`, covariance :math:`(X^TWX)^{-1}` (the SEs taken as known),
    :math:`\chi^2 = \sum_i ((y_i - \log c - b\log x_i)/s_i)^2` on n - 2 degrees of freedom.
    Returns a dict (slope, slope_se, intercept, intercept_se, chi2, dof, n), or None when fewer
    than 2 points have v > 0, SE > 0 and are finite, or they share one x."""
    x, v, se = (np.asarray(a, dtype=np.float64) for a in (x, v, v_se))
    ok = np.isfinite(x) & np.isfinite(v) & np.isfinite(se) & (x > 0) & (v > 0) & (se > 0)
    x, v, se = x[ok], v[ok], se[ok]
    if x.size < 2 or np.unique(x).size < 2:
        return None
    lx, y, s = np.log(x), np.log(v), se / v
    w = 1.0 / s**2
    X = np.column_stack([np.ones_like(lx), lx])
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = cov @ (X.T @ (w * y))
    resid = (y - X @ beta) / s
    return {"slope": float(beta[1]), "slope_se": float(math.sqrt(cov[1, 1])), "intercept": float(beta[0]),
            "intercept_se": float(math.sqrt(cov[0, 0])), "chi2": float(resid @ resid), "dof": int(x.size - 2),
            "n": int(x.size)}


def _json(s):
    import json

    if isinstance(s, str) and s:
        return json.loads(s)
    return {}


def sequential_rows(df, estimator):
    """The rows of ``estimator`` ("smc" or "ais") with one column per option
    (defaults filled in: ``SMC_DEFAULTS`` / ``AIS_DEFAULTS``) and ``T`` (the
    problem's T parameter, NaN when it has none)."""
    _require(df, ["estimator", "problem", "K", "variance", "variance_se", "bias", "bias_se"], estimator)
    sub = df[df["estimator"] == estimator].copy()
    defaults = SMC_DEFAULTS if estimator == "smc" else AIS_DEFAULTS
    opts = [{**defaults, **_json(o)} for o in (sub["options"] if "options" in sub else [""] * len(sub))]
    for name in defaults:
        sub[name] = [o[name] for o in opts]
    params = [_json(s) for s in (sub["problem_params"] if "problem_params" in sub else [""] * len(sub))]
    sub["T"] = [float(p["T"]) if isinstance(p.get("T"), (int, float)) else math.nan for p in params]
    sub["_params_without_T"] = [repr(sorted((k, repr(v)) for k, v in p.items() if k != "T")) for p in params]
    if estimator == "ais":
        sub["steps"] = sub["steps"].astype(int)
        sub["reverse"] = sub["reverse"].astype(bool)
    return sub


def _t_groups(smc):
    """{(family, other params, N, R, proposal, resampling, ess_threshold): rows} with >= 2 distinct T
    (a series in T is one measurement design: the same N, R and options)."""
    keys = ["family" if "family" in smc else "problem", "_params_without_T", "K", "R", "proposal", "resampling",
            "ess_threshold"]
    out = {}
    finite = smc[np.isfinite(smc["T"])]
    for key, g in finite.groupby(keys, sort=False):
        if g["T"].nunique() >= 2:
            out[key] = g
    return out


def _config_label(row_or_key, keys=("proposal", "resampling")):
    return " / ".join(str(row_or_key[k]) for k in keys)


def sequential_available(df):
    """{figure name: bool}: which of the sequential figures the table supports
    (``smc_variance_vs_n``: an SMC configuration at >= 2 N; ``smc_variance_vs_t``:
    one at >= 2 T; ``smc_bias_vs_variance``: any SMC row or forward AIS row;
    ``smc_proposals``: bootstrap and optimal rows at a common N; ``ais_sandwich``:
    forward and reverse AIS rows of one configuration)."""
    out = dict.fromkeys(["smc_variance_vs_n", "smc_variance_vs_t", "smc_bias_vs_variance", "smc_proposals",
                         "ais_sandwich"], False)
    if "estimator" not in df:
        return out
    est = set(df["estimator"])
    if "smc" in est:
        smc = sequential_rows(df, "smc")
        out["smc_variance_vs_n"] = bool(
            (smc.groupby(["problem", "proposal", "resampling", "ess_threshold"])["K"].nunique() >= 2).any())
        out["smc_variance_vs_t"] = bool(_t_groups(smc))
        out["smc_bias_vs_variance"] = True
        both = smc.groupby(["problem", "K"])["proposal"].agg(lambda s: {"bootstrap", "optimal"} <= set(s))
        out["smc_proposals"] = bool(both.any())
    if "ais" in est:
        ais = sequential_rows(df, "ais")
        out["smc_bias_vs_variance"] = out["smc_bias_vs_variance"] or bool((~ais["reverse"]).any())
        both = ais.groupby(["problem", "K", "kernel", "schedule"])["reverse"].nunique() == 2
        out["ais_sandwich"] = bool(both.any())
    return out


def _legend_outside(fig, ax_or_axes=None, title=None, ncol=1):
    """One legend for the figure, to the right of every panel (outside the data)."""
    handles, labels, seen = [], [], set()
    axes = fig.axes if ax_or_axes is None else np.ravel(ax_or_axes)
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in seen and not label.startswith("_"):
                seen.add(label)
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=7, title=title, title_fontsize=8,
                   ncol=max(ncol, 1 + len(handles) // 19))


def _style(i):
    return OKABE_ITO[i % len(OKABE_ITO)], _MARKERS[i % len(_MARKERS)]


def _fit_line(label, fit, expected):
    """One line of a panel's fit table: the slope ± SE and its distance from the law in SEs."""
    if fit is None:
        return f"{label}: no fit (< 2 points with Var in range)"
    z = (fit["slope"] - expected) / fit["slope_se"]
    return (f"{label}: slope {fit['slope']:.2f} ± {fit['slope_se']:.2f} ({z:+.1f} SE from {expected:g}), "
            f"χ²/dof {fit['chi2']:.1f}/{fit['dof']}")


def _draw_power_law(ax, x, v, se, color, marker, label, gid, notes, max_variance, what):
    """Points v ± se against x (log-log), filled where inside the fit range (v <= max_variance),
    hollow outside it, and the fitted line over the fitted points.  Points that cannot be drawn
    on a log axis are named in ``notes``.  Returns (fit or None, number of hollow points)."""
    x, v, se = (np.asarray(a, dtype=np.float64) for a in (x, v, se))
    drawable = np.isfinite(v) & (v > 0) & np.isfinite(x) & (x > 0)
    if (~drawable).any():
        notes.append(f"{label}: {int((~drawable).sum())} point(s) with variance <= 0 or not finite "
                     f"({what} = {', '.join(f'{a:g}' for a in x[~drawable])}) not drawn")
    inside = drawable & (v <= max_variance)
    outside = drawable & ~inside
    fit = power_law_fit(x[inside], v[inside], se[inside])
    if drawable.any():
        eb = ax.errorbar(x[drawable], v[drawable], yerr=_lower_err(v[drawable], np.nan_to_num(se[drawable])),
                         color=color, marker="none", ls="none", capsize=2, lw=1)
        eb.lines[0].set_gid(gid)
        ax.plot(x[inside], v[inside], marker=marker, color=color, ls="none", ms=5)
        ax.plot(x[outside], v[outside], marker=marker, mfc="white", color=color, ls="none", ms=5)
    if fit is not None:
        xs = np.array([x[inside].min(), x[inside].max()])
        ax.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], "-", color=color, lw=1.2, gid=f"fit:{gid}")
    ax.plot([], [], marker=marker, color=color, ls="-", label=label)
    return fit, int(outside.sum())


def _reference_slope(ax, xs, slope, anchor, text):
    xs = np.asarray([min(xs), max(xs)], dtype=float)
    if xs[0] <= 0 or not np.isfinite(anchor) or anchor <= 0:
        return
    ax.plot(xs, anchor * (xs / xs[0]) ** slope, "k:", lw=1.0, label=text)


def _law_panels(n, n_lines):
    """A row of n log-log panels above a text row (each panel's fit table and notes: outside the data)."""
    text_h = 0.16 * max(n_lines, 1) + 0.2
    fig = Figure(figsize=(4.6 * n + 3.6, 3.9 + text_h), layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[3.9, text_h])
    axes = [fig.add_subplot(grid[0, j]) for j in range(n)]
    texts = [fig.add_subplot(grid[1, j]) for j in range(n)]
    for t in texts:
        t.set_axis_off()
    return fig, axes, texts


def _write_lines(tax, lines):
    tax.text(0.0, 1.0, "\n".join(lines), transform=tax.transAxes, va="top", ha="left", fontsize=6.5,
             family="monospace", color="0.15")


def _law_legend(fig, max_variance, what):
    fig.axes[0].plot([], [], "o", color="0.4", label=f"filled: in the fit (Var ≤ {max_variance:g})")
    fig.axes[0].plot([], [], "o", color="0.4", mfc="white", label=f"hollow: Var > {max_variance:g}, not fitted")
    _legend_outside(fig, title=what)


def smc_variance_vs_n(df, max_variance=FIT_MAX_VARIANCE, max_panels=6):
    r"""Var(log Ẑ) of the particle filter against the number of particles N
    (log-log, ±1 SE bars from ``variance_se``), one panel per problem, one
    colour per (proposal, resampling[, ess_threshold]).

    For large N, :math:`\mathrm{Var}(\log\hat Z) \approx \sigma^2_T / N`: the
    fitted line :math:`\log \mathrm{Var} = a + b \log N` (``power_law_fit``,
    weights from the SEs) should have slope b = -1.  Only points with
    Var <= ``max_variance`` (the large-N regime) enter the fit; the others are
    drawn hollow.  Under each panel, its fits: slope ± SE, the distance from
    -1 in SEs and the χ²; a dotted line of slope -1 is the reference.
    Only problems with a configuration at >= 2 values of N get a panel (at
    most ``max_panels``; the title says how many more there were)."""
    smc = sequential_rows(df, "smc")
    n_values = smc.groupby(["problem", "proposal", "resampling", "ess_threshold"], sort=False)["K"].nunique()
    candidates = list(dict.fromkeys(k[0] for k, n in n_values.items() if n >= 2))
    if not candidates:
        raise ValueError("df: no smc configuration at >= 2 values of N to draw smc_variance_vs_n")
    problems = candidates[:max_panels]
    configs = list(dict.fromkeys(zip(smc["proposal"], smc["resampling"], smc["ess_threshold"])))
    several_thresholds = len({c[2] for c in configs}) > 1
    panels = []
    for problem in problems:
        pdf = smc[smc["problem"] == problem]
        present = [(i, c) for i, c in enumerate(configs)
                   if ((pdf["proposal"] == c[0]) & (pdf["resampling"] == c[1]) & (pdf["ess_threshold"] == c[2])).any()]
        panels.append((problem, pdf, present))
    fig, axes, texts = _law_panels(len(panels), max(len(pr) for _, _, pr in panels) + 1)
    for ax, tax, (problem, pdf, present) in zip(axes, texts, panels):
        notes, lines, hollow = [], [], 0
        for i, cfg in present:
            g = pdf[(pdf["proposal"] == cfg[0]) & (pdf["resampling"] == cfg[1]) & (pdf["ess_threshold"] == cfg[2])]
            g = g.sort_values("K")
            color, marker = _style(i)
            label = f"{cfg[0]} / {cfg[1]}" + (f" / ESS<{cfg[2]:g}N" if several_thresholds else "")
            fit, n_out = _draw_power_law(ax, g["K"], g["variance"], g["variance_se"], color, marker, label,
                                         f"variance:{problem}:{label}", notes, max_variance, "N")
            lines.append(_fit_line(label, fit, -1.0))
            hollow += n_out
        v, K = pdf["variance"].to_numpy(float), pdf["K"].to_numpy(float)
        ok = np.isfinite(v) & (v > 0)
        if ok.any():
            first = ok & (K == K[ok].min())
            _reference_slope(ax, K[ok], -1.0, float(np.median(v[first])), r"reference slope $-1$ ($\propto 1/N$)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (particles)")
        ax.set_ylabel(r"Var$(\log\hat Z)$ over R = " + "/".join(str(r) for r in sorted(set(pdf["R"]))) + " (±1 SE)")
        T = pdf["T"].dropna().unique()
        ax.set_title(f"{problem}" + (f" (T = {int(T[0])})" if len(T) == 1 else ""), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        _write_lines(tax, [f"fits of log Var on log N ({hollow} hollow point(s) not fitted):"] + lines + notes)
    _law_legend(fig, max_variance, "proposal / resampling")
    more = len(candidates) - len(problems)
    _suptitle(fig, r"Particle filter: Var$(\log\hat Z)$ vs N" + "\n" + r"expected slope $-1$ for large N"
                 + (f" ({more} more problems in the table)" if more > 0 else ""))
    return fig


def smc_variance_vs_t(df, max_variance=math.inf):
    r"""Var(log Ẑ) of the particle filter against the length T of the series
    (log-log), at fixed N, for problems of one family that differ only in T.

    Where several observations were drawn per T (problems differing in
    ``x_seed``), the point is the mean over them of Var(log Ẑ | x) with
    the SE :math:`\mathrm{sd}_x / \sqrt{M}` over the M observations (which
    includes each variance's own sampling error); with one observation it is
    that row's variance ± ``variance_se``.  The law (for a stable, mixing
    model) is :math:`E_x\,\mathrm{Var}(\log\hat Z) \approx c\,T/N`: the fitted
    slope (``power_law_fit``) should be 1; for one fixed x the per-step
    contributions depend on the data, so a single series need not give 1.
    ``max_variance`` (default: no limit) restricts the fit as in
    ``smc_variance_vs_n``.  One panel per (family, N, R), one colour per
    (proposal, resampling); the fits are listed under each panel."""
    smc = sequential_rows(df, "smc")
    groups = _t_groups(smc)
    if not groups:
        raise ValueError("df: no smc configuration at >= 2 values of T to draw smc_variance_vs_t")
    panels = list(dict.fromkeys(k[:4] for k in groups))
    configs = list(dict.fromkeys(k[4:] for k in groups))
    several_thresholds = len({c[2] for c in configs}) > 1
    fig, axes, texts = _law_panels(len(panels), len(configs) + 2)
    for ax, tax, pk in zip(axes, texts, panels):
        notes, lines, Ms, hollow = [], [], set(), 0
        for i, cfg in enumerate(configs):
            key = pk + cfg
            if key not in groups:
                continue
            Ts, v, se = [], [], []
            for T, h in groups[key].groupby("T", sort=True):
                vals = h["variance"].to_numpy(float)
                Ms.add(len(vals))
                Ts.append(T)
                if len(vals) >= 2:
                    v.append(float(np.mean(vals)))
                    se.append(float(np.std(vals, ddof=1) / math.sqrt(len(vals))))
                else:
                    v.append(float(vals[0]))
                    se.append(float(h["variance_se"].iloc[0]))
            color, marker = _style(i)
            label = f"{cfg[0]} / {cfg[1]}" + (f" / ESS<{cfg[2]:g}N" if several_thresholds else "")
            fit, n_out = _draw_power_law(ax, Ts, v, se, color, marker, label,
                                         f"variance_T:{pk[0]}:N={pk[2]}:{label}", notes, max_variance, "T")
            lines.append(_fit_line(label, fit, 1.0))
            hollow += n_out
        sub = _concat([groups[pk + c] for c in configs if pk + c in groups])
        base = sub.loc[sub["T"] == sub["T"].min(), "variance"].to_numpy(float)
        base = base[np.isfinite(base) & (base > 0)]
        if base.size:
            _reference_slope(ax, sub["T"], 1.0, float(np.mean(base)), r"reference slope $1$ ($\propto T$)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("T (time steps)")
        m = "/".join(str(k) for k in sorted(Ms))
        ax.set_ylabel(r"$E_x$ Var$(\log\hat Z)$ (±1 SE" + (f"; M = {m} series per T)" if max(Ms) > 1 else ")"))
        ax.set_title(f"{pk[0]}, N = {int(pk[2])}, R = {int(pk[3])}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        head = "fits of log Var on log T" + (f" ({hollow} hollow point(s) not fitted):" if hollow else ":")
        _write_lines(tax, [head] + lines + notes)
    if math.isfinite(max_variance):
        _law_legend(fig, max_variance, "proposal / resampling")
    else:
        _legend_outside(fig, title="proposal / resampling")
    _suptitle(fig, r"Particle filter: Var$(\log\hat Z)$ vs T at fixed N" + "\n"
                 + r"expected slope $1$ (averaged over the observed series)")
    return fig


def _concat(frames):
    import pandas as pd

    return pd.concat(frames) if frames else pd.DataFrame()


def _unbiased_in_z_rows(df):
    """SMC rows and forward AIS rows, labelled: the estimators whose Ẑ is unbiased for p(x)."""
    parts = []
    if (df["estimator"] == "smc").any():
        smc = sequential_rows(df, "smc")
        smc["_label"] = ["smc " + _config_label(r) for _, r in smc.iterrows()]
        parts.append(smc)
    n_reverse = 0
    if (df["estimator"] == "ais").any():
        ais = sequential_rows(df, "ais")
        n_reverse = int(ais["reverse"].sum())
        ais = ais[~ais["reverse"]].copy()
        ais["_label"] = [f"ais {r['kernel']} (forward)" for _, r in ais.iterrows()]
        parts.append(ais)
    return _concat(parts), n_reverse


def smc_bias_vs_variance(df):
    r"""The bias of log Ẑ against minus half its variance, for every SMC row and
    every forward AIS row (estimators with :math:`E[\hat Z] = p(x)`).

    For such an estimator, when :math:`\log\hat Z` is close to normal (large N
    or K), :math:`E[\log\hat Z] - \log p(x) \approx -\mathrm{Var}(\log\hat Z)/2`
    (the second-order delta method, or exactly for a log-normal Ẑ): the points
    should lie on y = x.  Left: :math:`y = -\text{bias}` (±1 SE) against
    :math:`x = \mathrm{Var}/2` (±SE/2), x on a log axis and y on a
    symmetric-log axis, linear within the median bias SE of zero (so a point
    whose measured bias is >= 0 is drawn too); right: the residual
    (bias + Var/2) / SE with SE = sqrt(bias_se² + (variance_se/2)²) (the two
    SEs combined as if independent), against Var/2, with the ±2 SE band.
    Reverse (BDMC) AIS rows are not drawn: their bias is +Var/2 by the same
    argument (they estimate 1/p(x) without bias); the note counts them."""
    rows, n_reverse = _unbiased_in_z_rows(df)
    if rows.empty:
        raise ValueError("df: no smc or forward ais rows to draw smc_bias_vs_variance")
    fig = Figure(figsize=(11.5, 4.8), layout="constrained")
    ax, axr = fig.subplots(1, 2)
    labels = list(dict.fromkeys(rows["_label"]))
    notes, xs, ses = [], [], []
    for i, label in enumerate(labels):
        g = rows[rows["_label"] == label]
        color, marker = _style(i)
        v, vse = g["variance"].to_numpy(float), g["variance_se"].to_numpy(float)
        b, bse = g["bias"].to_numpy(float), g["bias_se"].to_numpy(float)
        ok = np.isfinite(v) & np.isfinite(b) & (v > 0)
        if (~ok).any():
            notes.append(f"{label}: {int((~ok).sum())} row(s) with a non-finite bias or a variance <= 0 not drawn")
        x = v[ok] / 2
        eb = ax.errorbar(x, -b[ok], xerr=vse[ok] / 2, yerr=bse[ok], color=color, marker=marker, ms=4, ls="none",
                         capsize=1.5, lw=0.7, label=label)
        eb.lines[0].set_gid(f"bias_vs_var:{label}")
        xs.extend(x)
        ses.extend(bse[ok][np.isfinite(bse[ok]) & (bse[ok] > 0)])
        se = np.sqrt(bse[ok] ** 2 + (vse[ok] / 2) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (b[ok] + v[ok] / 2) / se
        good = np.isfinite(z)
        if (~good).any():
            notes.append(f"{label}: {int((~good).sum())} point(s) with SE 0 not in the residual panel")
        line, = axr.plot(x[good], z[good], marker=marker, color=color, ls="none", ms=4)
        line.set_gid(f"residual:{label}")
    if xs:
        lo, hi = min(xs) / 1.5, max(xs) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, alpha=0.6, label=r"y = x (bias = $-$Var/2)")
        ax.set_xlim(lo, hi)
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=float(np.median(ses)) if ses else 1e-3)
    ax.set_xlabel(r"$\mathrm{Var}(\log\hat Z)/2$  (±SE/2)")
    ax.set_ylabel(r"$-$bias $= \log p(x) - E[\log\hat Z]$  (±1 SE)")
    ax.set_title("−bias against Var/2 (y: symmetric-log)", fontsize=9)
    ax.grid(True, alpha=0.3)
    axr.axhspan(-2, 2, color="0.92", label="±2 SE")
    axr.axhline(0.0, color="k", lw=0.8)
    axr.set_xscale("log")
    axr.set_xlabel(r"$\mathrm{Var}(\log\hat Z)/2$")
    axr.set_ylabel(r"(bias + Var/2) / SE")
    axr.set_title("residual from the law in SEs (the law is asymptotic)", fontsize=9)
    axr.grid(True, alpha=0.3)
    if n_reverse:
        notes.append(f"{n_reverse} reverse (BDMC upper-bound) AIS row(s) not drawn: their bias is +Var/2")
    _note(axr, notes, inside=True)
    _legend_outside(fig, title="estimator")
    _suptitle(fig, r"Bias of $\log\hat Z$ vs $-$Var/2 for unbiased $\hat Z$" + "\n(particle filter, forward AIS)")
    return fig


def smc_proposals(df, max_panels=4):
    r"""Bootstrap against locally optimal proposals of the particle filter, per
    problem: left, Var(log Ẑ) against N for both (bootstrap solid, optimal
    dashed; one colour per resampling scheme); right, the variance ratio
    :math:`\mathrm{Var}_\mathrm{bootstrap}/\mathrm{Var}_\mathrm{optimal}` at
    each N with the delta-method SE
    :math:`\rho\sqrt{(s_b/v_b)^2 + (s_o/v_o)^2}` (independent cells), and the
    line 1 (no gain).  The optimal proposal is expected above 1 everywhere.
    One row of panels per problem with both proposals at >= 2 common N (or,
    if there is none, at one), those with the most common N first (at most
    ``max_panels``; the title says how many more problems the table has)."""
    smc = sequential_rows(df, "smc")
    common_n = {}
    for pb, g in smc.groupby("problem", sort=False):
        ks = set(g.loc[g["proposal"] == "bootstrap", "K"]) & set(g.loc[g["proposal"] == "optimal", "K"])
        if ks:
            common_n[pb] = len(ks)
    if not common_n:
        raise ValueError("df: no problem with both bootstrap and optimal smc rows to draw smc_proposals")
    ranked = sorted(common_n, key=lambda pb: -common_n[pb])  # stable: table order among ties
    enough = min(2, max(common_n.values()))  # a curve in N where there is one, else single points
    problems = [pb for pb in ranked if common_n[pb] >= enough][:max_panels]
    schemes = list(dict.fromkeys(zip(smc["resampling"], smc["ess_threshold"])))
    fig = Figure(figsize=(9.6, 3.9 * len(problems) + 0.6), layout="constrained")
    axes = fig.subplots(len(problems), 2, squeeze=False)
    for row, problem in enumerate(problems):
        ax, axr = axes[row]
        pdf = smc[smc["problem"] == problem]
        notes = []
        for i, (scheme, thr) in enumerate(schemes):
            color, marker = _style(i)
            label = scheme + (f" / ESS<{thr:g}N" if len({s[1] for s in schemes}) > 1 else "")
            by = {}
            for prop, ls in (("bootstrap", "-"), ("optimal", "--")):
                g = pdf[(pdf["proposal"] == prop) & (pdf["resampling"] == scheme) & (pdf["ess_threshold"] == thr)]
                g = g.sort_values("K")
                by[prop] = g.set_index("K")
                v, se, K = (g[c].to_numpy(float) for c in ("variance", "variance_se", "K"))
                ok = np.isfinite(v) & (v > 0)
                if (~ok).any():
                    notes.append(f"{label} {prop}: {int((~ok).sum())} point(s) with variance <= 0 not drawn")
                if ok.any():
                    eb = ax.errorbar(K[ok], v[ok], yerr=_lower_err(v[ok], se[ok]), color=color, marker=marker,
                                     ms=4, ls=ls, lw=1.2, capsize=2, mfc=color if prop == "bootstrap" else "white")
                    eb.lines[0].set_gid(f"variance:{problem}:{prop}:{label}")
            common = by["bootstrap"].index.intersection(by["optimal"].index)
            if len(common):
                vb, sb = by["bootstrap"].loc[common, "variance"].to_numpy(float), \
                    by["bootstrap"].loc[common, "variance_se"].to_numpy(float)
                vo, so = by["optimal"].loc[common, "variance"].to_numpy(float), \
                    by["optimal"].loc[common, "variance_se"].to_numpy(float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = vb / vo
                    rse = ratio * np.sqrt((sb / vb) ** 2 + (so / vo) ** 2)
                ok = np.isfinite(ratio) & (ratio > 0)
                if (~ok).any():
                    notes.append(f"{label}: {int((~ok).sum())} ratio(s) not finite (a variance 0) not drawn")
                Kc = np.asarray(common, dtype=float)
                eb = axr.errorbar(Kc[ok], ratio[ok], yerr=_lower_err(ratio[ok], rse[ok]), color=color,
                                  marker=marker, ms=4, lw=1.2, capsize=2, label=label)
                eb.lines[0].set_gid(f"ratio:{problem}:{label}")
            ax.plot([], [], color=color, marker=marker, ls="-", label=label)
        ax.plot([], [], "k-", label="bootstrap (filled)")
        ax.plot([], [], "k--", mfc="white", marker="o", label="optimal (hollow)")
        axr.axhline(1.0, color="k", lw=0.8, label="ratio 1 (no gain)")
        for a in (ax, axr):
            a.set_xscale("log")
            a.set_yscale("log")
            a.grid(True, which="major", alpha=0.3)
            a.set_xlabel("N (particles)")
        T = pdf["T"].dropna().unique()
        where = f"{problem}" + (f" (T = {int(T[0])})" if len(T) == 1 else "")
        ax.set_ylabel(r"Var$(\log\hat Z)$ (±1 SE)")
        ax.set_title(f"{where}: variance", fontsize=9)
        axr.set_ylabel(r"Var$_\mathrm{bootstrap}$ / Var$_\mathrm{optimal}$ (±1 SE)")
        axr.set_title(f"{where}: variance ratio", fontsize=9)
        _note(axr, notes, inside=True)
    _legend_outside(fig, title="resampling")
    more = len(ranked) - len(problems)
    _suptitle(fig, "Particle filter: bootstrap vs locally optimal proposal"
                 + (f"\n({more} more problems with both proposals in the table)" if more > 0 else ""))
    return fig


def ais_sandwich(df):
    r"""The BDMC sandwich of annealed importance sampling as the number of
    temperatures grows, per (problem, kernel, schedule, K): top, the forward
    estimate :math:`E[\log\hat p]` (a stochastic lower bound) and the reverse
    estimate (an upper bound) against ``steps`` (±1 SE), with log p(x) as a
    horizontal line; bottom, the gap
    :math:`E[\text{reverse}] - E[\text{forward}]` (log-log; SE
    :math:`\sqrt{s_f^2 + s_r^2}`), which bounds the divergence between the
    annealed chain and the posterior and should shrink towards 0.  A gap <= 0
    cannot sit on the log axis; it is listed in the panel's note."""
    ais = sequential_rows(df, "ais")
    if ais.empty:
        raise ValueError("df: no 'ais' rows to draw ais_sandwich")
    keys = [k for k, g in ais.groupby(["problem", "kernel", "schedule", "K"], sort=False) if g["reverse"].nunique() == 2]
    if not keys:
        raise ValueError("df: no ais configuration with both forward and reverse rows to draw ais_sandwich")
    fig = Figure(figsize=(max(5.0, 4.6 * len(keys)) + 2.4, 7.0), layout="constrained")
    axes = fig.subplots(2, len(keys), squeeze=False, height_ratios=[3, 2])
    c_fwd, c_rev, c_gap = OKABE_ITO[0], OKABE_ITO[1], OKABE_ITO[2]
    for j, (problem, kernel, schedule, K) in enumerate(keys):
        top, bottom = axes[0, j], axes[1, j]
        g = ais[(ais["problem"] == problem) & (ais["kernel"] == kernel) & (ais["schedule"] == schedule)
                & (ais["K"] == K)]
        truth = float(g["truth"].iloc[0])
        notes = []
        by = {}
        for rev, color, marker, text in ((False, c_fwd, "o", "forward (lower bound)"),
                                         (True, c_rev, "s", "reverse / BDMC (upper bound)")):
            h = g[g["reverse"] == rev].sort_values("steps")
            by[rev] = h.set_index("steps")
            S, m, se = (h[c].to_numpy(float) for c in ("steps", "mean", "mean_se"))
            ok = np.isfinite(m)
            if (~ok).any():
                notes.append(f"{text}: {int((~ok).sum())} non-finite mean(s) not drawn")
            eb = top.errorbar(S[ok], m[ok], yerr=se[ok], color=color, marker=marker, ms=5, lw=1.3, capsize=2,
                              label=text)
            eb.lines[0].set_gid(f"{'reverse' if rev else 'forward'}:{problem}:{kernel}:K={K}")
        top.axhline(truth, color="k", lw=1.0, ls="--", label="exact log p(x)")
        common = by[False].index.intersection(by[True].index)
        S = np.asarray(common, dtype=float)
        gap = by[True].loc[common, "mean"].to_numpy(float) - by[False].loc[common, "mean"].to_numpy(float)
        gse = np.sqrt(by[True].loc[common, "mean_se"].to_numpy(float) ** 2
                      + by[False].loc[common, "mean_se"].to_numpy(float) ** 2)
        pos = np.isfinite(gap) & (gap > 0)
        if (~pos).any():
            notes.append("gap <= 0 at steps " + ", ".join(f"{s:g} ({v:.2g} ± {e:.1g})" for s, v, e in
                                                          zip(S[~pos], gap[~pos], gse[~pos])) + ": not on log axis")
        if pos.any():
            eb = bottom.errorbar(S[pos], gap[pos], yerr=_lower_err(gap[pos], gse[pos]), color=c_gap, marker="D",
                                 ms=5, lw=1.3, capsize=2, label="gap: reverse − forward")
            eb.lines[0].set_gid(f"gap:{problem}:{kernel}:K={K}")
            bottom.set_yscale("log")
        for a in (top, bottom):
            a.set_xscale("log")
            a.grid(True, which="major", alpha=0.3)
        top.set_ylabel(r"$E[\log\hat p(x)]$ (±1 SE)")
        bottom.set_ylabel("BDMC gap [nats] (±1 SE)")
        bottom.set_xlabel("steps (temperatures)")
        if len(S):
            last = int(np.argmax(S))
            Rs = "/".join(str(int(r)) for r in sorted(set(g["R"])))
            top.set_title(f"{problem}, {kernel}/{schedule}, K = {int(K)}, R = {Rs}\n"
                          f"gap {gap[last]:.3g} ± {gse[last]:.2g} at {int(S[last])} steps", fontsize=9)
        _note(bottom, notes, inside=True)
    _legend_outside(fig)
    _suptitle(fig, "Annealed importance sampling:\nthe BDMC sandwich closing as the steps grow")
    return fig
