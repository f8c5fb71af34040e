r"""A user's own proposal, written against the protocol of
``problems.distributions`` (``estimators.Proposal``), on the estimators.

The proposal: independent Student-t coordinates with a diagonal scale,

.. math:: q(z) = \prod_i t_\nu(z_i;\ \mu_i, s_i), \qquad \theta = (\mu, \log s),

with ``log_prob`` from ``scipy.stats.t``.  It is not a subclass of anything.
Truth is computed here, independently of the package:

* d = 1 (a one-dimensional LinearGaussian): the ELBO by adaptive quadrature of
  :math:`\int q(z)[\log p(x, z) - \log q(z)]\,dz` (log p(x, z) from
  scipy.stats.norm), its gradient by central differences of the quadrature;
* d = 2: the ELBO in closed form -- log p(x, z) is quadratic in z, so
  :math:`\mathbb E_q \log p(x,z)` needs only the mean and covariance
  :math:`\operatorname{diag}(s^2 \nu/(\nu-2))`, and the entropy is scipy's
  ``t.entropy`` -- and its gradient by central differences of it;
* log p(x) from scipy's multivariate normal of the marginal.

Every statistical check: fixed seed, |mean - truth| < 5 SE, SE from the replicates.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

import estimators
import problems

Z_MAX = 5.0
# nu = 10: the score estimator's terms f_k s_k grow like z^2 under q, so the
# replicates' SE is itself a sound estimate only when E_q[z^8] < inf (nu > 8).
NU = 10.0
_LOG_2PI = float(np.log(2.0 * np.pi))


class StudentT:
    """A product of independent t_nu(loc_i, scale_i): the proposal protocol's
    required members and the score (``grad_log_prob``)."""

    latent_type = "continuous"
    reparameterizable = False

    def __init__(self, loc, scale, nu=NU):
        self.loc = np.atleast_1d(np.asarray(loc, dtype=np.float64))
        self.scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), self.loc.shape).copy()
        self.nu = float(nu)
        self.dim = self.loc.shape[0]

    @property
    def params(self):
        return np.concatenate([self.loc, np.log(self.scale)])

    def with_params(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        return type(self)(theta[: self.dim], np.exp(theta[self.dim :]), self.nu)

    @staticmethod
    def _rng(seed):
        return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def sample(self, n, seed=0):
        return self.loc + self.scale * self._rng(seed).standard_t(self.nu, size=(n, self.dim))

    def log_prob(self, z):
        return np.sum(stats.t.logpdf(z, self.nu, loc=self.loc, scale=self.scale), axis=-1)

    def _u(self, z):
        u = (np.asarray(z, dtype=np.float64) - self.loc) / self.scale
        return u, (self.nu + 1.0) / (self.nu + u * u)

    def grad_log_prob(self, z):
        r"""d log q / d mu_i = a u_i / s_i, d log q / d log s_i = a u_i^2 - 1, a = (nu+1)/(nu+u_i^2)."""
        u, a = self._u(z)
        return np.concatenate([a * u / self.scale, a * u * u - 1.0], axis=-1)


class ReparamStudentT(StudentT):
    """The same q with the pathwise members: z = loc + scale * eps, eps ~ t_nu."""

    reparameterizable = True

    def sample_noise(self, n, seed=0):
        return self._rng(seed).standard_t(self.nu, size=(n, self.dim))

    def transform(self, eps):
        return self.loc + self.scale * np.asarray(eps, dtype=np.float64)

    def transform_vjp(self, eps, v):
        v = np.asarray(v, dtype=np.float64)
        return np.concatenate([v, v * self.scale * np.asarray(eps, dtype=np.float64)], axis=-1)

    def grad_z_log_prob(self, z):
        u, a = self._u(z)
        return -a * u / self.scale


class LinearGaussianWithGrad:
    """A user's wrapper of a built-in LinearGaussian with its own grad_log_joint
    (a plain class on the generic path, whatever the built-in offers)."""

    latent_type = "continuous"

    def __init__(self, lg):
        self.lg = lg
        self.obs_dim, self.latent_dim = lg.obs_dim, lg.latent_dim

    def log_joint(self, x, z):
        return self.lg.log_joint(x, z)

    def grad_log_joint(self, x, z):
        lg = self.lg
        return -z + ((x - z @ lg.W.T - lg.b) / lg.psi) @ lg.W

    def log_marginal(self, x):
        return self.lg.log_marginal(x)

    def prior(self):
        return self.lg.prior()


# --------------------------------------------------------------------------- truth


def finite_difference(f, theta, h=1e-4):
    theta = np.asarray(theta, dtype=np.float64)
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def log_joint_scipy(lg, x, z):
    """log N(z; 0, I) + sum_j log N(x_j; (W z + b)_j, psi_j), one z of shape (d,)."""
    z = np.atleast_1d(z)
    return float(
        np.sum(stats.norm.logpdf(z)) + np.sum(stats.norm.logpdf(x, loc=lg.W @ z + lg.b, scale=np.sqrt(lg.psi)))
    )


def log_marginal_scipy(lg, x):
    return float(stats.multivariate_normal(lg.b, lg.W @ lg.W.T + np.diag(lg.psi)).logpdf(x))


def elbo_quadrature(lg, x, theta):
    """d = 1: int q(z) (log p(x, z) - log q(z)) dz by adaptive quadrature."""
    loc, scale = theta[0], np.exp(theta[1])
    q = stats.t(NU, loc=loc, scale=scale)

    def integrand(z):
        lq = q.logpdf(z)
        return np.exp(lq) * (log_joint_scipy(lg, x, z) - lq)

    val, err = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-13, limit=500)
    assert err < 1e-9
    return val


def elbo_closed_form(lg, x, theta):
    """E_q log p(x, z) from q's mean and covariance (log p(x, z) is quadratic in z) plus scipy's t entropy."""
    d = lg.latent_dim
    m, s = theta[:d], np.exp(theta[d:])
    S = np.diag(s**2 * NU / (NU - 2.0))
    r = x - lg.b - lg.W @ m
    e_log_p = (
        -0.5 * d * _LOG_2PI
        - 0.5 * (np.trace(S) + m @ m)
        - 0.5 * np.sum(np.log(2 * np.pi * lg.psi))
        - 0.5 * (r @ (r / lg.psi) + np.trace((lg.W.T / lg.psi) @ lg.W @ S))
    )
    entropy = float(np.sum(stats.t.entropy(NU, scale=s)))
    return float(e_log_p + entropy)


def assert_unbiased(samples, truth, what):
    samples = np.asarray(samples, dtype=np.float64)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.all(se > 0)
    z = np.atleast_1d((samples.mean(axis=0) - truth) / se)
    print(f"{what}: z = {np.array2string(z, precision=2)}")
    assert np.all(np.abs(z) < Z_MAX), f"{what}: z = {z}"


def _setup(d):
    lg = problems.LinearGaussian.random(D=3, d=d, seed=5)
    x = lg.sample(1, seed=6)[0]
    post = lg.posterior(x)
    sd = np.sqrt(np.diag(post.cov))
    return lg, x, post.loc + 0.4 * sd, 1.1 * sd


# --------------------------------------------------------------------------- tests


def test_the_users_proposal_and_truths_are_right():
    """The test's own pieces, checked: the score against finite differences of
    log_prob, the closed-form ELBO against the quadrature in d = 1, and the
    ELBO of the exact posterior against log p(x) (a Gaussian q in the closed form)."""
    lg, x, loc, scale = _setup(1)
    q = StudentT(loc, scale)
    z = np.array([[-0.7], [0.2], [1.9]])
    for i in range(3):
        fd = finite_difference(lambda th: q.with_params(th).log_prob(z[i : i + 1])[0], q.params, h=1e-6)
        np.testing.assert_allclose(q.grad_log_prob(z[i : i + 1])[0], fd, atol=1e-8)
    rq = ReparamStudentT(loc, scale)
    np.testing.assert_allclose(
        rq.grad_z_log_prob(z)[:, 0],
        [finite_difference(lambda v: rq.log_prob(v[None, :])[0], zi, h=1e-6)[0] for zi in z],
        atol=1e-8,
    )
    assert abs(elbo_quadrature(lg, x, q.params) - elbo_closed_form(lg, x, q.params)) < 1e-9
    assert abs(log_marginal_scipy(lg, x) - lg.log_marginal(x)) < 1e-10
    assert elbo_quadrature(lg, x, q.params) < log_marginal_scipy(lg, x)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("cls", [StudentT, ReparamStudentT], ids=["sample", "noise+transform"])
def test_importance_sampling_with_a_user_proposal_is_unbiased(d, cls):
    lg, x, loc, scale = _setup(d)
    q = cls(loc, scale)
    assert estimators.execution_path(lg, x, q) == "generic"
    R = 800
    log_p_hat = estimators.importance_sampling(lg, x, q, K=10, R=R, seed=101)
    assert log_p_hat.shape == (R,)
    assert_unbiased(np.exp(log_p_hat - log_marginal_scipy(lg, x)), 1.0, f"t-proposal d={d} {cls.__name__} p_hat/p")


def test_elbo_with_a_user_proposal_equals_the_quadrature_d1():
    lg, x, loc, scale = _setup(1)
    q = StudentT(loc, scale)
    truth = elbo_quadrature(lg, x, q.params)
    est = estimators.elbo(lg, x, q, K=20, R=800, seed=102)
    assert_unbiased(est, truth, "t-proposal d=1 elbo (quadrature)")
    # the same draws as importance_sampling with the same seed
    ws = estimators.weight_stats(lg, x, q, K=20, R=800, seed=102)
    np.testing.assert_array_equal(ws.elbo, est)
    np.testing.assert_array_equal(ws.log_p_hat, estimators.importance_sampling(lg, x, q, 20, 800, seed=102))


def test_elbo_with_a_user_proposal_equals_the_closed_form_d2():
    lg, x, loc, scale = _setup(2)
    q = StudentT(loc, scale)
    assert_unbiased(estimators.elbo(lg, x, q, K=20, R=800, seed=103), elbo_closed_form(lg, x, q.params), "t-proposal d=2 elbo")


@pytest.mark.parametrize("method", ["score", "score_loo"])
def test_score_gradients_with_a_user_proposal_d1(method):
    lg, x, loc, scale = _setup(1)
    q = StudentT(loc, scale)
    truth = finite_difference(lambda th: elbo_quadrature(lg, x, th), q.params)
    g = estimators.gradient(lg, x, q, K=20, R=800, method=method, objective="elbo", seed=104)
    assert g.shape == (800, 2)
    assert_unbiased(g, truth, f"t-proposal d=1 {method} (quadrature FD)")


@pytest.mark.parametrize("method", ["score", "score_loo"])
def test_score_gradients_with_a_user_proposal_d2(method):
    lg, x, loc, scale = _setup(2)
    q = StudentT(loc, scale)
    truth = finite_difference(lambda th: elbo_closed_form(lg, x, th), q.params)
    assert_unbiased(estimators.gradient(lg, x, q, 20, 800, method, seed=105), truth, f"t-proposal d=2 {method}")


@pytest.mark.parametrize("model", ["user wrapper", "built-in"])
@pytest.mark.parametrize("method", ["reparam", "stl", "dreg"])
def test_pathwise_gradients_with_a_user_proposal(method, model):
    """With sample_noise/transform/transform_vjp/grad_z_log_prob and a model
    offering grad_log_joint (a user's wrapper, or the built-in LinearGaussian's
    own), the pathwise methods run too."""
    lg, x, loc, scale = _setup(2)
    p = LinearGaussianWithGrad(lg) if model == "user wrapper" else lg
    q = ReparamStudentT(loc, scale)
    truth = finite_difference(lambda th: elbo_closed_form(lg, x, th), q.params)
    g = estimators.gradient(p, x, q, 20, 800, method, seed=106)
    assert_unbiased(g, truth, f"t-proposal d=2 {method} on the {model}")


def test_a_user_proposal_missing_or_breaking_members_gets_value_errors():
    lg, x, loc, scale = _setup(2)
    p = LinearGaussianWithGrad(lg)

    class NoScore(StudentT):
        grad_log_prob = None

    class NoScoreAtAll:
        latent_type, dim = "continuous", 2
        params = np.zeros(4)
        sample = StudentT.sample
        _rng = staticmethod(StudentT._rng)
        log_prob = StudentT.log_prob

        def __init__(self):
            self.loc, self.scale, self.nu = loc, scale, NU

    class BadShape(StudentT):
        def sample(self, n, seed=0):
            return super().sample(n, seed)[:, :1]

    class NaNLogProb(StudentT):
        def log_prob(self, z):
            out = super().log_prob(z)
            out[0] = np.nan
            return out

    class OutsideSupport(StudentT):
        def log_prob(self, z):
            return np.full(len(z), -np.inf)

    class Raises(StudentT):
        def log_prob(self, z):
            raise RuntimeError("boom")

    class NoDim:
        sample = StudentT.sample
        log_prob = StudentT.log_prob

    q = StudentT(loc, scale)
    cases = [
        (lambda: estimators.gradient(lg, x, NoScoreAtAll(), 10, 2, "score"), r"^q\.grad_log_prob: missing"),
        (lambda: estimators.gradient(lg, x, q, 10, 2, "reparam"), r'^method: "reparam" needs a reparameterizable q'),
        (lambda: estimators.importance_sampling(lg, x, BadShape(loc, scale), 10, 2), r"^q\.sample: returned shape \(10, 1\), expected \(10, 2\)"),
        (lambda: estimators.importance_sampling(lg, x, NaNLogProb(loc, scale), 10, 2), r"^q\.log_prob: returned NaN"),
        (lambda: estimators.importance_sampling(lg, x, OutsideSupport(loc, scale), 10, 2), r"^q\.log_prob: returned -inf"),
        (lambda: estimators.importance_sampling(lg, x, Raises(loc, scale), 10, 2), r"^q\.log_prob: raised RuntimeError: boom"),
        (lambda: estimators.importance_sampling(lg, x, NoDim(), 10, 2), r"^q\.dim: missing"),
        (lambda: estimators.importance_sampling(lg, x, StudentT([0.0, 0.0, 0.0], 1.0), 10, 2), r"^q: has dimension 3"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
    # a member set to None is as good as missing: still a ValueError naming it, not a TypeError
    with pytest.raises(ValueError, match=r"^q\.grad_log_prob"):
        estimators.gradient(p, x, NoScore(loc, scale), 10, 2, "score")
