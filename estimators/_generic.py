r"""The generic path: every estimator on any problem and any proposal.

A problem without a registered compiled kernel (a user's model, or a built-in
problem with a proposal its kernel does not cover) runs here.  The work is
laid out exactly as in the compiled drivers:

* the R x K samples are cut into units (replicate r, chunk c) of at most
  ``CHUNK`` draws, visited in a fixed order;
* unit (r, c) draws from its own stream, keyed by the call's
  ``SeedSequence(seed)`` key and (r, c): a built-in Gaussian,
  MultivariateGaussian or Uniform q takes its base draws from the compiled
  kernels' own xoshiro256** stream (so both paths see the same z); any other
  q gets ``numpy.random.Generator(PCG64(SeedSequence(key, spawn_key=(r, c))))``
  and is sampled through its ``sample_noise``/``transform`` when it has them,
  else its ``sample``;
* the user's vectorised ``log_joint`` is called once per unit, and the unit's
  log-weights are folded by the compiled reductions, BLOCK by BLOCK, and the
  units combined per replicate in chunk order.

So memory is flat in K (one unit at a time), and the numbers depend only on
the seed: bit-identical for any NUMBA_NUM_THREADS (nothing here is threaded)
and any executor.

A problem that offers ``compiled_log_joint`` (a numba ``@njit`` function of
one sample) runs importance sampling and the ELBO in the compiled parallel
driver ``_kernels.user_driver`` instead, for the affine built-in proposals.
"""

from __future__ import annotations

import numba
import numpy as np

from problems.base import LATENT_TYPES, describe_latent

from ._kernels import generic as gk
from ._kernels import gradient_driver as gd
from ._kernels import user_driver
from ._kernels.diagnostics import user as diagnostics_user
from ._kernels.driver import CHUNK, combine_replicates, use_serial
from ._validation import as_float_array
from .proposals import Gaussian, MultivariateGaussian, Uniform

__all__ = [
    "check_problem",
    "check_x",
    "check_proposal",
    "weight_sums",
    "weight_sums_top",
    "replicate_log_weights",
    "unit_log_weights",
    "user_compiled",
    "gradient_support",
    "GenericGradient",
]

_AFFINE = (Gaussian, MultivariateGaussian, Uniform)
_PATHWISE_MEMBERS = ("sample_noise", "transform", "transform_vjp", "grad_z_log_prob")


# --------------------------------------------------------------------------- validation


def check_problem(p):
    """p follows the problem protocol (``problems.Problem``), or a ValueError naming the member."""
    if not any(hasattr(p, m) for m in ("obs_dim", "latent_dim", "log_joint")):
        raise ValueError(
            "p: expected a problem (an object with obs_dim, latent_dim, latent_type and a vectorised "
            f"log_joint(x, z); see problems.Problem), got {type(p).__name__}"
        )
    for member in ("obs_dim", "latent_dim", "log_joint"):
        if not hasattr(p, member):
            raise ValueError(
                f"p.{member}: missing; a problem needs obs_dim, latent_dim, latent_type and a vectorised "
                f"log_joint(x, z) (see problems.Problem), got {type(p).__name__}"
            )
    for member in ("obs_dim", "latent_dim"):
        value = getattr(p, member)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"p.{member}: must be a positive integer, got {value!r}")
    latent_type = getattr(p, "latent_type", "continuous")
    if latent_type not in LATENT_TYPES:
        raise ValueError(f"p.latent_type: must be one of {list(LATENT_TYPES)}, got {latent_type!r}")
    if latent_type == "categorical" and p.latent_dim != 1:
        raise ValueError(f"p.latent_dim: a categorical latent has latent_dim 1, got {p.latent_dim}")
    if not callable(p.log_joint):
        raise ValueError("p.log_joint: must be callable as log_joint(x, z)")
    return p


def check_x(p, x):
    """One observation of shape (D,): the problem's own check when it has one."""
    own = getattr(p, "_check_x", None)
    if own is not None:
        return own(x)
    return as_float_array("x", x, shape=(p.obs_dim,))


#: the built-in proposals for each latent type, named when q's type does not match p's
_PROPOSALS_FOR = {
    "continuous": "Gaussian or MultivariateGaussian (or MixtureOfGaussians, Uniform)",
    "categorical": "Categorical",
    "binary": "Bernoulli or BernoulliMixture",
}


