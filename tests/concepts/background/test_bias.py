"""Test-time IoU, group statistics and the embedding-shift cosine."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.background import bias

T = 6


def test_iou_smoothing_and_strict_thresholds():
    empty = np.zeros((T, T), np.float32)
    # Empty prediction on an empty mask: (0 + 1e-4) / (0 + 1e-4) = 1.
    assert float(bias.iou(empty, empty)) == 1.0
    mask = empty.copy()
    mask[:2, :3] = 0.3  # 6 soft pixels
    np.testing.assert_allclose(bias.iou(empty, mask), 1e-4 / (6 + 1e-4), rtol=1e-6)
    half = np.full((T, T), 0.5, np.float32)  # sigmoid(0): not > 0.5
    assert float(bias.iou(half, empty)) == 1.0
    probs = empty.copy()
    probs[:2, :2] = 0.9
    probs[5, 5] = 0.7  # 5 predicted, 4 shared with the mask, union 7
    np.testing.assert_allclose(
        bias.iou(probs, mask), (4 + 1e-4) / (7 + 1e-4), rtol=1e-6
    )


def test_iou_against_numpy_on_random_batches():
    rng = np.random.default_rng(0)
    probs = rng.random((5, 3, T, T)).astype(np.float32)
    masks = np.where(rng.random((5, 3, T, T)) < 0.5, rng.random((5, 3, T, T)), 0)
    p, m = probs > 0.5, masks > 0
    ref = ((p & m).sum((-2, -1)) + 1e-4) / ((p | m).sum((-2, -1)) + 1e-4)
    np.testing.assert_allclose(bias.iou(probs, masks), ref, rtol=1e-6)


def _torch_view_ious(vectors, acts, masks, grid):
    """The reference code's order in torch: interpolate, nan->1000, sigmoid."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    a = F.interpolate(torch.from_numpy(acts), size=grid, mode="bilinear",
                      align_corners=False)  # fmt: skip
    t = F.interpolate(torch.from_numpy(masks)[:, None], size=grid, mode="bilinear",
                      align_corners=False)[:, 0]  # fmt: skip
    out = np.zeros((len(acts), len(vectors)))
    for k, v in enumerate(vectors):
        v = torch.from_numpy(v).reshape(1, -1, 1, 1).nan_to_num(1000)
        proj = torch.sigmoid((a * v).sum(1)).gt(0.5).reshape(len(acts), -1)
        m = t.gt(0).reshape(len(acts), -1)
        inter = (proj & m).sum(-1).double()
        out[:, k] = ((inter + 1e-4) / ((proj | m).sum(-1).double() + 1e-4)).numpy()
    return out


def test_view_ious_match_the_reference_order_in_torch():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(4, 5, 7, 7)).astype(np.float32)
    masks = (rng.random((4, 32, 32)) < 0.3).astype(np.float32)
    vectors = rng.normal(size=(3, 5)).astype(np.float32)
    vectors[1, 2] = np.nan  # -> 1000: the projection follows channel 2
    vectors[2] = 0.0  # a zero vector predicts nothing
    ours = np.asarray(bias.view_ious(vectors, acts, masks, grid=(20, 20)))
    ref = _torch_view_ious(vectors, acts, masks, (20, 20))
    assert ours.shape == (4, 3)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    assert (ours[:, 2] < 1e-3).all()  # zero vector on non-empty masks
    acts[0, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="acts"):
        bias.view_ious(vectors, acts, masks)
    with pytest.raises(ValueError, match="targets"):
        bias.view_ious(vectors, np.zeros((4, 5, 3, 3)), masks[:2])


def test_project_replaces_nan_by_1000():
    acts = np.ones((2, 3, 3), np.float32)
    np.testing.assert_allclose(bias.project([np.nan, 1.0], acts), np.full((3, 3), 1001))


def test_group_stats_mean_and_sample_std_like_pandas():
    rng = np.random.default_rng(2)
    values = rng.random(20).astype(np.float32)
    groups = rng.integers(0, 2, 20)  # groups 0 and 1 ...
    groups[5] = 2  # ... group 2 holds one value, group 3 none
    out = bias.group_stats(values, groups, 4)
    for g in range(2):
        np.testing.assert_allclose(
            out["mean"][g], values[groups == g].mean(), rtol=1e-6
        )
        np.testing.assert_allclose(
            out["std"][g], values[groups == g].std(ddof=1), rtol=1e-5
        )
    assert float(out["mean"][2]) == pytest.approx(values[5])
    assert np.isnan(out["std"][2])  # one value: pandas' std is NaN
    assert np.isnan(out["mean"][3]) and int(out["count"][3]) == 0
    np.testing.assert_array_equal(out["count"], np.bincount(groups, minlength=4))
    pop = bias.group_stats(values, groups, 4, ddof=0)
    np.testing.assert_allclose(pop["std"][0], values[groups == 0].std(), rtol=1e-5)


def test_embedding_cosine_convention_edge_cases():
    v = np.array([3.0, -4.0, 0.0], np.float32)
    zero = np.zeros(3, np.float32)
    assert float(bias.embedding_cosine(zero, zero)) == 1.0  # both about 0
    assert float(bias.embedding_cosine(v, zero)) == 0.0  # only one
    assert float(bias.embedding_cosine(zero, v)) == 0.0
    tiny = np.full(3, 1e-9, np.float32)  # below the 1e-8 tolerance
    assert float(bias.embedding_cosine(tiny, zero)) == 1.0
    assert float(bias.embedding_cosine(tiny, v)) == 0.0
    assert float(bias.embedding_cosine(tiny, v, atol=0.0)) == pytest.approx(
        -1 / (5 * np.sqrt(3)), rel=1e-5
    )
    # Norms that would underflow / overflow in float32 still give the cosine.
    small, big = v * 1e-30, v * 1e30
    assert float(bias.embedding_cosine(small, big, atol=0.0)) == pytest.approx(1.0)
    assert float(bias.embedding_cosine(v, -v)) == pytest.approx(-1.0)
    assert np.isnan(bias.embedding_cosine(v * np.nan, v))
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    a[0] = 0.0
    norms = np.outer(np.linalg.norm(a[1:], axis=1), np.linalg.norm(b, axis=1))
    ref = np.concatenate([np.zeros((1, 5)), (a[1:] @ b.T) / norms])
    np.testing.assert_allclose(bias.cosine_matrix(a, b), ref, atol=1e-6)
    assert bias.cosine_matrix(jnp.zeros((2, 3)), jnp.zeros((1, 3))).tolist() == [
        [1.0],
        [1.0],
    ]
