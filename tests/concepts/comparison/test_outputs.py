"""Probe outputs on shared images: Net2Vec masks on a grid, CAV projections."""

import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.comparison import outputs
from jaxcxai.concepts.probes import Cavs, Probe, fit_cavs


def _bilinear(x, out_h, out_w):
    """PyTorch `interpolate(mode="bilinear", align_corners=False)` of (..., h, w),
    written as a plain loop over output pixels."""
    h, w = x.shape[-2:]

    def taps(n, m, o):
        src = max((o + 0.5) * n / m - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n - 1)
        return i0, min(i0 + 1, n - 1), src - i0

    out = np.zeros(x.shape[:-2] + (out_h, out_w))
    for oy in range(out_h):
        y0, y1, wy = taps(h, out_h, oy)
        for ox in range(out_w):
            x0, x1, wx = taps(w, out_w, ox)
            top = (1 - wx) * x[..., y0, x0] + wx * x[..., y0, x1]
            bottom = (1 - wx) * x[..., y1, x0] + wx * x[..., y1, x1]
            out[..., oy, ox] = (1 - wy) * top + wy * bottom
    return out


def _probe_and_acts(rng, k=3, n=5, h=4, w=6, c=7):
    acts = rng.normal(size=(n, h, w, c)).astype(np.float32)
    probe = Probe(rng.normal(size=(k, c)).astype(np.float32),
                  rng.normal(size=k).astype(np.float32) * 0.3)  # fmt: skip
    return probe, acts


@pytest.mark.parametrize("grid", [9, (8, 12), 3])  # up, up (non-square), down
def test_net2vec_masks_threshold_bilinear_logits(grid):
    rng = np.random.default_rng(0)
    probe, acts = _probe_and_acts(rng)
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    logits = np.einsum("nhwc,kc->knhw", acts.astype(np.float64), probe.w)
    logits += probe.b[:, None, None, None]
    ref = 1.0 / (1.0 + np.exp(-_bilinear(logits, gh, gw))) > 0.5
    got = outputs.net2vec_masks(probe, acts, grid)
    assert got.shape == (3, 5, gh, gw) and got.dtype == bool
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(
        outputs.net2vec_masks(probe, acts, grid, batch_size=2), ref
    )


def test_net2vec_layer_masks_stack_layers_of_different_shapes():
    rng = np.random.default_rng(1)
    (p1, a1), (p2, a2) = _probe_and_acts(rng, h=3, w=3, c=4), _probe_and_acts(rng, c=8)
    got = outputs.net2vec_layer_masks([p1, p2], [a1, a2], 6)
    assert got.shape == (2, 3, 5, 6, 6)
    np.testing.assert_array_equal(got[1], outputs.net2vec_masks(p2, a2, 6))


def test_cav_projections_are_signed_plane_distances():
    rng = np.random.default_rng(2)
    k, r, n, d = 3, 4, 6, 10
    weight = rng.normal(size=(k, r, d)).astype(np.float32) * 3
    bias = rng.normal(size=(k, r)).astype(np.float32)
    cavs = Cavs(weight / np.linalg.norm(weight, axis=-1, keepdims=True), weight, bias)
    feats = rng.normal(size=(n, d)).astype(np.float32)
    w64 = weight.astype(np.float64)
    dist = (np.einsum("krd,nd->krn", w64, feats) + bias[..., None]) / np.linalg.norm(
        w64, axis=-1
    )[..., None]
    np.testing.assert_allclose(
        outputs.cav_projections(cavs, feats), dist.mean(1), atol=1e-5
    )
    np.testing.assert_allclose(
        outputs.cav_projections(cavs, feats, run=2), dist[:, 2], atol=1e-5
    )
    # Same sign as the classifier: s > 0 where w . f + b > 0.
    np.testing.assert_array_equal(
        np.asarray(outputs.cav_projections(cavs, feats, run=-1)) > 0,
        np.einsum("kd,nd->kn", weight[:, -1], feats) + bias[:, -1:] > 0,
    )


def test_cav_projections_of_maps_with_fitted_cavs():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(2, 8, 3, 3, 4)).astype(np.float32)
    cavs = fit_cavs(maps[:1].reshape(1, 8, -1) + 1.0, maps[1:].reshape(1, 8, -1),
                    method="mean_diff")  # fmt: skip
    test = rng.normal(size=(5, 3, 3, 4)).astype(np.float32)
    got = outputs.cav_projections(cavs, test)
    want = outputs.cav_projections(cavs, test.reshape(5, -1))
    np.testing.assert_allclose(got, want, atol=1e-6)
    stacked = outputs.cav_layer_projections([cavs, cavs], [test, test.reshape(5, -1)])
    assert stacked.shape == (2, 1, 5)
    np.testing.assert_allclose(stacked[1], want, atol=1e-6)
    pooled = fit_cavs(
        maps.mean((2, 3))[:1] + 1.0, maps.mean((2, 3))[1:], method="mean_diff"
    )
    with pytest.raises(ValueError, match=r"the CAVs expect \(N, 4\)"):
        outputs.cav_projections(pooled, test)  # flattened maps, pooled CAVs
    np.testing.assert_allclose(
        outputs.cav_projections(pooled, test, pool="mean"),
        outputs.cav_projections(pooled, test.mean((1, 2))),
        atol=1e-6,
    )


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(4)
    probe, acts = _probe_and_acts(rng)
    with pytest.raises(ValueError, match=r"acts must be \(N, h, w, C\) with C = 7"):
        outputs.net2vec_masks(probe, acts[..., :5], 8)
    bad = acts.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="acts has 1 non-finite"):
        outputs.net2vec_masks(probe, bad, 8)
    with pytest.raises(ValueError, match="grid"):
        outputs.net2vec_masks(probe, acts, (0, 4))
    with pytest.raises(ValueError, match="one entry per layer"):
        outputs.net2vec_layer_masks([probe], [acts, acts], 8)
    w = rng.normal(size=(2, 3, 4)).astype(np.float32)
    cavs = Cavs(w, w, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"run must be in \[0, 3\)"):
        outputs.cav_projections(cavs, np.ones((5, 4)), run=3)
    with pytest.raises(NonFiniteError, match="cavs.bias"):
        outputs.cav_projections(
            cavs._replace(bias=np.full((2, 3), np.nan)), np.ones((5, 4))
        )
