r"""Running a sweep: one cell -> one row of metrics; a sweep -> the tidy table.

Each cell builds its problem and observation from the specification, its q
from the preset, compiles the kernels it will use with ``estimators.warm_up``
(both the serial and the parallel variant, at the cost of ~2^15 samples, so
numba compilation is never inside the timing), times one call of the
estimator for all R replicates, and summarises the replicates
with ``bench.metrics``.

Row semantics (one row per cell; NaN where a column does not apply):

* every row: ``log_marginal`` = exact log p(x), ``kl`` = exact KL(q||p(z|x)),
  ``elbo_exact`` = exact ELBO(q) (``bench.exact.truths``: the problem's own
  ``kl``/``elbo``, else enumeration, a Gaussian-posterior formula or the
  identity for q = posterior; NaN when none applies), ``rel_weight_var`` =
  Var_q[w]/p(x)^2 (exact; inf when infinite; NaN when no formula applies);
  ``var_log_w``, ``mu4_log_w`` = exact variance and fourth central moment
  of log w under q (``bench.exact``; NaN where no formula).  ``x_seed`` is
  the seed x was drawn with, -1 when x is the family's own or was given.
  A problem need only have ``log_joint``, ``log_marginal`` and ``prior``;
  a cell it cannot serve is skipped by ``plan`` with the reason.
* importance_sampling and elbo: ``ess`` = mean effective sample size and
  ``ess_limit`` = its exact large-K limit as a fraction of K, 1/(1 + Var_q[w]/p^2)
  (0 where Var_q[w] is infinite, NaN where unknown); ``khat`` = mean PSIS
  Pareto k-hat of the replicates' weights, ``khat_threshold`` =
  min(1 - 1/log10 K, 0.7) and ``khat_unreliable`` = the fraction of replicates
  above it (NaN for K <= 20 or equal weights, where k-hat cannot be fitted).
* importance_sampling: ``truth`` = log p(x); mean/bias/variance/mse of
  log p-hat, each with an SE; ``ratio_bias`` = mean(p-hat/p) - 1 with SE;
  ``bias_pred`` = -rel_weight_var / (2K), the delta-method prediction of the
  bias of log p-hat; ``ess`` = mean effective sample size (sum w)^2/sum w^2.
* elbo: ``truth`` = ELBO(q) (the estimator is unbiased for it at every K);
  the same columns as above except ratio_bias/bias_pred.
* gradient: ``truth`` = ||g*||, ``mean`` = ||g-bar||, ``bias`` = ||g-bar - g*||,
  ``variance`` = tr Cov(g) with SE, ``mse`` = mean ||g_r - g*||^2 with SE;
  ``snr_median``/``snr_min`` of the per-coordinate |mean|/sd and
  ``snr_floor`` = sqrt(2/pi)/sqrt(R); ``bias_t_max`` = max_j |t_j| and
  ``bias_chi2`` = sum_j t_j^2 of the bias t-statistics against g*
  (elbo: exact ``p.elbo_grad``; iwae: ``estimators.iwae_gradient_reference``
  with its SE, ``truth_se_max``); ``variance_ratio`` = variance / variance of
  the "score" method in the same (problem, q, K, objective) (added when the
  table is assembled).
* estimators that ignore q (registered with ``uses_q=False``: smc, ais):
  only ``log_marginal`` of the exact columns; ``kl``, ``elbo_exact``,
  ``rel_weight_var``, ``var_log_w``, ``mu4_log_w``, ``ess_limit``,
  ``bias_pred`` are NaN (they would describe the cell's q preset, which the
  estimator never draws from); ``q``/``q_family`` only name the cell.
* timing: ``seconds`` of the one timed call, ``samples_per_s`` = (work of one
  replicate) R / seconds, the work being K draws, or what the estimator's
  registry entry counts (``samples``): particle-steps N T for smc, chain-steps
  K steps for ais.  Timing is the only part of a row that is not reproducible
  bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import estimators
from estimators.psis import khat_threshold

from . import analysis, exact, metrics, rows, storage
from .executors import get_executor
from .presets import PresetUnavailable, make_q, parse_preset
from .progress import Progress
from .registry import EstimatorFailure
from .sweep import Cell, Sweep, build_instance, cell_seed

__all__ = [
    "SCHEMA",
    "TIMING_COLUMNS",
    "run_cell",
    "run_cells",
    "task_groups",
    "task_cost",
    "run",
    "plan",
    "cell_q",
    "cell_truths",
    "skip_reason",
    "REFERENCE_METHOD",
    "IWAE_REF_REPLICATES",
]

REFERENCE_METHOD = "score"  # variance_ratio is relative to this method
IWAE_REF_REPLICATES = 20000  # replicates of the iwae reference gradient
TIMING_COLUMNS = ["seconds", "samples_per_s"]

_STR = ["cell_id", "problem", "family", "problem_params", "q", "q_family", "estimator", "method", "objective",
        "target", "options"]
_BOOL = ["user"]
_INT = ["K", "R", "seed", "x_seed", "n_params", "n_nonfinite"]
_FLOAT = [
    "log_marginal",
    "kl",
    "elbo_exact",
    "rel_weight_var",
    "var_log_w",
    "mu4_log_w",
    "truth",
    "mean",
    "mean_se",
    "bias",
    "bias_se",
    "variance",
    "variance_se",
    "mse",
    "mse_se",
    "ratio_bias",
    "ratio_bias_se",
    "bias_pred",
    "ess",
    "ess_se",
    "ess_limit",
    "khat",
    "khat_threshold",
    "khat_unreliable",
    "snr_median",
    "snr_min",
    "snr_floor",
    "bias_t_max",
    "bias_chi2",
    "truth_se_max",
    "seconds",
    "samples_per_s",
]
SCHEMA = pa.schema(
    [(c, pa.string()) for c in _STR] + [(c, pa.int64()) for c in _INT] + [(c, pa.float64()) for c in _FLOAT]
    + [(c, pa.bool_()) for c in _BOOL]
)


@functools.lru_cache(maxsize=256)
def cell_q(spec, q_name):
    """The proposal of preset ``q_name`` for the problem of ``spec`` (cached
    per process; ``PresetUnavailable`` when the problem cannot serve it)."""
    p, x = spec.build()
    return make_q(p, x, q_name)


@functools.lru_cache(maxsize=256)
def cell_truths(spec, q_name):
    """``bench.exact.truths`` of (problem, x, q) -- (columns, reasons) --
    cached per process.  The unmodified "posterior" preset is known to be
    the exact posterior (KL = 0, ELBO = log p(x))."""
    p, x = spec.build()
    preset = parse_preset(q_name)
    is_post = preset.base == "posterior" and not preset.modifiers
    return exact.truths(p, x, cell_q(spec, q_name), q_is_posterior=is_post)


@functools.lru_cache(maxsize=256)
def _log_marginal(spec):
    """The exact log p(x) of the problem of ``spec`` (cached per process)."""
    p, x = spec.build()
    return float(p.log_marginal(x))


@functools.lru_cache(maxsize=256)
def _elbo_gradient(spec, q_name):
    p, x = spec.build()
    g, reason = exact.elbo_gradient(p, x, cell_q(spec, q_name))
    if g is not None:
        g.setflags(write=False)
    return g, reason


def skip_reason(cell: Cell):
    """None if the cell can be computed, else why not: the problem cannot
    serve its q preset, it has no exact truth for the cell's target (the
    ELBO for "elbo", the ELBO gradient for gradient/"elbo"), or the
    estimator refuses (p, q, K, method, objective, options) -- the
    estimator's own message (for a registered estimator, its ``applies``
    check: smc on a model that is not a state-space model, "optimal" without
    a closed form, reverse AIS without an exact posterior sampler).  A
    problem that cannot be built at all is a ValueError."""
    try:
        cell_q(cell.spec, cell.q)
    except PresetUnavailable as exc:
        return str(exc)
    entry = cell.entry()
    if cell.estimator not in _SPECIAL:
        if entry.applies is not None:
            p, x = cell.spec.build()
            reason = entry.skip_reason(p, x, cell_q(cell.spec, cell.q), cell.K, dict(cell.options))
            if reason is not None:
                return reason
        target = entry.target
        if target == "elbo":
            cols, reasons = cell_truths(cell.spec, cell.q)
            if not math.isfinite(cols["elbo_exact"]):
                return f"{cell.estimator}: no exact ELBO for q={cell.q}: {reasons.get('elbo_exact', 'not finite')}"
        elif target == "elbo_grad":
            g, reason = _elbo_gradient(cell.spec, cell.q)
            if g is None:
                return f"{cell.estimator}: no exact ELBO gradient for q={cell.q}: {reason}"
        elif target == "iwae_grad":
            return _iwae_reference_probe(cell)
        elif target in ("renyi_bound", "cubo"):
            p, x = cell.spec.build()
            try:
                truth = rows.bound_truth(target, p, x, cell_q(cell.spec, cell.q), dict(cell.options), entry)
            except ValueError as exc:
                return f"{cell.estimator}: {exc}"
            if not math.isfinite(truth):
                return f"{cell.estimator}: the exact {target} is {truth} for q={cell.q} (the moment diverges)"
        return None
    if cell.estimator == "elbo":
        cols, reasons = cell_truths(cell.spec, cell.q)
        if not math.isfinite(cols["elbo_exact"]):
            return f"elbo: no exact ELBO for q={cell.q}: {reasons.get('elbo_exact', 'not finite')}"
    if cell.estimator == "gradient":
        if cell.objective == "elbo":
            g, reason = _elbo_gradient(cell.spec, cell.q)
            if g is None:
                return f"gradient: no exact ELBO gradient for q={cell.q}: {reason}"
        return gradient_probe(cell)
    return None


def _khat_columns(row, khat, K):
    """k-hat columns: ``khat`` = mean PSIS k-hat over the replicates where it is
    finite (NaN where none is: K <= 20, or every weight equal), ``khat_threshold``
    = min(1 - 1/log10 K, 0.7), ``khat_unreliable`` = the fraction of those
    replicates above it (their estimate cannot be trusted, Vehtari et al. 2024)."""
    finite = khat[np.isfinite(khat)]
    row["khat_threshold"] = khat_threshold(K) if K > 1 else math.nan
    if finite.size:
        row["khat"] = float(np.mean(finite))
        row["khat_unreliable"] = float(np.mean(finite > row["khat_threshold"]))


def cell_target(cell: Cell) -> str:
    """The target of the cell's estimator (the built-in gradient's follows its objective)."""
    return cell.entry().target_for({"objective": cell.objective} if cell.objective else {})


def _empty_row(cell: Cell):
    row = {c: math.nan for c in _FLOAT}
    row.update({c: 0 for c in _INT})
    row.update(
        cell_id=cell.cell_id,
        problem=cell.problem,
        family=cell.spec.family,
        problem_params=json.dumps(dict(cell.spec.params), sort_keys=True),
        q=cell.q,
        q_family="",
        estimator=cell.estimator,
        method=cell.method,
        objective=cell.objective,
        K=cell.K,
        R=cell.R,
        seed=cell.seed,
        x_seed=build_instance(cell.spec).x_seed,
        target=cell_target(cell),
        user=cell.estimator_ref != "" or not cell.entry().builtin,
        options=json.dumps(dict(cell.options), sort_keys=True) if cell.options else "",  # -1: x was not drawn (the family's own, or given)
    )
    return row


@functools.lru_cache(maxsize=256)
def _iwae_reference(spec, q_name, K, ref_seed):
    p, x = spec.build()
    q = cell_q(spec, q_name)
    mean, se = estimators.iwae_gradient_reference(p, x, q, K, R_ref=IWAE_REF_REPLICATES, seed=ref_seed)
    mean.setflags(write=False)
    se.setflags(write=False)
    return mean, se


def _gradient_truth(p, x, q, cell: Cell):
    """(g*, SE of g* or None): the exact ELBO gradient, or for "iwae" the
    reference of ``estimators.iwae_gradient_reference`` (R_ref = 20000) with a
    seed of its own, derived from (problem, q, K) -- shared by the methods of
    one (problem, q, K) and independent of the estimates it is compared with."""
    if cell.objective == "elbo":
        g, reason = _elbo_gradient(cell.spec, cell.q)
        if g is None:
            raise ValueError(f"gradient: no exact ELBO gradient for q={cell.q}: {reason}")
        return g, None
    ident = {"iwae_reference": {"problem": cell.spec.identity(), "q": cell.q, "K": cell.K}}
    return _iwae_reference(cell.spec, cell.q, cell.K, cell_seed(cell.root_seed, ident))


def _iwae_reference_probe(cell: Cell):
    """None if the IWAE reference gradient can be computed for the cell's (p, q, K), else why not."""
    p, x = cell.spec.build()
    q = cell_q(cell.spec, cell.q)
    method = "reparam" if getattr(q, "reparameterizable", False) else ("score_loo" if cell.K >= 2 else "score")
    try:
        estimators.gradient(p, x, q, cell.K, 1, method, "iwae", seed=0)
    except ValueError as exc:
        return f"{cell.estimator}: no IWAE reference gradient for q={cell.q}: {exc}"
    return None


