"""Proposals q and the numba-compiled Monte Carlo estimators.

Every estimator returns R independent replicate estimates; see DESIGN.md for
the contract.  ``estimators`` never imports ``bench`` or ``reports``.
"""

from .elbo import elbo
from .gradients import gradient, iwae_gradient_reference, model_gradient
from .marginal import importance_sampling, uniform_mc, uniform_proposal
from .proposals import (
    Bernoulli,
    BernoulliMixture,
    Categorical,
    Gaussian,
    MixtureOfGaussians,
    MultivariateGaussian,
    Proposal,
    Uniform,
)
from .training import LinearEncoder, LinearVAEFit, fit_linear_vae, steps_to_reach
from .warm_up import warm_up
from .weights import WeightStats, weight_stats

__all__ = [
    "Gaussian",
    "MultivariateGaussian",
    "Categorical",
    "Bernoulli",
    "Uniform",
    "MixtureOfGaussians",
    "BernoulliMixture",
    "Proposal",
    "uniform_mc",
    "uniform_proposal",
    "importance_sampling",
    "elbo",
    "gradient",
    "model_gradient",
    "iwae_gradient_reference",
    "weight_stats",
    "WeightStats",
    "warm_up",
    "fit_linear_vae",
    "LinearVAEFit",
    "LinearEncoder",
    "steps_to_reach",
]
