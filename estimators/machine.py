r"""The machine's peak rates of the kernels' primitives, for ``python -m bench
peers``: the part of the throughput comparison that must run the kernels'
own random-number generator and loops, so it lives beside the kernels
(nothing outside ``estimators`` imports ``estimators._kernels``).

Each limit kernel (``estimators._kernels.limits.rates``) runs ONE primitive of
the compiled kernels, alone, on one thread, in the kernels' own layout -- a
stream seeded as the driver seeds a unit (``seed_state``), the work in
``driver.BLOCK``-sized buffers -- and returns a checksum:

``normals(n, width)``
    ziggurat normals (``rng.fill_normal``) into a buffer of ``width`` doubles:
    the linear-Gaussian kernels draw BLOCK * d normals per block this way.
``uniforms(n)``
    xoshiro256** doubles (``rng.fill_uniform``) in BLOCK-sized buffers.
``categorical_counts(n, keep, alias)``
    the mixture kernel's per-sample work and nothing else: a BLOCK of uniforms,
    then per uniform one alias draw (``categorical.draw_pair``) and one count; the
    counts are folded once, not per block.  The categorical-draw ceiling.
``log_joint_block(passes, z, xb, W, inv_psi)``
    the linear-Gaussian kernel's own arithmetic (``linear_gaussian.log_joint_block``:
    one dgemm and the quadratic forms) on a fixed BLOCK of z rows: D d + 2 D + d
    multiply-adds per row.
``exps(passes, lw)``
    the log-sum-exp fold's exps (``reduce.fold_block``'s loop: e = exp(l - m),
    s += e, s2 += e e) over a BLOCK of log-weights.

``bench.peers.machine_limits`` times each on one thread and multiplies by the
number of threads: a core runs a primitive at least as fast alone as when it
shares the machine, so the product bounds what all threads reach (it is
exact on idle independent cores, and a one-thread timing is not held up by a
second thread that a busy machine has descheduled).  The multiply-add peak
is the larger of ``log_joint_block``' rate and one thread of BLAS dgemm, the
best any code reaches, so a model that divides by it bounds any arrangement
of the arithmetic.  The kernels are cached in their own subpackage, whose
cache is cleared whenever a kernel source changes.
"""

from __future__ import annotations

from ._kernels.categorical import alias_table
from ._kernels.driver import BLOCK
from ._kernels.limits import rates as _rates
from ._kernels.linear_gaussian import SAFE_FASTMATH

__all__ = ["limit_kernels", "alias_table", "BLOCK", "SAFE_FASTMATH", "NAMES"]

#: the limit kernels, in ``estimators._kernels.limits.rates``
NAMES = ("normals", "uniforms", "categorical_counts", "log_joint_block", "exps")


def limit_kernels():
    """{name: numba function} of the limit kernels in this module's docstring."""
    return {name: getattr(_rates, name) for name in NAMES}
