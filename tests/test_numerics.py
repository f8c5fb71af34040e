"""Numerics: log space end to end (log-weights of -1e6, all-zero weights), the
streaming log-sum-exp kernels against scipy.special.logsumexp, and the
counter-seeded RNG against scipy.stats (KS and chi-square tests)."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import estimators
from estimators import Categorical, Gaussian
from estimators._kernels import reduce, rng
from problems import GaussianMixture, LinearGaussian

# --------------------------------------------------------------------------- far-away data: log p(x) ~ -1e6


def far_linear_gaussian():
    """D = d = 1, W = psi = 1: x ~ N(b, 2), so x - b = 2000 gives log p(x) ~ -1e6."""
    p = LinearGaussian([[1.0]], [0.0], [1.0])
    x = np.array([2000.0])
    return p, x


def test_far_linear_gaussian_exact_values():
    p, x = far_linear_gaussian()
    lp = p.log_marginal(x)
    np.testing.assert_allclose(lp, stats.norm(0.0, np.sqrt(2.0)).logpdf(2000.0), rtol=1e-14)
    assert -1.01e6 < lp < -0.99e6
    post = p.posterior(x)  # N(1000, 1/2)
    np.testing.assert_allclose(post.loc, [1000.0], rtol=1e-14)
    np.testing.assert_allclose(post.cov, [[0.5]], rtol=1e-14)


@pytest.mark.parametrize("K, R", [(1, 200), (100, 200), (3 * 16384, 3)])
def test_log_weights_near_minus_1e6_give_finite_accurate_answers(K, R):
    p, x = far_linear_gaussian()
    lp = p.log_marginal(x)
    post = p.posterior(x)
    # the posterior: every log-weight equals log p(x) ~ -1e6, so log p_hat is exact
    est = estimators.importance_sampling(p, x, post, K, R, seed=1)
    assert np.all(np.isfinite(est))
    np.testing.assert_allclose(est, lp, rtol=1e-13)
    # a shifted, wider q: log-weights vary around -1e6; log p_hat stays within
    # an O(1) Monte Carlo error of log p, i.e. a relative error below 1e-5
    q = Gaussian(post.loc + 0.3 * np.sqrt(0.5), [0.9])
    est = estimators.importance_sampling(p, x, q, K, R, seed=2)
    assert np.all(np.isfinite(est))
    assert np.max(np.abs(est - lp)) / abs(lp) < 1e-5
    elbo = estimators.elbo(p, x, q, K, R, seed=2)
    assert np.all(np.isfinite(elbo))
    assert np.max(np.abs(elbo - p.elbo(x, q))) / abs(lp) < 1e-5
    ess = estimators.weight_stats(p, x, q, K, R, seed=2).ess
    assert np.all((ess >= 1) & (ess <= K))


def test_prior_proposal_far_from_the_data_is_finite():
    """The prior misses the posterior by ~1000 sd: log-weights ~ -2e6, an awful
    but finite estimate, below log p(x)."""
    p, x = far_linear_gaussian()
    est = estimators.importance_sampling(p, x, p.prior(), 1000, 5, seed=0)
    assert np.all(np.isfinite(est))
    assert np.all(est < p.log_marginal(x))


def test_far_mixture_gives_finite_accurate_answers():
    """x ~ 1414 from every mean: log p(x, k) ~ -1e6 for every component."""
    g = GaussianMixture([0.3, 0.7], [[0.0, 0.0], [1.0, -1.0]], [np.eye(2), 2 * np.eye(2)])
    x = np.array([1414.2, 0.0])
    lp = g.log_marginal(x)
    comp = [np.log(w) + stats.multivariate_normal(m, c).logpdf(x) for w, m, c in zip(g.weights, g.means, g.covs)]
    np.testing.assert_allclose(lp, logsumexp(comp), rtol=1e-13)
    assert lp < -4e5
    est = estimators.importance_sampling(g, x, g.posterior(x), 1000, 4, seed=0)
    np.testing.assert_allclose(est, lp, rtol=1e-13)
    est = estimators.importance_sampling(g, x, g.prior(), 1000, 4, seed=0)
    assert np.all(np.isfinite(est))
    # the prior draws the dominant component ~700 times in 1000: error ~ log(count/700)
    assert np.max(np.abs(est - lp)) < 0.5


def test_all_weights_zero_give_minus_inf_never_nan():
    """A mixture component with weight 0 has log p(x, k) = -inf; a q that only
    draws it gives log w = -inf for every sample."""
    g = GaussianMixture([0.5, 0.5, 0.0], [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], np.stack([np.eye(2)] * 3))
    x = np.array([0.3, 0.1])
    q = Categorical([0.0, 0.0, 1.0])
    for K in (1, 300, 2 * 16384 + 1):
        ws = estimators.weight_stats(g, x, q, K, 3, seed=0)
        for arr in (ws.log_sum_w, ws.log_sum_w2, ws.sum_log_w, ws.log_p_hat, ws.elbo):
            assert np.all(np.isneginf(arr)), arr
        assert np.all(np.isnan(ws.ess))  # documented: NaN where every weight is zero
        assert np.all(np.isneginf(estimators.importance_sampling(g, x, q, K, 3, seed=0)))
    # some draws in the zero component, some not: no NaN, finite mean of the others
    q = Categorical([0.5, 0.0, 0.5])
    ws = estimators.weight_stats(g, x, q, 1000, 3, seed=0)
    assert np.all(np.isfinite(ws.log_sum_w)) and np.all(np.isneginf(ws.sum_log_w))
    # uniform MC over all three components: single draws of component 2 give -inf
    est = estimators.uniform_mc(g, x, 1, 60, seed=0)
    assert not np.any(np.isnan(est))
    assert np.any(np.isneginf(est)) and np.any(np.isfinite(est))


# --------------------------------------------------------------------------- reduction kernels


def fresh_acc():
    return np.array([-np.inf, 0.0, -np.inf, 0.0, 0.0])


def reduce_blocks(blocks):
    """Fold each block into its own accumulator (a unit), then combine in order."""
    parts = np.empty((len(blocks), reduce.NSTATS))
    for i, lw in enumerate(blocks):
        acc = fresh_acc()
        lw = np.ascontiguousarray(lw, dtype=np.float64)
        reduce.fold_block(acc, lw, lw.size)
        parts[i] = acc
    out = np.empty((1, 3))
    reduce.combine(parts, 0, len(blocks), out, 0)
    return out[0]


def expected(lw):
    lw = np.asarray(lw, dtype=float)
    with np.errstate(divide="ignore"):
        return np.array([logsumexp(lw), logsumexp(2 * lw), np.sum(lw)])


def test_fold_all_minus_inf_is_minus_inf():
    out = reduce_blocks([np.full(7, -np.inf)])
    assert np.all(np.isneginf(out)) and not np.any(np.isnan(out))
    out = reduce_blocks([np.full(3, -np.inf), np.full(5, -np.inf)])
    assert np.all(np.isneginf(out))


@pytest.mark.parametrize(
    "blocks",
    [
        [[-1e6, -1e6 - 1]],
        [[-1e6], [-1e6 - 1]],
        [[-np.inf, -1e6, -np.inf], [-1e6 - 3.0]],
        [[-np.inf, -np.inf], [-2.0, 5.0, -np.inf], [-np.inf]],
        [[-1e300, 0.0]],
        [[700.0, 710.0], [-710.0]],  # e^710 overflows a double: the max must be factored out
        [[-50.0, -20.0], [3.0], [-1e6, 2.5]],  # the running maximum grows across units
    ],
)
def test_fold_and_combine_match_logsumexp(blocks):
    out = reduce_blocks(blocks)
    assert not np.any(np.isnan(out))
    ref = expected(np.concatenate([np.asarray(b, dtype=float) for b in blocks]))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], rtol=1e-13, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_several_blocks_into_one_accumulator(seed):
    """Streaming: many blocks into one accumulator (the max grows and shrinks)."""
    r = np.random.default_rng(seed)
    lw = r.normal(0, 30, size=1000) - 1e6
    lw[r.random(1000) < 0.1] = -np.inf
    acc = fresh_acc()
    for start in range(0, 1000, 64):
        block = np.ascontiguousarray(lw[start : start + 64])
        reduce.fold_block(acc, block, block.size)
    out = np.empty((1, 3))
    reduce.combine(acc[None, :], 0, 1, out, 0)
    out = out[0]
    ref = expected(lw)
    np.testing.assert_allclose(out[:2], ref[:2], rtol=1e-13)
    assert np.isneginf(out[2])  # a single zero weight makes sum log w = -inf


def test_fold_reads_only_the_first_n_entries():
    acc = fresh_acc()
    lw = np.array([-1.0, -2.0, 1e308, np.nan])
    reduce.fold_block(acc, lw, 2)
    out = np.empty((1, 3))
    reduce.combine(acc[None, :], 0, 1, out, 0)
    out = out[0]
    np.testing.assert_allclose(out, expected([-1.0, -2.0]), rtol=1e-14)



def fold_counted(counts_blocks, values, cached):
    acc = fresh_acc()
    top, e = reduce.exps_below_top(values)
    for counts in counts_blocks:
        reduce.fold_counts(acc, counts, values, top if cached else -1, e)
    return acc


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fold_counts_with_cached_exps_gives_the_same_bits_and_logsumexp(seed):
    """The counting fold's exp-free path (blocks that hold the largest value's
    category) gives the accumulator of the exp path to the bit, and both the
    log-sum-exp of the expanded blocks; blocks without that category mix in."""
    r = np.random.default_rng(seed)
    C = 12
    values = r.normal(0, 20, size=C) - 1e5
    values[r.random(C) < 0.2] = -np.inf
    top = int(np.argmax(values))
    blocks = []
    for b in range(40):
        counts = r.integers(0, 4, size=C).astype(float)
        if b % 3 == 0:
            counts[top] = 0.0  # this block's maximum is another category's value
        blocks.append(counts)
    a, b = fold_counted(blocks, values, True), fold_counted(blocks, values, False)
    assert a.tobytes() == b.tobytes()
    out = np.empty((1, 3))
    reduce.combine(a[None, :], 0, 1, out, 0)
    expanded = np.concatenate([np.repeat(values, c.astype(int)) for c in blocks])
    ref = expected(expanded)
    np.testing.assert_allclose(out[0, :2], ref[:2], rtol=1e-12)
    assert out[0, 2] == ref[2] or (np.isneginf(out[0, 2]) and np.isneginf(ref[2]))


def test_exps_below_top_of_a_table_without_a_finite_maximum():
    assert reduce.exps_below_top(np.full(3, -np.inf))[0] == -1
    assert reduce.exps_below_top(np.array([0.0, np.inf]))[0] == -1
    top, e = reduce.exps_below_top(np.array([-1.0, 2.0, 2.0, -np.inf]))
    assert top == 1
    np.testing.assert_array_equal(e, [math.exp(-3.0), 1.0, 1.0, 0.0])



def lanes_reference(row, w=None):
    """sum_j row_j^2 (w_j) in Python floats: lanes j mod 4 in order, the remainder
    into lane 0, then (s0 + s1) + (s2 + s3) -- sum_squares's order, written out."""
    m = len(row)
    s = [0.0, 0.0, 0.0, 0.0]
    full = m - m % 4
    for j in range(m):
        t = float(row[j]) * float(row[j])
        if w is not None:
            t = t * float(w[j])
        s[j % 4 if j < full else 0] += t
    return (s[0] + s[1]) + (s[2] + s[3])