#: built-ins with a cell path of their own (ESS and k-hat from the same draws;
#: gradients crossed with methods and objectives); every other registered
#: estimator -- the user's, smc, ais, ... -- takes ``_run_registered``
_SPECIAL = ("importance_sampling", "elbo", "gradient")


def _run_registered(cell, entry, p, x, q, row):
    """A registered estimator's cell: one untimed call at R = 1 (JAX or numba
    compile there), one timed call, the row's metrics against the target's truth."""
    target, options, K, R = row["target"], dict(cell.options), cell.K, cell.R
    if target == "log_marginal":
        truth, truth_se = row["log_marginal"], None
    elif target == "elbo":
        truth, truth_se = row["elbo_exact"], None
    elif target == "elbo_grad":
        truth, truth_se = _elbo_gradient(cell.spec, cell.q)[0], None
    elif target in ("renyi_bound", "cubo"):
        truth, truth_se = rows.bound_truth(target, p, x, q, options, entry), None
    else:
        ident = {"iwae_reference": {"problem": cell.spec.identity(), "q": cell.q, "K": K}}
        truth, truth_se = _iwae_reference(cell.spec, cell.q, K, cell_seed(cell.root_seed, ident))
    warm_cell(cell, p, x, q)
    t0 = time.perf_counter()
    est = entry.call(p, x, q, K, R, cell.seed, options)
    seconds = time.perf_counter() - t0
    rows.summarize(row, target, est, truth, truth_se, K=K)
    return seconds


