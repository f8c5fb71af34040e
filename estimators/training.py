r"""Stochastic variational inference and the linear VAE, on LinearGaussian data.

The lecture's three procedures, all maximising the average ELBO
:math:`\frac1N \sum_i \mathrm{ELBO}(x_i; \theta, \phi_i)` by stochastic
gradient ascent with a chosen gradient estimator (``estimators.gradient``):

* ``encoder="per_datapoint"`` -- SVI: every x_i has its own
  :math:`\phi_i = (\mu_i, \log\sigma_i)`; each step takes ``inner_steps``
  ascent steps on the :math:`\phi_i` of a minibatch, then one step on θ;
* ``encoder="amortized"`` -- a linear encoder
  :math:`q(z \mid x) = N(A x + c, \operatorname{diag}(s^2))` shared by all
  points; by the chain rule, with :math:`g_i = \partial \mathrm{ELBO}_i / \partial \mu_i`,
  :math:`\partial/\partial A = \sum_i g_i x_i^T`, :math:`\partial/\partial c = \sum_i g_i`;
* both learn the model θ = (W, b, log σ²) of
  :math:`x \mid z \sim N(W z + b, \sigma^2 I)` jointly (a linear VAE), with
  the model gradient :math:`\frac1K\sum_k \nabla_\theta \log p_\theta(x, z_k)`
  (``estimators.model_gradient``), which needs no reparameterization.

The optimum of the exact log-likelihood over θ is probabilistic PCA
(``LinearGaussian.ppca_mle``); the ELBO equals it when q(z|x) is the exact
posterior, which a diagonal encoder can reach when W's columns are orthogonal.
Every recorded figure (``elbo_history``, ``log_likelihood_history``) is exact,
computed in closed form from the current θ and φ -- never a Monte Carlo estimate.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import subspace_angles

from problems import LinearGaussian

from ._validation import as_float_array, check_choice, check_count, check_seed, plain
from .gradients import METHODS, model_gradient
from .gradients import gradient as estimate_gradient
from .proposals import Gaussian

__all__ = [
    "LinearEncoder",
    "LinearVAEFit",
    "fit_linear_vae",
    "steps_to_reach",
    "BetaVAEOptimum",
    "beta_vae_optimum",
    "PrincipalAxes",
    "principal_axes",
    "gaussian_kl_to_standard",
]

ENCODERS = ("amortized", "per_datapoint")
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class LinearEncoder:
    """q(z | x) = N(A x + c, diag(exp(log_scale))^2)."""

    A: np.ndarray
    c: np.ndarray
    log_scale: np.ndarray

    def __call__(self, x):
        """The Gaussian q(z | x) for one x of shape (D,)."""
        return Gaussian(self.A @ x + self.c, np.exp(self.log_scale))


@dataclass
class LinearVAEFit:
    r"""What ``fit_linear_vae`` returns.

    ``model`` the fitted LinearGaussian; ``encoder`` a LinearEncoder (amortized)
    or, per datapoint, the list of fitted q_i; ``elbo_history`` and
    ``log_likelihood_history`` the exact average ELBO and log p(x) over the
    data, recorded at ``history_steps``; ``objective_history`` the exact
    average of the objective it maximised,
    :math:`\mathrm{ELBO} - (\beta - 1)\,\mathrm{KL}(q \,\|\, p(z))`.
    """

    model: object
    encoder: object
    elbo_history: np.ndarray
    log_likelihood_history: np.ndarray
    history_steps: np.ndarray
    gradient: str
    K: int
    settings: dict = field(default_factory=dict)
    #: the beta of the objective E_q[log p(x|z)] - beta KL(q || p(z)) it maximised
    beta: float = 1.0
    #: the exact average beta-objective at ``history_steps`` (equal to ``elbo_history`` at beta = 1)
    objective_history: np.ndarray | None = None

    @property
    def gap_history(self):
        """Average exact KL(q || p(z|x)) = log p(x) - ELBO, per record."""
        return self.log_likelihood_history - self.elbo_history


class _Adam:
    """Adam ascent (Kingma & Ba 2015) on a dict of arrays."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads, scale=1.0):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            m_hat = self.m[k] / (1 - self.b1**self.t)
            v_hat = self.v[k] / (1 - self.b2**self.t)
            params[k] = params[k] + scale * self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class _RowAdam:
    """Adam on arrays whose rows are independent problems (the per-datapoint
    φ_i of SVI): a step updates only the given rows, and each row keeps its own
    step count for the bias correction, so a φ_i that is not in the minibatch
    does not move (dense Adam would keep moving it with its stale momentum)."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = np.zeros(next(iter(params.values())).shape[0], dtype=np.int64)

    def step(self, params, grads, rows, scale=1.0):
        self.t[rows] += 1
        t = self.t[rows][:, None]
        for k, g in grads.items():
            g = g[rows]
            m = self.b1 * self.m[k][rows] + (1 - self.b1) * g
            v = self.b2 * self.v[k][rows] + (1 - self.b2) * g * g
            self.m[k][rows], self.v[k][rows] = m, v
            m_hat = m / (1 - self.b1**t)
            v_hat = v / (1 - self.b2**t)
            params[k][rows] = params[k][rows] + scale * self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def _model(theta):
    D = theta["b"].shape[0]
    return LinearGaussian(theta["W"], theta["b"], np.full(D, np.exp(theta["log_noise_var"][0])))


def _exact_averages(model, X, qs):
    elbo = np.mean([model.elbo(x, q) for x, q in zip(X, qs)])
    return float(elbo), float(np.mean(model.log_marginal(X)))


def gaussian_kl_to_standard(loc, scale):
    r""":math:`\mathrm{KL}(N(m, \operatorname{diag} s^2) \,\|\, N(0, I)) = \tfrac12 \sum_j (s_j^2 + m_j^2 - 1 - 2\log s_j)`,
    per row (the last axis is j); its gradient is :math:`m_j` in m and :math:`s_j^2 - 1` in log s."""
    loc, scale = np.asarray(loc, dtype=float), np.asarray(scale, dtype=float)
    return 0.5 * np.sum(scale**2 + loc**2 - 1.0 - 2.0 * np.log(scale), axis=-1)


def fit_linear_vae(
    X,
    d,
    gradient="reparam",
    steps=2000,
    seed=0,
    *,
    encoder="amortized",
    K=None,
    batch_size=32,
    learning_rate=0.02,
    inner_steps=1,
    record_every=50,
    beta=1.0,
):
    r"""Fit a linear VAE (or run SVI) on data X (n, D) with a d-dimensional latent.

    It maximises the average of the beta-weighted objective (beta-VAE; beta = 1
    is the ELBO)

    .. math::
        J_\beta(x; \theta, \phi) = \mathbb E_q[\log p_\theta(x|z)] - \beta\,\mathrm{KL}(q_\phi \,\|\, p(z))
            = \mathrm{ELBO} - (\beta - 1)\,\mathrm{KL}(q_\phi \,\|\, p(z)),

    the encoder's gradient being the chosen estimator's ELBO gradient plus
    :math:`-(\beta - 1)` times the exact gradient of the closed-form KL to
    N(0, I) (``gaussian_kl_to_standard``); the model's gradient does not
    involve the KL (the prior is fixed).  Its optimum is ``beta_vae_optimum``.

    Parameters
    ----------
    X : (n, D) data.
    d : latent dimension (< D).
    gradient : the encoder's gradient estimator, a method of
        ``estimators.gradient`` that applies to a Gaussian q ("reparam",
        "stl", "score", "score_loo", "dreg").
    steps : number of θ steps (each on one minibatch).
    seed : the seed of the initialisation, the minibatches and the estimators.
    encoder : "amortized" (a linear encoder) or "per_datapoint" (SVI).
    K : samples per gradient estimate, the same for every method so that
        methods compare at equal cost (default 4; "score_loo" needs K >= 2).
    beta : the KL weight, a positive finite number (default 1: the ELBO, with
        results bit for bit those of a fit without it).
    batch_size, learning_rate, inner_steps, record_every : SGA settings (Adam
        with the step decaying linearly to zero over ``steps``, so that the
        noisy iterates settle -- Robbins-Monro); ``inner_steps`` φ steps per
        θ step for per-datapoint SVI.  Per datapoint, each φ_i is its own
        problem: its step is not averaged over the minibatch, and its Adam
        state advances only when x_i is in the minibatch (``_RowAdam``), so the
        φ_j of the other points stay where they are.

    Raises ValueError naming the argument for bad input (X not (n, D) finite
    with n >= 2, d >= D, an unknown gradient or encoder, K below the method's
    minimum, non-positive counts or learning rate).

    Returns a ``LinearVAEFit``.
    """
    X = as_float_array("X", X, ndim=2)
    n, D = X.shape
    d = check_count("d", d)
    if d >= D:
        raise ValueError(f"d: must be smaller than the data dimension D={D}, got {d}")
    method = check_choice("gradient", gradient, METHODS)
    encoder = check_choice("encoder", encoder, ENCODERS)
    steps = check_count("steps", steps)
    seed = check_seed(seed)
    K = check_count("K", K if K is not None else 4)
    batch_size = min(check_count("batch_size", batch_size), n)
    inner_steps = check_count("inner_steps", inner_steps)
    record_every = check_count("record_every", record_every)
    if (
        isinstance(learning_rate, (bool, np.bool_))
        or not isinstance(learning_rate, numbers.Real)
        or not (np.isfinite(learning_rate) and learning_rate > 0)
    ):
        raise ValueError(f"learning_rate: must be a positive finite number, got {plain(learning_rate)}")
    if (
        isinstance(beta, (bool, np.bool_))
        or not isinstance(beta, numbers.Real)
        or not (np.isfinite(beta) and beta > 0)
    ):
        raise ValueError(f"beta: must be a positive finite number, got {beta!r}")
    beta = float(beta)
    if K < METHODS[method].min_K:
        raise ValueError(f'K: gradient "{method}" needs K >= {METHODS[method].min_K}, got {K}')
    if n < 2:
        raise ValueError(f"X: need at least 2 rows, got {n}")

    rng = np.random.default_rng(seed)
    var = float(np.mean(np.var(X, axis=0)))
    theta = {
        "W": 0.1 * rng.standard_normal((D, d)),
        "b": X.mean(axis=0),
        "log_noise_var": np.array([np.log(var)]),
    }
    theta_opt = _Adam(theta, learning_rate)
    if encoder == "amortized":
        phi = {"A": np.zeros((d, D)), "c": np.zeros(d), "log_scale": np.zeros(d)}
    else:
        phi = {"loc": np.zeros((n, d)), "log_scale": np.zeros((n, d))}
    phi_opt = _Adam(phi, learning_rate) if encoder == "amortized" else _RowAdam(phi, learning_rate)

    def q_of(i):
        if encoder == "amortized":
            return Gaussian(phi["A"] @ X[i] + phi["c"], np.exp(phi["log_scale"]))
        return Gaussian(phi["loc"][i], np.exp(phi["log_scale"][i]))

    def phi_grads(batch, model):
        grads = {k: np.zeros_like(v) for k, v in phi.items()}
        for i in batch:
            q_i = q_of(i)
            g = estimate_gradient(model, X[i], q_i, K, 1, method, seed=int(rng.integers(2**62)))[0]
            g_loc, g_log_scale = g[:d], g[d:]
            if beta != 1.0:  # - (beta - 1) d KL(q || N(0, I)), exact
                g_loc = g_loc - (beta - 1.0) * q_i.loc
                g_log_scale = g_log_scale - (beta - 1.0) * (q_i.scale**2 - 1.0)
            if encoder == "amortized":
                grads["A"] += np.outer(g_loc, X[i]) / len(batch)
                grads["c"] += g_loc / len(batch)
                grads["log_scale"] += g_log_scale / len(batch)
            else:
                # each phi_i is its own problem: its gradient is not averaged
                grads["loc"][i] += g_loc
                grads["log_scale"][i] += g_log_scale
        return grads

    history_steps, elbo_hist, ll_hist, obj_hist = [], [], [], []

    def record(step):
        model = _model(theta)
        qs = [q_of(i) for i in range(n)]
        elbo, ll = _exact_averages(model, X, qs)
        history_steps.append(step)
        elbo_hist.append(elbo)
        ll_hist.append(ll)
        if beta == 1.0:
            obj_hist.append(elbo)
        else:
            kl = float(np.mean([gaussian_kl_to_standard(q.loc, q.scale) for q in qs]))
            obj_hist.append(elbo - (beta - 1.0) * kl)

    record(0)
    for step in range(1, steps + 1):
        batch = rng.choice(n, size=batch_size, replace=False)
        model = _model(theta)
        decay = 1.0 - (step - 1) / steps
        if encoder == "amortized":
            phi_opt.step(phi, phi_grads(batch, model), decay)
        else:
            for _ in range(inner_steps):
                phi_opt.step(phi, phi_grads(batch, model), batch, decay)
        gW = np.zeros_like(theta["W"])
        gb = np.zeros_like(theta["b"])
        glv = 0.0
        for i in batch:
            g = model_gradient(model, X[i], q_of(i), K, 1, seed=int(rng.integers(2**62)))
            gW += g["W"][0]
            gb += g["b"][0]
            # psi_j = sigma^2 for every j, so d/d log sigma^2 = sigma^2 * sum_j d/d psi_j
            glv += float(np.sum(g["psi"][0])) * model.psi[0]
        theta_opt.step(
            theta,
            {"W": gW / batch_size, "b": gb / batch_size, "log_noise_var": np.array([glv / batch_size])},
            decay,
        )
        if step % record_every == 0 or step == steps:
            record(step)

    model = _model(theta)
    if encoder == "amortized":
        fitted_encoder = LinearEncoder(phi["A"].copy(), phi["c"].copy(), phi["log_scale"].copy())
    else:
        fitted_encoder = [q_of(i) for i in range(n)]
    return LinearVAEFit(
        model=model,
        encoder=fitted_encoder,
        elbo_history=np.array(elbo_hist),
        log_likelihood_history=np.array(ll_hist),
        history_steps=np.array(history_steps),
        gradient=method,
        K=K,
        settings=dict(
            encoder=encoder,
            batch_size=batch_size,
            learning_rate=learning_rate,
            inner_steps=inner_steps,
            steps=steps,
            seed=seed,
            beta=beta,
        ),
        beta=beta,
        objective_history=np.array(obj_hist),
    )


def steps_to_reach(fit, target, tolerance, which="log_likelihood"):
    r"""The first recorded step s at which the exact average log-likelihood (or,
    ``which="elbo"``, the exact average ELBO) h_s satisfies
    :math:`h_s \ge \mathrm{target} - \mathrm{tolerance}`; None if it never does.
    The answer is a multiple of the fit's ``record_every`` (or its last step)."""
    if not isinstance(fit, LinearVAEFit):
        raise ValueError(f"fit: expected a LinearVAEFit (from fit_linear_vae), got {type(fit).__name__}")
    which = check_choice("which", which, ("log_likelihood", "elbo"))
    for name, value in (("target", target), ("tolerance", tolerance)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name}: must be a finite number, got {plain(value)}")
    if tolerance < 0:
        raise ValueError(f"tolerance: must be >= 0, got {plain(tolerance)}")
    hist = fit.log_likelihood_history if which == "log_likelihood" else fit.elbo_history
    hits = np.flatnonzero(hist >= target - tolerance)
    return int(fit.history_steps[hits[0]]) if hits.size else None


