"""Foreground pasting onto random backgrounds: `full`, `voronoi`, `vanilla` views.

The background-randomised concept embeddings of Schwalbe et al. (arXiv 2504.08602)
see each training image as ``n`` views: the concept's foreground (pixels where the
concept mask is > 0, soft masks included) pasted on a random background.

* ``full``: one background of the pool per view, resized and centre-cropped to
  the image size;
* ``voronoi``: 8 random seed points plus 4 dummy corner points split the image into
  12 Voronoi cells, each filled from a different background of the pool
  (all 12 cells draw one, as the reference code does; spec §11.4);
* ``vanilla``: the image itself.

Everything is a pure function of arrays and a PRNG key: one key per view
(`view_keys`), the view's random choices in a small plan (`full_plan`,
`voronoi.voronoi_plan`), and `make_views` vmaps over images and views in one
jitted call.

Resize rule (reference code `background_pasting.py`, torchvision `Resize` +
`CenterCrop` on float tensors): bilinear with anti-aliasing, computed in float.
`resize="cover"` (default, the paper's intent, spec §11.1) keeps the aspect ratio:
the background is scaled so that it covers the image (torchvision's
shorter-edge rule, long edge truncated) and the centre is cropped with
torchvision's offset ``int(round((R - H) / 2))``. `resize="squash"` is the
reference code's behaviour: a resize straight to the image size, so the crop
does nothing. The reference also swaps (height, width) for non-square images
(spec §11.2); that transposes the output and is not reproduced (square images
agree).

References:
  Schwalbe et al., "On background bias of post-hoc concept embeddings in computer
  vision DNNs", arXiv 2504.08602 (xAI 2025); code gesina/bg_randomized_loce.
"""

import functools

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.concepts.background import voronoi

__all__ = [
    "KINDS",
    "RESIZE_MODES",
    "cover_size",
    "fit_background",
    "full_plan",
    "make_views",
    "paste",
    "view_keys",
]

KINDS = ("full", "voronoi", "vanilla")
RESIZE_MODES = ("cover", "squash")


def cover_size(background_hw, image_hw) -> tuple[int, int]:
    """Size (Rh, Rw) a background is resized to before the centre crop ("cover").

    The binding edge becomes the image's edge; the other keeps the aspect ratio
    (truncated to an int, like torchvision's `Resize(int)`), never below the
    image's. For square images this is torchvision's shorter-edge rule.
    """
    (hb, wb), (h, w) = tuple(map(int, background_hw)), tuple(map(int, image_hw))
    if h * wb >= w * hb:  # h / hb >= w / wb: the height binds
        return h, max(w, int(wb * h / hb))
    return max(h, int(hb * w / wb)), w


def fit_background(backgrounds, size, *, resize: str = "cover") -> jax.Array:
    """Resizes and centre-crops backgrounds to the image size (jittable).

    Args:
      backgrounds: (..., Hb, Wb, C) array, any numeric dtype.
      size: static (H, W) image size.
      resize: "cover" (aspect kept, centre crop; default) or "squash" (straight
        to (H, W), the reference code's behaviour).

    Returns:
      (..., H, W, C) float32 in the input's value scale (bilinear with
      anti-aliasing, as torchvision `Resize` on float tensors).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    x = jnp.asarray(backgrounds).astype(jnp.float32)
    h, w = int(size[0]), int(size[1])
    hb, wb = x.shape[-3], x.shape[-2]
    rh, rw = (h, w) if resize == "squash" else cover_size((hb, wb), (h, w))
    if (rh, rw) != (hb, wb):
        shape = x.shape[:-3] + (rh, rw, x.shape[-1])
        x = jax.image.resize(x, shape, "linear", antialias=True)
    top, left = int(round((rh - h) / 2.0)), int(round((rw - w) / 2.0))
    return x[..., top : top + h, left : left + w, :]


def paste(image, mask, background) -> jax.Array:
    """The image where `mask > 0` (soft masks count), the background elsewhere.

    Args:
      image: (H, W, C) array; background: (H, W, C) of the same dtype.
      mask: (H, W) concept mask, bool or float (any value > 0 is foreground).
    """
    return jnp.where((jnp.asarray(mask) > 0)[..., None], image, background)


def view_keys(key, n_images: int, n_views: int) -> jax.Array:
    """One key per (image, view): (N, V) keys (raw keys get a trailing 2)."""
    return jax.random.split(key, (int(n_images), int(n_views)))


def full_plan(key, n_backgrounds: int) -> jax.Array:
    """The pool index (int32 scalar) of a `full` view's background."""
    return jax.random.randint(key, (), 0, n_backgrounds, jnp.int32)


