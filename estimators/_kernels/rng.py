r"""A counter-seeded random number generator for numba kernels.

Every unit of work (replicate r, chunk c) gets its own xoshiro256** stream,
seeded from a 64-bit key by SplitMix64 hashing of (key, r, c).  Which thread
runs a unit therefore never changes its numbers: results are bit-identical
for any NUMBA_NUM_THREADS.  (numba's built-in ``np.random.seed`` takes only
a 32-bit seed, so thousands of chunk seeds would collide; this does not.)

xoshiro256** (Blackman & Vigna 2018) passes BigCrush; doubles take the top 53
bits.  Normals come from the Box-Muller transform in pairs.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11, _S17, _S45, _S7 = np.uint64(11), np.uint64(17), np.uint64(45), np.uint64(7)
_TWO_POW_M53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * np.pi


@njit(cache=True, inline="always")
def splitmix64(x):
    """One SplitMix64 output for the state ``x`` (a pure hash of a uint64)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << k) | (x >> (np.uint64(64) - k))


@njit(cache=True)
def seed_state(state, key, replicate, chunk):
    """Fill ``state`` (uint64[4]) for the stream of (key, replicate, chunk)."""
    h = splitmix64(np.uint64(key) ^ splitmix64(np.uint64(replicate)))
    h = splitmix64(h ^ splitmix64(np.uint64(chunk) + _GOLDEN))
    for i in range(4):
        h = h + _GOLDEN
        state[i] = splitmix64(h)
    if state[0] == 0 and state[1] == 0 and state[2] == 0 and state[3] == 0:
        state[0] = _GOLDEN  # the all-zero state is the one xoshiro forbids


@njit(cache=True)
def fill_uniform(state, out, n):
    """out[:n] <- U[0, 1) doubles; advances ``state``."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(n):
        result = _rotl(s1 * np.uint64(5), _S7) * np.uint64(9)
        t = s1 << _S17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, _S45)
        out[i] = np.float64(result >> _S11) * _TWO_POW_M53
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@njit(cache=True)
def fill_normal(state, out, n):
    """out[:n] <- N(0, 1) by Box-Muller on pairs of uniforms; advances ``state``."""
    m = (n + 1) // 2
    u = np.empty(2 * m)
    fill_uniform(state, u, 2 * m)
    for j in range(m):
        radius = np.sqrt(-2.0 * np.log(1.0 - u[2 * j]))  # 1 - u in (0, 1]
        angle = _TWO_PI * u[2 * j + 1]
        out[2 * j] = radius * np.cos(angle)
        if 2 * j + 1 < n:
            out[2 * j + 1] = radius * np.sin(angle)
