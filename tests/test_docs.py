"""The user's documentation runs: docs/extending.md's code blocks and the
README's "Thirty seconds of API" execute as written, and docs/api.md names
only things that exist.

docs/extending.md is executed block by block, in order, in one namespace,
from a temporary working directory: a block whose first line is
``# file: NAME`` is written to NAME there (the guide's model modules, which
the sweep imports by an import string, and its TOML configuration) instead of
being executed; ``bash`` blocks are not run.  The guide's own asserts (z-scores
against its exact members, the compiled and the NumPy path agreeing) are
therefore part of this test.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "extending.md"
API = ROOT / "docs" / "api.md"
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_FILE = re.compile(r"^# file: ([\w./-]+)\s*$")
SWEEP_HEADING = "## A sweep over your models"


def blocks(text):
    """[(language, code, offset)] of the fenced blocks, in order."""
    return [(m.group(1), m.group(2), m.start()) for m in _FENCE.finditer(text)]


def _line(text, offset):
    return text.count("\n", 0, offset) + 1


def run_blocks(text, start, stop, namespace, workdir, source):
    """Execute (or write, for '# file:' blocks) the blocks whose offset is in [start, stop)."""
    ran = 0
    for lang, code, offset in blocks(text):
        if not (start <= offset < stop):
            continue
        first = code.splitlines()[0] if code.strip() else ""
        m = _FILE.match(first)
        if m:
            path = workdir / m.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            continue
        if lang != "python":
            continue
        where = f"{source}:{_line(text, offset) + 1}"
        exec(compile(code, where, "exec"), namespace)
        ran += 1
    return ran


def test_the_block_parser_sees_every_block():
    text = GUIDE.read_text()
    found = blocks(text)
    assert len(found) == text.count("\n```") // 2 + (1 if text.startswith("```") else 0)
    files = [_FILE.match(c.splitlines()[0]).group(1) for _, c, _ in found if _FILE.match(c.splitlines()[0])]
    assert files == ["mymodels.py", "mydiscrete.py", "mysweep.toml"]
    assert SWEEP_HEADING in text


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """A namespace and a working directory in which the guide runs; restores
    cwd, sys.path, the imported guide modules and the estimator registry."""
    workdir = tmp_path_factory.mktemp("guide")
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    importlib.invalidate_caches()
    namespace = {"__name__": "extending_guide"}
    try:
        yield namespace, workdir
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        for name in ("mymodels", "mydiscrete"):
            sys.modules.pop(name, None)
        registry = sys.modules.get("bench.registry")
        if registry is not None:
            for name in ("numpy_is", "antithetic_is"):
                getattr(registry, "_REGISTRY", {}).pop(name, None)


def test_extending_guide_runs_up_to_the_sweep(guide):
    namespace, workdir = guide
    text = GUIDE.read_text()
    ran = run_blocks(text, 0, text.index(SWEEP_HEADING), namespace, workdir, "docs/extending.md")
    assert ran >= 8
    # the guide's objects are what it says they are
    assert namespace["estimators"].execution_path(namespace["p"], namespace["x"], namespace["q"]) == "generic"
    assert namespace["estimators"].execution_path(namespace["pc"], namespace["x"], namespace["q"]) == "compiled-user"
    assert (workdir / "mymodels.py").is_file() and (workdir / "mydiscrete.py").is_file()


def test_extending_guide_sweep_runs(guide):
    """The sweep section: import-string families in bench.Sweep and in a TOML
    config, truth columns equal to the models' own exact members."""
    import numpy as np

    import bench

    namespace, workdir = guide
    if "p" not in namespace:
        pytest.skip("the guide's first part did not run (see the test before)")
    text = GUIDE.read_text()
    start = text.index(SWEEP_HEADING)
    ran = run_blocks(text, start, len(text), namespace, workdir, "docs/extending.md")
    assert ran == 2
    df, df_toml = namespace["df"], namespace["df_toml"]
    assert set(df["problem"]) == {"normal-normal", "poisson-mix"}
    assert set(df_toml["problem"]) == {"normal-normal", "poisson-mix"}
    # the truth of every importance-sampling cell is the model's exact log p(x)
    for label, p, x in [
        ("normal-normal", namespace["p"], namespace["x"]),
        ("poisson-mix", namespace["pm"], namespace["xd"]),
    ]:
        rows = df[(df["problem"] == label) & (df["estimator"] == "importance_sampling")]
        assert len(rows) == 3 * 2
        assert abs(rows["truth"] - float(p.log_marginal(x))).max() < 1e-9
        assert abs(rows["log_marginal"] - float(p.log_marginal(x))).max() < 1e-9
        for preset in ("posterior", "prior", "shift:1"):
            q = bench.make_q(p, x, preset)
            cells = df[(df["problem"] == label) & (df["q"] == preset)]
            elbo_rows = cells[cells["estimator"] == "elbo"]
            assert len(elbo_rows) == 2
            assert abs(elbo_rows["truth"] - p.elbo(x, q)).max() < 1e-9
            assert abs(cells["kl"] - p.kl(x, q)).max() < 1e-9
            grad_rows = cells[cells["estimator"] == "gradient"]
            assert len(grad_rows) == (4 if label == "normal-normal" else 2)  # reparam: skipped on a Categorical q
            assert abs(grad_rows["truth"] - np.linalg.norm(p.elbo_grad(x, q))).max() < 1e-9


