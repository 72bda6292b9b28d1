"""`bg_views`: background-randomised views, ours vs the reference procedure.

Workload: 64 SynthAerial images 128 x 128 (foreground = every object's mask),
4 `full` + 4 `voronoi` views each = 512 views, from a pool of 64 SynthAerial
backgrounds without objects (8 per scene group) rendered at 160 x 160, so every
background is resized (160 -> 128) and centre-cropped.

* Ours: `paste.make_views` for both kinds inside one jitted call (the pool is
  resized once per call, views are vmapped over images and views).
* Baseline: the reference procedure (gesina/bg_randomized_loce,
  `background_pasting.py`) as a NumPy/PIL/scipy loop per view: PIL bilinear
  resize + centre crop of each background it uses; for Voronoi views
  `scipy.spatial.Voronoi` of the same 12 points, finite polygons, and per
  cell a PIL polygon mask pasting a freshly resized background; then the
  foreground pasted with the mask. The reference's matplotlib plot of every
  diagram is left out (it only slows the reference down). The baseline gets
  our plans (background indices, seed points) so both draw the same
  backgrounds.

Agreement:
* `full`: PIL's uint8 bilinear resize and ours (float, anti-aliased, as
  torchvision on tensors) differ by rounding, so both are compared after using
  the same PIL-resized backgrounds: ours on the resized pool (fit = identity)
  must give identical pixels. The resize difference itself is reported.
* `voronoi`: the fraction of pixels whose cell equals the cell of the PIL
  polygon that covers it, for both rasterisations of `voronoi.voronoi_cells`.
  `edges="exact"` (our nearest seed, the default; `voronoi_cell_agreement`):
  PIL's polygon fill also paints edge pixels and later cells overwrite earlier
  ones there, so about 1% of the pixels of a 128 x 128 image differ, all next
  to a cell boundary; required: >= 0.98 overall and exactly 1 on pixels more
  than 2 px from every boundary. `edges="pil"` (the reference's rasterisation
  emulated; `voronoi_cell_agreement_pil_edges`): required >= 0.99, the issue's
  target, which `voronoi_cell_agreement_ge_0_99` reports for this flag.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import Voronoi

from eval.benches.timing import best_time
from jaxcxai.concepts.background import paste, pools, voronoi
from jaxcxai.data import synthaerial

N_IMAGES, VIEWS, SIZE, POOL_SIZE, PER_GROUP = 64, 4, 128, 160, 8


def _inputs():
    data = synthaerial.generate(N_IMAGES, size=SIZE, seed=0)
    pool = pools.synthaerial_pool(PER_GROUP, size=POOL_SIZE, seed=1).images
    return data["image"], (data["class_mask"] > 0).astype(np.float32), pool


@functools.partial(jax.jit, static_argnames="edges")
def _ours(images, masks, pool, key, edges="exact"):
    k_full, k_vor = jax.random.split(key)
    full = paste.make_views(images, masks, pool, k_full, "full", VIEWS)
    vor = paste.make_views(images, masks, pool, k_vor, "voronoi", VIEWS, edges=edges)
    return jnp.concatenate([full, vor], axis=1)


def _plans(key, n_pool):
    """Our per-view random draws, for the baseline to use the same ones."""
    k_full, k_vor = jax.random.split(key)
    fk = paste.view_keys(k_full, N_IMAGES, VIEWS).reshape(-1)
    vk = paste.view_keys(k_vor, N_IMAGES, VIEWS).reshape(-1)
    full_ids = jax.vmap(lambda k: paste.full_plan(k, n_pool))(fk)
    seeds, ids = jax.vmap(lambda k: voronoi.voronoi_plan(k, n_pool, SIZE, SIZE))(vk)
    shape = (N_IMAGES, VIEWS)
    return (np.asarray(full_ids).reshape(shape),
            np.asarray(seeds, np.float64).reshape(shape + seeds.shape[1:]),
            np.asarray(ids).reshape(shape + ids.shape[1:]))  # fmt: skip


def _pil_fit(bg: np.ndarray) -> Image.Image:
    """PIL bilinear resize to cover SIZE x SIZE, torchvision centre crop."""
    rh, rw = paste.cover_size(bg.shape[:2], (SIZE, SIZE))
    img = Image.fromarray(bg).resize((rw, rh), Image.BILINEAR)
    top, left = int(round((rh - SIZE) / 2.0)), int(round((rw - SIZE) / 2.0))
    return img.crop((left, top, left + SIZE, top + SIZE))


def _finite_polygons(points: np.ndarray, radius: float) -> list[np.ndarray]:
    """Each point's Voronoi cell as a polygon; open cells closed `radius` out."""
    vor = Voronoi(points)
    centre = points.mean(0)
    ridges: dict[int, list] = {}
    for (p, q), (v1, v2) in zip(vor.ridge_points, vor.ridge_vertices):
        ridges.setdefault(p, []).append((q, v1, v2))
        ridges.setdefault(q, []).append((p, v1, v2))
    polys = []
    for p, r in enumerate(vor.point_region):
        region = vor.regions[r]
        pts = [vor.vertices[v] for v in region if v >= 0]
        if -1 in region:
            for q, v1, v2 in ridges[p]:
                if v1 >= 0 and v2 >= 0:
                    continue
                tangent = points[q] - points[p]
                normal = np.array([-tangent[1], tangent[0]]) / np.hypot(*tangent)
                mid = (points[p] + points[q]) / 2
                normal *= np.sign(np.dot(mid - centre, normal)) or 1.0
                pts.append(vor.vertices[max(v1, v2)] + normal * radius)
        pts = np.asarray(pts)
        c = pts.mean(0)
        polys.append(pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))])
    return polys


