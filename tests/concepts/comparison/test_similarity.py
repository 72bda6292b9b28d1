"""Concept similarity of layer outputs against NumPy loops and scipy."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.comparison import similarity as sim


def _masks(rng, shape, density=None):
    """Random masks whose density varies per image (so pooled != mean IoU)."""
    if density is None:
        density = rng.uniform(0.05, 0.9, size=shape[:2] + (1,) * (len(shape) - 2))
    return rng.random(shape) < density


def _iou(a, b):
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _scores(rng, layers, k, n):
    """Projections sharing a per-concept signal, with offsets and scales."""
    base = rng.normal(size=(k, n))
    scale = rng.uniform(0.2, 3.0, size=(layers, k, 1))
    noise = rng.normal(size=(layers, k, n)) * rng.uniform(0.1, 2.0, (layers, 1, 1))
    return (base * scale + noise + rng.uniform(-50, 50, (layers, k, 1))).astype(
        np.float32
    )


def test_set_iou_identical_disjoint_and_empty():
    rng = np.random.default_rng(0)
    a = _masks(rng, (4, 6, 5, 5), density=0.5)
    a[:, 0, 0, 0] = True  # every concept non-empty
    np.testing.assert_array_equal(sim.set_iou(a, a), np.ones(4))
    np.testing.assert_array_equal(sim.set_iou(a, ~a), np.zeros(4))
    empty = np.zeros_like(a)
    # 0/0 = 0: a concept neither side predicts has similarity 0, not 1.
    np.testing.assert_array_equal(sim.set_iou(empty, empty), np.zeros(4))


def test_set_iou_pools_over_images_like_a_numpy_loop():
    rng = np.random.default_rng(1)
    a, b = _masks(rng, (5, 7, 9, 9)), _masks(rng, (5, 7, 9, 9))
    ref = [_iou(a[k], b[k]) for k in range(5)]
    np.testing.assert_allclose(sim.set_iou(a, b), ref, rtol=0, atol=1e-7)
    per_image = np.mean(
        [[_iou(a[k, n], b[k, n]) for n in range(7)] for k in range(5)], 1
    )
    assert np.abs(per_image - np.asarray(ref)).max() > 1e-3  # pooled on purpose
    # (K, N) presence flags: the Jaccard index of predicted presence.
    fa, fb = a[:, :, 0, 0], b[:, :, 0, 0]
    ref = [_iou(fa[k], fb[k]) for k in range(5)]
    np.testing.assert_allclose(sim.set_iou(fa, fb), ref, atol=1e-7)


def test_binary_agreement_matches_numpy():
    rng = np.random.default_rng(2)
    a, b = _masks(rng, (3, 4, 7, 5)), _masks(rng, (3, 4, 7, 5))
    ref = (a == b).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(sim.binary_agreement(a, b), ref, atol=1e-7)


def test_pearson_affine_scipy_and_constant():
    rng = np.random.default_rng(3)
    s = _scores(rng, 2, 4, 37)
    r = sim.projection_pearson(s[0], 3.0 * s[0] - 2.0)
    np.testing.assert_allclose(r, np.ones(4), atol=1e-6)
    r = sim.projection_pearson(s[0], -0.5 * s[0] + 7.0)
    np.testing.assert_allclose(r, -np.ones(4), atol=1e-6)
    ref = [stats.pearsonr(s[0, k].astype(np.float64), s[1, k])[0] for k in range(4)]
    np.testing.assert_allclose(sim.projection_pearson(s[0], s[1]), ref, atol=1e-6)
    const = np.full((4, 37), 2.5, np.float32)
    np.testing.assert_array_equal(sim.projection_pearson(s[0], const), np.zeros(4))


@pytest.mark.parametrize("row_chunk", [None, 1, 2])
def test_layer_similarity_iou_matches_per_pair_loop(row_chunk):
    rng = np.random.default_rng(4)
    a, b = _masks(rng, (3, 4, 5, 6, 6)), _masks(rng, (5, 4, 5, 6, 6))
    a[1, 2] = False  # a concept layer 1 of A never predicts
    b[:, 2, 0, 0, 0] = False
    out = sim.layer_similarity(a, b, "iou", row_chunk=row_chunk)
    ref = np.array(
        [
            [[_iou(a[i, k], b[j, k]) for k in range(4)] for j in range(5)]
            for i in range(3)
        ]
    )
    assert out.per_concept.shape == (3, 5, 4) and out.mean.shape == (3, 5)
    np.testing.assert_allclose(out.per_concept, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out.mean, ref.mean(-1), rtol=0, atol=1e-6)
    assert not np.asarray(out.per_concept[1, :, 2]).any()  # counted as 0


def test_layer_similarity_pearson_and_agreement_match_loops():
    rng = np.random.default_rng(5)
    s_a, s_b = _scores(rng, 4, 3, 500), _scores(rng, 6, 3, 500)
    out = sim.layer_similarity(s_a, s_b, "pearson", row_chunk=3)
    ref = np.array(
        [
            [
                [np.corrcoef(s_a[i, k], s_b[j, k])[0, 1] for k in range(3)]
                for j in range(6)
            ]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(out.per_concept, ref, rtol=0, atol=1e-6)
    m_a, m_b = _masks(rng, (2, 3, 4, 5)), _masks(rng, (3, 3, 4, 5))
    out = sim.layer_similarity(m_a, m_b, "agreement")
    ref = (m_a[:, None] == m_b[None]).mean(axis=(-2, -1))
    np.testing.assert_allclose(out.per_concept, ref, atol=1e-7)


def test_layer_similarity_takes_a_custom_measure():
    def prepare(x):
        return x.reshape(x.shape[0], -1)

    def compare(a, b):  # negative mean absolute difference
        return -jnp.mean(jnp.abs(a - b), axis=-1)

    measure = sim.Measure(prepare, compare, boolean=False)
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(3, 3, 4))
    out = sim.layer_similarity(a, b, measure)
    ref = -np.abs(a[:, None] - b[None]).mean(-1)
    np.testing.assert_allclose(out.per_concept, ref, atol=1e-6)


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(7)
    a, b = _masks(rng, (2, 3, 4, 5, 5)), _masks(rng, (2, 4, 4, 5, 5))
    with pytest.raises(ValueError, match="outputs_a and outputs_b must agree"):
        sim.layer_similarity(a, b)
    with pytest.raises(ValueError, match="masks_a and masks_b must agree"):
        sim.set_iou(a[0], a[0, :2])
    with pytest.raises(ValueError, match="unknown kind 'cosine'"):
        sim.layer_similarity(a, a, "cosine")
    with pytest.raises(ValueError, match="outputs_b must be boolean masks"):
        sim.layer_similarity(a, a.astype(np.float32))
    with pytest.raises(ValueError, match=r"outputs_a must be \(L, K, N, ...\)"):
        sim.layer_similarity(a[0, 0, 0], a[0, 0, 0])
    with pytest.raises(ValueError, match="row_chunk"):
        sim.layer_similarity(a, a, row_chunk=0)
    s = _scores(rng, 2, 3, 10)
    bad = s.copy()
    bad[1, 0, 3] = np.nan
    with pytest.raises(NonFiniteError, match="outputs_b has 1 non-finite"):
        sim.layer_similarity(s, bad, "pearson")
    with pytest.raises(NonFiniteError, match="s_a has 1 non-finite"):
        sim.projection_pearson(bad[1], s[0])
