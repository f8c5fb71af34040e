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
from .linear_gaussian import draw_affine, log_joint_block, log_joint_from_residuals, subtract_log_q


@njit(cache=True)
def _diagonal_reparam_vectors(Gb, u, T, n, const, S):
    """S[k] <- (g_k, g_k u_k sigma + const) for k < n: REPARAM's vectors for a diagonal T."""
    d = Gb.shape[1]
    for k in range(n):
        for j in range(d):
            g = Gb[k, j]
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
def _block_residuals(z, n, xb, W, inv_psi, Rb, Sb, Gb):
    """For the block's n samples at once: Rb[k] <- r_k = x - b - W z_k,
    Sb[k] <- Psi^-1 r_k and Gb[k] <- grad_z log p(x, z_k) = -z_k + W^T Psi^-1 r_k,
    the two products by BLAS dgemm (z W^T, then (R Psi^-1) W): a tuned GEMM
    runs the 2 D d multiply-adds per sample several times faster than
    per-sample loops.  A single-threaded dgemm (the block is below BLAS's
    threading threshold) is a fixed function of its inputs, so the result does
    not depend on which thread runs the block."""
    D, d = W.shape
    np.dot(z, W.T, Rb)
    for k in range(n):
        for i in range(D):
            r = xb[i] - Rb[k, i]
            Rb[k, i] = r
            Sb[k, i] = r * inv_psi[i]
    np.dot(Sb, W, Gb)
    for k in range(n):
        for j in range(d):
            Gb[k, j] -= z[k, j]


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
    if mode == SCORE:  # no gradient of log p needed: the plain log-joint
        log_joint_block(z, n, xb, W, inv_psi, log_p_const, lw, Rb)
    else:
        # the block's residuals r = x - b - W z and gradients grad_z log p in
        # two GEMMs; from r each sample's log-joint (W z is formed once)
        _block_residuals(z, n, xb, W, inv_psi, Rb, np.empty((n, D)), Gb)
        log_joint_from_residuals(z, Rb, n, inv_psi, log_p_const, lw)
    subtract_log_q(u, n, log_q_const, normal_base, lw)
    v = np.empty(d)
    a = np.empty(d)
    const = log_scale_constant(mode)
    if mode == REPARAM and diagonal:  # the common case, without a row view per sample
        _diagonal_reparam_vectors(Gb, u, T, n, const, S)
        return
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
