"""Ground-truth latent-variable models: exact log p(x), p(z|x), ELBO, KL and
ELBO gradient, and the distributions they are built from.

``problems`` is the lowest layer: it imports nothing from ``estimators``,
``bench`` or ``reports``.  The proposal classes (``problems.distributions``)
live here because the problems return them as priors and posteriors;
``estimators`` re-exports them.  ``problems.Problem`` documents the protocol a
user's own model follows.
"""

from . import datasets, distributions
from .base import LATENT_TYPES, Problem
from .gaussian_mixture import GaussianMixture
from .linear_gaussian import LinearGaussian
from .missing_pixels import MissingPixels
from .mixture_prior import MixturePrior
from .rainforth import RainforthLinearGaussian
from .sigmoid_belief_net import SigmoidBeliefNet
from .state_space import HiddenMarkov, LinearGaussianStateSpace

__all__ = [
    "Problem",
    "LATENT_TYPES",
    "distributions",
    "datasets",
    "LinearGaussian",
    "GaussianMixture",
    "MixturePrior",
    "MissingPixels",
    "RainforthLinearGaussian",
    "LinearGaussianStateSpace",
    "HiddenMarkov",
    "SigmoidBeliefNet",
]
