"""Global importance of U-filtered batches (scripts 10-11 of arXiv:2603.29915).

Independent references: NumPy mean |phi|, groups and batches selected with
NumPy (stable argsort, rows cycled through the candidates), and
scipy.stats.spearmanr (average ranks) against the reference importance.
"""

import jax
import numpy as np
import pytest
from scipy import stats

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import recovery

B, C, D = 50, 30, 8
_rs = np.random.RandomState(0)
REF = _rs.permutation(np.arange(1.0, D + 1))  # distinct: a strict ranking
# every base row is the reference, rescaled, with random signs: any subset
# of base rows has the reference's ranking exactly
PHI_BASE = REF * _rs.uniform(0.5, 2.0, (B, 1)) * _rs.choice([-1.0, 1.0], (B, D))
U_BASE = _rs.rand(B)
PHI_CONT = 20.0 * _rs.randn(C, D)  # random importances, large
U_CONT = 2.0 + _rs.rand(C)  # contaminants are more uncertain


def _rho(g, ref):
    return np.nan_to_num(stats.spearmanr(g, ref).statistic, nan=0.0)


def _g(phi):
    return np.abs(phi).mean(axis=0)


def test_global_importance_against_numpy():
    phi = _rs.randn(7, 5)
    np.testing.assert_allclose(recovery.global_importance(phi), _g(phi), rtol=1e-6)


def test_global_approximation_against_scipy():
    rs = np.random.RandomState(1)
    n = 100
    u = rs.rand(n)
    # the ranking drifts with U; two all-zero features tie in every importance
    phi = rs.randn(n, D) * (1 + 4 * np.outer(u, rs.rand(D)))
    phi[:, [2, 5]] = 0.0
    fracs = (0.001, 0.05, 0.29, 0.5)  # K = max(2, round(frac n))
    out = recovery.global_approximation(u, phi, fracs)
    np.testing.assert_array_equal(out["k"], [2, 5, 29, 50])  # int(29.0-) = 28
    ref = _g(phi)
    np.testing.assert_allclose(out["reference"], ref, rtol=1e-6)
    order = np.argsort(u, kind="stable")
    for j, k in enumerate([2, 5, 29, 50]):
        low, high = _g(phi[order[:k]]), _g(phi[order[n - k :]])
        assert float(out["rho_low"][j]) == pytest.approx(_rho(low, ref), abs=1e-5)
        assert float(out["rho_high"][j]) == pytest.approx(_rho(high, ref), abs=1e-5)
    assert not np.allclose(out["rho_low"], out["rho_high"])
    other = rs.rand(D)
    out = recovery.global_approximation(u, phi, fracs, reference=other)
    low = _g(phi[order[:29]])
    assert float(out["rho_low"][2]) == pytest.approx(_rho(low, other), abs=1e-5)


def _batch(m):
    rows = np.arange(m) % C  # cycling through the candidates in order
    u = np.concatenate([U_BASE, U_CONT[rows]])
    return u, np.concatenate([PHI_BASE, PHI_CONT[rows]])


