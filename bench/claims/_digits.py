r"""Shared computations of the claims on the real digits (``problems.datasets.digits``):
the images scaled to [0, 1] (grey level / 16), the PPCA fits, and the linear-VAE
fits, each computed once per process (several claims read the same fit).

Every number drawn from here is exact for the model it describes: the PPCA
maximum likelihood is closed form (``LinearGaussian.ppca_mle``), every recorded
log-likelihood and objective of a fit is closed form (``fit_linear_vae``), the
beta-VAE optimum is closed form (``beta_vae_optimum``).
"""

from __future__ import annotations

import functools

import estimators
import numpy as np
from problems import LinearGaussian
from problems.datasets import digits

from ._common import VAE_K

__all__ = ["data", "ppca", "fit", "images_table"]


@functools.lru_cache(maxsize=1)
def data():
    """(X_train, X_test, labels_test) with pixels scaled to [0, 1] (read-only arrays)."""
    dg = digits()
    X = np.asarray(dg.images, dtype=float) / 16.0
    return X[dg.train], X[dg.test], np.asarray(dg.labels)[dg.test]


def training_images(n_train):
    """The first n_train training images (all when None)."""
    X = data()[0]
    return X if n_train is None else X[:n_train]


@functools.lru_cache(maxsize=None)
def ppca(d, n_train=None):
    """(model, average exact log p(x) per image on those training images, on the held-out images)."""
    X = training_images(n_train)
    m = LinearGaussian.ppca_mle(X, d)
    return m, float(np.mean(m.log_marginal(X))), float(np.mean(m.log_marginal(data()[1])))


@functools.lru_cache(maxsize=None)
def fit(d, gradient, encoder, steps, batch_size, learning_rate, record_every, n_train=None, inner_steps=1,
        beta=1.0, seed=0):
    """``fit_linear_vae`` on the (first n_train) training images, cached."""
    return estimators.fit_linear_vae(
        training_images(n_train), d, gradient, steps=steps, seed=seed, encoder=encoder, K=VAE_K,
        batch_size=batch_size, learning_rate=learning_rate, inner_steps=inner_steps,
        record_every=record_every, beta=beta)


def images_table(rows):
    """A DataFrame of 8 x 8 images: rows of dicts with their labels and a (64,) 'pixels'
    vector, stored as columns p00..p63."""
    import pandas as pd

    out = []
    for r in rows:
        pix = np.asarray(r.pop("pixels"), dtype=float)
        out.append({**r, **{f"p{i:02d}": float(v) for i, v in enumerate(pix)}})
    return pd.DataFrame(out)