@pytest.mark.parametrize("m", [1, 3, 4, 8, 20, 23, 37])
def test_sum_squares_vector_lanes_are_the_scalar_lanes_to_the_bit(m):
    """The linear-Gaussian kernels' quadratic forms (one 4-wide vector for the
    lanes) give exactly the scalar lane sums, weighted and not, over magnitudes
    from 1e-3 to 1e3 (where a reassociated or fused sum would differ)."""
    from estimators._kernels.linear_gaussian import sum_squares

    r = np.random.default_rng(m)
    a = r.standard_normal((6, m)) * 10.0 ** r.uniform(-3, 3, (6, m))
    w = r.random(m)
    for k in range(6):
        assert sum_squares(a, k, None) == lanes_reference(a[k])
        assert sum_squares(a, k, w) == lanes_reference(a[k], w)


# --------------------------------------------------------------------------- RNG


def stream(key, replicate, chunk):
    state = np.empty(4, dtype=np.uint64)
    rng.seed_state(state, np.uint64(key), replicate, chunk)
    return state


def uniforms(n, key=12345, replicate=0, chunk=0):
    out = np.empty(n)
    rng.fill_uniform(stream(key, replicate, chunk), out, n)
    return out


def normals(n, key=12345, replicate=0, chunk=0):
    out = np.empty(n)
    rng.fill_normal(stream(key, replicate, chunk), out, n)
    return out


