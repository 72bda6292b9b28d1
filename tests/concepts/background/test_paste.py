"""Foreground pasting and views against NumPy / PIL references."""

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcxai import parallel
from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.background import paste, voronoi

H, W, P = 24, 20, 14


def _inputs(seed=0, n=8, pool_hw=(H, W)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    # Soft masks: 0 background, values in (0, 1] foreground (0.05 included).
    masks = np.where(rng.random((n, H, W)) < 0.4, rng.uniform(0.05, 1, (n, H, W)), 0)
    pool = rng.integers(0, 256, (P,) + pool_hw + (3,), dtype=np.uint8)
    return images, masks.astype(np.float32), pool


def _fitted(pool, size=(H, W), resize="cover"):
    bgs = np.asarray(paste.fit_background(pool, size, resize=resize))
    return np.clip(np.round(bgs), 0, 255).astype(np.uint8)


def test_full_keeps_foreground_exactly_and_fills_the_rest_from_one_background():
    images, masks, pool = _inputs()
    views = np.asarray(
        paste.make_views(images, masks, pool, jax.random.key(0), "full", 3)
    )
    assert views.shape == (8, 3, H, W, 3) and views.dtype == np.uint8
    for i in range(8):
        fg = masks[i] > 0
        for j in range(3):
            v = views[i, j]
            np.testing.assert_array_equal(v[fg], images[i][fg])
            # Every other pixel comes from one and the same pool background.
            match = [k for k in range(P) if np.array_equal(v[~fg], pool[k][~fg])]
            assert len(match) == 1


def test_soft_mask_values_just_above_zero_are_foreground():
    images, _, pool = _inputs(1, n=1)
    masks = np.zeros((1, H, W), np.float32)
    masks[0, :5] = 1e-6  # tiny soft values: foreground
    masks[0, 5:8] = 1.0
    v = np.asarray(paste.make_views(images, masks, pool, jax.random.key(3), "full"))
    np.testing.assert_array_equal(v[0, 0, :8], images[0, :8])
    assert not np.array_equal(v[0, 0, 8:], images[0, 8:])  # zero = background


def _pil_cover(bg, h, w):
    """Independent reference: PIL float resize + torchvision's crop offsets."""
    hb, wb = bg.shape[:2]
    if h / hb >= w / wb:
        rh, rw = h, max(w, int(wb * h / hb))
    else:
        rh, rw = max(h, int(hb * w / wb)), w
    chans = [
        np.asarray(
            Image.fromarray(bg[..., c].astype(np.float32), mode="F").resize(
                (rw, rh), Image.BILINEAR
            )
        )
        for c in range(bg.shape[-1])
    ]
    out = np.stack(chans, -1)
    top, left = int(round((rh - h) / 2.0)), int(round((rw - w) / 2.0))
    return out[top : top + h, left : left + w]


@pytest.mark.parametrize(
    "bg_hw,out_hw",
    [((24, 47), (24, 32)), ((47, 24), (32, 24)), ((40, 61), (32, 32)),
     ((20, 20), (48, 30)), ((64, 50), (24, 20))],
)  # fmt: skip
def test_cover_resize_and_centre_crop_match_pil_and_torchvision_offsets(bg_hw, out_hw):
    rng = np.random.default_rng(2)
    bg = rng.integers(0, 256, bg_hw + (3,)).astype(np.float32)
    ours = np.asarray(paste.fit_background(bg, out_hw))
    np.testing.assert_allclose(ours, _pil_cover(bg, *out_hw), atol=2e-3)


def test_pure_crop_uses_round_half_even_offset():
    # 47 -> 32 columns, no resize: offset int(round(7.5)) = 8 (torchvision).
    bg = np.arange(24 * 47, dtype=np.float32).reshape(24, 47, 1)
    np.testing.assert_array_equal(paste.fit_background(bg, (24, 32)), bg[:, 8:40])


def test_squash_resizes_straight_to_the_image_size():
    rng = np.random.default_rng(4)
    bg = rng.random((40, 61, 3)).astype(np.float32)
    ours = np.asarray(paste.fit_background(bg, (32, 32), resize="squash"))
    ref = jax.image.resize(bg, (32, 32, 3), "linear", antialias=True)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


_full_plan = jax.jit(paste.full_plan, static_argnums=1)
_voronoi_plan = jax.jit(voronoi.voronoi_plan, static_argnums=(1, 2, 3))


def _loop_views(images, masks, pool, key, kind, n_views):
    """Per-view loop over the public plans, with NumPy brute-force cells."""
    bgs = _fitted(pool)
    keys = paste.view_keys(key, len(images), n_views)
    rows, cols = np.mgrid[:H, :W]
    out = np.zeros((len(images), n_views, H, W, 3), np.uint8)
    for i in range(len(images)):
        for j in range(n_views):
            if kind == "full":
                bg = bgs[int(_full_plan(keys[i, j], P))]
            else:
                seeds, ids = map(np.asarray, _voronoi_plan(keys[i, j], P, H, W))
                d2 = (cols[..., None] + 0.5 - seeds[:, 0]) ** 2 + (
                    rows[..., None] + 0.5 - seeds[:, 1]
                ) ** 2
                bg = bgs[ids[np.argmin(d2, -1)], rows, cols]
            out[i, j] = np.where(masks[i][..., None] > 0, images[i], bg)
    return out


@pytest.mark.parametrize("kind", ["full", "voronoi"])
def test_vmapped_equals_looped(kind):
    images, masks, pool = _inputs(5, n=3, pool_hw=(30, 26))
    key = jax.random.key(11)
    views = paste.make_views(images, masks, pool, key, kind, 4)
    np.testing.assert_array_equal(views, _loop_views(images, masks, pool, key, kind, 4))


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    images, masks, pool = _inputs(6, n=8)
    key = jax.random.key(2)
    mesh = parallel.make_mesh()
    assert mesh.shape[parallel.DATA_AXIS] == 8
    s_images, s_masks = parallel.shard_batch((images, masks), mesh)
    s_pool = parallel.replicate(pool, mesh)
    ref = paste.make_views(images, masks, pool, key, "voronoi", 2)
    out = paste.make_views(s_images, s_masks, s_pool, key, "voronoi", 2)
    assert len(out.sharding.device_set) == 8
    np.testing.assert_array_equal(out, ref)


def test_views_are_reproducible_from_the_key_and_differ_across_views():
    images, masks, pool = _inputs(7, n=3, pool_hw=(30, 26))  # shapes as above
    a = np.asarray(
        paste.make_views(images, masks, pool, jax.random.key(1), "voronoi", 4)
    )
    b = np.asarray(
        paste.make_views(images, masks, pool, jax.random.key(1), "voronoi", 4)
    )
    c = np.asarray(
        paste.make_views(images, masks, pool, jax.random.key(2), "voronoi", 4)
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a[:, 0], a[:, 1])


def test_vanilla_is_the_image_and_float_images_keep_their_dtype():
    images, masks, pool = _inputs(8, n=2)
    v = paste.make_views(images, masks, None, jax.random.key(0), "vanilla", 2)
    np.testing.assert_array_equal(v, np.repeat(images[:, None], 2, 1))
    fimg, fpool = images / 255.0, pool / 255.0
    f = paste.make_views(fimg.astype(np.float32), masks, fpool.astype(np.float32),
                         jax.random.key(0), "full", 1)  # fmt: skip
    u = paste.make_views(images, masks, pool, jax.random.key(0), "full", 1)
    assert f.dtype == np.float32
    np.testing.assert_allclose(np.asarray(f) * 255, u, atol=1e-3)


def test_non_finite_inputs_raise_naming_the_argument():
    images, masks, pool = _inputs(10, n=2)
    masks[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="masks"):
        paste.make_views(images, masks, pool, jax.random.key(0))


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(images=np.zeros((2, H, W))), "images"),
        (dict(masks=np.zeros((2, H, W + 1))), "masks"),
        (dict(pool=np.zeros((P, H, W, 3), np.float32)), "pool dtype"),
        (dict(pool=np.zeros((P, H, W), np.uint8)), "pool"),
        (dict(pool=np.zeros((11, H, W, 3), np.uint8), kind="voronoi"), "pool holds 11"),
        (dict(kind="mosaic"), "kind"),
        (dict(n_views=0), "n_views"),
        (dict(resize="stretch"), "resize"),
        (dict(kind="voronoi", corners="near"), "corners"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(change, match):
    images, masks, pool = _inputs(9, n=2)
    args = dict(images=images, masks=masks, pool=pool, kind="full", n_views=1)
    args.update(change)
    opts = {k: args.pop(k) for k in ("resize", "corners") if k in args}
    with pytest.raises(ValueError, match=match):
        paste.make_views(key=jax.random.key(0), **args, **opts)
