r"""Claim ``lecture_question``: N(2, 2) approximates the lecture's bimodal posterior
better than N(−4, 0.75), under both readings of the second parameter.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import estimators
from estimators import Gaussian
from problems import MixturePrior

from .. import metrics
from ._common import ClaimDef, _mixture_prior_expectation

SETTINGS = {
    "full": {
        "question": dict(K=10, R=4000),
    },
    "smoke": {
        "question": dict(K=10, R=300),
    },
}

SPEC = dict(
    title="N(2, 2) is the better approximation of the bimodal posterior",
    statement="Of N(2, 2) and N(−4, 0.75), the first is closer to p(z|x) of MixturePrior.lecture() in "
              "KL(q ‖ p(z|x)) (the ELBO's divergence).  We read N(μ, σ²) -- the second parameter a "
              "variance -- and also report the reading N(μ, σ).",
    rule="Held iff KL(N(2, ·) ‖ p) < KL(N(−4, ·) ‖ p) under both readings (exact, by quadrature).",
    figure="lecture_question",
)


def _rule_question(n):
    return n["kl_good_variance_reading"] < n["kl_bad_variance_reading"] and n["kl_good_sd_reading"] < n[
        "kl_bad_sd_reading"]



def claim_lecture_question(s):
    r"""KL(q ‖ p(z|x)) and ELBO(q) (exact, quadrature), KL(p(z|x) ‖ q)
    :math:`= \int p(z|x)\log(p(z|x)/q(z))\,dz` (quadrature) and the Monte Carlo
    ELBO for q = N(2, ·) and N(−4, ·), the second parameter read as a variance
    and as a standard deviation; the densities on a grid for the figure."""
    S = s["question"]
    p, x = MixturePrior.lecture(), MixturePrior.lecture_x
    post = p.posterior(x)
    readings = {"variance": math.sqrt, "sd": lambda v: v}
    rows, q_of = [], {}
    for reading, to_sd in readings.items():
        for role, (mu, par) in (("good", (2.0, 2.0)), ("bad", (-4.0, 0.75))):
            q = Gaussian([mu], [to_sd(par)])
            label = f"N({mu:g}, {par:g}) read as N(μ, {'σ²' if reading == 'variance' else 'σ'})"
            q_of[label] = q

            def fwd(z, q=q):
                lp = float(post.log_prob(np.array([[z]]))[0])
                return math.exp(lp) * (lp - float(q.log_prob(np.array([[z]]))[0]))

            est = estimators.elbo(p, x, q, S["K"], S["R"], seed=400 + len(rows))
            mean, se = metrics.mean_se(est)
            rows.append({"reading": reading, "role": role, "q": label, "mu": mu, "sd": float(q.scale[0]),
                         "kl": p.kl(x, q), "elbo": p.elbo(x, q), "kl_forward": _mixture_prior_expectation(fwd, post),
                         "elbo_mc": mean, "elbo_mc_se": se})
    summary = pd.DataFrame(rows)
    z = np.linspace(-9.0, 9.0, 721)
    dens = {"z": z, "posterior": np.exp(post.log_prob(z[:, None]))}
    for label, q in q_of.items():
        dens[label] = np.exp(q.log_prob(z[:, None]))
    densities = pd.DataFrame(dens)
    k = summary.set_index(["reading", "role"])["kl"]
    kf = summary.set_index(["reading", "role"])["kl_forward"]
    numbers = {
        "log_p_x": p.log_marginal(x),
        "kl_good_variance_reading": float(k["variance", "good"]), "kl_bad_variance_reading": float(k["variance", "bad"]),
        "kl_good_sd_reading": float(k["sd", "good"]), "kl_bad_sd_reading": float(k["sd", "bad"]),
        "kl_forward_good_variance_reading": float(kf["variance", "good"]),
        "kl_forward_bad_variance_reading": float(kf["variance", "bad"]),
        "readings_agree": bool((k["variance", "good"] < k["variance", "bad"]) == (k["sd", "good"] < k["sd", "bad"])),
        "posterior_weights": [float(w) for w in post.weights],
        "posterior_locs": [float(m) for m in post.locs],
    }
    fg, fb = numbers["kl_forward_good_variance_reading"], numbers["kl_forward_bad_variance_reading"]
    notes = [f"The reverse divergence KL(p ‖ q) (mass-covering, by quadrature) {'agrees' if fg < fb else 'disagrees'}: "
             f"{fg:.3g} for N(2, 2) and {fb:.3g} for N(−4, 0.75) (variance reading)."]
    return numbers, {"summary": summary, "densities": densities}, notes



CLAIMS = {"lecture_question": ClaimDef(SPEC, _rule_question, claim_lecture_question)}
