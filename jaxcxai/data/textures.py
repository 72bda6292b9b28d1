"""Procedural top-down background textures for SynthAerial.

Each texture family is a pure function of a NumPy generator and an image size that
returns a float RGB image in [0, 1]. Everything is vectorized over pixels; the only
Python loops run over a handful of noise octaves. Smooth noise is bilinear value
noise built as ``R_h @ G @ R_w.T`` with cached interpolation matrices, which costs a
few small matrix products per octave instead of per-pixel interpolation.
"""

from __future__ import annotations

import functools

import numpy as np

BACKGROUNDS = ("grass", "forest", "water", "sand", "road", "urban", "field", "snow")
GRASS, FOREST, WATER, SAND, ROAD, URBAN, FIELD, SNOW = range(len(BACKGROUNDS))


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_grid: int) -> np.ndarray:
    """Bilinear interpolation matrix (n_out, n_grid) from grid knots to pixel centres."""
    t = (np.arange(n_out) + 0.5) / n_out * (n_grid - 1)
    i0 = np.minimum(np.floor(t).astype(int), n_grid - 2)
    frac = t - i0
    m = np.zeros((n_out, n_grid), np.float32)
    m[np.arange(n_out), i0] = 1.0 - frac
    m[np.arange(n_out), i0 + 1] = frac
    m.setflags(write=False)
    return m


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Zero-mean bilinear value noise with about ``cells`` blobs per side, (h, w)."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return _interp_matrix(h, cells + 1) @ g @ _interp_matrix(w, cells + 1).T


def fbm(
    rng: np.random.Generator,
    h: int,
    w: int,
    cells: tuple[int, ...] = (3, 8, 24),
    weights: tuple[float, ...] = (0.55, 0.3, 0.15),
) -> np.ndarray:
    """Fractal sum of value-noise octaves, roughly unit variance, (h, w) float32."""
    out = np.zeros((h, w), np.float32)
    for c, wt in zip(cells, weights, strict=True):
        out += wt * smooth_noise(rng, h, w, max(1, min(c, max(h, w) // 2)))
    return out / np.float32(np.sqrt(sum(wt * wt for wt in weights)) * 0.75)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _tint(rng: np.random.Generator, rgb, jitter: float = 0.08) -> np.ndarray:
    return np.asarray(rgb, np.float32) * rng.uniform(1 - jitter, 1 + jitter, 3).astype(
        np.float32
    )


def _shade(base: np.ndarray, shade: np.ndarray) -> np.ndarray:
    return base[None, None, :] * shade[..., None]


def grass(rng, h, w):
    base = _tint(rng, (0.33, 0.47, 0.22))
    shade = 1 + 0.14 * fbm(rng, h, w) + 0.05 * rng.standard_normal((h, w))
    return _shade(base, shade)


def forest(rng, h, w):
    # Canopy: many small bright crowns (high-frequency blobs) over dark gaps.
    base = _tint(rng, (0.13, 0.29, 0.12))
    crowns = smooth_noise(rng, h, w, max(2, h // 4))
    shade = 1 + 0.45 * np.tanh(1.5 * crowns) + 0.12 * fbm(rng, h, w, (3, 6), (0.7, 0.3))
    return _shade(base, shade + 0.05 * rng.standard_normal((h, w)))


def water(rng, h, w):
    base = _tint(rng, (0.11, 0.24, 0.36), 0.15)
    yy, xx = _grid(h, w)
    theta = rng.uniform(0, np.pi)
    warp = 2.0 * smooth_noise(rng, h, w, 4)
    ripple = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta) + warp) / 5.0)
    shade = 1 + 0.08 * fbm(rng, h, w, (2, 6), (0.7, 0.3)) + 0.03 * ripple
    return _shade(base, shade)


def sand(rng, h, w):
    base = _tint(rng, (0.80, 0.71, 0.52), 0.06)
    yy, xx = _grid(h, w)
    theta = rng.uniform(0, np.pi)
    warp = 3.0 * smooth_noise(rng, h, w, 3)
    dunes = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta) + warp) / 9.0)
    shade = (
        1 + 0.05 * fbm(rng, h, w) + 0.04 * dunes + 0.04 * rng.standard_normal((h, w))
    )
    return _shade(base, shade)


