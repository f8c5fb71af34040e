r"""Testing helpers: measure your estimator exactly as a sweep cell is measured.

    from bench.testing import measure, assert_unbiased

    row = measure(defensive_is, p, x, q, K=1000, R=200, seed=0, target="log_marginal")
    row["bias"], row["bias_se"], row["ratio_bias"], row["seconds"]

    assert_unbiased(defensive_is, p, x, q, K=1000, R=200, target="log_marginal")

``measure`` returns the columns of a sweep row (``bench.rows``): the exact
quantities of (p, x, q), the estimate's metrics against its truth, and the
time of the one call.  ``assert_unbiased`` raises ``AssertionError`` naming
the z-scores when an estimate is more than ``z`` standard errors from its
truth:

* "log_marginal": p_hat = exp(log p_hat) against p(x) (an importance-sampling
  estimate is unbiased for p(x), not for log p(x));
* "elbo": the mean against the exact ``p.elbo(x, q)``;
* "elbo_grad": every coordinate against the exact ``p.elbo_grad(x, q)``;
* "iwae_grad": every coordinate against the IWAE gradient reference, whose
  standard error adds in quadrature.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import metrics, rows
from .registry import TARGETS, resolve_estimator

__all__ = ["measure", "assert_unbiased"]


def _resolve(fn, target):
    if target is not None and target not in TARGETS:
        raise ValueError(f"target: unknown target {target!r}; expected one of {list(TARGETS)}")
    entry = resolve_estimator(fn, key="fn", target=target)
    return entry


def measure(fn, p, x, q, K, R, seed=0, target=None, **options):
    """One call ``fn(p, x, q, K, R, seed, **options)``, timed, summarised as a
    sweep row (a dict).  ``fn`` is a function (registered or not; ``target``
    is then required unless it has a ``target`` attribute), a registered name
    or an import string.  The options become columns."""
    return _measure(fn, p, x, q, K, R, seed, target, options)[0]


def _measure(fn, p, x, q, K, R, seed, target, options, call=None):
    """(row, estimates); ``call(entry)`` replaces the one timed call (the
    pytest plugin times it with pytest-benchmark) and returns (estimates, seconds)."""
    entry = _resolve(fn, target)
    tgt = target or entry.target_for(options)
    if call is None:
        t0 = time.perf_counter()
        est = entry.call(p, x, q, K, R, seed, options)
        seconds = time.perf_counter() - t0
    else:
        est, seconds = call(entry)
    row = {"estimator": entry.name, "target": tgt, "K": int(K), "R": int(R), "seed": int(seed),
           "q_family": type(q).__name__, "family": type(p).__name__, "user": not entry.builtin}
    row.update({k: (v if isinstance(v, (int, float, str, bool)) else repr(v)) for k, v in options.items()})
    row.update(rows.exact_columns(p, x, q, uses_q=entry.uses_q))
    truth, truth_se = rows.truth_for(tgt, p, x, q, K)
    rows.summarize(row, tgt, est, truth, truth_se, K=K)
    row["seconds"] = seconds
    work = entry.samples_per_replicate(p, K, options) * R
    row["samples_per_s"] = work / seconds if seconds > 0 else math.inf
    return row, est


def assert_unbiased(fn, p, x, q, K, R, seed=0, target=None, z=5.0, **options):
    """AssertionError naming the z-scores when the estimate is further than
    ``z`` standard errors from its truth (see the module docstring); returns
    the z-score (a float, or an array per coordinate for gradients)."""
    if not (isinstance(z, (int, float)) and z > 0):
        raise ValueError(f"z: must be a positive number, got {z!r}")
    row, est = _measure(fn, p, x, q, K, R, seed, target, options)
    tgt = row["target"]
    if tgt == "log_marginal":
        rb, se = metrics.ratio_bias(est, row["truth"])
        score = rb / se if se > 0 else (0.0 if rb == 0 else math.inf)
        if not abs(score) <= z:
            raise AssertionError(
                f"{row['estimator']}: p_hat/p - 1 = {rb:.4g} +- {se:.2g} (z = {score:.2f}, |z| > {z}): "
                "biased for p(x)"
            )
        return score
    if tgt == "elbo":
        mean, se = metrics.mean_se(est)
        score = (mean - row["truth"]) / se if se > 0 else (0.0 if mean == row["truth"] else math.inf)
        if not abs(score) <= z:
            raise AssertionError(
                f"{row['estimator']}: mean {mean:.6g} vs exact ELBO {row['truth']:.6g} "
                f"(z = {score:.2f}, |z| > {z}): biased for the ELBO"
            )
        return score
    truth, truth_se = rows.truth_for(tgt, p, x, q, K)
    t = metrics.bias_t(est, truth, truth_se)
    bad = np.flatnonzero(~(np.abs(t) <= z))
    if bad.size:
        listed = ", ".join(f"[{j}] z = {t[j]:.2f}" for j in bad[:8])
        raise AssertionError(
            f"{row['estimator']}: {bad.size} of {t.size} gradient coordinates are more than {z} SE from "
            f"the {'exact' if tgt == 'elbo_grad' else 'reference'} gradient: {listed}"
        )
    return t
