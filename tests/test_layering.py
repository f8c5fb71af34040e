"""The layers run one way: problems -> estimators -> bench -> reports.

* ``problems`` imports nothing from the project (checked both by running a
  fresh interpreter and by reading every import statement under problems/);
* ``estimators`` imports ``problems`` with plain top-level imports only (no
  function-local ``import problems`` to dodge a cycle);
* nothing outside ``estimators`` imports ``estimators._kernels``;
* the proposal classes re-exported by ``estimators`` are the very objects of
  ``problems.distributions``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("problems", "estimators", "bench", "reports")


def _sources(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def _imports(tree, package_of_file):
    """Every (module, lineno, node) imported by a module's AST, relative imports
    resolved against the file's package (``from . import x`` in problems/ is
    problems.x)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, node.lineno, node))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package_of_file.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
                names = [f"{module}.{a.name}" for a in node.names]
            else:
                module = node.module or ""
                names = [f"{module}.{a.name}" for a in node.names]
            out.append((module, node.lineno, node))
            out.extend((n, node.lineno, node) for n in names)
    return out


def _package_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    else:
        parts = parts[:-1]
    return ".".join(parts)


def _top(module):
    return module.split(".")[0]


def test_importing_problems_loads_nothing_else_of_the_project():
    code = (
        "import json, sys\n"
        "import problems\n"
        "import problems.distributions, problems.base\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(PROJECT)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(m == "problems" for m in loaded)  # the probe itself works
    foreign = [m for m in loaded if _top(m) != "problems"]
    assert foreign == [], f"importing problems loaded {foreign}"


def test_no_file_under_problems_imports_a_higher_layer():
    offences = []
    for path in _sources("problems"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, lineno, _ in _imports(tree, _package_of(path)):
            if _top(module) in ("estimators", "bench", "reports"):
                offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert offences == []


def test_estimators_import_neither_bench_nor_reports():
    offences = []
    for path in _sources("estimators"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, lineno, _ in _imports(tree, _package_of(path)):
            if _top(module) in ("bench", "reports"):
                offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert offences == []


@pytest.mark.parametrize("package", ["bench", "reports", "problems"])  # tests/ may unit-test kernels
def test_nothing_outside_estimators_imports_the_kernels(package):
    offences = []
    for path in _sources(package):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, lineno, _ in _imports(tree, _package_of(path)):
            if module == "estimators._kernels" or module.startswith("estimators._kernels."):
                offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert offences == []


def _function_local_imports(tree):
    """Import statements nested inside a def (or a lambda/class body inside one)."""
    found = []

    class Visitor(ast.NodeVisitor):
        depth = 0

        def _func(self, node):
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _func

        def visit_Import(self, node):
            if self.depth:
                found.extend((a.name, node.lineno) for a in node.names)

        def visit_ImportFrom(self, node):
            if self.depth:
                found.append(("." * node.level + (node.module or ""), node.lineno))

    Visitor().visit(tree)
    return found


def test_estimators_have_no_function_local_import_of_problems():
    offences = []
    for path in _sources("estimators"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, lineno in _function_local_imports(tree):
            if _top(module) == "problems":
                offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {module} inside a function")
    assert offences == []


def test_the_scanner_sees_a_function_local_import():
    """The AST checks above can fail: they find what they look for."""
    tree = ast.parse("import numpy\ndef f():\n    from problems import LinearGaussian\n    import problems.base\n")
    assert _function_local_imports(tree) == [("problems", 3), ("problems.base", 4)]
    tree = ast.parse("from ._kernels import driver\nfrom ._kernels.rng import seed_state\n")
    mods = {m for m, _, _ in _imports(tree, "bench")}
    assert "bench._kernels" in mods  # relative imports resolve against the file's own package
    tree = ast.parse("from estimators._kernels import driver\nimport estimators._kernels.rng\n")
    mods = {m for m, _, _ in _imports(tree, "bench")}
    assert {"estimators._kernels", "estimators._kernels.rng"} <= mods


def test_proposals_are_reexported_as_the_same_objects():
    import estimators
    import problems.distributions as dist
    from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian, Proposal, Uniform

    for name, obj in [
        ("Gaussian", Gaussian),
        ("MultivariateGaussian", MultivariateGaussian),
        ("Categorical", Categorical),
        ("Bernoulli", Bernoulli),
        ("Uniform", Uniform),
        ("Proposal", Proposal),
    ]:
        assert obj is getattr(dist, name), name
        assert getattr(estimators, name) is obj
    from estimators.proposals import Gaussian as G2

    assert G2 is dist.Gaussian
    # and a problem's prior is an instance of the class users import from estimators
    from problems import LinearGaussian

    assert isinstance(LinearGaussian.random(D=3, d=2, seed=0).prior(), Gaussian)
