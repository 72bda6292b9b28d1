"""Voronoi cells rasterised as PIL fills them: the `edges="pil"` quirk.

The reference of Schwalbe et al. (arXiv 2504.08602) draws each Voronoi cell's
finite polygon with ``ImageDraw.polygon(..., fill=c)``, cell after cell, so a
pixel on a shared edge goes to the later cell. `pil_cover` reproduces which
pixels Pillow paints for every cell, jittably; `voronoi.voronoi_cells` picks
the highest covering cell. Pillow's rules (libImaging/Draw.c, checked pixel
by pixel) are in `voronoi`'s module docstring. The Voronoi vertices are the
circumcentres of the Delaunay triangles, found by brute force over the K^3
seed triples (cheap for the 12 points of a view).
"""

import jax
import jax.numpy as jnp

__all__ = ["FAR", "pil_cover"]

# Open cells are closed this many image sides out, as the reference's finite
# polygons (and bg_views' copy of them) do; far enough not to matter inside.
FAR = 10.0


def _round_up(f):
    """PIL's ROUND_UP (halves away from zero), in float32 as Pillow computes it."""
    return jnp.where(f >= 0, jnp.floor(f + 0.5), -jnp.floor(jnp.abs(f) + 0.5))


def _round_down(f):
    """PIL's ROUND_DOWN (halves towards zero)."""
    return jnp.where(f >= 0, jnp.ceil(f - 0.5), -jnp.ceil(jnp.abs(f) - 0.5))


def _circumcentres(seeds):
    """Voronoi vertices of all seed triples.

    Args:
      seeds: (K, 2) float32 points (x, y).

    Returns:
      vert: (K, K, K, 2) circumcentre of seeds (c, q, r), computed relative to
        seed c; vert[c, q, r] == vert[c, r, q] exactly, so a vertex that two
        edges of cell c share is one number.
      tri: (K, K, K) bool, whether (c, q, r) is a Delaunay triangle (distinct,
        not collinear, no other seed strictly inside the circumcircle).
    """
    k = seeds.shape[0]
    b = seeds[None, :, None, :] - seeds[:, None, None, :]  # q - c
    d = seeds[None, None, :, :] - seeds[:, None, None, :]  # r - c
    b2, d2 = jnp.sum(b * b, -1), jnp.sum(d * d, -1)
    det = 2.0 * (b[..., 0] * d[..., 1] - b[..., 1] * d[..., 0])
    u = jnp.stack(
        [d[..., 1] * b2 - b[..., 1] * d2, b[..., 0] * d2 - d[..., 0] * b2], -1
    )
    u = u / jnp.where(det == 0, 1.0, det)[..., None]
    # m strictly inside the circumcircle of (c, q, r), centre c + u:
    # |m - c - u|^2 < |u|^2, i.e. |m - c|^2 < 2 (m - c).u, as one contraction
    # (the (K, K, K, K, 2) difference tensor cost 3x more).
    rel = seeds[None, :, :] - seeds[:, None, :]  # (c, m): m - c
    rel = rel[:, None, None, :, :]  # (c, 1, 1, m, 2)
    dots = u[..., None, 0] * rel[..., 0] + u[..., None, 1] * rel[..., 1]
    i = jnp.arange(k)
    c, q = i[:, None, None, None], i[None, :, None, None]
    r, m = i[None, None, :, None], i[None, None, None, :]
    other = (m != c) & (m != q) & (m != r)
    # As a count: XLA's CPU `any` over the last axis ran slower than a sum.
    inside = jnp.where(other, jnp.sum(rel * rel, -1) < 2.0 * dots, False)
    n_inside = jnp.sum(inside.astype(jnp.int32), -1)
    distinct = (c != q) & (c != r) & (q != r)
    tri = distinct[..., 0] & (det != 0) & (n_inside == 0)
    return seeds[:, None, None, :] + u, tri


def _orient(seeds, start, end):
    """(start, end) swapped where needed to run as Pillow walks each polygon.

    The reference lists a cell's vertices by increasing angle around their
    mean, so every edge turns positively (cross product > 0) around the seed
    inside the cell. Pillow steps x along an edge from its first vertex; the
    direction only matters for float32 rounding at half-pixel ties.
    """
    pa = start - seeds[:, None, :]
    pb = end - seeds[:, None, :]
    flip = ((pa[..., 0] * pb[..., 1] - pa[..., 1] * pb[..., 0]) < 0)[..., None]
    return jnp.where(flip, end, start), jnp.where(flip, start, end)


def _first_last(mask, axis: int):
    """Indices of the first and the last True along `axis` (0 and n - 1
    where there is none)."""
    n = mask.shape[axis]
    return jnp.argmax(mask, axis), n - 1 - jnp.argmax(jnp.flip(mask, axis), axis)


