"""Ground-truth latent-variable models: exact log p(x), p(z|x), ELBO, KL and
ELBO gradient.  ``problems`` knows nothing of the estimators; it only uses the
proposal classes (``estimators.proposals``) to return p(z) and p(z|x)."""

from .gaussian_mixture import GaussianMixture
from .linear_gaussian import LinearGaussian
from .missing_pixels import MissingPixels
from .mixture_prior import MixturePrior
from .rainforth import RainforthLinearGaussian

__all__ = ["LinearGaussian", "GaussianMixture", "MixturePrior", "MissingPixels", "RainforthLinearGaussian"]
