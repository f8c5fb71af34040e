r"""One measurement -> one row of metrics: the columns a sweep cell and
``bench.testing.measure`` share.

``exact_columns(p, x, q)`` gives what is known exactly about (p, x, q)
whatever the estimator: ``log_marginal``, ``kl``, ``elbo_exact``,
``rel_weight_var`` = Var_q[w]/p(x)^2 and the variance and fourth central
moment of log w (NaN where the problem offers no formula; a user's problem
need only have ``log_marginal``).

``summarize(target, est, ...)`` adds the estimate's metrics against its truth:

* value targets ("log_marginal", "elbo"): ``truth``; ``mean``, ``bias``,
  ``variance``, ``mse``, each with its SE; for "log_marginal" also
  ``ratio_bias`` = mean(p_hat/p) - 1 with its SE and ``bias_pred`` =
  -rel_weight_var / (2K), the delta-method bias of log p_hat.
* gradient targets ("elbo_grad", "iwae_grad"): ``truth`` = ||g*||, ``mean`` =
  ||g-bar||, ``bias`` = ||g-bar - g*||, ``variance`` = tr Cov(g) with SE,
  ``mse`` = mean ||g_r - g*||^2 with SE, ``snr_median``/``snr_min`` of the
  per-coordinate |mean|/sd with ``snr_floor`` = sqrt(2/pi)/sqrt(R), and the
  bias t-statistics against g* (``bias_t_max`` = max_j |t_j|, ``bias_chi2`` =
  sum_j t_j^2; against a reference with an SE, ``truth_se_max``, the SEs add
  in quadrature).
"""

from __future__ import annotations

import inspect
import math

import numpy as np

import estimators

from . import exact, metrics

__all__ = ["exact_columns", "truth_for", "summarize", "Q_COLUMNS"]


Q_COLUMNS = ("kl", "elbo_exact", "rel_weight_var", "var_log_w", "mu4_log_w")


def exact_columns(p, x, q, uses_q=True):
    """The exact quantities of (p, x, q): a dict of floats, NaN where unknown
    (``bench.exact.truths``: the problem's own members, else enumeration, a
    Gaussian-posterior formula, ...).  ``uses_q=False`` (an estimator that
    ignores q: smc, ais): only ``log_marginal``, the ``Q_COLUMNS`` NaN."""
    if not uses_q:
        return {"log_marginal": float(p.log_marginal(x)), **{c: math.nan for c in Q_COLUMNS}}
    return exact.truths(p, x, q)[0]


def truth_for(target, p, x, q, K, iwae_reference=None):
    """(truth, truth_se or None) of ``target``: the exact value, or for
    "iwae_grad" ``iwae_reference(K)`` -> (mean, se).  A ValueError saying what
    is missing when the problem cannot give it."""
    if target == "log_marginal":
        return float(p.log_marginal(x)), None
    if target == "elbo":
        cols, reasons = exact.truths(p, x, q)
        if not np.isfinite(cols["elbo_exact"]):
            raise ValueError(f"p.elbo: target 'elbo' needs the exact ELBO: {reasons.get('elbo_exact', 'not finite')}")
        return cols["elbo_exact"], None
    if target == "elbo_grad":
        g, reason = exact.elbo_gradient(p, x, q)
        if g is None:
            raise ValueError(f"p.elbo_grad: target 'elbo_grad' needs the exact ELBO gradient: {reason}")
        return np.asarray(g, dtype=np.float64), None
    if target == "iwae_grad":
        if iwae_reference is None:
            return estimators.iwae_gradient_reference(p, x, q, K)
        return iwae_reference(K)
    raise ValueError(f"target: unknown target {target!r}")


def bound_truth(target, p, x, q, options, entry):
    """The exact value a "renyi_bound" or "cubo" estimate is measured against:
    ``p.renyi_bound(x, q, alpha)`` / ``p.cubo(x, q, n)``, with alpha / n from the
    cell's options or the estimator's default."""
    name, member = ("alpha", "renyi_bound") if target == "renyi_bound" else ("n", "cubo")
    if name in options:
        value = options[name]
    else:
        param = inspect.signature(entry.fn).parameters.get(name)
        if param is None or param.default is param.empty:
            raise ValueError(f"{name}: target {target!r} needs the option {name!r}")
        value = param.default
    fn = getattr(p, member, None)
    if fn is None:
        raise ValueError(f"p.{member}: missing; target {target!r} needs the exact value, {type(p).__name__} has none")
    return float(fn(x, q, value))


def _value_metrics(row, est, truth):
    row["truth"] = truth
    row["n_nonfinite"] = int(np.size(est) - np.count_nonzero(np.isfinite(est)))
    row["mean"], row["mean_se"] = metrics.mean_se(est)
    row["bias"], row["bias_se"] = row["mean"] - truth, row["mean_se"]
    row["variance"], row["variance_se"] = metrics.variance_se(est)
    row["mse"], row["mse_se"] = metrics.mse_se(est, truth)


def _gradient_metrics(row, g, truth, truth_se):
    R = g.shape[0]
    gbar = np.mean(g, axis=0)
    row["n_params"] = g.shape[1]
    row["n_nonfinite"] = int(np.count_nonzero(~np.isfinite(g).all(axis=1)))
    row["truth"] = float(np.linalg.norm(truth))
    row["mean"] = float(np.linalg.norm(gbar))
    row["bias"] = float(np.linalg.norm(gbar - truth))
    row["variance"], row["variance_se"] = metrics.trace_cov(g)
    sq = np.sum((g - truth) ** 2, axis=1)
    row["mse"], row["mse_se"] = float(np.mean(sq)), float(np.std(sq, ddof=1) / math.sqrt(R))
    s = metrics.snr(g)
    s = s[np.isfinite(s)]
    row["snr_median"] = float(np.median(s)) if s.size else math.nan
    row["snr_min"] = float(np.min(s)) if s.size else math.nan
    row["snr_floor"] = metrics.snr_floor(R)
    t = metrics.bias_t(g, truth, truth_se)
    row["bias_t_max"] = float(np.max(np.abs(t)))
    row["bias_chi2"] = float(np.sum(t * t))
    row["truth_se_max"] = 0.0 if truth_se is None else float(np.max(truth_se))


def summarize(row, target, est, truth, truth_se=None, K=None):
    """Add the metrics of the estimates ``est`` of ``target`` to ``row`` (in place; returned).

    ``row`` must already hold the exact columns (``exact_columns``) when
    ``target`` is "log_marginal" (for ``bias_pred``)."""
    if target in ("elbo_grad", "iwae_grad"):
        _gradient_metrics(row, np.asarray(est, dtype=np.float64), np.asarray(truth, dtype=np.float64), truth_se)
        return row
    est = np.asarray(est, dtype=np.float64)
    _value_metrics(row, est, float(truth))
    if target == "log_marginal":
        row["ratio_bias"], row["ratio_bias_se"] = metrics.ratio_bias(est, float(truth))
        if K is not None:
            row["bias_pred"] = -row.get("rel_weight_var", math.nan) / (2.0 * K)
    return row
