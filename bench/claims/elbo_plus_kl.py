r"""Claim ``elbo_plus_kl``: ELBO + KL = log p(x), exactly and as a Monte Carlo Jensen gap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import estimators
from estimators import Bernoulli, Gaussian, Uniform
from problems import MissingPixels, MixturePrior
from problems.glyphs import digit_bitmaps

from .. import metrics
from ._common import LECTURE_DIGIT, ClaimDef, log_weight_variance

SETTINGS = {
    "full": {
        "gap": dict(K=10, R=4000),
    },
    "smoke": {
        "gap": dict(K=10, R=300, only=("N(2, σ²=2)", "U(−10, 10)", "Bernoulli(0.5)", "Bernoulli(marginals)")),
    },
}

GAP_Z = 4.0
IDENTITY_TOL = 1e-9

SPEC = dict(
    title="ELBO + KL = log p(x)",
    statement="For every q, log p(x) = ELBO(q) + KL(q ‖ p(z|x)): exactly, and the Monte Carlo Jensen gap "
              "log p(x) − E[ELBO estimate] is the KL.",
    rule=f"Held iff max |ELBO + KL − log p(x)| < {IDENTITY_TOL:g} over every (problem, q) and "
         f"max |gap − KL| / SE < {GAP_Z:g}, with SE = sqrt(Var_q[log w] / (K R)) from the exact "
         "Var_q[log w] (quadrature or enumeration).",
    figure="elbo_plus_kl",
)


def _rule_gap(n):
    return n["max_identity_error"] < IDENTITY_TOL and n["max_abs_z"] < GAP_Z



def claim_elbo_plus_kl(s):
    r"""For 6 q on MixturePrior.lecture() and 4 on MissingPixels (16 bits):
    the exact identity error :math:`|\mathrm{ELBO} + \mathrm{KL} - \log p(x)|`
    (p.kl never goes through the ELBO) and the Monte Carlo gap
    :math:`\log p(x) - \overline{\widehat{\mathrm{ELBO}}}` against the exact KL,
    :math:`z = (\mathrm{gap} - \mathrm{KL})/\mathrm{SE}` with
    :math:`\mathrm{SE} = \sqrt{\mathrm{Var}_q[\log w]/(KR)}` exact."""
    S = s["gap"]
    rows = []
    mp, xm = MixturePrior.lecture(), MixturePrior.lecture_x
    cases = [("MixturePrior.lecture()", mp, xm, name, q) for name, q in [
        ("N(2, σ²=2)", Gaussian([2.0], [math.sqrt(2.0)])),
        ("N(−4, σ²=0.75)", Gaussian([-4.0], [math.sqrt(0.75)])),
        ("N(0.5, σ²=1)", Gaussian([0.5], [1.0])),
        ("N(2, σ²=0.25)", Gaussian([2.0], [0.5])),
        ("N(−1, σ²=9)", Gaussian([-1.0], [3.0])),
        ("U(−10, 10)", Uniform([-10.0], [10.0])),
    ]]
    pix = MissingPixels.digits(latent_rows=2)
    xp, _ = pix.split(digit_bitmaps()[LECTURE_DIGIT].ravel())
    marg = np.clip(pix.posterior_marginals(xp), 0.01, 0.99)  # p(z|x) is nearly a product here: KL ~ 1e-7
    cases += [("MissingPixels (16 bits)", pix, xp, name, Bernoulli(phi)) for name, phi in [
        ("Bernoulli(0.5)", np.full(pix.latent_dim, 0.5)),
        ("Bernoulli(0.5 marginals + 0.25)", 0.5 * marg + 0.25),
        ("Bernoulli(0.9 marginals + 0.05)", 0.9 * marg + 0.05),
        ("Bernoulli(marginals)", marg),
    ]]
    if S.get("only"):
        cases = [c for c in cases if c[3] in S["only"]]
    for i, (problem, p, x, name, q) in enumerate(cases):
        log_px, elbo, kl = p.log_marginal(x), p.elbo(x, q), p.kl(x, q)
        est = estimators.elbo(p, x, q, S["K"], S["R"], seed=300 + i)
        mean, se_sample = metrics.mean_se(est)
        var = log_weight_variance(p, x, q, elbo)
        # exact SE of the mean of R estimates of K draws, with a round-off floor (q = posterior: var ~ 0)
        se = math.sqrt(var / (S["K"] * S["R"]) + (1e-9 * max(1.0, abs(log_px))) ** 2)
        gap = log_px - mean
        rows.append({"problem": problem, "q": name, "log_marginal": log_px, "elbo": elbo, "kl": kl,
                     "identity_error": abs(elbo + kl - log_px), "gap": gap, "gap_se": se,
                     "gap_se_sample": se_sample, "var_log_w": var, "z": (gap - kl) / se, "K": S["K"], "R": S["R"]})
    table = pd.DataFrame(rows)
    numbers = {
        "n_points": len(table),
        "max_identity_error": float(table["identity_error"].max()),
        "max_abs_z": float(table["z"].abs().max()),
        "kl_range": [float(table["kl"].min()), float(table["kl"].max())],
        "max_sample_to_exact_se_ratio": float((table["gap_se_sample"] / table["gap_se"]).max()),
        "min_sample_to_exact_se_ratio": float((table["gap_se_sample"] / table["gap_se"]).min()),
    }
    notes = ["The SE of each gap is exact, sqrt(Var_q[log w] / (K R)); the replicates' sample SE is between "
             f"{numbers['min_sample_to_exact_se_ratio']:.2g} and {numbers['max_sample_to_exact_se_ratio']:.2g} "
             "times it (a small ratio: rare, far-off log-weights the sample did not reach)."]
    return numbers, {"gap": table}, notes



CLAIMS = {"elbo_plus_kl": ClaimDef(SPEC, _rule_gap, claim_elbo_plus_kl)}
