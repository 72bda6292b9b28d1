"""Gating policies (arXiv:2603.29915, sections 3, 5.4-5.5).

Independent references: numpy.quantile for calibrate/route/defer, the
paper's worked cost example (m = 50, d = 5000 -> m/d = 0.01), an E4 pool
whose precision/recall were counted by hand, and sklearn's roc_auc_score.
"""

import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import gating

# Hand-made E4 pool: U = 0..9; stable (tau >= 0.7): samples 0, 1, 2, 4, 7.
U = np.arange(10.0)
TAU = np.array([0.9, 0.8, 0.75, 0.3, 0.95, 0.2, 0.1, 0.72, 0.4, 0.0])


def test_calibrate_route_defer_against_numpy():
    u = np.random.RandomState(0).gamma(2.0, size=101).astype(np.float32)
    nus = np.array(gating.E4_NUS)
    thr = np.asarray(gating.calibrate(u, nus))
    np.testing.assert_allclose(thr, np.quantile(u, 1 - nus), rtol=1e-5)
    for t in thr:
        np.testing.assert_array_equal(gating.defer(u, t), u <= t)
        np.testing.assert_array_equal(gating.route(u, t), u >= t)
    # at nu the share deferred is about nu
    acc = np.asarray(gating.defer(u, gating.calibrate(u, 0.3)))
    assert abs((~acc).mean() - 0.3) <= 1 / len(u)
    with pytest.raises(ValueError, match="nu must lie"):
        gating.calibrate(u, 1.5)


def test_cost_worked_example():
    # MC dropout m = 50, LIME d = 5000: m/d = 0.01 (paper, section 3)
    assert gating.relative_cost(50, 5000, 0.0) == pytest.approx(1.01)
    assert gating.relative_cost(50, 5000, 0.3) - 0.7 == pytest.approx(0.01)
    # RF: U is a by-product, q = 1/d + (1 - nu) ~ 1 - nu
    assert gating.relative_cost(1, 5000, 0.5) == pytest.approx(0.5002)
    rec = gating.reliability_records(U, 6.5, m=50, d=5000)
    np.testing.assert_array_equal(rec.decision, U <= 6.5)
    assert float(rec.q.mean()) == pytest.approx(0.01 + 0.7)  # = q at nu = 0.3
    rec = gating.reliability_records(U, 5.0, policy="route", m=0, d=5000, d_cheap=100)
    np.testing.assert_allclose(rec.q, np.where(U >= 5, 1.0, 0.02), rtol=1e-6)


def test_e4_precision_recall_by_hand():
    tab = gating.deferral_table(U, TAU, (0.9, 0.5, 0.1))
    # nu = 0.9: tau_nu = Q_0.1 = 0.9, accepts {0}: precision 1, recall 1/5
    # nu = 0.5: tau_nu = 4.5, accepts {0..4}: 4 stable -> 4/5, 4/5
    # nu = 0.1: tau_nu = 8.1, accepts {0..8}: 5 stable -> 5/9, 5/5
    np.testing.assert_allclose(tab["precision"], [1.0, 0.8, 5 / 9], rtol=1e-6)
    np.testing.assert_allclose(tab["recall"], [0.2, 0.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(tab["coverage"], [0.1, 0.5, 0.9], rtol=1e-6)
    np.testing.assert_allclose(tab["tau_mean"][1], TAU[:5].mean(), rtol=1e-6)
    np.testing.assert_allclose(tab["tau_std"][1], TAU[:5].std(), rtol=1e-5)
    np.testing.assert_allclose(tab["q"], [0.1, 0.5, 0.9], rtol=1e-6)
    ref = roc_auc_score(TAU >= 0.7, -U)
    assert float(tab["auc"]) == pytest.approx(ref, abs=1e-6)
    # ties in the score
    s = np.array([0.1, 0.1, 0.5, 0.5, 0.9, 0.2])
    y = np.array([0, 1, 1, 0, 1, 0], bool)
    assert float(gating.roc_auc(s, y)) == pytest.approx(roc_auc_score(y, s))


def test_uc1_curve_reconstruction():
    rs = np.random.RandomState(0)
    u = rs.rand(200)
    cheap = 0.9 - 0.8 * u + 0.05 * rs.randn(200)  # cheap fragile where U high
    exp = np.full(200, 0.85)
    out = gating.uc1_curve(
        u, cheap, exp, (0.0, 0.3, 1.0), jax.random.key(0), d_cheap=100, d_exp=5000
    )
    np.testing.assert_allclose(out["routed"], [0.0, 0.3, 1.0], atol=1e-6)
    np.testing.assert_allclose(out["q"], 0.02 * (1 - out["routed"]) + out["routed"])
    worst = lambda s: [np.quantile(s, 0.1), s.mean()]
    np.testing.assert_allclose(out["gated"][0], worst(cheap), rtol=1e-5)
    np.testing.assert_allclose(out["gated"][2], worst(exp), rtol=1e-5)
    mixed = np.where(u >= np.quantile(u, 0.7), exp, cheap)
    np.testing.assert_allclose(out["gated"][1], worst(mixed), rtol=1e-5)
    # gating beats random routing at equal cost on the worst case
    assert out["gated"][1, 0] > out["random"][1, 0] + 0.1


def test_nan_inputs_are_named():
    with pytest.raises(NonFiniteError, match="^u_ref has 1"):
        gating.calibrate(np.array([0.1, np.nan]), 0.5)
    with pytest.raises(NonFiniteError, match="^tau has 1"):
        gating.deferral_table(U, np.r_[TAU[:-1], np.inf])
    with pytest.raises(ValueError, match="policy must be"):
        gating.reliability_records(U, 1.0, policy="skip")