def _cast(x: jax.Array, dtype) -> jax.Array:
    """Float values to `dtype`: rounded and clipped for integer dtypes."""
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        x = jnp.clip(jnp.round(x), info.min, info.max)
    return x.astype(dtype)


def _view(image, mask, bgs, key, kind, vor_opts, edges):
    if kind == "vanilla":
        return image
    if kind == "full":
        background = bgs[full_plan(key, bgs.shape[0])]
    else:
        h, w = image.shape[:2]
        seeds, ids = voronoi.voronoi_plan(key, bgs.shape[0], h, w, **vor_opts)
        cells = voronoi.voronoi_cells(seeds, h, w, edges=edges)
        rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
        background = bgs[ids[cells], rows, cols]
    return paste(image, mask, background)


@functools.partial(
    jax.jit, static_argnames=("kind", "n_views", "resize", "vor_opts", "edges")
)
def _make_views(images, masks, pool, key, kind, n_views, resize, vor_opts, edges):
    n, h, w = images.shape[:3]
    bgs = images[:1]  # unused by vanilla views
    if kind != "vanilla":
        bgs = _cast(fit_background(pool, (h, w), resize=resize), images.dtype)
    keys = view_keys(key, n, n_views)
    one = functools.partial(_view, kind=kind, vor_opts=dict(vor_opts), edges=edges)
    per_view = jax.vmap(one, in_axes=(None, None, None, 0))
    return jax.vmap(per_view, in_axes=(0, 0, None, 0))(images, masks, bgs, keys)


def _check_inputs(images, masks, pool, kind, n_views, n_cells):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if int(n_views) < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if images.ndim != 4 or images.shape[-1] < 1:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if masks.shape != images.shape[:3]:
        raise ValueError(
            f"masks must be (N, H, W) = {images.shape[:3]}, got {masks.shape}"
        )
    if kind == "vanilla":
        return
    if pool is None or pool.ndim != 4 or pool.shape[-1] != images.shape[-1]:
        shape = None if pool is None else pool.shape
        raise ValueError(
            f"pool must be (P, Hb, Wb, {images.shape[-1]}) backgrounds, got {shape}"
        )
    if pool.dtype != images.dtype:
        raise ValueError(
            f"pool dtype {pool.dtype} differs from images dtype {images.dtype}; "
            "use one value scale (e.g. both uint8)"
        )
    need = n_cells if kind == "voronoi" else 1
    if pool.shape[0] < need:
        raise ValueError(
            f"pool holds {pool.shape[0]} backgrounds; kind={kind!r} needs at "
            f"least {need} (one different background per cell)"
        )


def make_views(
    images,
    masks,
    pool,
    key,
    kind: str = "full",
    n_views: int = 1,
    *,
    resize: str = "cover",
    n_points: int = voronoi.N_POINTS,
    offset: float = voronoi.OFFSET,
    corners: str = "far",
    edges: str = "exact",
) -> jax.Array:
    """Background-randomised views of a batch of images (one jitted call).

    View (i, j) depends only on `view_keys(key, N, n_views)[i, j]` and its
    inputs; backgrounds are drawn with replacement across views.

    Args:
      images: (N, H, W, C) images, any dtype (uint8 or float).
      masks: (N, H, W) concept masks; pixels > 0 are the foreground.
      pool: (P, Hb, Wb, C) backgrounds of the images' dtype (ignored, may be
        None, for "vanilla"); fitted to (H, W) by `fit_background`.
      key: PRNG key.
      kind: "full", "voronoi" or "vanilla" (static).
      n_views: views per image (static).
      resize: "cover" (default) or "squash" (see `fit_background`).
      n_points, offset, corners: Voronoi geometry (see `voronoi.voronoi_plan`).
      edges: Voronoi cell rasterisation, "exact" (default) or "pil" (see
        `voronoi.voronoi_cells`).

    Returns:
      (N, n_views, H, W, C) views of the images' dtype.

    Raises:
      ValueError: naming the argument with a bad shape, dtype or value;
        `NonFiniteError` (a ValueError) for NaN / inf in images, masks or pool.
    """
    images, masks = jnp.asarray(images), jnp.asarray(masks)
    pool = None if pool is None else jnp.asarray(pool)
    n_cells = int(n_points) + 4
    _check_inputs(images, masks, pool, kind, n_views, n_cells)
    check_finite({"images": images, "masks": masks, "pool": pool})
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if pool is None:
        pool = images[:1]
    vor_opts = (("n_points", int(n_points)), ("offset", float(offset)),
                ("corners", corners))  # fmt: skip
    if kind == "voronoi":
        voronoi.check_corners(corners)
        voronoi.check_edges(edges)
    return _make_views(
        images, masks, pool, key, kind, int(n_views), resize, vor_opts, edges
    )
