r"""Compiled ARM, DisARM, REBAR, Gumbel-softmax and straight-through ELBO
gradients for a ``Bernoulli`` q (logits :math:`\theta`, :math:`\pi = \sigma(\theta)`)
on ``SigmoidBeliefNet`` and ``MissingPixels``.

The equations are those of ``estimators.discrete_gradients`` (whose NumPy
implementation serves every other binary problem and is the peer these kernels
are timed against); per sample, with :math:`f(b) = \log p(x, b) - \log q(b)`:

================  ====================================================================
method            term added to the unit's m-vector sum
================  ====================================================================
ARM               :math:`(f(1[u > \sigma(-\theta)]) - f(1[u < \pi]))\,(u - \tfrac12)`
DisARM            :math:`\tfrac12 (f(b) - f(\tilde b))(-1)^{\tilde b_i} 1[b_i \ne \tilde b_i]
                  \sigma(|\theta_i|)`, :math:`b = 1[u < \pi]`, :math:`\tilde b = 1[1 - u < \pi]`
REBAR             :math:`[f(b) - \eta \tilde f(\tilde z)](b - \pi) + \eta\,\partial_\theta \tilde f(z)
                  - \eta\,\partial_\theta \tilde f(\tilde z)` (``discrete_gradients.rebar_elbo``)
Gumbel-softmax    :math:`\nabla_z \log p(x, \zeta) \odot \zeta(1-\zeta)/\tau`,
                  :math:`\zeta = \sigma((\theta - \mathrm{logit}\,u)/\tau)`
straight-through  :math:`\nabla_z \log p(x, b) \odot \pi(1 - \pi)`, :math:`b = 1[u < \pi]`
================  ====================================================================

(the relaxations' exact entropy gradient :math:`-\theta\pi(1-\pi)` is added by
the caller).  The models, for z in [0, 1]^m (binary or relaxed):

* ``SBNModel``: :math:`\log p(x, z) = z\cdot c + \sum_j \log\sigma(-c_j) + \sum_i
  [x_i a_i - \mathrm{softplus}(a_i)]`, :math:`a = W z + b`;
  :math:`\nabla_z = c + W^T (x - \sigma(a))`.  One exponential per activation,
  :math:`e^{-|a_i|}`, gives both (``_sbn_likelihood``, ``_sbn_grad_from``), and for
  a binary z it is a product of precomputed ones (``_sbn_activation``).
* ``MPModel``: :math:`\log p(x, z) = \operatorname{logsumexp}_c [\beta_c + z \cdot d_c]`,
  :math:`\beta_c = a_c + \sum_j \log(1 - t_{cj})`, :math:`d_c = \log t_c - \log(1 - t_c)`;
  :math:`\nabla_z = \sum_c r_c d_c`, r the softmax of the component terms.

On ``SBNModel``, Gumbel-softmax and straight-through take ``sbn_relaxed``'s
path instead: the same terms on the same draws, in blocks of samples whose
exponentials vectorise (5-8x this file's per-sample loop on SBN(20, 64)).

Layout (that of ``estimators._kernels.driver``): the R x K samples are cut
into units (replicate r, chunk c) of at most ``CHUNK`` samples; unit (r, c)
draws from ``seed_state(key, r, c)``, m uniforms u per sample (then m more, v,
for REBAR), sums its terms in sample order into an m-vector, and the units of
a replicate are added in chunk order -- so the result is bit-identical for any
NUMBA_NUM_THREADS and memory is O(m) per unit whatever K.  Bit j is on when
u_j < pi_j, as in ``bernoulli_mixture.draw``: on MissingPixels ARM's ``b^2``,
DisARM's and straight-through's b are the draws "score" sees with the same seed.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ..driver import CHUNK, PARALLEL_MIN_COSTLY_SAMPLES, use_serial
from ..rng import fill_uniform, seed_state
from . import sbn_relaxed
from .sbn_relaxed import GUMBEL_SOFTMAX, STRAIGHT_THROUGH, combine_units

# The safe subset of fastmath (DESIGN.md): contraction and reassociation of the
# small dot products; nothing assumed about inf/NaN.
SAFE_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

#: WT = W^T (m, D); bias b (D,); c (m,); x (D,); prior_const = sum_j log sigma(-c_j);
#: EW = exp(-W^T), E0 = exp(-b); use_products: max_i |b_i| + sum_j |W_ij| < 600 (see _sbn_activation)
SBNModel = namedtuple("SBNModel", ["WT", "bias", "c", "x", "prior_const", "EW", "E0", "use_products"])
#: base beta (C,); diffT = d^T (m, C)
MPModel = namedtuple("MPModel", ["base", "diffT"])
#: theta, pi = sigma(theta), pi_off = sigma(-theta), log pi, log(1 - pi), pi (1 - pi), sigma(|theta|)
BernoulliQ = namedtuple("BernoulliQ", ["theta", "pi", "pi_off", "log_on", "log_off", "var", "sig_abs"])

ARM, DISARM, REBAR = 0, 1, 2  # GUMBEL_SOFTMAX, STRAIGHT_THROUGH: sbn_relaxed's codes (3, 4)
CODES = {"arm": ARM, "disarm": DISARM, "rebar": REBAR, "gumbel_softmax": GUMBEL_SOFTMAX,
         "straight_through": STRAIGHT_THROUGH}


@njit(cache=True, inline="always")
def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))  # exp(-t) = inf gives 0, exp(-t) = 0 gives 1


@njit(cache=True, inline="always")
def logit(u):
    return np.log(u / (1.0 - u))  # u in [0, 1): 1 - u is exact for u >= 1/2; logit(0) = -inf


# --------------------------------------------------------------------------- models


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_activation(model, z, a, e):
    r"""a <- W z + b and e <- exp(-|a|); returns z . c.

    For a binary z on a model whose activations are bounded (``use_products``:
    :math:`\max_i |b_i| + \sum_j |W_{ij}| < 600`, so no partial product
    overflows), :math:`e^{-a_i} = e^{-b_i} \prod_{j: z_j = 1} e^{-W_{ij}}` is a
    product of precomputed exponentials (``EW``) -- multiplications instead of one
    exp per activation, the same number to a few ulps; otherwise one exp each.
    Zero entries of z are skipped."""
    WT, bias, c = model.WT, model.bias, model.c
    m, D = WT.shape
    binary = model.use_products
    for i in range(D):
        a[i] = bias[i]
    if binary:
        E0 = model.E0
        for i in range(D):
            e[i] = E0[i]
    zc = 0.0
    for j in range(m):
        zj = z[j]
        if zj != 0.0:
            zc += zj * c[j]
            row = WT[j]
            for i in range(D):
                a[i] += zj * row[i]
            if zj != 1.0:
                binary = False
            elif binary:
                erow = model.EW[j]
                for i in range(D):
                    e[i] *= erow[i]
    if binary:  # e = exp(-a): exp(-|a|) is e or 1/e
        for i in range(D):
            e[i] = 1.0 / e[i] if a[i] < 0.0 else e[i]
    else:
        for i in range(D):
            e[i] = np.exp(-abs(a[i]))
    return zc


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_likelihood(model, a, e):
    r""":math:`\sum_i [x_i a_i - \mathrm{softplus}(a_i)] = \sum_i [x_i a_i - \max(a_i, 0)]
    - \log \prod_i (1 + e^{-|a_i|})`, the product's log taken every 256 factors
    (each in (1, 2], so no overflow)."""
    x = model.x
    s = 0.0
    prod = 1.0
    for i in range(x.shape[0]):
        s += x[i] * a[i] - max(a[i], 0.0)
        prod *= 1.0 + e[i]
        if (i & 255) == 255:
            s -= np.log(prod)
            prod = 1.0
    return s - np.log(prod)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_grad_from(model, a, e, g):
    """g <- c + W^T (x - sigma(a)), sigma(a) = 1/(1 + e) (a >= 0) or e/(1 + e); overwrites e."""
    WT, c, x = model.WT, model.c, model.x
    m, D = WT.shape
    for i in range(D):
        top = 1.0 if a[i] >= 0.0 else e[i]
        e[i] = x[i] - top / (1.0 + e[i])
    for j in range(m):
        row = WT[j]
        s = 0.0
        for i in range(D):
            s += row[i] * e[i]
        g[j] = c[j] + s


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_value(model, z, work):
    D = model.bias.shape[0]
    a, e = work[:D], work[D:]
    zc = _sbn_activation(model, z, a, e)
    return model.prior_const + zc + _sbn_likelihood(model, a, e)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_grad(model, z, work, g):
    D = model.bias.shape[0]
    a, e = work[:D], work[D:]
    _sbn_activation(model, z, a, e)
    _sbn_grad_from(model, a, e, g)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_value_grad(model, z, work, g):
    D = model.bias.shape[0]
    a, e = work[:D], work[D:]
    zc = _sbn_activation(model, z, a, e)
    v = model.prior_const + zc + _sbn_likelihood(model, a, e)
    _sbn_grad_from(model, a, e, g)
    return v


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_components(model, z, comp):
    """comp <- beta + d^T z; returns log sum_c exp(comp_c) and leaves comp - max in comp."""
    base, diffT = model.base, model.diffT
    m, C = diffT.shape
    for c in range(C):
        comp[c] = base[c]
    for j in range(m):
        zj = z[j]
        if zj != 0.0:
            row = diffT[j]
            for c in range(C):
                comp[c] += zj * row[c]
    top = -np.inf
    for c in range(C):
        if comp[c] > top:
            top = comp[c]
    s = 0.0
    for c in range(C):
        comp[c] = np.exp(comp[c] - top)
        s += comp[c]
    for c in range(C):
        comp[c] /= s
    return top + np.log(s)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_grad_from(model, r, g):
    diffT = model.diffT
    m, C = diffT.shape
    for j in range(m):
        row = diffT[j]
        s = 0.0
        for c in range(C):
            s += r[c] * row[c]
        g[j] = s


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_value(model, z, work):
    return _mp_components(model, z, work)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_grad(model, z, work, g):
    _mp_components(model, z, work)
    _mp_grad_from(model, work, g)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_value_grad(model, z, work, g):
    v = _mp_components(model, z, work)
    _mp_grad_from(model, work, g)
    return v


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_features(model, z, work, phi):
    """phi <- x - sigma(W z + b): grad_z log p(x, z) = c + W^T phi, linear in phi."""
    D = model.bias.shape[0]
    a, e = work[:D], work[D:]
    _sbn_activation(model, z, a, e)
    x = model.x
    for i in range(D):
        top = 1.0 if a[i] >= 0.0 else e[i]
        phi[i] = x[i] - top / (1.0 + e[i])


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _sbn_grad_of(model, phi, n, g):
    """g <- n c + W^T phi (phi: a sum of n samples' features)."""
    WT, c = model.WT, model.c
    m, D = WT.shape
    for j in range(m):
        row = WT[j]
        s = 0.0
        for i in range(D):
            s += row[i] * phi[i]
        g[j] = n * c[j] + s


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_features(model, z, work, phi):
    """phi <- the component responsibilities r(z): grad_z log p(x, z) = d^T r."""
    _mp_components(model, z, phi)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _mp_grad_of(model, phi, n, g):
    _mp_grad_from(model, phi, g)


def features(model, z, work, phi):
    """phi <- the features whose linear image is grad_z log p(x, z) (numba only)."""
    raise NotImplementedError("features is resolved inside numba-compiled code only")


def grad_of(model, phi, n, g):
    """g <- the sum over n samples of grad_z log p(x, z) from their summed features (numba only)."""
    raise NotImplementedError("grad_of is resolved inside numba-compiled code only")


def value(model, z, work):
    """log p(x, z) of the model (numba only)."""
    raise NotImplementedError("value is resolved inside numba-compiled code only")


def grad(model, z, work, g):
    """g <- grad_z log p(x, z) (numba only)."""
    raise NotImplementedError("grad is resolved inside numba-compiled code only")


def value_grad(model, z, work, g):
    """log p(x, z), and g <- its gradient in z (numba only)."""
    raise NotImplementedError("value_grad is resolved inside numba-compiled code only")


@njit(cache=True)
def _evaluate_rows(model, Z, nwork):
    """(log p(x, z) (n,), grad_z (n, m)) of every row of Z: the kernels' model
    functions, for checking them against the problems' NumPy formulas."""
    n, m = Z.shape
    work = np.empty(nwork)
    values = np.empty(n)
    grads = np.empty((n, m))
    g = np.empty(m)
    for k in range(n):
        z = Z[k].copy()
        values[k] = value_grad(model, z, work, g)
        for j in range(m):
            grads[k, j] = g[j]
    return values, grads


def _model_class(model):
    if not isinstance(model, types.BaseNamedTuple):
        return None
    cls = model.instance_class
    if cls not in (SBNModel, MPModel):
        raise ValueError(f"model: no discrete-gradient model for {cls!r}")
    return cls


@overload(value)
def _ol_value(model, z, work):
    cls = _model_class(model)
    if cls is SBNModel:
        return lambda model, z, work: _sbn_value(model, z, work)
    if cls is MPModel:
        return lambda model, z, work: _mp_value(model, z, work)
    return None


@overload(grad)
def _ol_grad(model, z, work, g):
    cls = _model_class(model)
    if cls is SBNModel:
        return lambda model, z, work, g: _sbn_grad(model, z, work, g)
    if cls is MPModel:
        return lambda model, z, work, g: _mp_grad(model, z, work, g)
    return None


@overload(value_grad)
def _ol_value_grad(model, z, work, g):
    cls = _model_class(model)
    if cls is SBNModel:
        return lambda model, z, work, g: _sbn_value_grad(model, z, work, g)
    if cls is MPModel:
        return lambda model, z, work, g: _mp_value_grad(model, z, work, g)
    return None


@overload(features)
def _ol_features(model, z, work, phi):
    cls = _model_class(model)
    if cls is SBNModel:
        return lambda model, z, work, phi: _sbn_features(model, z, work, phi)
    if cls is MPModel:
        return lambda model, z, work, phi: _mp_features(model, z, work, phi)
    return None


@overload(grad_of)
def _ol_grad_of(model, phi, n, g):
    cls = _model_class(model)
    if cls is SBNModel:
        return lambda model, phi, n, g: _sbn_grad_of(model, phi, n, g)
    if cls is MPModel:
        return lambda model, phi, n, g: _mp_grad_of(model, phi, n, g)
    return None


# --------------------------------------------------------------------------- one unit


@njit(cache=True)  # no fastmath here: the serial and parallel drivers inline it and must agree bit for bit
def run_unit(model, q, method, tau, eta, key, K, n_chunks, unit, nwork, nfeat, parts):
    """parts[unit, :m] <- the sum of the per-sample terms of unit (r, c).
    Straight-through's term is linear in the model's features (``features``), so
    their sum over the unit is taken and mapped to the gradient once (``grad_of``)."""
    r = unit // n_chunks
    c = unit - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    theta, pi, pi_off, log_on, log_off, var, sig_abs = q
    m = theta.shape[0]
    u = np.empty(m)
    v = np.empty(m)
    b1 = np.empty(m)
    b2 = np.empty(m)
    z = np.empty(m)
    zt = np.empty(m)
    dz = np.empty(m)
    dzt = np.empty(m)
    g = np.empty(m)
    gt = np.empty(m)
    work = np.empty(nwork)
    phi = np.empty(nfeat)
    phisum = np.zeros(nfeat)
    acc = np.zeros(m)
    n = min(K, (c + 1) * CHUNK) - c * CHUNK
    for _ in range(n):
        fill_uniform(state, u, m)
        if method == ARM or method == DISARM:
            lq1 = 0.0
            lq2 = 0.0
            same = True
            for j in range(m):
                if method == ARM:
                    on1 = u[j] > pi_off[j]
                    on2 = u[j] < pi[j]
                else:
                    on1 = u[j] < pi[j]
                    on2 = (1.0 - u[j]) < pi[j]
                b1[j] = 1.0 if on1 else 0.0
                b2[j] = 1.0 if on2 else 0.0
                lq1 += log_on[j] if on1 else log_off[j]
                lq2 += log_on[j] if on2 else log_off[j]
                if on1 != on2:
                    same = False
            if same:  # f(b1) - f(b2) = 0: the term is zero
                continue
            d = (value(model, b1, work) - lq1) - (value(model, b2, work) - lq2)
            if method == ARM:
                for j in range(m):
                    acc[j] += d * (u[j] - 0.5)
            else:
                h = 0.5 * d
                for j in range(m):
                    if b1[j] != b2[j]:
                        acc[j] += (-h if b2[j] > 0.0 else h) * sig_abs[j]
        elif method == GUMBEL_SOFTMAX:
            for j in range(m):
                z[j] = sigmoid((theta[j] - logit(u[j])) / tau)
            grad(model, z, work, g)
            for j in range(m):
                acc[j] += g[j] * (z[j] * (1.0 - z[j]) / tau)
        elif method == STRAIGHT_THROUGH:
            for j in range(m):
                b1[j] = 1.0 if u[j] < pi[j] else 0.0
            features(model, b1, work, phi)
            for i in range(nfeat):
                phisum[i] += phi[i]
        else:  # REBAR
            fill_uniform(state, v, m)
            lq = 0.0
            for j in range(m):
                on = u[j] < pi[j]
                b1[j] = 1.0 if on else 0.0
                lq += log_on[j] if on else log_off[j]
                zj = theta[j] - logit(u[j])
                if on:
                    up = pi_off[j] + v[j] * pi[j]
                    dup = -(1.0 - v[j]) * var[j]
                else:
                    up = v[j] * pi_off[j]
                    dup = -v[j] * var[j]
                zeta = sigmoid(zj / tau)
                zeta_t = sigmoid((theta[j] + logit(up)) / tau)
                z[j] = zeta
                zt[j] = zeta_t
                dz[j] = zeta * (1.0 - zeta) / tau
                s = zeta_t * (1.0 - zeta_t)
                dzt[j] = s / tau * (1.0 + dup / (up * (1.0 - up))) if s > 0.0 else 0.0
            fb = value(model, b1, work) - lq
            grad(model, z, work, g)
            ft = value_grad(model, zt, work, gt)
            for j in range(m):
                ft -= zt[j] * theta[j] + log_off[j]
            w = fb - eta * ft
            for j in range(m):
                acc[j] += w * (b1[j] - pi[j]) + eta * ((g[j] - theta[j]) * dz[j] - (gt[j] - theta[j]) * dzt[j])
    if method == STRAIGHT_THROUGH:
        grad_of(model, phisum, float(n), g)
        for j in range(m):
            acc[j] = g[j] * var[j]
    for j in range(m):
        parts[unit, j] = acc[j]


@njit(cache=True, parallel=True)
def _means_parallel(model, q, method, tau, eta, key, K, R, nwork, nfeat):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, q.theta.shape[0]))
    for unit in prange(R * n_chunks):
        run_unit(model, q, method, tau, eta, key, K, n_chunks, unit, nwork, nfeat, parts)
    return combine_units(parts, R, n_chunks, K)


