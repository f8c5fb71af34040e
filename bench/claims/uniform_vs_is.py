r"""Claim ``uniform_vs_is``: uniform sampling works in theory, not in practice;
importance sampling fixes it (MissingPixels, the top half of a digit missing).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import estimators
from estimators import Bernoulli
from problems import MissingPixels
from problems.glyphs import digit_bitmaps

from ._common import LECTURE_DIGIT, ClaimDef, _error_row, bernoulli_relative_weight_variance

SETTINGS = {
    "full": {
        "uniform": dict(Ks=(1, 10, 100, 1000, 10000), R=100, R_point=10, K_rule=1000, K_theory=100,
                        R_theory=2000, n_show=8),
    },
    "smoke": {
        "uniform": dict(Ks=(1, 10, 100), R=20, R_point=4, K_rule=100, K_theory=10, R_theory=200, n_show=4),
    },
}

THEORY_Z = 5.0  # |mean(p_hat/p) - 1| < 5 exact SE
IS_FACTOR = 10.0  # IS RMSE below uniform RMSE / 10
PRACTICE_NATS = 1.0  # uniform RMSE above 1 nat

SPEC = dict(
    title="Uniform sampling works in theory, not in practice; importance sampling fixes it",
    statement="Completing the missing top half of a digit (32 latent bits), uniform Monte Carlo is unbiased "
              "for p(x) but useless at any affordable K, while importance sampling with a q near the "
              "posterior is accurate.",
    rule="Held iff (theory) with 8 latent bits, where it can be measured, the mean of p̂/p under uniform "
         f"sampling is within {THEORY_Z:g} exact SE of 1, and (practice) with 32 latent bits at the rule's K "
         f"(1000 in full mode) the RMSE of log p̂ under uniform sampling exceeds {PRACTICE_NATS:g} nat while "
         f"importance sampling with q = Bernoulli(posterior marginals) has an RMSE below the uniform one / "
         f"{IS_FACTOR:g}.",
    figure="missing_pixels",
)


def _rule_uniform(n):
    return (
        abs(n["theory_z"]) < THEORY_Z
        and n["rmse_uniform"] > PRACTICE_NATS
        and n["rmse_is"] < n["rmse_uniform"] / IS_FACTOR
    )



def claim_uniform_vs_is(s):
    r"""MissingPixels.digits() (32 latent bits) with the bottom half of the noiseless 9 observed.

    For q = Bernoulli(φ) with φ = 0.5 (uniform Monte Carlo), φ = 1 and φ = the
    posterior marginals: the error :math:`\log\hat p(x) - \log p(x)` over R
    replicates at each K (mean, sd, RMSE), the exact
    :math:`\mathrm{Var}_q[w]/p(x)^2` (``bernoulli_relative_weight_variance``) and
    from it the K that a 10% relative SE of :math:`\hat p` needs,
    :math:`K_{10\%} = 100\,\mathrm{Var}_q[w]/p^2`; and, with 8 latent bits, the
    mean of :math:`\hat p/p` under uniform sampling with its exact SE
    :math:`\sqrt{\mathrm{Var}_q[w]/(p^2 K R)}`.  Images: the observation, the
    digit, completions from p(z|x) and from each q."""
    S = s["uniform"]
    glyph = digit_bitmaps()[LECTURE_DIGIT].ravel()
    p = MissingPixels.digits(latent_rows=4)
    x, z_true = p.split(glyph)
    log_px = p.log_marginal(x)
    post = p.posterior(x)
    marg = p.posterior_marginals(x)
    phi = {"uniform (φ = 0.5)": np.full(p.latent_dim, 0.5), "φ = 1": np.ones(p.latent_dim),
           "φ = posterior marginals": marg}
    rel_var = {k: bernoulli_relative_weight_variance(post.weights, post.probs, v) for k, v in phi.items()}
    lat = p.latent_mask
    ones_log_joint = float(p.log_joint(x, np.ones(p.latent_dim)))

    rows = []
    seed = 100
    for label, probs in phi.items():
        q = Bernoulli(probs)
        for K in S["Ks"]:
            R = S["R_point"] if label == "φ = 1" else S["R"]
            seed += 1
            if label.startswith("uniform"):
                est = estimators.uniform_mc(p, x, K, R, seed=seed)
            else:
                est = estimators.importance_sampling(p, x, q, K, R, seed=seed)
            exact = ones_log_joint - log_px if label == "φ = 1" else math.nan
            rows.append(_error_row(label, K, est, log_px, exact))
    errors = pd.DataFrame(rows)
    errors["rel_weight_var"] = errors["q"].map(rel_var)

    # theory: 8 latent bits (the top row missing), where E[p_hat] = p(x) can be measured
    p8 = MissingPixels.digits(latent_rows=1)
    x8, _ = p8.split(glyph)
    post8 = p8.posterior(x8)
    rv8 = bernoulli_relative_weight_variance(post8.weights, post8.probs, np.full(p8.latent_dim, 0.5))
    K8, R8 = S["K_theory"], S["R_theory"]
    est8 = estimators.uniform_mc(p8, x8, K8, R8, seed=7)
    u = np.exp(est8 - p8.log_marginal(x8))
    se8 = math.sqrt(rv8 / (K8 * R8))

    # images: the observed half, the truth, and completions from the posterior and from each q
    n_show = S["n_show"]
    img_rows = []

    def add(panel, images):
        for i, im in enumerate(images):
            img_rows.append({"panel": panel, "sample": i, **{f"p{j:02d}": float(v) for j, v in enumerate(im)}})

    observed = glyph.astype(float).copy()
    observed[lat] = np.nan
    add("observed x (top half missing)", [observed])
    add("the digit", [glyph.astype(float)])
    add("exact posterior p(z|x)", [p.image(x, z) for z in post.sample(n_show, seed=11)])
    for k, (label, probs) in enumerate(phi.items()):
        add(f"q: {label}", [p.image(x, z) for z in Bernoulli(probs).sample(n_show, seed=12 + k)])
    images = pd.DataFrame(img_rows)

    at = errors[errors["K"] == S["K_rule"]].set_index("q")
    c_post = p.posterior_component_weights(x)
    numbers = {
        "log_p_x": log_px,
        "latent_bits": p.latent_dim,
        "K_rule": S["K_rule"],
        "rmse_uniform": float(at.loc["uniform (φ = 0.5)", "rmse"]),
        "rmse_is": float(at.loc["φ = posterior marginals", "rmse"]),
        "rmse_phi_one": float(at.loc["φ = 1", "rmse"]),
        "mean_error_uniform": float(at.loc["uniform (φ = 0.5)", "mean_error"]),
        "mean_error_is": float(at.loc["φ = posterior marginals", "mean_error"]),
        "error_phi_one_exact": ones_log_joint - log_px,
        "rel_weight_var_uniform": rel_var["uniform (φ = 0.5)"],
        "rel_weight_var_is": rel_var["φ = posterior marginals"],
        "K_for_10pct_uniform": rel_var["uniform (φ = 0.5)"] / 0.01,
        "K_for_10pct_is": rel_var["φ = posterior marginals"] / 0.01,
        "theory_latent_bits": p8.latent_dim,
        "theory_K": K8,
        "theory_R": R8,
        "theory_mean_ratio": float(u.mean()),
        "theory_se_exact": se8,
        "theory_z": float((u.mean() - 1.0) / se8),
        "posterior_component_weights_3_5_9": [float(c_post[3]), float(c_post[5]), float(c_post[9])],
    }
    notes = [
        f"Var_q[w]/p(x)² is exact (a sum over pairs of posterior components): uniform "
        f"{numbers['rel_weight_var_uniform']:.3g}, posterior marginals {numbers['rel_weight_var_is']:.3g}; a 10% "
        f"relative standard error of p̂ needs K ≈ {numbers['K_for_10pct_uniform']:.2g} uniform samples against "
        f"K ≈ {numbers['K_for_10pct_is']:.2g} with the marginals.",
        f"φ = 1 draws the all-ones completion every time: every estimate is exactly log p(x, z = 1) = log p(x) "
        f"{numbers['error_phi_one_exact']:+.2f} -- zero variance, and wrong, because q does not cover the "
        "posterior's support.",
        "The observed bottom half is shared by the digits 3, 5 and 9: p(c|x) = "
        + ", ".join(f"{w:.3f}" for w in numbers["posterior_component_weights_3_5_9"]) + " for c = 3, 5, 9.",
    ]
    return numbers, {"errors": errors, "images": images}, notes



CLAIMS = {"uniform_vs_is": ClaimDef(SPEC, _rule_uniform, claim_uniform_vs_is)}
