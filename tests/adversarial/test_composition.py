"""Concept composition change on activations with planted concepts."""

import itertools

import jax
import numpy as np
import pytest

from jaxcxai.adversarial.composition import concept_change, new_concepts

C = 12


def _planted():
    """Six non-negative concepts on disjoint channel pairs; the source uses
    0, 1, 2, the target 3, 4, 5 and the adversarial set 0, 1 and the
    target's 3."""
    p = np.zeros((6, C))
    for i in range(6):
        p[i, 2 * i : 2 * i + 2] = [1.0 + 0.2 * i, 0.5]
    rng = np.random.default_rng(0)
    sets = {"src": [0, 1, 2], "adv": [0, 1, 3], "tgt": [3, 4, 5]}
    codes = {
        name: rng.exponential(1.0, (6, 4, 4, 3)) * (rng.random((6, 4, 4, 3)) < 0.6)
        for name in sets
    }
    acts = {
        name: (codes[name] @ p[idx]).astype(np.float32) for name, idx in sets.items()
    }
    return p, sets, codes, acts


def _brute_match(a, b):
    """Matched cosines (rows of a in order) of the best one-to-one assignment."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = a @ b.T
    best = max(
        itertools.permutations(range(len(b))), key=lambda q: cos[range(len(a)), q].sum()
    )
    return cos[range(len(a)), best]


@pytest.fixture(scope="module")
def change():
    p, sets, codes, acts = _planted()
    out = concept_change(acts["src"], acts["adv"], acts["tgt"], 3, jax.random.key(0))
    return p, sets, codes, out


def test_concepts_recovered_and_matched(change):
    p, sets, _, out = change
    for name, idx in sets.items():
        cos = _brute_match(out["concepts"][name], p[idx])
        assert cos.min() > 0.99, (name, cos)
    for a, b in (("adv", "src"), ("adv", "tgt"), ("src", "tgt")):
        ref = _brute_match(out["concepts"][a], out["concepts"][b])
        np.testing.assert_allclose(out[f"cos_{a}_{b}"], ref, atol=1e-6)
        np.testing.assert_allclose(out[f"mean_cos_{a}_{b}"], ref.mean(), atol=1e-6)
    # the adversarial set keeps two source concepts and gains one target one
    assert np.sort(out["cos_adv_src"]) == pytest.approx([0, 1, 1], abs=0.02)
    assert (out["new_vs_src"], out["new_vs_tgt"], out["new"]) == (1, 2, 0)


def test_weights_and_shift(change):
    p, sets, codes, out = change
    # on disjoint supports the NNLS weight of unit concept j is c_j ||p_j||
    src = out["concepts"]["src"]
    order = [int(np.argmax(np.abs(p[sets["src"]] @ row))) for row in src]
    norms = np.linalg.norm(p[sets["src"]], axis=1)
    mean_codes = {name: codes[name].reshape(-1, 3).mean(0) for name in sets}
    ref_src = (mean_codes["src"] * norms)[order]
    ref_adv = np.zeros(3)
    ref_adv[:2] = mean_codes["adv"][:2] * norms[:2]  # concepts 0, 1 shared
    ref_adv = ref_adv[order]
    w = out["weights_on_src"]
    np.testing.assert_allclose(w["src"], ref_src, rtol=0.02, atol=1e-3)
    np.testing.assert_allclose(w["adv"], ref_adv, rtol=0.02, atol=1e-3)
    np.testing.assert_allclose(w["tgt"], 0.0, atol=1e-3)
    np.testing.assert_allclose(
        out["weight_shift"], ref_adv - ref_src, rtol=0.02, atol=2e-3
    )
    assert out["shift_toward_target"] > 0.3


def test_new_concepts_threshold():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    ref = np.array([[1.0, 0.1]])
    np.testing.assert_array_equal(new_concepts(a, ref, 0.8), [False, True])
    np.testing.assert_array_equal(new_concepts(a, ref, 0.5), [False, False])


def test_errors():
    a = np.ones((2, 3, 3, 4), np.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="adv must be"):
        concept_change(a, a[0], a, 2, key)
    with pytest.raises(ValueError, match="clean_tgt|tgt has C=3"):
        concept_change(a, a, a[..., :3], 2, key)
    with pytest.raises(ValueError, match="gamma"):
        concept_change(a, a, a, 2, key, gamma=1.5)
    bad = a.copy()
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        concept_change(a, bad, a, 2, key)
    with pytest.raises(ValueError, match="negative"):
        concept_change(-a, a, a, 2, key)
