r"""The lecture's claims, executable.

Each claim is a statement from the lecture, a **rule fixed in advance** that
decides it from measured numbers, the numbers themselves (every one computed
here, from the estimators and the exact answers of ``problems``), a verdict
("held" / "did not hold") and the data of its figure.  The verdict is always
``RULES[id](numbers)``: a pure function of the recorded numbers, so anyone can
re-apply the rule to ``claims.json`` and get the same answer
(``bench/bench_claims.py`` does).

The claims (ids in ``CLAIM_IDS`` order):

``uniform_vs_is``
    Uniform sampling "works in theory but not in practice"; importance
    sampling fixes it.  MissingPixels, the top half (32 bits) of a digit missing.
``single_sample_bias``
    The single-sample log estimate is biased: E[log p̂] at K = 1 is the ELBO,
    below log p(x).  The lecture's MixturePrior.
``elbo_plus_kl``
    ELBO + KL = log p(x): exactly (to 1e-9), and the Monte Carlo Jensen gap
    log p(x) − E[ELBO estimate] equals the exact KL within 4 SE.
``lecture_question``
    N(2, 2) approximates the lecture's bimodal posterior better than
    N(−4, 0.75) -- under both readings of the second parameter.
``reparam_variance``
    The reparameterization trick: pathwise gradients have lower variance than
    the score function.
``vae_learns``
    SVI (a φ_i per datapoint) and the amortized linear VAE reach the PPCA
    maximum likelihood.
``score_steps_small`` / ``score_steps_large``
    The score-function encoder gradient needs more steps than the
    reparameterization gradient at equal K -- measured on a small problem
    (D = 5, d = 2, the VAE claim's size) and on a larger one (D = 20, d = 5).
``vae_learns_digits``
    ``vae_learns`` on the real digits: PPCA for d = 2, 5, 10 (exact held-out
    log-likelihoods), the amortized VAE and SVI with reparam and score_loo.
``analytic_kl_variance``
    The ELBO with KL(q || p(z)) in closed form has a lower variance than the
    all-Monte-Carlo ELBO (exact variances, on the digits' PPCA decoder).
``beta_vae`` / ``principal_axes``
    The beta-VAE optimum against PPCA's; decoder columns along the principal
    components and the collapse of the dimensions below beta sigma^2 (digits).

Layout: one module per claim (``bench/claims/<claim>.py``) holding its
settings per mode (``SETTINGS = {"full": {group: dict}, "smoke": {...}}``),
its rule's thresholds, its ``SPEC``, its rule and its computation, and
exporting ``CLAIMS = {id: ClaimDef(spec, rule, compute)}``; shared helpers in
``bench/claims/_common.py``.  A new claim is one new module plus its name in
``MODULES`` below (the order of ``MODULES`` is the order of ``CLAIM_IDS``).

Output (``write_claim``): for each claim, its tables as
``<out>/claims_<id>__<table>.parquet`` and its entry in ``<out>/claims.json``
(statement, rule, numbers, verdict, seconds, mode, table files), every file
written atomically (``bench.storage``); a claim's entry is written after its
tables, so an entry in claims.json means the claim is complete.

Modes: ``full`` (``pytest --benchmark-only`` and ``python -m bench report``;
about a minute on two cores for the synthetic claims, about four more for the
digits fits) and ``smoke`` (plain ``pytest``: the same code
paths at tiny sizes, whose verdicts mean little).  ``claims_mode()`` reads
``EVIDENCE_BENCH_MODE`` like the suite, defaulting to ``full``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import storage

from . import (
    analytic_kl,
    beta_vae,
    elbo_plus_kl,
    lecture_question,
    reparam_variance,
    score_steps,
    single_sample_bias,
    uniform_vs_is,
    vae_digits,
    vae_learns,
)
from ._common import (  # noqa: F401  (re-exported: the helpers' public home is bench.claims)
    HELD,
    LEARNING_RATE,
    LECTURE_DIGIT,
    NOT_HELD,
    VAE_K,
    ClaimDef,
    _curves,
    _error_row,
    _mixture_prior_expectation,
    bernoulli_relative_weight_variance,
    log_weight_variance,
    orthogonal_linear_gaussian,
)
from .elbo_plus_kl import GAP_Z, IDENTITY_TOL, claim_elbo_plus_kl  # noqa: F401
from .lecture_question import claim_lecture_question  # noqa: F401
from .reparam_variance import RATIO_SE, claim_reparam_variance  # noqa: F401
from .score_steps import GAP_FRACTION, claim_score_steps_large, claim_score_steps_small  # noqa: F401
from .single_sample_bias import BIAS_Z, claim_single_sample_bias  # noqa: F401
from .uniform_vs_is import IS_FACTOR, PRACTICE_NATS, THEORY_Z, claim_uniform_vs_is  # noqa: F401
from .vae_learns import SVI_LEARNING_RATE, VAE_EPS, VAE_GAP, claim_vae_learns  # noqa: F401

__all__ = [
    "CLAIM_IDS",
    "CLAIMS_JSON",
    "SPECS",
    "RULES",
    "SETTINGS",
    "Claim",
    "claims_mode",
    "compute_claim",
    "compute_claims",
    "ensure_claims",
    "read_claims",
    "write_claim",
    "bernoulli_relative_weight_variance",
    "orthogonal_linear_gaussian",
]

CLAIMS_JSON = "claims.json"

# --------------------------------------------------------------------------- the registry
# One line per claim module; its CLAIMS and SETTINGS join the tables below.
MODULES = (
    uniform_vs_is,
    single_sample_bias,
    elbo_plus_kl,
    lecture_question,
    reparam_variance,
    vae_learns,
    score_steps,
    vae_digits,
    analytic_kl,
    beta_vae,
)


def _build_registry(modules):
    """SPECS, RULES, FUNCTIONS and SETTINGS (mode -> group -> dict) from the
    claim modules; a claim id or a settings group defined twice is an error."""
    specs, rules, functions = {}, {}, {}
    settings = {"full": {}, "smoke": {}}
    for mod in modules:
        for cid, d in mod.CLAIMS.items():
            if cid in specs:
                raise ValueError(f"modules: claim id {cid!r} defined twice (again in {mod.__name__})")
            specs[cid], rules[cid], functions[cid] = d.spec, d.rule, d.compute
        if set(mod.SETTINGS) != set(settings):
            raise ValueError(f"modules: {mod.__name__}.SETTINGS must have exactly the modes {list(settings)}")
        for mode, groups in mod.SETTINGS.items():
            for group, values in groups.items():
                if group in settings[mode]:
                    raise ValueError(f"modules: settings group {group!r} defined twice (again in {mod.__name__})")
                settings[mode][group] = values
    return specs, rules, functions, settings


SPECS, RULES, FUNCTIONS, SETTINGS = _build_registry(MODULES)
CLAIM_IDS = tuple(SPECS)


def verdict(claim_id, numbers):
    """The verdict of a claim's rule on its numbers: "held" or "did not hold"."""
    return HELD if RULES[claim_id](numbers) else NOT_HELD


