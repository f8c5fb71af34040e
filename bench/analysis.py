r"""Quantities derived across cells of the tidy table.

* ``add_variance_ratios`` -- for gradient rows, tr Cov of a method over tr Cov
  of a reference method (default "score") in the same (problem, q, K, R,
  objective), with a delta-method SE.
* ``jensen_table`` -- the Jensen gap :math:`\log p(x) - E[\widehat{\mathrm{ELBO}}]`
  per (problem, q), measured from the "elbo" cells and pooled over K, beside the
  exact KL(q || p(z|x)).  The ELBO estimator is unbiased for ELBO(q) at every
  K, so the gap should equal the KL.
* ``jensen_fit`` -- the weighted least-squares line gap = a + b KL per problem
  and over all problems; a = 0 and b = 1 if the gap is the KL.

Standard errors: a cell's gap has :math:`\mathrm{SE} = \sqrt{\mathrm{Var}_q[\log w]/(KR)}`,
exact where ``bench.exact`` has the variance, else :math:`s/\sqrt R` (s the sd
of its R ELBO estimates).  For q = posterior every log-weight equals log p(x)
and the variance is zero up to round-off, so each SE gets a numerical floor
:math:`\epsilon = 10^{-9}\max(1, |\log p(x)|)` added in quadrature -- far
below every statistical SE of the other cells, far above double round-off.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import metrics

__all__ = ["NUMERICAL_FLOOR_REL", "add_variance_ratios", "jensen_table", "jensen_fit"]

NUMERICAL_FLOOR_REL = 1e-9


def add_variance_ratios(df: pd.DataFrame, reference="score") -> pd.DataFrame:
    """Add ``variance_ratio`` and ``variance_ratio_se`` (NaN outside gradient
    rows, or where the reference method's cell is absent)."""
    df = df.copy()
    ratio = np.full(len(df), math.nan)
    ratio_se = np.full(len(df), math.nan)
    grad = df["estimator"] == "gradient"
    if grad.any():
        keys = ["problem", "q", "K", "R", "objective"]
        ref = df[grad & (df["method"] == reference)].set_index(keys)[["variance", "variance_se"]]
        ref_map = {k: (v["variance"], v["variance_se"]) for k, v in ref.iterrows()}
        for i in np.flatnonzero(grad.to_numpy()):
            r = df.iloc[i]
            key = tuple(r[k] for k in keys)
            if key in ref_map:
                b, b_se = ref_map[key]
                if r["method"] == reference:
                    ratio[i], ratio_se[i] = 1.0, 0.0
                else:
                    ratio[i], ratio_se[i] = metrics.variance_ratio(r["variance"], r["variance_se"], b, b_se)
    df["variance_ratio"] = ratio
    df["variance_ratio_se"] = ratio_se
    return df


def jensen_table(df: pd.DataFrame) -> pd.DataFrame:
    r"""Per (problem, q): exact KL, measured gap pooled over the elbo cells' K
    (inverse-variance weights), its SE, z = (gap - KL)/SE, and the cells used.

    A cell's SE is the exact :math:`\sqrt{\mathrm{Var}_q[\log w]/(KR)}`
    (column ``var_log_w``, ``bench.exact``) where known -- ``se_kind`` =
    "exact" -- else the sample's :math:`s/\sqrt R` ("sample"); the sample SE
    pooled the same way is kept as ``gap_se_sample``.  The exact SE matters
    when q gives a small probability to far-off log-weights: a sample that
    never drew them has a sample SE that is far too small.
    """
    el = df[df["estimator"] == "elbo"]
    rows = []
    for (problem, q), g in el.groupby(["problem", "q"], sort=False):
        log_p = float(g["log_marginal"].iloc[0])
        gap_c = log_p - g["mean"].to_numpy()
        floor = NUMERICAL_FLOOR_REL * max(1.0, abs(log_p))
        K, R = g["K"].to_numpy(float), g["R"].to_numpy(float)
        var = g["var_log_w"].to_numpy(float) if "var_log_w" in g else np.full(len(g), math.nan)
        exact = bool(np.isfinite(var).all())
        se_sample = np.sqrt(g["mean_se"].to_numpy() ** 2 + floor**2)
        se_c = np.sqrt(var / (K * R) + floor**2) if exact else se_sample
        ok = np.isfinite(gap_c) & np.isfinite(se_c)
        if not ok.any():
            continue
        gap, se = metrics.pooled_mean(gap_c[ok], se_c[ok])
        _, se_s = metrics.pooled_mean(gap_c[ok], se_sample[ok])
        kl = float(g["kl"].iloc[0])
        rows.append(
            {
                "problem": problem,
                "family": g["family"].iloc[0],
                "q": q,
                "q_family": g["q_family"].iloc[0],
                "log_marginal": log_p,
                "kl": kl,
                "gap": gap,
                "gap_se": se,
                "se_kind": "exact" if exact else "sample",
                "gap_se_sample": se_s,
                "z": (gap - kl) / se,
                "n_cells": int(ok.sum()),
                "K_values": ",".join(str(int(k)) for k in K[ok]),
                "samples": int(np.sum(K[ok] * R[ok])),
            }
        )
    return pd.DataFrame(rows)


def jensen_fit(jt: pd.DataFrame) -> pd.DataFrame:
    """``metrics.wls_line`` of gap on KL with weights 1/SE^2, per problem and
    over all problems ("(all)"); z_slope = (slope - 1)/slope_se,
    z_intercept = intercept/intercept_se.  Groups with fewer than two
    distinct KL values are left out (a line needs two); so are points whose
    KL is not known exactly (NaN: a problem without an exact KL for that q)
    or not finite."""
    rows = []
    if len(jt):
        jt = jt[np.isfinite(jt["kl"]) & np.isfinite(jt["gap"]) & np.isfinite(jt["gap_se"])]
    groups = [(p, g) for p, g in jt.groupby("problem", sort=False)]
    if jt["problem"].nunique() > 1:
        groups.append(("(all)", jt))
    for problem, g in groups:
        if g["kl"].nunique() < 2:
            continue
        fit = metrics.wls_line(g["kl"], g["gap"], g["gap_se"])
        fit = {"problem": problem, "n_points": len(g), **fit}
        fit["z_slope"] = (fit["slope"] - 1.0) / fit["slope_se"]
        fit["z_intercept"] = fit["intercept"] / fit["intercept_se"]
        rows.append(fit)
    return pd.DataFrame(rows)