def check_proposal(p, q):
    """q follows the proposal protocol and is a distribution over p's latent."""
    if not any(hasattr(q, m) for m in ("dim", "sample", "log_prob")):
        raise ValueError(
            "q: expected a proposal (an object with dim, sample(n, seed) and log_prob(z); see "
            f"estimators.Proposal), got {type(q).__name__}"
        )
    for member in ("dim", "sample", "log_prob"):
        if not hasattr(q, member):
            raise ValueError(
                f"q.{member}: missing; a proposal needs dim, sample(n, seed) and log_prob(z) "
                f"(see estimators.Proposal), got {type(q).__name__}"
            )
    kind = getattr(q, "latent_type", "continuous")
    want = getattr(p, "latent_type", "continuous")
    if kind != want:
        use = _PROPOSALS_FOR.get(want)
        raise ValueError(
            f"q: a {type(q).__name__} proposal is for a {kind} latent; {type(p).__name__}'s latent is "
            f"{describe_latent(p).removeprefix('a ').replace(' latent ', ' ', 1)}" + (f": use {use}" if use else "")
        )
    if q.dim != p.latent_dim:
        raise ValueError(f"q: has dimension {q.dim}, but {type(p).__name__} has {describe_latent(p)}")
    C_q, C_p = getattr(q, "num_categories", None), getattr(p, "num_categories", None)
    if C_q is not None and C_p is not None and C_q != C_p:
        raise ValueError(f"q: has {C_q} categories, but {type(p).__name__}'s latent takes {C_p} values")
    return q


# --------------------------------------------------------------------------- draws


def _generator(key, r, c):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(key), spawn_key=(int(r), int(c)))))


def _rows(p, z, n, who):
    """z as (n, d): a categorical latent's (n,) indices become (n, 1)."""
    z = np.asarray(z)
    if getattr(p, "latent_type", "continuous") == "categorical" and z.shape == (n,):
        z = z[:, None]
    if z.shape != (n, p.latent_dim):
        raise ValueError(f"{who}: returned shape {z.shape}, expected ({n}, {p.latent_dim})")
    return z


def _vector(name, value, n, allow_neg_inf=True):
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: returned something that is not an array of floats ({exc})") from None
    if out.shape != (n,):
        raise ValueError(f"{name}: returned shape {out.shape}, expected ({n},)")
    if np.isnan(out).any():
        raise ValueError(f"{name}: returned NaN (at {int(np.isnan(out).sum())} of {n} draws)")
    if np.isposinf(out).any():
        raise ValueError(f"{name}: returned +inf (at {int(np.isposinf(out).sum())} of {n} draws)")
    if not allow_neg_inf and np.isneginf(out).any():
        raise ValueError(f"{name}: returned -inf at a point q itself drew ({int(np.isneginf(out).sum())} of {n})")
    return out


