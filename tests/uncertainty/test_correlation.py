"""XD, EG, XEC, strata and the p10-vs-p90 t-test (arXiv:2603.29915, 4.5-5.3).

Independent references: scipy.stats.kendalltau per sample on |phi|,
scipy.stats.spearmanr across levels, pandas.qcut for the strata and
scipy.stats.ttest_ind for the t-test; XEC of a monotone sweep is -1.
"""

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import correlation

N, D, L = 12, 7, 5
_rs = np.random.RandomState(0)
PHI = _rs.randn(N, D)
SIGMAS = np.array([0.05, 0.2, 0.5, 1.0, 3.0])
PERT = PHI[None] + SIGMAS[:, None, None] * _rs.randn(L, N, D)
U0 = _rs.rand(N) + 0.1
UP = U0[None] * (1 + SIGMAS)[:, None]  # monotone: U grows with sigma


def test_tau_equals_scipy_kendall_per_sample():
    tau = np.asarray(correlation.sample_stability(PHI, PERT))
    assert tau.shape == (L, N)
    for lv in range(L):
        for i in range(N):
            ref = stats.kendalltau(np.abs(PHI[i]), np.abs(PERT[lv, i])).statistic
            assert tau[lv, i] == pytest.approx(ref, abs=1e-6)
    # ties: rounded |phi| (tau-b), and a constant explanation counts as 0
    a, b = np.round(PHI, 0), np.round(PERT[2], 0)
    b[0] = 1.0
    tau_t = np.asarray(correlation.sample_stability(a, b))
    for i in range(1, N):
        ref = stats.kendalltau(np.abs(a[i]), np.abs(b[i])).statistic
        assert tau_t[i] == pytest.approx(ref, abs=1e-6)
    assert tau_t[0] == 0.0
    xd = np.asarray(correlation.explanation_drift(PHI, PERT))
    np.testing.assert_allclose(xd, tau.mean(1), atol=1e-6)
    # a realisation axis is averaged too
    two = np.stack([PERT, PERT[::-1]], axis=1)
    np.testing.assert_allclose(
        correlation.explanation_drift(PHI, two),
        (tau + tau[::-1]).mean(1) / 2,
        atol=1e-6,
    )


def test_monotone_sweep_gives_minus_one():
    xd = correlation.explanation_drift(PHI, PERT)
    assert np.all(np.diff(np.asarray(xd)) < 0)  # drift falls with sigma
    eg = correlation.epistemic_gain(U0, UP)
    np.testing.assert_allclose(eg, 1 + SIGMAS, rtol=1e-6)
    for sem in ("paper", "reference"):
        assert float(correlation.xec(xd, U0, UP, semantics=sem)) == pytest.approx(-1.0)


def test_xec_equals_scipy_spearman():
    xd = np.array([0.9, 0.7, 0.75, 0.4, 0.5, 0.2])
    up = _rs.rand(6, N) + 0.1
    eg = up.sum(1) / U0.sum()
    ref = stats.spearmanr(xd, eg).statistic
    assert float(correlation.xec(xd, U0, up)) == pytest.approx(ref, abs=1e-6)
    # reference semantics: clean level prepended (XD = 1, mean U0), mean U per level
    ref = stats.spearmanr(np.r_[1.0, xd], np.r_[U0.mean(), up.mean(1)]).statistic
    got = correlation.xec(xd, U0, up, semantics="reference")
    assert float(got) == pytest.approx(ref, abs=1e-6)
    # fewer than 3 levels or no spread: NaN
    assert np.isnan(correlation.xec(xd[:2], U0, up[:2]))
    assert np.isnan(correlation.xec(np.ones(6), U0, up))


def test_strata_match_pandas_qcut_and_summaries():
    u = _rs.rand(30)
    u[5] = u[6]  # a tie
    lab = np.asarray(correlation.strata(u))
    ref = pd.qcut(u, 3, labels=False)
    np.testing.assert_array_equal(lab, ref)
    idx = np.asarray(correlation.stratified_sample(lab, jax.random.key(0), 4))
    assert idx.shape == (3, 4)
    for s in range(3):
        assert np.all(lab[idx[s]] == s) and len(set(idx[s])) == 4
    tau = _rs.rand(30)
    summ = correlation.stratum_summary(tau, lab)
    for s in range(3):
        assert float(summ["mean"][s]) == pytest.approx(tau[lab == s].mean(), abs=1e-6)
        assert float(summ["std"][s]) == pytest.approx(tau[lab == s].std(), abs=1e-5)
        assert float(summ["count"][s]) == (lab == s).sum()
    with pytest.raises(ValueError, match="need 20"):
        correlation.stratified_sample(lab, jax.random.key(0), 20)


def test_ttest_equals_scipy_and_pass_rule():
    rs = np.random.RandomState(1)
    u = rs.rand(200)
    tau = 0.8 - 0.3 * u + 0.1 * rs.randn(200)
    res = correlation.extreme_groups_ttest(u, tau)
    lo, hi = u <= np.quantile(u, 0.1), u >= np.quantile(u, 0.9)
    ref = stats.ttest_ind(tau[lo], tau[hi])
    assert float(res.t) == pytest.approx(ref.statistic, rel=1e-4)
    assert float(res.p) == pytest.approx(ref.pvalue, rel=1e-3, abs=1e-12)
    delta = tau[lo].mean() - tau[hi].mean()
    assert float(res.delta) == pytest.approx(delta, abs=1e-5)
    assert bool(res.passed) == (delta > 0.15 and ref.pvalue < 0.05)
    assert bool(res.passed)
    flat = correlation.extreme_groups_ttest(u, 0.1 * rs.randn(200))
    assert not bool(flat.passed)


def test_nan_inputs_are_named():
    bad = PHI.copy()
    bad[1, 1] = np.nan
    with pytest.raises(NonFiniteError, match="^phi_clean has 1"):
        correlation.explanation_drift(bad, PERT)
    with pytest.raises(NonFiniteError, match="^u_pert"):
        correlation.epistemic_gain(U0, np.full((2, N), np.nan))
    with pytest.raises(ValueError, match="semantics"):
        correlation.xec(np.ones(3), U0, UP[:3], semantics="code")