def _baseline_views(images, masks, pool, plans):
    """The reference procedure, one view at a time (NumPy / PIL / scipy)."""
    full_ids, seeds, vor_ids = plans
    out = np.zeros((N_IMAGES, 2 * VIEWS, SIZE, SIZE, 3), np.uint8)
    for i in range(N_IMAGES):
        fg = masks[i][..., None] > 0
        for j in range(VIEWS):
            bg = np.asarray(_pil_fit(pool[full_ids[i, j]]))
            out[i, j] = np.where(fg, images[i], bg)
        for j in range(VIEWS):
            canvas = Image.new("RGB", (SIZE, SIZE), 0)
            polys = _finite_polygons(seeds[i, j], 10.0 * SIZE)
            for c, poly in enumerate(polys):
                cell = Image.new("L", (SIZE, SIZE), 0)
                ImageDraw.Draw(cell).polygon([tuple(v) for v in poly], fill=255)
                canvas.paste(_pil_fit(pool[vor_ids[i, j, c]]), mask=cell)
            out[i, VIEWS + j] = np.where(fg, images[i], np.asarray(canvas))
    return out


def _baseline_cells(points: np.ndarray) -> np.ndarray:
    """The cell index the baseline's polygons give each pixel (-1: none)."""
    label = Image.new("I", (SIZE, SIZE), -1)
    draw = ImageDraw.Draw(label)
    for c, poly in enumerate(_finite_polygons(points, 10.0 * SIZE)):
        draw.polygon([tuple(v) for v in poly], fill=c)
    return np.asarray(label)


def _boundary_distance(points: np.ndarray) -> np.ndarray:
    """(H, W) distance of each pixel centre to its cell's nearest boundary."""
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    d2 = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    near = np.argmin(d2, -1)
    sep = np.linalg.norm(points[None, None] - points[near][..., None, :], axis=-1)
    gap = (d2 - np.take_along_axis(d2, near[..., None], -1)) / np.maximum(
        2 * sep, 1e-12
    )
    gap[sep == 0] = np.inf
    return gap.min(-1)