def gradient_probe(cell: Cell):
    """None if ``estimators.gradient`` accepts this cell's (p, q, K, method,
    objective), else the ValueError message it gives (the cell is skipped
    and the reason recorded)."""
    p, x = cell.spec.build()
    q = cell_q(cell.spec, cell.q)
    try:
        estimators.gradient(p, x, q, cell.K, 1, cell.method, cell.objective, seed=0, **dict(cell.options))
    except ValueError as exc:
        return str(exc)
    return None


def warm_cell(cell: Cell, p, x, q):
    """The untimed call a cell makes before its timed one, so that numba
    compilation (or loading from its cache) is never inside the timing:
    ``estimators.warm_up`` for the built-in weight and gradient kernels (both
    the serial and the parallel variant), one tiny ``weight_stats`` call on
    the generic path (nothing threaded to compile; it spares a user's
    log_joint the 2 * CHUNK draws of a full warm-up), and one call at R = 1 of
    any other registered estimator (JAX or numba compile there)."""
    if cell.estimator in ("importance_sampling", "elbo"):
        if estimators.execution_path(p, x, q) == "generic":
            estimators.weight_stats(p, x, q, 1, 1)
        else:
            estimators.warm_up(p, x, q)
    elif cell.estimator == "gradient":
        estimators.warm_up(p, x, q, cell.method, cell.objective)
    else:
        cell.entry().call(p, x, q, cell.K, 1, cell.seed, dict(cell.options))


