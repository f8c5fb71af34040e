"""evidence-bench's worked example: a user package with estimators of its own.

``evidence_bench_example.estimators`` -- NumPy: ``defensive_is`` (defensive
mixture importance sampling) and ``score_cv`` (a control-variate score
gradient of the ELBO).  ``evidence_bench_example.torch_estimators`` --
PyTorch: ``torch_reparam`` (the reparameterized ELBO gradient by
torch.autograd); it needs torch and is imported only when asked for.

See docs/estimators.md in the evidence-bench repository.
"""

from .estimators import defensive_is, score_cv

__all__ = ["defensive_is", "score_cv"]