def test_fill_uniform_in_unit_interval_and_ks():
    u = uniforms(200_000)
    assert np.all((u >= 0.0) & (u < 1.0))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # pairs are independent: 20 x 20 grid chi-square on (u_2i, u_2i+1)
    counts = np.histogram2d(u[0::2], u[1::2], bins=20, range=[[0, 1], [0, 1]])[0].ravel()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_fill_normal_ks_and_chi_square():
    z = normals(1_000_000)
    assert np.all(np.isfinite(z))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # 200 equiprobable bins under N(0, 1): sensitive to a wrong ziggurat layer or wedge
    edges = stats.norm.ppf(np.linspace(0, 1, 201))
    counts = np.histogram(z, bins=edges)[0]
    assert stats.chisquare(counts).pvalue > 1e-3
    # the tail beyond the ziggurat's base strip, |z| > R = 3.6542, has its own code path
    tail = np.abs(z) > 3.6541528853610088
    p_tail = 2 * stats.norm.sf(3.6541528853610088)
    se = np.sqrt(p_tail * (1 - p_tail) / z.size)
    assert abs(tail.mean() - p_tail) < 5 * se
    assert stats.kstest(np.abs(z[tail]), stats.truncnorm(3.6541528853610088, np.inf).cdf).pvalue > 1e-3


