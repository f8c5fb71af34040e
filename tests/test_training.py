r"""SVI, amortized inference and the linear VAE (``estimators.fit_linear_vae``).

The target of every fit is independent of the trainer: the probabilistic-PCA
maximum likelihood (``LinearGaussian.ppca_mle``, itself checked here against a
numerical maximisation with scipy.optimize), i.e. the best average
log-likelihood any (W, b, sigma^2) can reach on the data.  The trainer's
recorded figures are exact (closed form), so a fit "reaches" the optimum when
its final exact average log-likelihood is within

    TOL = 0.02 nats per datapoint

of the PPCA maximum (a random initialisation starts ~1.5 nats below it).
The data come from a model with orthogonal columns of W and isotropic noise,
so a diagonal q(z|x) can be the exact posterior and the exact ELBO gap
(average KL(q || p(z|x))) can go to zero; it must end below GAP_TOL = 0.02
(SVI: SVI_GAP_TOL = 0.03, each φ_i being updated only when x_i is drawn).

Runs are short (each fit is ~1-3 s: every step calls estimators.gradient and
estimators.model_gradient once per datapoint of the minibatch).
"""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

import estimators
from estimators import LinearVAEFit, fit_linear_vae, steps_to_reach
from problems import LinearGaussian

TOL = 0.02
GAP_TOL = 0.02
SVI_GAP_TOL = 0.03


