"""E7 noise-feature focus: the augmented splits and the group SignalMass
against NumPy recomputations (arXiv:2603.29915, App. C, Eq. 10)."""

import jax
import numpy as np
import pytest

from jaxcxai.data.tabular import load_embedded
from jaxcxai.uncertainty import deferral, focus


def test_add_noise_features_keeps_signal_and_scales_noise_on_train():
    s = load_embedded("small_imbalanced")
    aug = focus.add_noise_features(s, 2.0, seed=7)
    d = s.num_features
    assert aug.num_features == d + 2 * d
    np.testing.assert_array_equal(aug.x_test[:, :d], s.x_test)
    np.testing.assert_array_equal(aug.y_train, s.y_train)
    noise = aug.x_train[:, d:]
    np.testing.assert_allclose(noise.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(noise.std(0), 1.0, atol=1e-5)
    # The same seed draws the same columns; another seed others.
    again = focus.add_noise_features(s, 2.0, seed=7)
    np.testing.assert_array_equal(again.x_val, aug.x_val)
    other = focus.add_noise_features(s, 2.0, seed=8)
    assert not np.allclose(other.x_val[:, d:], aug.x_val[:, d:])
    assert aug.feature_names[d:][:2] == ("noise_0", "noise_1")
    with pytest.raises(ValueError, match="ratio"):
        focus.add_noise_features(s, 0.0)


def _mass(phi, d_signal):
    imp = np.abs(phi).mean(0)
    return imp[:d_signal].sum() / imp.sum()


def _noise_top(phi, d_signal):
    imp = np.abs(phi).mean(0)
    top = np.argsort(-imp, kind="stable")[:d_signal]
    return int(np.sum(top >= d_signal))


def test_focus_groups_match_numpy():
    rng = np.random.default_rng(0)
    n, d_signal, d = 90, 4, 12
    u = rng.random(n)
    phi = rng.normal(size=(n, d)) * np.linspace(2.0, 0.5, d)
    key = jax.random.key(5)
    out, rows = focus.focus_groups(u, phi, d_signal, key, group_size=20, n_random=3)
    low, high, rand = (np.asarray(a) for a in deferral.u_groups(u, key, 20, 3))
    assert set(low) == set(np.argsort(u)[:20]) and set(high) == set(np.argsort(u)[-20:])
    want = [_mass(phi[low], d_signal), _mass(phi[high], d_signal)]
    m_rand = [_mass(phi[g], d_signal) for g in rand]
    np.testing.assert_allclose(out["mass"], want + [np.mean(m_rand)], rtol=1e-5)
    np.testing.assert_allclose(out["mass_std"][2], np.std(m_rand), rtol=1e-4)
    n_top = [_noise_top(phi[low], d_signal), _noise_top(phi[high], d_signal)]
    n_rand = np.mean([_noise_top(phi[g], d_signal) for g in rand])
    np.testing.assert_allclose(out["noise_top"], n_top + [n_rand])
    assert [r["group"] for r in rows] == ["low", "high", "random"]
    assert rows[0]["num_noise"] == d - d_signal


def test_confident_rows_focused_on_signal_give_mass_one():
    # Low-U rows attribute only to the signal, high-U rows spread evenly: the
    # low group's SignalMass is 1 and no noise feature enters its top 3.
    n, d_signal, d = 60, 3, 9
    u = np.arange(n, dtype=np.float64)
    phi = np.ones((n, d))
    phi[:20, d_signal:] = 0.0
    out, _ = focus.focus_groups(u, phi, d_signal, jax.random.key(0), group_size=20)
    assert out["mass"][0] == pytest.approx(1.0)
    assert out["mass"][1] == pytest.approx(d_signal / d)
    assert out["noise_top"][0] == 0


def test_focus_groups_reject_bad_input():
    with pytest.raises(ValueError, match="num_signal"):
        focus.focus_groups(np.zeros(30), np.ones((30, 4)), 4, jax.random.key(0),
                           group_size=10)  # fmt: skip
    with pytest.raises(ValueError, match="phi must be"):
        focus.focus_groups(np.zeros(30), np.ones((29, 4)), 2, jax.random.key(0),
                           group_size=10)  # fmt: skip
    with pytest.raises(ValueError, match="non-finite"):
        focus.focus_groups(np.full(30, np.nan), np.ones((30, 4)), 2, jax.random.key(0),
                           group_size=10)  # fmt: skip
    with pytest.raises(ValueError, match="need >= 30"):
        focus.focus_groups(np.zeros(20), np.ones((20, 4)), 2, jax.random.key(0),
                           group_size=10)  # fmt: skip
