"""bench.peers: the ceilings bound our kernels, the peers compute the same work.

Speed itself is never asserted (timings belong to ``python -m bench peers``);
what is asserted is a consequence of the model: a ceiling is an upper bound,
so on one run's measurements no kernel may be above 100 % of it.
"""

import math

import numpy as np
import pytest

from bench import peers


@pytest.fixture(scope="module")
def works():
    return peers.linear_gaussian_work(), peers.gaussian_mixture_work()


def test_no_kernel_is_above_its_ceiling(works):
    """One run, in rounds that each time the machine's peak rates (small sizes)
    and then our three kernels at K = 1000, R = 64 (enough samples for the
    parallel path), back to back so a busy machine loads both alike; in the
    median round every kernel's fraction of its ceiling is <= 1."""
    import pandas as pd

    lg, gm = works
    ours = peers.Ours(lg, gm)
    K, R = 1000, 64
    fractions = {w: [] for w in ("is_lg", "grad_lg", "is_gm")}
    for _ in range(3):
        limits = peers.machine_limits(scale=0.1, repeats=3)
        rows = []
        for work, w in (("is_lg", lg), ("grad_lg", lg), ("is_gm", gm)):
            fn = getattr(ours, work)
            seconds = peers.time_call(lambda: fn(w.arrays, K, R, 1), repeats=3, min_seconds=0.0)
            rows.append(dict(work=work, implementation=ours.name, K=K, R=R, samples_per_s=K * R / seconds))
        frac = peers.kernel_fraction(pd.DataFrame(rows), limits)
        for r in frac.itertuples():
            assert r.limit_samples_per_s <= r.sequential_samples_per_s * len(peers.work_model(r.work, K)) * (1 + 1e-12)
            fractions[r.work].append(r.fraction_of_limit)
    for work, values in fractions.items():
        assert 0 < np.median(values) <= 1.0, (
            f"{work}: fractions {values} of the ceiling; the model is wrong\n"
            + "\n".join(peers.format_derivation(limits))
        )


def test_ceiling_is_the_slowest_primitive():
    """ceiling = 1 / max_i(n_i / rate_i), sequential = 1 / sum_i: by hand for is_lg."""
    limits = dict(threads=2, normals_per_s=4e8, uniforms_per_s=1e9, categorical_per_s=5e8, exp_per_s=2e8,
                  fma_per_s=1e10, fma_layout_per_s=1e10, fma_blas_per_s=5e9)
    top, seq, bound = peers.ceiling("is_lg", 1000, limits)
    t_norm, t_fma, t_exp = 20 / 4e8, (400 + 40 + 60 + 2) / 1e10, 1 / 2e8
    assert bound == "fma" and math.isclose(top, 1 / t_fma) and math.isclose(seq, 1 / (t_norm + t_fma + t_exp))
    top, seq, bound = peers.ceiling("is_gm", 100, limits)
    assert bound == "categorical" and math.isclose(top, 5e8) and math.isclose(seq, 1 / (1 / 5e8 + 0.2 / 2e8))


def _limits(threads=2, **per_thread):
    rates = dict(normals_per_s=4e8, uniforms_per_s=1e9, categorical_per_s=5e8, exp_per_s=2e8,
                 fma_layout_per_s=1e10, fma_blas_per_s=5e9)
    rates.update(per_thread)
    out = {key: threads * value for key, value in rates.items()}
    return dict(threads=threads, fma_per_s=max(out["fma_layout_per_s"], out["fma_blas_per_s"]), **out)


def test_best_limits_keeps_each_rates_best_round():
    """Rounds slow in different primitives: the best of each rate, the fma peak
    recomputed from the best two, the rounds kept, bad input refused."""
    a = _limits(normals_per_s=1e8, fma_blas_per_s=2e10)
    b = _limits(categorical_per_s=1e8, fma_layout_per_s=1e9)
    best = peers.best_limits([a, b])
    assert best["normals_per_s"] == 8e8 and best["categorical_per_s"] == 1e9
    assert best["fma_layout_per_s"] == 2e10 and best["fma_blas_per_s"] == 4e10 and best["fma_per_s"] == 4e10
    assert best["threads"] == 2 and len(best["rounds"]) == 2
    text = "\n".join(peers.format_derivation(best))
    assert "best of 2 measurement rounds" in text and "normals 25%" in text and "categorical 20%" in text
    with pytest.raises(ValueError, match="^measurements:"):
        peers.best_limits([])
    with pytest.raises(ValueError, match="^measurements:"):
        peers.best_limits([a, _limits(threads=1)])


def test_a_cell_above_its_ceiling_is_flagged_not_hidden():
    """A measured rate above the ceiling prints as it is, with a line that says
    the fraction is not to be trusted."""
    import pandas as pd

    limits = _limits(categorical_per_s=1e8)  # a ceiling of 2e8/s for is_gm on 2 threads
    rows = [dict(work="is_gm", problem="P", implementation=i, K=1000, R=1, seconds=1.0, samples_per_s=s,
                 agreement_z=0.5, fastest_peer=1.0, ratio=1.0) for i, s in (("evidence-bench", 3e8), ("numpy", 1e7))]
    text = peers.format_table(pd.DataFrame(rows), [], limits)
    assert "150%" in text and "ABOVE ITS CEILING: is_gm K=1000" in text
    rows[0]["samples_per_s"] = 1e8
    assert "ABOVE ITS CEILING" not in peers.format_table(pd.DataFrame(rows), [], limits)