#: Seconds numba takes, from a cold cache, to compile the kernels of one kind
#: of cell (``compile_keys``; many kinds share kernels, so this is an average),
#: on 2 cores: bench/configs/small.toml, 48 kinds, took 141 s and
#: bench/configs/suite.toml, 122 kinds, 272 s (in a fresh clone), both with
#: five other jobs on those cores (load 8-12), so less alone.  Only for the
#: "about N s" a first run announces; the bar that follows is measured.
COLD_SECONDS_PER_KIND = 1.5


def compile_keys(cells) -> list:
    """One cell per kind of cell whose kernels differ -- (problem family, q
    preset, estimator, method, objective, options) -- the one with the
    smallest K (its untimed call is the cheapest), in sweep order.  User
    estimators are left out: theirs are called, untimed, in their own cells."""
    reps = {}
    for cell in cells:
        if cell.estimator not in _SPECIAL and not cell.entry().builtin:
            continue
        key = (cell.spec.family, cell.q, cell.estimator, cell.method, cell.objective, cell.options)
        if key not in reps or cell.K < reps[key].K:
            reps[key] = cell
    return list(reps.values())


def compile_kernels(cells, enabled=None, stream=None) -> dict:
    """Compile (or load from numba's cache) the kernels ``cells`` will use,
    in this process, before any of them is timed: for one cell of each kind
    (``compile_keys``) the probes ``plan`` makes (``skip_reason``) and the
    cell's untimed call (``warm_cell``).  A cold cache -- half or more of the
    kernels uncached, as on a first run -- is announced on ``stream`` (default
    stderr) as "compiling kernels (first run only, about N s)", N =
    ``COLD_SECONDS_PER_KIND`` per kind, then timed; a bar shows the kinds done
    (``enabled``: None = only on a terminal).  Returns ``{"kinds", "seconds",
    "cold"}``.  A cell whose problem cannot be built is left to ``plan``, which
    names it.  Worker processes then load the cached kernels in about a
    second, and the cells' ETA no longer includes the compilation."""
    from estimators.warm_up import kernel_cache_status

    stream = sys.stderr if stream is None else stream
    reps = compile_keys(cells)
    uncached, total = kernel_cache_status()
    cold = total > 0 and uncached >= total / 2
    t0 = time.perf_counter()
    if not reps:
        return {"kinds": 0, "seconds": 0.0, "cold": cold}
    if cold:
        about = max(5, int(round(COLD_SECONDS_PER_KIND * len(reps) / 5.0)) * 5)
        print(f"compiling kernels (first run only, about {about} s): numba compiles the kernels of "
              f"{len(reps)} kinds of cell and caches them; later runs load them in seconds",
              file=stream, flush=True)
    label = "compiling kernels" if cold else "loading kernels"
    with Progress(len(reps), label=label, stream=stream, enabled=enabled) as bar:
        for cell in reps:
            try:
                if skip_reason(cell) is None:
                    p, x = cell.spec.build()
                    q = cell_q(cell.spec, cell.q)
                    warm_cell(cell, p, x, q)
                    if cell.estimator == "gradient" and cell.objective == "iwae":
                        # the method of the cell's reference gradient (iwae_gradient_reference)
                        ref = "reparam" if getattr(q, "reparameterizable", False) else (
                            "score_loo" if cell.K >= 2 else "score")
                        estimators.warm_up(p, x, q, ref, "iwae")
            except ValueError:
                pass  # plan() raises it, naming the problem's label
            except EstimatorFailure:
                pass  # the cell itself records the failure
            bar.update(1, note=cell.label())
    seconds = time.perf_counter() - t0
    if cold:
        print(f"compiled in {seconds:.0f} s", file=stream, flush=True)
    return {"kinds": len(reps), "seconds": seconds, "cold": cold}


