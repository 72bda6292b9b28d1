"""Quality metrics, ICE, reference samples and figures against NumPy references."""

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from scipy.optimize import nnls
from skimage.transform import resize

from jaxcxai.concepts.discovery import ice, plots, quality, references


def _iou_reference(presence, masks, top_quantile):
    """NetDissect IoU with skimage's bilinear upsampling, pure NumPy loops."""
    n, _, _, k = presence.shape
    size = masks.shape[1:3]
    up = np.stack(
        [
            resize(p, size + (k,), order=1, mode="edge", anti_aliasing=False)
            for p in presence
        ]
    )
    iou = np.zeros((k, masks.shape[-1]))
    for j in range(k):
        for c in range(masks.shape[-1]):
            lab = masks[..., c]
            if top_quantile == "area":
                t = np.quantile(up[..., j], 1 - lab.mean())
            else:
                t = np.quantile(presence[..., j], 1 - top_quantile)
            pred = up[..., j] > t
            union = np.logical_or(pred, lab).sum()
            iou[j, c] = np.logical_and(pred, lab).sum() / union if union else 0.0
    return iou


@pytest.mark.parametrize("top_quantile", [0.2, "area"])
def test_localization_iou_equals_numpy_reference(top_quantile):
    rng = np.random.default_rng(0)
    masks = np.zeros((5, 16, 16, 3), bool)
    for i in range(5):
        for c in range(3):
            y, x = rng.integers(0, 10, 2)
            masks[i, y : y + 6, x : x + 6, c] = True
    # Component 0 follows concept 1; the others are noise.
    small = np.stack([resize(m[..., 1].astype(float), (4, 4), order=1) for m in masks])
    presence = rng.random((5, 4, 4, 3)) * 0.3
    presence[..., 0] += small
    iou = quality.localization_iou(
        presence.astype(np.float32), masks, top_quantile=top_quantile, batch_size=2
    )
    ref = _iou_reference(presence.astype(np.float32), masks, top_quantile)
    np.testing.assert_allclose(iou, ref, atol=1e-6)
    assert iou[0].argmax() == 1
    best = quality.best_concepts(iou, ["a", "b", "c"])
    assert best[0]["concept"] == "b"
    rec = quality.recovered_concepts(iou, ["a", "b", "c"], threshold=iou[0, 1] - 1e-9)
    assert rec["b"][0] == 0


def test_r2_sparsity_and_dead_codes_against_numpy():
    rng = np.random.default_rng(1)
    codes = np.maximum(rng.standard_normal((40, 4)), 0)
    codes[:, 2] = 0.0
    comps = rng.standard_normal((4, 6))
    mean = rng.standard_normal(6)
    x = codes @ comps + mean + 0.3 * rng.standard_normal((40, 6))
    r2 = quality.r2(x, codes, comps, mean)
    ref = 1 - ((x - codes @ comps - mean) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert r2 == pytest.approx(ref, rel=1e-5)
    sp = quality.sparsity(codes)
    assert sp["fraction_zero"] == pytest.approx((codes == 0).mean(), abs=1e-6)
    assert sp["mean_l0"] == pytest.approx((codes > 0).sum(1).mean(), rel=1e-6)
    np.testing.assert_array_equal(
        quality.dead_codes(codes), [False, False, True, False]
    )


def _planted_spatial(seed=2, n=12, k=3, c=8):
    rng = np.random.default_rng(seed)
    concepts = rng.exponential(size=(k, c)) * (rng.random((k, c)) < 0.6)
    pres = rng.exponential(size=(n, 5, 5, k)) * (rng.random((n, 5, 5, k)) < 0.5)
    return (pres @ concepts).astype(np.float32), concepts, pres


def test_ice_recovers_planted_concepts_and_presence():
    acts, concepts, _ = _planted_spatial()
    r = ice.fit_ice(acts, 3, jax.random.key(0), solver="hals", iters=300)
    assert r.concepts.shape == (3, 8) and r.presence.shape == (12, 5, 5, 3)
    cos = np.asarray(r.concepts) @ concepts.T
    cos /= (
        np.linalg.norm(np.asarray(r.concepts), axis=1)[:, None]
        * np.linalg.norm(concepts, axis=1)[None]
    )
    assert cos.max(axis=1).min() > 0.99
    # NNLS codes of new images equal scipy's per-position NNLS.
    new, _, _ = _planted_spatial(seed=3, n=2)
    pres = np.asarray(ice.ice_presence(new, r.concepts, iters=2000))
    a = np.asarray(r.concepts, np.float64).T
    ref = np.stack([nnls(a, v.astype(np.float64))[0] for v in new.reshape(-1, 8)])
    np.testing.assert_allclose(pres.reshape(-1, 3), ref, atol=1e-3 * ref.max())


def test_ice_fidelity_equals_numpy_computation():
    acts, concepts, pres = _planted_spatial(seed=4, n=20)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 20)
    head = lambda a: jnp.mean(a @ w, axis=(1, 2))  # noqa: E731
    # Keep only concepts 0 and 1: a lossy reconstruction.
    p2 = pres[..., :2].astype(np.float32)
    out = ice.ice_fidelity(
        head, acts, concepts[:2], presence=p2, labels=labels, batch_size=7
    )
    z = (acts @ w).mean(axis=(1, 2))
    z_rec = ((p2 @ concepts[:2]) @ w).mean(axis=(1, 2))
    assert out["agreement"] == pytest.approx(np.mean(z.argmax(1) == z_rec.argmax(1)))
    assert out["accuracy_original"] == pytest.approx(np.mean(z.argmax(1) == labels))
    assert out["accuracy_reconstructed"] == pytest.approx(
        np.mean(z_rec.argmax(1) == labels)
    )
    assert out["logit_rel_error"] == pytest.approx(
        np.linalg.norm(z_rec - z) / np.linalg.norm(z), rel=1e-4
    )
    full = ice.ice_fidelity(head, acts, concepts, presence=pres.astype(np.float32))
    assert full["agreement"] == 1.0 and full["r2"] == pytest.approx(1.0, abs=1e-5)


