"""The gradient estimators: unbiasedness against exact answers, the known bias
of STL for the IWAE bound, exact per-replicate identities, the streaming
reductions, reproducibility and input validation.

Statistical checks compare a replicate mean with the truth at 5 standard
errors (SE from the replicates, per coordinate), with fixed seeds.  Expected
values come from independent computations: closed forms (``elbo_grad``,
``elbo_model_grad``), finite differences of the exact ELBO, enumeration of
every multinomial count vector for a discrete latent, and finite differences
of the *value* estimators (``estimators.elbo`` / ``importance_sampling``),
which see the same draws as ``gradient`` for the same seed.
"""

import itertools
from math import factorial

import numba
import numpy as np
import pytest
from scipy import special
from scipy.special import softmax

import estimators
from estimators import Bernoulli, Categorical, Gaussian, MixtureOfGaussians, MultivariateGaussian, Uniform
from estimators._gradient_targets import gradient_target_for
from estimators._kernels import gradient_driver as gd
from estimators._kernels.driver import CHUNK
from estimators.gradients import METHODS, iwae_gradient_reference
from problems import GaussianMixture, LinearGaussian, MissingPixels, MixturePrior
from problems.base import Problem

ALL_METHODS = ["score", "score_loo", "reparam", "stl", "dreg"]
Z = 5.0  # tolerance in standard errors


def mean_se(g):
    return g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])


def assert_within(est_mean, est_se, truth, truth_se=0.0, z=Z, what=""):
    se = np.sqrt(np.asarray(est_se) ** 2 + np.asarray(truth_se) ** 2)
    dev = np.abs(est_mean - truth) / se
    assert np.all(dev < z), f"{what}: deviation in SE {np.round(dev, 2)}; mean {est_mean}, truth {truth}"


# --------------------------------------------------------------------------- instances


def lg_case(seed=0, D=3, d=2):
    """A random LinearGaussian, an x from it and a mean-field q off the posterior."""
    p = LinearGaussian.random(D, d, seed=seed)
    x = p.sample(1, seed=seed + 100)[0]
    post = p.posterior(x)
    rng = np.random.default_rng(seed + 200)
    q = Gaussian(post.mean + 0.5 * rng.standard_normal(d), np.sqrt(np.diag(post.cov)) * np.exp(0.3 * rng.standard_normal(d)))
    return p, x, q


def lg_mvg_case(seed=1):
    p, x, q = lg_case(seed)
    cov = np.array([[0.6, 0.2], [0.2, 0.9]])
    return p, x, MultivariateGaussian(q.loc, cov)


def gm_case(seed=0, C=4, D=2):
    p = GaussianMixture.random(C, D, seed=seed)
    x = p.sample(1, seed=seed + 100)[0]
    rng = np.random.default_rng(seed + 200)
    q = Categorical(softmax(rng.standard_normal(C)))
    return p, x, q


def mp_case(seed=3):
    """MissingPixels with 16 latent bits (exact by enumeration) and a Bernoulli q."""
    p = MissingPixels.digits(latent_rows=2)
    x = p.sample(1, seed=seed)[0]
    rng = np.random.default_rng(seed)
    q = Bernoulli(rng.uniform(0.1, 0.9, p.latent_dim))
    return p, x, q


def mpr_case():
    """The lecture's bimodal MixturePrior (exact ELBO gradient by quadrature) and a broad Gaussian q."""
    p = MixturePrior.lecture()
    return p, p.lecture_x, Gaussian([0.5], [2.0])


class NoKernel(Problem):
    """A problem type no kernel knows."""

    obs_dim = latent_dim = 1

    def log_joint(self, x, z):
        return np.zeros(np.shape(z)[:-1])


# --------------------------------------------------------------------------- unbiasedness: elbo


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("case", ["gaussian", "mvg"])
def test_elbo_gradient_unbiased_linear_gaussian(method, case):
    p, x, q = lg_case(0) if case == "gaussian" else lg_mvg_case(1)
    g = estimators.gradient(p, x, q, K=3, R=20000, method=method, objective="elbo", seed=7)
    assert g.shape == (20000, len(q.params))
    assert_within(*mean_se(g), p.elbo_grad(x, q), what=f"{method} {case}")