def test_work_model_counts_the_kernels_work():
    # d normals per sample; the D x d product dominates the multiply-adds; the gradient does it twice
    # and, an ELBO gradient, reads no weight sums (no exp)
    assert peers.work_model("is_lg", 10, D=5, d=3) == {"normals": 3, "fma": 15 + 10 + 9 + 2, "exps": 1}
    assert peers.work_model("grad_lg", 10, D=5, d=3) == {"normals": 3, "fma": 30 + 15 + 21}
    assert peers.work_model("is_gm", 40, C=20) == {"categorical": 1, "exps": 0.5}
    # the fold's C exps are computed once per call, for all R replicates
    assert peers.work_model("is_gm", 40, C=20, R=4) == {"categorical": 1, "exps": 0.125}
    with pytest.raises(ValueError, match="^work:"):
        peers.work_model("is_xyz", 10)


def test_numpy_mixture_peer_draws_choice_categories(works):
    """The strengthened NumPy peer (inverse CDF + bincount) computes, from its
    counts, the estimate of rng.choice's draws (an independent computation)."""
    _, gm = works
    K, R, seed = 500, 7, 3
    got = peers.NumpyPeer().is_gm(gm.arrays, K, R, seed)
    probs = gm.arrays["probs"]
    k = np.random.default_rng(seed).choice(probs.shape[0], size=(R, K), p=probs)
    log_w = gm.arrays["table"] - np.log(probs)
    want = np.array([np.log(np.mean(np.exp(log_w[row]))) for row in k])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["numpy", "jax", "torch"])
def test_peers_agree_with_the_exact_answer(works, name):
    if name != "numpy":
        pytest.importorskip(name, reason=f"{name} is an optional peer (pip install -e '.[peers]')")
    lg, gm = works
    impl = peers._PEER_CLASSES[name]()
    z = peers.check_agreement(impl, lg, gm, K=200, R=200)
    assert max(z.values()) < 5, z


def test_every_implementation_says_its_algorithm():
    for cls in [peers.Ours, *peers._PEER_CLASSES.values()]:
        assert set(cls.algorithms) == {"is_lg", "grad_lg", "is_gm"}, cls


def test_results_dir_feeds_the_report_figure(tmp_path):
    """--out DIR writes peers.parquet with the ceilings; the report's provider
    draws each implementation and the ceiling from it (synthetic rows)."""
    import pandas as pd

    from reports.figures_peers import peers_specs

    rows = [dict(work=w, problem="P", implementation=i, K=K, R=1, seconds=1.0, samples_per_s=s * K ** 0.1,
                 agreement_z=0.5, fastest_peer=1.0, ratio=1.0)
            for w in ("is_lg", "is_gm") for K in (100, 10000) for i, s in (("evidence-bench", 5e6), ("numpy", 1e6))]
    df = pd.DataFrame(rows)
    limits = dict(threads=2, normals_per_s=4e8, uniforms_per_s=1e9, categorical_per_s=5e8, exp_per_s=2e8,
                  fma_per_s=4e10, fma_layout_per_s=1e10, fma_blas_per_s=4e10)
    path = peers.write_results(df, limits, tmp_path / "res")
    table = pd.read_parquet(path)
    assert path.name == "peers.parquet" and len(table) == len(df)
    ours = table[(table.implementation == "evidence-bench") & (table.work == "is_lg")]
    assert np.allclose(ours.ceiling_samples_per_s, 4e8 / 20) and set(ours.bound) == {"normals"}
    (spec,) = peers_specs({"peers": table})
    fig = spec[3]()
    gids = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    assert {"peers:is_lg:evidence-bench", "peers:is_lg:numpy", "peers:is_lg:ceiling", "peers:is_gm:ceiling"} <= gids
    assert peers_specs({"peers": None}) == []
    csv = peers.write_results(df, None, tmp_path / "t.csv")
    assert pd.read_csv(csv).ceiling_samples_per_s.isna().all()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="^out:"):
        peers.write_results(df, limits, tmp_path / "file")


def test_numpy_lg_peer_log_weights_are_the_models(works):
    """The whitened NumPy peer's log-weights equal log p(x, z) - log q(z) from the
    problem and the proposal themselves."""
    lg, _ = works
    npp = peers.NumpyPeer()
    eps = np.random.default_rng(3).standard_normal((2, 5, 20))
    z, _, lw = npp._log_w(lg.arrays, eps, *npp._whitened(lg.arrays))
    zf = z.reshape(-1, 20)
    np.testing.assert_allclose(lw.ravel(), lg.problem.log_joint(lg.x, zf) - lg.q.log_prob(zf), rtol=0, atol=1e-10)


def test_time_interleaved_takes_turns_and_reports_each_medians(monkeypatch):
    """On a fake clock that fn i advances by i + 1 units a call (fn 0 by 10 on its
    timed call of the last round, an outlier): each round runs every fn in turn,
    an untimed call then timed ones, and each fn gets the median of its own."""
    clock = [0.0]
    calls = []

    def make(i):
        def fn():
            calls.append(i)
            clock[0] += 10.0 if i == 0 and len(calls) == 20 else i + 1
        return fn

    monkeypatch.setattr(peers, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(peers.time, "perf_counter", lambda: clock[0])
    medians = peers.time_interleaved([make(0), make(1), make(2)], rounds=4, min_seconds=0.0)
    assert calls == [0, 0, 1, 1, 2, 2] * 4
    assert medians == [1.0, 2.0, 3.0]
