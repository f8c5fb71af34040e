r"""Gradient block for the linear-Gaussian model under an affine proposal.

q is :math:`z = loc + T\varepsilon` with T = diag(scale) (``Gaussian``, params
= (loc, log scale)) or T = L lower triangular (``MultivariateGaussian``,
params = (loc, vech L~), L~ = L with log on its diagonal), or a uniform box
(``MODEL`` mode only).  With

.. math::
    g = \nabla_z \log p(x, z) = -z + W^T \Psi^{-1}(x - b - W z), \qquad
    v = -\nabla_z \log q(z) = T^{-T}\varepsilon,

every per-sample vector is one "loc part" :math:`a` and a scale part built
from it (for the diagonal case :math:`L_{jj} = \sigma_j`, no off-diagonal):

====== ============ ==================================================
mode   a            scale part: (j, l < j)   /   diagonal (j, j)
====== ============ ==================================================
SCORE  v            a_j eps_l  /  a_j eps_j L_jj - 1     (grad_phi log q at fixed z)
REPARAM g           a_j eps_l  /  a_j eps_j L_jj + 1     (grad_phi log w(z(eps, phi)))
STL    g + v        a_j eps_l  /  a_j eps_j L_jj         (d log w/dz . dz/dphi)
====== ============ ==================================================

(REPARAM = STL - SCORE: the pathwise derivative of -log q(z(eps, phi)) is the
constant +1 per log-diagonal entry.)  ``MODEL`` writes
:math:`\nabla_\theta \log p_\theta(x, z)` for theta = (W, b, psi), r = x - b - W z:
:math:`\partial/\partial W_{ij} = r_i z_j/\psi_i`, :math:`\partial/\partial b_i = r_i/\psi_i`,
:math:`\partial/\partial \psi_i = (r_i^2/\psi_i - 1)/(2\psi_i)`, in the order
(vec W row-major, b, psi).

Draws are those of ``linear_gaussian.block`` (same ``draw_affine``), so the
same seed gives the same z; the log-weights are the same up to rounding (here
from the residual of the block's GEMM, there from ``log_joint_block``).
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .gradient_driver import MODEL, REPARAM, SCORE, log_scale_constant, register_gradient_block
from .linear_gaussian import draw_affine, log_joint_block, residuals_and_log_joint


@njit(cache=True)
def _diagonal_reparam_vectors(Gb, z, u, T, n, const, S):
    """S[k] <- (g_k, g_k u_k sigma + const) for k < n, g_k = Gb[k] - z_k (Gb holds
    W^T Psi^-1 r_k): REPARAM's vectors for a diagonal T, in one pass."""
    d = Gb.shape[1]
    for k in range(n):
        for j in range(d):
            g = Gb[k, j] - z[k, j]
            S[k, j] = g
            S[k, d + j] = g * u[k, j] * T[j, j] + const


@njit(cache=True)
def _inv_t_transpose(T, diagonal, eps, v):
    """v <- T^{-T} eps (back substitution; T lower triangular or diagonal)."""
    d = eps.shape[0]
    if diagonal:
        for j in range(d):
            v[j] = eps[j] / T[j, j]
        return
    for j in range(d - 1, -1, -1):
        acc = eps[j]
        for i in range(j + 1, d):
            acc -= T[i, j] * v[i]
        v[j] = acc / T[j, j]


@njit(cache=True)
def block(state, n, args, mode, lw, S):
    """Gradient block function (see ``gradient_driver``) for LinearGaussian."""
    loc, T, diagonal, normal_base, log_q_const, xb, W, inv_psi, log_p_const = args
    D, d = W.shape
    u = np.empty((n, d))
    z = np.empty((n, d))
    draw_affine(state, u, z, n, loc, T, diagonal, normal_base)
    Rb = np.empty((n, D))
    Gb = np.empty((n, d))
    const = log_scale_constant(mode)
    if mode == SCORE:  # no gradient of log p needed: the plain log-joint
        log_joint_block(z, n, xb, W, inv_psi, log_p_const, lw, Rb, u, log_q_const, normal_base)
    else:
        # The block's residuals r = x - b - W z and the gradients
        # grad_z log p = -z + W^T Psi^-1 r by two single-threaded BLAS dgemms
        # (z W^T, then (R Psi^-1) W: a tuned GEMM runs the 2 D d multiply-adds
        # of a sample several times faster than per-sample loops, and one call
        # is a fixed function of its inputs, whichever thread runs it); from r
        # each sample's log-joint, in the pass that forms R Psi^-1.
        Sb = np.empty((n, D))
        np.dot(z, W.T, Rb)
        residuals_and_log_joint(z, Rb, n, xb, inv_psi, log_p_const, lw, Sb, u, log_q_const, normal_base)
        np.dot(Sb, W, Gb)
        if mode == REPARAM and diagonal:  # the common case: -z added as the vectors are written
            _diagonal_reparam_vectors(Gb, z, u, T, n, const, S)
            return
        for k in range(n):
            for j in range(d):
                Gb[k, j] -= z[k, j]
    v = np.empty(d)
    a = np.empty(d)
    for k in range(n):
        r = Rb[k]
        g = Gb[k]
        if mode == MODEL:
            o = 0
            for i in range(D):
                ri = r[i] * inv_psi[i]
                for j in range(d):
                    S[k, o] = ri * z[k, j]
                    o += 1
            for i in range(D):
                S[k, o] = r[i] * inv_psi[i]
                o += 1
            for i in range(D):
                S[k, o] = 0.5 * inv_psi[i] * (r[i] * r[i] * inv_psi[i] - 1.0)
                o += 1
            continue
        if mode != REPARAM:
            _inv_t_transpose(T, diagonal, u[k], v)
        for j in range(d):
            if mode == SCORE:
                a[j] = v[j]
            elif mode == REPARAM:
                a[j] = g[j]
            else:
                a[j] = g[j] + v[j]
            S[k, j] = a[j]
        o = d
        if diagonal:
            for j in range(d):
                S[k, o + j] = a[j] * u[k, j] * T[j, j] + const
        else:
            for j in range(d):  # numpy.tril_indices order: row by row
                for l in range(j):
                    S[k, o] = a[j] * u[k, l]
                    o += 1
                S[k, o] = a[j] * u[k, j] * T[j, j] + const
                o += 1


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
AffineGradientArgs = namedtuple("AffineGradientArgs", "loc T diagonal normal_base log_q_const xb W inv_psi log_p_const")
KIND = register_gradient_block(AffineGradientArgs, block)
