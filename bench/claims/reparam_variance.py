r"""Claim ``reparam_variance``: pathwise gradients have lower variance than the score function.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

import estimators
from estimators import Gaussian
from problems import MixturePrior

from .. import metrics
from ._common import ClaimDef

SETTINGS = {
    "full": {
        "reparam": dict(Ks=(1, 10, 100), R=4000),
    },
    "smoke": {
        "reparam": dict(Ks=(1, 10), R=300),
    },
}

RATIO_SE = 5.0

SPEC = dict(
    title="The reparameterization trick lowers the gradient variance",
    statement="Pathwise (reparam) ELBO gradients have lower variance than score-function gradients "
              "(the lecture's MixturePrior, two Gaussian q, several K).",
    rule=f"Held iff at every (q, K) the variance ratio tr Cov(score) / tr Cov(reparam) minus {RATIO_SE:g} "
         "of its standard errors is above 1.",
    figure="reparam_variance",
)


def _rule_reparam(n):
    return n["min_ratio_lower_bound"] > 1.0



def claim_reparam_variance(s):
    r"""tr Cov of R replicate ELBO-gradient estimates (``metrics.trace_cov``)
    for score, score_loo (K >= 2) and reparam at each (q, K), each method with
    its own seed (independent estimates), the ratio to reparam with its
    delta-method SE (``metrics.variance_ratio``), and each cell's largest bias
    t-statistic against the exact ``p.elbo_grad``."""
    S = s["reparam"]
    p, x = MixturePrior.lecture(), MixturePrior.lecture_x
    qs = {"N(2, σ²=2)": Gaussian([2.0], [math.sqrt(2.0)]), "N(−4, σ²=0.75)": Gaussian([-4.0], [math.sqrt(0.75)])}
    rows, seed = [], 500
    for qname, q in qs.items():
        exact = p.elbo_grad(x, q)
        for K in S["Ks"]:
            var = {}
            for method in ("score", "score_loo", "reparam"):
                if method == "score_loo" and K < 2:
                    continue
                seed += 1
                g = estimators.gradient(p, x, q, K, S["R"], method, seed=seed)
                v, v_se = metrics.trace_cov(g)
                var[method] = (v, v_se)
                rows.append({"q": qname, "K": int(K), "R": S["R"], "method": method, "variance": v,
                             "variance_se": v_se, "bias_t_max": float(np.max(np.abs(metrics.bias_t(g, exact))))})
            for r in rows[-len(var):]:
                r["ratio_to_reparam"], r["ratio_to_reparam_se"] = metrics.variance_ratio(
                    *var[r["method"]], *var["reparam"])
    table = pd.DataFrame(rows)
    sc = table[table["method"] == "score"]
    lower = sc["ratio_to_reparam"] - RATIO_SE * sc["ratio_to_reparam_se"]
    numbers = {
        "min_ratio": float(sc["ratio_to_reparam"].min()),
        "max_ratio": float(sc["ratio_to_reparam"].max()),
        "min_ratio_lower_bound": float(lower.min()),
        "cells": int(len(sc)),
        "max_bias_t": float(table["bias_t_max"].max()),
    }
    for qname in qs:
        r = sc[(sc["q"] == qname) & (sc["K"] == S["Ks"][0])].iloc[0]
        numbers[f"ratio_K{S['Ks'][0]}_{qname}"] = float(r["ratio_to_reparam"])
        numbers[f"ratio_K{S['Ks'][0]}_{qname}_se"] = float(r["ratio_to_reparam_se"])
    n_cmp = 2 * len(table)
    z_star = float(norm.isf(1e-3 / (2 * n_cmp)))
    numbers["bias_t_threshold"] = z_star
    notes = [f"Bias against the exact ELBO gradient (p.elbo_grad): the largest |t| over {len(table)} cells × 2 "
             f"coordinates is {numbers['max_bias_t']:.2f}, against a Bonferroni threshold of {z_star:.2f} "
             f"(familywise 1e-3) for unbiased estimators: only the variance differs."
             if numbers["max_bias_t"] < z_star else
             f"Bias against the exact ELBO gradient: the largest |t| is {numbers['max_bias_t']:.2f}, above the "
             f"Bonferroni threshold {z_star:.2f} (familywise 1e-3) for {n_cmp} comparisons."]
    return numbers, {"variance": table}, notes



CLAIMS = {"reparam_variance": ClaimDef(SPEC, _rule_reparam, claim_reparam_variance)}
