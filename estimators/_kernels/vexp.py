r"""A vectorisable exponential for non-positive arguments, shared by the kernels
whose inner loops are dominated by ``exp`` (particle weights, sigmoid-belief-net
activations).

:math:`e^x` for :math:`x \le 0`: :math:`x = k \ln 2 + r`, :math:`|r| \le \ln(2)/2`,
with :math:`\ln 2` split in two (fdlibm's: :math:`k \cdot \mathrm{LN2\_HI}` is exact
for :math:`|k| < 2^{20}`), :math:`e^r` by its Taylor polynomial to degree 13
(truncation :math:`< r^{14}/14! < 5 \cdot 10^{-18}` relative) and :math:`2^k` from
its bit pattern.  Within about 1 ulp of libm's ``exp`` on [-708, 0]
(``tests/test_sequential_kernels.py``); below -708 the value (< 2.3e-308) is
returned as 0, as is exp(-inf).  Arithmetic and selects only, so LLVM vectorises
the loop where a libm call would not be (about 2x the scalar ``np.exp`` rate here).
"""

import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
EXP_FLOOR = -708.0
_INV_FACT = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(14))
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _INV_FACT[2:]


@njit(cache=True, fastmath={"contract", "nsz", "arcp"}, inline="always")
def exp_nonpositive(x, out, bits, n):
    """out[:n] <- exp(x[:n]) for x <= 0 (0 below ``EXP_FLOOR`` and for -inf).
    ``bits``: int64 scratch of at least n; ``out`` may be ``x``.  No reassociation:
    the reduction r = x - k ln 2 must keep its order."""
    scale = bits.view(np.float64)
    for i in range(n):
        xi = x[i]
        keep = xi >= EXP_FLOOR
        xi = xi if keep else EXP_FLOOR
        k = np.floor(xi * _LOG2E + 0.5)
        r = (xi - k * _LN2_HI) - k * _LN2_LO
        p = _C13
        p = p * r + _C12
        p = p * r + _C11
        p = p * r + _C10
        p = p * r + _C9
        p = p * r + _C8
        p = p * r + _C7
        p = p * r + _C6
        p = p * r + _C5
        p = p * r + _C4
        p = p * r + _C3
        p = p * r + _C2
        p = p * r + 1.0
        out[i] = p * r + 1.0
        bits[i] = (np.int64(k) + 1023) << 52 if keep else np.int64(0)  # the double 2^k, k in [-1022, 0]; or +0.0
    for i in range(n):
        out[i] = out[i] * scale[i]