def _polygon_edges(seeds, radius: float):
    """Every cell's polygon edges as the reference draws them.

    Args:
      seeds: (K, 2) float32 points (x, y).
      radius: how far out an open cell's infinite ridges are closed.

    Returns:
      ends: (K, K + 1, 2, 2) float32; ends[c, q] (q < K) is the ridge between
        cells c and q, ends[c, K] the edge that closes an open cell between
        the far ends of its two infinite ridges; each as (start, end) points
        (x, y) truncated to integers as Pillow does.
      valid: (K, K + 1) bool, which of those edges exist.
    """
    vert, tri = _circumcentres(seeds)
    n_tri = jnp.sum(tri, -1)  # 2: finite ridge, 1: infinite, 0: no ridge
    first, last = _first_last(tri, -1)
    a = jnp.take_along_axis(vert, first[..., None, None], 2)[:, :, 0]
    b = jnp.take_along_axis(vert, last[..., None, None], 2)[:, :, 0]
    # An infinite ridge ends `radius` out along its normal, on the side away
    # from the seeds' mean, as the reference's finite polygons pick it.
    tangent = seeds[None, :, :] - seeds[:, None, :]
    normal = jnp.stack([-tangent[..., 1], tangent[..., 0]], -1)
    normal = normal / jnp.maximum(
        jnp.linalg.norm(normal, axis=-1, keepdims=True), 1e-30
    )
    centre = jnp.mean(seeds, 0)[None, None, :]
    mid = (seeds[None, :, :] + seeds[:, None, :]) / 2 - centre
    side = jnp.where(jnp.sum(mid * normal, -1) < 0, -radius, radius)
    far = a + normal * side[..., None]
    open_ = n_tri == 1
    b = jnp.where(open_[..., None], far, b)
    # The closing edge joins the far ends of an open cell's two infinite ridges.
    o1, o2 = _first_last(open_, 1)
    f1 = jnp.take_along_axis(far, o1[:, None, None], 1)[:, 0]
    f2 = jnp.take_along_axis(far, o2[:, None, None], 1)[:, 0]
    a = jnp.concatenate([a, f1[:, None]], 1)
    b = jnp.concatenate([b, f2[:, None]], 1)
    valid = jnp.concatenate([n_tri >= 1, (jnp.sum(open_, 1) == 2)[:, None]], 1)
    start, end = _orient(seeds, a, b)
    return jnp.trunc(jnp.stack([start, end], -2)), valid


def _row_spans(ends, valid, height: int):
    """Each cell's scan-line span (lo, hi) on rows -1 .. H, each (K, H + 2).

    Rows the polygon misses get (inf, -inf). Cells are convex, so a row's span
    runs between its outermost edges (Pillow pairs the sorted crossings, which
    gives the same span).
    """
    x0, y0 = ends[..., 0, 0, None], ends[..., 0, 1, None]  # (K, K + 1, 1)
    x1, y1 = ends[..., 1, 0, None], ends[..., 1, 1, None]
    ys = jnp.arange(-1, int(height) + 1, dtype=jnp.float32)[None, None, :]
    flat = y0 == y1  # drawn whole on its row
    # Pillow's scan line: x = (y - y0) * dx + x0 in float32, dx per edge. The
    # barrier keeps XLA from fusing it into one FMA, whose single rounding
    # moves exact half-pixel ties (Pillow rounds the product first).
    dx = (x1 - x0) / jnp.where(flat, 1.0, y1 - y0)
    xe = jax.lax.optimization_barrier((ys - y0) * dx) + x0  # (K, K + 1, H + 2)
    lo = jnp.where(flat, jnp.minimum(x0, x1), xe)
    hi = jnp.where(flat, jnp.maximum(x0, x1), xe)
    on = valid[..., None] & (ys >= jnp.minimum(y0, y1)) & (ys <= jnp.maximum(y0, y1))
    lo = jnp.min(jnp.where(on, lo, jnp.inf), 1)
    hi = jnp.max(jnp.where(on, hi, -jnp.inf), 1)
    return lo, hi


def _join_corner(lo, hi, nb_lo, nb_hi):
    """Pillow's corner rule on a cell's top (bottom) row.

    Where that row is a single vertex more than a pixel beyond both edges on
    the neighbouring row inside the polygon, Pillow stretches the vertex's
    span to one pixel short of that row's span (rounded half away from zero),
    so the outline stays connected.
    """
    point = (lo == hi) & jnp.isfinite(nb_lo)
    new_lo = jnp.where(point & (lo > nb_hi + 1), _round_up(nb_hi) + 1, lo)
    new_hi = jnp.where(point & (hi < nb_lo - 1), _round_up(nb_lo) - 1, hi)
    return new_lo, new_hi


def pil_cover(seeds, height: int, width: int) -> jax.Array:
    """The pixels PIL's polygon fill paints for every Voronoi cell.

    Args:
      seeds: (K, 2) float32 points (x, y), K >= 3.
      height, width: static image size.

    Returns:
      (K, H, W) bool; cover[c, i, j] when cell c's finite polygon, filled by
      Pillow, paints pixel (row i, column j).
    """
    ends, valid = _polygon_edges(seeds, FAR * max(int(height), int(width)))
    lo, hi = _row_spans(ends, valid, height)
    ys = jnp.arange(int(height), dtype=jnp.float32)[None, :]
    y_lo = jnp.minimum(ends[..., 0, 1], ends[..., 1, 1])
    y_hi = jnp.maximum(ends[..., 0, 1], ends[..., 1, 1])
    top = jnp.min(jnp.where(valid, y_lo, jnp.inf), 1)[:, None] == ys  # (K, H)
    bottom = jnp.max(jnp.where(valid, y_hi, -jnp.inf), 1)[:, None] == ys
    row_lo, row_hi = lo[:, 1:-1], hi[:, 1:-1]
    t_lo, t_hi = _join_corner(row_lo, row_hi, lo[:, 2:], hi[:, 2:])
    b_lo, b_hi = _join_corner(row_lo, row_hi, lo[:, :-2], hi[:, :-2])
    row_lo = jnp.where(top, t_lo, jnp.where(bottom, b_lo, row_lo))
    row_hi = jnp.where(top, t_hi, jnp.where(bottom, b_hi, row_hi))
    left = _round_up(jnp.where(jnp.isfinite(row_lo), row_lo, 0.0))
    right = _round_down(jnp.where(jnp.isfinite(row_hi), row_hi, -1.0))
    xs = jnp.arange(int(width), dtype=jnp.float32)[None, None, :]
    return (xs >= left[..., None]) & (xs <= right[..., None])