# --------------------------------------------------------------------------- the beta-VAE optimum


@dataclass(frozen=True)
class BetaVAEOptimum:
    """What ``beta_vae_optimum`` returns: the optimal decoder ``model`` (a
    LinearGaussian with isotropic noise ``noise_var``), the optimal average
    objective ``objective`` (nats per point), the number of ``active`` latent
    dimensions (non-zero columns of W; the rest have collapsed), the effective
    noise ``threshold`` = beta * noise_var that an eigenvalue must exceed to be
    kept, the data's covariance ``eigenvalues`` (descending) and the decoder's
    exact average log-likelihood ``log_likelihood`` (PPCA's maximum at beta = 1)."""

    model: object
    objective: float
    active: int
    noise_var: float
    threshold: float
    beta: float
    eigenvalues: np.ndarray
    log_likelihood: float


def _data_spectrum(X):
    X = as_float_array("X", X, ndim=2)
    n, D = X.shape
    if n < 2:
        raise ValueError(f"X: need at least 2 rows, got {n}")
    mean = X.mean(axis=0)
    S = (X - mean).T @ (X - mean) / n
    lam, U = np.linalg.eigh(S)
    order = np.argsort(lam)[::-1]
    return X, mean, np.maximum(lam[order], 0.0), U[:, order]


