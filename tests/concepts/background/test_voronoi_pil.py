"""`voronoi_cells(..., edges="pil")` against PIL-filled scipy Voronoi polygons."""

import functools

import jax
import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy.spatial import Voronoi

from jaxcxai.concepts.background import paste, voronoi

SIZES = ((24, 24), (40, 32))  # (H, W); non-square catches swapped axes
N_SETS = 4  # random seed sets per size and corner mode


def _finite_polygons(points, radius):
    """Each point's Voronoi cell as a polygon, open cells closed `radius` out.

    The reference's recipe: finite vertices plus, per infinite ridge, its
    finite vertex moved `radius` along the ridge's normal away from the points'
    mean; vertices sorted by angle around their mean.
    """
    vor = Voronoi(points)
    centre = points.mean(0)
    ridges = {}
    for (p, q), (v1, v2) in zip(vor.ridge_points, vor.ridge_vertices):
        ridges.setdefault(p, []).append((q, v1, v2))
        ridges.setdefault(q, []).append((p, v1, v2))
    polys = []
    for p, region in enumerate(vor.point_region):
        verts = vor.regions[region]
        pts = [vor.vertices[v] for v in verts if v >= 0]
        for q, v1, v2 in ridges[p] if -1 in verts else ():
            if min(v1, v2) >= 0:
                continue
            t = points[q] - points[p]
            n = np.array([-t[1], t[0]]) / np.hypot(*t)
            n *= np.sign(np.dot((points[p] + points[q]) / 2 - centre, n)) or 1.0
            pts.append(vor.vertices[max(v1, v2)] + n * radius)
        pts = np.asarray(pts)
        c = pts.mean(0)
        polys.append(pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))])
    return polys


def _pil_cells(points, h, w):
    """Cell index per pixel: each polygon PIL-filled in turn (-1: none)."""
    label = Image.new("I", (w, h), -1)
    draw = ImageDraw.Draw(label)
    polys = _finite_polygons(points, voronoi.FAR * max(h, w))
    for c, poly in enumerate(polys):
        draw.polygon([tuple(v) for v in poly], fill=c)
    return np.asarray(label)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _cells(seeds, h, w, edges):
    return jax.vmap(lambda s: voronoi.voronoi_cells(s, h, w, edges=edges))(seeds)


def _seed_sets(h, w):
    """N_SETS random seed sets per corner mode, as `voronoi_plan` draws them."""
    rng = np.random.default_rng(h * w)
    sets = []
    for corners in voronoi.CORNERS:
        corner = np.asarray(voronoi.corner_points(h, w, corners=corners))
        for _ in range(N_SETS):
            points = rng.random((voronoi.N_POINTS, 2)) * (w, h)
            sets.append(np.concatenate([points, corner]).astype(np.float32))
    return np.stack(sets)


@pytest.mark.parametrize("h, w", SIZES)
def test_pil_edges_match_pil_polygons(h, w):
    seeds = _seed_sets(h, w)
    ref = np.stack([_pil_cells(s.astype(np.float64), h, w) for s in seeds])
    assert (ref >= 0).all()  # the polygons cover the image
    pil = np.mean(np.asarray(_cells(seeds, h, w, "pil")) == ref)
    exact = np.mean(np.asarray(_cells(seeds, h, w, "exact")) == ref)
    # Measured 1.0 at both sizes. Rare misses elsewhere (4e-6 of the pixels
    # in the bg_views bench) come from vertices within ~1e-5 px of an integer,
    # where float32 and qhull's float64 truncate differently.
    assert pil >= 0.999, pil
    assert pil > exact, (pil, exact)  # exact: 0.93 (24 x 24), 0.96 (40 x 32)


def test_exact_is_the_default_and_unchanged():
    seeds, _ = voronoi.voronoi_plan(jax.random.key(3), 12, 24, 24)
    default = np.asarray(voronoi.voronoi_cells(seeds, 24, 24))
    exact = np.asarray(voronoi.voronoi_cells(seeds, 24, 24, edges="exact"))
    np.testing.assert_array_equal(default, exact)
    yy, xx = np.mgrid[:24, :24] + 0.5
    s = np.asarray(seeds, np.float64)
    d2 = (xx[..., None] - s[:, 0]) ** 2 + (yy[..., None] - s[:, 1]) ** 2
    np.testing.assert_array_equal(exact, np.argmin(d2, -1))


def test_make_views_threads_pil_edges():
    """Constant-colour pool: a view's pixel value names its background."""
    h, w, p = 24, 24, 12  # _cells' size above: its compiled function is reused
    pool = np.broadcast_to(
        (np.arange(p, dtype=np.uint8) * 20)[:, None, None, None], (p, h, w, 3)
    ).copy()
    images = np.zeros((1, h, w, 3), np.uint8)
    masks = np.zeros((1, h, w), np.float32)
    key = jax.random.key(5)
    views = paste.make_views(images, masks, pool, key, "voronoi", 2, edges="pil")
    plans = [voronoi.voronoi_plan(k, p, h, w) for k in paste.view_keys(key, 1, 2)[0]]
    seeds = np.stack([np.asarray(s) for s, _ in plans])
    cells = np.asarray(_cells(seeds, h, w, "pil"))
    for j, (_, ids) in enumerate(plans):
        np.testing.assert_array_equal(
            np.asarray(views)[0, j, ..., 0] // 20, np.asarray(ids)[cells[j]]
        )


def test_bad_edges_are_named():
    seeds = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="'pillow'"):
        voronoi.voronoi_cells(seeds, 4, 4, edges="pillow")
    images = np.zeros((1, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="'PIL'"):
        paste.make_views(
            images, np.zeros((1, 4, 4)), np.zeros((12, 4, 4, 3), np.uint8),
            jax.random.key(0), "voronoi", edges="PIL",
        )  # fmt: skip
