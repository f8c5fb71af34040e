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

from problems import LinearGaussian

from ._validation import as_float_array, check_choice, check_count, check_seed, plain
from .gradients import METHODS, model_gradient
from .gradients import gradient as estimate_gradient
from .proposals import Gaussian

__all__ = ["LinearEncoder", "LinearVAEFit", "fit_linear_vae", "steps_to_reach"]

ENCODERS = ("amortized", "per_datapoint")


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
    """What ``fit_linear_vae`` returns.

    ``model`` the fitted LinearGaussian; ``encoder`` a LinearEncoder (amortized)
    or, per datapoint, the list of fitted q_i; ``elbo_history`` and
    ``log_likelihood_history`` the exact average ELBO and log p(x) over the
    data, recorded at ``history_steps``.
    """

    model: object
    encoder: object
    elbo_history: np.ndarray
    log_likelihood_history: np.ndarray
    history_steps: np.ndarray
    gradient: str
    K: int
    settings: dict = field(default_factory=dict)

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
):
    r"""Fit a linear VAE (or run SVI) on data X (n, D) with a d-dimensional latent.

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
            g = estimate_gradient(model, X[i], q_of(i), K, 1, method, seed=int(rng.integers(2**62)))[0]
            g_loc, g_log_scale = g[:d], g[d:]
            if encoder == "amortized":
                grads["A"] += np.outer(g_loc, X[i]) / len(batch)
                grads["c"] += g_loc / len(batch)
                grads["log_scale"] += g_log_scale / len(batch)
            else:
                # each phi_i is its own problem: its gradient is not averaged
                grads["loc"][i] += g_loc
                grads["log_scale"][i] += g_log_scale
        return grads

    history_steps, elbo_hist, ll_hist = [], [], []

    def record(step):
        model = _model(theta)
        elbo, ll = _exact_averages(model, X, [q_of(i) for i in range(n)])
        history_steps.append(step)
        elbo_hist.append(elbo)
        ll_hist.append(ll)

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
        ),
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