def _call(name, fn, *args):
    """A user's member, with its failure named: a ValueError 'p.log_joint: raised ...'."""
    try:
        return fn(*args)
    except ValueError as exc:
        if str(exc).startswith(name.split(".")[0] + "."):
            raise
        raise ValueError(f"{name}: raised ValueError: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"{name}: raised {type(exc).__name__}: {exc}") from exc


def q_view(p, z):
    """z as q's own members take it: a categorical latent's (n, 1) rows as (n,)
    indices (the convention of ``Categorical``), anything else as it is."""
    return z[:, 0] if getattr(p, "latent_type", "continuous") == "categorical" else z


def draw_unit(p, q, n, key, r, c):
    """(z, log q(z), eps) of the n draws of unit (r, c); eps is None when q has no noise transform."""
    if type(q) in _AFFINE:
        loc, T, diagonal, base = q._affine()
        d = loc.shape[0]
        u = gk.unit_noise(key, r, c, n * d, base == "normal").reshape(n, d)
        z = loc + u * np.diag(T) if diagonal else loc + u @ np.asarray(T).T
        log_det = float(np.sum(np.log(np.abs(np.diag(T)))))
        if base == "normal":
            log_q = -0.5 * d * np.log(2.0 * np.pi) - log_det - 0.5 * np.sum(u * u, axis=1)
        else:
            log_q = np.full(n, -log_det)
        return z, log_q, u
    rng = _generator(key, r, c)
    if hasattr(q, "sample_noise") and hasattr(q, "transform"):
        eps = _call("q.sample_noise", q.sample_noise, n, rng)
        z = _rows(p, _call("q.transform", q.transform, eps), n, "q.transform")
    else:
        eps = None
        z = _rows(p, _call("q.sample", q.sample, n, rng), n, "q.sample")
    log_q = _vector("q.log_prob", _call("q.log_prob", q.log_prob, q_view(p, z)), n, allow_neg_inf=False)
    return z, log_q, eps


def log_weights_unit(p, x, z, log_q):
    """log p(x, z) - log q(z) of one unit, the user's log_joint checked."""
    n = z.shape[0]
    return _vector("p.log_joint", _call("p.log_joint", p.log_joint, x, z), n) - log_q


def _units(K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    for u in range(R * n_chunks):
        r, c = divmod(u, n_chunks)
        start = c * CHUNK
        yield u, r, c, min(K, start + CHUNK) - start
    return n_chunks


# --------------------------------------------------------------------------- value estimators


def user_compiled(p, q):
    """Whether (p, q) runs in the compiled user driver: p offers
    ``compiled_log_joint`` and q is a built-in affine proposal."""
    return getattr(p, "compiled_log_joint", None) is not None and type(q) in _AFFINE


def _probe_compiled(p, f, x, z):
    """Call the user's compiled density once, as the driver will (float64
    arrays x (D,), z (d,)): a ValueError naming p.compiled_log_joint when it
    does not compile so or does not return one float."""
    try:
        value = f(x, z)
    except numba.core.errors.NumbaError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            "p.compiled_log_joint: does not compile as f(x, z) -> float for float64 arrays x of shape "
            f"({p.obs_dim},) and z of shape ({p.latent_dim},): {first}"
        ) from None
    except Exception as exc:
        raise ValueError(f"p.compiled_log_joint: raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, (float, int, np.floating, np.integer)) or isinstance(value, bool):
        raise ValueError(
            f"p.compiled_log_joint: must return one float per sample, returned {type(value).__name__}"
        )


def _user_compiled_args(p, x, q):
    """(f, x, loc, T, diagonal, normal_base, log_q_const): the user driver's arguments."""
    f = p.compiled_log_joint
    if not hasattr(f, "py_func"):
        raise ValueError(
            "p.compiled_log_joint: must be a numba @njit function f(x, z) -> float of one sample, "
            f"got {type(f).__name__}"
        )
    _probe_compiled(p, f, np.ascontiguousarray(x), np.ascontiguousarray(q._affine()[0], dtype=np.float64))
    loc, T, diagonal, base = q._affine()
    T = np.ascontiguousarray(T, dtype=np.float64)
    log_det = float(np.sum(np.log(np.abs(np.diag(T)))))
    log_q_const = (-0.5 * q.dim * np.log(2.0 * np.pi) - log_det) if base == "normal" else -log_det
    loc = np.array(loc, dtype=np.float64, order="C")
    return (f, np.ascontiguousarray(x), loc, T, bool(diagonal), base == "normal", float(log_q_const))


def _check_user_sums(out):
    if np.isnan(out).any() or np.isposinf(out[:, :2]).any():
        raise ValueError("p.compiled_log_joint: returned NaN or +inf for some draws")
    return out


def _user_compiled_sums(p, x, q, key, K, R):
    run = user_driver.user_stats_serial if use_serial(K, R) else user_driver.user_stats_parallel
    return _check_user_sums(run(*_user_compiled_args(p, x, q), key, K, R))


def weight_sums(p, x, q, key, K, R):
    """(R, 3): log sum_k w_k, log sum_k w_k^2, sum_k log w_k per replicate."""
    if user_compiled(p, q):
        return _user_compiled_sums(p, x, q, key, K, R)
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, gk.NSTATS))
    for u, r, c, n in _units(K, R):
        z, log_q, _ = draw_unit(p, q, n, key, r, c)
        gk.fold_unit(np.ascontiguousarray(log_weights_unit(p, x, z, log_q)), parts[u])
    return combine_replicates(parts, R, n_chunks)


def unit_log_weights(p, x, q, key, K, R):
    """Yield (u, r, c, lw) for every unit in order: the log-weights (n,) of unit
    (replicate r, chunk c), the draws every estimator sees with this key."""
    for u, r, c, n in _units(K, R):
        z, log_q, _ = draw_unit(p, q, n, key, r, c)
        yield u, r, c, np.ascontiguousarray(log_weights_unit(p, x, z, log_q))


def _largest(values, m):
    """The m largest entries of values (unordered), by np.partition."""
    n = values.shape[0]
    return values if n <= m else np.partition(values, n - m)[n - m :]


def weight_sums_top(p, x, q, key, K, R, cap):
    """``weight_sums`` and, from the same pass, each replicate's min(cap, K)
    largest log-weights in ascending order, (R, min(cap, K)): each unit's
    largest by np.partition, merged into its replicate's (the largest values of
    a multiset do not depend on the merge order)."""
    if user_compiled(p, q):
        out, top = diagnostics_user.user_top_stats(_user_compiled_args(p, x, q), key, K, R, cap)
        return _check_user_sums(out), top
    n_chunks = (K + CHUNK - 1) // CHUNK
    size = min(cap, K)
    parts = np.empty((R * n_chunks, gk.NSTATS))
    tops = [np.empty(0)] * R
    for u, r, _, lw in unit_log_weights(p, x, q, key, K, R):
        gk.fold_unit(lw, parts[u])
        tops[r] = _largest(np.concatenate([tops[r], _largest(lw, size)]), size)
    return combine_replicates(parts, R, n_chunks), np.sort(np.stack(tops), axis=1)


