r"""Exact state-space models: the linear-Gaussian state-space model (Kalman
filter, RTS smoother) and the hidden Markov model (forward algorithm, forward
filtering backward sampling), and the protocol a user's own state-space model
follows so that ``estimators.smc`` runs on it.

Layout of the data
------------------
A state-space model has T time steps, a latent state :math:`z_t` of
dimension ``state_dim`` and an emission :math:`x_t` of dimension
``emission_dim`` per step (time index t = 0 .. T-1 here, 0-based):

.. math::
    z_0 \sim p(z_0), \qquad z_t \mid z_{t-1} \sim p(z_t \mid z_{t-1}), \qquad
    x_t \mid z_t \sim p(x_t \mid z_t),

    p(x_{0:T-1}, z_{0:T-1}) = p(z_0) \prod_{t\ge1} p(z_t \mid z_{t-1})
        \prod_{t} p(x_t \mid z_t).

As a problem (``problems.Problem``), one observation x is the whole series,
flat and time-major: ``obs_dim = T * emission_dim`` and
``x[t * emission_dim + j]`` is coordinate j of :math:`x_t`; an array of shape
(T, emission_dim) is accepted wherever one observation is (and flattened).  The
latent z is the stacked path, ``latent_dim = T * state_dim``, likewise
time-major.

The state-space protocol (what ``estimators.smc`` needs)
--------------------------------------------------------
``T``, ``state_dim``, ``emission_dim``
    the sizes above (``obs_dim == T * emission_dim``).
``initial_sample(n, rng)``
    n draws :math:`z_0 \sim p(z_0)`, an array with n rows (shape (n, state_dim));
    ``rng`` is a ``numpy.random.Generator``.
``transition_sample(t, z_prev, rng)``
    one draw :math:`z_t \sim p(z_t \mid z_{t-1})` per row of ``z_prev``, for
    t = 1 .. T-1; same shape as ``z_prev``.
``emission_log_prob(t, z, x_t)``
    :math:`\log p(x_t \mid z_t)` for each row of z, shape (n,); ``x_t`` is
    the (emission_dim,) slice of step t.
``optimal_initial_sample(n, x_0, rng)`` and ``optimal_sample(t, z_prev, x_t, rng)`` (optional, together)
    the locally optimal proposal: ``optimal_sample`` draws
    :math:`z_t \sim p(z_t \mid z_{t-1}, x_t)` for t = 1 .. T-1 and returns
    ``(z_t, log_w)`` with the incremental weight
    :math:`\log w = \log p(x_t \mid z_{t-1}) = \log \int p(x_t \mid z_t)
    p(z_t \mid z_{t-1})\,dz_t`, shape (n,); ``optimal_initial_sample`` returns
    n draws of :math:`p(z_0 \mid x_0)` and :math:`\log p(x_0)` (shape (n,)).
    With them, ``smc(..., proposal="optimal")`` runs.

Particles are whatever arrays these return (float rows for a continuous
state, integer rows for a discrete one); the filter only indexes their rows.
The built-in models below implement the protocol in NumPy (what the generic,
uncompiled SMC path calls) and are also served by compiled kernels.

The two built-in models
-----------------------
``LinearGaussianStateSpace`` -- :math:`z_0 \sim N(m_0, P_0)`,
:math:`z_t = A z_{t-1} + N(0, Q)`, :math:`x_t = C z_t + N(0, R)`.  The Kalman
filter (Cholesky-based, Joseph-form covariance update) gives
:math:`\log p(x) = \sum_t \log N(x_t; C m_t^-, S_t)`,
:math:`S_t = C P_t^- C^T + R`; the Rauch-Tung-Striebel smoother gives the
exact posterior.  The locally optimal proposal is closed form: with
:math:`S = C Q C^T + R` and :math:`K = Q C^T S^{-1}`,

.. math::
    p(z_t \mid z_{t-1}, x_t) = N\big(A z_{t-1} + K(x_t - C A z_{t-1}),\ (I - K C) Q\big),
    \qquad p(x_t \mid z_{t-1}) = N(x_t;\ C A z_{t-1},\ S)

(at t = 0 the same with :math:`A z_{-1} \to m_0`, :math:`Q \to P_0`).

``HiddenMarkov`` -- :math:`z_0 \sim \pi`, :math:`P(z_t = k \mid z_{t-1} = j)
= A_{jk}`, :math:`x_t \mid z_t = k \sim N(\mu_k, \operatorname{diag}
\sigma_k^2)`.  The forward algorithm in log space,
:math:`\log\alpha_0(k) = \log\pi_k + \log g_0(k)`,
:math:`\log\alpha_t(k) = \log\sum_j \exp(\log\alpha_{t-1}(j) + \log A_{jk})
+ \log g_t(k)`, gives :math:`\log p(x) = \log\sum_k \alpha_{T-1}(k)`;
forward filtering, backward sampling draws the exact posterior path
(:math:`z_{T-1} \sim \alpha_{T-1}`, then :math:`P(z_t = j \mid z_{t+1}, x)
\propto \alpha_t(j) A_{j z_{t+1}}`).

The HMM's latent is a path of T categorical states.  That is not one of the
latent types of ``problems.base`` (a "categorical" latent there is one value in
{0..C-1}, latent_dim 1), and pretending it were "continuous" would be a lie
the gradient estimators would act on.  So ``HiddenMarkov.latent_type`` is
``"categorical_path"`` (latent_dim T, values in {0..S-1}, passed as integer
arrays of shape (n, T)): ``log_joint``, ``prior()`` and ``posterior(x)`` (both
path distributions with ``sample`` and an exact ``log_prob``) work, and
importance sampling by hand with them is exact, but the generic estimators
(``importance_sampling``, ``elbo``, gradients) refuse the problem with a
ValueError naming ``p.latent_type``; SMC is the estimator it is for.

Dense joint Gaussians
---------------------
``LinearGaussianStateSpace.prior()`` and ``.posterior(x)`` are
``MultivariateGaussian`` distributions over the stacked path, with the full
(T * state_dim)^2 covariance; they are built (once, lazily: neither depends on
x except the posterior mean) only for ``T * state_dim <= MAX_DENSE_DIM``
(2048: a 32 MB matrix and a one-second Cholesky factorisation), and raise a
ValueError naming T beyond it.  ``smoothing_moments(x)`` gives the banded
representation for any T -- the marginal means and covariances of
:math:`z_t \mid x` and the lag-one cross-covariances -- which is all of the
posterior (it is a Gauss-Markov chain).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.linalg import cho_solve, solve_discrete_lyapunov, solve_triangular
from scipy.special import logsumexp

from ._validation import (
    as_category_indices,
    as_float_array,
    check_count,
    check_probabilities,
    check_seed,
    cholesky_or_raise,
    plain,
)
from .base import Problem
from .distributions import Gaussian, MultivariateGaussian, as_generator

__all__ = [
    "LinearGaussianStateSpace",
    "HiddenMarkov",
    "MarkovChainPath",
    "HiddenMarkovPosterior",
    "MAX_DENSE_DIM",
    "STATE_SPACE_MEMBERS",
    "is_state_space",
]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Largest stacked latent dimension T * state_dim for which the dense joint
#: prior and posterior of ``LinearGaussianStateSpace`` are built.
MAX_DENSE_DIM = 2048

#: The members every state-space model offers (see the module docstring).
STATE_SPACE_MEMBERS = ("T", "state_dim", "emission_dim", "initial_sample", "transition_sample", "emission_log_prob")


def is_state_space(p):
    """Whether ``p`` offers every member of the state-space protocol."""
    return all(hasattr(p, m) for m in STATE_SPACE_MEMBERS)


def _sym(M):
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def _chol(name, M):
    """Cholesky factor of a covariance the recursions computed (symmetrised)."""
    try:
        return np.linalg.cholesky(_sym(M))
    except np.linalg.LinAlgError:
        raise ValueError(f"{name}: became numerically singular in the Kalman recursion") from None


class _SeriesMixin:
    """x as one flat series of length T * emission_dim (or (T, emission_dim))."""

    def _check_x(self, x, allow_batch=False):
        arr = np.asarray(x)
        T, o = self.T, self.emission_dim
        if arr.ndim == 2 and arr.shape == (T, o) and (T > 1 or not allow_batch):
            return as_float_array("x", arr).reshape(T * o)
        if arr.ndim == 3 and allow_batch and arr.shape[1:] == (T, o):
            return as_float_array("x", arr).reshape(arr.shape[0], T * o)
        return Problem._check_x(self, x, allow_batch)

    def _series(self, x):
        """One observation as (T, emission_dim)."""
        return self._check_x(x).reshape(self.T, self.emission_dim)

    def _check_step(self, t, first=0):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral) or not first <= t < self.T:
            raise ValueError(f"t: must be an integer time step in [{first}, {self.T - 1}], got {plain(t)}")
        return int(t)


# =========================================================================== linear-Gaussian


class LinearGaussianStateSpace(_SeriesMixin, Problem):
    r"""The linear-Gaussian state-space model (see the module docstring).

    ``transition`` A (s, s), ``emission`` C (o, s), ``transition_cov`` Q (s, s),
    ``emission_cov`` R (o, o), ``initial_mean`` m0 (s,), ``initial_cov`` P0 (s, s),
    ``T`` steps.  The covariances must be symmetric positive definite.
    """

    latent_type = "continuous"
    discrete = False

    def __init__(self, transition, emission, transition_cov, emission_cov, initial_mean, initial_cov, T):
        A = as_float_array("transition", transition, ndim=2)
        s = A.shape[0]
        if s < 1 or A.shape != (s, s):
            raise ValueError(f"transition: expected a square (s, s) matrix, got shape {A.shape}")
        C = as_float_array("emission", emission, ndim=2)
        if C.shape[0] < 1 or C.shape[1] != s:
            raise ValueError(f"emission: expected shape (o, {s}), got {C.shape}")
        o = C.shape[0]
        Q = as_float_array("transition_cov", transition_cov, shape=(s, s))
        Rm = as_float_array("emission_cov", emission_cov, shape=(o, o))
        m0 = as_float_array("initial_mean", np.atleast_1d(initial_mean), shape=(s,))
        P0 = as_float_array("initial_cov", initial_cov, shape=(s, s))
        self.T = check_count("T", T)
        self.A, self.C, self.Q, self.R, self.m0, self.P0 = A, C, Q, Rm, m0, P0
        self.LQ = cholesky_or_raise("transition_cov", Q)
        self.LR = cholesky_or_raise("emission_cov", Rm)
        self.L0 = cholesky_or_raise("initial_cov", P0)
        self.state_dim, self.emission_dim = s, o
        self.obs_dim, self.latent_dim = self.T * o, self.T * s
        self._kalman_covariances()
        self._optimal_proposal_terms()
        self._dense = {}

    # aliases with the constructor's names
    transition = property(lambda self: self.A)
    emission = property(lambda self: self.C)
    transition_cov = property(lambda self: self.Q)
    emission_cov = property(lambda self: self.R)
    initial_mean = property(lambda self: self.m0)
    initial_cov = property(lambda self: self.P0)

    def __repr__(self):
        return f"LinearGaussianStateSpace(state_dim={self.state_dim}, obs_dim={self.emission_dim}, T={self.T})"

    @classmethod
    def random(cls, state_dim, obs_dim, T, seed=0):
        r"""A random stable instance started in its stationary distribution.

        :math:`A = \rho U` with U a Haar-random orthogonal matrix and
        :math:`\rho \sim U(0.6, 0.9)` (so :math:`\|A\|_2 = \rho`, spectral radius
        :math:`\rho < 1`); C with entries :math:`N(0, 1/s)`;
        :math:`Q = \operatorname{diag}(U(0.2, 0.5))`,
        :math:`R = \operatorname{diag}(U(0.3, 0.8))`; :math:`m_0 = 0` and
        :math:`P_0` the stationary covariance, :math:`P_0 = A P_0 A^T + Q`.
        ``obs_dim`` here is the emission dimension per step (the problem's own
        ``obs_dim`` is T times it)."""
        s, o = check_count("state_dim", state_dim), check_count("obs_dim", obs_dim)
        T = check_count("T", T)
        rng = np.random.default_rng(check_seed(seed))
        G = rng.standard_normal((s, s))
        U, r = np.linalg.qr(G)
        U = U * np.sign(np.diag(r))
        rho = rng.uniform(0.6, 0.9)
        A = rho * U
        C = rng.standard_normal((o, s)) / np.sqrt(s)
        Q = np.diag(rng.uniform(0.2, 0.5, size=s))
        Rm = np.diag(rng.uniform(0.3, 0.8, size=o))
        P0 = _sym(solve_discrete_lyapunov(A, Q))
        return cls(A, C, Q, Rm, np.zeros(s), P0, T)

    # ---- data-independent Kalman quantities --------------------------------
    def _kalman_covariances(self):
        """Predicted / filtered / smoothed covariances, innovation Cholesky
        factors, Kalman and RTS gains: none depends on x."""
        T, s, o = self.T, self.state_dim, self.emission_dim
        A, C, Q, Rm = self.A, self.C, self.Q, self.R
        Pp = np.empty((T, s, s))
        Pf = np.empty((T, s, s))
        LS = np.empty((T, o, o))
        K = np.empty((T, s, o))
        I = np.eye(s)
        for t in range(T):
            Pp[t] = self.P0 if t == 0 else _sym(A @ Pf[t - 1] @ A.T + Q)
            LS[t] = _chol("emission_cov", C @ Pp[t] @ C.T + Rm)
            K[t] = cho_solve((LS[t], True), C @ Pp[t]).T  # P^- C^T S^{-1}
            IKC = I - K[t] @ C
            Pf[t] = _sym(IKC @ Pp[t] @ IKC.T + K[t] @ Rm @ K[t].T)  # Joseph form
        J = np.empty((max(T - 1, 0), s, s))
        Ps = np.empty((T, s, s))
        Ps[T - 1] = Pf[T - 1]
        for t in range(T - 2, -1, -1):
            Lp = _chol("transition_cov", Pp[t + 1])
            J[t] = cho_solve((Lp, True), A @ Pf[t]).T  # Pf A^T (P^-_{t+1})^{-1}
            Ps[t] = _sym(Pf[t] + J[t] @ (Ps[t + 1] - Pp[t + 1]) @ J[t].T)
        self._Pp, self._Pf, self._LS, self._K, self._J, self._Ps = Pp, Pf, LS, K, J, Ps
        self._log_det_S = np.sum(np.log(np.diagonal(LS, axis1=1, axis2=2)), axis=1)

    def _optimal_proposal_terms(self):
        """The locally optimal proposal's matrices (see the module docstring).

        For t >= 1: mean = G z_{t-1} + K x_t with G = (I - K C) A, covariance
        (I - K C) Q (Cholesky ``opt_chol``), weight N(x_t; H z_{t-1}, S) with
        H = C A, S = C Q C^T + R (Cholesky ``opt_LS``).  At t = 0 the
        proposal is the filter's first update: N(m_0 + K_0 (x_0 - C m_0), P^f_0)
        and weight N(x_0; C m_0, S_0)."""
        A, C, Q, Rm = self.A, self.C, self.Q, self.R
        s = self.state_dim
        LS = _chol("emission_cov", C @ Q @ C.T + Rm)
        K = cho_solve((LS, True), C @ Q).T
        IKC = np.eye(s) - K @ C
        cov = _sym(IKC @ Q @ IKC.T + K @ Rm @ K.T)
        self.opt_gain, self.opt_G, self.opt_H = K, IKC @ A, C @ A
        self.opt_chol, self.opt_LS = _chol("transition_cov", cov), LS
        self.opt_chol0 = _chol("initial_cov", self._Pf[0])
        # per-step members are called with small matrices, where a triangular
        # solve costs far more in call overhead than a product with the inverse
        o = self.emission_dim
        self._LR_inv = solve_triangular(self.LR, np.eye(o), lower=True)
        self._opt_LS_inv = solve_triangular(LS, np.eye(o), lower=True)
        self._emission_log_norm = float(-np.sum(np.log(np.diag(self.LR))) - 0.5 * o * _LOG_2PI)
        self._opt_log_norm = float(-np.sum(np.log(np.diag(LS))) - 0.5 * o * _LOG_2PI)

    # ---- filtering and smoothing means ---------------------------------------
    def _filter_means(self, Y):
        """Kalman filter over a batch Y (n, T, o): (log p(x) (n,), predicted
        means (n, T, s), filtered means (n, T, s))."""
        n = Y.shape[0]
        T, s, o = self.T, self.state_dim, self.emission_dim
        mp = np.empty((n, T, s))
        mf = np.empty((n, T, s))
        ll = np.zeros(n)
        m = np.broadcast_to(self.m0, (n, s))
        for t in range(T):
            if t > 0:
                m = mf[:, t - 1] @ self.A.T
            mp[:, t] = m
            v = Y[:, t] - m @ self.C.T
            eps = solve_triangular(self._LS[t], v.T, lower=True)
            ll += -0.5 * np.sum(eps * eps, axis=0) - self._log_det_S[t] - 0.5 * o * _LOG_2PI
            mf[:, t] = m + v @ self._K[t].T
        return ll, mp, mf

    def _log_marginal_rows(self, X):
        return self._filter_means(X.reshape(-1, self.T, self.emission_dim))[0]

    def filter_moments(self, x):
        r"""The Kalman filter at x: (log p(x), filtered means (T, s), filtered
        covariances (T, s, s)) of :math:`z_t \mid x_{0:t}`."""
        ll, _, mf = self._filter_means(self._series(x)[None])
        return float(ll[0]), mf[0], self._Pf.copy()

    def smoothing_moments(self, x):
        r"""The RTS smoother at x -- the exact posterior in banded form, for any T:
        (means (T, s), covariances (T, s, s) of :math:`z_t \mid x`, lag-one
        cross-covariances (T-1, s, s) :math:`\mathrm{Cov}(z_t, z_{t+1} \mid x)
        = J_t P^s_{t+1}`), with :math:`J_t = P^f_t A^T (P^-_{t+1})^{-1}` and
        :math:`m^s_t = m^f_t + J_t (m^s_{t+1} - m^-_{t+1})`."""
        _, mp, mf = self._filter_means(self._series(x)[None])
        mp, mf = mp[0], mf[0]
        ms = np.empty_like(mf)
        ms[-1] = mf[-1]
        for t in range(self.T - 2, -1, -1):
            ms[t] = mf[t] + self._J[t] @ (ms[t + 1] - mp[t + 1])
        cross = np.einsum("tij,tjk->tik", self._J, self._Ps[1:]) if self.T > 1 else np.empty((0,) + self._J.shape[1:])
        return ms, self._Ps.copy(), cross

    # ---- dense joint Gaussians ---------------------------------------------
    def _check_dense(self, what):
        if self.latent_dim > MAX_DENSE_DIM:
            raise ValueError(
                f"T: {what} is a dense Gaussian over T * state_dim = {self.latent_dim} > {MAX_DENSE_DIM} "
                "coordinates (too large to factorise); use smoothing_moments(x) (the banded posterior), "
                "the sequential members (estimators.smc) or a smaller T"
            )

    def prior_moments(self):
        r"""Mean (T s,) and covariance (T s, T s) of the stacked prior path:
        :math:`E z_t = A^t m_0`, :math:`P_t = A P_{t-1} A^T + Q`,
        :math:`\mathrm{Cov}(z_u, z_t) = A^{u-t} P_t` for u >= t."""
        self._check_dense("prior()")
        if "prior" not in self._dense:
            T, s, A = self.T, self.state_dim, self.A
            mean = np.empty((T, s))
            cov = np.zeros((T * s, T * s))
            P = self.P0
            mean[0] = self.m0
            for t in range(T):
                if t > 0:
                    mean[t] = A @ mean[t - 1]
                    P = _sym(A @ P @ A.T + self.Q)
                block = P
                for u in range(t, T):
                    if u > t:
                        block = A @ block
                    cov[u * s : (u + 1) * s, t * s : (t + 1) * s] = block
                    cov[t * s : (t + 1) * s, u * s : (u + 1) * s] = block.T
            self._dense["prior"] = (mean.reshape(-1), _sym(cov))
        mean, cov = self._dense["prior"]
        return mean.copy(), cov.copy()

    def posterior_cov(self):
        r"""The (T s, T s) covariance of the stacked path given x (it does not
        depend on x): diagonal blocks :math:`P^s_t`, and for t < u
        :math:`\mathrm{Cov}(z_t, z_u \mid x) = J_t \mathrm{Cov}(z_{t+1}, z_u \mid x)`."""
        self._check_dense("posterior(x)")
        if "posterior" not in self._dense:
            T, s = self.T, self.state_dim
            cov = np.zeros((T * s, T * s))
            for t in range(T - 1, -1, -1):
                cov[t * s : (t + 1) * s, t * s : (t + 1) * s] = self._Ps[t]
                for u in range(t + 1, T):
                    block = self._J[t] @ cov[(t + 1) * s : (t + 2) * s, u * s : (u + 1) * s]
                    cov[t * s : (t + 1) * s, u * s : (u + 1) * s] = block
                    cov[u * s : (u + 1) * s, t * s : (t + 1) * s] = block.T
            self._dense["posterior"] = _sym(cov)
        return self._dense["posterior"].copy()

    def prior(self):
        """p(z_{0:T-1}): the stacked prior path as a MultivariateGaussian (T s <= MAX_DENSE_DIM)."""
        if "prior_q" not in self._dense:
            self._dense["prior_q"] = MultivariateGaussian(*self.prior_moments())
        return self._dense["prior_q"]

    def posterior_mean(self, x):
        """E[z | x], stacked (T s,): the RTS smoothed means."""
        return self.smoothing_moments(x)[0].reshape(-1)

    def posterior(self, x):
        """The exact p(z_{0:T-1} | x) (RTS) as a MultivariateGaussian over the stacked path."""
        mean = self.posterior_mean(x)
        return MultivariateGaussian(mean, self.posterior_cov())

    def posterior_precision(self):
        r"""The (T s, T s) precision of z | x, block tridiagonal:
        the prior path's precision plus :math:`\operatorname{blockdiag}(C^T R^{-1} C)`.
        (The Hessian of -log p(x, z) in z.)"""
        self._check_dense("posterior_precision()")
        T, s = self.T, self.state_dim
        A = self.A
        Qi = cho_solve((self.LQ, True), np.eye(s))
        P0i = cho_solve((self.L0, True), np.eye(s))
        CRC = self.C.T @ cho_solve((self.LR, True), self.C)
        AQA = A.T @ Qi @ A
        L = np.zeros((T * s, T * s))
        for t in range(T):
            blk = (P0i if t == 0 else Qi) + CRC + (AQA if t < T - 1 else 0.0)
            L[t * s : (t + 1) * s, t * s : (t + 1) * s] = blk
            if t < T - 1:
                L[t * s : (t + 1) * s, (t + 1) * s : (t + 2) * s] = -A.T @ Qi
                L[(t + 1) * s : (t + 2) * s, t * s : (t + 1) * s] = -Qi @ A
        return _sym(L)

    # ---- densities -----------------------------------------------------------
    def _paths(self, z):
        z = as_float_array("z", z)
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected trailing dimension {self.latent_dim} (T * state_dim), got shape {z.shape}")
        lead = z.shape[:-1]
        return z.reshape(-1, self.T, self.state_dim), lead

    def log_joint(self, x, z):
        r"""log p(x, z) for one series x and stacked paths z (..., T s):
        :math:`\log N(z_0; m_0, P_0) + \sum_{t\ge1} \log N(z_t; A z_{t-1}, Q)
        + \sum_t \log N(x_t; C z_t, R)`, vectorised over the leading axes of z."""
        Y = self._series(x)
        Z, lead = self._paths(z)
        n, T, s = Z.shape
        o = self.emission_dim
        out = np.zeros(n)
        e0 = solve_triangular(self.L0, (Z[:, 0] - self.m0).T, lower=True)
        out += -0.5 * np.sum(e0 * e0, axis=0) - np.sum(np.log(np.diag(self.L0)))
        if T > 1:
            d = (Z[:, 1:] - Z[:, :-1] @ self.A.T).reshape(-1, s)
            e = solve_triangular(self.LQ, d.T, lower=True)
            out += -0.5 * np.sum((e * e).reshape(s, n, T - 1), axis=(0, 2))
            out -= (T - 1) * np.sum(np.log(np.diag(self.LQ)))
        r = (Y[None] - Z @ self.C.T).reshape(-1, o)
        f = solve_triangular(self.LR, r.T, lower=True)
        out += -0.5 * np.sum((f * f).reshape(o, n, T), axis=(0, 2)) - T * np.sum(np.log(np.diag(self.LR)))
        out -= 0.5 * T * (s + o) * _LOG_2PI
        return out.reshape(lead)

    def grad_log_joint(self, x, z):
        r""":math:`\nabla_z \log p(x, z)`, shape of z: with
        :math:`e_0 = P_0^{-1}(z_0 - m_0)`, :math:`e_t = Q^{-1}(z_t - A z_{t-1})`,
        the gradient at :math:`z_t` is :math:`-e_t + A^T e_{t+1}\,[t < T-1]
        + C^T R^{-1}(x_t - C z_t)`."""
        Y = self._series(x)
        Z, lead = self._paths(z)
        n, T, s = Z.shape
        o = self.emission_dim
        g = np.empty_like(Z)
        g[:, 0] = -cho_solve((self.L0, True), (Z[:, 0] - self.m0).T).T
        if T > 1:
            d = (Z[:, 1:] - Z[:, :-1] @ self.A.T).reshape(-1, s)
            e = cho_solve((self.LQ, True), d.T).T.reshape(n, T - 1, s)
            g[:, 1:] = -e
            g[:, :-1] += e @ self.A
        r = (Y[None] - Z @ self.C.T).reshape(-1, o)
        g += (cho_solve((self.LR, True), r.T).T @ self.C).reshape(n, T, s)
        return g.reshape(lead + (self.latent_dim,))

    # ---- sampling ------------------------------------------------------------
    def sample_joint(self, n, seed=0):
        """(z (n, T s), x (n, T o)): paths and series drawn from p(x, z)."""
        n, rng = check_count("n", n), as_generator(seed)
        T, s, o = self.T, self.state_dim, self.emission_dim
        Z = np.empty((n, T, s))
        X = np.empty((n, T, o))
        z = self.initial_sample(n, rng)
        for t in range(T):
            if t > 0:
                z = self.transition_sample(t, z, rng)
            Z[:, t] = z
            X[:, t] = z @ self.C.T + rng.standard_normal((n, o)) @ self.LR.T
        return Z.reshape(n, T * s), X.reshape(n, T * o)

    def sample(self, n, seed=0):
        """n series x ~ p(x), shape (n, T * emission_dim), time-major."""
        return self.sample_joint(n, seed)[1]

    # ---- exact variational quantities (Gaussian q over the stacked path) -----
    def elbo(self, x, q):
        r"""Exact ELBO of a Gaussian or MultivariateGaussian q = N(m, S) over the
        stacked path: log p(x, z) is quadratic in z with Hessian :math:`-\Lambda`
        (``posterior_precision``), so
        :math:`E_q \log p(x, z) = \log p(x, m) - \tfrac12 \operatorname{tr}(\Lambda S)`
        and ELBO = that + H(q)."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "elbo")
        Lam = self.posterior_precision()
        return float(self.log_joint(x, q.mean) - 0.5 * np.sum(Lam * q.cov) + q.entropy)

    def kl(self, x, q):
        r"""Exact KL(q || p(z|x)) from the posterior's moments alone:
        :math:`-H(q) + \tfrac12[d\log2\pi - \log|\Lambda| + \operatorname{tr}(\Lambda S)
        + (m-\mu)^T\Lambda(m-\mu)]`."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "kl")
        Lam = self.posterior_precision()
        L = np.linalg.cholesky(Lam)
        diff = q.mean - self.posterior_mean(x)
        log_det_lam = 2.0 * np.sum(np.log(np.diag(L)))
        cross = 0.5 * (self.latent_dim * _LOG_2PI - log_det_lam + np.sum(Lam * q.cov) + diff @ Lam @ diff)
        return float(cross - q.entropy)

    # ---- the state-space protocol -------------------------------------------
    def initial_sample(self, n, rng):
        r""":math:`z_0 \sim N(m_0, P_0)`, (n, s)."""
        rng = as_generator(rng, "rng")
        return self.m0 + rng.standard_normal((check_count("n", n), self.state_dim)) @ self.L0.T

    def transition_sample(self, t, z_prev, rng):
        r""":math:`z_t = A z_{t-1} + L_Q \varepsilon`, one row per row of z_prev."""
        self._check_step(t, first=1)
        rng = as_generator(rng, "rng")
        z_prev = np.asarray(z_prev, dtype=np.float64)
        return z_prev @ self.A.T + rng.standard_normal(z_prev.shape) @ self.LQ.T

    def emission_log_prob(self, t, z, x_t):
        r""":math:`\log N(x_t; C z_t, R)` per row of z, (n,)."""
        self._check_step(t)
        z = np.asarray(z, dtype=np.float64)
        f = (np.asarray(x_t, dtype=np.float64) - z @ self.C.T) @ self._LR_inv.T
        return self._emission_log_norm - 0.5 * np.sum(f * f, axis=1)

    def optimal_initial_sample(self, n, x_0, rng):
        r"""The locally optimal proposal at t = 0: (n draws of :math:`p(z_0 \mid x_0)
        = N(m_0 + K_0(x_0 - C m_0), P^f_0)`, :math:`\log p(x_0) = \log N(x_0; C m_0, S_0)`
        repeated n times)."""
        n, rng = check_count("n", n), as_generator(rng, "rng")
        x_0 = np.asarray(x_0, dtype=np.float64)
        v = x_0 - self.C @ self.m0
        z = self.m0 + self._K[0] @ v + rng.standard_normal((n, self.state_dim)) @ self.opt_chol0.T
        e = solve_triangular(self._LS[0], v, lower=True)
        lw = -0.5 * e @ e - self._log_det_S[0] - 0.5 * self.emission_dim * _LOG_2PI
        return z, np.full(n, lw)

    def optimal_sample(self, t, z_prev, x_t, rng):
        r"""The locally optimal proposal at t >= 1 (module docstring): returns
        (:math:`z_t \sim p(z_t \mid z_{t-1}, x_t)`, :math:`\log p(x_t \mid z_{t-1})`)."""
        self._check_step(t, first=1)
        rng = as_generator(rng, "rng")
        x_t = np.asarray(x_t, dtype=np.float64)
        z_prev = np.asarray(z_prev, dtype=np.float64)
        mean = z_prev @ self.opt_G.T + self.opt_gain @ x_t
        z = mean + rng.standard_normal(z_prev.shape) @ self.opt_chol.T
        e = (x_t - z_prev @ self.opt_H.T) @ self._opt_LS_inv.T
        return z, self._opt_log_norm - 0.5 * np.sum(e * e, axis=1)


# =========================================================================== hidden Markov


_PATH_TYPE = "categorical_path"


def _check_paths(name, z, T, S):
    z = np.asarray(z)
    if z.ndim == 0 or z.shape[-1] != T:
        raise ValueError(f"{name}: expected paths of trailing length T = {T}, got shape {z.shape}")
    z = as_category_indices(name, z, S)
    return z.reshape(-1, T), z.shape[:-1]


class MarkovChainPath:
    r"""A homogeneous Markov chain over paths z_{0:T-1} in {0..S-1}^T:
    :math:`\log q(z) = \log\pi_{z_0} + \sum_{t\ge1} \log A_{z_{t-1} z_t}`.

    A proposal over the path latent of ``HiddenMarkov`` (``latent_type``
    "categorical_path", ``dim`` T): ``sample(n, seed)`` gives int64 paths of
    shape (n, T).  ``params = concat(log pi, log A.ravel())`` (-inf for a zero
    probability); ``with_params`` normalises by softmax (rows of A).
    """

    latent_type = _PATH_TYPE
    discrete = True
    reparameterizable = False

    def __init__(self, initial, transition, T):
        self.initial = check_probabilities("initial", initial)
        if self.initial.ndim != 1:
            raise ValueError(f"initial: expected a vector of shape (S,), got {self.initial.shape}")
        S = self.initial.shape[0]
        self.transition = check_probabilities("transition", transition, axis=1)
        if self.transition.shape != (S, S):
            raise ValueError(f"transition: expected shape ({S}, {S}), got {self.transition.shape}")
        self.T = check_count("T", T)
        self.num_categories, self.dim = S, self.T
        self._cum0 = np.cumsum(self.initial)
        self._cumA = np.cumsum(self.transition, axis=1)

    def __repr__(self):
        return f"MarkovChainPath(S={self.num_categories}, T={self.T})"

    @property
    def params(self):
        with np.errstate(divide="ignore"):
            return np.concatenate([np.log(self.initial), np.log(self.transition).ravel()])

    def with_params(self, theta):
        S = self.num_categories
        theta = as_float_array("theta", theta, shape=(S + S * S,), allow_inf=True)
        if np.isposinf(theta).any():
            raise ValueError("theta: logits must be < +inf")
        a, B = theta[:S], theta[S:].reshape(S, S)
        return MarkovChainPath(np.exp(a - logsumexp(a)), np.exp(B - logsumexp(B, axis=1, keepdims=True)), self.T)

    def sample(self, n, seed=0):
        n, rng = check_count("n", n), as_generator(seed)
        S = self.num_categories
        z = np.empty((n, self.T), dtype=np.int64)
        z[:, 0] = np.minimum(np.searchsorted(self._cum0, rng.random(n) * self._cum0[-1], side="right"), S - 1)
        for t in range(1, self.T):
            cum = self._cumA[z[:, t - 1]]
            u = rng.random(n) * cum[:, -1]
            z[:, t] = np.minimum(np.sum(cum <= u[:, None], axis=1), S - 1)
        return z

    def log_prob(self, z):
        Z, lead = _check_paths("z", z, self.T, self.num_categories)
        with np.errstate(divide="ignore"):
            out = np.log(self.initial)[Z[:, 0]]
            if self.T > 1:
                out = out + np.sum(np.log(self.transition)[Z[:, :-1], Z[:, 1:]], axis=1)
        return out.reshape(lead)


class HiddenMarkovPosterior:
    r"""The exact posterior p(z_{0:T-1} | x) of a ``HiddenMarkov`` model.

    ``sample`` draws by forward filtering, backward sampling: the normalised
    forward messages :math:`\alpha_t` are kept, then
    :math:`z_{T-1} \sim \alpha_{T-1}` and
    :math:`P(z_t = j \mid z_{t+1}, x) \propto \alpha_t(j) A_{j z_{t+1}}`.
    ``log_prob(z) = log p(x, z) - log p(x)``, exact.  (No ``params``: it is a
    fixed distribution, not a family to optimise.)
    """

    latent_type = _PATH_TYPE
    discrete = True
    reparameterizable = False

    def __init__(self, problem, x):
        self.problem = problem
        self.x = problem._check_x(x)
        self.T, self.num_categories, self.dim = problem.T, problem.num_states, problem.T
        log_alpha = problem._forward(self.x.reshape(1, problem.T, problem.emission_dim))[0]
        self.log_marginal = float(logsumexp(log_alpha[-1]))
        # normalised filtering distributions P(z_t | x_{0:t})
        self.filtered = np.exp(log_alpha - logsumexp(log_alpha, axis=1, keepdims=True))

    def __repr__(self):
        return f"HiddenMarkovPosterior(S={self.num_categories}, T={self.T})"

    def sample(self, n, seed=0):
        n, rng = check_count("n", n), as_generator(seed)
        S, T = self.num_categories, self.T
        A = self.problem.transition
        z = np.empty((n, T), dtype=np.int64)
        cum = np.cumsum(self.filtered[T - 1])
        z[:, T - 1] = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), S - 1)
        for t in range(T - 2, -1, -1):
            w = self.filtered[t][None, :] * A[:, z[:, t + 1]].T  # (n, S)
            cum = np.cumsum(w, axis=1)
            u = rng.random(n) * cum[:, -1]
            z[:, t] = np.minimum(np.sum(cum <= u[:, None], axis=1), S - 1)
        return z

    def log_prob(self, z):
        return self.problem.log_joint(self.x, z) - self.log_marginal


class HiddenMarkov(_SeriesMixin, Problem):
    r"""A hidden Markov model with diagonal Gaussian emissions (module docstring).

    ``initial`` :math:`\pi` (S,), ``transition`` A (S, S) (rows sum to one),
    ``emission_means`` (S, o), ``emission_scales`` (S, o) (standard deviations),
    ``T`` steps.  The latent is the path (``latent_type`` "categorical_path",
    latent_dim T): see the module docstring for what that does and does not
    switch on.
    """

    latent_type = _PATH_TYPE
    discrete = True
    state_dim = 1

    def __init__(self, initial, transition, emission_means, emission_scales, T):
        initial = check_probabilities("initial", initial)
        if initial.ndim != 1:
            raise ValueError(f"initial: expected a vector of shape (S,), got {initial.shape}")
        S = initial.shape[0]
        transition = check_probabilities("transition", transition, axis=1)
        if transition.shape != (S, S):
            raise ValueError(f"transition: expected shape ({S}, {S}), got {transition.shape}")
        means = as_float_array("emission_means", emission_means, ndim=2)
        if means.shape[0] != S or means.shape[1] < 1:
            raise ValueError(f"emission_means: expected shape ({S}, o), got {means.shape}")
        o = means.shape[1]
        scales = as_float_array("emission_scales", emission_scales, shape=(S, o), positive=True)
        self.T = check_count("T", T)
        self.initial = initial / initial.sum()
        self.transition = transition / transition.sum(axis=1, keepdims=True)
        self.emission_means, self.emission_scales = means, scales
        self.num_states = self.num_categories = S
        self.emission_dim = o
        self.obs_dim, self.latent_dim = self.T * o, self.T
        with np.errstate(divide="ignore"):
            self.log_initial = np.log(self.initial)
            self.log_transition = np.log(self.transition)
        self._log_norm = -np.sum(np.log(scales), axis=1) - 0.5 * o * _LOG_2PI  # (S,)

    def __repr__(self):
        return f"HiddenMarkov(S={self.num_states}, obs_dim={self.emission_dim}, T={self.T})"

    @classmethod
    def random(cls, S, obs_dim, T, seed=0):
        r"""A random sticky HMM: :math:`\pi \sim \mathrm{Dirichlet}(2)`, rows of A
        :math:`\sim \mathrm{Dirichlet}(1 + 3 e_j)` (self-transition favoured),
        means :math:`N(0, 1.5^2)`, scales :math:`U(0.5, 1.2)`.  ``obs_dim`` is the
        emission dimension per step (the problem's own ``obs_dim`` is T times it)."""
        S, o, T = check_count("S", S), check_count("obs_dim", obs_dim), check_count("T", T)
        rng = np.random.default_rng(check_seed(seed))
        initial = rng.dirichlet(np.full(S, 2.0))
        A = np.stack([rng.dirichlet(1.0 + 3.0 * np.eye(S)[j]) for j in range(S)])
        means = rng.normal(0.0, 1.5, size=(S, o))
        scales = rng.uniform(0.5, 1.2, size=(S, o))
        return cls(initial, A, means, scales, T)

    # ---- emissions and the forward algorithm ----------------------------------
    def _log_emissions(self, Y):
        """log g_t(k) = log N(y_t; mu_k, diag sigma_k^2) for Y (n, T, o): (n, T, S)."""
        e = (Y[:, :, None, :] - self.emission_means) / self.emission_scales  # (n, T, S, o)
        return self._log_norm - 0.5 * np.sum(e * e, axis=-1)

    def _forward(self, Y):
        """log alpha (n, T, S), in log space."""
        g = self._log_emissions(Y)
        n = Y.shape[0]
        la = np.empty((n, self.T, self.num_states))
        la[:, 0] = self.log_initial + g[:, 0]
        for t in range(1, self.T):
            la[:, t] = logsumexp(la[:, t - 1, :, None] + self.log_transition, axis=1) + g[:, t]
        return la

    def _log_marginal_rows(self, X):
        la = self._forward(X.reshape(-1, self.T, self.emission_dim))
        return logsumexp(la[:, -1], axis=1)

    def log_joint(self, x, z):
        r""":math:`\log\pi_{z_0} + \sum_{t\ge1}\log A_{z_{t-1}z_t} + \sum_t \log g_t(z_t)`
        for integer paths z (..., T)."""
        Y = self._series(x)
        Z, lead = _check_paths("z", z, self.T, self.num_states)
        g = self._log_emissions(Y[None])[0]  # (T, S)
        out = self.log_initial[Z[:, 0]] + np.sum(g[np.arange(self.T), Z], axis=1)
        if self.T > 1:
            out = out + np.sum(self.log_transition[Z[:, :-1], Z[:, 1:]], axis=1)
        return out.reshape(lead)

    def prior(self):
        """p(z_{0:T-1}): the Markov chain (initial, transition) over paths."""
        return MarkovChainPath(self.initial, self.transition, self.T)

    def posterior(self, x):
        """The exact p(z | x): sampled by forward filtering, backward sampling."""
        return HiddenMarkovPosterior(self, x)

    def sample_joint(self, n, seed=0):
        """(z (n, T) int64, x (n, T o)) drawn from p(x, z)."""
        n, rng = check_count("n", n), as_generator(seed)
        z = self.prior().sample(n, rng)
        eps = rng.standard_normal((n, self.T, self.emission_dim))
        X = self.emission_means[z] + self.emission_scales[z] * eps
        return z, X.reshape(n, self.obs_dim)

    def sample(self, n, seed=0):
        """n series x ~ p(x), shape (n, T * emission_dim), time-major."""
        return self.sample_joint(n, seed)[1]

    # ---- the state-space protocol -------------------------------------------
    def initial_sample(self, n, rng):
        """z_0 ~ pi as int64 rows (n, 1)."""
        n, rng = check_count("n", n), as_generator(rng, "rng")
        cum = np.cumsum(self.initial)
        k = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        return np.minimum(k, self.num_states - 1).astype(np.int64)[:, None]

    def transition_sample(self, t, z_prev, rng):
        """z_t ~ A[z_{t-1}, :] per row, int64 (n, 1)."""
        self._check_step(t, first=1)
        rng = as_generator(rng, "rng")
        k = np.asarray(z_prev)[:, 0]
        cum = np.cumsum(self.transition, axis=1)[k]
        u = rng.random(k.shape[0]) * cum[:, -1]
        return np.minimum(np.sum(cum <= u[:, None], axis=1), self.num_states - 1).astype(np.int64)[:, None]

    def emission_log_prob(self, t, z, x_t):
        r""":math:`\log N(x_t; \mu_{z_t}, \operatorname{diag}\sigma_{z_t}^2)` per row, (n,)."""
        self._check_step(t)
        k = np.asarray(z)[:, 0]
        e = (np.asarray(x_t, dtype=np.float64) - self.emission_means[k]) / self.emission_scales[k]
        return self._log_norm[k] - 0.5 * np.sum(e * e, axis=1)
