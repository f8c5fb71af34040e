"""The compiled discrete-latent gradient kernels (estimators._kernels.discrete):
their model functions against the problems' own NumPy formulas, their estimates
against the exact enumerated ELBO gradient (unbiased methods) and against the
vectorised NumPy implementation of the same estimator (every method, in
distribution: means and variances within 5 SE), which path serves which
problem, and bit-identical results for any NUMBA_NUM_THREADS."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import expit

import estimators
from estimators import Bernoulli
from estimators import discrete_gradients as dg
from estimators._kernels.discrete import bernoulli as kb
from estimators._kernels.discrete import sbn_relaxed
from estimators._kernels.driver import CHUNK
from problems import MissingPixels, SigmoidBeliefNet

Z = 5.0
METHODS = ("arm", "disarm", "rebar", "gumbel_softmax", "straight_through")


def sbn_case(m=8, D=16, seed=3):
    p = SigmoidBeliefNet.random(m, D, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    return p, x, Bernoulli(np.random.default_rng(seed).uniform(0.15, 0.85, m))


def mp_case():
    base = MissingPixels.digits()
    mask = np.zeros(64, dtype=bool)
    mask[[0, 3, 9, 14, 20]] = True
    p = MissingPixels(base.templates, base.weights, mask)
    return p, p.sample(1, seed=4)[0], Bernoulli([0.3, 0.6, 0.5, 0.8, 0.4])


CASES = {"sbn": sbn_case, "mp": mp_case}


def _mean_se(g):
    return g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])


def _var_se(g):
    """Per-coordinate sample variance and its standard error sqrt((m4 - var^2) / R)."""
    d = g - g.mean(axis=0)
    var = (d**2).mean(axis=0)
    return var, np.sqrt(((d**4).mean(axis=0) - var**2) / g.shape[0])


# ---------------------------------------------------------------- the model functions


def test_model_functions_match_the_problems_formulas():
    rng = np.random.default_rng(0)
    big = SigmoidBeliefNet.random(6, 10, seed=2, weight_scale=200.0)  # activations beyond exp's range
    for p, x, q in (sbn_case(), sbn_case(5, 300, 1), mp_case(), (big, big.sample(1, seed=1)[0], Bernoulli(np.full(6, 0.5)))):
        model = dg.compiled_model(p, x, q)
        assert model is not None
        m = q.dim
        binary = (rng.random((40, m)) < 0.5).astype(np.float64)
        relaxed = rng.random((40, m))
        variants = [model]
        if isinstance(model, kb.SBNModel):
            assert model.use_products == (p is not big)
            variants.append(model._replace(use_products=False))
        for mod in variants:
            for Zr in (binary, relaxed):
                v, g = kb.evaluate_rows(mod, Zr)
                want_v, want_g = p.log_joint_relaxed(x, Zr), p.grad_log_joint_relaxed(x, Zr)
                np.testing.assert_allclose(v, want_v, rtol=1e-12, atol=1e-12 * np.abs(want_v).max())
                np.testing.assert_allclose(g, want_g, rtol=1e-11, atol=1e-11 * np.abs(want_g).max())
            np.testing.assert_allclose(kb.evaluate_rows(mod, binary)[0], p.log_joint(x, binary), rtol=1e-12)


def test_which_path_serves_which_problem():
    p, x, q = sbn_case()
    assert isinstance(dg.compiled_model(p, x, q), kb.SBNModel)
    mp, xm, qm = mp_case()
    assert isinstance(dg.compiled_model(mp, xm, qm), kb.MPModel)

    class Tempered(SigmoidBeliefNet):  # another model: its own log_joint
        def log_joint(self, x, z):
            return 0.5 * super().log_joint(x, z)

    t = Tempered(p.W, p.b, p.c)
    assert dg.compiled_model(t, x, q) is None
    # the NumPy path serves it, and it estimates that model's gradient, not the parent's
    a = estimators.gradient(t, x, q, 3, 5, "arm", seed=1)
    assert np.array_equal(a, dg.numpy_gradient(t, x, q, 3, 5, "arm", seed=1))
    # compiled and NumPy paths draw from different generators
    assert not np.array_equal(estimators.gradient(p, x, q, 3, 5, "arm", seed=1), dg.numpy_gradient(p, x, q, 3, 5, "arm", seed=1))
    with pytest.raises(ValueError, match="^method: "):
        dg.numpy_gradient(p, x, q, 3, 5, "score")
    with pytest.raises(ValueError, match="^tau: "):
        dg.numpy_gradient(p, x, q, 3, 5, "gumbel_softmax", tau=1.0)


# ---------------------------------------------------------------- against exact truth and the NumPy peer


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", ["arm", "disarm", "rebar"])
def test_unbiased_compiled_and_numpy_paths(case, method):
    p, x, q = CASES[case]()
    truth = p.elbo_grad(x, q)
    for g in (estimators.gradient(p, x, q, 4, 3000, method, seed=21), dg.numpy_gradient(p, x, q, 4, 3000, method, seed=22)):
        mean, se = _mean_se(g)
        assert np.all(np.abs(mean - truth) < Z * se), (mean - truth) / se


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method,options", [("arm", {}), ("disarm", {}), ("rebar", {"temperature": 0.3, "eta": 0.7}),
                                            ("gumbel_softmax", {"temperature": 0.4}), ("straight_through", {})])
def test_compiled_matches_numpy_in_distribution(case, method, options):
    p, x, q = CASES[case]()
    a = estimators.gradient(p, x, q, 3, 3000, method, seed=5, **options)
    b = dg.numpy_gradient(p, x, q, 3, 3000, method, seed=6, **options)
    (ma, sa), (mb, sb) = _mean_se(a), _mean_se(b)
    assert np.all(np.abs(ma - mb) < Z * np.hypot(sa, sb)), (ma - mb) / np.hypot(sa, sb)
    (va, sva), (vb, svb) = _var_se(a), _var_se(b)
    # a coordinate whose estimate is constant up to rounding (straight-through on MissingPixels'
    # near-deterministic pixels) has a variance of rounding noise, (1e-13 |mean|)^2 at most
    rounding = (1e-10 * np.abs(ma).max()) ** 2
    assert np.all(np.abs(va - vb) < Z * np.hypot(sva, svb) + rounding), (va - vb) / np.hypot(sva, svb)


def test_straight_through_on_missing_pixels_matches_enumeration():
    """E[ST] = sum_b q(b) grad_z log p(x, b) * pi (1 - pi) - theta pi (1 - pi), by enumeration of the 2^5 b."""
    p, x, q = mp_case()
    pi = q.probs
    B = ((np.arange(32)[:, None] >> np.arange(5)) & 1).astype(np.float64)
    qb = np.prod(np.where(B > 0, pi, 1 - pi), axis=1)
    expected = qb @ (p.grad_log_joint_relaxed(x, B) * pi * (1 - pi)) - q.params * pi * (1 - pi)
    mean, se = _mean_se(estimators.gradient(p, x, q, 5, 3000, "straight_through", seed=9))
    # a near-deterministic pixel's estimate has a rounding-level SE: allow rounding, 1e-10 of the scale
    assert np.all(np.abs(mean - expected) < Z * se + 1e-10 * np.abs(expected).max()), (mean - expected, se)


def test_several_chunks_per_replicate():
    """K over two chunks: the units of a replicate are combined (DisARM, exact truth)."""
    p, x, q = sbn_case(5, 6, 2)
    g = estimators.gradient(p, x, q, 2 * CHUNK + 7, 10, "disarm", seed=3)
    mean, se = _mean_se(g)
    assert np.all(np.abs(mean - p.elbo_grad(x, q)) < Z * se)


# ---------------------------------------------------------------- reproducibility


def test_serial_and_parallel_drivers_agree_bit_for_bit():
    for case in CASES.values():
        p, x, q = case()
        model, kq = dg.compiled_model(p, x, q), dg._kernel_q(q)
        for method, code in kb.CODES.items():
            args = (model, kq, code, 0.6, 0.9, np.uint64(77), 37, 11, *kb._work_size(model))
            assert kb._means_serial(*args).tobytes() == kb._means_parallel(*args).tobytes(), method


@pytest.mark.parametrize("tau", [0.5, 0.3, 1.0, 0.25])
@pytest.mark.parametrize("method", ["gumbel_softmax", "straight_through"])
def test_sbn_block_path_equals_the_per_sample_path_on_the_same_draws(method, tau):
    """On SBNModel these two methods run in blocks (``sbn_relaxed``: zeta by the
    identity 1/(1 + e^{-theta/tau} rho^{1/tau}), exp by ``vexp``); the per-sample
    ``bernoulli`` unit (libm exp/log, the textbook formula) sees the same uniforms,
    so the two agree to rounding.  K = 2 CHUNK + 37 covers a partial block and a
    second chunk; one coordinate with |theta/tau| > 700 takes the direct branch."""
    p, x, _ = sbn_case(6, 10, 5)
    q = Bernoulli(np.full(6, 0.5)).with_params(np.array([-1.2, 0.4, 2.0, -0.3, 0.9, -800.0 * tau]))
    model, kq = dg.compiled_model(p, x, q), dg._kernel_q(q)
    K, R = 2 * CHUNK + 37, 2
    code = kb.CODES[method]
    block = sbn_relaxed.means(model, kq, code, tau, np.uint64(5), K, R)
    old = kb._means_serial(model, kq, code, tau, 0.0, np.uint64(5), K, R, *kb._work_size(model))
    scale = np.abs(old).max()
    assert np.all(np.isfinite(block))
    assert np.abs(block - old).max() <= 1e-12 * scale, (block, old)
    args = (model, kq, code, tau, sbn_relaxed.integer_power(tau)) + sbn_relaxed._gamma_direct(kq.theta, tau)
    args += (np.uint64(5), 37, 11)
    assert sbn_relaxed._means_serial(*args).tobytes() == sbn_relaxed._means_parallel(*args).tobytes()


def test_integer_power_only_for_exact_small_integers():
    assert [sbn_relaxed.integer_power(t) for t in (1.0, 0.5, 0.25, 0.125)] == [1, 2, 4, 8]
    assert [sbn_relaxed.integer_power(t) for t in (0.3, 0.6, 2.0, 0.1, 1 / 9)] == [0, 0, 0, 0, 0]


def test_bit_identical_for_any_thread_count(tmp_path):
    script = textwrap.dedent(
        """
        import sys, numpy as np, estimators
        from estimators import Bernoulli
        from problems import MissingPixels, SigmoidBeliefNet
        p = SigmoidBeliefNet.random(8, 16, seed=3); x = p.sample(1, seed=4)[0]
        q = Bernoulli(np.linspace(0.2, 0.8, 8))
        base = MissingPixels.digits(latent_rows=1); xm = base.sample(1, seed=2)[0]
        qm = Bernoulli(np.linspace(0.3, 0.7, 8))
        out = []
        for method in ("arm", "disarm", "rebar", "gumbel_softmax", "straight_through"):
            out.append(estimators.gradient(p, x, q, 40, 1000, method, seed=2))  # K R >= 2^15: the parallel driver
            out.append(estimators.gradient(base, xm, qm, 40, 1000, method, seed=2))
        np.save(sys.argv[1], np.concatenate(out))
        """
    )
    outs = []
    for threads in (1, 2):
        path = tmp_path / f"out{threads}.npy"
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env, timeout=600)
        outs.append(np.load(path))
    assert np.all(np.isfinite(outs[0]))
    assert outs[0].tobytes() == outs[1].tobytes()