def unfinished(sweeps, out, fresh=False) -> list:
    """The distinct cells of ``sweeps`` not yet stored in ``out`` (all of them
    when ``fresh``), before ``plan`` -- so before its probes compile anything."""
    done = set() if fresh or not Path(out).is_dir() else storage.finished_ids(out)
    seen, cells = set(), []
    for s in sweeps:
        for cell in s.cells():
            if cell.cell_id not in seen and cell.cell_id not in done:
                seen.add(cell.cell_id)
                cells.append(cell)
    return cells


def run_cell(cell: Cell) -> dict:
    """Compute one cell's row (see the module docstring)."""
    if not isinstance(cell, Cell):
        raise ValueError(f"cell: expected a bench.Cell (e.g. from Sweep.cells()), got {type(cell).__name__}")
    p, x = cell.spec.build()
    q = cell_q(cell.spec, cell.q)
    row = _empty_row(cell)
    row["q_family"] = type(q).__name__
    entry = cell.entry()
    if entry.uses_q:
        cols, reasons = cell_truths(cell.spec, cell.q)
    else:  # q is ignored: only the exact log p(x); the q-derived columns stay NaN
        cols, reasons = {"log_marginal": _log_marginal(cell.spec)}, {}
    row.update(cols)
    # ESS / K -> p(x)^2 / E_q[w^2] = 1 / (1 + Var_q[w]/p(x)^2): 0 where the variance is infinite
    rv = row["rel_weight_var"]
    row["ess_limit"] = 0.0 if rv == math.inf else (1.0 / (1.0 + rv) if math.isfinite(rv) else math.nan)
    K, R, seed = cell.K, cell.R, cell.seed
    if cell.estimator == "elbo" and not math.isfinite(row["elbo_exact"]):
        raise ValueError(f"elbo: no exact ELBO for q={cell.q}: {reasons.get('elbo_exact', 'not finite')}")

    if cell.estimator not in _SPECIAL:
        seconds = _run_registered(cell, entry, p, x, q, row)
    elif cell.estimator in ("importance_sampling", "elbo"):
        # weight_stats is the kernel behind importance_sampling (.log_p_hat)
        # and elbo (.elbo); it also gives the ESS from the same draws.
        warm_cell(cell, p, x, q)
        t0 = time.perf_counter()
        ws = estimators.weight_stats(p, x, q, K, R, seed=seed)
        seconds = time.perf_counter() - t0
        ess = ws.ess
        row["ess"], row["ess_se"] = metrics.mean_se(ess)
        _khat_columns(row, ws.khat, K)
        if cell.estimator == "importance_sampling":
            rows.summarize(row, "log_marginal", ws.log_p_hat, row["log_marginal"], K=K)
        else:
            rows.summarize(row, "elbo", ws.elbo, row["elbo_exact"])
    elif cell.estimator == "gradient":
        warm_cell(cell, p, x, q)
        t0 = time.perf_counter()
        g = estimators.gradient(p, x, q, K, R, cell.method, cell.objective, seed=seed, **dict(cell.options))
        seconds = time.perf_counter() - t0
        truth, truth_se = _gradient_truth(p, x, q, cell)
        rows.summarize(row, row["target"], g, truth, truth_se)
    else:  # pragma: no cover - Sweep validates estimator names
        raise ValueError(f"estimator: unknown {cell.estimator!r}")
    row["seconds"] = seconds
    work = entry.samples_per_replicate(p, K, dict(cell.options)) * R
    row["samples_per_s"] = work / seconds if seconds > 0 else math.inf
    return row


