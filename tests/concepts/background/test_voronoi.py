"""Voronoi cells and plans against brute-force NumPy."""

import jax
import numpy as np
import pytest

from jaxcxai.concepts.background import paste, voronoi

H, W = 30, 26


def _brute_cells(seeds, h, w):
    """Nearest seed of each pixel centre (column + 0.5, row + 0.5), looped."""
    out = np.zeros((h, w), np.int64)
    for i in range(h):
        for j in range(w):
            x, y = j + 0.5, i + 0.5
            d = [(x - sx) ** 2 + (y - sy) ** 2 for sx, sy in seeds.tolist()]
            out[i, j] = int(np.argmin(d))
    return out


_plan = jax.jit(voronoi.voronoi_plan, static_argnums=(1, 2, 3),
                static_argnames=("corners",))  # fmt: skip


@pytest.mark.parametrize("corners", voronoi.CORNERS)
def test_cells_equal_brute_force_nearest_seed(corners):
    for s in range(3):
        seeds, _ = _plan(jax.random.key(s), 20, H, W, corners=corners)
        seeds = np.asarray(seeds, np.float64)
        cells = np.asarray(voronoi.voronoi_cells(seeds.astype(np.float32), H, W))
        np.testing.assert_array_equal(cells, _brute_cells(seeds, H, W))


def test_ties_go_to_the_lower_index():
    seeds = np.array([[0.5, 0.5], [4.5, 0.5]], np.float32)
    cells = np.asarray(voronoi.voronoi_cells(seeds, 1, 5))
    np.testing.assert_array_equal(cells, [[0, 0, 0, 1, 1]])  # column 2: tie -> 0


def test_seeds_lie_in_the_image_and_corners_follow_the_mode():
    seeds, _ = _plan(jax.random.key(4), 12, H, W)
    pts = np.asarray(seeds)
    assert pts.shape == (12, 2)
    assert (pts[:8, 0] >= 0).all() and (pts[:8, 0] < W).all()
    assert (pts[:8, 1] >= 0).all() and (pts[:8, 1] < H).all()
    far = [[-100, -100], [W + 100, -100], [-100, H + 100], [W + 100, H + 100]]
    np.testing.assert_array_equal(pts[8:], far)
    ref, _ = _plan(jax.random.key(4), 12, H, W, corners="reference")
    # Spec §11.4: the reference's last point sits on the image corner.
    np.testing.assert_array_equal(
        np.asarray(ref)[8:], [[W + 100, H + 100], [0, H + 100], [W + 100, 0], [0, 0]]
    )


def test_cells_partition_the_image_and_each_takes_one_distinct_background():
    """Constant-colour pool: a view's pixel value names its background."""
    p = 12  # as many backgrounds as cells: any repeat would show
    pool = np.broadcast_to(
        (np.arange(p, dtype=np.uint8) * 20)[:, None, None, None], (p, H, W, 3)
    ).copy()
    images = np.zeros((2, H, W, 3), np.uint8)
    masks = np.zeros((2, H, W), np.float32)
    key = jax.random.key(9)
    views = np.asarray(paste.make_views(images, masks, pool, key, "voronoi", 3))
    keys = paste.view_keys(key, 2, 3)
    for i in range(2):
        for j in range(3):
            seeds, ids = map(np.asarray, _plan(keys[i, j], p, H, W))
            cells = _brute_cells(seeds.astype(np.float64), H, W)
            onehot = cells[..., None] == np.arange(12)
            np.testing.assert_array_equal(onehot.sum(-1), 1)  # exactly one cell
            assert len(set(ids.tolist())) == 12  # all different backgrounds
            value = views[i, j, ..., 0] // 20
            for c in np.unique(cells):
                assert set(value[cells == c].tolist()) == {int(ids[c])}


def test_plan_rejects_too_small_pools_and_unknown_corners():
    with pytest.raises(ValueError, match="n_backgrounds=11"):
        voronoi.voronoi_plan(jax.random.key(0), 11, H, W)
    with pytest.raises(ValueError, match="corners"):
        voronoi.corner_points(H, W, corners="inside")