def orthogonal_model(D=5, d=2, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    W = Q * np.linspace(2.0, 1.0, d)  # orthogonal columns, norms 2 .. 1
    return LinearGaussian(W, rng.standard_normal(D), np.full(D, 0.5))


@pytest.fixture(scope="module")
def data():
    p = orthogonal_model()
    X = p.sample(200, seed=1)
    best = float(np.mean(LinearGaussian.ppca_mle(X, 2).log_marginal(X)))
    return X, best


# --------------------------------------------------------------------------- the target
def test_ppca_mle_against_numerical_maximisation():
    """Closed-form PPCA vs BFGS on -sum_i log N(x_i; b, W W^T + s2 I) written with
    scipy.stats.multivariate_normal, from several starts (tiny data: D=3, d=1, n=40)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3)) @ np.array([[2.0, 0.3, 0.1], [0.0, 1.0, 0.4], [0.0, 0.0, 0.6]])
    n, D = X.shape

    def nll(v):
        W, b, log_s2 = v[:D].reshape(D, 1), v[D : 2 * D], v[-1]
        cov = W @ W.T + np.exp(log_s2) * np.eye(D)
        return -np.sum(multivariate_normal(b, cov).logpdf(X)) / n

    best = min(
        (minimize(nll, rng.standard_normal(2 * D + 1), method="BFGS", options={"gtol": 1e-9}) for _ in range(4)),
        key=lambda r: r.fun,
    )
    mle = LinearGaussian.ppca_mle(X, 1)
    assert float(np.mean(mle.log_marginal(X))) == pytest.approx(-best.fun, abs=1e-7)
    W_num = best.x[:D].reshape(D, 1)
    np.testing.assert_allclose(mle.W @ mle.W.T, W_num @ W_num.T, atol=1e-4)  # W itself is unique up to sign
    np.testing.assert_allclose(mle.b, best.x[D : 2 * D], atol=1e-4)
    assert mle.psi[0] == pytest.approx(np.exp(best.x[-1]), abs=1e-4)
    # and nothing nearby is better: the closed form is a maximum
    v0 = np.concatenate([mle.W[:, 0], mle.b, [np.log(mle.psi[0])]])
    for _ in range(20):
        assert nll(v0 + 1e-3 * rng.standard_normal(v0.size)) > nll(v0) - 1e-12


# --------------------------------------------------------------------------- fits
@pytest.mark.parametrize("gradient", ["reparam", "score_loo"])
def test_amortized_vae_reaches_the_ppca_optimum(data, gradient):
    X, best = data
    fit = fit_linear_vae(X, 2, gradient, steps=300, seed=0, batch_size=20, learning_rate=0.05, record_every=25)
    assert isinstance(fit, LinearVAEFit) and fit.gradient == gradient and fit.K == 4
    ll = fit.log_likelihood_history
    assert ll[0] < best - 0.5  # it had somewhere to go
    assert best - ll[-1] < TOL, (best, ll[-1])
    assert ll[-1] <= best + 1e-9  # nothing beats the maximum likelihood
    assert fit.gap_history[-1] < GAP_TOL
    assert np.all(fit.gap_history > -1e-9)  # ELBO <= log p(x), exactly, at every record
    # the recorded figures are the exact ones of the returned model and encoder
    model, enc = fit.model, fit.encoder
    assert ll[-1] == pytest.approx(float(np.mean(model.log_marginal(X))), abs=1e-10)
    elbo = np.mean([model.elbo(x, enc(x)) for x in X])
    assert fit.elbo_history[-1] == pytest.approx(elbo, abs=1e-10)
    assert list(fit.history_steps) == list(range(0, 301, 25))


def test_svi_per_datapoint_reaches_the_ppca_optimum():
    """SVI: one phi_i per datapoint, inner_steps ascent steps on the minibatch's phi_i per theta step."""
    p = orthogonal_model(seed=2)
    X = p.sample(60, seed=3)
    best = float(np.mean(LinearGaussian.ppca_mle(X, 2).log_marginal(X)))
    fit = fit_linear_vae(X, 2, "reparam", steps=400, seed=0, encoder="per_datapoint", batch_size=10,
                         learning_rate=0.1, inner_steps=5, record_every=25)
    assert isinstance(fit.encoder, list) and len(fit.encoder) == 60
    assert fit.log_likelihood_history[0] < best - 0.5
    assert best - fit.log_likelihood_history[-1] < TOL
    # each phi_i gets ~330 noisy steps in all (not a converged inner loop): a looser gap
    assert fit.gap_history[-1] < SVI_GAP_TOL
    elbo = np.mean([fit.model.elbo(x, q) for x, q in zip(X, fit.encoder)])
    assert fit.elbo_history[-1] == pytest.approx(elbo, abs=1e-10)


def test_per_datapoint_steps_move_only_the_minibatch():
    """SVI's phi_i are separate problems: a step moves only the phi_i of its
    minibatch.  One step moves exactly batch_size = 2 of the 10 phi_i; a second
    step (same seed, so the same first step) changes at most 2 of them -- dense
    Adam would also move the first minibatch's phi_i again with their stale momentum."""
    X = orthogonal_model().sample(10, seed=4)
    kw = dict(encoder="per_datapoint", batch_size=2, record_every=1, seed=3)
    one = fit_linear_vae(X, 2, "reparam", steps=1, **kw).encoder
    two = fit_linear_vae(X, 2, "reparam", steps=2, **kw).encoder
    moved_first = [not (np.all(q.loc == 0) and np.all(q.scale == 1)) for q in one]
    assert sum(moved_first) == 2
    changed_second = [not (np.array_equal(a.loc, b.loc) and np.array_equal(a.scale, b.scale)) for a, b in zip(one, two)]
    assert 1 <= sum(changed_second) <= 2


def test_same_seed_same_fit(data):
    X, _ = data
    a = fit_linear_vae(X[:40], 2, "reparam", steps=10, seed=5, batch_size=8, record_every=5)
    b = fit_linear_vae(X[:40], 2, "reparam", steps=10, seed=5, batch_size=8, record_every=5)
    c = fit_linear_vae(X[:40], 2, "reparam", steps=10, seed=6, batch_size=8, record_every=5)
    np.testing.assert_array_equal(a.elbo_history, b.elbo_history)
    np.testing.assert_array_equal(a.model.W, b.model.W)
    assert not np.array_equal(a.model.W, c.model.W)


# --------------------------------------------------------------------------- steps_to_reach
def _fake_fit(ll, elbo, steps):
    return LinearVAEFit(model=None, encoder=None, elbo_history=np.asarray(elbo, float),
                        log_likelihood_history=np.asarray(ll, float), history_steps=np.asarray(steps),
                        gradient="reparam", K=4)


def test_steps_to_reach():
    fit = _fake_fit(ll=[-5.0, -3.0, -2.05, -2.2, -2.001], elbo=[-6.0, -4.0, -2.5, -2.3, -2.01], steps=[0, 10, 20, 30, 40])
    assert steps_to_reach(fit, -2.0, 0.1) == 20
    assert steps_to_reach(fit, -2.0, 0.01) == 40
    assert steps_to_reach(fit, -2.0, 0.0) is None
    assert steps_to_reach(fit, -2.0, 0.1, which="elbo") == 40
    assert steps_to_reach(fit, -2.0, 4.0, which="elbo") == 0
    assert steps_to_reach(fit, -2.0, 3.5, which="elbo") == 10
    for kwargs, name in [(dict(which="kl"), "which"), (dict(tolerance=-1.0), "tolerance"),
                         (dict(tolerance=np.nan), "tolerance"), (dict(target="x"), "target")]:
        args = {"target": -2.0, "tolerance": 0.1, **kwargs}
        with pytest.raises(ValueError, match=name):
            steps_to_reach(fit, **args)
    with pytest.raises(ValueError, match="fit"):
        steps_to_reach("not a fit", -2.0, 0.1)


def test_steps_to_reach_on_a_real_fit(data):
    X, best = data
    fit = fit_linear_vae(X[:50], 2, "reparam", steps=20, seed=1, batch_size=10, record_every=5)
    s = steps_to_reach(fit, fit.log_likelihood_history.max(), 0.0)
    i = int(np.argmax(fit.log_likelihood_history))
    assert s == fit.history_steps[i]
    assert steps_to_reach(fit, best + 10.0, 1.0) is None


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(X=np.zeros(5)), "X"),
        (dict(X=np.full((10, 5), np.nan)), "X"),
        (dict(X=np.zeros((1, 5))), "X"),
        (dict(d=5), "d"),
        (dict(d=0), "d"),
        (dict(gradient="magic"), "gradient"),
        (dict(encoder="lookup"), "encoder"),
        (dict(gradient="score_loo", K=1), "K"),
        (dict(K=0), "K"),
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(seed=-1), "seed"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(learning_rate="fast"), "learning_rate"),
        (dict(learning_rate=np.inf), "learning_rate"),
        (dict(inner_steps=0), "inner_steps"),
        (dict(record_every=0), "record_every"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    args = {"X": np.random.default_rng(0).standard_normal((10, 5)), "d": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        fit_linear_vae(**args)


def test_exported_from_estimators():
    assert estimators.fit_linear_vae is fit_linear_vae
    for name in ("fit_linear_vae", "LinearVAEFit", "steps_to_reach"):
        assert name in estimators.__all__