def road(rng, h, w):
    base = _tint(rng, (0.37, 0.37, 0.38), 0.05)
    shade = 1 + 0.05 * fbm(rng, h, w) + 0.07 * rng.standard_normal((h, w))
    return _shade(base, shade)


_ROOF_PALETTE = np.array(
    [
        (0.55, 0.30, 0.24),
        (0.50, 0.50, 0.52),
        (0.36, 0.35, 0.37),
        (0.70, 0.64, 0.55),
        (0.62, 0.42, 0.33),
    ],
    np.float32,
)


def urban(rng, h, w):
    # Dense built-up ground: small staggered roof patches separated by dark joints.
    # Patches are much smaller than `building` objects so the two stay distinct.
    scale = max(h, w) / 128
    bh, bw = (max(2, int(round(rng.uniform(4, 7) * scale))) for _ in range(2))
    yy, xx = _grid(h, w)
    oy, ox = rng.integers(0, bh), rng.integers(0, bw)
    row = ((yy + oy) // bh).astype(int)
    col = ((xx + ox + (row % 2) * (bw // 2)) // bw).astype(int)
    idx = rng.integers(0, len(_ROOF_PALETTE), (row.max() + 1, col.max() + 1))
    colors = _ROOF_PALETTE[idx[row, col]]
    colors = colors * rng.uniform(0.85, 1.15, idx.shape)[row, col][..., None]
    joint = (((yy + oy) % bh) < 1) | (((xx + ox + (row % 2) * (bw // 2)) % bw) < 1)
    shade = np.where(joint, 0.55, 1.0) + 0.04 * rng.standard_normal((h, w))
    return (colors * shade[..., None]).astype(np.float32)


_CROP_PALETTE = np.array(
    [(0.45, 0.58, 0.24), (0.74, 0.68, 0.36), (0.52, 0.40, 0.27), (0.33, 0.50, 0.22)],
    np.float32,
)


def field(rng, h, w):
    # Parcels on a rotated grid; each parcel has a crop colour and plough stripes.
    yy, xx = _grid(h, w)
    phi = rng.uniform(-0.4, 0.4)
    u = xx * np.cos(phi) + yy * np.sin(phi)
    v = -xx * np.sin(phi) + yy * np.cos(phi)
    pu, pv = rng.uniform(0.3, 0.7, 2) * max(h, w)
    iu = ((u + rng.uniform(0, pu)) // pu).astype(int) + 2
    iv = ((v + rng.uniform(0, pv)) // pv).astype(int) + 2
    n_u, n_v = iu.max() + 1, iv.max() + 1
    color = _CROP_PALETTE[rng.integers(0, len(_CROP_PALETTE), (n_u, n_v))]
    along = rng.random((n_u, n_v)) < 0.5
    period = rng.uniform(2.5, 4.5) * max(1.0, max(h, w) / 128)
    coord = np.where(along[iu, iv], u, v)
    stripes = np.sin(2 * np.pi * coord / period)
    shade = 1 + 0.12 * stripes + 0.04 * fbm(rng, h, w, (4, 16), (0.6, 0.4))
    return (color[iu, iv] * shade[..., None]).astype(np.float32)


def snow(rng, h, w):
    base = _tint(rng, (0.92, 0.94, 0.97), 0.03)
    shade = 1 - 0.07 * np.abs(fbm(rng, h, w)) - 0.02 * rng.random((h, w))
    return _shade(base, shade)


TEXTURES = (grass, forest, water, sand, road, urban, field, snow)


def render_background(rng: np.random.Generator, bg_map: np.ndarray) -> np.ndarray:
    """Fill each region of a background map with its texture family.

    Args:
        rng: NumPy generator; consumed in the fixed order of family ids.
        bg_map: (H, W) integer map of texture family ids (indices into BACKGROUNDS).

    Returns:
        (H, W, 3) float32 RGB image in [0, 1].
    """
    h, w = bg_map.shape
    out = np.zeros((h, w, 3), np.float32)
    for fam in np.unique(bg_map):
        sel = bg_map == fam
        out[sel] = TEXTURES[int(fam)](rng, h, w)[sel]
    return np.clip(out, 0.0, 1.0)
