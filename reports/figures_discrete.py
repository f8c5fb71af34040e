r"""Figures of the binary-latent gradient estimators: the relaxations' bias
against their temperature.

For an ELBO gradient estimator that averages K i.i.d. per-sample terms,
:math:`\mathbb E[\hat g]` does not depend on K, so its bias
:math:`b = \mathbb E[\hat g] - \nabla \mathrm{ELBO}` (``truth`` = the exact,
enumerated ``p.elbo_grad``) is a property of the method and its temperature
alone.  From a sweep row (R replicates: ``bias`` = :math:`\|\bar g - \nabla\|`,
``variance`` = :math:`\operatorname{tr}\mathrm{Cov}(\hat g)`), the noise in
:math:`\bar g` has :math:`\mathbb E\|\bar g - \mathbb E \hat g\|^2 = \operatorname{tr}\mathrm{Cov}/R`, so

.. math::
    \widehat{\|b\|} = \sqrt{\max(\|\bar g - \nabla\|^2 - \operatorname{tr}\mathrm{Cov}/R,\ 0)},
    \qquad \text{noise level } \sigma_b = \sqrt{\operatorname{tr}\mathrm{Cov}/R},

an (almost) unbiased estimate of the squared norm and the scale of its error:
a point within about :math:`2\sigma_b` of zero is indistinguishable from an
unbiased estimator.  For each method and temperature the row with the most
samples (largest K R) is drawn.  Reads DataFrames only.
"""

from __future__ import annotations

import json
import math

import numpy as np
from matplotlib.figure import Figure

__all__ = ["relaxation_rows", "relaxation_bias_vs_temperature", "discrete_specs", "RELAXED", "REFERENCES"]

#: methods with a temperature option, and their style
RELAXED = {"gumbel_softmax": ("#882255", "<", "--"), "rebar": ("#999933", "h", "-")}
#: methods without one, drawn as horizontal references (level and noise band)
REFERENCES = {"arm": ("#56B4E9", "-."), "disarm": ("#000000", ":"), "straight_through": ("#44AA99", "--")}


def _temperature(row):
    if "temperature" in row and row["temperature"] is not None and np.isfinite(row["temperature"]):
        return float(row["temperature"])
    opts = row.get("options", "")
    return float(json.loads(opts).get("temperature", math.nan)) if isinstance(opts, str) and opts else math.nan


def relaxation_rows(df):
    """The gradient rows of the binary-latent methods on the elbo objective, with the
    columns ``temperature`` (NaN for methods without one), ``bias_norm`` (the
    debiased estimate above) and ``bias_noise``; one row per (problem, q, method,
    temperature): the one with the largest K R."""
    need = {"estimator", "method", "objective", "problem", "q", "K", "R", "bias", "variance"}
    if not need <= set(df.columns):
        return df.iloc[0:0]
    sub = df[(df["estimator"] == "gradient") & (df["objective"] == "elbo")
             & df["method"].isin(list(RELAXED) + list(REFERENCES))].copy()
    if sub.empty:
        return sub
    sub["temperature"] = [_temperature(r) for _, r in sub.iterrows()]
    noise2 = sub["variance"].to_numpy(float) / sub["R"].to_numpy(float)
    sub["bias_norm"] = np.sqrt(np.maximum(sub["bias"].to_numpy(float) ** 2 - noise2, 0.0))
    sub["bias_noise"] = np.sqrt(noise2)
    sub["work"] = sub["K"] * sub["R"]
    sub["_t"] = sub["temperature"].fillna(-1.0)
    sub = sub.sort_values("work").groupby(["problem", "q", "method", "_t"], sort=False).tail(1)
    return sub.drop(columns="_t")


def _pairs(rows):
    """(problem, q) pairs holding a relaxed method at two or more temperatures."""
    rel = rows[rows["method"].isin(list(RELAXED)) & rows["temperature"].notna()]
    counts = rel.groupby(["problem", "q"], sort=False)["temperature"].nunique()
    return [key for key, n in counts.items() if n >= 2]


def relaxation_bias_vs_temperature(df):
    r"""One panel per (problem, q): the bias norm of Gumbel-softmax and REBAR
    against the temperature (log x), ±2 noise levels; ARM, DisARM and
    straight-through, which have no temperature, as horizontal lines with their
    ±2 noise band.  Gumbel-softmax's bias vanishes as the temperature goes to 0
    and grows with it; REBAR is unbiased at every temperature (a control
    variate whose mean is restored), like ARM and DisARM."""
    rows = relaxation_rows(df)
    pairs = _pairs(rows)
    if not pairs:
        raise ValueError("df: no gumbel_softmax or rebar gradient rows at two or more temperatures")
    n = len(pairs)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols + 2.2, 3.8 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, (problem, q) in zip(axes, pairs):
        g = rows[(rows["problem"] == problem) & (rows["q"] == q)]
        temps = g["temperature"].dropna()
        lo, hi = float(temps.min()), float(temps.max())
        for method, (color, marker, ls) in RELAXED.items():
            h = g[(g["method"] == method) & g["temperature"].notna()].sort_values("temperature")
            if h.empty:
                continue
            ax.errorbar(h["temperature"], h["bias_norm"], yerr=2 * h["bias_noise"], color=color, marker=marker,
                        ls=ls, lw=1.4, ms=5, capsize=2, label=f"{method} (K={int(h['K'].max())})")
        for method, (color, ls) in REFERENCES.items():
            h = g[g["method"] == method]
            if h.empty:
                continue
            r = h.iloc[0]
            ax.axhline(r["bias_norm"], color=color, ls=ls, lw=1.2, label=f"{method} (no temperature)")
            ax.axhspan(max(r["bias_norm"] - 2 * r["bias_noise"], 0.0), r["bias_norm"] + 2 * r["bias_noise"],
                       color=color, alpha=0.08, lw=0)
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("temperature τ")
        ax.set_ylabel(r"$\|E[\hat g] - \nabla \mathrm{ELBO}\|$ (±2 noise)")
        ax.set_title(f"{problem}, q = {q}")
        ax.grid(True, alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="method")
    fig.suptitle("Relaxation bias vs temperature (exact gradient by enumeration)")
    return fig


def discrete_specs(res):
    """(stem, title, caption, thunk) of the figures the table supports ([] without the rows)."""
    df = res["df"]
    rows = relaxation_rows(df)
    if rows.empty or not _pairs(rows):
        return []
    return [("relaxation_bias_vs_temperature", "Relaxation bias vs temperature",
             "‖E[ĝ] − ∇ELBO‖ against the exact (enumerated) ELBO gradient, estimated as "
             "√max(‖ḡ − ∇‖² − tr Cov/R, 0) from the row with the most samples, ±2 noise levels √(tr Cov/R). "
             "Gumbel-softmax's bias vanishes as τ → 0 and grows with τ; REBAR stays unbiased at every τ; "
             "ARM and DisARM (unbiased) and straight-through (biased) have no temperature: horizontal lines "
             "with their ±2 noise bands.",
             lambda: relaxation_bias_vs_temperature(df))]
