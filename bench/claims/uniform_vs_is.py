r"""Claim ``uniform_vs_is``: uniform sampling works in theory, not in practice;
importance sampling fixes it -- completing the missing top half of real
handwritten digits.

The data (setting ``data``): ``"digits"`` (the default) fits
``MissingPixels.fit`` (the Bernoulli-template mixture, EM, ``C`` components,
``restarts`` runs) to the binarised training images of
``problems.datasets.digits()`` (scikit-learn's bundled UCI digits; a pixel is
on when its grey level is above 8 of 16) and measures on ``n_images``
held-out images (the first held-out image of each digit, 9 first), the top
half (32 bits) latent; ``"glyphs"`` is the synthetic option: the ten digit
glyphs drawn in code (``MissingPixels.digits``) and the noiseless 9.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import estimators
from estimators import Bernoulli
from problems import MissingPixels
from problems.datasets import digits
from problems.glyphs import digit_bitmaps

from ._common import LECTURE_DIGIT, ClaimDef, _error_row, bernoulli_relative_weight_variance

SETTINGS = {
    "full": {
        "uniform": dict(data="digits", C=20, restarts=5, n_images=4, Ks=(1, 10, 100, 1000, 10000), R=100,
                        R_point=10, K_rule=1000, K_theory=100, R_theory=2000, n_show=6),
    },
    "smoke": {
        "uniform": dict(data="digits", C=20, restarts=2, n_images=2, Ks=(1, 10, 100), R=20, R_point=4,
                        K_rule=100, K_theory=10, R_theory=200, n_show=3),
    },
}

THEORY_Z = 5.0  # |mean(p_hat/p) - 1| < 5 exact SE
IS_FACTOR = 10.0  # IS RMSE below uniform RMSE / 10
PRACTICE_NATS = 1.0  # uniform RMSE above 1 nat
LABEL_ORDER = (LECTURE_DIGIT, 3, 5, 0, 1, 2, 4, 6, 7, 8)  # which held-out digits, in this order
UNIFORM, ONES, MARGINALS = "uniform (φ = 0.5)", "φ = 1", "φ = posterior marginals"

SPEC = dict(
    title="Uniform sampling works in theory, not in practice; importance sampling fixes it",
    statement="Completing the missing top half of held-out handwritten digits (32 latent bits; a Bernoulli "
              "mixture fitted by EM to the training digits, so p(bottom half) is exact), uniform Monte Carlo is "
              "unbiased for p(x) but useless at any affordable K, while importance sampling with a q near the "
              "posterior is accurate.",
    rule="Held iff (theory) with 8 latent bits, where it can be measured, the mean of p̂/p under uniform "
         f"sampling is within {THEORY_Z:g} exact SE of 1, and (practice) with 32 latent bits at the rule's K "
         f"(1000 in full mode) the RMSE of log p̂ under uniform sampling exceeds {PRACTICE_NATS:g} nat while "
         f"importance sampling with q = Bernoulli(posterior marginals) has an RMSE below the uniform one / "
         f"{IS_FACTOR:g}.  With several held-out images, the mean of p̂/p and the RMSE pool every image's "
         "replicates (the RMSE is the root of the mean squared error over them).",
    figure="missing_pixels",
)


def _rule_uniform(n):
    return (
        abs(n["theory_z"]) < THEORY_Z
        and n["rmse_uniform"] > PRACTICE_NATS
        and n["rmse_is"] < n["rmse_uniform"] / IS_FACTOR
    )


def _problems(S):
    """(p with the top 4 rows latent, p8 with the top row latent, the measured
    images [(name, label, dataset index, binary (64,), grey (64,) in [0, 1])],
    numbers about the data)."""
    data = S.get("data", "digits")
    if data == "glyphs":
        glyph = digit_bitmaps()[LECTURE_DIGIT].ravel()
        p, p8 = MissingPixels.digits(latent_rows=4), MissingPixels.digits(latent_rows=1)
        return p, p8, [(f"glyph {LECTURE_DIGIT}", LECTURE_DIGIT, -1, glyph, glyph.astype(float))], {"data": data}
    if data != "digits":
        raise ValueError(f"data: expected 'digits' or 'glyphs', got {data!r}")
    d = digits()
    Y = d.binary()
    p = MissingPixels.fit(Y[d.train], S["C"], seed=0, restarts=S["restarts"])
    top_row = np.zeros(p.num_pixels, dtype=bool)
    top_row[:8] = True
    p8 = MissingPixels(p.templates, p.weights, top_row)
    n_images = int(S["n_images"])
    if not 1 <= n_images <= len(LABEL_ORDER):
        raise ValueError(f"n_images: must be in 1..{len(LABEL_ORDER)}, got {n_images}")
    test_labels = d.labels[d.test]
    chosen = []
    for c in LABEL_ORDER[:n_images]:
        i = int(d.test[np.flatnonzero(test_labels == c)[0]])
        chosen.append((f"held-out {c} (#{i})", c, i, Y[i], d.images[i] / 16.0))
    x_all, _ = p.split(Y[d.test])
    info = {
        "data": data,
        "em_components": p.num_components,
        "em_restarts": len(p.em.histories),
        "em_train_images": p.em.n,
        "em_avg_log_lik_train": p.em.log_likelihood,
        "em_steps": list(p.em.steps),
        "held_out_images": int(d.test.size),
        "held_out_avg_log_p_bottom_half": float(np.mean(p.log_marginal(x_all))),
    }
    return p, p8, chosen, info


def claim_uniform_vs_is(s):
    r"""The top half (32 bits) of each measured image latent, its bottom half x
    observed (``_problems``: held-out real digits under the EM-fitted mixture,
    or the glyph 9).

    For q = Bernoulli(φ) with φ = 0.5 (uniform Monte Carlo), φ = 1 and φ = the
    posterior marginals: the error :math:`\log\hat p(x) - \log p(x)` over R
    replicates at each K (mean, sd, RMSE), per image (table ``errors_by_image``)
    and pooled over the images (``errors``: the RMSE is
    :math:`\sqrt{\frac1{nR}\sum_{i,r} (\log\hat p_{ir} - \log p(x_i))^2}`); the exact
    :math:`\mathrm{Var}_q[w]/p(x)^2` (``bernoulli_relative_weight_variance``) and
    from it the K that a 10% relative SE of :math:`\hat p` needs,
    :math:`K_{10\%} = 100\,\mathrm{Var}_q[w]/p^2`; and, with 8 latent bits (the
    top row), the mean of :math:`\hat p/p` under uniform sampling over every
    image's R replicates with its exact SE
    :math:`\frac1n\sqrt{\sum_i \mathrm{Var}_q[w_i]/(p_i^2 K R)}`.  Images per
    measured digit: the observation, the digit (binarised, and its grey
    levels), the posterior-mean completion (x with :math:`P(z_j = 1 | x)`),
    completions from p(z|x); and, for the first digit, completions from each q."""
    S = s["uniform"]
    p, p8, chosen, info = _problems(S)
    m = p.latent_dim
    phi_fixed = {UNIFORM: np.full(m, 0.5), ONES: np.ones(m)}
    by_image, pooled_err = [], {}
    per_image = []
    seed = 100
    for k, (name, label, index, image, grey) in enumerate(chosen):
        x, _ = p.split(image)
        log_px = p.log_marginal(x)
        post = p.posterior(x)
        phi = {**phi_fixed, MARGINALS: p.posterior_marginals(x)}
        rel_var = {q: bernoulli_relative_weight_variance(post.weights, post.probs, v) for q, v in phi.items()}
        ones_error = float(p.log_joint(x, np.ones(m))) - log_px
        c_post = p.posterior_component_weights(x)
        per_image.append(dict(name=name, label=label, index=index, image=image, grey=grey, x=x, post=post,
                              phi=phi, log_px=log_px, rel_var=rel_var, ones_error=ones_error,
                              top_weight=float(c_post.max()), eff=float(1.0 / np.sum(c_post ** 2))))
        for q, probs in phi.items():
            for K in S["Ks"]:
                R = S["R_point"] if q == ONES else S["R"]
                seed += 1
                if q == UNIFORM:
                    est = estimators.uniform_mc(p, x, K, R, seed=seed)
                else:
                    est = estimators.importance_sampling(p, x, Bernoulli(probs), K, R, seed=seed)
                exact = ones_error if q == ONES else math.nan
                row = _error_row(q, K, est, log_px, exact)
                by_image.append({"image": k, "digit": label, "index": index, **row, "rel_weight_var": rel_var[q]})
                pooled_err.setdefault((q, K), []).append(np.asarray(est, float) - log_px)
    errors_by_image = pd.DataFrame(by_image)
    pooled = []
    for (q, K), errs in pooled_err.items():
        exact = float(np.mean([im["ones_error"] for im in per_image])) if q == ONES else math.nan
        row = _error_row(q, K, np.concatenate(errs), 0.0, exact)
        row["rel_weight_var"] = float(np.mean([im["rel_var"][q] for im in per_image]))
        row["images"] = len(errs)
        pooled.append(row)
    errors = pd.DataFrame(pooled)

    # theory: 8 latent bits (the top row missing), where E[p_hat] = p(x) can be measured
    K8, R8 = S["K_theory"], S["R_theory"]
    u_all, var_sum = [], 0.0
    for k, im in enumerate(per_image):
        x8, _ = p8.split(im["image"])
        post8 = p8.posterior(x8)
        var_sum += bernoulli_relative_weight_variance(post8.weights, post8.probs, np.full(p8.latent_dim, 0.5))
        u_all.append(np.exp(estimators.uniform_mc(p8, x8, K8, R8, seed=7 + k) - p8.log_marginal(x8)))
    u = np.concatenate(u_all)
    se8 = math.sqrt(var_sum / (K8 * R8)) / len(per_image)

    # images: per measured digit the observed half, the digit, the posterior mean and posterior samples;
    # completions from each q for the first
    n_show = S["n_show"]
    img_rows = []

    def add(k, panel, images):
        for i, img in enumerate(images):
            img_rows.append({"image": k, "title": per_image[k]["name"], "panel": panel, "sample": i,
                             **{f"p{j:02d}": float(v) for j, v in enumerate(np.ravel(img))}})

    lat = p.latent_mask
    for k, im in enumerate(per_image):
        observed = im["image"].astype(float).copy()
        observed[lat] = np.nan
        add(k, "observed x (top half missing)", [observed])
        add(k, "the digit", [im["image"].astype(float)])
        if info["data"] == "digits":
            add(k, "grey levels / 16", [im["grey"]])
        add(k, "posterior mean E[z|x]", [p.image(im["x"], im["phi"][MARGINALS])])
        add(k, "exact posterior p(z|x)", [p.image(im["x"], z) for z in im["post"].sample(n_show, seed=11 + k)])
    first = per_image[0]
    for j, (q, probs) in enumerate(first["phi"].items()):
        add(0, f"q: {q}", [p.image(first["x"], z) for z in Bernoulli(probs).sample(n_show, seed=12 + j)])
    images = pd.DataFrame(img_rows)

    at = errors[errors["K"] == S["K_rule"]].set_index("q")
    numbers = {
        **info,
        "images_measured": len(per_image),
        "image_digits": [int(im["label"]) for im in per_image],
        "image_indices": [int(im["index"]) for im in per_image],
        "log_p_x": [float(im["log_px"]) for im in per_image] if len(per_image) > 1 else float(first["log_px"]),
        "latent_bits": m,
        "K_rule": S["K_rule"],
        "rmse_uniform": float(at.loc[UNIFORM, "rmse"]),
        "rmse_is": float(at.loc[MARGINALS, "rmse"]),
        "rmse_phi_one": float(at.loc[ONES, "rmse"]),
        "mean_error_uniform": float(at.loc[UNIFORM, "mean_error"]),
        "mean_error_is": float(at.loc[MARGINALS, "mean_error"]),
        "error_phi_one_exact": float(np.mean([im["ones_error"] for im in per_image])),
        "rel_weight_var_uniform": [im["rel_var"][UNIFORM] for im in per_image],
        "rel_weight_var_is": [im["rel_var"][MARGINALS] for im in per_image],
        "K_for_10pct_uniform": [im["rel_var"][UNIFORM] / 0.01 for im in per_image],
        "K_for_10pct_is": [im["rel_var"][MARGINALS] / 0.01 for im in per_image],
        "theory_latent_bits": p8.latent_dim,
        "theory_K": K8,
        "theory_R": R8,
        "theory_mean_ratio": float(u.mean()),
        "theory_se_exact": se8,
        "theory_z": float((u.mean() - 1.0) / se8),
        "posterior_top_component_weight": [im["top_weight"] for im in per_image],
        "posterior_effective_components": [im["eff"] for im in per_image],
    }
    if info["data"] == "glyphs":
        c_post = p.posterior_component_weights(first["x"])
        numbers["posterior_component_weights_3_5_9"] = [float(c_post[3]), float(c_post[5]), float(c_post[9])]

    def span(values, fmt):
        lo, hi = min(values), max(values)
        return format(lo, fmt) if lo == hi else f"{format(lo, fmt)} to {format(hi, fmt)}"

    ru, ri = numbers["rel_weight_var_uniform"], numbers["rel_weight_var_is"]
    notes = [
        f"Var_q[w]/p(x)² is exact (a sum over pairs of posterior components): uniform {span(ru, '.3g')}, "
        f"posterior marginals {span(ri, '.3g')} over the {len(per_image)} image(s); a 10% relative standard error "
        f"of p̂ needs K ≈ {span([v / 0.01 for v in ru], '.2g')} uniform samples against "
        f"K ≈ {span([v / 0.01 for v in ri], '.2g')} with the marginals.",
        f"φ = 1 draws the all-ones completion every time: every estimate is exactly log p(x, z = 1), "
        f"{span([im['ones_error'] for im in per_image], '+.1f')} nats from log p(x) -- zero variance, and wrong, "
        "because q does not cover the posterior's support.",
    ]
    if info["data"] == "digits":
        notes.insert(0, (
            f"Data: scikit-learn's bundled UCI digits, binarised (grey level > 8 of 16); a {p.num_components}-"
            f"component Bernoulli mixture fitted by EM to the {p.em.n} training images (best of "
            f"{numbers['em_restarts']} restarts; {p.em.log_likelihood:.2f} nats per image), measured on "
            f"held-out digits {', '.join(str(c) for c in numbers['image_digits'])} (dataset indices "
            f"{', '.join(str(i) for i in numbers['image_indices'])}); the exact log p(bottom half) averages "
            f"{info['held_out_avg_log_p_bottom_half']:.2f} nats over all {info['held_out_images']} held-out images."))
        notes.append("The exact posterior over the components p(c|x): its largest weight is "
                     f"{span(numbers['posterior_top_component_weight'], '.2f')}, "
                     f"{span(numbers['posterior_effective_components'], '.2g')} effective components "
                     "(1 / Σ p(c|x)²).")
    else:
        notes.append("The observed bottom half is shared by the digits 3, 5 and 9: p(c|x) = "
                     + ", ".join(f"{w:.3f}" for w in numbers["posterior_component_weights_3_5_9"])
                     + " for c = 3, 5, 9.")
    return numbers, {"errors": errors, "errors_by_image": errors_by_image, "images": images}, notes


CLAIMS = {"uniform_vs_is": ClaimDef(SPEC, _rule_uniform, claim_uniform_vs_is)}