# --------------------------------------------------------------------------- the result type
@dataclass
class Claim:
    """One computed claim (see the module docstring)."""

    id: str
    numbers: dict
    tables: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    mode: str = "full"
    seconds: float = math.nan

    @property
    def verdict(self):
        return verdict(self.id, self.numbers)

    def record(self, table_files):
        spec = SPECS[self.id]
        return {
            "id": self.id,
            "order": CLAIM_IDS.index(self.id),
            "title": spec["title"],
            "statement": spec["statement"],
            "rule": spec["rule"],
            "figure": spec["figure"],
            "numbers": {k: _jsonable(v) for k, v in self.numbers.items()},
            "number_order": list(self.numbers),  # claims.json sorts its keys; this keeps the computed order
            "verdict": self.verdict,
            "notes": list(self.notes),
            "mode": self.mode,
            "seconds": float(self.seconds),
            "tables": table_files,
        }


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else "nan")
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    return v


def _unjson(v):
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, list):
        return [_unjson(u) for u in v]
    return v


# --------------------------------------------------------------------------- running and storage
def claims_mode():
    """``EVIDENCE_BENCH_MODE`` (full | smoke) if set, else full."""
    env = os.environ.get("EVIDENCE_BENCH_MODE", "").strip().lower()
    if env and env not in SETTINGS:
        raise ValueError(f"EVIDENCE_BENCH_MODE: expected 'full' or 'smoke', got {env!r}")
    return env or "full"


def _check_id(claim_id):
    if claim_id not in SPECS:
        raise ValueError(f"claim_id: unknown claim {claim_id!r}; expected one of {list(CLAIM_IDS)}")
    return claim_id


def _check_mode(mode):
    if mode not in SETTINGS:
        raise ValueError(f"mode: expected one of {list(SETTINGS)}, got {mode!r}")
    return mode


def compute_claim(claim_id, mode="full"):
    """Compute one claim (no files written); returns a ``Claim``."""
    _check_id(claim_id)
    _check_mode(mode)
    t0 = time.perf_counter()
    numbers, tables, notes = FUNCTIONS[claim_id](SETTINGS[mode])
    return Claim(claim_id, numbers, tables, notes, mode, time.perf_counter() - t0)


def read_claims(out) -> dict:
    """The entries of ``out/claims.json`` by id ({} if there is none)."""
    f = Path(out) / CLAIMS_JSON
    if not f.is_file():
        return {}
    entries = json.loads(f.read_text())["claims"]
    for e in entries:
        e["numbers"] = {k: _unjson(v) for k, v in e["numbers"].items()}
    return {e["id"]: e for e in entries}


def write_claim(out, claim: Claim):
    """Write a claim's tables, then its entry in claims.json (merged with the
    entries already there, ordered as ``CLAIM_IDS``); every file atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, df in claim.tables.items():
        fname = f"claims_{claim.id}__{name}.parquet"
        storage.write_table(out / fname, df)
        files[name] = fname
    entries = read_claims(out)
    entries[claim.id] = claim.record(files)
    ordered = [entries[c] for c in CLAIM_IDS if c in entries]
    storage.write_json(out / CLAIMS_JSON, {"claims": [
        {**e, "numbers": {k: _jsonable(v) for k, v in e["numbers"].items()}} for e in ordered]})
    return out / CLAIMS_JSON


def compute_claims(out, mode="full", ids=None, progress=None):
    """Compute and write the claims ``ids`` (default: all); returns the Claims."""
    ids = CLAIM_IDS if ids is None else tuple(_check_id(c) for c in ids)
    done = []
    for cid in ids:
        claim = compute_claim(cid, mode)
        write_claim(out, claim)
        done.append(claim)
        if progress is not None:
            progress(claim)
    return done


def ensure_claims(out, mode=None, progress=None, ids=None):
    """Compute (and write) the claims ``ids`` (default: all) that ``out/claims.json``
    does not hold yet; returns the list of computed Claims (empty when all were there)."""
    mode = claims_mode() if mode is None else _check_mode(mode)
    wanted = CLAIM_IDS if ids is None else tuple(_check_id(c) for c in ids)
    have = read_claims(out)
    missing = [c for c in wanted if c not in have]
    return compute_claims(out, mode, missing, progress) if missing else []