def task_groups(cells) -> list:
    """The cells as executor tasks: tuples of cells, in order.  Gradient cells
    of the "iwae" objective that share a reference gradient (same problem, q,
    K and root seed: the methods) form one task, so the reference -- 20000
    replicates at that K, often dearer than the cells themselves -- is
    computed once, in one process, as in a sequential run; every other cell
    is a task of its own."""
    tasks, shared = [], {}
    for cell in cells:
        if cell.estimator == "gradient" and cell.objective == "iwae":
            key = (cell.spec, cell.q, cell.K, cell.root_seed)
            if key in shared:
                tasks[shared[key]].append(cell)
                continue
            shared[key] = len(tasks)
        tasks.append([cell])
    return [tuple(t) for t in tasks]


def task_cost(task) -> int:
    """A rough cost of a task, in samples drawn: K * R per cell, plus the
    iwae reference gradient's IWAE_REF_REPLICATES * K for a group that needs
    one.  Only used to order the tasks."""
    cost = sum(c.K * c.R for c in task)
    if task[0].estimator == "gradient" and task[0].objective == "iwae":
        cost += IWAE_REF_REPLICATES * task[0].K
    return cost


def run_cells(cells) -> list:
    """``[run_cell(c) for c in cells]``: one executor task (see ``task_groups``).
    A cell whose user estimator fails (``EstimatorFailure``: it raised, or
    returned the wrong shape, NaN or inf) gives ``{"cell_id", "failed",
    "failure_kind"}`` instead of a row: it fails alone, the others go on."""
    out = []
    for c in cells:
        try:
            out.append(run_cell(c))
        except EstimatorFailure as exc:
            out.append({"cell_id": c.cell_id, "failed": str(exc), "failure_kind": exc.kind})
    return out


def _as_sweeps(sweep):
    if isinstance(sweep, Sweep):
        return [sweep]
    if isinstance(sweep, (str, bytes, dict)) or not hasattr(sweep, "__iter__"):
        raise ValueError(f"sweep: expected a Sweep or a non-empty list of Sweeps, got {type(sweep).__name__}")
    sweeps = list(sweep)
    if not sweeps or not all(isinstance(s, Sweep) for s in sweeps):
        raise ValueError("sweep: expected a Sweep or a non-empty list of Sweeps")
    return sweeps


def _as_out(out) -> Path:
    if isinstance(out, bytes) or not isinstance(out, (str, os.PathLike)) or (isinstance(out, str) and not out):
        raise ValueError(f"out: expected a directory path (a non-empty str or os.PathLike), got {out!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {str(out)!r} is not a directory")
    return out


def _check_builds(cell):
    """Build the cell's problem once; a ValueError naming the problem's label
    when its family cannot be built or gives no observation."""
    try:
        build_instance(cell.spec)
    except ValueError as exc:
        raise ValueError(f"problems.{cell.problem}.{exc}") from None


