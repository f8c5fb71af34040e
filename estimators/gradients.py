r"""Monte Carlo gradient estimators of the ELBO and of the IWAE bound.

For K draws :math:`z_k \sim q_\phi` with log-weights
:math:`f_k = \log w_k = \log p(x, z_k) - \log q_\phi(z_k)` the two objectives are

.. math::
    \text{elbo:}\quad \hat L = \frac1K \sum_k f_k, \qquad
    \text{iwae:}\quad L_K = \log \frac1K \sum_k w_k ,

and ``gradient`` returns R independent replicate estimates of
:math:`\nabla_\phi \mathbb E[\hat L]` or :math:`\nabla_\phi \mathbb E[L_K]`
(with respect to ``q.params``).  Notation: :math:`s_k = \nabla_\phi \log
q_\phi(z_k)` is the score at fixed z, :math:`\tilde w_k = w_k / \sum_j w_j`
the normalised weights, and for a reparameterizable q,
:math:`z = z(\varepsilon, \phi)` (here :math:`z = loc + T\varepsilon`).

All estimators sit side by side in ``METHODS`` (name -> what the kernel
computes per sample, which objectives, whether q must be reparameterizable),
each a small function whose docstring carries its equation:

============ ======================================================== ==========================================================
method       elbo                                                     iwae
============ ======================================================== ==========================================================
score        (1/K) sum_k f_k s_k                                      sum_k (L_K - w~_k) s_k
score_loo    (1/K) sum_k (f_k - mean_{j!=k} f_j) s_k     (K >= 2)     sum_k (L_K - L_{-k} - w~_k) s_k   (VIMCO, K >= 2)
reparam      (1/K) sum_k grad_phi f(z(eps_k, phi))                    sum_k w~_k grad_phi f(z(eps_k, phi))
stl          (1/K) sum_k d f/dz . dz/dphi                             sum_k w~_k d f_k/dz . dz/dphi      (BIASED for K > 1)
dreg         = stl (the K = 1 DReG of each term)                      sum_k w~_k^2 d f_k/dz . dz/dphi
============ ======================================================== ==========================================================

Objective "wake" (reweighted wake-sleep, the wake-phi update: an estimate of
:math:`\mathbb E_{p(z|x)}[\nabla_\phi \log q_\phi(z)]`, exact reference
``p.wake_grad(x, q)``; both estimators are self-normalised, so BIASED at
finite K, O(1/K), and consistent):

============ ======================================================================
score        sum_k w~_k s_k
dreg         sum_k (w~_k - w~_k^2) d log w_k/dz . dz/dphi        (RWS-DReG; reparameterizable q)
============ ======================================================================

Binary latents under a ``Bernoulli`` q, objective "elbo" only, served by
``estimators.discrete_gradients`` (its docstring has the equations;
``Method.numpy``) -- compiled (``estimators._kernels.discrete``) on
SigmoidBeliefNet and MissingPixels, vectorised NumPy on any other binary
problem: "arm", "disarm", "rebar" (options
temperature, eta) -- unbiased -- and the biased relaxations "gumbel_softmax"
(option temperature) and "straight_through", which need the problem's relaxed
log-joint ``p.grad_log_joint_relaxed(x, z)`` (and REBAR ``p.log_joint_relaxed``).
Method options are passed as ``gradient(..., temperature=0.5)``; an option the
method does not take is a ValueError naming it.

Every estimate is computed in one (or, for the leave-one-out signals, two)
streaming passes over the K samples: memory does not grow with K, normalised
weights are accumulated in log space with a running maximum, and the second
pass regenerates the same draws from the counter-seeded generator instead of
storing them.  The same seed gives bit-identical results for any number of
threads, and the same draws as ``estimators.elbo``/``importance_sampling``.

Exact references: ``p.elbo_grad(x, q)`` for the elbo objective (which every
method estimates without bias); for iwae, ``iwae_gradient_reference``.
Gradients in the model's parameters (LinearGaussian W, b, psi):
``model_gradient``, exact reference ``LinearGaussian.elbo_model_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from problems import LinearGaussian

from ._generic import GenericGradient, gradient_support
from ._gradient_targets import target_for_block
from ._kernels import gradient_driver as gd
from . import discrete_gradients as dg
from ._validation import check_choice, check_count
from .weights import _block, check_call

__all__ = ["METHODS", "OBJECTIVES", "gradient", "model_gradient", "iwae_gradient_reference"]

OBJECTIVES = ("elbo", "iwae", "wake")


# --------------------------------------------------------------------------- pass-1 sums


class _Sums:
    """Pass-1 sums of one call, per replicate (see ``gradient_driver``): the
    scalars M, S1, F and the P-vectors in ``vectors``; ``signal`` runs pass 2
    over the same draws.  ``target`` is a compiled ``GradientTarget`` or, on
    the generic path, a ``_generic.GenericGradient``: both give the same sums."""

    def __init__(self, target, mode, P, key, K, R, vectors):
        self._target, self._mode, self._key = target, mode, key
        self.P, self.K, self.R = P, K, R
        if isinstance(target, GenericGradient):
            acc, off = target.sums(vectors, key, K, R)
        else:
            acc, off = gd.gradient_sums(target.kind, target.args, mode, P, vectors, key, K, R)
        self._acc = acc
        # without the weight sums (an ELBO estimator) M and S1 are None, so a
        # reader that should have declared them fails loudly
        weights = off[gd.V_W] >= 0
        self.M = acc[:, gd.I_M] if weights else None
        self.S1 = acc[:, gd.I_S1] if weights else None
        self.F = acc[:, gd.I_F]
        view = {v: (acc[:, o : o + P] if o >= 0 else None) for v, o in enumerate(off[: gd.N_VECTORS])}
        self.sum_S, self.sum_fS, self.G1, self.G2 = view[gd.V_S], view[gd.V_FS], view[gd.V_G1], view[gd.V_G2]

    @property
    def L(self):
        """(R, 1) L_K = log (1/K) sum_k w_k."""
        with np.errstate(divide="ignore"):
            return (self.M + np.log(self.S1) - np.log(self.K))[:, None]

    def weighted(self):
        """(R, P) sum_k w~_k S_k."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.G1 / self.S1[:, None]

    def weighted_squared(self):
        """(R, P) sum_k w~_k^2 S_k."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.G2 / (self.S1**2)[:, None]

    def signal(self, kind):
        """(R, P) sum_k c_k S_k, second pass over the same draws."""
        t = self._target
        totals = self._acc[:, : gd.NSCALAR]
        if isinstance(t, GenericGradient):
            return t.signals(self._key, self.K, self.R, kind, totals)
        return gd.signal_sums(t.kind, t.args, self._mode, self.P, self._key, self.K, self.R, kind, totals)


def _needs(*vectors, weights=True):
    """Declare which pass-1 P-vectors an estimator reads, and whether it reads
    the weight sums M, S1 (``weights``; an ELBO gradient does not, and then
    pass 1 takes no exp)."""

    def mark(fn):
        fn.vectors = frozenset(vectors) | ({gd.V_W} if weights else frozenset())
        return fn

    return mark


# --------------------------------------------------------------------------- the estimators


@_needs(gd.V_FS, weights=False)
def _score_elbo(s):
    r"""Score function (REINFORCE) for the ELBO.

    .. math:: \hat g = \frac1K \sum_k f_k\, s_k

    Unbiased: :math:`\nabla_\phi \mathbb E_q[f_\phi(z)] = \mathbb E_q[f\, s]
    + \mathbb E_q[\nabla_\phi f_\phi(z)]` and the second term is
    :math:`-\mathbb E_q[s] = 0` (f depends on phi directly only through
    :math:`-\log q_\phi`), so it is dropped.
    """
    return s.sum_fS / s.K


@_needs(gd.V_S, gd.V_G1)
def _score_iwae(s):
    r"""Score function for the IWAE bound.

    .. math::
        \nabla_\phi \mathbb E[L_K] = \mathbb E\Big[L_K \sum_k s_k\Big]
            + \mathbb E\big[\nabla_\phi L_K|_{z}\big], \qquad
        \nabla_\phi L_K|_z = \sum_k \tilde w_k \nabla_\phi \log w_k|_z = -\sum_k \tilde w_k s_k,

    hence :math:`\hat g = \sum_k (L_K - \tilde w_k)\, s_k`.  At K = 1 this is
    :math:`(f_1 - 1) s_1`, unbiased for the ELBO gradient like ``score``.
    """
    return s.L * s.sum_S - s.weighted()


@_needs(weights=False)
def _loo_elbo(s):
    r"""Score function with a leave-one-out baseline (K >= 2).

    .. math:: \hat g = \frac1K \sum_k \Big(f_k - \frac{1}{K-1}\sum_{j\neq k} f_j\Big) s_k
                     = \frac{1}{K-1} \sum_k (f_k - \bar f)\, s_k

    Unbiased: the baseline of sample k is independent of z_k and
    :math:`\mathbb E[s_k] = 0`.  Computed in two passes (the mean
    :math:`\bar f` first) so that large log-weights do not cancel.
    """
    return s.signal(gd.LOO_ELBO)


@_needs()
def _vimco(s):
    r"""VIMCO (Mnih & Rezende 2016): the IWAE score function with a per-sample
    leave-one-out baseline (K >= 2).

    .. math::
        \hat g = \sum_k \big(L_K - L_{-k} - \tilde w_k\big)\, s_k, \qquad
        L_{-k} = \log \frac1K\Big(\sum_{j\neq k} w_j + e^{\frac{1}{K-1}\sum_{j\neq k} f_j}\Big)

    (sample k's weight replaced by the geometric mean of the others).
    :math:`L_{-k}` does not depend on z_k, so it is an unbiased baseline.
    Two passes: totals first, then the per-sample signal over the regenerated
    draws; :math:`\sum_{j \ne k} w_j` of the largest weight is tracked
    separately, so it does not suffer cancellation.
    """
    return s.signal(gd.VIMCO)


@_needs(gd.V_S, weights=False)
def _pathwise_elbo(s):
    r"""Pathwise (reparameterization) ELBO gradient, z = z(eps, phi).

    reparam: :math:`\hat g = \frac1K \sum_k \nabla_\phi f(z(\varepsilon_k, \phi), \phi)`.

    stl (sticking the landing, Roeder et al. 2017): the same with the score
    term dropped, :math:`\hat g = \frac1K \sum_k \partial_z f(z_k)\,
    \partial z_k/\partial\phi` -- unbiased for the ELBO since the dropped term
    :math:`-\frac1K\sum_k s_k` has mean zero; zero variance when q is the
    exact posterior.

    dreg on the elbo objective: the ELBO is the average of K one-sample
    IWAE bounds, and DReG of a one-sample bound is exactly STL, so "dreg"
    with objective "elbo" returns the "stl" estimate (same numbers).
    """
    return s.sum_S / s.K


@_needs(gd.V_G1)
def _pathwise_iwae(s):
    r"""Pathwise IWAE gradient: :math:`\hat g = \sum_k \tilde w_k\, S_k`.

    reparam: :math:`S_k = \nabla_\phi \log w(z(\varepsilon_k, \phi), \phi)`,
    the total derivative -- unbiased for :math:`\nabla_\phi \mathbb E[L_K]`.

    stl: :math:`S_k = \partial_z \log w_k \cdot \partial z_k/\partial\phi`.
    The dropped term is :math:`\sum_k \tilde w_k s_k`, whose mean is *not*
    zero for K > 1 (the normalised weights correlate with the scores), so
    STL is a **biased** estimator of the IWAE gradient for K > 1 (unbiased
    at K = 1, where it is the ELBO's).
    """
    return s.weighted()


@_needs(gd.V_G2)
def _dreg_iwae(s):
    r"""Doubly reparameterized gradient (Tucker et al. 2018).

    .. math:: \hat g = \sum_k \tilde w_k^2\, \frac{\partial \log w_k}{\partial z_k}
                        \frac{\partial z_k}{\partial\phi}

    Unbiased for :math:`\nabla_\phi \mathbb E[L_K]` for a reparameterizable q
    (the score term of the reparam estimator is rewritten by a second
    reparameterization); zero variance when q is the exact posterior.
    """
    return s.weighted_squared()


@_needs(gd.V_G1)
def _wake_score(s):
    r"""Reweighted wake-sleep, wake-phi update (Bornschein & Bengio 2015), score form:

    .. math:: \hat g = \sum_k \tilde w_k\, s_k \;\approx\; \mathbb E_{p(z|x)}[\nabla_\phi \log q_\phi(z)]
              = -\nabla_\phi \mathrm{KL}(p(z|x)\,\|\,q_\phi)

    (self-normalised importance sampling of the posterior expectation of the
    score).  **Biased** at finite K (a ratio estimator; the bias is O(1/K)) and
    consistent; exact reference ``p.wake_grad(x, q)``.
    """
    return s.weighted()


@_needs(gd.V_G1, gd.V_G2)
def _wake_dreg(s):
    r"""RWS-DReG (Tucker, Lawson, Gu & Maddison 2019), the doubly reparameterized wake-phi gradient:

    .. math:: \hat g = \sum_k (\tilde w_k - \tilde w_k^2)\,
              \frac{\partial \log w_k}{\partial z_k} \frac{\partial z_k}{\partial\phi}

    It has the same expectation as ``_wake_score`` at every K (the identity
    :math:`\mathbb E[h\, s] = \mathbb E[\partial_z h\, \partial_\phi z]` applied to
    :math:`h = \tilde w_k`, with :math:`\partial \tilde w_k/\partial z_k = \tilde w_k(1-\tilde w_k)
    \partial \log w_k / \partial z_k`), so it is biased in the same way, O(1/K).
    """
    return s.weighted() - s.weighted_squared()


@dataclass(frozen=True)
class Method:
    """One gradient estimator: what the kernel writes per sample (``mode``),
    whether q must be reparameterizable, the smallest K, and the estimator
    function of each objective it supports.

    ``numpy``: the method is served by ``estimators.discrete_gradients``
    instead of the gradient driver's sums -- its own compiled kernels on
    SigmoidBeliefNet and MissingPixels, its vectorised NumPy implementation on
    any other binary problem; its objective functions are called as
    ``fn(p, x, q, K, R, key, **options)`` and ``mode`` is None.  ``options``: the method options it takes
    (``gradient(..., **options)``), with their defaults."""

    mode: int | None
    reparam: bool
    min_K: int
    objectives: dict
    numpy: bool = False
    options: dict = field(default_factory=dict)


METHODS = {
    "score": Method(gd.SCORE, False, 1, {"elbo": _score_elbo, "iwae": _score_iwae, "wake": _wake_score}),
    "score_loo": Method(gd.SCORE, False, 2, {"elbo": _loo_elbo, "iwae": _vimco}),
    "reparam": Method(gd.REPARAM, True, 1, {"elbo": _pathwise_elbo, "iwae": _pathwise_iwae}),
    "stl": Method(gd.STL, True, 1, {"elbo": _pathwise_elbo, "iwae": _pathwise_iwae}),
    "dreg": Method(gd.STL, True, 1, {"elbo": _pathwise_elbo, "iwae": _dreg_iwae, "wake": _wake_dreg}),
    # binary latents under a Bernoulli q (estimators.discrete_gradients has each equation; compiled on
    # SigmoidBeliefNet / MissingPixels, NumPy elsewhere)
    "arm": Method(None, False, 1, {"elbo": dg.arm_elbo}, numpy=True),
    "disarm": Method(None, False, 1, {"elbo": dg.disarm_elbo}, numpy=True),
    "rebar": Method(None, False, 1, {"elbo": dg.rebar_elbo}, numpy=True, options={"temperature": 0.5, "eta": 1.0}),
    "gumbel_softmax": Method(None, False, 1, {"elbo": dg.gumbel_softmax_elbo}, numpy=True,
                             options={"temperature": 0.5}),
    "straight_through": Method(None, False, 1, {"elbo": dg.straight_through_elbo}, numpy=True),
}


# --------------------------------------------------------------------------- public


def gradient(p, x, q, K, R, method, objective="elbo", seed=0, **options):
    r"""(R, len(q.params)) replicate estimates of d objective / d q.params.

    Parameters
    ----------
    p, x : a problem and one observation of shape (D,).
    q : the proposal whose parameters the gradient is taken in.  Supported:

        ================  ===========================================  ==============
        p                 q (params)                                   methods
        ================  ===========================================  ==============
        LinearGaussian    Gaussian (loc, log scale),                   all
                          MultivariateGaussian (loc, vech L~)
        MixturePrior      Gaussian (loc, log scale), 1-D               all
        GaussianMixture   Categorical (logits; score onehot(k) - pi)   score, score_loo
        MissingPixels     Bernoulli (logits; score z - pi)             score, score_loo
        ================  ===========================================  ==============

        Pathwise methods ("reparam", "stl", "dreg") on a q that is not
        reparameterizable (discrete, Uniform, a mixture) raise ValueError.
    K : samples per replicate (>= 1; >= 2 for "score_loo").
    R : number of independent replicates (>= 1).
    method : "score", "score_loo", "reparam", "stl" or "dreg" -- see the
        module docstring's table and ``METHODS`` for each one's equation.
    objective : "elbo" (the average of K log-weights), "iwae"
        (:math:`\log \frac1K \sum_k w_k`, the K-sample bound) or "wake"
        (reweighted wake-sleep's wake-phi gradient; methods "score", "dreg").
    seed : non-negative integer.
    options : method options (``Method.options`` lists each method's, with
        defaults): "temperature" (> 0) of "gumbel_softmax" and "rebar", "eta" of "rebar".
        Discrete methods "arm", "disarm", "rebar", "gumbel_softmax",
        "straight_through" take a Bernoulli q on a binary problem; K counts
        samples (each one pair of log_joint evaluations for arm/disarm/rebar).

    Every method is unbiased for the gradient of the objective's expectation
    except "stl" for "iwae" at K > 1 (see ``_pathwise_iwae``).  "dreg" with
    "elbo" returns the "stl" estimate (DReG at K = 1 per term is STL).
    The score estimators need finite log-weights; an iwae estimate is NaN
    in a replicate whose K weights are all zero.
    """
    method = check_choice("method", method, METHODS)
    objective = check_choice("objective", objective, OBJECTIVES)
    x, K, R, key = check_call(p, x, K, R, seed)
    spec = METHODS[method]
    if objective not in spec.objectives:
        raise ValueError(f'objective: method "{method}" supports {sorted(spec.objectives)}, got {objective!r}')
    for name in options:
        if name not in spec.options:
            takes = f"its options are {sorted(spec.options)}" if spec.options else "it takes no options"
            raise ValueError(f'{name}: not an option of method "{method}" ({takes})')
    block = _block(p, x, q)
    if spec.numpy:
        g = spec.objectives[objective](p, x, q, K, R, key, **{**spec.options, **options})
        return np.ascontiguousarray(g)
    if spec.reparam and not getattr(q, "reparameterizable", False):
        raise ValueError(f'method: "{method}" needs a reparameterizable q, got {type(q).__name__}')
    if K < spec.min_K:
        raise ValueError(f'K: method "{method}" needs K >= {spec.min_K} (a leave-one-out baseline), got {K}')
    target = _gradient_target(p, x, q, block, spec.mode, method)
    estimator = spec.objectives[objective]
    sums = _Sums(target, spec.mode, len(q.params), key, K, R, estimator.vectors)
    return np.ascontiguousarray(estimator(sums))


def _gradient_target(p, x, q, block, mode, method):
    """The compiled gradient target of (p, q) when it serves ``mode``, else the
    generic path's; a ValueError naming what is missing when neither can."""
    target = target_for_block(p, q, block)
    if target is not None and mode in target.modes:
        return target
    reason = gradient_support(p, q, mode, method)
    if reason is None:
        return GenericGradient(p, x, q, mode)
    raise ValueError(target.why_not[mode] if target is not None and mode in target.why_not else reason)


def model_gradient(p, x, q, K, R, objective="elbo", seed=0):
    r"""Replicate estimates of the gradient in the model's parameters theta.

    For a ``LinearGaussian`` p (theta = W, b, psi; q fixed, so no
    reparameterization is needed):

    .. math::
        \text{elbo:}\ \hat g = \frac1K \sum_k \nabla_\theta \log p_\theta(x, z_k), \qquad
        \text{iwae:}\ \hat g = \sum_k \tilde w_k \nabla_\theta \log p_\theta(x, z_k),

    both unbiased for the gradient of the expected objective.  Returns a dict
    {"W": (R, D, d), "b": (R, D), "psi": (R, D)} (psi: the derivative in psi
    itself, not log psi).  Exact reference for "elbo":
    ``p.elbo_model_grad(x, q)``.  q: Gaussian, MultivariateGaussian or Uniform.
    """
    objective = check_choice("objective", objective, OBJECTIVES)
    x, K, R, key = check_call(p, x, K, R, seed)
    if not isinstance(p, LinearGaussian):
        raise ValueError(f"p: model gradients are implemented for LinearGaussian only, got {type(p).__name__}")
    target = target_for_block(p, q, _block(p, x, q))
    if target is None or gd.MODEL not in target.modes:
        raise ValueError(f"q: model gradients need a Gaussian, MultivariateGaussian or Uniform q, got {type(q).__name__}")
    D, d = p.obs_dim, p.latent_dim
    P = D * d + 2 * D
    if objective == "elbo":
        g = _Sums(target, gd.MODEL, P, key, K, R, {gd.V_S}).sum_S / K
    else:
        g = _Sums(target, gd.MODEL, P, key, K, R, {gd.V_G1}).weighted()
    return {
        "W": np.ascontiguousarray(g[:, : D * d].reshape(R, D, d)),
        "b": np.ascontiguousarray(g[:, D * d : D * d + D]),
        "psi": np.ascontiguousarray(g[:, D * d + D :]),
    }


def iwae_gradient_reference(p, x, q, K, R_ref=20000, seed=12345):
    r"""A reference for :math:`\nabla_\phi \mathbb E[L_K]`, which has no closed form.

    Returns ``(mean, standard_error)``, each of shape (len(q.params),): the mean
    of ``R_ref`` independent replicates of an unbiased estimator -- "reparam"
    for a reparameterizable q, else "score_loo" (VIMCO; "score" at K = 1) --
    and its standard error ``std(ddof=1) / sqrt(R_ref)``.  It is an estimate:
    compare against it with a tolerance that adds its SE in quadrature, and
    use a seed other than the one of the estimate being checked.  At K = 1
    :math:`\mathbb E[L_1]` is the ELBO, so the exact ``p.elbo_grad(x, q)`` is
    returned with a standard error of zero.
    """
    K = check_count("K", K)
    R_ref = check_count("R_ref", R_ref, minimum=2)
    if K == 1 and hasattr(p, "elbo_grad"):
        exact = np.asarray(p.elbo_grad(x, q), dtype=np.float64)
        return exact, np.zeros_like(exact)
    method = "reparam" if getattr(q, "reparameterizable", False) else ("score_loo" if K >= 2 else "score")
    g = gradient(p, x, q, K, R_ref, method, objective="iwae", seed=seed)
    return g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(R_ref)
