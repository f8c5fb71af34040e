r"""Annealed importance sampling (Neal 2001) and its reverse, the stochastic
upper bound of bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015).

The geometric path from the prior to the posterior, with inverse temperatures
:math:`0 = \beta_0 < \beta_1 < \dots < \beta_S = 1` (S = ``steps``):

.. math::
    f_\beta(z) = p(z)^{1-\beta}\, p(x, z)^{\beta} = p(z)\, L(z)^{\beta},
    \qquad L(z) = p(x \mid z) = p(x, z) / p(z).

Forward: :math:`z_0 \sim p(z)`; for k = 1..S, :math:`\log w \mathrel{+}=
(\beta_k - \beta_{k-1}) \log L(z_{k-1})`, then (for k < S) one MCMC transition
:math:`z_k \sim T_k(z_{k-1}, \cdot)` that leaves :math:`f_{\beta_k}` invariant.
:math:`E[w] = p(x)` exactly, whatever the kernel mixes like; the estimate is
:math:`\log \hat p(x) = \log \frac1K \sum_k w_k` over K chains, a stochastic
lower bound (:math:`E \log \hat p \le \log p(x)`).

Reverse (``reverse=True``): :math:`z_S \sim p(z \mid x)` exactly
(``p.posterior(x).sample``); for k = S..1, :math:`\log w \mathrel{+}=
(\beta_{k-1} - \beta_k) \log L(z_k)`, then (for k > 1) a transition leaving
:math:`f_{\beta_{k-1}}` invariant.  Now :math:`E[w] = 1/p(x)`, and the
returned :math:`-\log \frac1K \sum_k w_k` is a stochastic *upper* bound on
log p(x).  The gap between the two bounds, averaged, bounds the divergence of
the forward chain's distribution from the posterior and closes as S grows.

Kernels (one transition per intermediate temperature):

* ``"hmc"`` -- Hamiltonian Monte Carlo, identity mass, ``leapfrog_steps``
  leapfrog steps of size ``step_size`` on
  :math:`\nabla \log f_\beta = (1-\beta)\nabla\log p(z) + \beta\nabla_z\log p(x,z)`;
  needs ``p.grad_log_joint`` and the prior's ``grad_z_log_prob``;
* ``"mh"`` -- random-walk Metropolis, :math:`z' = z + \text{step\_size}\cdot\varepsilon`;
* ``"independence"`` -- Metropolis with prior proposals, acceptance
  :math:`\min(1, (L(z')/L(z))^\beta)`: needs nothing but the prior sampler, so
  it also serves categorical and binary latents.

``schedule``: ``"geometric"`` (:math:`\beta_k = 10^{-4(1 - k/S)}` for k >= 1),
``"linear"`` (:math:`k/S`), ``"sigmoid"`` (Grosse et al.: :math:`\sigma(4(2k/S - 1))`
rescaled to [0, 1]), or an explicit increasing array of S + 1 values from 0 to 1.

Layout and reproducibility: the K chains of replicate r are cut into units
(r, c) of at most ``CHAIN_CHUNK`` chains; unit (r, c) draws everything
(initial states, momenta, proposals, acceptance uniforms) from its own
``Generator(PCG64(SeedSequence(key, spawn_key=(r, c))))``.  Units are advanced
together in batches of about ``BATCH_CHAINS`` chains (NumPy, vectorised, the
user's ``log_joint`` called once per batch and step), so memory is flat in K,
and each unit's log-sum-exp is combined per replicate in chunk order: the
same seed gives the same numbers whatever R or the batching.  Not compiled:
a user's ``log_joint`` is vectorised NumPy, which this calls directly.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import expit, logsumexp

from ._generic import _call, _rows, _vector, check_problem, check_x, q_view
from ._validation import as_float_array, check_choice, check_count
from .weights import seed_key

__all__ = ["ais", "check_ais", "KERNELS", "SCHEDULES", "annealing_schedule"]

KERNELS = ("hmc", "mh", "independence")
SCHEDULES = ("geometric", "linear", "sigmoid")
CHAIN_CHUNK = 4096
BATCH_CHAINS = 16384
DEFAULT_STEP_SIZE = {"hmc": 0.1, "mh": 0.5, "independence": None}


def annealing_schedule(schedule, steps):
    r"""The S + 1 inverse temperatures :math:`0 = \beta_0 < \dots < \beta_S = 1` (module docstring)."""
    S = check_count("steps", steps)
    if isinstance(schedule, str):
        check_choice("schedule", schedule, SCHEDULES)
        k = np.arange(S + 1) / S
        if schedule == "linear":
            b = k
        elif schedule == "geometric":
            b = 10.0 ** (-4.0 * (1.0 - k))
        else:
            b = expit(4.0 * (2.0 * k - 1.0))
            b = (b - b[0]) / (b[-1] - b[0])
        b[0], b[-1] = 0.0, 1.0
        return b
    b = as_float_array("schedule", schedule, ndim=1)
    if b.shape != (S + 1,):
        raise ValueError(f"schedule: expected steps + 1 = {S + 1} inverse temperatures, got shape {b.shape}")
    if b[0] != 0.0 or b[-1] != 1.0 or np.any(np.diff(b) < 0):
        raise ValueError("schedule: must be non-decreasing from exactly 0 to exactly 1")
    return b.copy()


class _Target:
    """log p(z), log p(x, z) and their gradients, checked, for a batch of chains."""

    def __init__(self, p, x, prior, need_grad):
        self.p, self.x, self.prior, self.need_grad = p, x, prior, need_grad

    def values(self, z):
        n = z.shape[0]
        lp = _vector("p.prior().log_prob", _call("p.prior().log_prob", self.prior.log_prob, q_view(self.p, z)), n)
        lj = _vector("p.log_joint", _call("p.log_joint", self.p.log_joint, self.x, z), n)
        return lp, lj

    def grads(self, z):
        n, d = z.shape
        gp = np.asarray(_call("p.prior().grad_z_log_prob", self.prior.grad_z_log_prob, z), dtype=np.float64)
        gj = np.asarray(_call("p.grad_log_joint", self.p.grad_log_joint, self.x, z), dtype=np.float64)
        for name, g in (("p.prior().grad_z_log_prob", gp), ("p.grad_log_joint", gj)):
            if g.shape != (n, d):
                raise ValueError(f"{name}: returned shape {g.shape}, expected ({n}, {d})")
        return gp, gj


def _log_lik(lp, lj):
    """log L = log p(x, z) - log p(z); -inf where p(x, z) = 0 (also where both are -inf)."""
    with np.errstate(invalid="ignore"):
        out = lj - lp
    return np.where(np.isneginf(lj), -np.inf, out)


def _scaled(beta, ll):
    """beta * log L with 0 * (-inf) = 0 (the prior end of the path)."""
    if beta == 0.0:
        return np.zeros_like(ll)
    return beta * ll


class _Batch:
    """Chains of consecutive units, advanced together; each unit draws from its own Generator."""

    def __init__(self, units, key):
        self.units = units  # [(r, c, n)]
        self.rngs = [np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(key), spawn_key=(r, c))))
                     for r, c, _ in units]
        self.sizes = [n for _, _, n in units]
        self.n = sum(self.sizes)

    def normal(self, d):
        return np.concatenate([g.standard_normal((n, d)) for g, n in zip(self.rngs, self.sizes)])

    def uniform(self):
        return np.concatenate([g.random(n) for g, n in zip(self.rngs, self.sizes)])

    def sample(self, p, q, who):
        return np.concatenate([_rows(p, _call(who, q.sample, n, g), n, who) for g, n in zip(self.rngs, self.sizes)])


def _accept(log_alpha, u):
    with np.errstate(invalid="ignore"):
        return np.log(u) < np.where(np.isnan(log_alpha), -np.inf, log_alpha)


def _transition(kind, batch, target, state, beta, step_size, leapfrog_steps, p):
    """One MCMC transition leaving f_beta invariant; returns (state, accepted mask)."""
    z, lp, lj, gp, gj = state
    ll = _log_lik(lp, lj)
    log_f = lp + _scaled(beta, ll)
    if kind == "independence":
        z1 = batch.sample(p, target.prior, "p.prior().sample")
        lp1, lj1 = target.values(z1)
        with np.errstate(invalid="ignore"):
            log_alpha = _scaled(beta, _log_lik(lp1, lj1)) - _scaled(beta, ll)
        gp1 = gj1 = None
    elif kind == "mh":
        z1 = z + step_size * batch.normal(z.shape[1])
        lp1, lj1 = target.values(z1)
        with np.errstate(invalid="ignore"):
            log_alpha = (lp1 + _scaled(beta, _log_lik(lp1, lj1))) - log_f
        gp1 = gj1 = None
    else:  # hmc
        m0 = batch.normal(z.shape[1])
        m = m0 + 0.5 * step_size * ((1.0 - beta) * gp + beta * gj)
        z1 = z.copy()
        diverged = np.zeros(z.shape[0], dtype=bool)
        for step in range(leapfrog_steps):
            with np.errstate(over="ignore", invalid="ignore"):
                z1 = z1 + step_size * m
            # a trajectory that overflows is rejected; its rows are parked at z so that
            # the user's functions only ever see finite points
            diverged |= ~np.all(np.isfinite(z1), axis=1)
            z1[diverged], m[diverged] = z[diverged], 0.0
            gp1, gj1 = target.grads(z1)
            with np.errstate(over="ignore", invalid="ignore"):
                g1 = (1.0 - beta) * gp1 + beta * gj1
            diverged |= ~np.all(np.isfinite(g1), axis=1)
            g1[diverged], gp1[diverged], gj1[diverged] = 0.0, gp[diverged], gj[diverged]
            with np.errstate(over="ignore", invalid="ignore"):
                m = m + (step_size if step < leapfrog_steps - 1 else 0.5 * step_size) * g1
        lp1, lj1 = target.values(z1)
        with np.errstate(over="ignore", invalid="ignore"):
            log_f1 = lp1 + _scaled(beta, _log_lik(lp1, lj1))
            log_alpha = (log_f1 - 0.5 * np.sum(m * m, axis=1)) - (log_f - 0.5 * np.sum(m0 * m0, axis=1))
        log_alpha[diverged] = -np.inf
    acc = _accept(log_alpha, batch.uniform())
    z = np.where(acc[:, None], z1, z)
    lp, lj = np.where(acc, lp1, lp), np.where(acc, lj1, lj)
    if kind == "hmc":
        gp, gj = np.where(acc[:, None], gp1, gp), np.where(acc[:, None], gj1, gj)
    return (z, lp, lj, gp, gj), acc


def _check_options(p, kernel, reverse, step_size, leapfrog_steps):
    kernel = check_choice("kernel", kernel, KERNELS)
    if not isinstance(reverse, (bool, np.bool_)):
        raise ValueError(f"reverse: must be True or False, got {reverse!r}")
    latent_type = getattr(p, "latent_type", "continuous")
    if kernel in ("hmc", "mh") and latent_type != "continuous":
        raise ValueError(
            f'kernel: "{kernel}" moves a continuous latent, but {type(p).__name__} has a {latent_type} one; '
            'use kernel="independence"'
        )
    if kernel == "hmc":
        if not hasattr(p, "grad_log_joint"):
            raise ValueError(
                f'p.grad_log_joint: missing; kernel "hmc" needs the gradient of log p(x, z) in z, and '
                f'{type(p).__name__} does not define it; use kernel="mh" (or "independence")'
            )
    if step_size is None:
        step_size = DEFAULT_STEP_SIZE[kernel]
    elif kernel != "independence":
        if isinstance(step_size, (bool, np.bool_)) or not isinstance(step_size, numbers.Real) or not (
            np.isfinite(step_size) and step_size > 0
        ):
            raise ValueError(f"step_size: must be a finite number > 0, got {step_size!r}")
        step_size = float(step_size)
    leapfrog_steps = check_count("leapfrog_steps", leapfrog_steps)
    if reverse and not hasattr(p, "posterior"):
        raise ValueError(
            f"p.posterior: missing; reverse=True (the BDMC upper bound) starts from exact posterior draws, "
            f"and {type(p).__name__} has no exact posterior sampler"
        )
    return kernel, bool(reverse), step_size, leapfrog_steps


def ais(p, x, K, R, steps, seed=0, kernel="hmc", schedule="geometric", reverse=False, *, step_size=None,
        leapfrog_steps=10):
    r"""(R,) replicate estimates of log p(x) by annealed importance sampling with
    K chains and ``steps`` temperatures (module docstring); with
    ``reverse=True``, (R,) stochastic upper bounds on log p(x) (BDMC).

    ``step_size`` defaults to 0.1 for "hmc" (with ``leapfrog_steps`` = 10)
    and 0.5 for "mh"; the estimate is unbiased in p(x) for any value, which
    only changes its variance.
    """
    return _ais(p, x, K, R, steps, seed, kernel, schedule, reverse, step_size, leapfrog_steps)[0]


def check_ais(p, x, K, R=1, steps=1, seed=0, kernel="hmc", schedule="geometric", reverse=False, *, step_size=None,
              leapfrog_steps=10):
    """Raise the ValueError ``ais`` would raise for these arguments (no
    ``grad_log_joint`` for "hmc", a discrete latent for "hmc"/"mh", no exact
    posterior sampler for ``reverse=True``, ...), without running a chain;
    None when it accepts them.  ``reverse=True`` builds ``p.posterior(x)``
    (a problem may refuse it, e.g. one too large to factorise).  The harness
    skips such a cell with this message."""
    _prepare(p, x, K, R, steps, seed, kernel, schedule, reverse, step_size, leapfrog_steps)


def _prepare(p, x, K, R, steps, seed, kernel, schedule, reverse, step_size, leapfrog_steps):
    """The checked arguments of a call, the prior and the chains' start distribution."""
    p = check_problem(p)
    x = check_x(p, x)
    K, R = check_count("K", K), check_count("R", R)
    betas = annealing_schedule(schedule, steps)
    key = seed_key(seed)
    kernel, reverse, step_size, leapfrog_steps = _check_options(p, kernel, reverse, step_size, leapfrog_steps)
    prior = _call("p.prior", p.prior)
    if kernel == "hmc" and not hasattr(prior, "grad_z_log_prob"):
        raise ValueError(
            f'p.prior().grad_z_log_prob: missing; kernel "hmc" needs the gradient of log p(z), and '
            f'{type(prior).__name__} does not define it; use kernel="mh"'
        )
    start = _call("p.posterior", p.posterior, x) if reverse else prior
    return p, x, K, R, betas, key, kernel, reverse, step_size, leapfrog_steps, prior, start


