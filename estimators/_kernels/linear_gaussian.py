r"""Log-weights for the linear-Gaussian model under an affine proposal.

Every continuous proposal here is an affine map of a base draw u:
:math:`z = loc + T u` with u ~ N(0, I) (Gaussian: T = diag(scale); full
Gaussian: T = Cholesky factor) or u ~ U[0,1)^d (uniform box: T = diag(width)).
Then :math:`\log q(z) = c_q - \tfrac12 \|u\|^2` (normal base) or
:math:`c_q` (uniform base), and

.. math::
    \log w = c_p - \tfrac12\|z\|^2 - \tfrac12 \sum_i \psi_i^{-1}
             \big(x_i - b_i - (W z)_i\big)^2 - \log q(z).

The log-joint is evaluated as written (a D x d product per sample, formed for
a block of samples at once by one dgemm, ``log_joint_block``); nothing about
the posterior is used, so this is the same work a user's own model costs.
"""

from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .driver import register_block
from .rng import fill_normal, fill_uniform

# The safe subset of fastmath (DESIGN.md): lets LLVM vectorise the dot-product
# reductions; assumes nothing about inf/NaN, so -inf log-weights survive.  It
# is *not* safe for reproducibility: with reassoc and contract the order of a
# sum and the fusing of a multiply-add are LLVM's choice, which can differ
# between a fresh compile and one whose callees come from numba's cache.  This
# module and gradient_affine no longer use it (``sum_squares``).
SAFE_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, inline="always")
def diagonal_of(T):
    """T's diagonal as a new contiguous vector."""
    d = T.shape[0]
    out = np.empty(d)
    for j in range(d):
        out[j] = T[j, j]
    return out


@njit(cache=True)
def draw_affine(state, u, z, n, loc, T, diagonal, normal_base):
    """z[:n] <- loc + T u for n fresh base draws; u[:n] keeps the base draws."""
    d = loc.shape[0]
    flat = u.reshape(-1)
    if normal_base:
        fill_normal(state, flat, n * d)
    else:
        fill_uniform(state, flat, n * d)
    if diagonal:  # one contiguous scale vector, so the loop over j vectorises
        scale = diagonal_of(T)
        for k in range(n):
            for j in range(d):
                z[k, j] = loc[j] + scale[j] * u[k, j]
        return
    for k in range(n):
        for j in range(d):
            acc = loc[j]
            for l in range(j + 1):
                acc += T[j, l] * u[k, l]
            z[k, j] = acc


