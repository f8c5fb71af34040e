"""The "sequential" section of ``python -m bench peers``: the NumPy bootstrap
filter written from the equations and the ``particles`` library (optional)
estimate the exact Kalman log p(x) without bias, the section is registered in
bench.peers.SECTIONS, and it runs and reports its ratios.  With ``particles``
installed, its Kalman filter gives our exact log-likelihood to 1e-9."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from bench import peers, peers_sequential as ps
from problems import LinearGaussianStateSpace


def _small(T=10, seed=3):
    p = LinearGaussianStateSpace.random(2, 2, T, seed=seed)
    x = p.sample(1, seed=seed + 1)[0].reshape(T, 2)
    arrays = dict(A=p.A, C=p.C, Q=p.Q, R=p.R, m0=p.m0, P0=p.P0, y=x)
    return p, x, arrays


def test_the_section_is_registered_with_its_contract():
    assert peers.SECTIONS["sequential"] == "bench.peers_sequential"
    module = importlib.import_module(peers.SECTIONS["sequential"])
    assert isinstance(module.TITLE, str) and callable(module.run_section)


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_numpy_filter_is_unbiased_for_the_kalman_evidence(threshold):
    p, x, arrays = _small()
    truth = p.log_marginal(x)
    est = ps.numpy_bootstrap(arrays, 50, 1000, seed=11, ess_threshold=threshold)
    assert abs(ps.agreement_z(est, truth)) < 5
    # log Z_hat is biased low for finite N (Jensen): the test above is not vacuous
    assert est.mean() < truth


def test_numpy_filter_with_one_particle_and_no_resampling_is_prior_path_importance_sampling():
    """N = 1, ess_threshold = 0: log Z_hat = sum_t log N(x_t; C z_t, R) along one prior path;
    redrawn here from the same generator calls, computed with scipy."""
    from scipy.stats import multivariate_normal

    p, x, arrays = _small(T=4)
    est = ps.numpy_bootstrap(arrays, 1, 1, seed=5, ess_threshold=0.0)[0]
    rng = np.random.default_rng([5, 0])
    z = p.m0 + np.linalg.cholesky(p.P0) @ rng.standard_normal(2)
    total = multivariate_normal(p.C @ z, p.R).logpdf(x[0])
    for t in range(1, 4):
        z = p.A @ z + np.linalg.cholesky(p.Q) @ rng.standard_normal(2)
        total += multivariate_normal(p.C @ z, p.R).logpdf(x[t])
    assert est == pytest.approx(total, abs=1e-10)


def test_particles_filter_is_unbiased_for_the_kalman_evidence():
    pytest.importorskip("particles", reason="the particles library is an optional peer")
    p, x, arrays = _small()
    with ps._blas_threads(1):  # see the module docstring of bench.peers_sequential
        est = ps.ParticlesPeer().run(arrays, 50, 400, seed=2)
    assert abs(ps.agreement_z(est, p.log_marginal(x))) < 5


def test_kalman_log_likelihood_matches_the_particles_library():
    pytest.importorskip("particles", reason="the particles library is an optional peer (its Kalman filter)")
    peer = ps.ParticlesPeer()
    for seed, (s, o, T) in enumerate([(2, 2, 10), (4, 4, 100), (3, 1, 30)]):
        p = LinearGaussianStateSpace.random(s, o, T, seed=seed)
        x = p.sample(1, seed=seed + 7)[0].reshape(T, o)
        arrays = dict(A=p.A, C=p.C, Q=p.Q, R=p.R, m0=p.m0, P0=p.P0, y=x)
        assert p.log_marginal(x) == pytest.approx(peer.kalman_log_likelihood(arrays), abs=1e-9)


def test_run_section_checks_times_and_reports_ratios(monkeypatch):
    # N = 1000 (sd of log Z_hat about 1 on this model: a z-test of Z_hat/p on 30 replicates is sound;
    # at N = 100 the sd is about 3 and the ratio too heavy-tailed for one)
    monkeypatch.setitem(ps.AGREEMENT_REPLICATES, 1000, 30)
    df, text = ps.run_section(repeats=1, Ns=(1000,), per_call=2000)
    impls = set(df.implementation)
    assert {"evidence-bench", "numpy"} <= impls
    assert set(df.columns) >= {"work", "implementation", "size", "samples_per_s", "ratio", "algorithm", "agreement_z"}
    assert (df.samples_per_s > 0).all() and (df.R == 2).all()
    assert df[df.implementation != "evidence-bench"].ratio.max() == pytest.approx(1.0)
    assert (df.agreement_z.abs() < 5).all()
    assert "exact log p(x)" in text and "evidence-bench" in text
    if "particles" not in impls:
        assert "particles: not installed" in text
