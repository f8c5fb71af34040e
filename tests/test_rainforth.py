"""The Rainforth et al. (2018) Gaussian problem and its SNR scaling laws.

Rainforth et al. show that the signal-to-noise ratio SNR = |E g| / sd(g) of
the IWAE inference-network gradient falls like K^(-1/2); Tucker et al. (2018)
show that of DReG rises like K^(+1/2).  Both are large-K laws.
"""

import numpy as np
import pytest

import estimators
from problems import LinearGaussian, RainforthLinearGaussian


def test_structure():
    rf = RainforthLinearGaussian(seed=0)
    p, x, q = rf
    d = 20
    assert isinstance(p, LinearGaussian) and p.latent_dim == d and p.obs_dim == d
    np.testing.assert_array_equal(p.W, np.eye(d))
    np.testing.assert_array_equal(p.b, rf.mu)
    np.testing.assert_array_equal(p.psi, np.ones(d))
    np.testing.assert_allclose(q.scale, np.sqrt(2 / 3))
    np.testing.assert_allclose(q.loc, rf.A @ x + rf.b - rf.mu)
    # the optimal encoder's loc is the exact posterior mean (x + mu)/2, shifted by -mu
    np.testing.assert_allclose(rf.optimal_encoder(x).loc, p.posterior_mean(x), atol=1e-12)
    np.testing.assert_allclose(p.posterior(x).cov, 0.5 * np.eye(d), atol=1e-12)
    # perturbations N(0, 0.01^2): sample sd of the 400 + 20 entries within 5 SE (sd/sqrt(2n))
    noise = np.concatenate([(rf.A - 0.5 * np.eye(d)).ravel(), rf.b - 0.5 * rf.mu])
    assert abs(noise.std() - 0.01) < 5 * 0.01 / np.sqrt(2 * noise.size)
    assert abs(noise.mean()) < 5 * 0.01 / np.sqrt(noise.size)
    # seeds give different instances, the same seed the same one
    assert not np.array_equal(RainforthLinearGaussian(1).mu, rf.mu)
    np.testing.assert_array_equal(RainforthLinearGaussian(0).x, x)


def test_bad_input():
    with pytest.raises(ValueError, match="^seed:"):
        RainforthLinearGaussian(seed=-1)
    with pytest.raises(ValueError, match="^noise:"):
        RainforthLinearGaussian(noise=-0.1)
    with pytest.raises(ValueError, match="^dim:"):
        RainforthLinearGaussian(dim=0)
    with pytest.raises(ValueError, match="^grad:"):
        RainforthLinearGaussian().encoder_gradient(np.zeros(20))


def test_elbo_gradient_in_the_original_coordinates():
    """In the unshifted model the posterior is N((x + mu)/2, I/2), so
    d ELBO / d loc = 2 ((x + mu)/2 - (A x + b)): the shift to z - mu changes nothing."""
    rf = RainforthLinearGaussian(seed=2)
    p, x, q = rf
    want = 2.0 * (0.5 * (x + rf.mu) - (rf.A @ x + rf.b))
    np.testing.assert_allclose(p.elbo_grad(x, q)[:20], want, rtol=1e-10, atol=1e-12)


def test_encoder_gradient_chain_rule():
    """encoder_gradient against finite differences of the exact ELBO in (A, b)."""
    rf = RainforthLinearGaussian(seed=3, dim=4)
    p, x, q = rf
    enc = rf.encoder_gradient(p.elbo_grad(x, q))
    h = 1e-6

    def elbo_at(A, b):
        loc = A @ x + b - rf.mu
        return p.elbo(x, estimators.Gaussian(loc, q.scale))

    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd_b = (elbo_at(rf.A, rf.b + e) - elbo_at(rf.A, rf.b - e)) / (2 * h)
        np.testing.assert_allclose(enc["b"][i], fd_b, rtol=1e-6, atol=1e-8)
        for j in range(4):
            E = np.zeros((4, 4))
            E[i, j] = h
            fd_A = (elbo_at(rf.A + E, rf.b) - elbo_at(rf.A - E, rf.b)) / (2 * h)
            np.testing.assert_allclose(enc["A"][i, j], fd_A, rtol=1e-6, atol=1e-8)


