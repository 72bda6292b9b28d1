"""Relative depth and best matches, by hand and on a network against itself."""

import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.comparison import depth, similarity


def test_relative_depth_by_hand():
    np.testing.assert_allclose(depth.relative_depth(5), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(
        depth.relative_depth(9), [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1]
    )
    np.testing.assert_array_equal(depth.relative_depth(1), [0.0])
    with pytest.raises(ValueError, match="num_layers"):
        depth.relative_depth(0)


def test_best_match_5_vs_9_layers_by_hand():
    best = [0, 0, 8, 8, 4]  # columns of the row maxima
    sim = np.full((5, 9), 0.1, np.float32)
    sim[np.arange(5), best] = 0.9
    out = depth.best_match(sim)
    np.testing.assert_array_equal(out.best, best)
    # |d_i^A - d_j^B|: |0-0|, |.25-0|, |.5-1|, |.75-1|, |1-.5|
    np.testing.assert_allclose(out.distance, [0, 0.25, 0.5, 0.25, 0.5], atol=1e-7)
    np.testing.assert_allclose(out.mean_distance, 0.3, atol=1e-7)
    assert not np.asarray(out.tied).any()
    # On the relative-depth diagonal: row i of 5 matches column 2 i of 9.
    sim = np.full((5, 9), 0.1, np.float32)
    sim[np.arange(5), 2 * np.arange(5)] = 0.9
    out = depth.best_match(sim)
    np.testing.assert_array_equal(out.distance, np.zeros(5))
    tied = depth.best_match(np.zeros((5, 9)))
    assert np.asarray(tied.tied).all() and np.asarray(tied.best == 0).all()


def test_network_against_itself_matches_the_diagonal():
    rng = np.random.default_rng(0)
    # 6 layers, 4 concepts, 8 images, 7x7 grid.
    # A random walk over depth: neighbouring layers are the most similar.
    steps = rng.normal(size=(6, 4, 8, 7, 7))
    logits = np.cumsum(steps * np.r_[3.0, [0.5] * 5][:, None, None, None, None], 0)
    masks = logits > 0
    sim = similarity.layer_similarity(masks, masks, "iou").mean
    np.testing.assert_allclose(np.diag(sim), np.ones(6))
    out = depth.best_match(sim)
    np.testing.assert_array_equal(out.best, np.arange(6))
    np.testing.assert_array_equal(out.distance, np.zeros(6))
    assert float(out.mean_distance) == 0.0
    # Semantic flow: the best other layer is a neighbour, 1/5 away.
    flow = depth.best_match(sim, exclude_diagonal=True)
    assert np.all(np.abs(np.asarray(flow.best) - np.arange(6)) == 1)
    np.testing.assert_allclose(flow.distance, np.full(6, 0.2), atol=1e-7)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="similarity must be"):
        depth.best_match(np.ones(4))
    with pytest.raises(ValueError, match="exclude_diagonal"):
        depth.best_match(np.ones((3, 4)), exclude_diagonal=True)
    bad = np.ones((3, 3))
    bad[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="similarity has 1 non-finite"):
        depth.best_match(bad)
