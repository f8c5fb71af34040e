"""Figures (matplotlib, Agg) and the HTML/Markdown report of a results
directory.  Reads DataFrames and results directories only; never imports
``bench``."""

from .figures import (
    bias_vs_k,
    gradient_snr_vs_k,
    gradient_variance_vs_k,
    jensen_gap_vs_kl,
    throughput_vs_k,
    variance_vs_k,
)
from .claims import (
    claim_figure,
    elbo_plus_kl_figure,
    lecture_question_figure,
    load_claims,
    missing_pixels_figure,
    reparam_variance_figure,
    single_sample_bias_figure,
    training_figure,
)
from .report import build_report, load_results, render_documents

__all__ = [
    "variance_vs_k",
    "bias_vs_k",
    "jensen_gap_vs_kl",
    "gradient_variance_vs_k",
    "gradient_snr_vs_k",
    "throughput_vs_k",
    "build_report",
    "render_documents",
    "load_results",
    "load_claims",
    "claim_figure",
    "missing_pixels_figure",
    "single_sample_bias_figure",
    "elbo_plus_kl_figure",
    "lecture_question_figure",
    "reparam_variance_figure",
    "training_figure",
]
