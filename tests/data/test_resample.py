"""Resampling: each mode against a float64 per-pixel NumPy reference, against
PyTorch / scikit-image where importable, and matrices against `resize`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.data.resample import MODES, interpolation_matrix, resize

SIZES = [(7, 5), (5, 7), (4, 8), (9, 3), (6, 6), (1, 4), (4, 1), (13, 4)]


def _ref_nearest(x, h, w):
    """torch nearest: floor(dst * in / out) (exact rationals; no ties here)."""
    hin, win = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = x[min(i * hin // h, hin - 1), min(j * win // w, win - 1)]
    return out


def _ref_bilinear(x, h, w):
    """Per output pixel: half-pixel source, clamp below at 0, 4 neighbours."""
    hin, win = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        sy = max((i + 0.5) * hin / h - 0.5, 0.0)
        y0 = int(sy)
        y1, ly = min(y0 + 1, hin - 1), sy - y0
        for j in range(w):
            sx = max((j + 0.5) * win / w - 0.5, 0.0)
            x0 = int(sx)
            x1, lx = min(x0 + 1, win - 1), sx - x0
            top = (1 - lx) * x[y0, x0] + lx * x[y0, x1]
            bot = (1 - lx) * x[y1, x0] + lx * x[y1, x1]
            out[i, j] = (1 - ly) * top + ly * bot
    return out


def _ref_area(x, h, w):
    """Adaptive average pooling windows [floor(i*s), ceil((i+1)*s))."""
    hin, win = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        r0, r1 = int(np.floor(i * hin / h)), int(np.ceil((i + 1) * hin / h))
        for j in range(w):
            c0, c1 = int(np.floor(j * win / w)), int(np.ceil((j + 1) * win / w))
            out[i, j] = x[r0:r1, c0:c1].mean()
    return out


REFS = {"nearest": _ref_nearest, "bilinear": _ref_bilinear, "area": _ref_area}


def test_hand_computed_cases():
    x = np.array([[0.0, 1.0]])
    # sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last sample)
    np.testing.assert_allclose(resize(x, (1, 4), "bilinear"), [[0, 0.25, 0.75, 1]])
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(resize(y, (1, 2), "nearest"), [[1, 3]])
    np.testing.assert_array_equal(resize(y, (1, 2), "nearest_exact"), [[2, 4]])
    np.testing.assert_allclose(resize(y, (1, 2), "area"), [[1.5, 3.5]])
    # 4 -> 2 bilinear without antialias picks the midpoints 0.5 and 2.5
    np.testing.assert_allclose(resize(y, (1, 2), "bilinear"), [[1.5, 3.5]])
    np.testing.assert_allclose(
        interpolation_matrix(4, 3, "area"),
        [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5]],
    )


@pytest.mark.parametrize("mode", sorted(REFS))
def test_against_numpy_reference(mode):
    rng = np.random.default_rng(0)
    for (hin, win), (h, w) in zip(SIZES, SIZES[::-1]):
        x = rng.random((hin, win))
        want = REFS[mode](x, h, w)
        np.testing.assert_allclose(resize(x, (h, w), mode), want, atol=1e-6)
        ah = interpolation_matrix(hin, h, mode, np.float64)
        aw = interpolation_matrix(win, w, mode, np.float64)
        np.testing.assert_allclose(ah @ x @ aw.T, want, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_matrix_matches_resize_and_rows_sum_to_one(mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 11, 6)).astype(np.float32)
    ah = interpolation_matrix(11, 4, mode)
    aw = interpolation_matrix(6, 9, mode)
    np.testing.assert_allclose(ah.sum(1), 1.0, atol=1e-6)
    want = np.einsum(
        "oh,nchw,pw->ncop", ah.astype(np.float64), x, aw.astype(np.float64)
    )
    got = resize(x, (4, 9), mode)
    assert got.shape == (2, 3, 4, 9) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # NHWC layout through `axes` gives the same numbers
    nhwc = resize(np.moveaxis(x, 1, -1), (4, 9), mode, axes=(1, 2))
    np.testing.assert_allclose(np.moveaxis(np.asarray(nhwc), -1, 1), got, atol=1e-6)


def test_skimage_mode_matches_skimage():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(2)
    # LoCE-like: downsampling with Gaussian antialias, mixed with upsampling
    for (hin, win), (h, w) in [
        ((48, 64), (10, 10)),
        ((5, 30), (12, 7)),
        ((33, 9), (33, 20)),
    ]:
        x = (rng.random((hin, win)) > 0.6).astype(np.float64)
        want = skt.resize(x, (h, w), order=1, mode="reflect")
        np.testing.assert_allclose(resize(x, (h, w), "skimage"), want, atol=1e-6)


def test_nearest_exact_matches_skimage_order0_on_bool_masks():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(3)
    for (hin, win), (h, w) in [
        ((30, 40), (7, 9)),
        ((5, 6), (14, 4)),
        ((2, 41), (41, 2)),
    ]:
        m = rng.random((hin, win)) > 0.5
        got = resize(m, (h, w), "nearest_exact")
        assert got.dtype == jnp.bool_
        np.testing.assert_array_equal(got, skt.resize(m, (h, w), order=0))


def test_against_torch_interpolate():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 12, 7)).astype(np.float32)
    for size in [(5, 3), (29, 16), (12, 21), (100, 100)]:
        for mode in ("nearest", "bilinear", "area"):
            kw = {"align_corners": False} if mode == "bilinear" else {}
            want = F.interpolate(torch.from_numpy(x), size=size, mode=mode, **kw)
            got = resize(x, size, mode)
            # PyTorch computes source positions in float32 (error ~1e-6 at 100 px)
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5, err_msg=mode)


def test_jit_and_vmap_compose():
    x = jnp.arange(3 * 8 * 8, dtype=jnp.float32).reshape(3, 8, 8)
    f = jax.jit(lambda a: jax.vmap(lambda m: resize(m, (3, 5), "bilinear"))(a))
    np.testing.assert_allclose(f(x), resize(x, (3, 5), "bilinear"), atol=1e-5)
    np.testing.assert_array_equal(resize(x, [3, 5]), resize(x, (3, 5)))  # lists ok


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown resampling mode"):
        resize(np.zeros((4, 4)), (2, 2), "cubic")
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        interpolation_matrix(4, 0, "bilinear")
    with pytest.raises(ValueError, match="bad spatial axes"):
        resize(np.zeros((4, 4)), (2, 2), "bilinear", axes=(0, 2))
