"""Human labels, with units, for the report's table columns and the claims'
numbers.  The documents show the label; the code key (the column of
benchmarks.parquet or the key of claims.json) stays one hover away in the
header's ``title=`` attribute.

``column_label(key)`` and ``number_label(key)`` look the key up in
``COLUMN_LABELS`` / ``NUMBER_LABELS``; a claims key ending in ``_se`` is
"the standard error of" its base's label; a key that is in neither is shown
as itself with the underscores spaced out (so a new claim's numbers appear,
labelled by their key, until a label is added here).
"""

from __future__ import annotations

import re

__all__ = ["COLUMN_LABELS", "NUMBER_LABELS", "column_label", "number_label"]

NATS = "[nats]"

#: data-table columns: key (a parquet column, or "a, b" for a column that shows two) -> label with units
COLUMN_LABELS = {
    "problem": "problem",
    "family": "family",
    "problem_params": "parameters",
    "x_seed": "seed of x",
    "log_marginal": f"log p(x) {NATS}",
    "q": "proposal q",
    "K": "K [samples per estimate]",
    "R": "R [replicates]",
    "kl": f"exact KL(q ‖ p(z|x)) {NATS}",
    "gap, gap_se": f"Jensen gap ± SE {NATS}",
    "z": "(gap − KL) / SE",
    "se_kind": "SE from",
    "samples": "samples [K·R summed]",
    "n_points": "points [(problem, q)]",
    "slope, slope_se": "slope b ± SE",
    "z_slope": "(b − 1) / SE",
    "intercept, intercept_se": f"intercept a ± SE {NATS}",
    "chi2, dof": "χ² / degrees of freedom",
    "bias, bias_se": f"bias ± SE {NATS}",
    "bias_pred": f"predicted bias −Var[w]/(2Kp²) {NATS}",
    "variance": "variance [nats²]",
    "variance, variance_se": "variance ± SE [nats²]",
    "ratio_bias, ratio_bias_se": "E[p̂/p] − 1 ± SE",
    "rel_weight_var": "Var_q[w] / p(x)² (exact)",
    "ess": "ESS [samples]",
    "khat": "Pareto k̂ (⚠: above threshold)",
    "truth": f"exact ELBO {NATS}",
    "K*variance": "K · variance [nats²]",
    "objective": "objective",
    "method": "gradient method",
    "grad_variance, grad_variance_se": "tr Cov(ĝ) ± SE",
    "variance_ratio, variance_ratio_se": "variance ratio to score ± SE",
    "snr_median": "SNR, median over coordinates",
    "snr_min": "SNR, minimum over coordinates",
    "snr_floor": "SNR floor √(2/π)/√R",
    "bias_t_max": "max |t| of the bias",
    "name": "benchmark",
    "stats.mean": "mean [s]",
    "stats.stddev": "standard deviation [s]",
    "stats.min": "minimum [s]",
    "stats.rounds": "rounds",
    "samples_per_s": "throughput [samples/s]",
    "reason": "reason",
    "cells": "cells",
    "estimator": "estimator",
    "khat_threshold": "k̂ threshold min(1 − 1/log₁₀K, 0.7)",
    "khat_unreliable": "fraction of replicates above the threshold",
    "failed": "failure",
    "failure_kind": "kind",
    "cell_id": "cell",
    "#": "#",
    "title": "claim",
    "verdict": "verdict",
    "mode": "mode",
    "seconds": "time [s]",
    "number": "quantity",
    "value": "value",
}