def log_log_slope(K, snr):
    return np.polyfit(np.log(K), np.log(snr), 1)[0]


def test_snr_scaling_reparam_falls_dreg_rises():
    """Fitted log-log slopes of the SNR of d L_K / d b (b the encoder bias =
    q's loc) in K: -1/2 for the reparam IWAE gradient, +1/2 for DReG.

    Setting.  Seed 0; the coordinate of b with the largest exact ELBO gradient
    (fixed before any sampling).  K in {256, 1024, 4096}: the laws are
    asymptotic, and on this problem K E[g], sqrt(K) sd(reparam) and
    K^(3/2) sd(DReG) are flat to about 1.5% from K = 256 on (measured with
    10^4 replicates per K: K^(3/2) sd(DReG) = 1.510, 1.549, 1.565, 1.572 at
    K = 64, 256, 1024, 4096), a bias of at most ~0.005 in the slopes; from
    K = 64 the DReG bias is ~0.013, from K = 1 the DReG slope is far from 1/2
    (SNR 0.86 at K = 1 and 1.08 at K = 8).

    The mean.  Both SNRs use the DReG replicate mean as E[g]: DReG and
    reparam are unbiased for the same gradient (tests/test_gradients.py
    checks it), and DReG's standard error is ~100x smaller here.  The plain
    plug-in |mean|/sd of the reparam replicates would sit on its floor
    sqrt(2/pi)/sqrt(R): the reparam SNR at K = 4096 is ~0.004, which needs
    R >> 10^6 replicates to resolve.  Asserted below: every |mean| is > 50 of
    its standard errors, so the SNRs are far above that floor.

    Tolerance.  The slope SE is a bootstrap over replicates (400 resamples,
    each K and method resampled independently).  Each slope must lie within
    3 SE of +-1/2: 3 SE gives a 0.3% false-alarm rate for a correct law, and
    the residual pre-asymptotic bias (<= 0.005, above) is well under 1 SE
    (~0.01); the test still has power, since SE < 0.05 is asserted, so a flat
    SNR (slope 0) would sit > 10 SE away.  Measured: reparam -0.501 +- 0.008,
    DReG +0.507 +- 0.009.
    """
    rf = RainforthLinearGaussian(seed=0)
    p, x, q = rf
    j = int(np.argmax(np.abs(p.elbo_grad(x, q)[: rf.dim])))
    Ks = np.array([256, 1024, 4096])
    R = 2000
    rep = [estimators.gradient(p, x, q, int(K), R, "reparam", "iwae", seed=100 + i)[:, j] for i, K in enumerate(Ks)]
    dreg = [estimators.gradient(p, x, q, int(K), R, "dreg", "iwae", seed=200 + i)[:, j] for i, K in enumerate(Ks)]

    def slopes(rep, dreg):
        mean = np.array([abs(g.mean()) for g in dreg])
        snr_rep = mean / np.array([g.std(ddof=1) for g in rep])
        snr_dreg = mean / np.array([g.std(ddof=1) for g in dreg])
        return log_log_slope(Ks, snr_rep), log_log_slope(Ks, snr_dreg)

    for g in dreg:  # far above the floor of a noisy mean
        assert abs(g.mean()) > 50 * g.std(ddof=1) / np.sqrt(R)
    s_rep, s_dreg = slopes(rep, dreg)
    rng = np.random.default_rng(0)
    boot = np.array(
        [
            slopes([g[rng.integers(0, R, R)] for g in rep], [g[rng.integers(0, R, R)] for g in dreg])
            for _ in range(400)
        ]
    )
    se_rep, se_dreg = boot.std(axis=0, ddof=1)
    assert se_rep < 0.05 and se_dreg < 0.05
    assert abs(s_rep + 0.5) < 3 * se_rep, f"reparam slope {s_rep:.3f} +- {se_rep:.3f}"
    assert abs(s_dreg - 0.5) < 3 * se_dreg, f"dreg slope {s_dreg:.3f} +- {se_dreg:.3f}"
