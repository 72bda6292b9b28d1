"""Concept importance: Sobol indices in closed form, gradients vs references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.concepts.discovery import importance


def test_sobol_indices_of_additive_function_equal_closed_form():
    # f(M) = sum_i a_i M_i^2 on U[0, 1]^k: Var(M^2) = 4/45 for every input,
    # so S_i = ST_i = a_i^2 / sum_j a_j^2 (no interactions).
    a = np.array([3.0, 1.0, 0.5, 0.0, 2.0])
    total, first = importance.sobol_indices(
        lambda m: jnp.sum(jnp.asarray(a, jnp.float32)[None] * m**2, axis=1),
        5,
        4096,
        seed=1,
    )
    expected = a**2 / np.sum(a**2)
    np.testing.assert_allclose(np.asarray(total), expected, atol=0.01)
    np.testing.assert_allclose(np.asarray(first), expected, atol=0.01)


def test_sobol_total_index_sees_interactions():
    # f = M_0 M_1 + M_2 on U[0, 1]^3: Var(M_0 M_1) = 1/9 - 1/16 = 7/144,
    # Var(E[f | M_0]) = 1/48, Var(M_2) = 1/12, so V = 19/144,
    # S = (3, 3, 12) / 19 and, with the interaction 1/144 counted for both
    # M_0 and M_1, ST = (4, 4, 12) / 19.
    total, first = importance.sobol_indices(
        lambda m: m[:, 0] * m[:, 1] + m[:, 2], 3, 8192, seed=2
    )
    np.testing.assert_allclose(np.asarray(total), np.array([4, 4, 12]) / 19, atol=0.01)
    np.testing.assert_allclose(np.asarray(first), np.array([3, 3, 12]) / 19, atol=0.01)


def _linear_head(w):
    # logits (B, 2) = spatial sum of acts @ w, w (d, 2): additive in concepts.
    return lambda acts: jnp.sum(acts @ w, axis=(1, 2))


def test_concept_sobol_of_linear_head_equals_closed_form():
    rng = np.random.default_rng(0)
    codes = np.abs(rng.standard_normal((3, 4, 4, 5))).astype(np.float32)
    comps = rng.standard_normal((5, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2)).astype(np.float32)
    total, first = importance.concept_sobol(
        _linear_head(jnp.asarray(w)), codes, comps, 1, num_designs=2048, batch_size=512
    )
    # f(M) = sum_j b_j M_j with b_j = (sum_pos codes_j) (c_j . w[:, 1]).
    b = codes.sum(axis=(1, 2)) * (comps @ w[:, 1])[None]
    expected = b**2 / np.sum(b**2, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(total), expected, atol=0.01)
    np.testing.assert_allclose(np.asarray(first), expected, atol=0.01)


def test_design_is_reproducible_from_seed():
    d1 = importance.saltelli_design(3, 64, seed=5)
    d2 = importance.saltelli_design(3, 64, seed=5)
    d3 = importance.saltelli_design(3, 64, seed=6)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(d1, d3)
    a, b = d1[:64], d1[64:128]
    np.testing.assert_array_equal(d1[128 + 64 : 128 + 128, 1], b[:, 1])  # A_B^1
    np.testing.assert_array_equal(d1[128 + 64 : 128 + 128, [0, 2]], a[:, [0, 2]])


def test_code_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    codes = np.abs(rng.standard_normal((2, 3, 3, 4)))
    comps = rng.standard_normal((4, 5))
    mean = rng.standard_normal(5)
    w1, w2 = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))

    def head(acts):
        return jnp.mean(jnp.tanh(acts @ w1) @ w2, axis=(1, 2))

    with jax.enable_x64(True):
        g = np.asarray(importance.code_gradients(head, codes, comps, [2, 0], mean=mean))
        fd = np.zeros_like(codes)
        for idx in np.ndindex(codes.shape):
            e = np.zeros_like(codes)
            e[idx] = 1e-6
            plus = np.asarray(head(jnp.asarray((codes + e) @ comps + mean)))
            minus = np.asarray(head(jnp.asarray((codes - e) @ comps + mean)))
            fd[idx] = (plus - minus)[idx[0], [2, 0][idx[0]]] / 2e-6
        imp = np.asarray(
            importance.gradient_importance(head, codes, comps, [2, 0], mean=mean)
        )
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(imp, (fd * codes).sum(axis=(1, 2)), rtol=1e-6, atol=1e-9)


def test_gradient_of_linear_head_is_closed_form():
    rng = np.random.default_rng(2)
    codes = rng.random((3, 2, 2, 4)).astype(np.float32)
    comps = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2)).astype(np.float32)
    g = np.asarray(
        importance.code_gradients(_linear_head(jnp.asarray(w)), codes, comps, 0)
    )
    np.testing.assert_allclose(
        g, np.broadcast_to(comps @ w[:, 0], codes.shape), rtol=1e-5
    )


def test_bad_input_is_rejected():
    codes = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="disagree"):
        importance.code_gradients(lambda a: a.sum(1), codes, np.ones((3, 5)), 0)
    bad = codes.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="codes has 1 non-finite"):
        importance.concept_sobol(lambda a: a.sum(1), bad, np.ones((4, 5)), 0)
