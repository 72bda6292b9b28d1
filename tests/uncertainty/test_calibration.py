"""Threshold calibration (reference script 8 of arXiv:2603.29915).

Independent references: scipy.stats.kendalltau / spearmanr on |phi|,
brute-force top-k sets, and a float64 NumPy sweep (numpy.quantile) scored
with sklearn's precision / recall / F1 (zero_division=0) and roc_auc_score.
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import calibration

N, D, K = 30, 9, 4
_rs = np.random.RandomState(0)
PHI = _rs.randn(N, D)
PHI[3] = -0.5  # constant |phi|: Kendall and Spearman NaN -> 0
NOISY = PHI + 0.6 * _rs.randn(2, N, D)
U = _rs.rand(N)


def _top(v, k):  # brute force: the k largest |v|, the lower index on ties
    return set(np.argsort(-np.abs(v), kind="stable")[:k].tolist())


def _scipy(fn, a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input warns, returns NaN
        return np.nan_to_num(fn(np.abs(a), np.abs(b)).statistic, nan=0.0)


def test_stability_metrics_against_scipy_and_brute_force():
    out = calibration.stability_metrics(PHI, NOISY, k=K)
    per = {m: np.zeros((2, N)) for m in calibration.METRICS}
    for r in range(2):
        for i in range(N):
            a, b = PHI[i], NOISY[r, i]
            per["kendall"][r, i] = _scipy(stats.kendalltau, a, b)
            per["spearman"][r, i] = _scipy(stats.spearmanr, a, b)
            inter = _top(a, K) & _top(b, K)
            per["top_k_overlap"][r, i] = len(inter) / K
            per["jaccard"][r, i] = len(inter) / len(_top(a, K) | _top(b, K))
    assert per["kendall"][0, 3] == 0.0 and per["jaccard"].min() < 1.0
    for m in calibration.METRICS:  # realisations are averaged
        np.testing.assert_allclose(out[m], per[m].mean(0), atol=1e-5, err_msg=m)
    one = calibration.stability_metrics(PHI, NOISY[1], k=K)
    np.testing.assert_allclose(one["spearman"], per["spearman"][1], atol=1e-5)
    # k is clipped to d: every top-d set is all features
    np.testing.assert_allclose(
        calibration.stability_metrics(PHI, NOISY, k=50)["jaccard"], 1.0
    )


def test_stability_labels_boundaries():
    s = [0.7, 0.69999, 0.5, 0.50001, 1.0, -1.0, 0.6]
    lab = calibration.stability_labels(s)
    assert lab.dtype == np.int8
    np.testing.assert_array_equal(lab, [1, -1, 0, -1, 1, 0, -1])
    np.testing.assert_array_equal(
        calibration.stability_labels(s, stable_at=0.6, unstable_at=0.6),
        [1, 1, 0, 0, 1, 0, 1],  # stable is checked first
    )
    with pytest.raises(ValueError, match="unstable_at"):
        calibration.stability_labels(s, stable_at=0.5, unstable_at=0.7)


def _labels(s):
    return np.where(s >= 0.7, 1, np.where(s <= 0.5, 0, -1))


@pytest.mark.parametrize("pool", ["all", "labelled"])
def test_threshold_sweep_against_sklearn(pool):
    # n = 181: (n - 1) c is an integer at every multiple of 0.05, so the
    # threshold is exactly a sample, which U <= tau must accept; in float32
    # 0.65 * 180 falls short of 117 (jnp.quantile rejects that sample).
    rs = np.random.RandomState(1)
    u = rs.rand(181).astype(np.float32)
    lab = _labels(rs.rand(181))
    covs = (0.0,) + calibration.COVERAGES + (1.0,)
    sw = calibration.threshold_sweep(u, lab, covs, pool=pool)
    u64, m = u.astype(np.float64), lab >= 0
    y = lab[m] == 1
    for j, c in enumerate(covs):
        thr = np.quantile(u64 if pool == "all" else u64[m], c)
        pred = (u64 <= thr)[m]
        assert float(sw["threshold"][j]) == pytest.approx(thr, rel=1e-6)
        assert float(sw["accepted"][j]) == pytest.approx(pred.mean())
        for name, fn in (
            ("precision", precision_score),
            ("recall", recall_score),
            ("f1", f1_score),
        ):
            ref = fn(y, pred, zero_division=0)
            assert float(sw[name][j]) == pytest.approx(ref, abs=1e-6), (name, c)
    np.testing.assert_allclose(sw["coverage"], covs, rtol=1e-6)
    assert float(sw["auc"]) == pytest.approx(roc_auc_score(y, -u64[m]), abs=1e-6)


def test_threshold_sweep_zero_division_by_hand():
    # c = 0 accepts only U = 0, an ambiguous sample: nothing labelled accepted
    sw = calibration.threshold_sweep([0.0, 1.0, 2.0, 3.0], [-1, 1, 0, 1], [0.0, 0.75])
    np.testing.assert_allclose(sw["precision"], [0.0, 0.5])
    np.testing.assert_allclose(sw["recall"], [0.0, 0.5])
    np.testing.assert_allclose(sw["f1"], [0.0, 0.5])
    np.testing.assert_allclose(sw["accepted"], [0.0, 2 / 3], rtol=1e-6)
    # one class: the AUC is undefined; no stable sample: recall 0, not NaN
    assert np.isnan(calibration.threshold_sweep([0, 1], [1, -1], [0.5])["auc"])
    sw = calibration.threshold_sweep([0, 1, 2], [0, -1, 0], [0.5])
    assert np.isnan(sw["auc"])
    for name in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(sw[name], [0.0], err_msg=name)


def test_best_coverage_window_and_ties():
    sweep = {
        "coverage": np.float32([0.1, 0.2, 0.5, 0.8, 0.9]),
        "accepted": np.float32([0.05, 0.15, 0.45, 0.75, 0.85]),
        "f1": np.float32([0.99, 0.5, 0.7, 0.7, 0.95]),
    }
    assert calibration.best_coverage(sweep) == pytest.approx((0.5, 0.7))  # tie: first
    assert calibration.best_coverage(sweep, 0.6, 0.8) == pytest.approx((0.8, 0.7))
    assert calibration.best_coverage(sweep, 0.2, 0.2) == pytest.approx((0.2, 0.5))
    assert calibration.best_coverage(sweep, 0.05, 0.5, by="accepted") == (
        pytest.approx((0.05, 0.99))
    )
    # nothing in the window: the best overall (the reference), or an error
    assert calibration.best_coverage(sweep, 0.3, 0.4) == pytest.approx((0.1, 0.99))
    with pytest.raises(ValueError, match="no coverage"):
        calibration.best_coverage(sweep, 0.3, 0.4, fallback=False)


def test_threshold_calibration_composes_the_parts():
    out = calibration.threshold_calibration(
        U,
        PHI,
        NOISY,
        k=K,
        stable_at=calibration.REFERENCE_STABLE_AT,
        unstable_at=calibration.REFERENCE_UNSTABLE_AT,
    )
    stab = calibration.stability_metrics(PHI, NOISY, k=K)
    assert set(out) == set(calibration.METRICS)
    for m, res in out.items():
        lab = calibration.stability_labels(
            stab[m],
            calibration.REFERENCE_STABLE_AT[m],
            calibration.REFERENCE_UNSTABLE_AT[m],
        )
        np.testing.assert_array_equal(res["labels"], lab)
        sw = calibration.threshold_sweep(U, lab, calibration.COVERAGES)
        np.testing.assert_allclose(res["sweep"]["f1"], sw["f1"])
        assert (res["best_coverage"], res["best_f1"]) == calibration.best_coverage(sw)
        lab = np.asarray(lab)
        assert res["n_stable"] == (lab == 1).sum()
        assert res["n_unstable"] == (lab == 0).sum()
        assert res["n_ambiguous"] == (lab == -1).sum()


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="phi_noisy"):
        calibration.stability_metrics(PHI, NOISY[0][:, :5])
    bad = PHI.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="phi_clean"):
        calibration.stability_metrics(bad, NOISY)
    lab = _labels(U)
    with pytest.raises(ValueError, match="labels"):
        calibration.threshold_sweep(U[:5], lab, [0.5])
    with pytest.raises(NonFiniteError, match="u has 1 non-finite"):
        calibration.threshold_sweep(np.where(np.arange(N) == 2, np.nan, U), lab, [0.5])
    with pytest.raises(ValueError, match="coverages"):
        calibration.threshold_sweep(U, lab, [1.5])
    with pytest.raises(ValueError, match="s must be"):
        calibration.stability_labels(PHI)
    with pytest.raises(ValueError, match="u must be"):
        calibration.threshold_calibration(U[:-1], PHI, NOISY, k=K)
