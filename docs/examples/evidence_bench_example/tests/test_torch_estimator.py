"""Tests of the PyTorch estimator (skipped, with the reason, when torch is not installed).

The closed-form check recomputes the gradient from the same noise with
NumPy and the problem's own ``grad_log_joint``; the statistical check is
against the exact ``p.elbo_grad``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch_reparam is written in PyTorch; pip install 'evidence-bench-example[torch]' to test it"
)

import bench  # noqa: E402
from bench.testing import assert_unbiased  # noqa: E402
from evidence_bench_example.torch_estimators import torch_reparam  # noqa: E402
from problems import GaussianMixture, LinearGaussian  # noqa: E402

LG = LinearGaussian.random(3, 2, seed=1)
X_LG = LG.sample(1, seed=2)[0]
Q = bench.make_q(LG, X_LG, "meanfield+shift:1")  # a diagonal Gaussian


@pytest.mark.parametrize("K", [1, 10, 100])
def test_benchmark_torch_reparam(estimator_benchmark, K):
    row = estimator_benchmark(torch_reparam, LG, X_LG, Q, K=K, R=100, target="elbo_grad",
                              label="lg", q_label="meanfield+shift:1")
    assert row["estimator"] == "torch_reparam" and row["user"]
    assert row["bias_t_max"] < 5


def test_torch_reparam_returns_a_float64_tensor_of_the_gradient_shape():
    g = torch_reparam(LG, X_LG, Q, 5, 3, seed=0)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float64 and tuple(g.shape) == (3, 4)


def test_torch_reparam_equals_the_closed_form_on_the_same_noise():
    r"""z = mu + sigma eps; d/dmu = mean_k grad_z log p(x, z_k), d/dlog sigma =
    mean_k grad_z log p(x, z_k) * sigma * eps_k + 1 (the entropy term), with
    grad_z log p from LinearGaussian.grad_log_joint and the estimator's noise
    (default_rng(seed), (K, d) per replicate)."""
    K, R, seed = 7, 4, 3
    got = np.asarray(torch_reparam(LG, X_LG, Q, K, R, seed))
    rng = np.random.default_rng(seed)
    for r in range(R):
        eps = rng.standard_normal((K, 2))
        z = Q.loc + Q.scale * eps
        gz = LG.grad_log_joint(X_LG, z)
        want = np.concatenate([gz.mean(axis=0), (gz * Q.scale * eps).mean(axis=0) + 1.0])
        np.testing.assert_allclose(got[r], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [1, 10])
def test_torch_reparam_unbiased_for_the_exact_gradient(K):
    t = assert_unbiased(torch_reparam, LG, X_LG, Q, K, 2000, seed=4, target="elbo_grad")
    assert np.all(np.abs(t) <= 5)


def test_torch_reparam_refuses_other_problems_and_proposals():
    gm = GaussianMixture.random(C=3, D=2, seed=0)
    xg = gm.sample(1, seed=1)[0]
    with pytest.raises(ValueError, match=r"^p: torch_reparam re-implements the log-joint of problems.LinearGaussian"):
        torch_reparam(gm, xg, gm.prior(), 10, 5, 0)
    with pytest.raises(ValueError, match=r"^q: torch_reparam needs a diagonal Gaussian"):
        torch_reparam(LG, X_LG, bench.make_q(LG, X_LG, "shift:1"), 10, 5, 0)  # a MultivariateGaussian
