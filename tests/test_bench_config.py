"""Bad sweep configurations: each raises a ValueError whose message starts
with the offending key."""

import textwrap

import pytest

from bench import load_config
from bench.config import parse_config
from bench.sweep import Sweep

GOOD = """
name = "t"
seed = 1

[problems.lg]
family = "LinearGaussian"
D = 3
d = 2
seed = 1
x_seed = 2

[[sweep]]
estimators = ["importance_sampling", "elbo"]
q = ["posterior", "prior"]
K = [1, 10]
R = 20

[[sweep]]
estimators = ["gradient"]
methods = ["score", "reparam"]
objectives = ["elbo"]
q = ["meanfield"]
K = [2]
R = 10
"""


def _write(tmp_path, text):
    path = tmp_path / "cfg.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_config_loads(tmp_path):
    sweeps = load_config(_write(tmp_path, GOOD))
    assert [len(s) for s in sweeps] == [2 * 2 * 2, 2]
    assert sweeps[0].name == "t" and sweeps[0].seed == 1
    assert sweeps[1].methods == ("score", "reparam")


@pytest.mark.parametrize(
    "old, new, key",
    [
        ('family = "LinearGaussian"', 'family = "Linear"', r"problems\.lg\.family: unknown problem 'Linear'"),
        ("D = 3", "D = 0", r"problems\.lg\.D: must be >= 1"),
        ("D = 3", "E = 3", r"problems\.lg\.E: unknown parameter"),
        ("x_seed = 2", "x_seed = -2", r"problems\.lg\.x_seed: must be >= 0"),
        ("K = [1, 10]", "K = [1, 0]", r"sweep\[0\]\.K\[1\]: must be >= 1, got 0"),
        ("K = [1, 10]", "K = [1, 1.5]", r"sweep\[0\]\.K\[1\]: must be an integer"),
        ("K = [1, 10]", "K = []", r"sweep\[0\]\.K: must not be empty"),
        ("R = 20", "R = 2", r"sweep\[0\]\.R: must be >= 4"),
        ('q = ["posterior", "prior"]', 'q = ["posterior", "wide"]', r"sweep\[0\]\.q\[1\]: unknown q preset 'wide'"),
        ('q = ["posterior", "prior"]', 'q = ["scale:-2"]', r"sweep\[0\]\.q\[0\]: .*scale must be > 0"),
        ('estimators = ["importance_sampling", "elbo"]', 'estimators = ["is"]',
         r"sweep\[0\]\.estimators\[0\]: unknown estimator 'is'"),
        ('methods = ["score", "reparam"]', 'methods = ["reinforce"]', r"sweep\[1\]\.methods\[0\]: unknown method"),
        ('objectives = ["elbo"]', 'objectives = ["vimco"]', r"sweep\[1\]\.objectives\[0\]: unknown objective"),
        ('estimators = ["importance_sampling", "elbo"]', 'estimators = ["elbo"]\nmethods = ["score"]',
         r"sweep\[0\]\.methods: only meaningful with the 'gradient' estimator"),
        ("R = 20", "R = 20\nrepeats = 3", r"sweep\[0\]\.repeats: unknown key"),
        ('name = "t"', 'name = "t"\nroot = 3', r"root: unknown key"),
        ("seed = 1\n", "seed = -1\n", r"seed: must be >= 0"),
        ("K = [2]", "K = [2]\nproblems = [\"gm\"]", r"sweep\[1\]\.problems\[0\]: unknown problem 'gm'"),
        ('q = ["posterior", "prior"]\n', "", r"sweep\[0\]\.q: missing"),
    ],
)
def test_bad_config_names_the_key(tmp_path, old, new, key):
    assert old in GOOD
    with pytest.raises(ValueError, match=rf"^{key}"):
        load_config(_write(tmp_path, GOOD.replace(old, new, 1)))


def test_config_file_problems(tmp_path):
    with pytest.raises(ValueError, match="^config: no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="^config: .* is not valid TOML"):
        load_config(_write(tmp_path, "name = \n"))
    with pytest.raises(ValueError, match=r"^problems: expected at least one"):
        parse_config({"sweep": [{}]})
    with pytest.raises(ValueError, match=r"^sweep: expected at least one"):
        parse_config({"problems": {"a": {"family": "LinearGaussian", "D": 2, "d": 1}}})


def test_sweep_constructor_validates_too():
    lg = {"family": "LinearGaussian", "D": 3, "d": 1}
    with pytest.raises(ValueError, match=r"^K\[0\]: must be >= 1"):
        Sweep({"lg": lg}, q=["prior"], estimators=["elbo"], K=[0], R=10)
    with pytest.raises(ValueError, match=r"^problems\.lg\.family: missing"):
        Sweep({"lg": {"D": 3}}, q=["prior"], estimators=["elbo"], K=[1], R=10)
    with pytest.raises(ValueError, match=r"^q: expected a list"):
        Sweep({"lg": lg}, q="prior", estimators=["elbo"], K=[1], R=10)
    with pytest.raises(ValueError, match=r"^K: contains duplicates"):
        Sweep({"lg": lg}, q=["prior"], estimators=["elbo"], K=[1, 1], R=10)