@intrinsic
def _lane_sums4(typingctx, a, k, w):
    """(s0, s1, s2, s3) with s_l = sum_t a[k, 4t + l]^2 (times w[4t + l]) over the
    row's full groups of four, lane l adding its terms in order of t: one
    <4 x double> multiply (two when weighted) and one add per group, with no
    fast-math flags, so each lane is the scalar chain, IEEE op for IEEE op
    (nothing reassociated, nothing fused) on any vector width.  For
    C-contiguous float64 rows only (the kernels' block scratch)."""
    row_ok = isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.float64
    weighted = not isinstance(w, (types.NoneType, types.Omitted))
    w_ok = not weighted or (isinstance(w, types.Array) and w.ndim == 1 and w.layout == "C"
                            and w.dtype == types.float64)
    if not (row_ok and w_ok):
        raise TypingError(f"sum_squares: needs a C-contiguous float64 (n, m) array and weights, got {a}, {w}")
    sig = types.UniTuple(types.float64, 4)(a, k, w)

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.DoubleType(), 4)
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        m = cgutils.unpack_tuple(builder, arr.shape, 2)[1]
        row = builder.gep(arr.data, [builder.mul(context.cast(builder, args[1], signature.args[1], types.intp), m)])
        if weighted:
            weights = context.make_array(signature.args[2])(context, builder, args[2]).data
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * 4))
        with cgutils.for_range(builder, builder.sdiv(m, ir.Constant(m.type, 4))) as loop:
            offset = builder.mul(loop.index, ir.Constant(m.type, 4))
            v = builder.load(builder.bitcast(builder.gep(row, [offset]), vec.as_pointer()), align=8)
            term = builder.fmul(v, v)
            if weighted:
                term = builder.fmul(term, builder.load(builder.bitcast(builder.gep(weights, [offset]),
                                                                       vec.as_pointer()), align=8))
            builder.store(builder.fadd(builder.load(acc), term), acc)
        total = builder.load(acc)
        lanes = [builder.extract_element(total, ir.Constant(ir.IntType(32), lane)) for lane in range(4)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return sig, codegen


@njit(cache=True, inline="always")
def sum_squares(a, k, w):
    """sum_j a[k, j]^2 w_j (w = None: weights 1) in four interleaved partial
    sums (lanes j mod 4, the remainder into lane 0) added in a fixed order,
    (s0 + s1) + (s2 + s3).  The lanes run as one 4-wide vector
    (``_lane_sums4``: LLVM kept four scalar chains of these and left them
    unvectorised), the same numbers as the scalar lanes to the bit.  Not
    fastmath's reassociation, which let LLVM choose the order of a sum -- and
    it chose differently when a function was compiled fresh and when its
    callee came from numba's cache (last-bit differences between a first and
    a second run of the same seed)."""
    m = a.shape[1]
    s0, s1, s2, s3 = _lane_sums4(a, k, w)
    j = m - m % 4
    while j < m:
        if w is None:
            s0 += a[k, j] * a[k, j]
        else:
            s0 += a[k, j] * a[k, j] * w[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def log_joint_block(z, n, xb, W, inv_psi, log_p_const, out, Wz, u=None, log_q_const=0.0, normal_base=True):
    """out[k] <- log p(x, z_k) = c - |z_k|^2 / 2 - sum_i (xb_i - (W z_k)_i)^2 / (2 psi_i)
    for k < n, with xb = x - b and the block's products W z_k formed by one BLAS
    dgemm, Wz[:n] = z[:n] W^T (a tuned GEMM reaches several times the
    multiply-add rate of per-sample dot products of length d).  z and Wz are
    C-contiguous (n, d) and (n, D) scratch of exactly n rows; one call of a
    single-threaded dgemm (the block is below BLAS's threading threshold) is a
    fixed function of its inputs, so the result does not depend on which
    thread runs the block.  No fastmath: the sums are ``sum_squares``'s.  With
    the base draws ``u`` (and q's ``log_q_const``, ``normal_base``), out[k] is
    then the log-weight (``residuals_and_log_joint``)."""
    np.dot(z, W.T, Wz)
    residuals_and_log_joint(z, Wz, n, xb, inv_psi, log_p_const, out, None, u, log_q_const, normal_base)


@njit(cache=True)
def residuals_and_log_joint(z, Rb, n, xb, inv_psi, log_p_const, out, Sb, u=None, log_q_const=0.0, normal_base=True):
    """For k < n, in one pass over the block's rows: Rb[k] <- r_k = xb - Rb[k]
    (Rb holds W z_k on entry), Sb[k] <- Psi^-1 r_k (unless Sb is None) and
    out[k] <- log p(x, z_k) = c - |z_k|^2 / 2 - sum_i r_ki^2 / (2 psi_i), then,
    given the base draws u, out[k] -= log q(z_k) (``affine_log_q``): the log-weight.
    The same numbers as a separate pass for each, each row read while
    it is in L1 (a block's (n, D) arrays are 40 KB at n = 256, D = 20: beyond
    L1, so every extra pass over them came from L2)."""
    D = Rb.shape[1]
    for k in range(n):
        for i in range(D):
            Rb[k, i] = xb[i] - Rb[k, i]
        if Sb is not None:
            for i in range(D):
                Sb[k, i] = Rb[k, i] * inv_psi[i]
        out[k] = log_p_const - 0.5 * sum_squares(z, k, None) - 0.5 * sum_squares(Rb, k, inv_psi)
        if u is not None:
            out[k] -= affine_log_q(u, k, log_q_const, normal_base)


@njit(cache=True, inline="always")
def affine_log_q(u, k, log_q_const, normal_base):
    """log q(z_k) of a draw z_k = loc + T u[k]: c_q - |u[k]|^2 / 2 (normal base) or c_q."""
    if not normal_base:
        return log_q_const
    return log_q_const - 0.5 * sum_squares(u, k, None)


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats`` (no fastmath: see ``sum_squares``)."""
    loc, T, diagonal, normal_base, log_q_const, xb, W, inv_psi, log_p_const = args
    d = loc.shape[0]
    u = np.empty((n, d))
    z = np.empty((n, d))
    draw_affine(state, u, z, n, loc, T, diagonal, normal_base)
    log_joint_block(z, n, xb, W, inv_psi, log_p_const, lw, np.empty((n, W.shape[0])), u, log_q_const, normal_base)


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
LinearGaussianArgs = namedtuple("LinearGaussianArgs", "loc T diagonal normal_base log_q_const xb W inv_psi log_p_const")
KIND = register_block(LinearGaussianArgs, block)
