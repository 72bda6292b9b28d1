"""Voronoi background mosaics: random seed points, cells, one background per cell.

The `voronoi` background randomisation of Schwalbe et al. (arXiv 2504.08602;
reference code `background_pasting.py`): ``n_points`` = 8 seed points uniform in
the image, ``rng.random((n, 2)) * (W, H)`` as (x, y), plus 4 dummy corner points
that bound the diagram; every one of the 12 cells is filled from a different
random background (spec §7.2, §11.4).

Corner points (`corners`):
  * "far" (default, the paper's intent): all four 100 px outside the image,
    (-o, -o), (W + o, -o), (-o, H + o), (W + o, H + o);
  * "reference": the reference code's points (W + o, H + o), (0, H + o),
    (W + o, 0) and (0, 0); the last sits on the image corner (spec §11.4).

Cell edges (`edges`, `voronoi_cells`):
  * "exact" (default, the paper's intent): each pixel takes the cell of its
    nearest point (the exact partition), with pixel (row i, column j) at its
    centre (x = j + 0.5, y = i + 0.5) in PIL's coordinate system (points at
    pixel corners), ties going to the lower cell index;
  * "pil": the reference's rasterisation. It fills each cell's finite Voronoi
    polygon (open cells closed `FAR` image sides out along their infinite
    ridges) with PIL's ``ImageDraw.polygon(..., fill=c)``, cell after cell, so
    a pixel goes to the highest cell whose filled polygon covers it. Pillow's
    fill, read from its source (libImaging/Draw.c) and checked pixel by pixel:
    vertices are truncated to integers (towards zero); pixel (i, j) is the
    integer point (x = j, y = i); on row y each edge crosses at float32
    x = (y - y0) * dx + x0, and the pixels from ROUND_UP(left crossing) to
    ROUND_DOWN(right crossing) are painted (halves away from / towards zero),
    i.e. every integer x less than half a pixel left or right of the span,
    so edge pixels go to both cells; horizontal edges are painted whole; and
    a polygon's single-vertex top (bottom) row is stretched to one pixel short
    of the next row's span when that lies more than a pixel to one side. Here
    the Voronoi vertices are the circumcentres of the Delaunay triangles
    (brute force over the K^3 seed triples, cheap for 12 points).

The two differ on about 1% of the pixels of a 128 x 128 image, all within
2 px of a cell boundary. "pil" agrees with the reference procedure (scipy's
Voronoi polygons filled by PIL) on all but 4e-6 of the pixels of 256 views of
128 x 128 with the far corners (eval/benches/bg_views.py measures it), and on
all but about 3e-5 with the reference corners (100 views of 128 x 128). The
misses are vertices within ~1e-5 px of an integer, which float32 here and
qhull's float64 truncate differently; with the reference corners some
vertices are exact integers (on the bisector of two dummy corners, e.g.
y = (H + 100) / 2) that qhull's rounding puts just below.

Unlike the reference with a fixed seed (spec §11.5), every view has its own
key and so its own geometry.
"""

import jax
import jax.numpy as jnp

from jaxcxai.concepts.background.polygon_fill import FAR, pil_cover

__all__ = [
    "CORNERS",
    "EDGES",
    "FAR",
    "N_POINTS",
    "OFFSET",
    "check_corners",
    "check_edges",
    "corner_points",
    "voronoi_cells",
    "voronoi_plan",
]

N_POINTS = 8
OFFSET = 100.0
CORNERS = ("far", "reference")
EDGES = ("exact", "pil")


def check_corners(corners: str) -> None:
    """Raises ValueError naming `corners` unless it is one of `CORNERS`."""
    if corners not in CORNERS:
        raise ValueError(f"corners must be one of {CORNERS}, got {corners!r}")


def check_edges(edges: str) -> None:
    """Raises ValueError naming `edges` unless it is one of `EDGES`."""
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {EDGES}, got {edges!r}")