def run(quick: bool) -> dict:
    images, masks, pool = _inputs()
    key = jax.random.key(0)
    args = tuple(map(jnp.asarray, (images, masks, pool)))
    t0 = time.perf_counter()
    jax.block_until_ready(_ours(*args, key))
    compile_s = time.perf_counter() - t0
    ours_s, views = best_time(lambda: _ours(*args, key), 3 if quick else 10)
    views = np.asarray(views)
    jax.block_until_ready(_ours(*args, key, edges="pil"))
    pil_s, _ = best_time(lambda: _ours(*args, key, edges="pil"), 3 if quick else 10)

    plans = _plans(key, len(pool))
    base_s, base = best_time(lambda: _baseline_views(images, masks, pool, plans), 1)

    # Same resized backgrounds for both: ours on the PIL-resized pool.
    pil_pool = np.stack([np.asarray(_pil_fit(bg)) for bg in pool])
    same = np.asarray(_ours(args[0], args[1], jnp.asarray(pil_pool), key))
    ours_fit = np.asarray(paste.fit_background(pool, (SIZE, SIZE)))
    resize_diff = np.abs(np.clip(np.round(ours_fit), 0, 255) - pil_pool)
    seeds = jnp.asarray(plans[1].reshape(-1, 12, 2), jnp.float32)
    cells_ours = jax.vmap(lambda s: voronoi.voronoi_cells(s, SIZE, SIZE))(seeds)
    cells_pil = jax.vmap(lambda s: voronoi.voronoi_cells(s, SIZE, SIZE, edges="pil"))(
        seeds
    )
    cells_base = np.stack([_baseline_cells(s) for s in plans[1].reshape(-1, 12, 2)])
    match = np.asarray(cells_ours) == cells_base
    cell_agree = float(np.mean(match))
    pil_agree = float(np.mean(np.asarray(cells_pil) == cells_base))
    dist = np.stack([_boundary_distance(p) for p in plans[1].reshape(-1, 12, 2)])
    interior = float(np.mean(match[dist > 2.0]))
    full_equal = bool(np.array_equal(same[:, :VIEWS], base[:, :VIEWS]))
    exact_ok = cell_agree >= 0.98 and interior == 1.0
    ok = full_equal and exact_ok and pil_agree >= 0.99
    agreement = {
        "full_identical_pixels_same_resized_backgrounds": full_equal,
        "voronoi_cell_agreement": cell_agree,
        "voronoi_cell_agreement_pil_edges": pil_agree,
        "voronoi_cell_agreement_ge_0_99": pil_agree >= 0.99,
        "voronoi_cell_agreement_beyond_2px_of_boundaries": interior,
        "voronoi_max_mismatch_distance_px": float(dist[~match].max(initial=0.0)),
        "voronoi_pixel_agreement_same_resized_backgrounds": float(
            np.mean(np.all(same[:, VIEWS:] == base[:, VIEWS:], axis=-1))
        ),
        "baseline_pixels_without_cell": int(np.sum(cells_base < 0)),
        "resize_ours_vs_pil_max_abs_uint8": int(resize_diff.max()),
        "resize_ours_vs_pil_mean_abs_uint8": float(resize_diff.mean()),
        "pixels_identical_ours_own_resize_vs_baseline": float(
            np.mean(np.all(views == base, axis=-1))
        ),
    }
    n_views = N_IMAGES * 2 * VIEWS
    return {
        "ours_s": ours_s,
        "baseline": "reference procedure as a NumPy/PIL/scipy loop per view "
        "(PIL resize + centre crop, scipy Voronoi polygons filled with PIL); "
        "seconds for all views",
        "baseline_s": base_s,
        "agreement": agreement,
        "agreement_ok": ok,
        "params": {
            "views": n_views,
            "images": N_IMAGES,
            "views_per_image": {"full": VIEWS, "voronoi": VIEWS},
            "image_size": [SIZE, SIZE],
            "pool": {
                "backgrounds": len(pool),
                "size": [POOL_SIZE, POOL_SIZE],
                "source": "SynthAerial scenes without objects, 8 groups",
            },  # fmt: skip
            "voronoi_points": voronoi.N_POINTS,
            "corners": "far",
            "time_unit": "seconds for all views",
        },
        "extra": {
            "ours_compile_s": compile_s,
            "ours_pil_edges_s": pil_s,
            "speedup_pil_edges": base_s / pil_s,
            "views_per_s": {"ours": n_views / ours_s, "baseline": n_views / base_s},
        },
    }
