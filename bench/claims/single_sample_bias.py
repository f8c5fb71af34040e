r"""Claim ``single_sample_bias``: E[log p̂] at K = 1 is the ELBO, below log p(x).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import estimators
from estimators import Gaussian
from problems import MixturePrior

from .. import metrics
from ._common import ClaimDef, _mixture_prior_expectation, log_weight_variance

SETTINGS = {
    "full": {
        "bias": dict(Ks=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), R1=50000, R=4000),
    },
    "smoke": {
        "bias": dict(Ks=(1, 4, 16), R1=2000, R=400),
    },
}

BIAS_Z = 5.0

SPEC = dict(
    title="The single-sample log estimate is biased",
    statement="At K = 1, E[log p̂(x)] is the ELBO, which is below log p(x) (the lecture's MixturePrior, "
              "q = N(2, σ² = 2)); p̂ itself stays unbiased.",
    rule=f"Held iff the mean of log p̂ at K = 1 is below log p(x) by more than {BIAS_Z:g} SE and within "
         f"{BIAS_Z:g} SE of the exact ELBO(q) (SE from the exact Var_q[log w], by quadrature).",
    figure="single_sample_bias",
)


def _rule_bias(n):
    return n["z_below_log_p"] > BIAS_Z and abs(n["z_vs_elbo"]) < BIAS_Z



def claim_single_sample_bias(s):
    r"""MixturePrior.lecture(), q = N(2, σ² = 2): the mean of R estimates
    :math:`\log\hat p` at each K, against :math:`E[\log\hat p_1] = \mathrm{ELBO}(q)`
    and :math:`\log p(x)`; the K = 1 SE is exact,
    :math:`\sqrt{\mathrm{Var}_q[\log w]/R}` (quadrature); the mean of
    :math:`\hat p/p` with its exact SE :math:`\sqrt{\mathrm{Var}_q[w]/(p^2KR)}`,
    :math:`\mathrm{Var}_q[w]/p^2 = \int p(z|x)^2/q(z)\,dz - 1`."""
    S = s["bias"]
    p, x = MixturePrior.lecture(), MixturePrior.lecture_x
    q = Gaussian([2.0], [math.sqrt(2.0)])
    log_px, elbo = p.log_marginal(x), p.elbo(x, q)
    post = p.posterior(x)
    # exact Var_q[w]/p^2 = int p(z|x)^2 / q(z) dz - 1, for the SE of p_hat / p
    second = _mixture_prior_expectation(
        lambda z: math.exp(2 * float(post.log_prob(np.array([[z]]))[0]) - float(q.log_prob(np.array([[z]]))[0])),
        post)
    rel_var = second - 1.0
    # exact Var_q[log w], for the SE of the K = 1 mean: the log-weight's right tail is heavy here
    # (the posterior's major mode is wider than q), so a sample SE can be far too small
    var_log_w = log_weight_variance(p, x, q, elbo)
    rows = []
    for i, K in enumerate(S["Ks"]):
        R = S["R1"] if K == 1 else S["R"]
        est = estimators.importance_sampling(p, x, q, K, R, seed=200 + i)
        mean, se = metrics.mean_se(est)
        u = np.exp(est - log_px)
        rows.append({"K": int(K), "R": int(R), "mean_log_p_hat": mean, "mean_log_p_hat_se": se,
                     "mean_ratio": float(u.mean()), "mean_ratio_se_exact": math.sqrt(rel_var / (K * R)),
                     "delta_method_bias": -rel_var / (2 * K)})
    table = pd.DataFrame(rows)
    table["log_p_x"], table["elbo"] = log_px, elbo
    k1 = table.iloc[0]
    if int(k1["K"]) != 1:
        raise ValueError("Ks: the single-sample claim needs K = 1 first")
    se1 = math.sqrt(var_log_w / k1["R"])
    numbers = {
        "log_p_x": log_px, "elbo": elbo, "kl": p.kl(x, q), "R_K1": int(k1["R"]),
        "mean_log_p_hat_K1": float(k1["mean_log_p_hat"]), "se_K1_exact": se1,
        "se_K1_sample": float(k1["mean_log_p_hat_se"]), "var_log_w": var_log_w,
        "z_below_log_p": float((log_px - k1["mean_log_p_hat"]) / se1),
        "z_vs_elbo": float((k1["mean_log_p_hat"] - elbo) / se1),
        "mean_ratio_K1": float(k1["mean_ratio"]), "mean_ratio_se_K1": float(k1["mean_ratio_se_exact"]),
        "rel_weight_var": rel_var,
    }
    notes = [f"p̂ itself: at K = 1 the mean of p̂/p is {numbers['mean_ratio_K1']:.4f} ± "
             f"{numbers['mean_ratio_se_K1']:.4f} (theory: 1; exact SE from Var_q[w]/p² = {rel_var:.3g}, by "
             "quadrature).",
             f"SE at K = 1 from the exact Var_q[log w] = {var_log_w:.4g} (quadrature): {se1:.3g}; the replicates' "
             f"sample SE is {numbers['se_K1_sample']:.3g} (log w has a heavy right tail under this q)."]
    return numbers, {"bias": table}, notes



CLAIMS = {"single_sample_bias": ClaimDef(SPEC, _rule_bias, claim_single_sample_bias)}