@pytest.mark.parametrize("method", ["score", "score_loo"])
def test_elbo_gradient_unbiased_gaussian_mixture(method):
    p, x, q = gm_case(0)
    g = estimators.gradient(p, x, q, K=3, R=20000, method=method, objective="elbo", seed=3)
    assert g.shape == (20000, 4)
    assert_within(*mean_se(g), p.elbo_grad(x, q), what=method)


@pytest.mark.parametrize("method", ["score", "score_loo"])
def test_elbo_gradient_unbiased_missing_pixels(method):
    """Bernoulli q on a binary latent: the exact gradient by enumerating 2^16 completions."""
    p, x, q = mp_case(3)
    g = estimators.gradient(p, x, q, K=3, R=20000, method=method, objective="elbo", seed=4)
    assert g.shape == (20000, p.latent_dim)
    assert_within(*mean_se(g), p.elbo_grad(x, q), what=method)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_elbo_gradient_unbiased_mixture_prior(method):
    """A non-Gaussian (bimodal) posterior; the exact gradient by quadrature."""
    p, x, q = mpr_case()
    g = estimators.gradient(p, x, q, K=3, R=20000, method=method, objective="elbo", seed=6)
    assert_within(*mean_se(g), p.elbo_grad(x, q), what=method)


@pytest.mark.parametrize("method", ["dreg", "score_loo"])
def test_iwae_gradient_mixture_prior_matches_reparam(method):
    p, x, q = mpr_case()
    ref = estimators.gradient(p, x, q, 4, 40000, "reparam", "iwae", seed=13)
    g = estimators.gradient(p, x, q, 4, 40000, method, "iwae", seed=14)
    assert_within(*mean_se(g), *mean_se(ref), what=method)


@pytest.mark.parametrize(
    "make", [lg_case, lg_mvg_case, gm_case, mp_case, mpr_case], ids=["lg", "lg-mvg", "gm", "mp", "mpr"]
)
@pytest.mark.parametrize("K", [7, CHUNK + 5])
def test_same_draws_as_value_estimators(make, K):
    """A gradient block draws exactly what the log-weight block draws: the
    pass-1 sum of log-weights equals weight_stats' sum_log_w (so a change to
    either sampler that breaks this is caught here).  To rounding only: the
    categorical log-weight kernel folds by counting (sum_c n_c log w_c), not in
    draw order; a different draw would change these sums at O(1)."""
    p, x, q = make()
    target = gradient_target_for(p, x, q)
    key = estimators.weights.seed_key(3)
    for mode in sorted(target.modes):
        P = len(q.params) if mode != gd.MODEL else p.W.size + 2 * p.obs_dim
        acc, _ = gd.gradient_sums(target.kind, target.args, mode, P, {gd.V_S, gd.V_W}, key, K, 4)
        want = estimators.weight_stats(p, x, q, K, 4, seed=3)
        np.testing.assert_allclose(acc[:, gd.I_F], want.sum_log_w, rtol=1e-13, atol=0)
        np.testing.assert_allclose(acc[:, gd.I_M] + np.log(acc[:, gd.I_S1]), want.log_sum_w, rtol=1e-13)