def test_contamination_recovery_constructed_case():
    out = recovery.contamination_recovery(
        U_BASE, PHI_BASE, U_CONT, PHI_CONT, REF, jax.random.key(0)
    )
    m_all = [0, 25, 50, 100, 150, 200, 250]
    np.testing.assert_array_equal(out["n_contaminants"], m_all)
    naive = np.array([_rho(_g(_batch(m)[1]), REF) for m in m_all])
    np.testing.assert_allclose(out["rho_naive"], naive, atol=1e-5)
    assert naive[0] == 1.0 and np.all(np.diff(naive) <= 0) and naive[-1] < 0.8
    # the filter keeps the 40 lowest U: all base rows, the reference ranking
    np.testing.assert_allclose(out["rho_filtered"], 1.0)
    np.testing.assert_allclose(out["contaminant_share"], 0.0)
    np.testing.assert_allclose(out["recovery"], 1.0 - naive, atol=1e-5)
    np.testing.assert_allclose(out["recovery_rate"], [0, 1, 1, 1, 1, 1, 1], atol=1e-5)
    for i, m in enumerate(m_all):
        u, phi = _batch(m)
        kept = np.sort(np.asarray(out["filtered_idx"][i]))
        np.testing.assert_array_equal(kept, np.sort(np.argsort(u, kind="stable")[:40]))
        idx = np.asarray(out["random_idx"][i])  # (n_random, keep)
        assert idx.shape == (5, 40) and idx.max() < B + m
        assert all(len(set(row)) == 40 for row in idx)  # without replacement
        rhos = [_rho(_g(phi[row]), REF) for row in idx]
        assert float(out["rho_random"][i]) == pytest.approx(np.mean(rhos), abs=1e-5)
        assert float(out["rho_random_std"][i]) == pytest.approx(np.std(rhos), abs=1e-5)
    assert np.ptp(np.asarray(out["random_idx"][3]), axis=0).max() > 0  # repeats differ


def test_recovery_rate_by_hand():
    # a reference the base rows miss by one swap, and five candidates whose
    # U is below every base row's: the filter recovers only part of the loss
    ref = REF.copy()
    ref[[0, 1]] = ref[[1, 0]]
    u_cont = U_CONT.copy()
    u_cont[:5] = -1.0
    args = (U_BASE, PHI_BASE, u_cont, PHI_CONT, ref, jax.random.key(1))
    kw = dict(rates=(0.0, 0.5, 2.0), n_random=2)
    out = recovery.contamination_recovery(*args, **kw)
    naive, filt = np.asarray(out["rho_naive"]), np.asarray(out["rho_filtered"])
    assert naive.max() < 1.0 and filt[0] < 1.0
    np.testing.assert_allclose(
        out["recovery_rate"], (filt - naive) / (1 - naive), rtol=1e-5
    )
    # rate 2: 100 rows cycle 30 candidates, each of the five 4 times
    np.testing.assert_allclose(out["contaminant_share"], [0, 5 / 40, 20 / 40])
    worst = 1.0 - naive.min()
    strict = recovery.contamination_recovery(*args, **kw, min_degradation=worst)
    np.testing.assert_allclose(strict["recovery_rate"], 0.0)
    np.testing.assert_allclose(strict["recovery"], out["recovery"])
    # reference=None: the base batch's own global importance (the script)
    own = recovery.contamination_recovery(*args[:4], None, args[5], **kw)
    assert float(own["rho_naive"][0]) == pytest.approx(1.0)


def test_bad_inputs_raise():
    key = jax.random.key(0)
    args = [U_BASE, PHI_BASE, U_CONT, PHI_CONT, REF, key]
    with pytest.raises(ValueError, match="u_base"):
        recovery.contamination_recovery(U_BASE[:-1], *args[1:])
    with pytest.raises(ValueError, match="phi_cont"):
        recovery.contamination_recovery(*args[:3], PHI_CONT[:, :-1], *args[4:])
    bad = PHI_CONT.copy()
    bad[3, 1] = np.inf
    with pytest.raises(NonFiniteError, match="phi_cont"):
        recovery.contamination_recovery(*args[:3], bad, *args[4:])
    with pytest.raises(ValueError, match="keep"):
        recovery.contamination_recovery(*args, keep=B + 1)
    with pytest.raises(ValueError, match="rates"):
        recovery.contamination_recovery(*args, rates=(-1.0,))
    with pytest.raises(ValueError, match="reference"):
        recovery.contamination_recovery(*args[:4], REF[:-1], key)
    with pytest.raises(ValueError, match="fracs"):
        recovery.global_approximation(U_BASE, PHI_BASE, (0.0,))
    with pytest.raises(ValueError, match="u must be"):
        recovery.global_approximation(U_BASE[:-1], PHI_BASE)
    with pytest.raises(ValueError, match="phi must be"):
        recovery.global_importance(REF)
