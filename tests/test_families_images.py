"""MissingPixels takes images: templates (C, H, W) with an (H, W) mask give
the same model as the flat (C, P) form with the row-major (P,) mask, and
images come back H x W.  Bad shapes are a ValueError naming the argument."""

import numpy as np
import pytest
from scipy.special import logsumexp

import estimators
from problems import MissingPixels

H, W = 3, 4


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    t = rng.uniform(0.05, 0.95, size=(3, H, W))
    mask = np.zeros((H, W), dtype=bool)
    mask[0, 1:3] = mask[2, 0] = True
    w = [0.2, 0.5, 0.3]
    return MissingPixels(t, w, mask), MissingPixels(t.reshape(3, -1), w, mask.ravel()), t, mask


def test_image_form_equals_the_flat_form(pair):
    img_p, flat_p, t, mask = pair
    assert img_p.image_shape == (H, W) and flat_p.image_shape == (H * W,)
    assert img_p.latent_dim == 3 and img_p.obs_dim == H * W - 3
    np.testing.assert_array_equal(img_p.templates, flat_p.templates)
    x = flat_p.sample(1, seed=2)[0]
    z = ((np.arange(8)[:, None] >> np.arange(3)) & 1).astype(np.int8)
    # log p(x, z) by hand: the full image, row-major, against every template
    full = np.empty((8, H * W))
    full[:, ~mask.ravel()], full[:, mask.ravel()] = x, z
    flat_t = t.reshape(3, -1)
    want = logsumexp(np.log([0.2, 0.5, 0.3]) + full @ np.log(flat_t).T + (1 - full) @ np.log1p(-flat_t).T, axis=1)
    np.testing.assert_allclose(img_p.log_joint(x, z), want, rtol=1e-12)
    assert img_p.log_marginal(x) == pytest.approx(logsumexp(want), rel=1e-12)
    q = estimators.Bernoulli(np.full(3, 0.4))
    assert img_p.kl(x, q) == pytest.approx(flat_p.kl(x, q), rel=1e-12)
    lw = estimators.importance_sampling(img_p, x, q, 50, 8, seed=1)
    np.testing.assert_array_equal(lw, estimators.importance_sampling(flat_p, x, q, 50, 8, seed=1))


def test_images_come_back_in_the_image_shape(pair):
    img_p, flat_p, _, mask = pair
    imgs, c = img_p.sample_images(5, seed=4)
    assert imgs.shape == (5, H, W) and c.shape == (5,)
    flat_imgs, c2 = flat_p.sample_images(5, seed=4)
    np.testing.assert_array_equal(imgs.reshape(5, -1), flat_imgs)
    np.testing.assert_array_equal(c, c2)
    x, z = img_p.split(imgs)
    assert x.shape == (5, img_p.obs_dim) and z.shape == (5, 3)
    np.testing.assert_array_equal(z, imgs[:, mask])  # the latent pixels, in row-major order
    np.testing.assert_array_equal(img_p.image(x[0], z[0]), imgs[0])
    assert img_p.image(x[0], z).shape == (5, H, W)
    np.testing.assert_array_equal(img_p.split(imgs.reshape(5, -1))[1], z)  # flat images are accepted too
    np.testing.assert_array_equal(img_p.sample(5, seed=4), x)
    assert MissingPixels.digits(2, shaped=True).image_shape == (8, 8)
    assert MissingPixels.digits(2).image_shape == (64,)


@pytest.mark.parametrize(
    "templates, mask, match",
    [
        (np.full((2, H, W), 0.3), np.zeros(H * W, bool), r"^latent_mask: expected a boolean array of shape \(H, W\)"),
        (np.full((2, H, W), 0.3), np.zeros((W, H), bool), r"^latent_mask: .*\(3, 4\)"),
        (np.full((2, H * W), 0.3), np.zeros((H, W), bool), r"^latent_mask: expected a boolean array of shape \(12,\)"),
        (np.full((2, H, W), 0.3), np.ones((H, W), int), r"^latent_mask: .*got int"),
        (np.full((2, 2, H, W), 0.3), np.zeros((H, W), bool), r"^templates: expected shape \(C, P\) or \(C, H, W\)"),
        (np.full((2, 0, W), 0.3), np.zeros((0, W), bool), r"^templates: "),
    ],
)
def test_bad_shapes_name_the_argument(templates, mask, match):
    with pytest.raises(ValueError, match=match):
        MissingPixels(templates, [0.5, 0.5], mask)


def test_bad_images_name_the_argument(pair):
    img_p, _, _, _ = pair
    with pytest.raises(ValueError, match=r"^image: expected trailing shape \(3, 4\) or \(12,\)"):
        img_p.split(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"^z: expected trailing dimension 3"):
        img_p.image(np.zeros(img_p.obs_dim), np.zeros(4))
    with pytest.raises(ValueError, match=r"^x: expected shape \(9,\)"):
        img_p.image(np.zeros(3), np.zeros(3))