def test_reference_samples_and_pngs(tmp_path):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    presence = rng.random((7, 4, 4, 2)).astype(np.float32)
    refs = references.reference_samples(images, presence, 3, crop=0.5)
    scores = presence.reshape(7, -1, 2).max(1)
    np.testing.assert_array_equal(refs.indices, np.argsort(-scores, axis=0)[:3].T)
    np.testing.assert_allclose(refs.scores, np.sort(scores, axis=0)[::-1][:3].T)
    assert refs.crops.shape == (2, 3, 8, 8, 3) and refs.maps.shape == (2, 3, 8, 8)
    up = np.asarray(quality.upsample_presence(presence, (16, 16)))
    for j in range(2):
        for i in range(3):
            y0, x0, y1, x1 = refs.boxes[j, i]
            img = refs.indices[j, i]
            np.testing.assert_array_equal(refs.crops[j, i], images[img, y0:y1, x0:x1])
            # Same resize, other batch shape: 1 float32 ulp apart on some CPUs.
            np.testing.assert_allclose(
                refs.maps[j, i], up[img, y0:y1, x0:x1, j], rtol=1e-6
            )
            assert refs.maps[j, i].max() == pytest.approx(up[img, ..., j].max())
    paths = plots.save_layer_references(
        images, {"block/1": presence, "b2": presence[..., :1]}, tmp_path, n=3
    )
    assert sorted(paths) == ["b2", "block/1"] and paths["block/1"].endswith(
        "references_block_1.png"
    )
    assert matplotlib.image.imread(paths["b2"]).shape[2] == 4
    heat = plots.plot_iou_heatmap(
        np.random.default_rng(0).random((3, 2)), ["x", "y"], str(tmp_path / "h.png")
    )
    assert matplotlib.image.imread(heat).shape[0] > 50


def test_vector_presence_of_supervised_vectors():
    rng = np.random.default_rng(7)
    acts = rng.standard_normal((3, 4, 4, 5)).astype(np.float32)
    cavs, bias = rng.standard_normal((2, 5)).astype(np.float32), np.float32([0.5, -1])
    ref = 1 / (1 + np.exp(-(np.einsum("nhwc,kc->nhwk", acts, cavs) + bias)))
    out = references.vector_presence(acts, cavs, bias, sigmoid=True)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="disagree"):
        quality.localization_iou(np.ones((2, 3, 3, 2)), np.ones((3, 6, 6, 1)))
    bad = np.ones((2, 3, 3, 2))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="presence has 1 non-finite"):
        quality.localization_iou(bad, np.ones((2, 6, 6, 1)))
    with pytest.raises(ValueError, match="spatial"):
        ice.fit_ice(np.ones((4, 5)), 2, jax.random.key(0))
    with pytest.raises(ValueError, match="k=9 exceeds the activation dimension d=8"):
        ice.fit_ice(np.ones((2, 3, 3, 8)), 9, jax.random.key(0))
    with pytest.raises(ValueError, match="top_quantile"):
        quality.localization_iou(
            np.ones((2, 3, 3, 2)), np.ones((2, 6, 6, 1)), top_quantile=1.5
        )
