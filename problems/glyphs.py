"""Procedurally drawn 8 x 8 digit-like glyphs (no downloads).

Each digit 0-9 is drawn as the lit segments of a seven-segment display on an
8 x 8 grid (rows 0-7 top to bottom), so that, like handwritten digits, the top
half of a 9 is a closed loop and the top half of a 7 is a bar.
"""

from __future__ import annotations

import numpy as np

SIZE = 8

#        a
#      f   b
#        g
#      e   c
#        d
_SEGMENTS = {
    "a": [(0, c) for c in range(2, 6)],
    "b": [(r, 6) for r in range(1, 4)],
    "c": [(r, 6) for r in range(4, 7)],
    "d": [(7, c) for c in range(2, 6)],
    "e": [(r, 1) for r in range(4, 7)],
    "f": [(r, 1) for r in range(1, 4)],
    "g": [(3, c) for c in range(2, 6)] + [(4, c) for c in range(2, 6)],
}
_DIGITS = {
    0: "abcdef",
    1: "bc",
    2: "abged",
    3: "abgcd",
    4: "fgbc",
    5: "afgcd",
    6: "afgedc",
    7: "abc",
    8: "abcdefg",
    9: "abcdfg",
}


def digit_bitmaps():
    """(10, 8, 8) array of 0/1 glyphs for the digits 0..9."""
    out = np.zeros((10, SIZE, SIZE), dtype=np.int8)
    for digit, segments in _DIGITS.items():
        for seg in segments:
            for r, c in _SEGMENTS[seg]:
                out[digit, r, c] = 1
    return out


def digit_templates(on=0.92, off=0.04):
    """(10, 64) Bernoulli templates: P(pixel on) = ``on`` on a stroke, ``off`` elsewhere."""
    bitmaps = digit_bitmaps().reshape(10, SIZE * SIZE).astype(np.float64)
    return off + (on - off) * bitmaps