def replicate_log_weights(p, x, q, key, K):
    """(K,) the log-weights of replicate 0: the draws of ``weight_sums``' replicate 0."""
    if user_compiled(p, q):
        out = diagnostics_user.user_log_weights(_user_compiled_args(p, x, q), key, K)
        if np.isnan(out).any() or np.isposinf(out).any():
            raise ValueError("p.compiled_log_joint: returned NaN or +inf for some draws")
        return out
    out = np.empty(K)
    for _, _, c, lw in unit_log_weights(p, x, q, key, K, 1):
        out[c * CHUNK : c * CHUNK + lw.shape[0]] = lw
    return out


# --------------------------------------------------------------------------- gradients


def gradient_support(p, q, mode, method):
    """None if the generic path can compute ``mode`` for (p, q), else the
    ValueError message saying which member is missing."""
    if mode == gd.SCORE:
        if not hasattr(q, "grad_log_prob"):
            return (
                f'q.grad_log_prob: missing; method "{method}" needs the score d log q(z) / d q.params '
                f"at fixed z, and {type(q).__name__} does not define it"
            )
        return None
    if mode in (gd.REPARAM, gd.STL):
        if not getattr(q, "reparameterizable", False) or not all(hasattr(q, m) for m in _PATHWISE_MEMBERS):
            return f'method: "{method}" needs a reparameterizable q, got {type(q).__name__}'
        if not hasattr(p, "grad_log_joint"):
            return (
                f'p.grad_log_joint: missing; method "{method}" (pathwise) needs the gradient of '
                f"log p(x, z) in z, and {type(p).__name__} does not define it"
            )
        return None
    return f"p: model gradients are implemented for LinearGaussian only, got {type(p).__name__}"


class GenericGradient:
    """Per-unit log-weights and gradient vectors of (p, q) on the generic path:
    the generic counterpart of a compiled gradient block."""

    def __init__(self, p, x, q, mode):
        self.p, self.x, self.q, self.mode = p, x, q, mode
        self.P = len(q.params)

    def _matrix(self, name, value, n, width):
        out = np.asarray(value, dtype=np.float64)
        if out.shape != (n, width):
            raise ValueError(f"{name}: returned shape {out.shape}, expected ({n}, {width})")
        return out

    def unit(self, n, key, r, c):
        """(lw, S) of unit (r, c): log-weights (n,) and one P-vector per draw (n, P)."""
        p, q, P = self.p, self.q, self.P
        z, log_q, eps = draw_unit(p, q, n, key, r, c)
        lw = log_weights_unit(p, self.x, z, log_q)
        if self.mode == gd.SCORE:
            S = self._matrix("q.grad_log_prob", _call("q.grad_log_prob", q.grad_log_prob, q_view(p, z)), n, P)
        else:
            d = p.latent_dim
            g_p = self._matrix("p.grad_log_joint", _call("p.grad_log_joint", p.grad_log_joint, self.x, z), n, d)
            g_q = self._matrix("q.grad_z_log_prob", _call("q.grad_z_log_prob", q.grad_z_log_prob, z), n, d)
            S = self._matrix("q.transform_vjp", _call("q.transform_vjp", q.transform_vjp, eps, g_p - g_q), n, P)
            if self.mode == gd.REPARAM:
                S = S - self._matrix("q.grad_log_prob", _call("q.grad_log_prob", q.grad_log_prob, z), n, P)
        if not np.isfinite(S).all():
            raise ValueError("p.grad_log_joint / q: the gradient vectors of some draws are not finite")
        return np.ascontiguousarray(lw), np.ascontiguousarray(S)

    def sums(self, vectors, key, K, R):
        """Pass 1: ((R, width) accumulators, offsets), as ``gradient_driver.gradient_sums``."""
        off, width = gd.layout(vectors, self.P)
        n_chunks = (K + CHUNK - 1) // CHUNK
        parts = np.empty((R * n_chunks, width))
        for u, r, c, n in _units(K, R):
            lw, S = self.unit(n, key, r, c)
            gd.init_sums(parts[u])
            gk.fold_sums_unit(parts[u], lw, S, self.P, off)
        return gd.combine_sums(parts, R, n_chunks, self.P, off), off

    def signals(self, key, K, R, signal, totals):
        """Pass 2 over the regenerated draws: (R, P) sums of c_k S_k."""
        totals = np.ascontiguousarray(totals)
        n_chunks = (K + CHUNK - 1) // CHUNK
        parts = np.zeros((R * n_chunks, self.P))
        for u, r, c, n in _units(K, R):
            lw, S = self.unit(n, key, r, c)
            gk.add_signals_unit(parts[u], lw, S, self.P, signal, K, totals[r])
        return gd.combine_signals(parts, R, n_chunks, self.P)