def test_elbo_grad_closed_form_matches_finite_differences():
    """The reference itself: p.elbo_grad against central differences of p.elbo."""
    for p, x, q in (lg_case(0), lg_mvg_case(1), gm_case(0)):
        theta = q.params
        h = 1e-6
        fd = np.array(
            [
                (p.elbo(x, q.with_params(theta + h * e)) - p.elbo(x, q.with_params(theta - h * e))) / (2 * h)
                for e in np.eye(len(theta))
            ]
        )
        np.testing.assert_allclose(p.elbo_grad(x, q), fd, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- unbiasedness: iwae


@pytest.mark.parametrize("method", ["dreg", "score", "score_loo"])
def test_iwae_gradient_matches_reparam(method):
    """Every unbiased method has the reparam mean (5 SE of the difference; independent seeds)."""
    p, x, q = lg_case(0)
    K = 4
    ref = estimators.gradient(p, x, q, K, 40000, "reparam", "iwae", seed=11)
    g = estimators.gradient(p, x, q, K, 40000, method, "iwae", seed=12)
    m, se = mean_se(g)
    assert_within(m, se, *mean_se(ref), what=method)


def iwae_objective_exact(p, x, eta, K):
    """E[L_K] for a Categorical q = softmax(eta), by enumerating every count vector."""
    table = p.log_joint_table(x)
    log_pi = eta - np.log(np.sum(np.exp(eta)))
    C = len(eta)
    total = 0.0
    for n in itertools.product(range(K + 1), repeat=C):
        if sum(n) != K:
            continue
        n = np.array(n)
        log_prob = np.log(factorial(K)) - sum(np.log(factorial(int(c))) for c in n) + np.sum(n * log_pi)
        L = np.log(np.sum(n * np.exp(table - log_pi)) / K)
        total += np.exp(log_prob) * L
    return total


def iwae_gradient_exact(p, x, q, K, h=1e-5):
    eta = q.params
    return np.array(
        [
            (iwae_objective_exact(p, x, eta + h * e, K) - iwae_objective_exact(p, x, eta - h * e, K)) / (2 * h)
            for e in np.eye(len(eta))
        ]
    )


@pytest.mark.parametrize("method", ["score", "score_loo"])
def test_iwae_gradient_unbiased_gaussian_mixture_by_enumeration(method):
    p, x, q = gm_case(2, C=3)
    K = 4
    truth = iwae_gradient_exact(p, x, q, K)
    # the truth is not the ELBO gradient (else this would not test the IWAE terms)
    assert np.max(np.abs(truth - p.elbo_grad(x, q))) > 0.05
    g = estimators.gradient(p, x, q, K, 40000, method, "iwae", seed=5)
    assert_within(*mean_se(g), truth, what=method)


def test_iwae_gradient_reference():
    p, x, q = lg_case(0)
    mean, se = iwae_gradient_reference(p, x, q, K=1)
    np.testing.assert_array_equal(mean, p.elbo_grad(x, q))
    np.testing.assert_array_equal(se, 0.0)
    mean, se = iwae_gradient_reference(p, x, q, K=3, R_ref=30000, seed=1)
    assert mean.shape == se.shape == (4,) and np.all(se > 0)
    g = estimators.gradient(p, x, q, 3, 30000, "dreg", "iwae", seed=2)
    m, s = mean_se(g)
    assert_within(m, s, mean, se, what="dreg vs reference")
    # discrete q: VIMCO replicates, against enumeration
    pg, xg, qg = gm_case(2, C=3)
    mean, se = iwae_gradient_reference(pg, xg, qg, K=4, R_ref=40000, seed=3)
    assert_within(mean, se, iwae_gradient_exact(pg, xg, qg, 4), what="reference vs enumeration")


# --------------------------------------------------------------------------- STL and DReG


def test_stl_is_biased_for_iwae_and_unbiased_at_K1():
    """STL for the IWAE bound at K > 1 drops sum_k w~_k s_k, whose mean is not 0.

    Measured (seed 21/22, K = 8, R = 20000): the STL mean differs from the
    reparam mean by 28-66 SE per coordinate; required: > 5 SE in every one."""
    p, x, q = lg_case(0)
    K = 8
    ref = estimators.gradient(p, x, q, K, 20000, "reparam", "iwae", seed=21)
    stl = estimators.gradient(p, x, q, K, 20000, "stl", "iwae", seed=22)
    (m1, s1), (m2, s2) = mean_se(stl), mean_se(ref)
    dev = np.abs(m1 - m2) / np.sqrt(s1**2 + s2**2)
    assert np.all(dev > Z), dev
    # at K = 1 the IWAE bound is the ELBO and STL is unbiased
    stl1 = estimators.gradient(p, x, q, 1, 20000, "stl", "iwae", seed=23)
    assert_within(*mean_se(stl1), p.elbo_grad(x, q), what="stl K=1")


def test_dreg_on_elbo_is_stl():
    """Documented choice: DReG of each one-sample term is STL."""
    p, x, q = lg_case(0)
    a = estimators.gradient(p, x, q, 5, 50, "dreg", "elbo", seed=4)
    b = estimators.gradient(p, x, q, 5, 50, "stl", "elbo", seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, estimators.gradient(p, x, q, 5, 50, "dreg", "iwae", seed=4))


def test_methods_table():
    compiled = {name: spec for name, spec in METHODS.items() if not spec.numpy}
    assert set(compiled) == set(ALL_METHODS)
    assert {n for n, s in METHODS.items() if s.numpy} == {"arm", "disarm", "rebar", "gumbel_softmax", "straight_through"}
    for name, spec in METHODS.items():
        if spec.numpy:  # estimators.discrete_gradients: the elbo objective, options with defaults
            assert set(spec.objectives) == {"elbo"} and spec.mode is None
            assert all(fn.__doc__ for fn in spec.objectives.values())
            continue
        assert set(spec.objectives) - {"wake"} == {"elbo", "iwae"}
        assert spec.reparam == (name in ("reparam", "stl", "dreg"))
        for objective, fn in spec.objectives.items():
            assert fn.__doc__ and ".. math::" in fn.__doc__ or ":math:" in fn.__doc__
            assert fn.vectors <= {gd.V_S, gd.V_FS, gd.V_G1, gd.V_G2, gd.V_W}
            # an ELBO gradient reads no weight sums (pass 1 takes no exp); the others do
            assert (gd.V_W in fn.vectors) == (objective != "elbo"), (name, objective)


# --------------------------------------------------------------------------- exact per-replicate identities


def fd_params(fn, theta, h):
    return np.stack([(fn(theta + h * e) - fn(theta - h * e)) / (2 * h) for e in np.eye(len(theta))], axis=-1)


@pytest.mark.parametrize("case", ["gaussian", "mvg"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("K", [3, 2 * CHUNK + 7])
def test_reparam_is_derivative_of_value_estimate(case, objective, K):
    """reparam = d/dphi of the value estimate at fixed noise, replicate by replicate.

    estimators.elbo / importance_sampling with the same seed draw the same
    base noise eps, so their per-replicate output is a smooth function of
    q.params whose derivative is exactly the reparam estimate (checked to
    finite-difference accuracy; K > CHUNK exercises the chunk merges)."""
    p, x, q = lg_case(0) if case == "gaussian" else lg_mvg_case(1)
    R = 4 if K > CHUNK else 50
    value = estimators.elbo if objective == "elbo" else estimators.importance_sampling
    g = estimators.gradient(p, x, q, K, R, "reparam", objective, seed=9)
    fd = fd_params(lambda th: value(p, x, q.with_params(th), K, R, seed=9), q.params, 1e-5)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("K", [5, CHUNK + 3])
def test_model_gradient_is_derivative_of_value_estimate(objective, K):
    """model_gradient = d/dtheta of the value estimate with the same draws (q is fixed)."""
    p, x, q = lg_case(0)
    R = 3 if K > CHUNK else 40
    value = estimators.elbo if objective == "elbo" else estimators.importance_sampling
    g = estimators.model_gradient(p, x, q, K, R, objective, seed=2)
    D, d = p.W.shape
    assert g["W"].shape == (R, D, d) and g["b"].shape == (R, D) and g["psi"].shape == (R, D)
    h = 1e-6
    for name in ("W", "b", "psi"):
        base = {"W": p.W, "b": p.b, "psi": p.psi}
        fd = np.empty((R,) + base[name].shape)
        for idx in np.ndindex(base[name].shape):
            vals = []
            for sgn in (1, -1):
                kw = {k: v.copy() for k, v in base.items()}
                kw[name][idx] += sgn * h
                vals.append(value(LinearGaussian(**kw), x, q, K, R, seed=2))
            fd[(slice(None),) + idx] = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(g[name], fd, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("q_kind", ["gaussian", "mvg", "uniform"])
def test_elbo_model_grad_closed_form_and_estimator(q_kind):
    p, x, q = lg_case(3)
    if q_kind == "mvg":
        q = MultivariateGaussian(q.loc, [[0.6, 0.2], [0.2, 0.9]])
    elif q_kind == "uniform":
        q = Uniform(q.loc - 1.0, q.loc + 1.5)
    exact = p.elbo_model_grad(x, q)
    h = 1e-6
    for name in ("W", "b", "psi"):
        base = {"W": p.W, "b": p.b, "psi": p.psi}
        fd = np.empty(base[name].shape)
        for idx in np.ndindex(base[name].shape):
            vals = []
            for sgn in (1, -1):
                kw = {k: v.copy() for k, v in base.items()}
                kw[name][idx] += sgn * h
                vals.append(LinearGaussian(**kw).elbo(x, q))
            fd[idx] = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(exact[name], fd, rtol=1e-6, atol=1e-7, err_msg=name)
    g = estimators.model_gradient(p, x, q, 4, 20000, "elbo", seed=8)
    for name in ("W", "b", "psi"):
        m, se = mean_se(g[name])
        assert_within(m, se, exact[name], what=name)


# --------------------------------------------------------------------------- streaming reductions


def test_pass1_sums_split_and_merged_equal_direct():
    """fold_sums over blocks + chunk merges equal the definitions, including
    Srest (sum of all weights but one maximal one) and log-weights of -1e6."""
    rng = np.random.default_rng(0)
    n, P = 700, 3
    lw = rng.normal(-1e6, 30.0, n)
    lw[rng.choice(n, 20, replace=False)] = -np.inf
    S = rng.standard_normal((n, P))
    finite = np.isfinite(lw)
    M = lw.max()
    e = np.where(finite, np.exp(lw - M), 0.0)
    want = dict(
        M=M, S1=e.sum(), Srest=np.delete(e, np.argmax(lw)).sum(),
        G1=(e[:, None] * S).sum(0), G2=((e**2)[:, None] * S).sum(0), sumS=S.sum(0),
    )
    off, W = gd.layout({gd.V_S, gd.V_FS, gd.V_G1, gd.V_G2}, P)
    parts = []
    for cut in ([0, 64, 128, 700], [0, 350, 351, 700], [0, 700]):  # chunk boundaries
        chunk_accs = []
        for a, b in zip(cut[:-1], cut[1:]):
            acc = np.empty(W)
            gd.init_sums(acc)
            for i in range(a, b, 64):  # blocks of 64
                j = min(b, i + 64)
                gd.fold_sums(acc, np.ascontiguousarray(lw[i:j]), np.ascontiguousarray(S[i:j]), j - i, P, off)
            chunk_accs.append(acc)
        parts.append(gd.combine_sums(np.array(chunk_accs), 1, len(chunk_accs), P, off)[0])
    for got in parts:
        assert got[gd.I_M] == want["M"]
        np.testing.assert_allclose(got[gd.I_S1], want["S1"], rtol=1e-13)
        np.testing.assert_allclose(got[gd.I_SREST], want["Srest"], rtol=1e-13)
        np.testing.assert_allclose(got[off[gd.V_S] : off[gd.V_S] + P], want["sumS"], rtol=1e-12)
        np.testing.assert_allclose(got[off[gd.V_G1] : off[gd.V_G1] + P], want["G1"], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(got[off[gd.V_G2] : off[gd.V_G2] + P], want["G2"], rtol=1e-12, atol=1e-13)
        assert got[gd.I_F] == -np.inf


def test_vimco_signal_no_cancellation():
    """The VIMCO signal against a direct evaluation, with one dominant weight
    (where sum_{j != k} w_j = S1 - w_k would lose every digit)."""
    f = np.array([0.0, -40.0, -45.0, -3.0])
    K = len(f)
    M = f.max()
    e = np.exp(f - M)
    tot = np.array([M, e.sum(), e.sum() - 1.0, f.sum()])  # Srest: without the max
    for k in range(K):
        others = np.delete(f, k)
        L = np.log(np.mean(np.exp(f)))
        L_k = np.log((np.sum(np.exp(others)) + np.exp(others.mean())) / K)
        want = L - L_k - np.exp(f[k]) / np.exp(f).sum()
        got = gd._signal(gd.VIMCO, f[k], K, tot)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gd._signal(gd.LOO_ELBO, -3.0, K, tot), (-3.0 - f.mean()) / (K - 1), rtol=1e-14)


def test_far_log_weights_are_finite():
    """Log-weights around -1e6 (x far out): the iwae estimators stay finite."""
    p = LinearGaussian.random(2, 2, seed=0)
    x = np.array([1500.0, -1400.0])
    q = p.prior()
    lw = estimators.elbo(p, x, q, 10, 2)
    assert np.all(lw < -1e5)
    for method in ALL_METHODS:
        for objective in ("elbo", "iwae"):
            g = estimators.gradient(p, x, q, 10, 5, method, objective)
            assert np.all(np.isfinite(g)), (method, objective)


# --------------------------------------------------------------------------- reproducibility


REPRO = [
    ("lg", lambda: lg_case(0), "score_loo", "iwae"),
    ("lg", lambda: lg_case(0), "dreg", "iwae"),
    ("lg-mvg", lambda: lg_mvg_case(1), "stl", "elbo"),
    ("gm", lambda: gm_case(0), "score", "iwae"),
    ("gm", lambda: gm_case(0), "score_loo", "elbo"),
    ("mp", lambda: mp_case(3), "score_loo", "iwae"),
    ("mpr", mpr_case, "dreg", "iwae"),
]


@pytest.mark.parametrize("label, make, method, objective", REPRO, ids=[f"{r[0]}-{r[2]}-{r[3]}" for r in REPRO])
def test_bit_identical_across_threads_and_seed_sensitive(label, make, method, objective):
    p, x, q = make()
    K, R = 2 * CHUNK + 11, 3  # several chunks per replicate, merged in order
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = estimators.gradient(p, x, q, K, R, method, objective, seed=5)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = estimators.gradient(p, x, q, K, R, method, objective, seed=5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(many, estimators.gradient(p, x, q, K, R, method, objective, seed=5))
    other = estimators.gradient(p, x, q, K, R, method, objective, seed=6)
    assert not np.any(other == many)


def test_pass1_without_weight_sums():
    """Without V_W (an ELBO gradient) pass 1 leaves M = -inf, S1 = Srest = 0
    and gives the other sums to the bit; G1 or G2 bring the weight sums in."""
    rng = np.random.default_rng(1)
    n, P = 300, 4
    lw = rng.normal(-5.0, 3.0, n)
    S = rng.standard_normal((n, P))
    got = {}
    for vectors in ({gd.V_S, gd.V_FS}, {gd.V_S, gd.V_FS, gd.V_W}):
        off, W = gd.layout(vectors, P)
        acc = np.empty(W)
        gd.init_sums(acc)
        for i in range(0, n, 64):
            j = min(n, i + 64)
            gd.fold_sums(acc, lw[i:j].copy(), S[i:j].copy(), j - i, P, off)
        got[gd.V_W in vectors] = acc
    assert got[False][gd.I_M] == -np.inf and got[False][gd.I_S1] == 0.0 and got[False][gd.I_SREST] == 0.0
    np.testing.assert_allclose(got[True][gd.I_M] + np.log(got[True][gd.I_S1]), special.logsumexp(lw), rtol=1e-13)
    np.testing.assert_array_equal(got[False][gd.I_F:], got[True][gd.I_F:])
    assert gd.layout({gd.V_S}, P)[0][gd.V_W] == -1
    assert gd.layout({gd.V_G1}, P)[0][gd.V_W] == gd.I_M and gd.layout({gd.V_G2}, P)[0][gd.V_W] == gd.I_M


@pytest.mark.parametrize("make", [lg_case, gm_case], ids=["lg", "gm"])
def test_serial_and_parallel_drivers_agree(make):
    """Small calls run the units serially; the numbers must be the same."""
    p, x, q = make()
    target = gradient_target_for(p, x, q)
    key = estimators.weights.seed_key(1)
    K, R, P = CHUNK + 5, 3, len(q.params)
    off, width = gd.layout({gd.V_S, gd.V_FS, gd.V_G1, gd.V_G2}, P)
    args = target.kind(*target.args)
    a = gd._sums_serial(args, gd.SCORE, P, off, width, key, K, R)
    tot = np.ascontiguousarray(a[:, : gd.NSCALAR])
    a2 = gd._signals_serial(args, gd.SCORE, P, key, K, R, gd.VIMCO, tot)
    # the parallel drivers split the units into one run per slot; any slot count gives the same bits
    for n_threads in (1, 2, 3, 7):
        b = gd._sums_parallel(args, gd.SCORE, P, off, width, key, K, R, n_threads)
        np.testing.assert_array_equal(a, b)
        b2 = gd._signals_parallel(args, gd.SCORE, P, key, K, R, gd.VIMCO, tot, n_threads)
        np.testing.assert_array_equal(a2, b2)


def test_model_gradient_bit_identical():
    p, x, q = lg_case(0)
    a = estimators.model_gradient(p, x, q, 7, 20, "iwae", seed=1)
    b = estimators.model_gradient(p, x, q, 7, 20, "iwae", seed=1)
    c = estimators.model_gradient(p, x, q, 7, 20, "iwae", seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])


# --------------------------------------------------------------------------- validation


def bad_calls():
    p, x, q = lg_case(0)
    pg, xg, qg = gm_case(0)
    box = Uniform([-1.0, -1.0], [1.0, 2.0])
    g = estimators.gradient
    return [
        ("method", lambda: g(p, x, q, 3, 2, "reinforce")),
        ("objective", lambda: g(p, x, q, 3, 2, "score", objective="kl")),
        ("K", lambda: g(p, x, q, 0, 2, "score")),
        ("K", lambda: g(p, x, q, 2.0, 2, "score")),
        ("R", lambda: g(p, x, q, 3, 0, "score")),
        ("K", lambda: g(p, x, q, 1, 2, "score_loo")),
        ("K", lambda: g(pg, xg, qg, 1, 2, "score_loo", "iwae")),
        ("seed", lambda: g(p, x, q, 3, 2, "score", seed=-1)),
        ("x", lambda: g(p, np.array([np.nan, 0.0, 0.0]), q, 3, 2, "score")),
        ("x", lambda: g(p, x[:2], q, 3, 2, "score")),
        ("q", lambda: g(p, x, qg, 3, 2, "score")),
        ("q", lambda: g(p, x, Gaussian([0.0, 0.0, 0.0], 1.0), 3, 2, "reparam")),
        ("q", lambda: g(p, x, "normal", 3, 2, "reparam")),
        ("p", lambda: g("model", x, q, 3, 2, "reparam")),
        ("method", lambda: g(pg, xg, qg, 3, 2, "reparam")),
        ("method", lambda: g(pg, xg, qg, 3, 2, "stl", "iwae")),
        ("method", lambda: g(pg, xg, qg, 3, 2, "dreg", "iwae")),
        ("method", lambda: g(p, x, box, 3, 2, "reparam")),
        ("method", lambda: g(p, x, box, 3, 2, "dreg", "iwae")),
        ("q", lambda: g(p, x, box, 3, 2, "score")),
        ("method", lambda: g(*mp_case(3), 3, 2, "stl")),
        ("q", lambda: g(*mpr_case()[:2], Uniform([-1.0], [1.0]), 3, 2, "score")),
        ("method", lambda: g(*mpr_case()[:2], MixtureOfGaussians([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0]), 3, 2, "reparam")),
        ("p", lambda: estimators.model_gradient(*mpr_case(), 3, 2)),
        ("p.grad_log_joint", lambda: g(NoKernel(), [0.5], Gaussian([0.0], 1.0), 3, 2, "reparam")),
        ("objective", lambda: estimators.model_gradient(p, x, q, 3, 2, "mse")),
        ("p", lambda: estimators.model_gradient(pg, xg, qg, 3, 2)),
        ("R", lambda: estimators.model_gradient(p, x, q, 3, -1)),
        ("R_ref", lambda: iwae_gradient_reference(p, x, q, 3, R_ref=1)),
    ]


@pytest.mark.parametrize("arg, call", bad_calls(), ids=[f"{i}-{c[0]}" for i, c in enumerate(bad_calls())])
def test_bad_input_names_the_argument(arg, call):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        call()


def test_pathwise_message_says_reparameterizable():
    pg, xg, qg = gm_case(0)
    with pytest.raises(ValueError, match="needs a reparameterizable q"):
        estimators.gradient(pg, xg, qg, 3, 2, "reparam")
