r"""Claim ``vae_learns``: SVI (a φ_i per datapoint) and the amortized linear VAE
reach the PPCA maximum likelihood.
"""

from __future__ import annotations

import estimators
import numpy as np
import pandas as pd
from problems import LinearGaussian

from ._common import LEARNING_RATE, VAE_K, ClaimDef, _curves, orthogonal_linear_gaussian

SETTINGS = {
    "full": {
        "vae": dict(n=200, steps=500, svi_steps=300, batch_size=20, inner_steps=5, record_every=25),
    },
    "smoke": {
        "vae": dict(n=40, steps=20, svi_steps=10, batch_size=10, inner_steps=2, record_every=5),
    },
}

VAE_EPS = 0.02  # nats per datapoint from the PPCA maximum
VAE_GAP = 0.05  # exact average KL(q || p(z|x)) at the end
SVI_LEARNING_RATE = 0.1

SPEC = dict(
    title="SVI and the amortized linear VAE reach maximum likelihood",
    statement="Stochastic variational inference with a φ_i per datapoint, and amortized inference with a "
              "linear encoder (the linear VAE), both learn the model: the exact average log-likelihood "
              "reaches the probabilistic-PCA maximum (data: D = 5, d = 2, W with orthogonal columns).",
    rule=f"Held iff, for both runs, the final exact average log-likelihood is within {VAE_EPS:g} nats of the "
         f"PPCA maximum and the final exact ELBO gap (average KL) is below {VAE_GAP:g}.",
    figure="training",
)


def _rule_vae(n):
    return (
        n["vae_ll_below_max"] < VAE_EPS
        and n["svi_ll_below_max"] < VAE_EPS
        and n["vae_gap"] < VAE_GAP
        and n["svi_gap"] < VAE_GAP
    )



def claim_vae_learns(s):
    """fit_linear_vae on n points of an orthogonal PPCA model (D = 5, d = 2):
    amortized (the linear VAE) and per-datapoint (SVI), both with the reparam
    gradient; the exact average log-likelihood and ELBO gap at every record,
    against the PPCA maximum (``LinearGaussian.ppca_mle``)."""
    S = s["vae"]
    p = orthogonal_linear_gaussian(5, 2, seed=0)
    X = p.sample(S["n"], seed=1)
    best = float(np.mean(LinearGaussian.ppca_mle(X, 2).log_marginal(X)))
    vae = estimators.fit_linear_vae(X, 2, "reparam", steps=S["steps"], seed=0, batch_size=S["batch_size"],
                                    learning_rate=LEARNING_RATE, record_every=S["record_every"], K=VAE_K)
    svi = estimators.fit_linear_vae(X, 2, "reparam", steps=S["svi_steps"], seed=0, encoder="per_datapoint",
                                    batch_size=S["batch_size"], learning_rate=SVI_LEARNING_RATE,
                                    inner_steps=S["inner_steps"], record_every=S["record_every"], K=VAE_K)
    curves = pd.concat([_curves(vae, "amortized VAE (reparam)", best),
                        _curves(svi, f"SVI, per-datapoint φ_i (reparam, {S['inner_steps']} φ steps per θ step)",
                                best)], ignore_index=True)
    numbers = {
        "ppca_max_avg_log_lik": best, "n": S["n"], "eps": VAE_EPS, "gap_tol": VAE_GAP,
        "vae_ll_below_max": float(best - vae.log_likelihood_history[-1]),
        "svi_ll_below_max": float(best - svi.log_likelihood_history[-1]),
        "vae_ll_below_max_at_start": float(best - vae.log_likelihood_history[0]),
        "vae_gap": float(vae.gap_history[-1]), "svi_gap": float(svi.gap_history[-1]),
        "vae_steps": S["steps"], "svi_steps": S["svi_steps"],
        "vae_steps_to_eps": estimators.steps_to_reach(vae, best, VAE_EPS),
        "svi_steps_to_eps": estimators.steps_to_reach(svi, best, VAE_EPS),
    }
    return numbers, {"curves": curves}, []



CLAIMS = {"vae_learns": ClaimDef(SPEC, _rule_vae, claim_vae_learns)}