@njit(cache=True)
def _means_serial(model, q, method, tau, eta, key, K, R, nwork, nfeat):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, q.theta.shape[0]))
    for unit in range(R * n_chunks):
        run_unit(model, q, method, tau, eta, key, K, n_chunks, unit, nwork, nfeat, parts)
    return combine_units(parts, R, n_chunks, K)


def _work_size(model):
    """(scratch length, feature length) of a model: (2 D, D) for SBNModel, (C, C) for MPModel."""
    if isinstance(model, SBNModel):
        return 2 * model.WT.shape[1], model.WT.shape[1]
    return model.base.shape[0], model.base.shape[0]


def evaluate_rows(model, Z):
    """(log p(x, z) (n,), grad_z log p(x, z) (n, m)) of every row of Z (float64, C-contiguous)
    by the kernels' model functions -- for checking them against the problems' formulas."""
    return _evaluate_rows(model, Z, _work_size(model)[0])


def means(model, q, method, tau, eta, key, K, R):
    """(R, m) per-replicate averages of the per-sample terms of ``method`` (a name
    of ``CODES``).  ``model``: an ``SBNModel`` or ``MPModel``; ``q``: a ``BernoulliQ``."""
    code = CODES[method]
    if isinstance(model, SBNModel) and code in (GUMBEL_SOFTMAX, STRAIGHT_THROUGH):
        return sbn_relaxed.means(model, q, code, tau, key, K, R)  # blocks of samples, vectorised exp
    nwork, nfeat = _work_size(model)
    run = _means_serial if use_serial(K, R, PARALLEL_MIN_COSTLY_SAMPLES) else _means_parallel
    return run(model, q, code, float(tau), float(eta), np.uint64(key), int(K), int(R), nwork, nfeat)
