r"""Real data, read from a local copy that ships with a dependency (never a download).

``digits()``: the UCI optical-recognition handwritten digits (Alpaydin &
Kaynak, 1998; the test part of the UCI set) as scikit-learn bundles them in
its wheel (``sklearn/datasets/data/digits.csv.gz``, read by
``sklearn.datasets.load_digits``, which reads that file and opens no
connection): 1,797 images of 8 x 8 pixels, each pixel the count of on-bits in
a 4 x 4 block of the original 32 x 32 bitmap, so an integer grey level in
0..16; labels 0..9 (174 to 183 images each).

The fixed split holds out a third of each digit class: for each label c, its
indices (in dataset order) are permuted by ``numpy.random.default_rng(SPLIT_SEED
+ c)`` and the first ``round(n_c / 3)`` go to ``test``, the rest to
``train``; both index arrays are sorted.  With ``SPLIT_SEED = 0`` that is 1,198
training and 599 held-out images.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Digits", "digits", "SPLIT_SEED", "TEST_FRACTION", "BINARY_THRESHOLD"]

SPLIT_SEED = 0
TEST_FRACTION = 1.0 / 3.0
BINARY_THRESHOLD = 8  # binary(): a pixel is on when its grey level (0..16) is above 8


def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Digits:
    """The digits and their split.

    ``images`` (1797, 64) float64 grey levels in [0, 16] (rows: 8 x 8 images in
    row-major order), ``labels`` (1797,) int64 in 0..9, ``train`` and ``test``
    sorted int64 index arrays (disjoint, together every image), ``shape`` =
    (8, 8).  All arrays are read-only (the object is cached and shared).
    """

    images: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray
    shape: tuple = (8, 8)

    def binary(self, threshold=BINARY_THRESHOLD):
        """The images binarised, ``images > threshold`` as int8 0/1 (1797, 64);
        the default threshold 8 is half of the 16 grey levels."""
        t = float(threshold)
        if not 0 <= t < 16:
            raise ValueError(f"threshold: must be in [0, 16), got {threshold!r}")
        return (self.images > t).astype(np.int8)

    def scaled(self):
        """The grey levels scaled to [0, 1]: ``images / 16`` (1797, 64)."""
        return self.images / 16.0


def _stratified_split(labels, fraction, seed):
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = np.random.default_rng(seed + int(c)).permutation(idx)
        test.append(perm[: int(round(fraction * idx.size))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(labels.size), test)
    return train.astype(np.int64), test.astype(np.int64)


@functools.lru_cache(maxsize=1)
def digits() -> Digits:
    """The UCI handwritten digits from scikit-learn's bundled copy, with the
    fixed stratified split (see the module docstring); cached."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # a declared dependency; say so rather than fall back
        raise ImportError("digits: needs scikit-learn (pip install scikit-learn), whose wheel holds the data") from e
    bunch = load_digits()
    images = np.asarray(bunch.data, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    if images.shape != (1797, 64) or labels.shape != (1797,):
        raise RuntimeError(f"digits: unexpected shapes {images.shape}, {labels.shape} from scikit-learn's copy")
    train, test = _stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return Digits(_read_only(images), _read_only(labels), _read_only(train), _read_only(test))
