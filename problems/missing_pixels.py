r"""Binary images from a mixture of Bernoulli templates, with some pixels
missing: the lecture's "complete the top half of the digit".

.. math::
    c \sim \mathrm{Cat}(w), \qquad y_i \mid c \sim \mathrm{Bern}(t_{c,i}),\ i = 1..P,

and the latent z is the masked pixels (``latent_mask``; by default the top
half of an 8 x 8 image), x the rest.  Summing the component out,

.. math::
    \log p(x, z) = \operatorname{logsumexp}_c \Big[\log w_c
       + \sum_{i \in \mathrm{obs}} \log \mathrm{Bern}(x_i; t_{ci})
       + \sum_{j \in \mathrm{lat}} \log \mathrm{Bern}(z_j; t_{cj})\Big],

:math:`\log p(x) = \operatorname{logsumexp}_c [\log w_c + \sum_{\mathrm{obs}} \log
\mathrm{Bern}(x_i; t_{ci})]` (the latent pixels sum to one), and the posterior
is the mixture of the latent templates with weights
:math:`\pi_c \propto w_c \prod_{\mathrm{obs}} \mathrm{Bern}(x_i; t_{ci})`.
``elbo``, ``kl`` and ``elbo_grad`` of a Bernoulli q enumerate all
:math:`2^m` completions, so they are exact and refuse m > 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_expit, logsumexp

from ._validation import as_float_array, check_count, check_probabilities, check_seed
from .distributions import Bernoulli, BernoulliMixture

from ._bounds import WeightMoments, check_power
from .base import Problem
from .glyphs import SIZE, digit_templates

MAX_ENUMERATION_BITS = 20
_ENUM_CHUNK = 1 << 15
WEIGHT_FLOOR = 1e-6  # MissingPixels.fit: every component weight is kept >= this


@dataclass(frozen=True)
class EMFit:
    r"""The record of ``MissingPixels.fit``.

    ``log_likelihood``: the kept fit's average log-likelihood per training
    image, :math:`\frac1n\sum_i \log \sum_c w_c \prod_j t_{cj}^{y_{ij}}(1-t_{cj})^{1-y_{ij}}`;
    ``histories``: per restart, that average at the start and after every EM
    step (non-decreasing, up to rounding); ``best_restart``: the index of the
    kept restart (the highest final value); ``steps`` and ``converged``: per
    restart, the EM steps taken and whether the gain fell below ``tol`` before
    ``iterations``; ``n``, ``eps``, ``tol``, ``seed``: the inputs.
    """

    log_likelihood: float
    histories: tuple
    best_restart: int
    steps: tuple
    converged: tuple
    n: int
    eps: float
    tol: float
    seed: int


def _floored_weights(counts, floor):
    r"""argmax of :math:`\sum_c N_c \log w_c` over the simplex with every
    :math:`w_c \ge` floor: :math:`w_c = \max(\text{floor}, N_c/\lambda)`, λ set so the
    weights sum to one (the clamped set only grows, so C passes suffice)."""
    C = counts.size
    clamped = np.zeros(C, dtype=bool)
    for _ in range(C + 1):
        lam = counts[~clamped].sum() / (1.0 - floor * clamped.sum())
        new = clamped | (counts < floor * lam)
        if (new == clamped).all():
            break
        clamped = new
    w = np.where(clamped, floor, counts / lam)
    return w / w.sum()


def _em_restart(Y, C, eps, iterations, tol, rng):
    """One EM run from C distinct random images (templates 0.25 / 0.75 at
    their off / on pixels, equal weights); returns (T, w, history, steps, converged)."""
    n = Y.shape[0]
    T = np.clip(0.25 + 0.5 * Y[rng.choice(n, size=C, replace=False)], eps, 1.0 - eps)
    w = np.full(C, 1.0 / C)
    history, converged, steps = [], False, 0
    while True:
        log_off = np.log1p(-T)
        L = (np.log(w) + log_off.sum(axis=1)) + Y @ (np.log(T) - log_off).T  # (n, C)
        ll_i = logsumexp(L, axis=1)
        history.append(float(ll_i.mean()))
        if steps > 0 and history[-1] - history[-2] < tol:
            converged = True
            break
        if steps == iterations:
            break
        R = np.exp(L - ll_i[:, None])
        counts = R.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            T_new = (R.T @ Y) / counts[:, None]
        # the box [eps, 1 - eps] holds each template's maximiser (a concave 1-d problem); an empty
        # component's term is zero whatever its template, so it keeps its own
        T = np.where(counts[:, None] > 0, np.clip(T_new, eps, 1.0 - eps), T)
        w = _floored_weights(counts, WEIGHT_FLOOR)
        steps += 1
    return T, w, np.array(history), steps, converged


def _check_bits(name, value, length):
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[-1] != length:
        raise ValueError(f"{name}: expected trailing dimension {length}, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: entries must be 0 or 1")
    return arr.astype(np.float64)


class MissingPixels(WeightMoments, Problem):
    """Bernoulli-template mixture images; latent = masked pixels, observation = the rest.

    ``templates``: pixel-on probabilities, flat (C, P) or image-shaped
    (C, H, W); ``weights`` (C,); ``latent_mask``: booleans of the matching
    shape, (P,) or (H, W), True for a latent (missing) pixel.

    Whatever the input's shape, ``templates`` is stored flat as (C, P) and
    ``latent_mask`` as (P,) (pixels in row-major order, P = H W), with the
    image's shape in ``image_shape`` ((P,) or (H, W)): ``image`` and
    ``sample_images`` return images of that shape, and ``split`` takes them.
    x is the observed pixels and z the latent ones, each in row-major order.
    """

    discrete = True
    latent_type = "binary"

    def __init__(self, templates, weights, latent_mask):
        templates = check_probabilities("templates", templates, sum_to_one=False)
        if templates.ndim not in (2, 3) or 0 in templates.shape:
            raise ValueError(f"templates: expected shape (C, P) or (C, H, W), got {templates.shape}")
        if ((templates <= 0) | (templates >= 1)).any():
            raise ValueError("templates: probabilities must lie strictly inside (0, 1)")
        image_shape = tuple(int(s) for s in templates.shape[1:])
        C = templates.shape[0]
        templates = np.ascontiguousarray(templates.reshape(C, -1))
        P = templates.shape[1]
        weights = check_probabilities("weights", weights)
        if weights.shape != (C,):
            raise ValueError(f"weights: expected shape ({C},), got {weights.shape}")
        mask = np.asarray(latent_mask)
        if mask.shape != image_shape or mask.dtype != np.bool_:
            want = "(H, W) = " if len(image_shape) == 2 else ""
            raise ValueError(
                f"latent_mask: expected a boolean array of shape {want}{image_shape} (matching templates "
                f"{(C,) + image_shape}), got {mask.dtype} {mask.shape}"
            )
        mask = mask.ravel()
        if mask.all() or not mask.any():
            raise ValueError("latent_mask: must mark some, but not all, pixels as latent")
        self.templates, self.weights, self.latent_mask = templates, weights / weights.sum(), mask.copy()
        self.image_shape = image_shape
        self.num_components, self.num_pixels = C, P
        self.latent_dim = int(mask.sum())
        self.obs_dim = P - self.latent_dim
        self._log_weights = np.log(self.weights)
        lat, obs = templates[:, mask], templates[:, ~mask]
        self._lat_on, self._lat_off = np.log(lat), np.log1p(-lat)
        self._obs_on, self._obs_off = np.log(obs), np.log1p(-obs)

    @property
    def latent_log_templates(self):
        """(log t, log(1 - t)) of the latent pixels' template probabilities, each (C, m)."""
        return self._lat_on, self._lat_off

    def __repr__(self):
        shape = f" ({self.image_shape[0]}x{self.image_shape[1]})" if len(self.image_shape) == 2 else ""
        return f"MissingPixels(C={self.num_components}, P={self.num_pixels}{shape}, latent={self.latent_dim})"

    @classmethod
    def digits(cls, latent_rows=4, on=0.92, off=0.04, shaped=False):
        """The catalog instance: ten 8 x 8 digit glyphs, equal weights, the top
        ``latent_rows`` rows missing (4 = the top half, 32 latent bits; use 2
        for 16 bits, where elbo/kl can enumerate).  ``shaped=True`` builds it
        from (10, 8, 8) templates and an (8, 8) mask, so images come out 8 x 8;
        the default is the flat form (64 pixels)."""
        if not 1 <= int(latent_rows) < SIZE:
            raise ValueError(f"latent_rows: must be in 1..{SIZE - 1}, got {latent_rows}")
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        mask[: int(latent_rows)] = True
        templates = digit_templates(on, off)
        weights = np.full(templates.shape[0], 1.0 / templates.shape[0])
        if shaped:
            return cls(templates.reshape(-1, SIZE, SIZE), weights, mask)
        return cls(templates, weights, mask.ravel())

    @classmethod
    def fit(cls, images, C, seed=0, latent_mask=None, restarts=5, iterations=200, eps=0.01, tol=1e-7):
        r"""Fit the Bernoulli-template mixture to binary images by EM and return
        the problem with those templates and weights and ``latent_mask``.

        ``images``: 0/1 images, (n, P) flat or (n, H, W) (binarise grey images
        first, e.g. ``problems.datasets.digits().binary()``: grey level > 8 of
        16).  ``latent_mask``: as in the constructor ((P,) or (H, W) booleans,
        True = latent); default the top half, i.e. the first ⌊P/2⌋ pixels in
        row-major order (the top 4 rows of an 8 x 8 image).  The mask does not
        enter the fit: EM fits the full images.

        EM maximises the log-likelihood
        :math:`\ell = \sum_i \log \sum_c w_c \prod_j t_{cj}^{y_{ij}}(1-t_{cj})^{1-y_{ij}}`
        over templates in the box :math:`[\epsilon, 1-\epsilon]` (the smoothing:
        a pixel never on in a component's images gets :math:`t = \epsilon`, not 0,
        so held-out images keep a finite likelihood) and weights
        :math:`w_c \ge 10^{-6}`.  E step: responsibilities
        :math:`r_{ic} \propto w_c \prod_j \mathrm{Bern}(y_{ij}; t_{cj})`; M step:
        :math:`t_{cj} = \mathrm{clip}(\sum_i r_{ic}y_{ij} / \sum_i r_{ic}, \epsilon, 1-\epsilon)`
        (the exact maximiser in the box) and :math:`w_c = \max(10^{-6}, N_c/\lambda)`
        (the exact maximiser on the floored simplex), so :math:`\ell` never
        decreases.  Each of ``restarts`` runs starts from C distinct random
        images (templates 0.25 / 0.75 at their off / on pixels, equal weights;
        generator ``numpy.random.default_rng(seed)``) and stops when the
        average log-likelihood per image gains less than ``tol`` in a step or
        after ``iterations`` steps; the run with the highest final
        :math:`\ell` is kept, its components ordered by decreasing weight.
        The record (every run's history) is the returned problem's ``em``
        (an ``EMFit``).
        """
        arr = np.asarray(images)
        if arr.ndim not in (2, 3) or 0 in arr.shape:
            raise ValueError(f"images: expected shape (n, P) or (n, H, W), got {arr.shape}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("images: entries must be 0 or 1 (binarise grey images first, "
                             "e.g. problems.datasets.digits().binary())")
        image_shape = arr.shape[1:]
        n = arr.shape[0]
        Y = arr.reshape(n, -1).astype(np.float64)
        P = Y.shape[1]
        C = check_count("C", C)
        if C > n:
            raise ValueError(f"C: must be <= the number of images ({n}), got {C}")
        seed = check_seed(seed)
        restarts = check_count("restarts", restarts)
        iterations = check_count("iterations", iterations)
        eps = float(eps)
        if not 0.0 < eps < 0.5:
            raise ValueError(f"eps: must lie in (0, 0.5), got {eps!r}")
        tol = float(tol)
        if not tol >= 0.0:
            raise ValueError(f"tol: must be >= 0, got {tol!r}")
        if latent_mask is None:
            mask = np.zeros(P, dtype=bool)
            mask[: P // 2] = True
            mask = mask.reshape(image_shape)
        else:
            mask = np.asarray(latent_mask)
            if mask.dtype != np.bool_ or mask.size != P:
                raise ValueError(f"latent_mask: expected {P} booleans (shape {image_shape}), got {mask.dtype} "
                                 f"{mask.shape}")
            mask = mask.reshape(image_shape)
        if mask.all() or not mask.any():
            raise ValueError("latent_mask: must mark some, but not all, pixels as latent")
        rng = np.random.default_rng(seed)
        # one BLAS thread: these (n x P) @ (P x C) products are small, threads only contend (5x slower on a
        # busy two-core machine), and one thread makes the fit the same whatever the machine's thread count
        from threadpoolctl import threadpool_limits  # installed with scikit-learn, a dependency

        with threadpool_limits(limits=1, user_api="blas"):
            runs = [_em_restart(Y, C, eps, iterations, tol, rng) for _ in range(restarts)]
        best = int(np.argmax([r[2][-1] for r in runs]))
        T, w = runs[best][0], runs[best][1]
        order = np.argsort(-w, kind="stable")
        T, w = T[order], w[order]
        problem = cls(T.reshape((C,) + image_shape), w, mask)
        problem.em = EMFit(
            log_likelihood=float(runs[best][2][-1]), histories=tuple(r[2] for r in runs), best_restart=best,
            steps=tuple(r[3] for r in runs), converged=tuple(r[4] for r in runs), n=n, eps=eps, tol=tol, seed=seed)
        return problem

    # ---- images ---------------------------------------------------------------
    def image(self, x, z):
        """The full image from observed pixels x (obs_dim,) and a completion z
        (..., m): shape z.shape[:-1] + image_shape."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.obs_dim,):
            raise ValueError(f"x: expected shape ({self.obs_dim},), got {x.shape}")
        z = np.asarray(z, dtype=np.float64)
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected trailing dimension {self.latent_dim}, got shape {z.shape}")
        img = np.empty(z.shape[:-1] + (self.num_pixels,))
        img[..., ~self.latent_mask] = x
        img[..., self.latent_mask] = z
        return img.reshape(z.shape[:-1] + self.image_shape)

    def split(self, image):
        """(x, z) from full images: (..., P) flat, or (..., H, W) for an image-shaped problem."""
        arr = np.asarray(image)
        if len(self.image_shape) == 2 and arr.ndim >= 2 and arr.shape[-2:] == self.image_shape:
            arr = arr.reshape(arr.shape[:-2] + (self.num_pixels,))
        elif arr.ndim == 0 or arr.shape[-1] != self.num_pixels:
            raise ValueError(
                f"image: expected trailing shape {self.image_shape} or ({self.num_pixels},), got shape {arr.shape}"
            )
        image = _check_bits("image", arr, self.num_pixels)
        return image[..., ~self.latent_mask], image[..., self.latent_mask]

    def sample_images(self, n, seed=0):
        """n full images (n, *image_shape) and their components (n,)."""
        flat, c = self._sample_flat(n, seed)
        return flat.reshape((flat.shape[0],) + self.image_shape), c

    def _sample_flat(self, n, seed):
        n, rng = self._check_sample_args(n, seed)
        c = rng.choice(self.num_components, size=n, p=self.weights)
        return (rng.random((n, self.num_pixels)) < self.templates[c]).astype(np.int8), c

    def sample(self, n, seed=0):
        """n observations x (n, obs_dim): the unmasked pixels of sampled images."""
        images, _ = self._sample_flat(n, seed)
        return images[:, ~self.latent_mask].astype(np.float64)

    # ---- densities ------------------------------------------------------------
    def _check_x(self, x, allow_batch=False):
        x = super()._check_x(x, allow_batch)
        if not np.isin(x, (0.0, 1.0)).all():
            raise ValueError("x: observed pixels must be 0 or 1")
        return x

    def observed_log_likelihoods(self, x):
        """log w_c + sum_obs log Bern(x_i; t_ci) for each component: (C,)."""
        x = self._check_x(x)
        return self._log_weights + self._obs_off.sum(axis=1) + (self._obs_on - self._obs_off) @ x

    def log_joint(self, x, z):
        """log p(x, z), vectorised over leading axes of z (..., m)."""
        a = self.observed_log_likelihoods(x)
        z = _check_bits("z", z, self.latent_dim)
        comp = a + self._lat_off.sum(axis=1) + z @ (self._lat_on - self._lat_off).T
        return logsumexp(comp, axis=-1)

    def log_joint_relaxed(self, x, z):
        r"""The log-joint's formula for a relaxed z in [0, 1]^m (the relaxation
        estimators' ``p.log_joint_relaxed``):
        :math:`\operatorname{logsumexp}_c [a_c + \sum_j \log(1-t_{cj}) + z \cdot (\log t_c - \log(1-t_c))]`; (n,)."""
        a = self.observed_log_likelihoods(x)
        z = as_float_array("z", z, shape=(None, self.latent_dim))
        return logsumexp(a + self._lat_off.sum(axis=1) + z @ (self._lat_on - self._lat_off).T, axis=-1)

    def grad_log_joint_relaxed(self, x, z):
        r""":math:`\nabla_z` of ``log_joint_relaxed``: :math:`\sum_c r_c(z) (\log t_c - \log(1 - t_c))`,
        r the softmax of the component terms; (n, m)."""
        a = self.observed_log_likelihoods(x)
        z = as_float_array("z", z, shape=(None, self.latent_dim))
        diff = self._lat_on - self._lat_off
        comp = a + self._lat_off.sum(axis=1) + z @ diff.T
        return np.exp(comp - logsumexp(comp, axis=-1, keepdims=True)) @ diff

    def _log_marginal_rows(self, X):
        if not np.isin(X, (0.0, 1.0)).all():
            raise ValueError("x: observed pixels must be 0 or 1")
        comp = self._log_weights + self._obs_off.sum(axis=1) + X @ (self._obs_on - self._obs_off).T
        return logsumexp(comp, axis=-1)

    def prior(self):
        """p(z): the latent pixels' marginal, a mixture of the latent templates."""
        return BernoulliMixture(self.weights, self.templates[:, self.latent_mask])

    def posterior_component_weights(self, x):
        """p(c | x) for each template: (C,)."""
        a = self.observed_log_likelihoods(x)
        return np.exp(a - logsumexp(a))

    def posterior(self, x):
        """Exact p(z | x): the latent templates mixed with weights p(c | x)."""
        return BernoulliMixture(self.posterior_component_weights(x), self.templates[:, self.latent_mask])

    def posterior_marginals(self, x):
        """P(z_j = 1 | x) for each latent pixel: (m,)."""
        return self.posterior(x).marginals

    # ---- exact variational quantities by enumeration -------------------------
    def _enumerate(self, x, q, what):
        q = self._check_q(q, (Bernoulli,), what)
        m = self.latent_dim
        if m > MAX_ENUMERATION_BITS:
            raise ValueError(
                f"q: {what} enumerates all 2^{m} completions, which is exact only up to "
                f"{MAX_ENUMERATION_BITS} latent bits; use fewer latent pixels (e.g. MissingPixels.digits(latent_rows=2))"
            )
        a = self.observed_log_likelihoods(x)
        theta = q.params
        with np.errstate(invalid="ignore"):
            q_on, q_off = log_expit(theta), log_expit(-theta)
        lat_base = self._lat_off.sum(axis=1)
        lat_diff = (self._lat_on - self._lat_off).T
        powers = 1 << np.arange(m)
        for start in range(0, 1 << m, _ENUM_CHUNK):
            idx = np.arange(start, min(1 << m, start + _ENUM_CHUNK))
            z = ((idx[:, None] & powers) > 0).astype(np.float64)
            log_q = np.sum(np.where(z > 0, q_on, 0.0) + np.where(z < 1, q_off, 0.0), axis=1)
            keep = np.isfinite(log_q)
            if not keep.any():
                continue
            z, log_q = z[keep], log_q[keep]
            yield z, log_q, logsumexp(a + lat_base + z @ lat_diff, axis=1), a

    def elbo(self, x, q):
        """Exact ELBO(q) = sum_z q(z) [log p(x, z) - log q(z)] over all 2^m completions."""
        total = 0.0
        for _, log_q, log_joint, _ in self._enumerate(x, q, "elbo"):
            total += float(np.sum(np.exp(log_q) * (log_joint - log_q)))
        return total

    def kl(self, x, q):
        """Exact KL(q || p(z|x)) = sum_z q(z) [log q(z) - log p(z|x)], with log p(z|x)
        from the posterior mixture (not via elbo or log_marginal).
        A sum that rounds below zero (q equal to the posterior up to rounding:
        as with the Gaussian mixture, about -1e-16) is
        returned as 0, the KL's bound, within that rounding."""
        post = self.posterior(self._check_x(x))
        total = 0.0
        for z, log_q, _, _ in self._enumerate(x, q, "kl"):
            total += float(np.sum(np.exp(log_q) * (log_q - post.log_prob(z))))
        return max(0.0, total)

    def elbo_grad(self, x, q):
        r"""Exact d ELBO / d logits of a Bernoulli q by enumeration:
        :math:`\sum_z q(z)\,[\log p(x,z) - \log q(z)]\,(z - \phi)` (the score identity;
        the derivative of the -log q inside has zero mean)."""
        grad = np.zeros(self.latent_dim)
        for z, log_q, log_joint, _ in self._enumerate(x, q, "elbo_grad"):
            grad += (np.exp(log_q) * (log_joint - log_q)) @ (z - q.probs)
        return grad

    def wake_grad(self, x, q):
        r"""Exact wake-phi gradient :math:`\mathbb E_{p(z|x)}[\nabla_\phi \log q_\phi(z)]
        = P(z = 1 | x) - \pi` for a Bernoulli q in its logits."""
        q = self._check_q(q, (Bernoulli,), "wake_grad")
        return self.posterior_marginals(x) - q.probs

    def log_weight_moment(self, x, q, s):
        r"""Exact :math:`\log \mathbb E_q[w^s] = \log \sum_z q(z)^{1-s} p(x, z)^s` over
        the 2^m completions with q(z) > 0 (m <= 20), for real s (``renyi_bound``,
        ``cubo`` and ``ess_limit`` build on it).  Every p(x, z) > 0 here (the
        templates lie strictly inside (0, 1)), so every moment is finite."""
        s = check_power(s)
        parts = [
            logsumexp((1.0 - s) * log_q + s * log_joint)
            for _, log_q, log_joint, _ in self._enumerate(x, q, "log_weight_moment")
        ]
        return float(logsumexp(parts))