def _ais(p, x, K, R, steps, seed=0, kernel="hmc", schedule="geometric", reverse=False, step_size=None,
         leapfrog_steps=10):
    """((R,) estimates, (R,) mean acceptance rate of each replicate's transitions)."""
    p, x, K, R, betas, key, kernel, reverse, step_size, leapfrog_steps, prior, start = _prepare(
        p, x, K, R, steps, seed, kernel, schedule, reverse, step_size, leapfrog_steps)
    target = _Target(p, x, prior, kernel == "hmc")
    n_chunks = (K + CHAIN_CHUNK - 1) // CHAIN_CHUNK
    units = [(r, c, min(K, (c + 1) * CHAIN_CHUNK) - c * CHAIN_CHUNK) for r in range(R) for c in range(n_chunks)]
    parts = np.empty(len(units))
    accepted = np.zeros(R)
    S = len(betas) - 1
    i = 0
    while i < len(units):
        j, n = i, 0
        while j < len(units) and (n == 0 or n + units[j][2] <= BATCH_CHAINS):
            n += units[j][2]
            j += 1
        batch = _Batch(units[i:j], key)
        who = "p.posterior(x).sample" if reverse else "p.prior().sample"
        z = batch.sample(p, start, who)
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{who}: returned non-finite draws")
        lp, lj = target.values(z)
        gp, gj = target.grads(z) if kernel == "hmc" else (None, None)
        state = (z, lp, lj, gp, gj)
        lw = np.zeros(batch.n)
        acc_count = np.zeros(batch.n)
        order = range(1, S + 1) if not reverse else range(S, 0, -1)
        for k in order:
            ll = _log_lik(state[1], state[2])
            lo, hi = (betas[k - 1], betas[k])
            if hi > lo:
                with np.errstate(invalid="ignore"):
                    lw = lw + (hi - lo) * ll if not reverse else lw - (hi - lo) * ll
            beta_next = betas[k] if not reverse else betas[k - 1]
            if (not reverse and k < S) or (reverse and k > 1):
                state, acc = _transition(kernel, batch, target, state, beta_next, step_size, leapfrog_steps, p)
                acc_count += acc
        lw = np.where(np.isnan(lw), -np.inf, lw)
        offset = 0
        for u, (r, c, m) in enumerate(batch.units):
            with np.errstate(divide="ignore"):
                parts[i + u] = logsumexp(lw[offset : offset + m])
            accepted[r] += acc_count[offset : offset + m].sum()
            offset += m
        i = j
    log_sum = np.array([np.logaddexp.reduce(parts[r * n_chunks : (r + 1) * n_chunks]) for r in range(R)])
    log_mean = log_sum - np.log(K)
    transitions = max(S - 1, 1) * K
    return (-log_mean if reverse else log_mean), accepted / transitions