def _check_beta(beta):
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, numbers.Real) or not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta: must be a positive finite number, got {beta!r}")
    return float(beta)


def beta_vae_optimum(X, d, beta=1.0):
    r"""The exact optimum of the linear beta-VAE's objective on data X (n, D):
    the maximum over the decoder (W (D, d), b, isotropic :math:`\sigma^2`) and a
    Gaussian encoder of :math:`\frac1n\sum_i \mathbb E_q[\log p(x_i|z)] - \beta\,\mathrm{KL}(q_i \,\|\, N(0, I))`.

    For fixed θ the best q is :math:`q \propto p(z)\,p(x|z)^{1/\beta}` (the Gibbs
    variational principle), a Gaussian with covariance
    :math:`(I + W^TW/v)^{-1}`, :math:`v = \beta\sigma^2`, and mean linear in x
    (diagonal when W's columns are orthogonal, as they can be chosen at the
    optimum: a diagonal amortized linear encoder reaches it), with value

    .. math::
        \beta \log N(x; b, WW^T + vI) + \tfrac{\beta D}2 \log(2\pi v) - \tfrac D2 \log(2\pi\sigma^2).

    The first term is probabilistic PCA at the fixed noise v (Tipping & Bishop):
    :math:`b = \bar x`, :math:`W = U_k(\Lambda_k - vI)^{1/2}` over the k <= d
    eigenvalues of the data covariance (1/n, descending :math:`\lambda_j`) that
    exceed v, the other columns zero (collapsed).  Setting the derivative in
    :math:`\log v` to zero gives, for k active dimensions,
    :math:`\sigma^2 = T_k / (D - \beta k)`, :math:`T_k = \sum_{j > k}\lambda_j`,
    self-consistent when :math:`\lambda_k > \beta\sigma^2 \ge \lambda_{k+1}`;
    the optimum is the best self-consistent k.  beta = 1 gives PPCA's maximum
    likelihood (``LinearGaussian.ppca_mle``), every dimension active; beta > 1
    raises the threshold and collapses the dimensions whose eigenvalue is
    below :math:`\beta\sigma^2`.  Returns a ``BetaVAEOptimum``.
    """
    X, mean, lam, U = _data_spectrum(X)
    n, D = X.shape
    d = check_count("d", d)
    if d >= D:
        raise ValueError(f"d: must be smaller than the data dimension D={D}, got {d}")
    beta = _check_beta(beta)
    best = None
    for k in range(d + 1):
        if D - beta * k <= 0:
            continue
        T = float(np.sum(lam[k:]))
        if T <= 0:
            continue
        sigma2 = T / (D - beta * k)
        v = beta * sigma2
        if (k > 0 and not lam[k - 1] > v) or (k < d and lam[k] > v):
            continue
        ell = -0.5 * D * _LOG_2PI - 0.5 * (np.sum(np.log(lam[:k]) + 1.0) + (D - k) * np.log(v) + T / v)
        value = beta * ell + 0.5 * beta * D * np.log(2 * np.pi * v) - 0.5 * D * np.log(2 * np.pi * sigma2)
        if best is None or value > best[0]:
            best = (float(value), k, sigma2, v)
    if best is None:
        raise ValueError(
            f"beta: no finite optimum for beta = {beta} with d = {d}, D = {D} (the data covariance is degenerate)"
        )
    value, k, sigma2, v = best
    W = np.zeros((D, d))
    W[:, :k] = U[:, :k] * np.sqrt(lam[:k] - v)
    model = LinearGaussian(W, mean, np.full(D, sigma2))
    return BetaVAEOptimum(
        model=model,
        objective=value,
        active=k,
        noise_var=sigma2,
        threshold=v,
        beta=beta,
        eigenvalues=lam,
        log_likelihood=float(np.mean(model.log_marginal(X))),
    )