def test_readme_thirty_seconds_of_api_runs():
    text = README.read_text()
    start = text.index("## Thirty seconds of API")
    stop = text.index("\n## ", start + 1)
    namespace = {"__name__": "readme"}
    ran = run_blocks(text, start, stop, namespace, ROOT, "README.md")
    assert ran == 1


# --------------------------------------------------------------------------- docs/api.md

_NAME = re.compile(r"\b(problems|estimators|bench)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _planned_section(text):
    """The text of api.md's "Planned" section (names there need not exist yet)."""
    m = re.search(r"^## Planned.*?(?=^## |\Z)", text, re.S | re.M)
    return m.group(0) if m else ""


def _resolve(dotted):
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:  # a submodule not imported by its package's __init__
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return False
    return True


def test_api_reference_names_only_what_exists():
    text = API.read_text()
    planned = _planned_section(text)
    body = text.replace(planned, "") if planned else text
    names = sorted({m.group(1) + m.group(2) for m in _NAME.finditer(body)})
    assert len(names) > 30
    # a trailing member of a name in prose ("estimators.gradient.") or a file path is not a name
    missing = [n for n in names if not _resolve(n.rstrip(".")) and not n.endswith((".py", ".md", ".toml"))]
    assert missing == [], f"docs/api.md names things that do not exist: {missing}"


_CAPITALISED = re.compile(r"`([A-Z][A-Za-z0-9_]+)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_IMPORT = re.compile(r"^from (problems|estimators|bench(?:\.\w+)?) import ([\w, ]+)$", re.M)
_NOT_API = {"AssertionError", "ValueError", "NUMBA_NUM_THREADS"}


def test_api_reference_classes_and_imports_exist():
    """Every `ClassName` or `ClassName.member` in code spans, and every name of a
    `from problems|estimators|bench import ...` line, is an attribute of one of
    the packages (a class named bare is looked up in problems, estimators, bench)."""
    import bench
    import estimators
    import problems

    text = API.read_text()
    planned = _planned_section(text)
    body = text.replace(planned, "") if planned else text
    missing = []
    spans = {m.group(1) + m.group(2) for m in _CAPITALISED.finditer(body)} - _NOT_API
    assert {"LinearGaussian.random", "MultivariateGaussian", "WeightStats"} <= spans
    for dotted in sorted(spans):
        head, *rest = dotted.split(".")
        owner = next((pkg for pkg in (problems, estimators, bench) if hasattr(pkg, head)), None)
        obj = getattr(owner, head, None)
        for part in rest:
            obj = getattr(obj, part, None)
        if owner is None or obj is None:
            missing.append(dotted)
    imports = _IMPORT.findall(body)
    assert imports
    for module, names in imports:
        mod = importlib.import_module(module)
        missing += [f"{module}.{n.strip()}" for n in names.split(",") if not hasattr(mod, n.strip())]
    assert missing == [], f"docs/api.md names things that do not exist: {missing}"


def test_api_reference_planned_names_do_not_exist_yet():
    """The "Planned" section names things that do not exist; when one lands,
    this fails until api.md documents it where it belongs."""
    import inspect

    import estimators

    planned = _planned_section(API.read_text())
    names = sorted({m.group(1) + m.group(2) for m in _NAME.finditer(planned)})
    landed = [n for n in names if _resolve(n.rstrip("."))]
    if "kl=" in planned and "kl" in inspect.signature(estimators.elbo).parameters:
        landed.append('estimators.elbo(..., kl="analytic")')
    assert landed == [], f"now available, document them in docs/api.md and drop them from Planned: {landed}"


def test_api_reference_documents_every_public_name():
    """Every name a package exports (``__all__``), every gradient method and
    every estimator target appears in docs/api.md: a new public name lands
    with its line in the reference."""
    import bench
    import estimators
    import problems
    from estimators.gradients import METHODS

    text = API.read_text()
    missing = [
        f"{mod.__name__}.{name}"
        for mod in (problems, estimators, bench)
        for name in mod.__all__
        if not re.search(r"\b" + re.escape(name) + r"\b", text)
    ]
    missing += [f"gradient method {m!r}" for m in METHODS if f"`{m}`" not in text]
    missing += [f"target {t!r}" for t in bench.TARGETS if f'`"{t}"`' not in text]
    assert missing == [], f"docs/api.md does not document: {missing}"


def test_api_reference_is_self_contained():
    for path in (API, GUIDE):
        text = path.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, path.name
    assert "[extending.md](extending.md)" in API.read_text()