def _xoshiro_outputs(state):
    """xoshiro256** in Python integers (Blackman & Vigna's reference code), from a copy of ``state``."""
    s = [int(v) for v in state]
    mask = (1 << 64) - 1

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & mask

    while True:
        result = (rotl((s[1] * 5) & mask, 7) * 9) & mask
        t = (s[1] << 17) & mask
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield result


def _ziggurat_reference(state, n):
    """The 256-layer ziggurat written plainly (NumPy's random_standard_normal
    logic, one draw at a time) on the Python xoshiro stream."""
    draws = _xoshiro_outputs(state)
    k, w, f, r = rng._ZIG_K, rng._ZIG_W, rng._ZIG_F, rng._ZIG_R
    unit = 1.0 / 2.0**53
    out = []
    while len(out) < n:
        bits = next(draws)
        idx = bits & 0xFF
        bits >>= 8
        sign = bits & 1
        rabs = (bits >> 1) & 0x000FFFFFFFFFFFFF
        x = rabs * float(w[idx])
        if sign:
            x = -x
        if rabs < int(k[idx]):
            out.append(x)
            continue
        if idx == 0:
            while True:
                xx = -math.log1p(-(next(draws) >> 11) * unit) / r
                yy = -math.log1p(-(next(draws) >> 11) * unit)
                if yy + yy > xx * xx:
                    break
            out.append(-(r + xx) if (rabs >> 8) & 1 else r + xx)
            continue
        if (float(f[idx - 1]) - float(f[idx])) * ((next(draws) >> 11) * unit) + float(f[idx]) < math.exp(-0.5 * x * x):
            out.append(x)
    return np.array(out)


def test_fill_normal_equals_a_plain_ziggurat():
    """The compiled ziggurat (its fast path in an inner loop, the wedge and
    tail out of line) gives the numbers of the plain one-draw-at-a-time form,
    wedge and tail draws included (30000 normals: ~300 misses, ~8 tail draws)."""
    for key, n in ((12345, 30_000), (7, 1), (8, 257)):
        z = normals(n, key)
        ref = _ziggurat_reference(stream(key, 0, 0), n)
        np.testing.assert_array_equal(z, ref)
    assert np.sum(np.abs(normals(30_000, 12345)) > rng._ZIG_R) > 0  # the tail path ran


def test_fill_continues_the_stream():
    """Two fills from one state equal one fill of the combined length."""
    state = stream(7, 1, 2)
    a, b = np.empty(100), np.empty(37)
    rng.fill_uniform(state, a, 100)
    rng.fill_uniform(state, b, 37)
    np.testing.assert_array_equal(np.concatenate([a, b]), uniforms(137, 7, 1, 2))
    state = stream(7, 1, 2)
    a, b = np.empty(101), np.empty(36)
    rng.fill_normal(state, a, 101)
    rng.fill_normal(state, b, 36)
    np.testing.assert_array_equal(np.concatenate([a, b]), normals(137, 7, 1, 2))


def test_seed_state_gives_distinct_streams():
    keys = [(k, r, c) for k in (0, 1, 2**63) for r in range(4) for c in range(4)]
    states = {tuple(int(s) for s in stream(*kc)) for kc in keys}
    assert len(states) == len(keys)
    draws = {kc: uniforms(1000, *kc) for kc in keys}
    ref = draws[(0, 0, 0)]
    for kc, d in draws.items():
        if kc != (0, 0, 0):
            assert not np.array_equal(d, ref)
    # (replicate, chunk) = (1, 0) and (0, 1) are different streams, and uncorrelated
    a, b = uniforms(100_000, 5, 1, 0), uniforms(100_000, 5, 0, 1)
    assert abs(stats.pearsonr(a, b)[0]) < 5 / np.sqrt(a.size)
    # the same (key, replicate, chunk) is the same stream
    np.testing.assert_array_equal(uniforms(1000, 5, 3, 9), uniforms(1000, 5, 3, 9))
