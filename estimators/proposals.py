"""The proposal distributions q(z).

They are defined in ``problems.distributions`` -- the problems return them as
their priors and posteriors, and ``problems`` imports nothing from
``estimators`` -- and re-exported here, so ``from estimators import Gaussian``
and ``from estimators.proposals import Gaussian`` keep working.  See
``estimators.Proposal`` for the protocol a user's own proposal follows.
"""

from problems.distributions import *  # noqa: F401,F403
from problems.distributions import __all__  # noqa: F401
