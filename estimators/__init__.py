"""Proposals q and the Monte Carlo estimators, compiled with numba.

Every estimator returns R independent replicate estimates (see docs/api.md).
Any problem that follows ``problems.Problem``'s protocol and any proposal that
follows ``estimators.Proposal``'s runs through every estimator: built-in
pairs on their compiled kernels (``register_kernel``), every other pair on
the generic path (``execution_path`` says which).  ``estimators`` imports
``problems`` and never ``bench`` or ``reports``.
"""

from .elbo import elbo, kl_to_prior
from . import kernels, machine
from .gradients import METHODS, OBJECTIVES, gradient, iwae_gradient_reference, model_gradient
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
from .training import (
    BetaVAEOptimum,
    LinearEncoder,
    LinearVAEFit,
    PrincipalAxes,
    beta_vae_optimum,
    fit_linear_vae,
    principal_axes,
    steps_to_reach,
)
from .warm_up import warm_up
from .kernels import register_kernel
from .smc import smc
from .ais import ais
from .weights import WeightStats, execution_path, log_weights, weight_stats
from . import psis
from .bounds import cubo, renyi_bound
from .expectation import EXPECTATION_METHODS, expectation_gradient
from .jackknife import jackknife

__all__ = [
    "METHODS",
    "OBJECTIVES",
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
    "kl_to_prior",
    "gradient",
    "model_gradient",
    "iwae_gradient_reference",
    "weight_stats",
    "WeightStats",
    "log_weights",
    "psis",
    "renyi_bound",
    "cubo",
    "jackknife",
    "execution_path",
    "register_kernel",
    "kernels",
    "machine",
    "warm_up",
    "fit_linear_vae",
    "LinearVAEFit",
    "LinearEncoder",
    "steps_to_reach",
    "beta_vae_optimum",
    "BetaVAEOptimum",
    "principal_axes",
    "PrincipalAxes",
    "smc",
    "ais",
    "expectation_gradient",
    "EXPECTATION_METHODS",
]