# --------------------------------------------------------------------------- principal axes and collapse


@dataclass(frozen=True)
class PrincipalAxes:
    """What ``principal_axes`` returns (angles in radians).

    ``eigenvalues`` (D,) of the data covariance, descending; ``threshold`` =
    beta * sigma^2 of the decoder; ``expected_active`` the number of the first d
    eigenvalues above it; ``column_norms`` (d,) of W; ``matched`` (d,) the index
    of the eigenvector closest to each column; ``column_angles`` (d,) the angle
    between each column and that eigenvector (NaN for a zero column);
    ``optimal_norms`` (d,) what each column's norm is at the optimum,
    sqrt(max(lambda_matched - threshold, 0)) for the active columns and 0 for
    the collapsed ones; ``subspace_angles`` the principal
    angles between the span of the ``expected_active`` largest columns and the
    top eigenvectors (``scipy.linalg.subspace_angles``, largest first);
    ``active_columns`` the indices of those columns; ``kl_per_dim`` (d,) the
    average over the data of KL(q_j(z_j | x) || N(0, 1)) per latent dimension
    (None without an encoder): about 0 where a dimension has collapsed to the prior."""

    eigenvalues: np.ndarray
    threshold: float
    expected_active: int
    column_norms: np.ndarray
    matched: np.ndarray
    column_angles: np.ndarray
    optimal_norms: np.ndarray
    subspace_angles: np.ndarray
    active_columns: np.ndarray
    kl_per_dim: np.ndarray | None

    @property
    def collapsed_columns(self):
        """The indices of the columns beyond ``expected_active`` (the smallest norms)."""
        return np.setdiff1d(np.arange(self.column_norms.size), self.active_columns)