def corner_points(height: int, width: int, *, offset=OFFSET, corners="far"):
    """The 4 dummy points (4, 2) float32 as (x, y); see the module docstring."""
    check_corners(corners)
    h, w, o = float(height), float(width), float(offset)
    if corners == "far":
        pts = [[-o, -o], [w + o, -o], [-o, h + o], [w + o, h + o]]
    else:
        pts = [[w + o, h + o], [0.0, h + o], [w + o, 0.0], [0.0, 0.0]]
    return jnp.asarray(pts, jnp.float32)


def voronoi_plan(
    key,
    n_backgrounds: int,
    height: int,
    width: int,
    *,
    n_points: int = N_POINTS,
    offset: float = OFFSET,
    corners: str = "far",
) -> tuple[jax.Array, jax.Array]:
    """The random choices of one Voronoi view (jittable; sizes are static).

    Args:
      key: the view's PRNG key.
      n_backgrounds: pool size P (must be >= n_points + 4).
      height, width: image size.
      n_points: random seed points (8 in the paper).
      offset, corners: dummy corner points (see the module docstring).

    Returns:
      seeds: (n_points + 4, 2) float32 (x, y), the random points first.
      backgrounds: (n_points + 4,) int32 pool indices, all different, one per
        cell.
    """
    n_cells = int(n_points) + 4
    if int(n_backgrounds) < n_cells:
        raise ValueError(
            f"n_backgrounds={n_backgrounds} < {n_cells} cells: each Voronoi cell "
            "needs a different background"
        )
    k_points, k_backgrounds = jax.random.split(key)
    scale = jnp.asarray([[width, height]], jnp.float32)
    points = jax.random.uniform(k_points, (int(n_points), 2), jnp.float32) * scale
    corner = corner_points(height, width, offset=offset, corners=corners)
    seeds = jnp.concatenate([points, corner], axis=0)
    # The n_cells largest of P iid uniforms: a uniform random subset of
    # distinct indices in random order (cheaper than a full permutation).
    scores = jax.random.uniform(k_backgrounds, (int(n_backgrounds),))
    _, ids = jax.lax.top_k(scores, n_cells)
    return seeds, ids.astype(jnp.int32)


def voronoi_cells(seeds, height: int, width: int, *, edges: str = "exact") -> jax.Array:
    """The cell of every pixel, (H, W) int32.

    Args:
      seeds: (K, 2) points as (x, y).
      height, width: static image size.
      edges: "exact" (default): the nearest seed of the pixel's centre
        (x = j + 0.5, y = i + 0.5), ties to the lower index. "pil": the
        reference's rasterisation, the highest cell whose PIL-filled polygon
        covers the pixel (see the module docstring); pixels no polygon
        covers (e.g. with fewer than 3 seeds) keep their nearest seed.

    Returns:
      (H, W) int32 indices into `seeds`.

    Raises:
      ValueError: naming `edges` unless it is one of `EDGES`.
    """
    check_edges(edges)
    seeds = jnp.asarray(seeds, jnp.float32)
    ys = jnp.arange(int(height), dtype=jnp.float32)[:, None, None] + 0.5
    xs = jnp.arange(int(width), dtype=jnp.float32)[None, :, None] + 0.5
    sx, sy = seeds[None, None, :, 0], seeds[None, None, :, 1]
    d2 = (xs - sx) ** 2 + (ys - sy) ** 2
    nearest = jnp.argmin(d2, axis=-1).astype(jnp.int32)
    if edges == "exact":
        return nearest
    cover = pil_cover(seeds, height, width)
    # Later cells paint over earlier ones: the highest covering index wins.
    # Painted cell by cell (K is static and small): XLA's CPU reduction over
    # the leading axis of (K, H, W) ran 6x slower than these fused selects.
    cells = nearest
    for c in range(seeds.shape[0]):
        cells = jnp.where(cover[c], jnp.int32(c), cells)
    # Computed once: fused into a consumer (the background gather of
    # `paste.make_views`), XLA recomputed the fill per channel, 4x slower.
    return jax.lax.optimization_barrier(cells)