#: the claims' numbers (keys of claims.json) -> label with units
NUMBER_LABELS = {
    # shared
    "log_p_x": f"exact log p(x) {NATS}",
    "elbo": f"exact ELBO(q) {NATS}",
    "kl": f"exact KL(q ‖ p(z|x)) {NATS}",
    "var_log_w": "exact Var_q[log w] [nats²]",
    "rel_weight_var": "exact Var_q[w] / p(x)²",
    "n": "observations n",
    "K": "K [samples per estimate]",
    "D": "observed dimension D",
    "d": "latent dimension d",
    "steps": "training steps",
    "seeds": "seeds",
    # uniform_vs_is
    "latent_bits": "latent bits (practice)",
    "K_rule": "K of the rule [samples]",
    "rmse_uniform": f"RMSE of log p̂, uniform sampling {NATS}",
    "rmse_is": f"RMSE of log p̂, importance sampling {NATS}",
    "rmse_phi_one": f"RMSE of log p̂, q with φ = 1 {NATS}",
    "mean_error_uniform": f"mean of log p̂ − log p, uniform sampling {NATS}",
    "mean_error_is": f"mean of log p̂ − log p, importance sampling {NATS}",
    "error_phi_one_exact": f"exact error of log p̂, q with φ = 1 {NATS}",
    "rel_weight_var_uniform": "Var[w] / p(x)², uniform sampling (exact)",
    "rel_weight_var_is": "Var[w] / p(x)², importance sampling (exact)",
    "K_for_10pct_uniform": "K for a 10% relative SE of p̂, uniform [samples]",
    "K_for_10pct_is": "K for a 10% relative SE of p̂, importance sampling [samples]",
    "theory_latent_bits": "latent bits (theory)",
    "theory_K": "K (theory) [samples]",
    "theory_R": "R (theory) [replicates]",
    "theory_mean_ratio": "mean of p̂/p, uniform sampling (theory)",
    "theory_se_exact": "exact SE of that mean",
    "theory_z": "(mean − 1) / SE (theory)",
    "posterior_component_weights_3_5_9": "posterior weights of the digits 3, 5, 9",
    "data": "data (digits: held-out real digits; glyphs: synthetic)",
    "em_components": "mixture components C (fitted by EM)",
    "em_restarts": "EM restarts",
    "em_train_images": "training images (EM)",
    "em_avg_log_lik_train": f"EM log-likelihood per training image {NATS}",
    "em_steps": "EM steps per restart",
    "held_out_images": "held-out images",
    "held_out_avg_log_p_bottom_half": f"exact log p(bottom half), mean over the held-out images {NATS}",
    "images_measured": "held-out images measured",
    "image_digits": "their digits",
    "image_indices": "their dataset indices",
    "posterior_top_component_weight": "largest posterior component weight p(c|x), per image",
    "posterior_effective_components": "effective posterior components 1 / Σ p(c|x)², per image",
    # single_sample_bias
    "R_K1": "R at K = 1 [replicates]",
    "mean_log_p_hat_K1": f"mean of log p̂ at K = 1 {NATS}",
    "se_K1_exact": f"its SE, from the exact Var_q[log w] {NATS}",
    "se_K1_sample": f"its SE, from the replicates {NATS}",
    "z_below_log_p": "(log p(x) − mean) / SE",
    "z_vs_elbo": "(mean − ELBO) / SE",
    "mean_ratio_K1": "mean of p̂/p at K = 1",
    "mean_ratio_se_K1": "its SE",
    # elbo_plus_kl
    "n_points": "(problem, q) points",
    "max_identity_error": f"max |ELBO + KL − log p(x)| (exact) {NATS}",
    "max_abs_z": "max |gap − KL| / SE",
    "kl_range": f"range of the exact KL {NATS}",
    "max_sample_to_exact_se_ratio": "max sample SE / exact SE",
    "min_sample_to_exact_se_ratio": "min sample SE / exact SE",
    # lecture_question
    "kl_good_variance_reading": f"KL(N(2, σ² = 2) ‖ p) {NATS}",
    "kl_bad_variance_reading": f"KL(N(−4, σ² = 0.75) ‖ p) {NATS}",
    "kl_good_sd_reading": f"KL(N(2, σ = 2) ‖ p) {NATS}",
    "kl_bad_sd_reading": f"KL(N(−4, σ = 0.75) ‖ p) {NATS}",
    "kl_forward_good_variance_reading": f"KL(p ‖ N(2, σ² = 2)) {NATS}",
    "kl_forward_bad_variance_reading": f"KL(p ‖ N(−4, σ² = 0.75)) {NATS}",
    "readings_agree": "both readings agree",
    "posterior_weights": "posterior mode weights",
    "posterior_locs": "posterior mode locations",
    # reparam_variance
    "min_ratio": "min variance ratio score / reparam",
    "max_ratio": "max variance ratio score / reparam",
    "min_ratio_lower_bound": "min of (ratio − 5 SE)",
    "cells": "(q, K) cells",
    "max_bias_t": "max |t| of the gradients' bias",
    "bias_t_threshold": "|t| threshold of the bias check",
    # vae_learns
    "eps": f"tolerance ε on the log-likelihood {NATS}",
    "gap_tol": f"tolerance on the ELBO gap {NATS}",
    "ppca_max_avg_log_lik": f"PPCA maximum of the average log-likelihood {NATS}",
    "vae_ll_below_max": f"VAE: final log-likelihood below the maximum {NATS}",
    "svi_ll_below_max": f"SVI: final log-likelihood below the maximum {NATS}",
    "vae_ll_below_max_at_start": f"VAE: log-likelihood below the maximum at the start {NATS}",
    "vae_gap": f"VAE: final ELBO gap (average KL) {NATS}",
    "svi_gap": f"SVI: final ELBO gap (average KL) {NATS}",
    "vae_steps": "VAE: training steps",
    "svi_steps": "SVI: training steps",
    "vae_steps_to_eps": "VAE: steps to within ε",
    "svi_steps_to_eps": "SVI: steps to within ε",
    # score_steps_*
    "median_steps_reparam": "reparam: median steps to close 75% of the gap",
    "median_steps_score_loo": "score_loo: median steps to close 75% of the gap",
    "median_steps_score": "score: median steps to close 75% of the gap",
    "steps_reparam": "reparam: steps per seed",
    "steps_score_loo": "score_loo: steps per seed",
    "steps_score": "score: steps per seed",
    "variance_ratio_score_loo_to_reparam_at_prior":
        "gradient variance ratio score_loo / reparam, encoder at the prior",
    "variance_ratio_score_loo_to_reparam_at_fitted_encoder":
        "gradient variance ratio score_loo / reparam, encoder fitted",
    "median_final_elbo_below_max_reparam": f"reparam: median final ELBO below the maximum {NATS}",
    "median_final_elbo_below_max_score_loo": f"score_loo: median final ELBO below the maximum {NATS}",
    "median_final_elbo_below_max_score": f"score: median final ELBO below the maximum {NATS}",
}

_RATIO_K = re.compile(r"^ratio_K(\d+)_(.+)$")


def column_label(key):
    """The label of a table column's code key (the key itself when it has none)."""
    return COLUMN_LABELS.get(key, key)


def number_label(key):
    """The label of a claim's number: ``NUMBER_LABELS``, ``<base>_se`` as the
    standard error of ``<base>``, ``ratio_K<k>_<q>`` as the score/reparam
    variance ratio at K = k for q, else the key with spaces."""
    if key in NUMBER_LABELS:
        return NUMBER_LABELS[key]
    if key.endswith("_se") and key[:-3]:
        return f"SE of: {number_label(key[:-3])}"
    m = _RATIO_K.match(key)
    if m:
        return f"variance ratio score / reparam at K = {m.group(1)}, q = {m.group(2)}"
    return key.replace("_", " ")
