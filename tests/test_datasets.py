"""problems.datasets.digits: scikit-learn's bundled UCI digits, the documented
shapes and the fixed split, read without a network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from problems import datasets


def test_digits_shapes_values_and_split():
    d = datasets.digits()
    assert d.images.shape == (1797, 64) and d.images.dtype == np.float64
    assert d.images.min() == 0 and d.images.max() == 16
    assert np.array_equal(d.images, np.round(d.images))  # 17 grey levels
    assert d.labels.shape == (1797,) and set(np.unique(d.labels)) == set(range(10))
    assert d.shape == (8, 8)
    # the split: disjoint, covering, sorted, a third of each class held out
    assert np.intersect1d(d.train, d.test).size == 0
    assert np.array_equal(np.sort(np.concatenate([d.train, d.test])), np.arange(1797))
    assert np.all(np.diff(d.train) > 0) and np.all(np.diff(d.test) > 0)
    assert (d.train.size, d.test.size) == (1198, 599)
    for c in range(10):
        n_c = int(np.sum(d.labels == c))
        assert int(np.sum(d.labels[d.test] == c)) == round(n_c / 3)


def test_digits_is_cached_read_only_and_matches_sklearn():
    from sklearn.datasets import load_digits

    d = datasets.digits()
    assert datasets.digits() is d
    for a in (d.images, d.labels, d.train, d.test):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 0
    ref = load_digits()
    assert np.array_equal(d.images, ref.data) and np.array_equal(d.labels, ref.target)
    # image 0 is a 0; its 8 x 8 picture is sklearn's images[0]
    assert d.labels[0] == 0 and np.array_equal(d.images[0].reshape(8, 8), ref.images[0])


def test_binary_and_scaled():
    d = datasets.digits()
    b = d.binary()
    assert b.dtype == np.int8 and set(np.unique(b)) == {0, 1}
    assert np.array_equal(b, (d.images >= 9).astype(np.int8))  # grey level above 8 of 16
    assert np.array_equal(d.binary(0), (d.images > 0).astype(np.int8))
    assert np.allclose(d.scaled() * 16, d.images) and d.scaled().max() == 1.0
    with pytest.raises(ValueError, match="^threshold"):
        d.binary(16)


def test_digits_reads_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("digits() opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    d = datasets.digits.__wrapped__()  # uncached: really reads scikit-learn's bundled file
    assert d.images.shape == (1797, 64)
    assert np.array_equal(d.test, datasets.digits().test)
