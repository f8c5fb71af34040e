"""Input validation shared by every public entry point.

Each helper raises ``ValueError`` whose message starts with the argument's
name, so a user always learns *which* input was wrong and *how*.  Kernels are
only ever called with arrays that went through these checks (float64,
C-contiguous, finite, right shape).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_count",
    "check_seed",
    "check_choice",
    "cholesky_or_raise",
    "check_probabilities",
    "as_category_indices",
    "plain",
]


def plain(value):
    """``repr`` of ``value`` with a NumPy scalar (or 0-d array) shown as the
    Python number it holds, for messages: ``-1.0``, not ``np.float64(-1.0)``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def as_float_array(name, value, ndim=None, shape=None, positive=False, allow_inf=False):
    """Return ``value`` as a C-contiguous float64 array, or raise ValueError.

    ``shape`` may contain ``None`` for "any length" in that position.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected real numbers, got complex dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, arr.shape)
        ):
            pretty = tuple("*" if s is None else s for s in shape)
            raise ValueError(f"{name}: expected shape {pretty}, got {arr.shape}")
    if allow_inf:
        if np.isnan(arr).any():
            raise ValueError(f"{name}: contains NaN")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    if positive and not (arr > 0).all():
        raise ValueError(f"{name}: every entry must be > 0, got min {plain(arr.min())}")
    return arr


_INT64_MAX = 2**63 - 1


def check_count(name, value, minimum=1):
    """An integer count >= ``minimum`` (K, R, n, dimensions)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            raise ValueError(f"{name}: must be an integer, got float {plain(value)}")
        raise ValueError(f"{name}: must be an integer, got {type(value).__name__} {plain(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if value > _INT64_MAX:
        raise ValueError(f"{name}: must fit in a 64-bit integer (<= {_INT64_MAX}), got {value}")
    return value


def check_seed(seed, name="seed"):
    """A non-negative integer seed (anything SeedSequence takes as entropy)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{name}: must be a non-negative integer, got {plain(seed)}")
    if seed < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {seed}")
    return int(seed)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}: unknown value {plain(value)}; expected one of {sorted(choices)}")
    return value


def cholesky_or_raise(name, matrix):
    """Lower Cholesky factor of a symmetric positive-definite matrix."""
    if not np.allclose(matrix, np.swapaxes(matrix, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name}: is not symmetric")
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name}: is not positive definite") from None


def check_probabilities(name, probs, axis=-1, sum_to_one=True):
    """Entries in [0, 1], and (optionally) summing to one along ``axis``."""
    probs = as_float_array(name, probs)
    if probs.ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension, got a scalar")
    if probs.size == 0:
        raise ValueError(f"{name}: is empty")
    if (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{name}: entries must lie in [0, 1]")
    if sum_to_one:
        total = probs.sum(axis=axis)
        if not np.allclose(total, 1.0, rtol=0, atol=1e-9):
            raise ValueError(f"{name}: must sum to one, sums to {np.ravel(total)[:3]}")
    return probs


def as_category_indices(name, z, num_categories):
    """Integer indices in [0, num_categories): integer arrays as they are,
    integral floats converted; anything else is a ValueError."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.integer):
        if np.issubdtype(z.dtype, np.floating) and np.all(np.isfinite(z)) and np.all(z == np.round(z)):
            z = z.astype(np.int64)
        else:
            raise ValueError(f"{name}: expected integer category indices, got dtype {z.dtype}")
    if (z < 0).any() or (z >= num_categories).any():
        raise ValueError(f"{name}: category indices must lie in [0, {num_categories})")
    return z