def principal_axes(fit, X, beta=None):
    r"""How the decoder's columns line up with the principal components of X
    (Rolinek et al. 2019; Lucas et al. 2019), and which latent dimensions collapsed.

    ``fit`` is a ``LinearVAEFit`` (its model, encoder and beta), a
    ``BetaVAEOptimum`` or a LinearGaussian with isotropic noise (no encoder).
    At the optimum of the linear (beta-)VAE with a diagonal Gaussian encoder,
    :math:`W = U_k(\Lambda_k - \beta\sigma^2 I)^{1/2} P` with P a signed
    permutation: each non-zero column is one eigenvector of the data covariance
    (a diagonal posterior needs orthogonal columns, which fixes the rotation PPCA
    leaves free), and a dimension whose eigenvalue is below
    :math:`\beta\sigma^2` has a zero column and :math:`q_j = N(0, 1)`.  This
    measures all of that: per column, the angle
    :math:`\arccos(|u_i^T w_j| / \|w_j\|)` to its closest eigenvector u_i, the
    norm beside :math:`\sqrt{\max(\lambda_i - \beta\sigma^2, 0)}`; the principal
    angles between the active columns' span and the top eigenvectors; and per
    latent dimension the average :math:`\mathrm{KL}(q_j \,\|\, N(0,1)) =
    \tfrac12(m_j^2 + s_j^2 - 1 - 2\log s_j)`.  Returns a ``PrincipalAxes``.
    """
    encoder = None
    if isinstance(fit, LinearVAEFit):
        model, encoder, fit_beta = fit.model, fit.encoder, fit.beta
    elif isinstance(fit, BetaVAEOptimum):
        model, fit_beta = fit.model, fit.beta
    elif isinstance(fit, LinearGaussian):
        model, fit_beta = fit, 1.0
    else:
        raise ValueError(
            f"fit: expected a LinearVAEFit, a BetaVAEOptimum or a LinearGaussian, got {type(fit).__name__}"
        )
    beta = fit_beta if beta is None else _check_beta(beta)
    if not np.allclose(model.psi, model.psi[0], rtol=1e-12, atol=0):
        raise ValueError("fit: principal axes need a decoder with isotropic noise (psi all equal)")
    X, _, lam, U = _data_spectrum(X)
    if X.shape[1] != model.obs_dim:
        raise ValueError(f"X: expected {model.obs_dim} columns (the model's D), got {X.shape[1]}")
    W = model.W
    d = W.shape[1]
    threshold = float(beta * model.psi[0])
    expected = int(np.sum(lam[:d] > threshold))
    norms = np.linalg.norm(W, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.abs(U.T @ W) / norms  # (D, d)
    matched = np.where(norms > 0, np.argmax(np.nan_to_num(cosines, nan=-1.0), axis=0), -1)
    angles = np.full(d, np.nan)
    ok = norms > 0
    angles[ok] = np.arccos(np.clip(cosines[matched[ok], np.flatnonzero(ok)], 0.0, 1.0))
    active = np.sort(np.argsort(norms)[::-1][:expected])
    optimal = np.zeros(d)
    optimal[active] = np.sqrt(np.maximum(lam[matched[active]] - threshold, 0.0))
    sub = subspace_angles(W[:, active], U[:, :expected]) if expected > 0 else np.zeros(0)
    kl = None
    if encoder is not None:
        if isinstance(encoder, LinearEncoder):
            locs = X @ encoder.A.T + encoder.c
            scales = np.broadcast_to(np.exp(encoder.log_scale), locs.shape)
        else:
            locs = np.array([q.loc for q in encoder])
            scales = np.array([q.scale for q in encoder])
        kl = np.mean(0.5 * (scales**2 + locs**2 - 1.0 - 2.0 * np.log(scales)), axis=0)
    return PrincipalAxes(
        eigenvalues=lam,
        threshold=threshold,
        expected_active=expected,
        column_norms=norms,
        matched=matched,
        column_angles=angles,
        optimal_norms=optimal,
        subspace_angles=np.asarray(sub),
        active_columns=active,
        kl_per_dim=kl,
    )