def plan(sweep):
    """(cells to run, skipped) for a Sweep or list of Sweeps: cells in sweep
    order with duplicates removed.  Skipped, each with its reason
    (``skip_reason``): cells whose q preset the problem cannot serve (e.g.
    "uniform" for a user's model with neither posterior nor support), "elbo"
    cells without an exact ELBO, gradient cells of the "elbo" objective
    without an exact gradient, and gradient cells the estimator refuses (e.g.
    "reparam" for a Categorical q, "score_loo" at K = 1: the estimator's own
    message).  A problem that cannot be built is a ValueError naming its label."""
    cells, seen, skipped = [], set(), []
    reasons = {}
    for s in _as_sweeps(sweep):
        for cell in s.cells():
            if cell.cell_id in seen:
                continue
            seen.add(cell.cell_id)
            _check_builds(cell)
            key = (cell.spec, cell.q, cell.estimator, cell.K, cell.method, cell.objective, cell.options)
            if key not in reasons:
                reasons[key] = skip_reason(cell)
            if reasons[key] is not None:
                skipped.append({"cell": cell.label(), "cell_id": cell.cell_id, "reason": reasons[key]})
                continue
            cells.append(cell)
    return cells, skipped


def assemble(out, cells) -> pd.DataFrame:
    """The tidy table of ``cells`` read back from ``out/cells`` in sweep
    order, with the derived columns added: variance ratios, and one column per
    user-estimator option (from the ``options`` JSON)."""
    if not cells:
        return pd.DataFrame({f.name: pd.Series(dtype=f.type.to_pandas_dtype()) for f in SCHEMA})
    df = storage.read_cells(out, [c.cell_id for c in cells])
    if "options" in df and (df["options"] != "").any():
        opts = [json.loads(o) if o else {} for o in df["options"]]
        for name in sorted({k for o in opts for k in o}):
            if name not in df.columns:
                df[name] = [o.get(name) for o in opts]
    return analysis.add_variance_ratios(df, reference=REFERENCE_METHOD)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``bench.run``: ``saved`` of ``total`` cells are stored in
    ``out``; the same call (or command) resumes from there."""

    def __init__(self, saved, total, out):
        super().__init__(f"interrupted: {saved} of {total} cells are saved in {out}")
        self.saved, self.total, self.out = saved, total, out


def _check_importable(cells, ex, scheduler):
    """A user estimator that worker processes cannot import is refused before the run."""
    in_process = scheduler is None and getattr(ex, "workers", None) == 1
    if in_process:
        return
    for c in cells:
        if c.estimator_ref == "" and not c.entry().builtin:
            where = "a Dask worker" if scheduler is not None else "a worker process"
            raise ValueError(
                f"estimators: {c.estimator!r} cannot be imported by {where} (it is defined in __main__, in a "
                "function, or as a lambda); put it in an importable module and name it there, or run with the "
                "local executor"
            )


def run(
    sweep, out="results", executor="local", workers=None, progress=None, fresh=False, scheduler=None
) -> pd.DataFrame:
    """Run a Sweep (or a list of Sweeps) into the results directory ``out``.

    Finished cells already in ``out/cells`` are skipped, so a re-run (or a
    run after a kill) only computes what is missing; the final table is read
    back from the cell files, so it is the same whichever cells ran now.
    ``fresh=True`` deletes this sweep's finished cells first.  Writes
    ``benchmarks.parquet``, ``jensen.parquet``, ``jensen_fit.parquet``,
    ``sweep.json`` and ``skipped.json`` into ``out`` (as one set, under
    ``storage.results_lock``) and returns the table (``df.attrs["skipped"]``
    lists the skipped cells with reasons, ``df.attrs["executor"]`` says what
    ran them).

    Each cell's row is written to ``out/cells`` by *this* process as soon as
    the executor hands it back, whichever executor computed it.  The
    executor's tasks are ``task_groups(cells)``: one cell each, except the
    "iwae" gradient cells that share a reference gradient; they are handed
    to the executor dearest first (``task_cost``).

    ``executor``: "local" (sequential), "local:<n>" (n processes) or any
    object with ``map_unordered(fn, tasks)`` (see ``bench.executors``).
    ``scheduler``: run the cells on Dask instead -- "tcp://HOST:PORT" (an
    existing scheduler) or "local:N" (a LocalCluster of N processes, closed
    afterwards); see ``bench.dask_executor``.  Needs the ``[distributed]``
    extra, and excludes ``executor``/``workers``.
    ``progress``: None = a bar on stderr when it is a terminal; False = off.
    """
    sweeps = _as_sweeps(sweep)
    out = _as_out(out)
    if not isinstance(fresh, (bool, np.bool_)):
        raise ValueError(f"fresh: expected True or False, got {fresh!r}")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"progress: expected None, True or False, got {progress!r}")
    if scheduler is not None:
        from .dask_executor import parse_scheduler, require_distributed

        parse_scheduler(scheduler)
        if workers is not None or not (isinstance(executor, str) and executor == "local"):
            raise ValueError("scheduler: give either scheduler (Dask) or executor/workers (local), not both")
        require_distributed()  # DistributedUnavailable (an ImportError) with the install command
        ex = None
    else:
        ex = get_executor(executor, workers)
    if progress is not False and (scheduler is None or str(scheduler).startswith("local:")):
        # compile here, once, before plan's probes and the cells: a first run says
        # what it is doing, the cells' ETA leaves compilation out, and local worker
        # processes load the cached kernels instead of each compiling them
        todo = unfinished(sweeps, out, fresh)
        if todo:
            compile_kernels(todo, enabled=None if progress is None else bool(progress))
    cells, skipped = plan(sweeps)
    if not cells:
        raise ValueError("sweep: every cell was skipped; nothing to run: " + "; ".join(s["reason"] for s in skipped[:3]))
    out.mkdir(parents=True, exist_ok=True)
    storage.clean_temporaries(out)
    if fresh:
        for c in cells:
            storage.cell_path(out, c.cell_id).unlink(missing_ok=True)
    _check_importable(cells, ex, scheduler)
    done = storage.finished_ids(out)
    todo = [c for c in cells if c.cell_id not in done]
    if todo and len(todo) < len(cells) and progress is not False:
        print(f"resuming: {len(cells) - len(todo)} of {len(cells)} cells are already stored in {out}; "
              f"computing the other {len(todo)}", file=sys.stderr, flush=True)
    bar = Progress(len(cells), label="cells", enabled=(None if progress is None else bool(progress)),
                   already=len(cells) - len(todo))
    failed = []
    try:
        ex = _run_tasks(todo, ex, scheduler, out, bar, failed)
    except KeyboardInterrupt:
        saved = len(storage.finished_ids(out) & {c.cell_id for c in cells})
        raise SweepInterrupted(saved, len(cells), out) from None
    failed_ids = {f["cell_id"] for f in failed}
    df = assemble(out, [c for c in cells if c.cell_id not in failed_ids])
    df.attrs["skipped"] = skipped
    df.attrs["failed"] = failed
    df.attrs["executor"] = repr(ex) if ex is not None else f"none needed (all {len(cells)} cells were already stored)"
    with storage.results_lock(out):
        _write_derived(out, df, sweeps, skipped)
        storage.write_json(out / "failed.json", failed)
    return df


def _run_tasks(todo, ex, scheduler, out, bar, failed):
    """Run the tasks of ``todo`` on ``ex`` (Dask when ``scheduler``), writing each
    finished cell as it arrives and collecting failures; returns the executor used."""
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if ex is None and todo:  # start (or connect to) Dask only when there is work
            from .dask_executor import dask_executor

            ex = stack.enter_context(dask_executor(scheduler))
        # Dearest first (a stable sort: ties keep sweep order), so that no
        # worker is left computing one big cell while the others sit idle at
        # the end of the sweep.  The order never changes a number.
        tasks = sorted(task_groups(todo), key=task_cost, reverse=True)
        for i, rows in (ex.map_unordered(run_cells, tasks) if tasks else ()):
            if len(rows) != len(tasks[i]):
                raise RuntimeError(f"executor {ex!r} returned {len(rows)} rows for task {i} of {len(tasks[i])} cells")
            for cell, row in zip(tasks[i], rows, strict=True):
                if row.get("cell_id") != cell.cell_id:
                    raise RuntimeError(
                        f"executor {ex!r} returned the row of {row.get('cell_id')!r} for task {i} ({cell.cell_id})"
                    )
                if "failed" in row:
                    failed.append({"cell": cell.label(), "cell_id": cell.cell_id, "estimator": cell.estimator,
                                   "kind": row["failure_kind"], "reason": row["failed"]})
                else:
                    storage.write_cell(out, cell.cell_id, row, SCHEMA)
                bar.update(1, note=cell.label())
    return ex


def _write_derived(out, df, sweeps, skipped):
    """The sweep's table and what is derived from it, written as one set."""
    storage.write_table(out / storage.TABLE, df)
    storage.write_json(out / "sweep.json", [s.to_dict() for s in sweeps])
    storage.write_json(out / "skipped.json", skipped)
    jt = analysis.jensen_table(df)
    if len(jt):
        storage.write_table(out / "jensen.parquet", jt)
        storage.write_table(out / "jensen_fit.parquet", analysis.jensen_fit(jt))
    else:  # no ELBO cells in this sweep: no Jensen table (and none left from an earlier sweep)
        (out / "jensen.parquet").unlink(missing_ok=True)
        (out / "jensen_fit.parquet").unlink(missing_ok=True)
